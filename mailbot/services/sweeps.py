"""Deadline sweeps over the database: void overdue claims, expire RMAs, reminders, billing.

Loads only the claims and RMAs that can have a deadline, asks the pure
`core.deadlines.sweep` what is due at `now`, and records each transition in its
own transaction (one failing item never blocks the others). Idempotent: a second
run at the same `now` finds nothing, because every recorded transition changes
the snapshot so its condition no longer holds; after downtime each overdue item
gets exactly one transition.

A dry run goes through the very same code, replies rendered and rows flushed, and
rolls each transaction back instead of committing it: what it reports is what a
real run at the same `now` does, and it writes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
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


@dataclass(frozen=True)
class SweepChange:
    """One transition a sweep recorded (or, in a dry run, would record)."""

    table: str
    """"claim" or "rma"."""
    ref: str
    """The claim's code or the RMA's number."""
    kind: str
    from_state: str | None
    to_state: str
    reply: str | None
    """Template of the mail queued for it; None when no mail goes."""
    to: str | None
    """Recipient of that mail."""
    suppressed: str | None = None
    """Why a mail the transition asked for is not sent (e.g. address_undeliverable)."""

    def as_dict(self) -> dict[str, str | None]:
        return {
            "table": self.table,
            "ref": self.ref,
            "kind": self.kind,
            "from_state": self.from_state,
            "to_state": self.to_state,
            "reply": self.reply,
            "to": self.to,
            "suppressed": self.suppressed,
        }


@dataclass
class SweepStats:
    claims: int = 0
    rmas: int = 0
    errors: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    changes: list[SweepChange] = field(default_factory=list)
    dry_run: bool = False


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
) -> SweepChange | None:
    """Sweep one locked row; record its transition; say what it changed."""
    t: Transition[Any] | None
    if isinstance(row, m.Claim):
        t = sweep_claim(claim_snapshot(row), now, policy)
        where: dict[str, Any] = {"claim_row": row, "campaign_id": row.campaign_id}
        table, ref = "claim", row.code
    else:
        t = sweep_rma(rma_snapshot(row), now, policy)
        where = {"rma_row": row}
        table, ref = "rma", row.number
    if t is None:
        return None
    event, outbox = record(s, t, settings=settings, rules_version=rules.version, **where)
    suppressed = (event.evidence or {}).get("reply_suppressed") or {}
    return SweepChange(
        table=table,
        ref=ref,
        kind=t.kind,
        from_state=t.from_state,
        to_state=t.to_state,
        reply=outbox.template if outbox is not None else None,
        to=outbox.to_addr if outbox is not None else None,
        suppressed=suppressed.get("reason"),
    )


@contextmanager
def _unit(factory: sessionmaker[Session], dry_run: bool) -> Iterator[Session]:
    """`transaction`, or for a dry run the same work flushed (so the database still
    checks every row) and then rolled back."""
    if not dry_run:
        with transaction(factory) as s:
            yield s
        return
    session = factory()
    try:
        yield session
        session.flush()
    finally:
        session.rollback()
        session.close()


def run_sweeps(
    factory: sessionmaker[Session],
    settings: Settings,
    rules: RuleSet,
    now: datetime,
    *,
    dry_run: bool = False,
) -> SweepStats:
    """Record every transition due at `now`; with `dry_run`, only report them."""
    policy = policy_from(settings)
    stats = SweepStats(dry_run=dry_run)
    with transaction(factory) as s:
        claim_ids = select(m.Claim.id).where(m.Claim.state.in_(CLAIM_STATES))
        rma_ids = select(m.Rma.id).where(m.Rma.state.in_(RMA_STATES))
        items: list[tuple[type[m.Claim] | type[m.Rma], int]] = [
            *((m.Claim, i) for i in s.scalars(claim_ids.order_by(m.Claim.id))),
            *((m.Rma, i) for i in s.scalars(rma_ids.order_by(m.Rma.id))),
        ]
    for model, row_id in items:
        try:
            with _unit(factory, dry_run) as s:
                row: m.Claim | m.Rma | None = (
                    s.get(m.Claim, row_id, with_for_update=True)
                    if model is m.Claim
                    else s.get(m.Rma, row_id, with_for_update=True)
                )
                change = None if row is None else _sweep_row(s, row, settings, rules, now, policy)
        except Exception:
            stats.errors += 1
            log.exception("sweep failed", extra={"table": model.__tablename__, "id": row_id})
            continue
        if change is None:
            continue
        if model is m.Claim:
            stats.claims += 1
        else:
            stats.rmas += 1
        stats.kinds[change.kind] = stats.kinds.get(change.kind, 0) + 1
        stats.changes.append(change)
    return stats
