"""The outbox sender: deliver queued replies over SMTP, and never send one twice on its own.

States of an outbox row:

    queued/held --claim--> claimed --mark--> sending --250--> sent
        ^                    |                  |--4xx, or lost before the message was
        |                    |                  |  handed over whole --> queued (backoff)
        |                    |                  |--5xx, or too many attempts --> failed
        |                    |                  |--handed over, no answer --> unconfirmed
        |                    |                  \\--sender died (lease ran out) --> unconfirmed
        |                    \\--sender died (lease ran out): claimed by another sender
        \\--------- requeue by an admin (failed, or unconfirmed: possible_duplicate)

    held: the per-recipient rate limit; released when its time comes, never dropped.

A sender claims a few rows at a time (`claimed`: a lease in `next_attempt_at` and
its run's token in `claimed_by`). Just before it hands a row to the relay it marks
it `sending` with the attempt, in its own transaction; every change a sender makes
afterwards is conditional on its token, the attempt and the status, so a sender
that lost its lease changes nothing. While it runs, a heartbeat thread renews the
leases of the rows it holds (every LEASE / 4), so a live sender keeps them however
slow the relay is, and a dead sender's rows are taken over once LEASE (60 s) has
passed, not after minutes.

What is guaranteed:
- A row is handed to the relay only by the sender that marked it `sending` for
  this attempt (compare-and-set, also between processes on PostgreSQL).
- It is sent again automatically only after a definite "not accepted": a 4xx, or a
  connection that failed before the whole message (with its final ".") was sent.
- When the outcome is unknown (the connection dropped or timed out after the
  message was handed over, or the sender died while the row was `sending`), the
  row is sent once more, after a backoff, with the same stored bytes and
  Message-ID, and records `possible_duplicate`: a mail the relay had lost still
  arrives, and a mail it had kept arrives twice as the same message (one
  Message-ID, which mail clients and Sieve's duplicate test fold into one). A
  second unknown outcome, or any unknown outcome with `smtp.resend_unconfirmed =
  false`, makes the row `unconfirmed` (flagged for an admin, with the attempt and
  time in `attempted_at`); an admin who `requeue`s it sends it again.
- After a 250 the row is confirmed `sent` in its own short transaction, retried
  when the database fails. Until that write succeeds the process keeps the
  confirmation in memory (retried at the start of every later run, lease kept
  alive), so the row is never sent again. If the process dies in that window, the
  row's lease runs out while it is `sending` and it becomes `unconfirmed`: the mail
  arrived once, and an admin sees a reply whose delivery was not recorded.
- A sender killed mid-batch: the one row it was sending is treated as an unknown
  outcome (above); the rows it had claimed but not started are sent by the next
  sender after the lease.
So a reply is never sent twice with a known first outcome; an unknown outcome
costs at most one possible duplicate (same Message-ID, recorded), or with
`resend_unconfirmed = false` an admin's decision instead.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
import weakref
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from mailbot.config import Settings, SmtpSettings
from mailbot.core.errors import DeliveryError, DeliveryRejected, StoreError
from mailbot.log import mask_email, scrub
from mailbot.outbound.smtp import (
    DeliveryUnconfirmed,
    RecipientRejected,
    SmtpConnectError,
    SmtpTransport,
    Transport,
)
from mailbot.services.outbox import build_message, mark_undeliverable
from mailbot.services.outbox_admin import requeued
from mailbot.store.db import transaction
from mailbot.store.models import Outbox

log = logging.getLogger(__name__)


def _update(session: Session, *where: Any, **values: Any) -> int:
    """Set `values` on the outbox rows `where` matches, in the database only (no
    session objects are synchronized); how many rows changed. Each `where` names the
    row as it was read, so a row someone else changed meanwhile is left alone."""
    result = session.execute(
        update(Outbox).where(*where).values(**values).execution_options(synchronize_session=False)
    )
    # CursorResult.rowcount, typed loosely by SQLAlchemy
    return int(getattr(result, "rowcount", 0) or 0)


RATE_WINDOW = timedelta(hours=1)
BACKOFF_BASE = timedelta(minutes=1)
BACKOFF_CAP = timedelta(hours=6)
LEASE = timedelta(seconds=60)
"""How long a claimed row stays its sender's without a renewal (renewed every LEASE/4)."""
BATCH_BUDGET = timedelta(minutes=5)
"""A batch is as many rows as can be sent in this time even if each one waits a full
SMTP timeout: rows claimed behind a stuck relay are not held back longer than that."""
CONFIRM_WAITS = (0.05, 0.2, 0.5, 1.0, 2.0)
"""Seconds between tries of the `sent` write after a 250 (about 4 s in all)."""

