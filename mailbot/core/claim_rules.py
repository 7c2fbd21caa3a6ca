"""The campaign checks: given a claim's registered facts and its documents, decide
validated / incomplete / rejected / review, with reason codes and the facts used.

The checks are a table (`CHECKS`): each is one small pure function over a `Case`
(the claim, the campaign, `now`, and the receipt values merged once) that yields the
reason codes it finds, declares the codes it can give and the kind of finding it
makes. `decide` runs them all and keeps only the precedence between kinds, which is
the policy: a rule that fails for good rejects (no point asking for a VAT number on a
receipt from outside the window); a conflict or a fraud signal goes to a human before
we ask the customer anything; then missing documents or fields make the claim
incomplete; values read with low confidence go to review; only a claim that passes
everything is validated. Within a kind, reasons are listed in table order (the
rejection mail lists them so). A fact in conflict (registered date differs from the
confident receipt date) is not used to reject, and a rejection rests only on facts
read with the campaign's confidence (a company buyer read with less is reviewed).
Several documents of one purchase (a photo, then the shop's PDF) complete each other:
each field takes its best reading, and they conflict only when two confident readings
name another day, shop or product (`CONFLICT_FIELDS`).

A reason is a code, or `code:detail` for checks that name a field or a document
(`missing_field:vat_number`); `Check.reasons` declares the codes.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from difflib import SequenceMatcher
from typing import TYPE_CHECKING, Any, Literal

from mailbot.core.campaign import Campaign, NamedItem, normalize_name
from mailbot.core.receipt_fields import DocumentKind, FieldValue

if TYPE_CHECKING:
    from mailbot.core.claim_state import Claim

Outcome = Literal["validated", "incomplete", "rejected", "review"]
Kind = Literal["reject", "review", "incomplete", "unsure"]
"""What a check's findings do: reject for good; review by a human; incomplete (ask the
customer); unsure (values read with low confidence: review, but only when nothing is
missing, since asking the customer comes first)."""

PRECEDENCE: tuple[Kind, ...] = ("reject", "review", "incomplete", "unsure")
_OUTCOME: dict[Kind, Outcome] = {
    "reject": "rejected",
    "review": "review",
    "incomplete": "incomplete",
    "unsure": "review",
}
_FACT_FIELDS = ("retailer", "purchase_date", "product", "vat_number", "receipt_number")
CONFLICT_FIELDS = ("retailer", "purchase_date", "product", "vat_number")
"""Facts two documents of one purchase cannot disagree on: another day, another shop
(its name or its VAT number), another product. A receipt number is not one: a photo
of the till receipt and the shop's PDF invoice carry different numbers, or one none."""
SAME_NAME_RATIO = 0.85
"""difflib ratio from which two readings of a shop's name are one name with an OCR
slip ("Hansen Lyd AS" / "Hansen Lvd AS"); stdlib, as the core takes no I/O library
and this one comparison needs no more."""


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    reasons: tuple[str, ...]
    missing_documents: tuple[str, ...] = ()
    missing_fields: tuple[str, ...] = ()
    facts: dict[str, str] = field(default_factory=dict)
    """The facts the decision used (model, purchase_date, retailer, vat_number ...)."""
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Case:
    """What the checks look at: the claim, the terms, `now`, and the receipt fields merged
    over all receipts received so far (read once, shared by every check)."""

    claim: Claim
    campaign: Campaign
    now: datetime
    confident: Mapping[str, str]
    """Receipt field -> the best value, read with at least the campaign's confidence."""
    low: tuple[str, ...]
    """Receipt fields whose best value was read with too little confidence."""
    conflicts: tuple[str, ...]
    """Receipt fields with two confident, different values (two different receipts)."""
    missing_documents: tuple[str, ...]
    missing_fields: tuple[str, ...]
    evidence: Mapping[str, Any]
    """`receipt.<field>`: the best value and its confidence, per field read."""
    buyer_company: FieldValue | None = None
    """The company a receipt names as its buyer (best read over all receipts)."""


@dataclass(frozen=True)
class Check:
    """One campaign check: `run` yields reason codes (or `code:detail`) from `reasons`."""

    name: str
    kind: Kind
    reasons: tuple[str, ...]
    run: Callable[[Case], Iterable[str]]


def _best(values: Sequence[FieldValue]) -> FieldValue | None:
    return max(values, key=lambda v: v.confidence) if values else None


