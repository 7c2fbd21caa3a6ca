"""The ledger's database side: record fetched mail, process one row, note mailbox actions.

Every function here is one short transaction, so a kill -9 at any point leaves the
ledger in a state the next start can finish from: a `pending` row is processed
from its stored raw bytes; a final row with `mailbox_done = False` gets its
mailbox action retried. A row's status only leaves `pending` in the same commit
as the processor's own writes, which is what makes processing exactly-once.
"""

from __future__ import annotations

import logging
import re
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parseaddr
from typing import Literal

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from mailbot import metrics
from mailbot.core.errors import RowBusy, StoreUnavailable
from mailbot.log import mask_email, scrub
from mailbot.store.db import UNAVAILABLE, transaction, unavailable_is_transient
from mailbot.store.models import MailboxState, Message
from mailbot.store.rawstore import RawStore

log = logging.getLogger(__name__)

PENDING = "pending"
SKIPPED = "skipped"  # what process_one returns when it left the row alone
FINAL = ("processed", "ignored", "quarantined", "failed", "duplicate")
# where the mail goes after its row reaches a final status
TO_QUARANTINE = ("quarantined", "failed")

Factory = sessionmaker[Session]


@dataclass(frozen=True)
class ProcessOutcome:
    """What the processor decided for one message (an exception means "failed")."""

    status: Literal["processed", "ignored"]
    reason: str | None = None


Processor = Callable[[Session, Message, bytes], ProcessOutcome]

# Group commit bounds (see process_many): how long one transaction may keep going.
GROUP_SECONDS = 0.05
GROUP_MAX = 50


@dataclass(frozen=True)
class Fetched:
    """One message as read from the server, before it enters the ledger."""

    uid: int
    size: int
    raw: bytes | None  # None: oversized, never downloaded
    message_id: str | None = None


def now() -> datetime:
    return datetime.now(UTC)


_HEADER_END = re.compile(rb"\r?\n\r?\n")
_FOLD = re.compile(rb"\r?\n[ \t]+")


def header_facts(raw: bytes) -> tuple[str | None, str | None]:
    """(Message-ID, masked From) from the header block only; never raises.

    A line scan instead of the email package: this runs for every fetched mail and
    the full parser costs more than the rest of the ledger write.
    """
    end = _HEADER_END.search(raw)
    head = _FOLD.sub(b" ", raw[: end.start()] if end else raw)
    mid = sender = None
    for line in head.split(b"\n"):
        name, sep, value = line.partition(b":")
        if not sep:
            continue
        key = name.strip().lower()
        if key == b"message-id" and mid is None:
            mid = " ".join(value.decode("ascii", "replace").split())[:998] or None
        elif key == b"from" and sender is None:
            address = parseaddr(value.decode("utf-8", "replace").strip())[1]
            sender = mask_email(address)[:320] if address else None
    return mid, sender


def load_state(session: Session, account: str, folder: str) -> MailboxState | None:
    return session.get(MailboxState, (account, folder))


def reset_state(factory: Factory, account: str, folder: str, uidvalidity: int) -> None:
    """A new UIDVALIDITY: start again from UID 0 (duplicates are caught by content)."""
    with transaction(factory) as s:
        state = load_state(s, account, folder)
        if state is None:
            s.add(
                MailboxState(
                    account=account,
                    folder=folder,
                    uidvalidity=uidvalidity,
                    last_uid=0,
                    updated_at=now(),
                )
            )
        else:
            state.uidvalidity, state.last_uid, state.updated_at = uidvalidity, 0, now()


