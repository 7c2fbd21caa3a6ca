"""Load and save claim/RMA snapshots, and record a core `Transition` as event + reply.

The snapshot is stored whole as JSON (`facts["snapshot"]`) and the columns the
database queries (code, state, email, deadlines, payout) are mirrored from it.
Recording a transition writes exactly one event and queues at most one reply in
the same transaction, so a reply exists if and only if its decision was committed.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Engine, Table, bindparam, event, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, SessionTransaction

from mailbot.config import Settings
from mailbot.core.claim_state import Claim
from mailbot.core.rma_machine import Rma
from mailbot.core.snapshots import claim_from_plain, rma_from_plain, to_plain
from mailbot.core.transition import Transition
from mailbot.ruleset.loader import rules_content
from mailbot.services.context import reply_context
from mailbot.services.outbox import queue_reply
from mailbot.store import models as m


@dataclass(frozen=True)
class ReplyTarget:
    """The customer's mail a reply answers (threading headers); None for first contact."""

    message_id: str | None = None
    references: tuple[str, ...] = ()


def claim_snapshot(row: m.Claim) -> Claim:
    return claim_from_plain(row.facts["snapshot"])


def rma_snapshot(row: m.Rma) -> Rma:
    return rma_from_plain(row.facts["snapshot"])


# columns that hold the snapshot's attribute of the same name as it is
_CLAIM_COLUMNS = (
    "campaign_id", "email", "name", "model", "serial", "retailer", "country", "language",
    "price", "currency", "deadline_at", "reminded_at", "payout_amount", "payout_currency",
    "updated_at",
)  # fmt: skip
_RMA_COLUMNS = (
    "policy_id", "email", "product", "serial", "kind", "language", "issued_at", "expires_at",
    "tracking_number", "carrier", "dropoff_at", "reminded_at", "updated_at",
)  # fmt: skip

_Row = TypeVar("_Row", m.Claim, m.Rma)


def _mirror(
    session: Session,
    row: _Row,
    snap: Claim | Rma,
    columns: Sequence[str],
    facts: dict[str, Any],
    *,
    new: bool,
) -> _Row:
    for name in columns:
        setattr(row, name, getattr(snap, name))
    row.state = snap.state.value
    row.facts = facts
    if new:
        session.flush()
    return row


def save_claim(session: Session, snap: Claim, row: m.Claim | None = None) -> m.Claim:
    """Mirror the snapshot into its row. A new row is flushed (callers need its id);
    changes to an existing one go out with the transaction's next flush."""
    new = row is None
    if row is None:
        row = m.Claim(code=snap.code, created_at=snap.registered_at)
        session.add(row)
    row.purchase_date = snap.purchase_date.isoformat() if snap.purchase_date else None
    row.state_reasons = list(snap.state_reasons)
    # a new dict: SQLAlchemy's JSON column does not see in-place changes; other keys
    # (what the registration form said, `services.claims.REGISTRATION_KEY`) are kept
    facts = {**(row.facts or {}), "snapshot": to_plain(snap)}
    return _mirror(session, row, snap, _CLAIM_COLUMNS, facts, new=new)


def save_rma(session: Session, snap: Rma, row: m.Rma | None = None) -> m.Rma:
    """As save_claim: only a new row is flushed at once."""
    new = row is None
    if row is None:
        row = m.Rma(number=snap.number, created_at=snap.issued_at)
        session.add(row)
    return _mirror(session, row, snap, _RMA_COLUMNS, {"snapshot": to_plain(snap)}, new=new)


# the rows that hang off a claim or an RMA by its id
_Owned = TypeVar("_Owned", m.Document, m.Event, m.Message, m.Outbox)


def owned_rows(session: Session, model: type[_Owned], **owner: int) -> Sequence[_Owned]:
    """The rows of `model` that belong to one claim or RMA (`claim_id=…` or `rma_id=…`),
    oldest first."""
    return session.scalars(select(model).filter_by(**owner).order_by(model.id)).all()


# the rows listed with the claim and the RMA they belong to
_Linked = TypeVar("_Linked", m.Message, m.Outbox)


def linked(model: type[_Linked]) -> Any:
    """A select of `model`'s rows, each with its claim's code and its RMA's number
    (None where it has none)."""
    return (
        select(model, m.Claim.code, m.Rma.number)
        .outerjoin(m.Claim, m.Claim.id == model.claim_id)
        .outerjoin(m.Rma, m.Rma.id == model.rma_id)
    )


def newest_linked(
    session: Session,
    model: type[_Linked],
    *,
    status: str | None,
    limit: int,
    statuses: Sequence[str],
    what: str = "status",
) -> Sequence[Any]:
    """The newest `limit` rows of `model` (of one status, if given), linked as `linked`.
    A status not among `statuses` is a ValueError naming them (`what` names the kind)."""
    if status is not None and status not in statuses:
        raise ValueError(f"unknown {what} {status!r}; one of: {', '.join(statuses)}")
    stmt = linked(model).order_by(model.id.desc()).limit(max(0, limit))
    if status is not None:
        stmt = stmt.where(model.status == status)
    return session.execute(stmt).all()


def event_row(e: m.Event) -> dict[str, Any]:
    """An event as plain data, as `show` and the desk list it."""
    return {
        "at": e.created_at.isoformat(),
        "kind": e.kind,
        "from": e.from_state,
        "to": e.to_state,
        "reasons": e.reasons,
        "evidence": e.evidence,
        "rules_version": e.rules_version,
    }


