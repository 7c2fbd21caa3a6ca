"""Fraud and duplicate signals over claim snapshots: the same receipt on two claims, or
many claims from one sender. Pure: the caller passes the claims to compare with.

The same receipt is recognised by its bytes (sha256), by its picture (64-bit
perceptual hashes, supplied by the caller as ints, within a Hamming distance), or
by what it says (same retailer + purchase date + receipt number). Every signal
names all the claims involved; `apply_signals` puts each open one in review
(`claims.to_review`, which never replies: a suspect is not told).

The pipeline, for a mail with documents:
    signals = fraud_signals(claim, others, campaign, incoming=documents)
    t = receive_documents(claim, campaign, documents, now,
                          review_reasons=[s.reason for s in signals])
    apply_signals(signals, others, now)   # the other claims named, to review
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from mailbot.core.campaign import Campaign, normalize_name
from mailbot.core.claim_state import Claim, DocumentEvidence
from mailbot.core.claims import to_review
from mailbot.core.receipt import DocumentKind
from mailbot.core.transition import Transition

SIGNALS = (
    "duplicate_receipt_sha256",
    "duplicate_receipt_phash",
    "duplicate_receipt_number",
    "many_claims_per_sender",
)


@dataclass(frozen=True)
class FraudSignal:
    reason: str
    codes: tuple[str, ...]
    """Every claim involved (registration codes), the checked claim first."""
    detail: str = ""
    """What matched (a hash prefix, a distance, a count); no personal data."""


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def _receipt_keys(docs: Iterable[DocumentEvidence]) -> set[tuple[str, str, str]]:
    keys: set[tuple[str, str, str]] = set()
    for d in docs:
        if d.fields is None:
            continue
        parts = [d.fields.get(n) for n in ("retailer", "purchase_date", "receipt_number")]
        # Without all three, two receipts from one shop on one day cannot be told apart.
        if all(p is not None for p in parts):
            retailer, day, number = (p.value for p in parts if p is not None)
            keys.add((normalize_name(retailer), day, normalize_name(number)))
    return keys


def _receipts(docs: Iterable[DocumentEvidence]) -> list[DocumentEvidence]:
    return [d for d in docs if d.kind == DocumentKind.RECEIPT and d.refused is None]


def duplicate_receipts(
    claim: Claim,
    others: Iterable[Claim],
    max_distance: int = 6,
    incoming: Sequence[DocumentEvidence] = (),
) -> tuple[FraudSignal, ...]:
    """Signals for receipts of `claim` (and `incoming`, the documents of the mail being
    processed, not yet on the claim) that also appear on another claim."""
    mine = _receipts([*claim.documents, *incoming])
    keys = _receipt_keys(mine)
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
        distances = [
            hamming(a.phash, b.phash)
            for a in mine
            for b in theirs
            if a.phash is not None and b.phash is not None
        ]
        if distances and min(distances) <= max_distance:
            out.append(
                FraudSignal(
                    "duplicate_receipt_phash",
                    (claim.code, other.code),
                    f"distance={min(distances)}",
                )
            )
            continue
        if keys & _receipt_keys(theirs):
            out.append(FraudSignal("duplicate_receipt_number", (claim.code, other.code)))
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
    limit = campaign.fraud.phash_max_distance
    signals = list(duplicate_receipts(claim, others, limit, incoming))
    volume = sender_volume(claim, others, campaign.fraud.max_claims_per_sender)
    if volume is not None:
        signals.append(volume)
    return tuple(signals)


def apply_signals(
    signals: Iterable[FraudSignal], claims: Sequence[Claim], now: datetime
) -> list[Transition[Claim]]:
    """Put every claim a signal names in review, once per claim even when several signals
    name it (one event each, no reply). Claims already in review with the same reason
    and terminal claims produce nothing."""
    by_code = {c.code: c for c in claims}
    reasons: dict[str, list[str]] = {}
    for s in signals:
        for code in s.codes:
            reasons.setdefault(code, [])
            if s.reason not in reasons[code]:
                reasons[code].append(s.reason)
    out: list[Transition[Claim]] = []
    for code, rs in reasons.items():
        claim = by_code.get(code)
        if claim is None:
            continue
        new_reasons = [r for r in rs if r not in claim.state_reasons]
        if claim.state.value == "review" and not new_reasons:
            continue
        t = to_review(claim, new_reasons or rs, now)
        if t.changed:
            out.append(t)
    return out