def _originals(
    s: Session,
    account: str,
    folder: str,
    uidvalidity: int,
    shas: Sequence[str],
    mids: Sequence[str],
) -> tuple[dict[str, int], dict[str, int]]:
    """Earlier ledger rows for the same mails, one query each for the whole batch:
    identical bytes anywhere in the account (sha256 -> id), or the same Message-ID in
    this folder under an older UIDVALIDITY, i.e. the mail before a resync (mid -> id)."""
    by_sha: dict[str, int] = {}
    by_mid: dict[str, int] = {}
    if shas:
        q = (
            select(Message.sha256, func.min(Message.id))
            .where(Message.sha256.in_(shas), Message.account == account)
            .where(Message.status != "duplicate")
            .group_by(Message.sha256)
        )
        by_sha = {sha: int(i) for sha, i in s.execute(q) if sha}
    if mids:
        q = (
            select(Message.message_id, func.min(Message.id))
            .where(Message.message_id.in_(mids), Message.account == account)
            .where(Message.folder == folder, Message.uidvalidity != uidvalidity)
            .where(Message.status != "duplicate")
            .group_by(Message.message_id)
        )
        by_mid = {mid: int(i) for mid, i in s.execute(q) if mid}
    return by_sha, by_mid


def record_batch(
    factory: Factory,
    store: RawStore,
    account: str,
    folder: str,
    uidvalidity: int,
    items: Sequence[Fetched],
    max_bytes: int,
) -> list[Message]:
    """Ledger first: raw bytes durable on disk, then one commit with every row and the
    new last_uid.

    A location already in the ledger (we crashed after this commit last time) is
    skipped; a mail seen before under another location becomes `duplicate`.
    """
    stored = store.put_many([i.raw for i in items if i.raw is not None])
    prepared = []
    for item in items:
        sha = path = None
        mid, sender = item.message_id, None
        if item.raw is not None:
            sha, p = stored.pop(0)
            path = str(p)
            mid, sender = header_facts(item.raw)
        prepared.append((item, sha, path, mid, sender))
    rows: list[Message] = []
    with transaction(factory) as s:
        state = load_state(s, account, folder)
        assert state is not None and state.uidvalidity == uidvalidity, "reset_state first"
        taken = set(
            s.scalars(
                select(Message.uid).where(
                    Message.account == account,
                    Message.folder == folder,
                    Message.uidvalidity == uidvalidity,
                    Message.uid.in_([i.uid for i in items]),
                )
            )
        )
        by_sha, by_mid = _originals(
            s,
            account,
            folder,
            uidvalidity,
            [p[1] for p in prepared if p[1]],
            [p[3] for p in prepared if p[3]],
        )
        in_batch: dict[str, Message] = {}
        for item, sha, path, mid, sender in prepared:
            if item.uid in taken:
                continue
            status, reason = PENDING, None
            original = (by_sha.get(sha) if sha else None) or (by_mid.get(mid) if mid else None)
            if original is None and sha in in_batch:
                s.flush()  # rare: the same bytes twice in one batch; the first needs its id
                original = in_batch[sha].id
            if original is not None:
                status, reason = "duplicate", f"same mail as ledger #{original}"
            elif item.raw is None:
                status, reason = "quarantined", f"too_large: {item.size} > {max_bytes} bytes"
            row = Message(
                account=account,
                folder=folder,
                uidvalidity=uidvalidity,
                uid=item.uid,
                message_id=mid,
                sha256=sha,
                size=item.size,
                raw_path=path,
                status=status,
                reason=reason,
                from_masked=sender,
                attempts=0,
                mailbox_done=False,
                fetched_at=now(),
                processed_at=None if status == PENDING else now(),
            )
            s.add(row)
            rows.append(row)
            if sha and status == PENDING:
                in_batch.setdefault(sha, row)
        state.last_uid = max([state.last_uid, *(i.uid for i in items)])
        state.updated_at = now()
    for row in rows:
        if row.status != PENDING:  # duplicates and oversized mail are final on arrival
            metrics.message_finished(row.status)
    return rows


def pending_ids(factory: Factory, account: str) -> list[int]:
    with transaction(factory) as s:
        stmt = select(Message.id).where(Message.account == account, Message.status == PENDING)
        return list(s.scalars(stmt.order_by(Message.id)))