def _parse_date(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def read_case(claim: Claim, campaign: Campaign, now: datetime) -> Case:
    """Merge the receipts' fields and list what is missing (no decision yet)."""
    conf = campaign.min_confidence
    present = {d.kind for d in claim.documents}
    receipts = [d.fields for d in claim.documents if d.kind == DocumentKind.RECEIPT and d.fields]
    confident: dict[str, str] = {}
    low: list[str] = []
    conflicts: list[str] = []
    evidence: dict[str, Any] = {}
    for name in _FACT_FIELDS:
        values = [v for r in receipts if (v := r.get(name)) is not None]
        sure = [v.value for v in values if v.confidence >= conf]
        if name in CONFLICT_FIELDS and _contradict(name, sure, campaign):
            conflicts.append(name)
        best = _best(values)
        if best is None:
            continue
        evidence[f"receipt.{name}"] = {"value": best.value, "confidence": best.confidence}
        if best.confidence >= conf:
            confident[name] = best.value
        else:
            low.append(name)
    buyer = _best([v for r in receipts if (v := r.get("buyer_company")) is not None])
    if buyer is not None:
        evidence["receipt.buyer_company"] = {"value": buyer.value, "confidence": buyer.confidence}
    missing_fields: tuple[str, ...] = ()
    # Fields are asked for only once a receipt came; before that the receipt itself is.
    if receipts or DocumentKind.RECEIPT in present:
        missing_fields = tuple(
            f for f in campaign.required_fields if f not in confident and f not in low
        )
    return Case(
        claim=claim,
        campaign=campaign,
        now=now,
        confident=confident,
        low=tuple(low),
        buyer_company=buyer,
        conflicts=tuple(conflicts),
        missing_documents=tuple(k for k in campaign.required_documents if k not in present),
        missing_fields=missing_fields,
        evidence=evidence,
    )


def _same(name: str, a: str, b: str, campaign: Campaign) -> bool:
    """Whether two confident readings of a field from two documents name one thing."""
    if name == "purchase_date":
        return a == b
    if name == "vat_number":
        return re.sub(r"\D", "", a) == re.sub(r"\D", "", b)
    if name == "product":
        known = campaign.model(a), campaign.model(b)
        if known[0] is not None or known[1] is not None:
            return known[0] == known[1]
    if name == "retailer":
        known = campaign.retailer(a), campaign.retailer(b)
        if known[0] is not None and known[1] is not None:
            return known[0] == known[1]
        # The brand on one document, the legal name on the other ("Hansen Lyd" /
        # "Hansen Lyd AS"), or a letter OCR misread.
        x, y = sorted((_folded(a), _folded(b)), key=len)
        if x and y.startswith(x):
            return True
        return SequenceMatcher(None, x, y).ratio() >= SAME_NAME_RATIO
    return normalize_name(a) == normalize_name(b)


def _folded(name: str) -> str:
    """`normalize_name` with Nordic letters as OCR and keyboards without them write
    them (Elkjøp / Elkjop, Gävle / Gavle)."""
    text = unicodedata.normalize("NFKD", name.casefold().translate(_NORDIC))
    return normalize_name("".join(ch for ch in text if not unicodedata.combining(ch)))


_NORDIC = str.maketrans({"ø": "o", "æ": "ae", "ß": "ss", "đ": "d", "ł": "l"})


def _contradict(name: str, values: Sequence[str], campaign: Campaign) -> bool:
    return any(
        not _same(name, a, b, campaign) for i, a in enumerate(values) for b in values[i + 1 :]
    )


# The facts the checks reason about, resolved from the registration and the receipts.


def _receipt_date(case: Case) -> date | None:
    text = case.confident.get("purchase_date")
    return _parse_date(text) if text is not None else None


def _purchase_date(case: Case) -> date | None:
    """The receipt's date when confident and readable; the registered one otherwise;
    None when the two differ (a fact in conflict is not used to reject)."""
    registered = case.claim.purchase_date
    on_receipt = _receipt_date(case)
    if on_receipt is None:
        return registered
    if registered is not None and registered != on_receipt:
        return None
    return on_receipt


def _model(case: Case) -> NamedItem | None:
    """The eligible model: the registered one, or the receipt's when none was registered."""
    if case.claim.model:
        return case.campaign.model(case.claim.model)
    return case.campaign.model(case.confident.get("product"))


def _retailer_text(case: Case) -> str | None:
    return case.confident.get("retailer") or case.claim.retailer


def _retailers_differ(case: Case) -> bool:
    c, claim, campaign = case.confident, case.claim, case.campaign
    return bool(
        campaign.retailers
        and claim.retailer
        and "retailer" in c
        and campaign.retailer(claim.retailer) != campaign.retailer(c["retailer"])
    )


def _authorized_retailer(case: Case) -> NamedItem | None:
    """The campaign's retailer the claim names; on a conflict, the receipt's."""
    text = case.confident["retailer"] if _retailers_differ(case) else _retailer_text(case)
    return case.campaign.retailer(text)


def _label_serial(case: Case) -> str | None:
    """The serial read with confidence from any document (the label photo)."""
    serials = [
        v
        for d in case.claim.documents
        if d.fields and (v := d.fields.get("serial_number")) is not None
    ]
    best = _best(serials)
    return (
        best.value if best is not None and best.confidence >= case.campaign.min_confidence else None
    )


def _facts(case: Case) -> dict[str, str]:
    """The facts a decision used, as the snapshot and the event record them."""
    out: dict[str, str] = {}
    purchase = _purchase_date(case)
    if purchase is not None:
        out["purchase_date"] = purchase.isoformat()
    eligible = _model(case)
    if eligible is not None:
        out["model"] = eligible.name
    retailer = _retailer_text(case)
    if retailer:
        known = _authorized_retailer(case) if case.campaign.retailers else None
        out["retailer"] = known.name if known is not None else retailer
    for name in ("vat_number", "receipt_number"):
        if name in case.confident:
            out[name] = case.confident[name]
    buyer = case.buyer_company
    if buyer is not None and buyer.confidence >= case.campaign.min_confidence:
        out["buyer_company"] = buyer.value
    serial = _label_serial(case)
    if serial is not None:
        out["serial"] = serial
    return out


# The checks. Each yields the codes it finds; the table below declares them.


def receipts_agree(case: Case) -> Iterator[str]:
    for name in case.conflicts:
        yield f"receipt_conflict:{name}"


def purchase_date_matches(case: Case) -> Iterator[str]:
    text = case.confident.get("purchase_date")
    if text is None:
        return
    on_receipt = _parse_date(text)
    registered = case.claim.purchase_date
    if on_receipt is None:
        yield "bad_purchase_date"
    elif registered is not None and registered != on_receipt:
        yield "purchase_date_mismatch"


def purchase_in_window(case: Case) -> Iterator[str]:
    purchase, c = _purchase_date(case), case.campaign
    if purchase is None:
        return
    if (c.purchase_start and purchase < c.purchase_start) or (
        c.purchase_end and purchase > c.purchase_end
    ):
        yield "purchase_outside_window"


def model_eligible(case: Case) -> Iterator[str]:
    # A registered model is checked even when the receipt names another (that is
    # model_matches' finding); without one, the receipt's model must be eligible.
    if (case.claim.model or "product" in case.confident) and _model(case) is None:
        yield "model_not_eligible"


def model_matches(case: Case) -> Iterator[str]:
    registered = _model(case) if case.claim.model else None
    if registered is None or "product" not in case.confident:
        return
    if case.campaign.model(case.confident["product"]) != registered:
        yield "model_mismatch"


def retailer_matches(case: Case) -> Iterator[str]:
    if _retailers_differ(case):
        yield "retailer_mismatch"


def retailer_authorized(case: Case) -> Iterator[str]:
    """A rejection rests on a confident retailer only: one read below the campaign's
    confidence is never refused here (`fields_confident` hands it to a person), nor is
    the registered retailer while the receipt's own, unsure read may be another one."""
    # Only checked against a list when the campaign has one.
    if not case.campaign.retailers or not _retailer_text(case):
        return
    if "retailer" not in case.confident and "retailer" in case.low:
        return
    if _authorized_retailer(case) is None:
        yield "retailer_not_authorized"


def serial_matches(case: Case) -> Iterator[str]:
    serial, registered = _label_serial(case), case.claim.serial
    if serial is not None and registered and normalize_name(registered) != normalize_name(serial):
        yield "serial_mismatch"


def claimed_in_window(case: Case) -> Iterator[str]:
    """The registration day against purchase date + waiting days and the last day."""
    c = case.campaign
    claim_day = c.local_date(case.claim.registered_at)
    purchase = _purchase_date(case)
    opens = timedelta(days=c.claim_window.opens_after_purchase_days)
    if purchase is not None and claim_day < purchase + opens:
        yield "claimed_too_early"
    last = c.claim_window.last_day()
    if last is not None and claim_day > last:
        yield "claimed_too_late"


def first_mail_known(case: Case) -> Iterator[str]:
    window, first = case.campaign.claim_window, case.claim.first_campaign_mail_on
    if window.weeks_after_first_mail is not None and first is None:
        yield "first_mail_unknown"


def claimed_after_first_mail(case: Case) -> Iterator[str]:
    """For windows counted from the first campaign mail, the claim is made the day its
    documents first arrived ("begäran och stöddokument"), not before registration."""
    claim, c = case.claim, case.campaign
    weeks, first = c.claim_window.weeks_after_first_mail, claim.first_campaign_mail_on
    if weeks is None or first is None:
        return
    arrived = [d.received_at for d in claim.documents if d.received_at is not None]
    made = max(claim.registered_at, min(arrived) if arrived else case.now)
    if c.local_date(made) > first + timedelta(weeks=weeks):
        yield "claimed_too_late"


def _company_on_receipt(case: Case) -> FieldValue | None:
    buyer = case.buyer_company
    return None if case.campaign.companies_allowed else buyer


def private_buyer(case: Case) -> Iterator[str]:
    """Registered as a company, or a receipt names a company as the buyer with the
    campaign's confidence; a rejection rests on nothing less."""
    if case.campaign.companies_allowed:
        return
    buyer = _company_on_receipt(case)
    if case.claim.company or (
        buyer is not None and buyer.confidence >= case.campaign.min_confidence
    ):
        yield "company_buyer"


def buyer_unsure(case: Case) -> Iterator[str]:
    """A receipt may name a company as the buyer, read with too little confidence to
    refuse on: a person looks."""
    buyer = _company_on_receipt(case)
    if (
        buyer is not None
        and not case.claim.company
        and buyer.confidence < case.campaign.min_confidence
    ):
        yield "possible_company_buyer"


def country_participates(case: Case) -> Iterator[str]:
    country, allowed = case.claim.country, case.campaign.countries
    if country and allowed and country.upper() not in allowed:
        yield "country_not_participating"


def documents_present(case: Case) -> Iterator[str]:
    for kind in case.missing_documents:
        yield f"missing_document:{kind}"


def fields_present(case: Case) -> Iterator[str]:
    for name in case.missing_fields:
        yield f"missing_field:{name}"


def fields_confident(case: Case) -> Iterator[str]:
    for name in case.low:
        yield f"low_confidence:{name}"


CHECKS: tuple[Check, ...] = (
    Check("receipts_agree", "review", ("receipt_conflict",), receipts_agree),
    Check(
        "purchase_date_matches",
        "review",
        ("bad_purchase_date", "purchase_date_mismatch"),
        purchase_date_matches,
    ),
    Check("purchase_in_window", "reject", ("purchase_outside_window",), purchase_in_window),
    Check("model_eligible", "reject", ("model_not_eligible",), model_eligible),
    Check("model_matches", "review", ("model_mismatch",), model_matches),
    Check("retailer_matches", "review", ("retailer_mismatch",), retailer_matches),
    Check("retailer_authorized", "reject", ("retailer_not_authorized",), retailer_authorized),
    Check("serial_matches", "review", ("serial_mismatch",), serial_matches),
    Check(
        "claimed_in_window", "reject", ("claimed_too_early", "claimed_too_late"), claimed_in_window
    ),
    Check("first_mail_known", "review", ("first_mail_unknown",), first_mail_known),
    Check("claimed_after_first_mail", "reject", ("claimed_too_late",), claimed_after_first_mail),
    Check("private_buyer", "reject", ("company_buyer",), private_buyer),
    Check("country_participates", "reject", ("country_not_participating",), country_participates),
    Check("documents_present", "incomplete", ("missing_document",), documents_present),
    Check("fields_present", "incomplete", ("missing_field",), fields_present),
    Check("fields_confident", "unsure", ("low_confidence",), fields_confident),
    Check("buyer_unsure", "unsure", ("possible_company_buyer",), buyer_unsure),
)
"""The campaign checks in the order their reasons are listed (precedence is by kind)."""


def reasons_of(*kinds: Kind) -> tuple[str, ...]:
    """The codes the checks of these kinds can give, in table order, each once."""
    return tuple(dict.fromkeys(r for c in CHECKS if c.kind in kinds for r in c.reasons))


REJECTION_REASONS = reasons_of("reject")
"""Codes a rejection mail explains (each needs words in every language's `_words.j2`)."""
REVIEW_REASONS = reasons_of("review", "unsure")
INCOMPLETE_REASONS = reasons_of("incomplete")
REASONS = reasons_of(*PRECEDENCE)
VALIDATED_REASON = "all_checks_passed"


def decide(
    claim: Claim, campaign: Campaign, now: datetime, extra_review: Sequence[str] = ()
) -> Decision:
    """Decide a claim on everything it holds. `extra_review` are reasons found elsewhere
    (fraud signals) that send the claim to review unless a rule rejects it for good."""
    case = read_case(claim, campaign, now)
    found: dict[Kind, list[str]] = {kind: [] for kind in PRECEDENCE}
    found["review"].extend(extra_review)
    for check in CHECKS:
        found[check.kind].extend(check.run(case))
    used = _facts(case)
    evidence = {**case.evidence, "facts": dict(used)}
    for kind in PRECEDENCE:
        if found[kind]:
            reasons = tuple(dict.fromkeys(found[kind]))
            missing = kind == "incomplete"
            return Decision(
                _OUTCOME[kind],
                reasons,
                missing_documents=case.missing_documents if missing else (),
                missing_fields=case.missing_fields if missing else (),
                facts=used,
                evidence=evidence,
            )
    return Decision("validated", (VALIDATED_REASON,), facts=used, evidence=evidence)
