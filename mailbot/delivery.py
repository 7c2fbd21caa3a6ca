"""The outbox sender: deliver queued replies over SMTP, each row exactly once.

States of an outbox row:

    queued --claim--> sending --250--> sent
      ^  ^               |  \\--5xx---> failed (flagged for an admin, never retried)
      |  \\--4xx/conn---/    \\--crash: lease runs out, the row is claimed again
    held (per-recipient rate limit; released when its time comes, never dropped)

Claiming is a compare-and-set UPDATE (status and attempts must still be what we
read), so two senders, even in two processes on PostgreSQL, cannot both take a
row. Rows are claimed a few at a time (`batch_size`: as many as fit in the lease
even if each send took a full SMTP timeout) and each result is recorded as soon
as the relay answered. While a row is `sending`, `next_attempt_at` is its lease:
a sender that dies mid-delivery leaves the row `sending`, and after the lease it
is sent again with the SAME stored bytes and Message-ID.

The one edge no database can close: the relay accepted the mail (250) and we
crashed before recording `sent`. The row is then delivered a second time, so
delivery is at-least-once at the SMTP level. Because the Message-ID was fixed
when the reply was queued, both copies are byte-identical, the same message:
Gmail shows one copy of a Message-ID, and Sieve's duplicate test (RFC 7352) or a
client's duplicate filter can drop the other. The window is the time between the
relay's 250 and our commit: milliseconds, and only on a crash in exactly then.
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from mailbot.config import Settings, SmtpSettings
from mailbot.core.errors import DeliveryError, DeliveryRejected
from mailbot.log import mask_email, scrub
from mailbot.smtp import RecipientRejected, SmtpConnectError, SmtpTransport, Transport
from mailbot.store.db import transaction
from mailbot.store.models import Outbox

log = logging.getLogger(__name__)


def _rows(result: Any) -> int:
    """Rows an UPDATE touched (CursorResult.rowcount; typed loosely by SQLAlchemy)."""
    return int(getattr(result, "rowcount", 0) or 0)


RATE_WINDOW = timedelta(hours=1)
BACKOFF_BASE = timedelta(minutes=1)
BACKOFF_CAP = timedelta(hours=6)
MIN_LEASE = timedelta(minutes=5)


@dataclass
class DeliveryStats:
    sent: int = 0
    deferred: int = 0
    """Temporary failures; the row waits for its next attempt."""
    failed: int = 0
    """Permanent failures (5xx, or too many attempts): flagged for an admin."""
    held: int = 0
    """Rows held back by the per-recipient rate limit (released later)."""
    recovered: int = 0
    """Rows found stuck in `sending` after a crash and sent again."""


@dataclass(frozen=True)
class _Claimed:
    id: int
    to_addr: str
    raw: bytes
    attempts: int
    recovered: bool


def lease_for(settings: SmtpSettings) -> timedelta:
    """How long a claimed row belongs to its sender: well beyond one SMTP timeout."""
    return max(MIN_LEASE, timedelta(seconds=4 * settings.timeout_seconds))


def backoff(attempts: int, rng: random.Random | None = None) -> timedelta:
    """1, 2, 4 ... minutes up to 6 hours, times a random 0.5-1.0 so that replies
    deferred together (a relay outage) do not all come back in the same second."""
    base: timedelta = min(BACKOFF_BASE * (2 ** max(attempts - 1, 0)), BACKOFF_CAP)
    factor = 0.5 + (rng.random() if rng is not None else random.random()) / 2
    return base * factor


def _due(now: datetime) -> ColumnElement[bool]:
    return or_(
        and_(
            Outbox.status.in_(("queued", "held")),
            or_(Outbox.next_attempt_at.is_(None), Outbox.next_attempt_at <= now),
        ),
        # a lease that ran out: its sender died between claim and result
        and_(Outbox.status == "sending", Outbox.next_attempt_at <= now),
    )


class _RateBook:
    """Who got (or is getting) mail from us in the last hour, for one claim round.

    One query for all of a round's recipients instead of two per row: the sent rows
    inside the sliding window, and the rows other senders are sending now (a live
    lease; they count as sent now). Rows this round claims are added as it goes, so
    two replies to one address in one round are counted like two rounds would.
    """

    def __init__(
        self, session: Session, addrs: Iterable[str], now: datetime, per_hour: int
    ) -> None:
        self.now = now
        self.per_hour = per_hour
        self.seen: dict[str, list[tuple[int, datetime]]] = defaultdict(list)
        wanted = sorted(set(addrs))
        if per_hour <= 0 or not wanted:
            return
        rows = session.execute(
            select(Outbox.id, Outbox.to_addr, Outbox.status, Outbox.sent_at)
            .where(Outbox.to_addr.in_(wanted))  # stored lower case: uses ix_outbox_to_addr
            .where(
                or_(
                    and_(Outbox.status == "sent", Outbox.sent_at > now - RATE_WINDOW),
                    and_(Outbox.status == "sending", Outbox.next_attempt_at > now),
                )
            )
        )
        for row_id, to_addr, status, sent_at in rows:
            at = now if status == "sending" else sent_at
            if at is not None:
                self.seen[to_addr].append((row_id, at))

    def release(self, row_id: int, to_addr: str) -> datetime | None:
        """None when the recipient may get a mail now, else when a slot frees up."""
        if self.per_hour <= 0:
            return None
        times = sorted(at for other, at in self.seen[to_addr] if other != row_id)
        if len(times) < self.per_hour:
            return None
        # a slot frees when enough of these leave the sliding window
        release = times[len(times) - self.per_hour] + RATE_WINDOW
        return max(release, self.now + timedelta(seconds=1))

    def claimed(self, row_id: int, to_addr: str) -> None:
        self.seen[to_addr].append((row_id, self.now))


def batch_size(settings: SmtpSettings) -> int:
    """Rows claimed per transaction: as many as can surely be sent within the lease,
    even if every one of them waits for a full SMTP timeout (at most 25)."""
    fits = lease_for(settings) / timedelta(seconds=2 * max(settings.timeout_seconds, 1))
    return max(1, min(25, int(fits)))


def _claim_batch(
    factory: sessionmaker[Session],
    smtp: SmtpSettings,
    now: datetime,
    stats: DeliveryStats,
    size: int,
) -> list[_Claimed]:
    """Claim up to `size` due rows in one transaction (held ones are set aside)."""
    lease = lease_for(smtp)
    out: list[_Claimed] = []
    with transaction(factory) as session:
        # Every row a round touches leaves the due set (held and claimed rows get a
        # future next_attempt_at; a row lost to another sender is theirs now), so
        # rounds end; the bound is only a guard against a bug spinning forever.
        for _ in range(1_000):
            # the bytes come with the candidates: one query per round, not one per row
            candidates = session.execute(
                select(Outbox.id, Outbox.status, Outbox.attempts, Outbox.to_addr, Outbox.raw)
                .where(_due(now))
                .order_by(Outbox.created_at, Outbox.id)
                .limit(size - len(out))
            ).all()
            if not candidates:
                return out
            book = _RateBook(session, [c[3] for c in candidates], now, smtp.rate_limit_per_hour)
            for row_id, status, attempts, to_addr, raw in candidates:
                same = (Outbox.id == row_id, Outbox.status == status, Outbox.attempts == attempts)
                release = book.release(row_id, to_addr)
                if release is not None:
                    session.execute(
                        update(Outbox)
                        .where(*same)
                        .values(status="held", next_attempt_at=release)
                        .execution_options(synchronize_session=False)
                    )
                    stats.held += 1
                    log.info(
                        "reply held by rate limit",
                        extra={"outbox_id": row_id, "to": mask_email(to_addr), "until": release},
                    )
                    continue
                claimed = _rows(
                    session.execute(
                        update(Outbox)
                        .where(*same)
                        .values(
                            status="sending", attempts=attempts + 1, next_attempt_at=now + lease
                        )
                        .execution_options(synchronize_session=False)
                    )
                )
                if claimed != 1:
                    continue  # another sender took it between our read and our update
                book.claimed(row_id, to_addr)
                if raw is None:
                    full = session.get(Outbox, row_id)
                    assert full is not None
                    raw = _rebuild(full, smtp)
                out.append(_Claimed(row_id, to_addr, raw, attempts + 1, status == "sending"))
            if len(out) >= size:
                return out
        raise RuntimeError("outbox claim loop did not settle")  # pragma: no cover


def _rebuild(row: Outbox, smtp: SmtpSettings) -> bytes:
    """Bytes for a row queued without them (written by hand or an older version)."""
    from mailbot.outbox import build_message
    from mailbot.templating import RenderedMail

    mail = RenderedMail(row.subject, row.body_text, row.body_html, row.language)
    thread = {k: v for k, v in (row.headers or {}).items() if k in ("In-Reply-To", "References")}
    raw, _ = build_message(
        mail=mail,
        to_addr=row.to_addr,
        message_id=row.message_id,
        settings=smtp,
        now=row.created_at,
        extra_headers=thread,
    )
    return raw


def _unclaim(factory: sessionmaker[Session], items: list[_Claimed], later: datetime) -> None:
    """Give back claimed rows never tried (the relay went away): no attempt counted."""
    with transaction(factory) as session:
        for item in items:
            session.execute(
                update(Outbox)
                .where(Outbox.id == item.id, Outbox.status == "sending")
                .where(Outbox.attempts == item.attempts)
                .values(status="queued", attempts=item.attempts - 1, next_attempt_at=later)
                .execution_options(synchronize_session=False)
            )


def _finish(factory: sessionmaker[Session], row_id: int, **values: object) -> None:
    with transaction(factory) as session:
        session.execute(
            update(Outbox)
            .where(Outbox.id == row_id, Outbox.status == "sending")
            .values(**values)
            .execution_options(synchronize_session=False)
        )


def deliver_pending(
    factory: sessionmaker[Session],
    settings: Settings | SmtpSettings,
    now: datetime,
    *,
    limit: int = 100,
    transport: Transport | None = None,
    rng: random.Random | None = None,
) -> DeliveryStats:
    """Send up to `limit` due replies; returns what happened.

    Safe to run from several processes at once. A connection-level failure (relay
    down, TLS, login) defers the row it hit and ends the batch: the other rows
    keep their place and their attempt counts.
    """
    smtp = settings.smtp if isinstance(settings, Settings) else settings
    own = transport is None
    link: Transport = transport if transport is not None else SmtpTransport(smtp)
    stats = DeliveryStats()
    left = limit
    try:
        while left > 0:
            batch = _claim_batch(factory, smtp, now, stats, min(left, batch_size(smtp)))
            if not batch:
                break
            left -= len(batch)
            for i, item in enumerate(batch):
                if item.recovered:
                    stats.recovered += 1
                    log.warning("resending reply left in sending", extra={"outbox_id": item.id})
                if not _deliver_one(factory, link, smtp, item, now, stats, rng):
                    _unclaim(factory, batch[i + 1 :], now + backoff(1, rng))
                    left = 0
                    break
    finally:
        if own:
            link.close()
    if stats.sent or stats.deferred or stats.failed or stats.held:
        log.info("outbox delivery", extra=vars(stats))
    return stats


def _deliver_one(
    factory: sessionmaker[Session],
    link: Transport,
    smtp: SmtpSettings,
    item: _Claimed,
    now: datetime,
    stats: DeliveryStats,
    rng: random.Random | None,
) -> bool:
    """Send one claimed row and record the outcome; False ends the batch."""
    where = {"outbox_id": item.id, "to": mask_email(item.to_addr), "attempt": item.attempts}
    try:
        link.send(smtp.from_address, item.to_addr, item.raw)
    except DeliveryRejected as exc:
        _finish(
            factory,
            item.id,
            status="failed",
            next_attempt_at=None,
            last_error=f"PERMANENT (admin): {exc}",
        )
        stats.failed += 1
        log.error(
            "reply rejected by the relay; flagged for an admin",
            extra={**where, "error": scrub(str(exc))},
        )
        if isinstance(exc, RecipientRejected):
            from mailbot.outbox import mark_undeliverable

            with transaction(factory) as session:
                mark_undeliverable(session, item.to_addr, reason="recipient refused")
        return True
    except Exception as exc:  # DeliveryError, or anything unexpected: retried, never lost
        error = str(exc) if isinstance(exc, DeliveryError) else f"{exc.__class__.__name__}: {exc}"
        if item.attempts >= smtp.max_attempts:
            _finish(
                factory,
                item.id,
                status="failed",
                next_attempt_at=None,
                last_error=f"GAVE UP (admin) after {item.attempts} attempts: {error}",
            )
            stats.failed += 1
            log.error(
                "reply gave up after retries; flagged for an admin",
                extra={**where, "error": scrub(error)},
            )
        else:
            later = now + backoff(item.attempts, rng)
            _finish(factory, item.id, status="queued", next_attempt_at=later, last_error=error)
            stats.deferred += 1
            log.warning("reply deferred", extra={**where, "error": scrub(error), "next": later})
        return not isinstance(exc, SmtpConnectError)
    _finish(factory, item.id, status="sent", sent_at=now, next_attempt_at=None, last_error=None)
    stats.sent += 1
    log.info("reply sent", extra=where)
    return True


def requeue(session: Session, outbox_id: int, now: datetime) -> bool:
    """An admin fixed the cause of a failed reply: send it again (same Message-ID)."""
    done = _rows(
        session.execute(
            update(Outbox)
            .where(Outbox.id == outbox_id, Outbox.status == "failed")
            .values(status="queued", attempts=0, next_attempt_at=now, last_error=None)
            .execution_options(synchronize_session=False)
        )
    )
    return bool(done)