def _apply(
    s: Session,
    store: RawStore,
    message_id: int,
    processor: Processor,
    allowed: tuple[str, ...],
    raw: bytes | None,
    *,
    locked: bool = False,
) -> str:
    """The processor's work and the row's new status, in the caller's transaction.

    `locked`: the caller already loaded the row FOR UPDATE in this transaction, so
    the identity map answers without another round trip.
    """
    lock = None if locked else True
    row = s.get(Message, message_id, with_for_update=lock)
    # not eligible (already processed, or oversized without raw bytes): untouched
    if row is None or row.status not in allowed or row.raw_path is None:
        return SKIPPED
    if raw is None:
        raw = store.get(row.raw_path, row.sha256)
    outcome = processor(s, row, raw)
    if outcome.status not in ("processed", "ignored"):
        raise ValueError(f"processor returned status {outcome.status!r}")
    row.status, row.reason = outcome.status, outcome.reason
    row.error = None
    row.attempts += 1
    row.processed_at = now()
    return outcome.status


def process_one(
    factory: Factory,
    store: RawStore,
    message_id: int,
    processor: Processor,
    *,
    allowed: tuple[str, ...] = (PENDING,),
    raw: bytes | None = None,
) -> str:
    """Run the processor for one ledger row in one transaction; return the new status.

    A row not in `allowed` (someone already processed it) is left alone (SKIPPED):
    this check and the status change share the processor's transaction, so a row is
    never processed twice. An exception rolls everything back and marks the row
    failed. `raw` saves re-reading the file when the caller has just stored it.
    """
    try:
        with transaction(factory) as s:
            status = _apply(s, store, message_id, processor, allowed, raw)
        if status != SKIPPED:
            metrics.message_finished(status)
        return status
    except StoreUnavailable:
        # The database failing is not the message's fault: the row stays pending and
        # the daemon backs off, instead of a good mail being quarantined.
        raise
    except Exception as exc:
        _mark_failed(factory, message_id, exc)
        metrics.message_finished("failed")
        return "failed"


def _mark_failed(factory: Factory, message_id: int, exc: Exception) -> None:
    trace = scrub(traceback.format_exc())[-8000:]
    log.warning(
        "message processing failed",
        extra={"ledger_id": message_id, "error": scrub(f"{exc.__class__.__name__}: {exc}")},
    )
    with transaction(factory) as s:
        row = s.get(Message, message_id)
        assert row is not None
        row.status, row.error = "failed", trace
        row.reason = scrub(f"exception: {exc.__class__.__name__}")[:200]
        row.attempts += 1
        row.processed_at = now()


def _group_full(
    group: Sequence[tuple[int, str]],
    began: float,
    group_seconds: float,
    should_stop: Callable[[], bool],
) -> bool:
    """Whether a group commit ends here: GROUP_MAX rows, `group_seconds` since it
    began (time.monotonic()), or a stop request."""
    return len(group) >= GROUP_MAX or time.monotonic() - began >= group_seconds or should_stop()


def _count_finished(group: Sequence[tuple[int, str]]) -> None:
    """Count a committed group's rows in the metrics (a skipped row was left alone)."""
    for _, status in group:
        if status != SKIPPED:
            metrics.message_finished(status)


