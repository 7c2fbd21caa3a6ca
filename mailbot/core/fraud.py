"""Fraud and duplicate signals over claim snapshots: the same receipt on two claims, or
many claims from one sender. Pure: the caller passes the claims to compare with.

The same receipt is recognised by its bytes (sha256), by its picture (64-bit
perceptual hashes, supplied by the caller as ints, within a Hamming distance), or
by what it says (same retailer + purchase date + receipt number). Every signal
names all the claims involved; `apply_signals` puts each open one in review
(`claims.to_review`, which never replies: a suspect is not told).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from mailbot.core.campaign import Campaign, normalize_name
from mailbot.core.claim_state import Claim
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


def _receipt_key(claim: Claim) -> tuple[str, str, str] | None:
    facts = dict(claim.facts)
    parts = (facts.get("retailer"), facts.get("purchase_date"), facts.get("receipt_number"))
    if not all(parts):
        # Without all three, two receipts from one shop on one day cannot be told apart.
        return None
    retailer, day, number = (str(p) for p in parts)
    return normalize_name(retailer), day, normalize_name(number)


def duplicate_receipts(
    claim: Claim, others: Iterable[Claim], max_distance: int = 6
) -> tuple[FraudSignal, ...]:
    """Signals for receipts of `claim` that also appear on another claim."""
    mine = [d for d in claim.documents if d.kind == DocumentKind.RECEIPT]
    key = _receipt_key(claim)
    out: list[FraudSignal] = []
    for other in others:
        if other.code == claim.code:
            continue
        theirs = [d for d in other.documents if d.kind == DocumentKind.RECEIPT]
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
        if key is not None and key == _receipt_key(other):
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
    claim: Claim, others: Sequence[Claim], campaign: Campaign
) -> tuple[FraudSignal, ...]:
    """All signals for `claim` against the other claims (same campaign or not: a receipt
    used in two campaigns is just as suspicious)."""
    signals = list(duplicate_receipts(claim, others, campaign.fraud.phash_max_distance))
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
