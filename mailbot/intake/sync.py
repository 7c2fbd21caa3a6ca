"""The sync loop: from the IMAP folders into the ledger, through the processor, to the action.

One pass (`Ingestor.sync_pass`) does, in this order:
1. process rows left `pending` by an earlier run (kill -9) from their raw bytes;
2. per folder: STATUS first, and when UIDVALIDITY and UIDNEXT say nothing is new and
   no mailbox action is owed, stop there (an empty poll costs one round trip and one
   indexed query, whatever the folder size);
3. otherwise SELECT, retry owed mailbox actions, then fetch new UIDs in batches:
   sizes first, bodies only for mail under the size limit, ledger rows committed
   (ledger first), each row processed in its own transaction, then the batch is
   moved (or flagged) and `mailbox_done` recorded.
A UIDVALIDITY change restarts the folder at UID 0; content already in the ledger is
recognised (sha256, Message-ID) and recorded as `duplicate`, never processed again.
With `process=False` (the intake leader of several daemons on PostgreSQL) steps 1
and the in-line processing are left out: rows stay `pending` for the workers
(mailbot.intake.worker), and their mailbox actions are performed once they are owed.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

from sqlalchemy import select

from mailbot.config import Settings
from mailbot.core.errors import MailboxError
from mailbot.intake import ledger
from mailbot.intake.ledger import Factory, Fetched, Processor, ProcessOutcome
from mailbot.intake.mailbox import Mailbox, NewMessage
from mailbot.store.db import transaction, unavailable_is_transient
from mailbot.store.models import Message
from mailbot.store.rawstore import RawStore

__all__ = ["Ingestor", "ProcessOutcome", "Processor", "SyncCounts", "reprocess"]

log = logging.getLogger(__name__)


@dataclass
class SyncCounts:
    fetched: int = 0
    processed: int = 0
    ignored: int = 0
    failed: int = 0
    quarantined: int = 0
    duplicate: int = 0
    skipped: int = 0
    mailbox_actions: int = 0
    mailbox_errors: int = 0

    def add(self, status: str) -> None:
        if hasattr(self, status):
            setattr(self, status, getattr(self, status) + 1)

    def merge(self, other: SyncCounts) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def busy(self) -> bool:
        return self.fetched > 0


# Bodies of one batch are held in memory together: cap their sum, not only their count
# (100 mails of 20 MB each would be 2 GB).
BATCH_BYTES = 64 * 1024 * 1024


def _within_budget(
    new: list[NewMessage], limit: int, budget: int = BATCH_BYTES
) -> list[NewMessage]:
    """The longest prefix whose downloadable bytes fit the budget (at least one mail);
    oversized mail is never downloaded, so it does not count."""
    total = 0
    for i, m in enumerate(new):
        total += m.size if m.size <= limit else 0
        if total > budget and i > 0:
            return new[:i]
    return new


def raw_store_for(settings: Settings) -> RawStore:
    return RawStore(settings.data_dir / "raw")


def watched_folders(settings: Settings) -> tuple[str, ...]:
    """The folders mail is fetched from."""
    imap = settings.imap
    # Watching our own target folders would move mail into a folder we then read
    # again, forever: they are never watched.
    own = {imap.quarantine_folder}
    if imap.processed_action == "move":
        own.add(imap.processed_folder)
    return tuple(f for f in imap.folders if f not in own)


class Ingestor:
    def __init__(
        self,
        settings: Settings,
        factory: Factory,
        processor: Processor,
        *,
        raw_store: RawStore | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        on_batch: Callable[[], None] | None = None,
        process: bool = True,
    ) -> None:
        self.settings = settings
        # False (several daemons on PostgreSQL): this pass only fetches into the ledger
        # and performs owed mailbox actions; every process's worker
        # (mailbot.intake.worker) decides the pending rows
        self.process = process
        # called after each batch is committed and acted on (the daemon starts the
        # outbox delivery there, so replies go out while a burst is still coming in)
        self.on_batch = on_batch
        self.imap = settings.imap
        self.account = settings.imap_account
        self.factory = factory
        self.processor = processor
        self.store = raw_store or raw_store_for(settings)
        self.should_stop = should_stop
        self.folders = watched_folders(settings)
        for f in set(self.imap.folders) - set(self.folders):
            log.warning("not watching a folder mailbot moves mail into", extra={"folder": f})

    # -- one pass ---------------------------------------------------------------

    def sync_pass(self, mailbox: Mailbox) -> SyncCounts:
        counts = SyncCounts()
        if self.process:
            self.process_pending(counts)
        for folder in self.folders:
            if self.should_stop():
                break
            self.sync_folder(mailbox, folder, counts)
        return counts

    def process_pending(self, counts: SyncCounts) -> None:
        """Rows committed to the ledger but never processed (a crash): finish them now."""
        items = [(mid, None) for mid in ledger.pending_ids(self.factory, self.account)]
        for _, status in ledger.process_many(
            self.factory, self.store, items, self.processor, should_stop=self.should_stop
        ):
            counts.add(status)

    def sync_folder(self, mailbox: Mailbox, folder: str, counts: SyncCounts) -> None:
        st = mailbox.status(folder)
        known, owed = ledger.folder_snapshot(self.factory, self.account, folder)
        nothing_new = (
            known is not None and known[0] == st.uidvalidity and st.uidnext - 1 <= known[1]
        )
        if nothing_new and not owed:
            return  # the cheap path: nothing new, nothing owed
        sel = mailbox.select(folder)
        if known is None or known[0] != sel.uidvalidity:
            if known is not None:
                log.warning(
                    "uidvalidity changed, resyncing folder by content",
                    extra={"folder": folder, "old": known[0], "new": sel.uidvalidity},
                )
            ledger.reset_state(self.factory, self.account, folder, sel.uidvalidity)
            last_uid = 0
        else:
            last_uid = known[1]
        self.retry_actions(mailbox, folder, sel.uidvalidity, counts)
        while not self.should_stop():
            new = mailbox.new_messages(last_uid, self.imap.batch_size)
            new = _within_budget(new, self.imap.max_message_bytes)
            if not new:
                break
            self.ingest_batch(mailbox, folder, sel.uidvalidity, new, counts)
            last_uid = new[-1].uid
            if self.on_batch is not None:
                try:
                    self.on_batch()
                except Exception:  # a hook must never cost the intake its pass
                    log.exception("batch hook failed")

    # -- one batch --------------------------------------------------------------

    def ingest_batch(
        self,
        mailbox: Mailbox,
        folder: str,
        uidvalidity: int,
        new: Sequence[NewMessage],
        counts: SyncCounts,
    ) -> None:
        limit = self.imap.max_message_bytes
        small = [m.uid for m in new if m.size <= limit]
        big = [m.uid for m in new if m.size > limit]
        bodies = mailbox.fetch_bodies(small)
        big_ids = mailbox.fetch_message_ids(big)
        items = []
        for m in new:
            if m.size > limit:
                items.append(Fetched(m.uid, m.size, None, big_ids.get(m.uid)))
            elif m.uid in bodies:
                items.append(Fetched(m.uid, m.size, bodies[m.uid]))
            else:
                # expunged by someone else between the two fetches: not ours any more
                log.warning("message vanished before download", extra={"uid": m.uid})
        rows = ledger.record_batch(
            self.factory, self.store, self.account, folder, uidvalidity, items, limit
        )
        counts.fetched += len(rows)
        if not self.process:
            # final on arrival (duplicates, oversized) are acted on now, the rest once a
            # worker has decided them (retry_actions, on a later pass)
            self.act(mailbox, [(r.id, r.uid, r.status) for r in rows], counts)
            for r in rows:
                counts.add(r.status)  # "pending" is not counted
            return
        # A processor may read documents of the whole batch in parallel first
        # (mailbot.intake.prefetch); deciding stays one message at a time, in order.
        prefetch = getattr(self.processor, "prefetch", None)
        if prefetch is not None:
            # it reads claims outside a transaction(): a database gone away is transient
            with unavailable_is_transient():
                prefetch(
                    [bodies[r.uid] for r in rows if r.status == ledger.PENDING and r.uid in bodies]
                )
        done = dict(
            ledger.process_many(
                self.factory,
                self.store,
                [(r.id, bodies.get(r.uid)) for r in rows if r.status == ledger.PENDING],
                self.processor,
                should_stop=self.should_stop,
            )
        )
        results: list[tuple[int, int, str]] = []
        for row in rows:
            status = done.get(row.id, row.status)  # still pending if we were stopped
            counts.add(status)
            results.append((row.id, row.uid, status))
        self.act(mailbox, results, counts)

    # -- mailbox actions --------------------------------------------------------

    def retry_actions(
        self, mailbox: Mailbox, folder: str, uidvalidity: int, counts: SyncCounts
    ) -> None:
        due = ledger.actions_due(self.factory, self.account, folder)
        if not due:
            return
        # A UID from an older UIDVALIDITY names nothing now; the copy under the new
        # UIDVALIDITY is recognised as a duplicate and gets its own action.
        stale = [d[0] for d in due if d[1] != uidvalidity]
        ledger.mark_mailbox_done(self.factory, stale)
        self.act(mailbox, [(d[0], d[2], d[3]) for d in due if d[1] == uidvalidity], counts)

    def act(
        self, mailbox: Mailbox, results: Iterable[tuple[int, int, str]], counts: SyncCounts
    ) -> None:
        """Move/flag the selected folder's messages by final status; record mailbox_done."""
        groups: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for row_id, uid, status in results:
            if status not in ledger.FINAL:
                continue  # pending (stopped) or skipped: nothing to do on the server yet
            target = "quarantine" if status in ledger.TO_QUARANTINE else "processed"
            groups[target].append((row_id, uid))
        for target, pairs in groups.items():
            uids = [uid for _, uid in pairs]
            try:
                if target == "quarantine":
                    mailbox.move(uids, self.imap.quarantine_folder)
                elif self.imap.processed_action == "flag":
                    mailbox.flag(uids)
                else:
                    mailbox.move(uids, self.imap.processed_folder)
            except MailboxError as exc:
                # The ledger already says done; the action is retried on the next pass.
                counts.mailbox_errors += len(pairs)
                log.warning("mailbox action failed", extra={"target": target, "error": str(exc)})
                continue
            ledger.mark_mailbox_done(self.factory, [row_id for row_id, _ in pairs])
            counts.mailbox_actions += len(pairs)


def reprocess(
    factory: Factory,
    processor: Processor,
    *,
    failed: bool | None = None,
    message_ids: Sequence[int] = (),
    raw_store: RawStore | None = None,
) -> SyncCounts:
    """Run the processor again from stored raw bytes: every failed row, or the given ids.

    `failed` defaults to True when no ids are given.
    Only rows that were not processed are eligible (failed, pending, or a quarantined
    or ignored row named explicitly); processed and duplicate rows are never run twice.
    The mail stays where it is on the server (the quarantine folder).
    """
    counts = SyncCounts()
    store = raw_store or RawStore(Path("."))  # ledger rows hold absolute paths
    if failed is None:
        failed = not message_ids
    ids: list[int] = list(message_ids)
    if failed:
        with transaction(factory) as s:
            ids += list(s.scalars(select(Message.id).where(Message.status == "failed")))
    allowed = ("failed", "pending", "quarantined", "ignored") if message_ids else ("failed",)
    for mid in dict.fromkeys(ids):
        status = ledger.process_one(factory, store, mid, processor, allowed=allowed)
        counts.add(status)
        log.info("reprocessed", extra={"ledger_id": mid, "status": status})
    return counts
