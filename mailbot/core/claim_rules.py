"""The campaign checks: given a claim's registered facts and its documents, decide
validated / incomplete / rejected / review, with reason codes and the facts used.

Order matters and is the policy: a rule that fails for good rejects (no point asking
for a VAT number on a receipt from outside the window); a conflict or a fraud signal
goes to a human before we ask the customer anything; then missing documents or
fields make the claim incomplete; values read with low confidence go to review;
only a claim that passes everything is validated. A fact in conflict (registered
date differs from the confident receipt date) is not used to reject.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from mailbot.core.campaign import Campaign, normalize_name
from mailbot.core.receipt import DocumentKind, FieldValue

if TYPE_CHECKING:
    from mailbot.core.claim_state import Claim

Outcome = Literal["validated", "incomplete", "rejected", "review"]

REJECTION_REASONS = (
    "purchase_outside_window",
    "model_not_eligible",
    "claimed_too_early",
    "claimed_too_late",
    "company_buyer",
    "retailer_not_authorized",
    "country_not_participating",
)
REVIEW_REASONS = (
    "purchase_date_mismatch",
    "model_mismatch",
    "retailer_mismatch",
    "serial_mismatch",
    "receipt_conflict",
    "low_confidence",
    "bad_purchase_date",
    "first_mail_unknown",
)
_FACT_FIELDS = ("retailer", "purchase_date", "product", "vat_number", "receipt_number")


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    reasons: tuple[str, ...]
    missing_documents: tuple[str, ...] = ()
    missing_fields: tuple[str, ...] = ()
    facts: dict[str, str] = field(default_factory=dict)
    """The facts the decision used (model, purchase_date, retailer, vat_number ...)."""
    evidence: dict[str, Any] = field(default_factory=dict)


def _best(values: Sequence[FieldValue]) -> FieldValue | None:
    return max(values, key=lambda v: v.confidence) if values else None


def _parse_date(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def decide(
    claim: Claim, campaign: Campaign, now: datetime, extra_review: Sequence[str] = ()
) -> Decision:
    """Decide a claim on everything it holds. `extra_review` are reasons found elsewhere
    (fraud signals) that send the claim to review unless a rule rejects it for good."""
    reject: list[str] = []
    review: list[str] = list(extra_review)
    low: list[str] = []
    facts: dict[str, str] = {}
    evidence: dict[str, Any] = {}
    conf = campaign.min_confidence

    docs = claim.documents
    present = {d.kind for d in docs}
    missing_docs = tuple(k for k in campaign.required_documents if k not in present)

    # Merge receipt fields over all receipts received so far; two confident, different
    # values for one field mean two different receipts: a human decides.
    receipts = [d.fields for d in docs if d.kind == DocumentKind.RECEIPT and d.fields]
    confident: dict[str, str] = {}
    for name in _FACT_FIELDS:
        values = [v for r in receipts if (v := r.get(name)) is not None]
        sure = {normalize_name(v.value): v.value for v in values if v.confidence >= conf}
        if len(sure) > 1:
            review.append(f"receipt_conflict:{name}")
        best = _best(values)
        if best is None:
            continue
        evidence[f"receipt.{name}"] = {"value": best.value, "confidence": best.confidence}
        if best.confidence >= conf:
            confident[name] = best.value
        else:
            low.append(name)
    missing_fields: tuple[str, ...] = ()
    if receipts or DocumentKind.RECEIPT in present:
        missing_fields = tuple(
            f for f in campaign.required_fields if f not in confident and f not in low
        )

    # Purchase date: the receipt wins when confident; a different registered date is a conflict.
    purchase: date | None = claim.purchase_date
    if "purchase_date" in confident:
        on_receipt = _parse_date(confident["purchase_date"])
        if on_receipt is None:
            review.append("bad_purchase_date")
        elif claim.purchase_date is not None and claim.purchase_date != on_receipt:
            review.append("purchase_date_mismatch")
            purchase = None
        else:
            purchase = on_receipt
    if purchase is not None:
        facts["purchase_date"] = purchase.isoformat()
        if (campaign.purchase_start and purchase < campaign.purchase_start) or (
            campaign.purchase_end and purchase > campaign.purchase_end
        ):
            reject.append("purchase_outside_window")

    # Model: what was registered must be eligible; the receipt must show the same model.
    registered = campaign.model(claim.model) if claim.model else None
    if claim.model and registered is None:
        reject.append("model_not_eligible")
    model = registered
    if "product" in confident:
        on_receipt_model = campaign.model(confident["product"])
        if claim.model and on_receipt_model != registered:
            if registered is not None:
                review.append("model_mismatch")
        elif not claim.model and on_receipt_model is None:
            reject.append("model_not_eligible")
        else:
            model = on_receipt_model
    if model is not None:
        facts["model"] = model.name

    # Retailer: only checked against a list when the campaign has one.
    retailer = confident.get("retailer") or claim.retailer
    if retailer:
        facts["retailer"] = retailer
    if campaign.retailers and retailer:
        known = campaign.retailer(retailer)
        on_receipt_retailer = campaign.retailer(confident.get("retailer"))
        if (
            claim.retailer
            and "retailer" in confident
            and (campaign.retailer(claim.retailer) != on_receipt_retailer)
        ):
            review.append("retailer_mismatch")
            known = on_receipt_retailer
        if known is None:
            reject.append("retailer_not_authorized")
        else:
            facts["retailer"] = known.name
    for name in ("vat_number", "receipt_number"):
        if name in confident:
            facts[name] = confident[name]

    # The serial on the label must be the registered one.
    serials = [v for d in docs if d.fields and (v := d.fields.get("serial_number")) is not None]
    best_serial = _best(serials)
    if best_serial is not None and best_serial.confidence >= conf:
        facts["serial"] = best_serial.value
        if claim.serial and normalize_name(claim.serial) != normalize_name(best_serial.value):
            review.append("serial_mismatch")

    # When the claim was made: registration day, or for windows counted from the first
    # campaign mail, the day its documents first arrived ("begäran och stöddokument").
    claim_day = campaign.local_date(claim.registered_at)
    window = campaign.claim_window
    if purchase is not None and claim_day < purchase + timedelta(
        days=window.opens_after_purchase_days
    ):
        reject.append("claimed_too_early")
    last = window.last_day()
    if last is not None and claim_day > last:
        reject.append("claimed_too_late")
    if window.weeks_after_first_mail is not None:
        if claim.first_campaign_mail_on is None:
            review.append("first_mail_unknown")
        else:
            arrived = [d.received_at for d in docs if d.received_at is not None]
            made = max([claim.registered_at, *([min(arrived)] if arrived else [now])])
            limit = claim.first_campaign_mail_on + timedelta(weeks=window.weeks_after_first_mail)
            if campaign.local_date(made) > limit:
                reject.append("claimed_too_late")

    if claim.company and not campaign.companies_allowed:
        reject.append("company_buyer")
    if claim.country and campaign.countries and claim.country.upper() not in campaign.countries:
        reject.append("country_not_participating")

    evidence["facts"] = dict(facts)
    if reject:
        return Decision("rejected", tuple(dict.fromkeys(reject)), facts=facts, evidence=evidence)
    if review:
        return Decision("review", tuple(dict.fromkeys(review)), facts=facts, evidence=evidence)
    if missing_docs or missing_fields:
        reasons = tuple(f"missing_document:{d}" for d in missing_docs) + tuple(
            f"missing_field:{f}" for f in missing_fields
        )
        return Decision("incomplete", reasons, missing_docs, missing_fields, facts, evidence)
    if low:
        return Decision(
            "review", tuple(f"low_confidence:{f}" for f in low), facts=facts, evidence=evidence
        )
    return Decision("validated", ("all_checks_passed",), facts=facts, evidence=evidence)
