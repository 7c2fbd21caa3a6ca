"""Sample context for every mail template: the contract, by example.

`mailbot check` renders each template in each language with these values, the
tests use them, and templates/README.md documents the same variables. Whoever
queues a reply must pass every key listed for its template (StrictUndefined).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

_D = date(2023, 2, 3)
SAMPLE_CONTEXT: dict[str, dict[str, Any]] = {
    "confirmation": {
        "name": "Kari Nordmann",
        "code": "12345678",
        "model": "WH-1000XM5",
        "file_types": ["JPG", "PNG", "PDF"],
        "max_mb": 5,
        "status_url": "https://claims.example.com/status?lang=nb",
    },
    "documents_received": {
        "name": "Kari Nordmann",
        "code": "12345678",
        "filenames": ["kvittering.pdf", "serienummer.jpg"],
    },
    "missing_info": {
        "name": "Kari Nordmann",
        "code": "12345678",
        "missing_documents": ["serial_photo"],
        "missing_fields": ["vat_number", "purchase_date"],
        "deadline": _D,
        "file_types": ["JPG", "PNG", "PDF"],
        "max_mb": 5,
    },
    "approved": {
        "name": "Kari Nordmann",
        "code": "12345678",
        "amount": Decimal("1620.00"),
        "currency": "NOK",
        "payment_days": 28,
    },
    "rejected": {
        "name": "Kari Nordmann",
        "code": "12345678",
        "reasons": ["purchase_outside_window", "model_not_eligible"],
    },
    "attachment_refused": {
        "name": "Kari Nordmann",
        "code": "12345678",
        "files": [
            {"filename": "stort-bilde.jpg", "reason": "too_large"},
            {"filename": "dokumenter.zip", "reason": "archive"},
        ],
        "file_types": ["JPG", "PNG", "PDF"],
        "max_mb": 5,
    },
    "rma_issued": {
        "name": "Ola Nordmann",
        "rma_number": "7654321",
        "product": "Sonos One",
        "valid_days": 14,
        "valid_until": date(2023, 2, 3),
    },
    "tracking_ack": {
        "name": "Ola Nordmann",
        "rma_number": "7654321",
        "tracking_number": "1Z999AA10123456784",
        "carrier": "UPS",
        "dropoff_at": datetime(2023, 1, 21, 14, 30, tzinfo=UTC),
    },
    "rma_expired": {
        "name": "Ola Nordmann",
        "rma_number": "7654321",
        "product": "Sonos One",
        "issued_on": date(2023, 1, 20),
        "expired_on": date(2023, 2, 4),
        "valid_days": 14,
    },
    "rma_policy": {
        "name": "",
        "rma_number": "7654321",
        "status": "unknown",
        "valid_days": 14,
        "expired_on": None,
    },
    "rma_missing_info": {
        "name": "Ola Nordmann",
        "rma_number": "7654321",
        "missing": ["tracking_number", "dropoff_time"],
        "valid_until": date(2023, 2, 3),
    },
    "reminder": {
        "name": "Kari Nordmann",
        "code": "12345678",
        "rma_number": None,
        "deadline": _D,
        "missing_documents": ["receipt"],
        "missing_fields": [],
    },
    "attachment_missing": {
        "name": "Kari Nordmann",
        "code": "12345678",
        "missing_documents": ["receipt", "serial_photo"],
        "missing_fields": ["purchase_date"],
        "deadline": _D,
        "file_types": ["JPG", "PNG", "PDF"],
        "max_mb": 5,
    },
    "claim_status": {
        "name": "Kari Nordmann",
        "code": "12345678",
        "state": "approved",
        "missing_documents": [],
        "missing_fields": [],
        "deadline": None,
        "payment_days": 28,
        "pay_by": _D,
        "paid_on": None,
        "amount": Decimal("500.00"),
        "currency": "NOK",
    },
}
