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

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailbot.config import Settings
from mailbot.core.deadlines import SweepPolicy, sweep_claim, sweep_rma
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


def run_sweeps(
    factory: sessionmaker[Session], settings: Settings, rules: RuleSet, now: datetime
) -> SweepStats:
    policy = policy_from(settings)
    stats = SweepStats()
    with transaction(factory) as s:
        claim_ids = s.scalars(select(m.Claim.id).where(m.Claim.state.in_(CLAIM_STATES))).all()
        rma_ids = s.scalars(select(m.Rma.id).where(m.Rma.state.in_(RMA_STATES))).all()
    for cid in claim_ids:
        try:
            with transaction(factory) as s:
                row = s.get(m.Claim, cid, with_for_update=True)
                if row is None:
                    continue
                t = sweep_claim(claim_snapshot(row), now, policy)
                if t is None:
                    continue
                record(
                    s,
                    t,
                    settings=settings,
                    rules_version=rules.version,
                    claim_row=row,
                    campaign_id=row.campaign_id,
                )
                stats.claims += 1
                stats.kinds[t.kind] = stats.kinds.get(t.kind, 0) + 1
        except Exception:
            stats.errors += 1
            log.exception("sweep failed for a claim", extra={"claim_id": cid})
    for rid in rma_ids:
        try:
            with transaction(factory) as s:
                rrow = s.get(m.Rma, rid, with_for_update=True)
                if rrow is None:
                    continue
                u = sweep_rma(rma_snapshot(rrow), now, policy)
                if u is None:
                    continue
                record(s, u, settings=settings, rules_version=rules.version, rma_row=rrow)
                stats.rmas += 1
                stats.kinds[u.kind] = stats.kinds.get(u.kind, 0) + 1
        except Exception:
            stats.errors += 1
            log.exception("sweep failed for an RMA", extra={"rma_id": rid})
    return stats
