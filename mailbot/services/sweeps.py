"""Deadline sweeps over the database: void overdue claims, expire RMAs, reminders, billing.

Loads only the claims and RMAs that can have a deadline, asks the pure
`core.deadlines.sweep` what is due at `now`, and records each transition in its
own transaction (one failing item never blocks the others). Idempotent: a second
run at the same `now` finds nothing, because every recorded transition changes
the snapshot so its condition no longer holds; after downtime each overdue item
gets exactly one transition.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailbot.config import Settings
from mailbot.core.deadlines import SweepPolicy, sweep_claim, sweep_rma
from mailbot.core.transition import Transition
from mailbot.ruleset.loader import RuleSet
from mailbot.services.records import claim_snapshot, record, rma_snapshot
from mailbot.store import models as m
from mailbot.store.db import transaction

log = logging.getLogger(__name__)

CLAIM_STATES = ("incomplete",)
RMA_STATES = ("issued", "shipment_notified", "expired")


@dataclass
class SweepStats:
    claims: int = 0
    rmas: int = 0
    errors: int = 0
    kinds: dict[str, int] = field(default_factory=dict)


def policy_from(settings: Settings) -> SweepPolicy:
    s = settings.schedule
    return SweepPolicy(
        claim_reminder_before=timedelta(days=s.claim_reminder_days)
        if s.claim_reminder_days
        else None,
        rma_reminder_before=timedelta(days=s.rma_reminder_days) if s.rma_reminder_days else None,
    )


def _sweep_row(
    s: Session,
    row: m.Claim | m.Rma,
    settings: Settings,
    rules: RuleSet,
    now: datetime,
    policy: SweepPolicy,
) -> str | None:
    """Sweep one locked row; record its transition; return the transition's kind."""
    t: Transition[Any] | None
    if isinstance(row, m.Claim):
        t = sweep_claim(claim_snapshot(row), now, policy)
        where: dict[str, Any] = {"claim_row": row, "campaign_id": row.campaign_id}
    else:
        t = sweep_rma(rma_snapshot(row), now, policy)
        where = {"rma_row": row}
    if t is None:
        return None
    record(s, t, settings=settings, rules_version=rules.version, **where)
    return t.kind


def run_sweeps(
    factory: sessionmaker[Session], settings: Settings, rules: RuleSet, now: datetime
) -> SweepStats:
    policy = policy_from(settings)
    stats = SweepStats()
    with transaction(factory) as s:
        items: list[tuple[type[m.Claim] | type[m.Rma], int]] = [
            *(
                (m.Claim, i)
                for i in s.scalars(select(m.Claim.id).where(m.Claim.state.in_(CLAIM_STATES)))
            ),
            *((m.Rma, i) for i in s.scalars(select(m.Rma.id).where(m.Rma.state.in_(RMA_STATES)))),
        ]
    for model, row_id in items:
        try:
            with transaction(factory) as s:
                row: m.Claim | m.Rma | None = (
                    s.get(m.Claim, row_id, with_for_update=True)
                    if model is m.Claim
                    else s.get(m.Rma, row_id, with_for_update=True)
                )
                kind = None if row is None else _sweep_row(s, row, settings, rules, now, policy)
        except Exception:
            stats.errors += 1
            log.exception("sweep failed", extra={"table": model.__tablename__, "id": row_id})
            continue
        if kind is None:
            continue
        if model is m.Claim:
            stats.claims += 1
        else:
            stats.rmas += 1
        stats.kinds[kind] = stats.kinds.get(kind, 0) + 1
    return stats
