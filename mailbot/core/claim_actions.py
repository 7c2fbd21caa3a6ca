"""Claim transitions not caused by documents: a human's decision, the payment, the clock.

Split from `claims.py` (which re-exports everything here). A human rejects or sends
to review; the bank pays; the deadline sweep voids an incomplete claim and sends
one reminder per deadline. `to_review` never replies: a suspect is not told.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from mailbot.core.claim_state import TERMINAL, Claim, ClaimState
from mailbot.core.claim_state import base_context as _base_context
from mailbot.core.transition import ReplyIntent, Transition, TransitionError
from mailbot.core.transition import make_transition as _t


def reject(claim: Claim, reasons: Sequence[str], now: datetime) -> Transition[Claim]:
    """A human rejects (from review or any open state), with the reasons the mail explains."""
    if claim.state in TERMINAL or claim.state is ClaimState.APPROVED:
        raise TransitionError(f"cannot reject a claim in {claim.state}")
    new = replace(
        claim,
        state=ClaimState.REJECTED,
        state_reasons=tuple(reasons),
        updated_at=now,
        deadline_on=None,
        deadline_at=None,
        deadline_set_at=None,
    )
    ctx = _base_context(claim) | {"reasons": list(reasons), "refused": []}
    return _t(claim, new, "claim.rejected", now, reasons, {}, ReplyIntent("rejected", ctx))


def mark_paid(claim: Claim, now: datetime, reference: str | None = None) -> Transition[Claim]:
    if claim.state is not ClaimState.APPROVED:
        raise TransitionError(f"cannot pay a claim in {claim.state}")
    new = replace(
        claim,
        state=ClaimState.PAID,
        paid_at=now,
        updated_at=now,
        payment_reference=reference,
        state_reasons=("paid",),
    )
    return _t(claim, new, "claim.paid", now, ("paid",), {"reference": reference})


def expire_if_overdue(claim: Claim, now: datetime) -> Transition[Claim] | None:
    """incomplete past its deadline -> void, telling the customer once. None otherwise."""
    if claim.state is not ClaimState.INCOMPLETE or claim.deadline_at is None:
        return None
    if now < claim.deadline_at:
        return None
    new = replace(claim, state=ClaimState.VOID, updated_at=now, state_reasons=("deadline_passed",))
    ctx = _base_context(claim) | {
        "reasons": ["deadline_passed"],
        "deadline": claim.deadline_on,
        "refused": [],
    }
    return _t(
        claim,
        new,
        "claim.void",
        now,
        ("deadline_passed",),
        {"deadline_at": claim.deadline_at},
        ReplyIntent("rejected", ctx),
    )


def reminder_due(claim: Claim, now: datetime, before: timedelta) -> bool:
    """An incomplete claim within `before` of its deadline, not yet reminded for this deadline."""
    if claim.state is not ClaimState.INCOMPLETE or claim.deadline_at is None:
        return False
    if not (claim.deadline_at - before <= now < claim.deadline_at):
        return False
    set_at = claim.deadline_set_at
    return claim.reminded_at is None or (set_at is not None and claim.reminded_at < set_at)


def remind(claim: Claim, now: datetime) -> Transition[Claim]:
    if claim.state is not ClaimState.INCOMPLETE:
        raise TransitionError(f"no reminder for a claim in {claim.state}")
    new = replace(claim, reminded_at=now, updated_at=now)
    ctx = _base_context(claim) | {
        "kind": "claim",
        "deadline": claim.deadline_on,
        "missing_documents": list(claim.missing_documents),
        "missing_fields": list(claim.missing_fields),
    }
    return _t(
        claim,
        new,
        "claim.reminder",
        now,
        ("deadline_near",),
        {"deadline_at": claim.deadline_at},
        ReplyIntent("reminder", ctx),
    )


def to_review(claim: Claim, reason: str | Sequence[str], now: datetime) -> Transition[Claim]:
    """A human must look (fraud signal, conflicting match). Never replies: a suspect is not
    told. Terminal claims do not move (the event is still recorded, `changed=False`)."""
    given = (reason,) if isinstance(reason, str) else tuple(reason)
    if claim.state in TERMINAL:
        evidence = {"state": claim.state.value}
        return _t(claim, claim, "claim.review_ignored", now, given, evidence, changed=False)
    reasons = given
    if claim.state is ClaimState.REVIEW:
        reasons = tuple(dict.fromkeys((*claim.state_reasons, *given)))
    new = replace(
        claim,
        state=ClaimState.REVIEW,
        state_reasons=reasons,
        updated_at=now,
        deadline_on=None,
        deadline_at=None,
        deadline_set_at=None,
        # An approval in review is withdrawn; approving again recomputes the payout.
        payout_amount=None,
        payout_currency=None,
        approved_at=None,
    )
    return _t(claim, new, "claim.review", now, given, {"previous": claim.state.value})
