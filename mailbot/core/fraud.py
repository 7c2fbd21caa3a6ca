"""Fraud and duplicate signals over claim snapshots: the same receipt on two claims, or
many claims from one sender. Pure: the caller passes the claims to compare with.

The same receipt is recognised by its bytes (sha256) or by what it says: the same
seller (VAT number, else retailer name) + receipt number + purchase date, all read
with confidence (`receipt_identity`), and the same total where both reads show one:
two receipts of one shop and day whose registers number alike are told apart by what
they cost, while a total not read (a crop, a blurred line) never hides a reused
receipt. A picture hash is NOT a signal:
`bench/duplicates.py` measured every candidate (9x8 and 17x16 dHash, 8x8 and 16x16
DCT hash) and each either joins different receipts of one shop's template or misses
re-photographed and cropped copies, often both; a false flag sends an honest
customer to review, so pictures decide nothing here.

Every signal names all the claims involved, the checked claim first. The checked
claim goes to review with the signals in its evidence (`with_evidence`); the other
claims named are dealt with by `apply_signals`: an earlier claim holding the same
receipt is never moved (it was decided on what it held; a later claim reusing its
receipt is the suspect one, and the earlier claim's next decision runs these checks
again), it only gets an event naming the later claim; many claims from one sender
put the sender's other undecided claims in review.

The pipeline, for a mail with documents:
    signals = fraud_signals(claim, others, campaign, incoming=documents)
    t = receive_documents(claim, campaign, documents, now,
                          review_reasons=[s.reason for s in signals])
    t = with_evidence(t, signals)         # names the other claims
    apply_signals(signals, others, now)   # notes on / review of the other claims
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from mailbot.core.campaign import Campaign, normalize_name
from mailbot.core.claim_machine import to_review
from mailbot.core.claim_state import DECIDABLE, Claim, ClaimState, DocumentEvidence
from mailbot.core.receipt_fields import DocumentKind, FieldValue, ReceiptFields
from mailbot.core.transition import Transition, make_transition

SIGNALS = (
    "duplicate_receipt_sha256",
    "duplicate_receipt_number",
    "many_claims_per_sender",
)
DUPLICATE_SIGNALS = frozenset({"duplicate_receipt_sha256", "duplicate_receipt_number"})

MIN_NUMBER_LENGTH = 4
"""A receipt number shorter than this (a register's daily counter: 12, 013) repeats too
often within one shop and day to identify a receipt."""


@dataclass(frozen=True)
class FraudSignal:
    reason: str
    codes: tuple[str, ...]
    """Every claim involved (registration codes), the checked claim first."""
    detail: str = ""
    """What matched (a hash prefix, the receipt's identity key, a count); no personal data."""

    def evidence(self) -> dict[str, object]:
        return {"reason": self.reason, "other_claims": list(self.codes[1:]), "detail": self.detail}


@dataclass(frozen=True)
class ReceiptIdentity:
    """What one receipt says that no other receipt says: its seller, number, date and,
    when read, its total."""

    number: str
    day: str
    vat: str | None
    retailer: str | None
    total: str | None = None
    """The total paid ("1299.00"), None when not read with confidence: a missing total
    compares with any, so it never makes a reused receipt look new."""

    @property
    def key(self) -> str:
        """Receipt number and date: the part every comparable identity shares, for a
        database look-up of candidates; `same_receipt` still compares the seller."""
        return f"{self.number}|{self.day}"


def _confident(fields: ReceiptFields, name: str, min_confidence: float) -> FieldValue | None:
    value = fields.get(name)
    return value if value is not None and value.confidence >= min_confidence else None


def receipt_identity(
    fields: ReceiptFields | None, min_confidence: float = 0.0
) -> ReceiptIdentity | None:
    """The identity of a receipt as read, or None when a part is missing or doubtful:
    without number, date and seller two receipts of one shop and day cannot be told
    apart. The total is optional: without it the identity is just less specific."""
    if fields is None or fields.document_kind != DocumentKind.RECEIPT:
        return None
    number = _confident(fields, "receipt_number", min_confidence)
    day = _confident(fields, "purchase_date", min_confidence)
    vat = _confident(fields, "vat_number", min_confidence)
    retailer = _confident(fields, "retailer", min_confidence)
    total = _confident(fields, "total", min_confidence)
    if number is None or day is None or (vat is None and retailer is None):
        return None
    folded = normalize_name(number.value).upper()
    if len(folded) < MIN_NUMBER_LENGTH:
        return None
    return ReceiptIdentity(
        number=folded,
        day=day.value,
        vat=normalize_name(vat.value).upper() if vat is not None else None,
        retailer=normalize_name(retailer.value) if retailer is not None else None,
        total=total.value if total is not None else None,
    )


def same_receipt(a: ReceiptIdentity, b: ReceiptIdentity) -> bool:
    """One receipt read twice: same number and date, and the same seller by VAT number
    when both show one (two shops of a chain can share numbering, never a VAT number),
    else by name. One read with only a VAT number and the other with only a name are
    not compared: nothing says they are the same seller. Totals read on both must be
    equal (one receipt has one total); a total read on one side only decides nothing."""
    if a.key != b.key:
        return False
    if a.total is not None and b.total is not None and a.total != b.total:
        return False
    if a.vat is not None and b.vat is not None:
        return a.vat == b.vat
    return a.retailer is not None and a.retailer == b.retailer


def _receipts(docs: Iterable[DocumentEvidence]) -> list[DocumentEvidence]:
    return [d for d in docs if d.kind == DocumentKind.RECEIPT and d.refused is None]


def _identities(docs: Iterable[DocumentEvidence], min_confidence: float) -> list[ReceiptIdentity]:
    found = (receipt_identity(d.fields, min_confidence) for d in docs)
    return [i for i in found if i is not None]


def duplicate_receipts(
    claim: Claim,
    others: Iterable[Claim],
    incoming: Sequence[DocumentEvidence] = (),
    *,
    min_confidence: float = 0.0,
) -> tuple[FraudSignal, ...]:
    """Signals for receipts of `claim` (and `incoming`, the documents of the mail being
    processed, not yet on the claim) that also appear on another claim: the same bytes,
    or the same identity (`same_receipt`) read with at least `min_confidence`."""
    mine = _receipts([*claim.documents, *incoming])
    my_ids = _identities(mine, min_confidence)
    out: list[FraudSignal] = []
    for other in others:
        if other.code == claim.code:
            continue
        theirs = _receipts(other.documents)
        shared = {d.sha256 for d in mine} & {d.sha256 for d in theirs}
        if shared:
            detail = min(shared)[:12]
            out.append(FraudSignal("duplicate_receipt_sha256", (claim.code, other.code), detail))
            continue
        their_ids = _identities(theirs, min_confidence)
        match = next((a for a in my_ids for b in their_ids if same_receipt(a, b)), None)
        if match is not None:
            out.append(FraudSignal("duplicate_receipt_number", (claim.code, other.code), match.key))
    return tuple(out)


def sender_volume(claim: Claim, others: Iterable[Claim], max_per_sender: int) -> FraudSignal | None:
    """More than `max_per_sender` claims from the claim's address in its campaign."""
    address = claim.email.strip().casefold()
    same = [
        o.code
        for o in others
        if o.code != claim.code
        and o.campaign_id == claim.campaign_id
        and o.email.strip().casefold() == address
    ]
    if len(same) + 1 <= max_per_sender:
        return None
    return FraudSignal(
        "many_claims_per_sender", (claim.code, *sorted(same)), f"count={len(same) + 1}"
    )


def fraud_signals(
    claim: Claim,
    others: Sequence[Claim],
    campaign: Campaign,
    incoming: Sequence[DocumentEvidence] = (),
) -> tuple[FraudSignal, ...]:
    """All signals for `claim` (with the documents arriving now) against the other claims
    (same campaign or not: a receipt used in two campaigns is just as suspicious)."""
    signals = list(
        duplicate_receipts(claim, others, incoming, min_confidence=campaign.min_confidence)
    )
    volume = sender_volume(claim, others, campaign.fraud.max_claims_per_sender)
    if volume is not None:
        signals.append(volume)
    return tuple(signals)


def with_evidence(t: Transition[Claim], signals: Sequence[FraudSignal]) -> Transition[Claim]:
    """The checked claim's transition with the signals in its evidence, each naming the
    other claims (their codes), so the person reviewing sees which claim to compare."""
    if not signals:
        return t
    return replace(t, evidence={**t.evidence, "fraud": [s.evidence() for s in signals]})


def apply_signals(
    signals: Iterable[FraudSignal], claims: Sequence[Claim], now: datetime
) -> list[Transition[Claim]]:
    """What the signals on a checked claim (each signal's first code) do to the other
    claims they name, one transition per claim.

    A duplicate receipt never moves the other claim: it gets a `claim.fraud_note`
    event naming the checked claim, state unchanged, no reply. Many claims per sender
    put the sender's other claims that are still undecided (`DECIDABLE`) in review
    (no reply; a claim already in review for it produces nothing); the sender's decided
    claims get the note too."""
    by_code = {c.code: c for c in claims}
    notes: dict[str, list[FraudSignal]] = {}
    for s in signals:
        for code in s.codes[1:]:
            notes.setdefault(code, []).append(s)
    out: list[Transition[Claim]] = []
    for code, found in notes.items():
        claim = by_code.get(code)
        if claim is None:
            continue
        review = [
            s.reason
            for s in found
            if s.reason not in DUPLICATE_SIGNALS
            and (claim.state in DECIDABLE or claim.state is ClaimState.REVIEW)
        ]
        new_review = [r for r in dict.fromkeys(review) if r not in claim.state_reasons]
        if new_review:
            t = to_review(claim, new_review, now)
            out.append(with_evidence(t, [_seen_from(s, code) for s in found]))
            continue
        seen = [s for s in found if s.reason not in review]
        if seen:
            reasons = tuple(dict.fromkeys(s.reason for s in seen))
            evidence = {
                "state": claim.state.value,
                "fraud": [_seen_from(s, code).evidence() for s in seen],
            }
            out.append(
                make_transition(
                    claim, claim, "claim.fraud_note", now, reasons, evidence, changed=False
                )
            )
    return out


def _seen_from(s: FraudSignal, code: str) -> FraudSignal:
    """The signal as the claim `code` sees it: itself first, then the others."""
    return replace(s, codes=(code, *(c for c in s.codes if c != code)))
