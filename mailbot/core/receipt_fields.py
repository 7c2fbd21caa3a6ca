"""What a document says about a purchase: the four fields of a valid proof of purchase.

Produced by `parsers.receipt.fields.extract_fields`; consumed by the claim rules
(`mailbot.core.claim_machine`) and printed by `mailbot extract`. A field that could not
be read with enough confidence is None ("abstain rather than guess").
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class DocumentKind(StrEnum):
    RECEIPT = "receipt"
    SERIAL_PHOTO = "serial_photo"
    OTHER = "other"


RECEIPT_FIELDS = ("retailer", "purchase_date", "product", "vat_number")
"""The fields a proof of purchase must show (cashback FAQ, question 4)."""


@dataclass(frozen=True)
class FieldValue:
    value: str
    """Normalised: purchase_date as YYYY-MM-DD, vat_number without country prefix/suffix,
    product as the campaign's model name, retailer as the canonical name, total as a
    decimal with two decimals ("1299.00")."""
    confidence: float
    """0..1; below the rules' threshold the extractor abstains instead of reporting."""
    evidence: str
    """The text line the value came from."""
    rule: str
    """Which rule fired (for `mailbot rules test`)."""
    country: str | None = None
    """ISO country code, for vat_number."""
    currency: str | None = None
    """ISO currency code, for total, when the total's line prints one."""


@dataclass(frozen=True)
class ReceiptFields:
    document_kind: DocumentKind
    retailer: FieldValue | None = None
    purchase_date: FieldValue | None = None
    product: FieldValue | None = None
    vat_number: FieldValue | None = None
    serial_number: FieldValue | None = None
    """On a serial-number photo: the serial read from the label."""
    receipt_number: FieldValue | None = None
    """The receipt/transaction number when printed (used to spot duplicate receipts)."""
    buyer_company: FieldValue | None = None
    """A company named as the buyer (an invoice's buyer block: a legal-form name or an
    organisation number other than the seller's); value the name, else the number."""
    total: FieldValue | None = None
    """The total paid when a total label prints it, as "1299.00" (with `currency`);
    never required, it tells receipts of one shop, day and number apart."""

    def get(self, name: str) -> FieldValue | None:
        value = getattr(self, name)
        return value if isinstance(value, FieldValue) else None

    def missing(self, required: tuple[str, ...] = RECEIPT_FIELDS) -> tuple[str, ...]:
        return tuple(name for name in required if self.get(name) is None)
