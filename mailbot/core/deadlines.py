"""Deadline sweeps: void overdue incomplete claims, expire RMAs, flag billing, send reminders.

`sweep` is what the scheduler (and `mailbot sweep --as-of`) runs. It is a pure
function of the snapshots and `now`, and idempotent once its transitions are
stored: every transition it returns changes the snapshot so the same condition
no longer holds (state moved, `reminded_at` or `billing_flagged_at` set). After
downtime it catches up by giving each overdue item exactly one transition (an
overdue claim is voided, not first reminded). A reminder is sent at most once per
deadline: a claim's `reminded_at` is compared with the time its deadline was set.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from mailbot.core import claim_machine as claim_sm
from mailbot.core import rma_machine as rma_sm
from mailbot.core.claim_state import Claim, ClaimState
from mailbot.core.rma_machine import Rma, RmaState
from mailbot.core.transition import Transition


@dataclass(frozen=True)
class SweepPolicy:
    claim_reminder_before: timedelta | None = timedelta(days=3)
    """Remind an incomplete claim this long before it becomes void (None: never)."""
    rma_reminder_before: timedelta | None = timedelta(days=3)
    """Remind an RMA without a shipment notice this long before it expires (None: never)."""


def sweep_claim(claim: Claim, now: datetime, policy: SweepPolicy) -> Transition[Claim] | None:
    expired = claim_sm.expire_if_overdue(claim, now)
    if expired is not None:
        return expired
    before = policy.claim_reminder_before
    if before is not None and claim_sm.reminder_due(claim, now, before):
        return claim_sm.remind(claim, now)
    return None


def sweep_rma(rma: Rma, now: datetime, policy: SweepPolicy) -> Transition[Rma] | None:
    expired = rma_sm.expire_if_overdue(rma, now)
    if expired is not None:
        return expired
    if rma_sm.bill_due(rma, now):
        return rma_sm.flag_billing(rma, now)
    before = policy.rma_reminder_before
    if before is not None and rma_sm.reminder_due(rma, now, before):
        return rma_sm.remind(rma, now)
    return None


def sweep(
    claims: Iterable[Claim],
    rmas: Iterable[Rma],
    now: datetime,
    policy: SweepPolicy | None = None,
) -> list[Transition[Any]]:
    """At most one transition per claim and per RMA, claims first, in input order."""
    if now.tzinfo is None:
        raise ValueError("sweep needs a timezone-aware now")
    p = policy or SweepPolicy()
    out: list[Transition[Any]] = []
    for claim in claims:
        t = sweep_claim(claim, now, p)
        if t is not None:
            out.append(t)
    for rma in rmas:
        u = sweep_rma(rma, now, p)
        if u is not None:
            out.append(u)
    return out


def next_due(
    claims: Iterable[Claim], rmas: Iterable[Rma], policy: SweepPolicy | None = None
) -> datetime | None:
    """The earliest moment a sweep would do something (for scheduling a one-off job);
    None when nothing is pending. Moments already past are returned as they are."""
    p = policy or SweepPolicy()
    moments: list[datetime] = []
    for c in claims:
        if c.state is ClaimState.INCOMPLETE and c.deadline_at is not None:
            moments.append(c.deadline_at)
            reminded = c.reminded_at is not None and (
                c.deadline_set_at is None or c.reminded_at >= c.deadline_set_at
            )
            if p.claim_reminder_before is not None and not reminded:
                moments.append(c.deadline_at - p.claim_reminder_before)
    for r in rmas:
        if r.state is RmaState.ISSUED:
            moments.append(r.expires_at)
            if p.rma_reminder_before is not None and r.reminded_at is None:
                moments.append(r.expires_at - p.rma_reminder_before)
        billable = r.advance_replacement and r.state in rma_sm.AWAITING_ORIGINAL
        if billable and r.bill_due_at is not None and r.billing_flagged_at is None:
            moments.append(r.bill_due_at)
    return min(moments) if moments else None
