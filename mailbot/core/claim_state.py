"""The claim snapshot and its states: what the database stores for a claim.

Apart from the transitions (`claim_machine`) so that `claim_rules` can read a
claim without importing the state machine. `Claim` is frozen; transitions make new
snapshots with `dataclasses.replace`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from mailbot.core.receipt_fields import DocumentKind, ReceiptFields


class ClaimState(StrEnum):
    REGISTERED = "registered"
    AWAITING_DOCUMENTS = "awaiting_documents"
    DOCUMENTS_RECEIVED = "documents_received"
    VALIDATED = "validated"
    INCOMPLETE = "incomplete"
    APPROVED = "approved"
    PAID = "paid"
    REJECTED = "rejected"
    VOID = "void"
    REVIEW = "review"


TERMINAL = frozenset({ClaimState.PAID, ClaimState.REJECTED, ClaimState.VOID})
DECIDABLE = frozenset(
    {
        ClaimState.REGISTERED,
        ClaimState.AWAITING_DOCUMENTS,
        ClaimState.DOCUMENTS_RECEIVED,
        ClaimState.INCOMPLETE,
    }
)
"""States in which arriving documents are decided on."""


@dataclass(frozen=True)
class DocumentEvidence:
    """One attachment as the pipeline judged and read it."""

    kind: DocumentKind
    fields: ReceiptFields | None
    """What extraction read (None: not read, e.g. refused or unreadable)."""
    refused: str | None
    """Why the attachment was refused (type, size ...); None when accepted."""
    sha256: str
    phash: int | None = None
    """64-bit perceptual hash of an image (duplicate receipts)."""
    filename: str = ""
    received_at: datetime | None = None
    """Set by `receive_documents`."""


@dataclass(frozen=True)
class Claim:
    """Snapshot of a claim. The database stores every field (claims columns + `facts`)."""

    code: str
    campaign_id: str
    email: str
    name: str
    model: str
    state: ClaimState
    registered_at: datetime
    updated_at: datetime
    language: str = "en"
    serial: str | None = None
    purchase_date: date | None = None
    retailer: str | None = None
    country: str | None = None
    price: Decimal | None = None
    currency: str | None = None
    company: bool = False
    """Registered as a company buyer."""
    first_campaign_mail_on: date | None = None
    """Date of the first campaign mail (promotions whose window counts from it)."""
    documents: tuple[DocumentEvidence, ...] = ()
    """Accepted documents only, in arrival order."""
    facts: tuple[tuple[str, str], ...] = ()
    """The facts the last decision used (model, purchase_date, retailer, vat_number ...)."""
    state_reasons: tuple[str, ...] = ()
    missing_documents: tuple[str, ...] = ()
    missing_fields: tuple[str, ...] = ()
    deadline_on: date | None = None
    """Last day to answer a missing-information mail (campaign time zone)."""
    deadline_at: datetime | None = None
    """The instant the claim becomes void (start of the day after deadline_on)."""
    deadline_set_at: datetime | None = None
    reminded_at: datetime | None = None
    validated_at: datetime | None = None
    approved_at: datetime | None = None
    paid_at: datetime | None = None
    payout_amount: Decimal | None = None
    payout_currency: str | None = None
    payment_reference: str | None = None
    corrections: tuple[tuple[str, str], ...] = ()
    """Field values an operator set by hand, kept beside `facts` (what was read)."""


def base_context(claim: Claim) -> dict[str, Any]:
    return {
        "code": claim.code,
        "name": claim.name,
        "model": claim.model,
        "language": claim.language,
    }