def process_many(
    factory: Factory,
    store: RawStore,
    items: Sequence[tuple[int, bytes | None]],
    processor: Processor,
    *,
    should_stop: Callable[[], bool] = lambda: False,
    group_seconds: float = GROUP_SECONDS,
) -> list[tuple[int, str]]:
    """Process pending rows in order; return (id, status) for each one handled.

    Group commit: consecutive messages share one transaction until it has run for
    `group_seconds` (or GROUP_MAX rows), so cheap messages do not each pay a commit,
    while a slow one (OCR) still commits right after itself. Exactly-once holds as
    for `process_one`: each row's status changes in the same commit as its work. If
    any message raises, the whole group is rolled back and redone one transaction per
    message, so only the culprit is marked failed. Rows after a stop request stay
    pending. Processors must not commit themselves.
    """
    out: list[tuple[int, str]] = []
    i = 0
    while i < len(items) and not should_stop():
        start, began = i, time.monotonic()
        session = factory()
        try:
            group: list[tuple[int, str]] = []
            with unavailable_is_transient():
                # one round trip loads (and on PostgreSQL locks) every row this group may take
                ahead = [mid for mid, _ in items[i : i + GROUP_MAX]]
                # (held in a variable: the identity map only keeps weak references)
                held = session.scalars(
                    select(Message).where(Message.id.in_(ahead)).with_for_update()
                ).all()
                while i < len(items):
                    mid, raw = items[i]
                    status = _apply(session, store, mid, processor, (PENDING,), raw, locked=True)
                    group.append((mid, status))
                    i += 1
                    if _group_full(group, began, group_seconds, should_stop):
                        break
                session.commit()
            _count_finished(group)
            out.extend(group)
            del held
        except StoreUnavailable:  # as in process_one: not the messages' fault
            session.rollback()
            raise
        except Exception:
            session.rollback()
            # items[i] raised (or, if the commit raised, items[i] is the next one, which
            # is then simply processed alone): redo start..i one message at a time.
            for mid, raw in items[start : i + 1]:
                out.append((mid, process_one(factory, store, mid, processor, raw=raw)))
            i += 1
        finally:
            session.close()
    return out


# session.info key: how many decisions the current transaction already holds. A decision
# that must lock a claim (or RMA) row waits for it only when it is the first one; later
# ones take the lock only if it is free (see mailbot.intake.pipeline.lock_for_decision),
# so two processes can never wait on each other's groups (no deadlock).
GROUP_WORK = "mailbot.group_work"


def lock_pending(
    session: Session,
    account: str,
    folders: Sequence[str],
    limit: int,
    ids: Sequence[int] | None = None,
) -> list[Message]:
    """Pending rows no other transaction holds, locked for this one, oldest first.

    `FOR UPDATE SKIP LOCKED`: several processes take disjoint sets without waiting for
    each other. Pending rows always have mailbox_done False, which lets the query use
    the (account, folder, mailbox_done) index instead of reading the whole ledger.
    """
    q = select(Message).where(
        Message.account == account,
        Message.folder.in_(list(folders)),
        Message.mailbox_done == False,  # noqa: E712 (uses the index)
        Message.status == PENDING,
    )
    if ids is not None:
        q = q.where(Message.id.in_(list(ids)))
    q = q.order_by(Message.id).limit(limit).with_for_update(skip_locked=True)
    # populate_existing: a row taken again after a commit is read as it is now
    return list(session.scalars(q.execution_options(populate_existing=True)))


def _read_raw(store: RawStore, row: Message) -> bytes | None:
    try:
        return store.get(row.raw_path, row.sha256) if row.raw_path else None
    except (OSError, ValueError):
        return None  # _apply reads it again and fails the row with the real error


