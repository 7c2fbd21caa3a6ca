"""The outbox as an operator handles it: list and show replies, retry or cancel one.

Retry and cancel are compare-and-set updates on the row's status, so they never
race the sender (`mailbot.outbound.delivery`): a row it has marked `sending` is
neither retried nor cancelled, and a `claimed` row that is cancelled first is
never marked `sending` (that update requires `claimed`). A `cancelled` row is not
due in any state the sender picks, so it is never sent.

Every action is an event (`outbox.retried`, `outbox.cancelled`) on the reply's
claim or RMA, with who, when and why, and a log line without personal data.
Addresses and subjects are masked in all output as in the logs.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import case, select, update
from sqlalchemy.orm import Session, sessionmaker

from mailbot.core.errors import InputError
from mailbot.log import mask_email, scrub
from mailbot.services.records import add_event, linked, newest_linked
from mailbot.store.db import transaction
from mailbot.store.models import Event, Outbox

log = logging.getLogger(__name__)

STATES = ("queued", "held", "claimed", "sending", "sent", "failed", "unconfirmed", "cancelled")
RETRYABLE = ("failed", "unconfirmed", "cancelled")
"""A retry sends the stored bytes again (same Message-ID) with a fresh attempt count.
An unconfirmed reply may have arrived already: its resend records possible_duplicate."""
CANCELLABLE = ("queued", "held", "claimed", "failed", "unconfirmed")
"""Never `sending` (it may be with the relay now) nor `sent`."""


def _iso(value: Any) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None


def _row(o: Outbox, code: str | None, rma: str | None) -> dict[str, Any]:
    return {
        "id": o.id,
        "created_at": _iso(o.created_at),
        "status": o.status,
        "template": o.template,
        "language": o.language,
        "to": mask_email(o.to_addr),
        "subject": scrub(o.subject),
        "claim": code,
        "rma": rma,
        "attempts": o.attempts,
        "next_attempt_at": _iso(o.next_attempt_at),
        "attempted_at": _iso(o.attempted_at),
        "sent_at": _iso(o.sent_at),
        "last_error": scrub(o.last_error) if o.last_error else None,
        "possible_duplicate": o.possible_duplicate,
    }


def list_outbox(
    factory: sessionmaker[Session], *, status: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """Newest replies first, optionally of one state (one of STATES)."""
    with transaction(factory) as s:
        rows = newest_linked(
            s, Outbox, status=status, limit=limit, statuses=STATES, what="outbox status"
        )
        return [_row(o, code, rma) for o, code, rma in rows]


def _actions(s: Session, outbox_id: int, o: Outbox) -> list[dict[str, Any]]:
    owner = Event.claim_id == o.claim_id if o.claim_id is not None else Event.rma_id == o.rma_id
    if o.claim_id is None and o.rma_id is None:
        owner = Event.claim_id.is_(None) & Event.rma_id.is_(None)
    found = s.scalars(
        select(Event)
        .where(owner, Event.kind.in_(("outbox.retried", "outbox.cancelled")))
        .order_by(Event.created_at, Event.id)
    )
    return [
        {
            "at": _iso(e.created_at),
            "action": e.kind.split(".", 1)[1],
            "from": e.from_state,
            "to": e.to_state,
            "by": e.evidence.get("by"),
            "reason": scrub(str(e.evidence.get("why") or "")) or None,
        }
        for e in found
        if e.evidence.get("outbox_id") == outbox_id
    ]


def show_outbox(factory: sessionmaker[Session], outbox_id: int) -> dict[str, Any] | None:
    """One reply: its row, the event that caused it, and the operator actions on it."""
    with transaction(factory) as s:
        found = s.execute(linked(Outbox).where(Outbox.id == outbox_id)).one_or_none()
        if found is None:
            return None
        o, code, rma = found
        out = _row(o, code, rma)
        cause = s.get(Event, o.event_id) if o.event_id is not None else None
        out |= {
            "message_id": scrub(o.message_id),
            "headers": {k: scrub(str(v)) for k, v in (o.headers or {}).items()},
            "size": len(o.raw) if o.raw is not None else None,
            "caused_by": (
                {
                    "event_id": cause.id,
                    "kind": cause.kind,
                    "at": _iso(cause.created_at),
                    "ledger_id": cause.message_id,
                }
                if cause is not None
                else None
            ),
            "actions": _actions(s, outbox_id, o),
        }
        return out


def _act(
    factory: sessionmaker[Session],
    outbox_id: int,
    *,
    action: str,
    allowed: tuple[str, ...],
    values: dict[str, Any],
    by: str,
    why: str,
    now: datetime,
) -> dict[str, Any]:
    with transaction(factory) as s:
        row = s.get(Outbox, outbox_id)
        if row is None:
            raise InputError(f"outbox row {outbox_id} does not exist")
        before = row.status
        if before not in allowed:
            raise InputError(
                f"outbox row {outbox_id} is {before}; {action} only a reply that is "
                f"{', '.join(allowed)}"
            )
        done = s.execute(
            update(Outbox)
            .where(Outbox.id == outbox_id, Outbox.status == before)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if not getattr(done, "rowcount", 0):
            # the sender moved it between our read and our update
            raise InputError(
                f"outbox row {outbox_id} changed state meanwhile; look again (outbox show)"
            )
        after = values["status"]
        add_event(
            s,
            kind=f"outbox.{'retried' if action == 'retry' else 'cancelled'}",
            now=now,
            claim_id=row.claim_id,
            rma_id=row.rma_id,
            from_state=before,
            to_state=after,
            reasons=[f"operator_{action}"],
            evidence={"outbox_id": outbox_id, "by": by, "why": why, "template": row.template},
        )
    log.info(
        f"outbox {action} by operator",
        extra={"outbox_id": outbox_id, "from": before, "to": after, "by": by},
    )
    return {
        "id": outbox_id,
        "action": action,
        "from": before,
        "to": after,
        "by": by,
        "at": _iso(now),
    }


def requeued(now: datetime) -> dict[str, Any]:
    """The columns of a reply sent again by a person's decision: due now with fresh
    attempts, the same bytes and Message-ID; one that was unconfirmed may already
    have arrived, so it becomes a possible duplicate."""
    return {
        "status": "queued",
        "attempts": 0,
        "claimed_by": None,
        "next_attempt_at": now,
        "last_error": None,
        "possible_duplicate": case(
            (Outbox.status == "unconfirmed", True), else_=Outbox.possible_duplicate
        ),
    }


def retry(
    factory: sessionmaker[Session], outbox_id: int, *, by: str, why: str, now: datetime
) -> dict[str, Any]:
    """Queue a failed, unconfirmed or cancelled reply again, due now (same bytes and
    Message-ID; the sender's rate limit still applies)."""
    return _act(
        factory,
        outbox_id,
        action="retry",
        allowed=RETRYABLE,
        values=requeued(now),
        by=by,
        why=why,
        now=now,
    )


def cancel(
    factory: sessionmaker[Session], outbox_id: int, *, by: str, why: str, now: datetime
) -> dict[str, Any]:
    """Make sure a reply is never sent (not one that is sending or sent)."""
    return _act(
        factory,
        outbox_id,
        action="cancel",
        allowed=CANCELLABLE,
        values={"status": "cancelled", "claimed_by": None, "next_attempt_at": None},
        by=by,
        why=why,
        now=now,
    )