# what a failed database write looks like (mailbot.store.db raises StoreUnavailable
# for a lost connection; other SQLAlchemy errors come through as they are)
_DB_ERRORS = (SQLAlchemyError, StoreError)
_IN_FLIGHT = ("claimed", "sending")
_ANSWERED = ("sending", "unconfirmed")
"""A row the relay answered can be in either: another sender may have flagged it
`unconfirmed` after our lease ran out, and our answer settles that doubt."""


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
    """Rows a dead sender had claimed but not started, taken over and sent."""
    unconfirmed: int = 0
    """Handed to the relay without a final answer, or left `sending` by a dead sender:
    maybe delivered, flagged for an admin, not sent again."""
    unrecorded: int = 0
    """Sent (250), but the `sent` write failed even after retries: kept in memory."""


@dataclass(frozen=True)
class _Claimed:
    id: int
    to_addr: str
    raw: bytes
    attempt: int
    """The attempt this send is (1 for the first)."""
    recovered: bool


@dataclass(frozen=True)
class _Unrecorded:
    """A 250 whose `sent` write failed: the row must never be sent again."""

    id: int
    token: str
    attempt: int
    sent_at: datetime


# 250s not yet written, per database (session factory), for the life of the process
_UNRECORDED: weakref.WeakKeyDictionary[sessionmaker[Session], dict[int, _Unrecorded]] = (
    weakref.WeakKeyDictionary()
)
_UNRECORDED_LOCK = threading.Lock()


def lease_for(settings: SmtpSettings) -> timedelta:
    """How long a claimed row belongs to its sender without a renewal. The heartbeat
    renews it while the sender lives, so it need not cover a slow SMTP conversation."""
    return LEASE


def backoff(attempts: int, rng: random.Random | None = None) -> timedelta:
    """1, 2, 4 ... minutes up to 6 hours, times a random 0.5-1.0 so that replies
    deferred together (a relay outage) do not all come back in the same second."""
    base: timedelta = min(BACKOFF_BASE * (2 ** max(attempts - 1, 0)), BACKOFF_CAP)
    factor = 0.5 + (rng.random() if rng is not None else random.random()) / 2
    return base * factor


def batch_size(settings: SmtpSettings) -> int:
    """Rows claimed per transaction: as many as can surely be sent within
    BATCH_BUDGET, even if every one of them waits for a full SMTP timeout (at most 25)."""
    fits = BATCH_BUDGET / timedelta(seconds=2 * max(settings.timeout_seconds, 1))
    return max(1, min(25, int(fits)))


def _due(now: datetime) -> ColumnElement[bool]:
    return or_(
        and_(
            Outbox.status.in_(("queued", "held")),
            or_(Outbox.next_attempt_at.is_(None), Outbox.next_attempt_at <= now),
        ),
        # a lease that ran out: its sender died (or lost the database) meanwhile
        and_(Outbox.status.in_(_IN_FLIGHT), Outbox.next_attempt_at <= now),
    )


