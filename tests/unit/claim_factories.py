"""Builders shared by the claim, fraud, deadline and matching tests: campaigns from the
shipped rules, receipts with chosen confidences, fixed clocks in the campaigns' time
zones, parsed inbound mails."""

from __future__ import annotations

from datetime import UTC, date, datetime
from functools import cache
from typing import Any

from mailbot.core.campaign import Campaign, ReturnsPolicy
from mailbot.core.claim_machine import Claim, DocumentEvidence, register
from mailbot.core.mail import AuthResult, InboundEmail
from mailbot.core.receipt_fields import DocumentKind, FieldValue, ReceiptFields
from mailbot.core.rma_machine import Rma, issue
from mailbot.ruleset.campaigns import load_campaigns, load_returns_policy


@cache
def cashback() -> Campaign:
    return load_campaigns()["cashback-2022"]


@cache
def promo() -> Campaign:
    return load_campaigns()["promo-20pct"]


@cache
def returns() -> ReturnsPolicy:
    return load_returns_policy()


def utc(text: str) -> datetime:
    """'2023-01-10 12:00' in UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def inbound_mail(
    subject: str,
    body: str,
    *,
    sender: str | None = "kari@example.no",
    sender_name: str | None = None,
    to: str = "claims@example.com",
    message_id: str = "<x@mail.example.no>",
    in_reply_to: tuple[str, ...] = (),
    references: tuple[str, ...] = (),
    text: str | None = None,
    auth: tuple[AuthResult, ...] = (),
) -> InboundEmail:
    """A parsed mail without attachments; `body` is what the sender wrote now, `text`
    (when given) the whole text with what it quotes."""
    return InboundEmail(
        message_id=message_id,
        in_reply_to=in_reply_to,
        references=references,
        from_address=sender,
        from_name=sender_name,
        to=(to,),
        subject=subject,
        date=None,
        text=text if text is not None else body,
        new_text=body,
        attachments=(),
        headers=(),
        auth_results=auth,
    )


def fv(value: str, confidence: float = 0.95) -> FieldValue:
    return FieldValue(value=value, confidence=confidence, evidence=value, rule="test")


def receipt(
    sha: str = "r1",
    *,
    retailer: str | None = "Elkjøp",
    purchase_date: str | None = "2022-12-01",
    product: str | None = "WH-1000XM5",
    vat_number: str | None = "NO123456785",
    receipt_number: str | None = None,
    confidence: float = 0.95,
    low: tuple[str, ...] = (),
    phash: int | None = None,
    filename: str = "kvittering.pdf",
) -> DocumentEvidence:
    values: dict[str, Any] = {
        "retailer": retailer,
        "purchase_date": purchase_date,
        "product": product,
        "vat_number": vat_number,
        "receipt_number": receipt_number,
    }
    fields = {k: fv(v, 0.5 if k in low else confidence) for k, v in values.items() if v is not None}
    return DocumentEvidence(
        kind=DocumentKind.RECEIPT,
        fields=ReceiptFields(DocumentKind.RECEIPT, **fields),
        refused=None,
        sha256=sha,
        phash=phash,
        filename=filename,
    )


def unread_photo(sha: str = "s1") -> DocumentEvidence:
    """A serial photo of which nothing could be read (no fields at all)."""
    return DocumentEvidence(DocumentKind.SERIAL_PHOTO, None, None, sha, filename="serial.jpg")


def serial_photo(sha: str = "s1", serial: str | None = None) -> DocumentEvidence:
    fields = ReceiptFields(
        DocumentKind.SERIAL_PHOTO, serial_number=fv(serial) if serial is not None else None
    )
    return DocumentEvidence(DocumentKind.SERIAL_PHOTO, fields, None, sha, filename="serial.jpg")


def refused(filename: str, reason: str = "file_type", sha: str = "x") -> DocumentEvidence:
    return DocumentEvidence(DocumentKind.OTHER, None, reason, sha + filename, filename=filename)


def issued_rma(
    now: datetime,
    *,
    number: str = "1234567",
    advance: bool = False,
    email: str = "o@e.no",
    product: str = "Sub",
) -> Rma:
    """An RMA as issued at `now` under the shipped returns policy."""
    return issue(
        number=number,
        email=email,
        product=product,
        policy=returns(),
        now=now,
        advance_replacement=advance,
    ).snapshot


def new_claim(
    campaign: Campaign | None = None,
    now: datetime | None = None,
    code: str = "12345678",
    email: str = "kari@example.no",
    **kw: Any,
) -> Claim:
    c = campaign or cashback()
    if c.id == "cashback-2022":
        kw.setdefault("model", "WH-1000XM5")
        kw.setdefault("purchase_date", date(2022, 12, 1))
    else:
        kw.setdefault("model", "Play:5")
        kw.setdefault("currency", "SEK")
        kw.setdefault("first_campaign_mail_on", date(2018, 4, 2))
        kw.setdefault("country", "SE")
    t = register(
        code=code,
        campaign=c,
        email=email,
        name="Kari Nordmann",
        now=now or utc("2023-01-10 12:00"),
        **kw,
    )
    return t.snapshot


def promo_receipt(sha: str = "p1", **kw: Any) -> DocumentEvidence:
    kw.setdefault("retailer", "Elgiganten")
    kw.setdefault("purchase_date", "2018-04-20")
    kw.setdefault("product", "Play:5")
    kw.setdefault("vat_number", None)
    return receipt(sha, **kw)
