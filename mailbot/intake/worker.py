"""Deciding the ledger's pending rows when several processes share one PostgreSQL.

Every `mailbot run` (in a thread beside its intake) and every `mailbot worker` (in
its main thread) runs `Worker.run`: take a batch of pending rows no other process
holds (`FOR UPDATE SKIP LOCKED`), decide them, commit, repeat; when nothing is free,
look again after `idle_seconds`. Who fetched a row does not matter, and a process
that dies mid-batch loses nothing: its row locks go with its connection and the rows
are still `pending` for the others. The mailbox action for a decided row is owed
to the intake leader (the only process holding IMAP), which performs it on its next
pass; `wake_leader` tells a leader in the same process at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from mailbot import metrics
from mailbot.config import Settings
from mailbot.core.errors import TransientError
from mailbot.intake import ledger
from mailbot.intake.ledger import Factory, Processor
from mailbot.intake.sync import raw_store_for, watched_folders
from mailbot.store.rawstore import RawStore

log = logging.getLogger(__name__)

# How often an idle worker asks for pending rows: one indexed query per process.
IDLE_SECONDS = 0.25


class Worker:
    def __init__(
        self,
        settings: Settings,
        factory: Factory,
        processor: Processor,
        stop_event: threading.Event,
        *,
        raw_store: RawStore | None = None,
        on_batch: Callable[[], None] | None = None,
        idle_seconds: float = IDLE_SECONDS,
        batch: int | None = None,
    ) -> None:
        self.settings = settings
        self.factory = factory
        self.processor = processor
        self.stop_event = stop_event
        self.store = raw_store or raw_store_for(settings)
        self.account = settings.imap_account
        self.folders: Sequence[str] = watched_folders(settings)
        self.on_batch = on_batch
        self.idle_seconds = idle_seconds
        # OCR mail: a batch no larger than the reading pool, so one process does not
        # take (and sit on) rows the others could be reading meanwhile
        workers = max(1, settings.ocr.workers)
        self.batch = batch or max(4, 2 * workers)
        self.decided = 0

    def run_once(self) -> int:
        """Take and decide one batch; how many rows were handled (0: nothing free)."""
        prefetch = getattr(self.processor, "prefetch", None)
        try:
            done = ledger.process_available(
                self.factory,
                self.store,
                self.account,
                self.folders,
                self.processor,
                should_stop=self.stop_event.is_set,
                batch=self.batch,
                prefetch=prefetch,
            )
        finally:
            settle = getattr(self.processor, "settle", None)
            if settle is not None:
                settle()
        self.decided += len(done)
        if done and self.on_batch is not None:
            try:
                self.on_batch()
            except Exception:  # a hook must never stop the worker
                log.exception("batch hook failed")
        return len(done)

    def run(self) -> None:
        """Until the stop event is set; database outages are waited out with a backoff."""
        from mailbot.daemon.loop import Backoff  # the same backoff as the intake

        backoff = Backoff(initial=0.5, maximum=30.0)
        while not self.stop_event.is_set():
            try:
                n = self.run_once()
                backoff.reset()
                # the ledger was reached and served: what /healthz calls a poll in a
                # process that may not be the intake leader
                metrics.poll_done()
            except TransientError as exc:
                delay = backoff.next_delay()
                log.warning(
                    "worker interrupted, will retry",
                    extra={"error": f"{exc.__class__.__name__}: {str(exc)[:300]}", "delay": delay},
                )
                self.stop_event.wait(delay)
                continue
            except Exception:
                log.exception("unexpected error in the worker")
                self.stop_event.wait(backoff.next_delay())
                continue
            if n == 0:
                self.stop_event.wait(self.idle_seconds)
        log.info("worker stopped", extra={"decided": self.decided})

    def start_thread(self) -> threading.Thread:
        t = threading.Thread(target=self.run, name="mailbot-worker", daemon=True)
        t.start()
        return t