class _Run:
    """One deliver_pending call: its token, its clock, the leases it holds and the
    heartbeat thread that renews them."""

    def __init__(self, factory: sessionmaker[Session], now: datetime, lease: timedelta) -> None:
        self.factory = factory
        self.now = now
        self.lease = lease
        self.token = uuid.uuid4().hex
        self._start = time.monotonic()
        self._lock = threading.Lock()
        self._holding: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def at(self) -> datetime:
        """`now` moved on by the time this run has taken (works with a test's clock)."""
        return self.now + timedelta(seconds=time.monotonic() - self._start)

    def hold(self, row_id: int, token: str | None = None) -> None:
        with self._lock:
            self._holding[row_id] = token or self.token
        if self._thread is None:
            self._thread = threading.Thread(target=self._beat, name="outbox-lease", daemon=True)
            self._thread.start()

    def drop(self, row_id: int) -> None:
        with self._lock:
            self._holding.pop(row_id, None)

    def _beat(self) -> None:
        every = max(self.lease.total_seconds() / 4, 0.05)
        while not self._stop.wait(every):
            self.renew()

    def renew(self) -> None:
        with self._lock:
            groups: dict[str, list[int]] = defaultdict(list)
            for row_id, token in self._holding.items():
                groups[token].append(row_id)
        if not groups:
            return
        until = self.at() + self.lease
        try:
            with transaction(self.factory) as session:
                for token, ids in groups.items():
                    _update(
                        session,
                        Outbox.id.in_(ids),
                        Outbox.claimed_by == token,
                        Outbox.status.in_(_IN_FLIGHT),
                        next_attempt_at=until,
                    )
        except _DB_ERRORS as exc:
            # the next beat tries again; the rows stay ours unless the lease runs out
            log.warning("outbox lease renewal failed", extra={"error": scrub(str(exc))})

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