def claim_by_code(session: Session, code: str) -> m.Claim | None:
    return session.scalars(select(m.Claim).where(m.Claim.code == code)).one_or_none()


# built once: shipment notices look an RMA up for every mail
_RMA_BY_NUMBER = select(m.Rma).where(m.Rma.number == bindparam("number"))


def rma_by_number(session: Session, number: str) -> m.Rma | None:
    return session.scalars(_RMA_BY_NUMBER, {"number": number}).one_or_none()


# Rules versions stored per database, known in this process: one insert per version
# per process. A version joins only when its transaction commits (a dry run's
# rollback stores nothing, so it must not count as stored).
_STORED: weakref.WeakKeyDictionary[Engine, set[str]] = weakref.WeakKeyDictionary()
_PENDING = "mailbot.rules_versions"


def _engine(session: Session) -> Engine:
    return session.get_bind().engine


def store_rules_version(session: Session, version: str, now: datetime) -> None:
    """Keep the files behind `version` (insert if absent, in the caller's transaction)
    the first time this process records it; a version not loaded in this process
    (its content unknown here) is left to the process that loaded it."""
    files = rules_content(version)
    if files is None:
        return
    engine = _engine(session)
    pending: set[str] = session.info.setdefault(_PENDING, set())
    if version in pending or version in _STORED.get(engine, ()):
        return
    values = {"version": version, "files": files, "first_used_at": now}
    table = m.RulesVersion.__table__
    assert isinstance(table, Table)
    if engine.dialect.name == "postgresql":
        stmt: Any = pg_insert(table).values(values).on_conflict_do_nothing()
    elif engine.dialect.name == "sqlite":
        stmt = sqlite_insert(table).values(values).on_conflict_do_nothing()
    else:  # no portable "insert if absent": look first
        found = session.scalar(
            select(m.RulesVersion.version).where(m.RulesVersion.version == version)
        )
        stmt = None if found else insert(table).values(values)
    if stmt is not None:
        # no autoflush: the caller's pending rows go out when it flushes, as before
        with session.no_autoflush:
            session.execute(stmt)
    pending.add(version)


@event.listens_for(Session, "after_commit")
def _versions_committed(session: Session) -> None:
    pending = session.info.pop(_PENDING, None)
    if pending:
        _STORED.setdefault(_engine(session), set()).update(pending)


@event.listens_for(Session, "after_transaction_end")
def _versions_not_committed(session: Session, transaction: SessionTransaction) -> None:
    # after a commit the set is gone already; what is left was rolled back or closed
    if transaction.parent is None:
        session.info.pop(_PENDING, None)


def add_event(
    session: Session,
    *,
    kind: str,
    now: datetime,
    claim_id: int | None = None,
    rma_id: int | None = None,
    message_row_id: int | None = None,
    from_state: str | None = None,
    to_state: str | None = None,
    reasons: tuple[str, ...] | list[str] = (),
    evidence: dict[str, Any] | None = None,
    rules_version: str | None = None,
) -> m.Event:
    event = m.Event(
        claim_id=claim_id,
        rma_id=rma_id,
        message_id=message_row_id,
        kind=kind,
        from_state=from_state,
        to_state=to_state,
        reasons=list(reasons),
        evidence=to_plain(evidence or {}),
        rules_version=rules_version,
        created_at=now,
    )
    if rules_version:
        store_rules_version(session, rules_version, now)
    # Not flushed: most events are never referred to by id again, and every flush is
    # a round of the unit of work per mail. Whoever needs `event.id` flushes first.
    session.add(event)
    return event


def record(
    session: Session,
    transition: Transition[Any],
    *,
    settings: Settings,
    rules_version: str,
    claim_row: m.Claim | None = None,
    rma_row: m.Rma | None = None,
    message_row_id: int | None = None,
    reply_to: ReplyTarget | None = None,
    campaign_id: str | None = None,
    extra_context: dict[str, Any] | None = None,
) -> tuple[m.Event, m.Outbox | None]:
    """Store the snapshot, write the event, queue the reply (if any): one transaction."""
    snap = transition.snapshot
    if isinstance(snap, Claim):
        claim_row = save_claim(session, snap, claim_row)
    elif isinstance(snap, Rma):
        rma_row = save_rma(session, snap, rma_row)
    evidence = dict(transition.evidence)
    if transition.via:
        evidence["via"] = list(transition.via)
    event = add_event(
        session,
        kind=transition.kind,
        now=transition.at,
        claim_id=claim_row.id if claim_row is not None else None,
        rma_id=rma_row.id if rma_row is not None else None,
        message_row_id=message_row_id,
        from_state=transition.from_state,
        to_state=transition.to_state,
        reasons=transition.reasons,
        evidence=evidence,
        rules_version=rules_version,
    )
    outbox = None
    if transition.reply is not None:
        target = reply_to or ReplyTarget()
        context = reply_context(transition.reply, snap, settings, extra_context or {})
        outbox = queue_reply(
            session,
            template=transition.reply.template,
            language=getattr(snap, "language", "en"),
            context=context,
            to_addr=snap.email,
            event=event,  # not flushed: both rows go out with the next flush
            claim_id=claim_row.id if claim_row is not None else None,
            rma_id=rma_row.id if rma_row is not None else None,
            in_reply_to=target.message_id,
            references=target.references,
            campaign_id=campaign_id,
            now=transition.at,
            settings=settings,
        )
    return event, outbox
