"""Load and save claim/RMA snapshots, and record a core `Transition` as event + reply.

The snapshot is stored whole as JSON (`facts["snapshot"]`) and the columns the
database queries (code, state, email, deadlines, payout) are mirrored from it.
Recording a transition writes exactly one event and queues at most one reply in
the same transaction, so a reply exists if and only if its decision was committed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from mailbot.config import Settings
from mailbot.core.claim_state import Claim
from mailbot.core.rma_machine import Rma
from mailbot.core.snapshots import claim_from_plain, rma_from_plain, to_plain
from mailbot.core.transition import Transition
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


def save_claim(session: Session, snap: Claim, row: m.Claim | None = None) -> m.Claim:
    """Mirror the snapshot into its row. A new row is flushed (callers need its id);
    changes to an existing one go out with the transaction's next flush."""
    new = row is None
    if row is None:
        row = m.Claim(code=snap.code, created_at=snap.registered_at)
        session.add(row)
    row.campaign_id = snap.campaign_id
    row.email = snap.email
    row.name = snap.name
    row.model = snap.model
    row.serial = snap.serial
    row.purchase_date = snap.purchase_date.isoformat() if snap.purchase_date else None
    row.retailer = snap.retailer
    row.country = snap.country
    row.language = snap.language
    row.price = snap.price
    row.currency = snap.currency
    row.state = snap.state.value
    row.state_reasons = list(snap.state_reasons)
    row.deadline_at = snap.deadline_at
    row.reminded_at = snap.reminded_at
    row.payout_amount = snap.payout_amount
    row.payout_currency = snap.payout_currency
    row.updated_at = snap.updated_at
    # a new dict: SQLAlchemy's JSON column does not see in-place changes; other keys
    # (what the registration form said, `services.claims.REGISTRATION_KEY`) are kept
    row.facts = {**(row.facts or {}), "snapshot": to_plain(snap)}
    if new:
        session.flush()
    return row


def save_rma(session: Session, snap: Rma, row: m.Rma | None = None) -> m.Rma:
    """As save_claim: only a new row is flushed at once."""
    new = row is None
    if row is None:
        row = m.Rma(number=snap.number, created_at=snap.issued_at)
        session.add(row)
    row.policy_id = snap.policy_id
    row.email = snap.email
    row.product = snap.product
    row.serial = snap.serial
    row.kind = snap.kind
    row.language = snap.language
    row.state = snap.state.value
    row.issued_at = snap.issued_at
    row.expires_at = snap.expires_at
    row.tracking_number = snap.tracking_number
    row.carrier = snap.carrier
    row.dropoff_at = snap.dropoff_at
    row.reminded_at = snap.reminded_at
    row.updated_at = snap.updated_at
    row.facts = {"snapshot": to_plain(snap)}
    if new:
        session.flush()
    return row


def claim_by_code(session: Session, code: str) -> m.Claim | None:
    return session.scalars(select(m.Claim).where(m.Claim.code == code)).one_or_none()


# built once: shipment notices look an RMA up for every mail
_RMA_BY_NUMBER = select(m.Rma).where(m.Rma.number == bindparam("number"))


def rma_by_number(session: Session, number: str) -> m.Rma | None:
    return session.scalars(_RMA_BY_NUMBER, {"number": number}).one_or_none()


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