class _RateBook:
    """Who got (or is getting) mail from us in the last hour, for one claim round.

    One query for all of a round's recipients instead of two per row: the sent rows
    inside the sliding window, rows whose delivery is unknown (counted as sent when
    tried), and the rows other senders hold now (a live lease; they count as sent
    now). Rows this round claims are added as it goes, so two replies to one address
    in one round are counted like two rounds would.
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
        since = now - RATE_WINDOW
        rows = session.execute(
            select(Outbox.id, Outbox.to_addr, Outbox.status, Outbox.sent_at, Outbox.attempted_at)
            .where(Outbox.to_addr.in_(wanted))  # stored lower case: uses ix_outbox_to_addr
            .where(
                or_(
                    and_(Outbox.status == "sent", Outbox.sent_at > since),
                    and_(Outbox.status == "unconfirmed", Outbox.attempted_at > since),
                    and_(Outbox.status.in_(_IN_FLIGHT), Outbox.next_attempt_at > now),
                )
            )
        )
        for row_id, to_addr, status, sent_at, attempted_at in rows:
            at = {"sent": sent_at, "unconfirmed": attempted_at}.get(status, now)
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


def _flag_abandoned(
    session: Session,
    same: tuple[ColumnElement[bool], ...],
    row_id: int,
    attempts: int,
    *,
    resend: bool,
) -> bool:
    """A row left `sending` by a sender whose lease ran out: it may be with the relay.

    With `smtp.resend_unconfirmed` it is sent once more (same bytes and Message-ID,
    marked `possible_duplicate`); a second unknown outcome waits for an admin."""
    if resend and _update(
        session,
        *same,
        Outbox.possible_duplicate.is_(False),
        status="queued",
        claimed_by=None,
        possible_duplicate=True,
        last_error=(
            f"UNCONFIRMED: the sender was lost during attempt {attempts}; "
            "sent once more with the same Message-ID (possible duplicate)"
        ),
    ):
        log.warning(
            "reply left sending by a lost sender; sent once more, marked possible_duplicate",
            extra={"outbox_id": row_id, "attempt": attempts},
        )
        return False
    done = _update(
        session,
        *same,
        status="unconfirmed",
        next_attempt_at=None,
        last_error=(
            f"UNCONFIRMED (admin): the sender was lost during attempt {attempts}; "
            "the relay may have the mail, so it is not sent again"
        ),
    )
    if done:
        log.error(
            "reply left sending by a lost sender; maybe delivered, flagged for an admin",
            extra={"outbox_id": row_id, "attempt": attempts},
        )
    return bool(done)


def _claim_batch(run: _Run, smtp: SmtpSettings, stats: DeliveryStats, size: int) -> list[_Claimed]:
    """Claim up to `size` due rows in one transaction (held ones are set aside)."""
    now = run.now
    out: list[_Claimed] = []
    with transaction(run.factory) as session:
        # Every row a round touches leaves the due set (held and claimed rows get a
        # future next_attempt_at, flagged ones none; a row lost to another sender is
        # theirs now), so rounds end; the bound only guards against a bug spinning.
        for _ in range(1_000):
            # the bytes come with the candidates: one query per round, not one per row
            candidates = session.execute(
                select(
                    Outbox.id,
                    Outbox.status,
                    Outbox.attempts,
                    Outbox.claimed_by,
                    Outbox.to_addr,
                    Outbox.raw,
                )
                .where(_due(now))
                .order_by(Outbox.created_at, Outbox.id)
                .limit(size - len(out))
            ).all()
            if not candidates:
                return out
            book = _RateBook(session, [c[4] for c in candidates], now, smtp.rate_limit_per_hour)
            for row_id, status, attempts, claimed_by, to_addr, raw in candidates:
                same = (
                    Outbox.id == row_id,
                    Outbox.status == status,
                    Outbox.attempts == attempts,
                    Outbox.claimed_by.is_(None)
                    if claimed_by is None
                    else Outbox.claimed_by == claimed_by,
                    _due(now),
                )
                if status == "sending":
                    stats.unconfirmed += _flag_abandoned(
                        session, same, row_id, attempts, resend=smtp.resend_unconfirmed
                    )
                    continue
                release = book.release(row_id, to_addr)
                if release is not None:
                    _update(session, *same, status="held", claimed_by=None, next_attempt_at=release)
                    stats.held += 1
                    log.info(
                        "reply held by rate limit",
                        extra={"outbox_id": row_id, "to": mask_email(to_addr), "until": release},
                    )
                    continue
                claimed = _update(
                    session,
                    *same,
                    status="claimed",
                    claimed_by=run.token,
                    next_attempt_at=now + run.lease,
                )
                if claimed != 1:
                    continue  # another sender took it between our read and our update
                book.claimed(row_id, to_addr)
                if raw is None:
                    full = session.get(Outbox, row_id)
                    assert full is not None
                    raw = _rebuild(full, smtp)
                out.append(_Claimed(row_id, to_addr, raw, attempts + 1, status == "claimed"))
            if len(out) >= size:
                return out
        raise RuntimeError("outbox claim loop did not settle")  # pragma: no cover


def _rebuild(row: Outbox, smtp: SmtpSettings) -> bytes:
    """Bytes for a row queued without them (written by hand or an older version)."""
    from mailbot.templating.render import RenderedMail

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


def _release(run: _Run, later: datetime) -> None:
    """Give back the rows this run claimed and never started: no attempt was made."""
    with transaction(run.factory) as session:
        _update(
            session,
            Outbox.claimed_by == run.token,
            Outbox.status == "claimed",
            status="queued",
            claimed_by=None,
            next_attempt_at=later,
        )


def _mark_sending(run: _Run, item: _Claimed) -> bool:
    """Record the attempt before the relay sees it; False when the row is not ours now."""
    with transaction(run.factory) as session:
        done = _update(
            session,
            Outbox.id == item.id,
            Outbox.status == "claimed",
            Outbox.claimed_by == run.token,
            status="sending",
            attempts=item.attempt,
            attempted_at=run.now,
            next_attempt_at=run.at() + run.lease,
        )
    return done == 1


def _our_attempt(row_id: int, token: str, attempt: int) -> tuple[Any, ...]:
    """The row as our attempt left it: the relay answered it, it is still claimed by
    us, and no attempt was made since."""
    return (
        Outbox.id == row_id,
        Outbox.status.in_(_ANSWERED),
        Outbox.claimed_by == token,
        Outbox.attempts == attempt,
    )


def _finish(run: _Run, item: _Claimed, *, only_first_doubt: bool = False, **values: object) -> bool:
    """Record the relay's answer to our attempt (nothing if the row is no longer ours).
    `only_first_doubt`: only if the row was never in doubt before (not yet
    `possible_duplicate`), so an unknown outcome is resent at most once."""
    first = (Outbox.possible_duplicate.is_(False),) if only_first_doubt else ()
    with transaction(run.factory) as session:
        done = _update(session, *_our_attempt(item.id, run.token, item.attempt), *first, **values)
    return done == 1


def _write_sent(factory: sessionmaker[Session], done: _Unrecorded) -> bool:
    """Record a 250; False when the row had meanwhile been changed by someone else."""
    with transaction(factory) as session:
        n = _update(
            session,
            *_our_attempt(done.id, done.token, done.attempt),
            status="sent",
            sent_at=done.sent_at,
            next_attempt_at=None,
            last_error=None,
        )
    return n == 1


def _confirm(run: _Run, item: _Claimed, stats: DeliveryStats, where: dict[str, Any]) -> None:
    """The relay said 250: write `sent` in its own transaction, retried; if the
    database keeps failing, remember it (the row is never sent again from here)."""
    done = _Unrecorded(item.id, run.token, item.attempt, run.now)
    error: Exception | None = None
    for wait in (*CONFIRM_WAITS, None):
        try:
            if not _write_sent(run.factory, done):
                log.warning("reply sent, but its row was changed meanwhile", extra=where)
            run.drop(item.id)
            return
        except _DB_ERRORS as exc:
            error = exc
            if wait is not None:
                time.sleep(wait)
    with _UNRECORDED_LOCK:
        _UNRECORDED.setdefault(run.factory, {})[item.id] = done
    stats.unrecorded += 1
    log.error(
        "reply sent but not recorded (database error); kept in memory, never resent "
        "by this process, recorded when the database answers",
        extra={**where, "error": scrub(str(error))},
    )


def _confirm_unrecorded(run: _Run) -> None:
    """Write the 250s of earlier runs that the database refused at the time."""
    with _UNRECORDED_LOCK:
        waiting = list(_UNRECORDED.get(run.factory, {}).values())
    for done in waiting:
        try:
            _write_sent(run.factory, done)
        except _DB_ERRORS:
            run.hold(done.id, done.token)  # keep its lease alive meanwhile
            continue
        with _UNRECORDED_LOCK:
            _UNRECORDED.get(run.factory, {}).pop(done.id, None)
        log.info("sent reply recorded late", extra={"outbox_id": done.id})


def deliver_pending(
    factory: sessionmaker[Session],
    settings: Settings | SmtpSettings,
    now: datetime,
    *,
    limit: int = 100,
    transport: Transport | None = None,
    rng: random.Random | None = None,
    lease: timedelta | None = None,
) -> DeliveryStats:
    """Send up to `limit` due replies; returns what happened.

    Safe to run from several threads and processes at once. A connection-level
    failure (relay down, TLS, login) or an unanswered message ends the batch: the
    other rows keep their place and their attempt counts. `lease` overrides
    LEASE (tests).
    """
    smtp = settings.smtp if isinstance(settings, Settings) else settings
    own = transport is None
    link: Transport = transport if transport is not None else SmtpTransport(smtp)
    run = _Run(factory, now, lease or lease_for(smtp))
    stats = DeliveryStats()
    left = limit
    try:
        _confirm_unrecorded(run)
        while left > 0:
            batch = _claim_batch(run, smtp, stats, min(left, batch_size(smtp)))
            if not batch:
                break
            for item in batch:
                run.hold(item.id)
            left -= len(batch)
            for item in batch:
                if item.recovered:
                    stats.recovered += 1
                    log.warning(
                        "sending a reply a lost sender had claimed", extra={"outbox_id": item.id}
                    )
                if not _deliver_one(run, link, smtp, item, stats, rng):
                    _release(run, now + backoff(1, rng))
                    left = 0
                    break
    except Exception:
        try:
            _release(run, now)
        except _DB_ERRORS:
            pass  # the lease runs out and another run takes them
        raise
    finally:
        run.stop()
        if own:
            link.close()
    if any(vars(stats).values()):
        log.info("outbox delivery", extra=vars(stats))
    return stats


def _flag_for_admin(
    run: _Run,
    item: _Claimed,
    stats: DeliveryStats,
    status: Literal["failed", "unconfirmed"],
    last_error: str,
    message: str,
    extra: dict[str, object],
) -> None:
    """Leave a reply for an admin: never sent again by itself, counted under its
    status (the stats field of the same name) and logged as an error."""
    _finish(run, item, status=status, next_attempt_at=None, last_error=last_error)
    setattr(stats, status, getattr(stats, status) + 1)
    log.error(message, extra=extra)


def _deliver_one(
    run: _Run,
    link: Transport,
    smtp: SmtpSettings,
    item: _Claimed,
    stats: DeliveryStats,
    rng: random.Random | None,
) -> bool:
    """Send one claimed row and record the outcome; False ends the batch."""
    where = {"outbox_id": item.id, "to": mask_email(item.to_addr), "attempt": item.attempt}
    if not _mark_sending(run, item):
        run.drop(item.id)
        log.warning("claimed reply taken over by another sender; skipped", extra=where)
        return True
    try:
        link.send(smtp.from_address, item.to_addr, item.raw)
    except DeliveryRejected as exc:
        run.drop(item.id)
        _flag_for_admin(
            run,
            item,
            stats,
            "failed",
            f"PERMANENT (admin): {exc}",
            "reply rejected by the relay; flagged for an admin",
            {**where, "error": scrub(str(exc))},
        )
        if isinstance(exc, RecipientRejected):
            with transaction(run.factory) as session:
                mark_undeliverable(session, item.to_addr, reason="recipient refused")
        return True
    except DeliveryUnconfirmed as exc:
        run.drop(item.id)
        if smtp.resend_unconfirmed and _finish(
            run,
            item,
            status="queued",
            claimed_by=None,
            possible_duplicate=True,
            next_attempt_at=run.now + backoff(item.attempt, rng),
            last_error=(
                f"UNCONFIRMED: attempt {item.attempt}: {exc}; "
                "sent once more with the same Message-ID (possible duplicate)"
            ),
            only_first_doubt=True,
        ):
            stats.deferred += 1
            log.warning(
                "reply handed to the relay without an answer; sent once more with the "
                "same Message-ID, marked possible_duplicate",
                extra={**where, "error": scrub(str(exc))},
            )
            return False
        _flag_for_admin(
            run,
            item,
            stats,
            "unconfirmed",
            f"UNCONFIRMED (admin): attempt {item.attempt}: {exc}",
            "reply handed to the relay without an answer; maybe delivered, "
            "flagged for an admin, not resent",
            {**where, "error": scrub(str(exc))},
        )
        return False  # a relay that drops or stalls us: the rest waits a little
    except Exception as exc:  # DeliveryError, or anything unexpected: retried, never lost
        run.drop(item.id)
        error = str(exc) if isinstance(exc, DeliveryError) else f"{exc.__class__.__name__}: {exc}"
        if item.attempt >= smtp.max_attempts:
            _flag_for_admin(
                run,
                item,
                stats,
                "failed",
                f"GAVE UP (admin) after {item.attempt} attempts: {error}",
                "reply gave up after retries; flagged for an admin",
                {**where, "error": scrub(error)},
            )
        else:
            later = run.now + backoff(item.attempt, rng)
            _finish(
                run, item, status="queued", claimed_by=None, next_attempt_at=later, last_error=error
            )
            stats.deferred += 1
            log.warning("reply deferred", extra={**where, "error": scrub(error), "next": later})
        return not isinstance(exc, SmtpConnectError)
    stats.sent += 1
    _confirm(run, item, stats, where)
    log.info("reply sent", extra=where)
    return True


def requeue(session: Session, outbox_id: int, now: datetime) -> bool:
    """An admin fixed the cause of a failed reply, or decided that an unconfirmed one
    must go out again: send it (same bytes and Message-ID). Resending an unconfirmed
    reply records `possible_duplicate`: the first copy may have arrived."""
    done = _update(
        session,
        Outbox.id == outbox_id,
        Outbox.status.in_(("failed", "unconfirmed")),
        **requeued(now),
    )
    return bool(done)