def process_available(
    factory: Factory,
    store: RawStore,
    account: str,
    folders: Sequence[str],
    processor: Processor,
    *,
    should_stop: Callable[[], bool] = lambda: False,
    batch: int = GROUP_MAX,
    group_seconds: float = GROUP_SECONDS,
    prefetch: Callable[[Sequence[bytes]], None] | None = None,
) -> list[tuple[int, str]]:
    """Take up to `batch` pending rows no other process holds, process them, commit;
    return (id, status) for each one handled (empty: nothing was free).

    The shared-database counterpart of `process_many`, run by every daemon and worker
    on PostgreSQL. Exactly-once as there: a row leaves `pending` in the commit of its
    own work, under its row lock. Group commit as there, but each decision runs in a
    savepoint, so one that raises is redone alone without undoing the others, and one
    whose claim another process is deciding (RowBusy) is put back: the group commits
    and the row starts the next group, where it may wait for the claim. After each
    commit the rest of the batch is taken again (SKIP LOCKED): what another process
    took meanwhile is its own.
    """
    out: list[tuple[int, str]] = []
    session = factory()
    try:
        with unavailable_is_transient():
            queue = lock_pending(session, account, folders, batch)
            if not queue:
                session.rollback()
                return out
            raws = {row.id: _read_raw(store, row) for row in queue}
            if prefetch is not None:
                prefetch([raw for raw in raws.values() if raw is not None])
            ids = [row.id for row in queue]
            held = queue  # the identity map only keeps weak references
            group: list[tuple[int, str]] = []
            retry_alone: list[int] = []
            began = time.monotonic()
            while ids:
                mid = ids[0]
                session.info[GROUP_WORK] = len(group)
                busy = False
                try:
                    with session.begin_nested():
                        status = _apply(
                            session, store, mid, processor, (PENDING,), raws.get(mid), locked=True
                        )
                    group.append((mid, status))
                    ids.pop(0)
                except (StoreUnavailable, *UNAVAILABLE):
                    raise
                except RowBusy:
                    if not group:  # cannot happen (the first one waits); never spin on it
                        retry_alone.append(ids.pop(0))
                    busy = True
                except Exception:
                    # rolled back to the savepoint; redone alone below, failed if it
                    # raises again (as process_many does)
                    retry_alone.append(ids.pop(0))
                    busy = True  # commit now: process_one needs the row unlocked
                if not (busy or not ids or _group_full(group, began, group_seconds, should_stop)):
                    continue
                session.commit()
                _count_finished(group)
                out.extend(group)
                group = []
                for rid in retry_alone:
                    status = process_one(factory, store, rid, processor, raw=raws.get(rid))
                    out.append((rid, status))
                retry_alone = []
                if not ids or should_stop():
                    break
                held = lock_pending(session, account, folders, len(ids), ids=ids)
                taken = {row.id for row in held}
                ids = [i for i in ids if i in taken]
                began = time.monotonic()
            session.commit()
            del held
    except StoreUnavailable:
        session.rollback()
        raise
    finally:
        session.info.pop(GROUP_WORK, None)
        session.close()
    return out


def folder_snapshot(
    factory: Factory, account: str, folder: str
) -> tuple[tuple[int, int] | None, bool]:
    """((uidvalidity, last_uid) or None, any mailbox action owed?) in one transaction:
    what the per-poll "anything to do?" check needs, in as few round trips as possible."""
    with transaction(factory) as s:
        state = load_state(s, account, folder)
        owed = s.scalars(
            select(Message.id)
            .where(
                Message.account == account,
                Message.folder == folder,
                Message.mailbox_done == False,  # noqa: E712 (uses the index)
                Message.status.in_(FINAL),
            )
            .limit(1)
        ).first()
        known = (state.uidvalidity, state.last_uid) if state is not None else None
        return known, owed is not None


def actions_due(factory: Factory, account: str, folder: str) -> list[tuple[int, int, int, str]]:
    """(id, uidvalidity, uid, status) of final rows whose mailbox action is not done."""
    with transaction(factory) as s:
        stmt = select(Message.id, Message.uidvalidity, Message.uid, Message.status).where(
            Message.account == account,
            Message.folder == folder,
            Message.mailbox_done == False,  # noqa: E712 (uses the index; IS FALSE does not)
            Message.status.in_(FINAL),
        )
        return [tuple(r) for r in s.execute(stmt.order_by(Message.uid))]  # type: ignore[misc]


def mark_mailbox_done(factory: Factory, ids: Sequence[int]) -> None:
    if not ids:
        return
    with transaction(factory) as s:
        s.execute(update(Message).where(Message.id.in_(list(ids))).values(mailbox_done=True))
