"""Background jobs of the daemon (APScheduler 3): outbox delivery and deadline sweeps.

The intake loop owns the main thread; these jobs run in a small thread pool. Each
job is idempotent and safe at any moment: delivery claims rows with a lease, the
sweeps only act on what is due at `now`. Missed runs (downtime, a long OCR) are
coalesced into one, and the sweep also runs once at start to catch up. With several
daemons on one PostgreSQL a sweep run is done by one of them at a time (an advisory
lock; the others skip that run); delivery needs nothing more than its lease.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.orm import Session, sessionmaker

from mailbot import metrics
from mailbot.config import Settings
from mailbot.daemon.leader import SWEEP, exclusive
from mailbot.outbound.delivery import deliver_pending
from mailbot.ruleset.loader import RuleSet
from mailbot.services.sweeps import run_sweeps

log = logging.getLogger(__name__)

DELIVER_BATCH = 100


class Jobs:
    def __init__(
        self,
        factory: sessionmaker[Session],
        settings: Settings,
        rules: Callable[[], RuleSet],
        clock: Callable[[], datetime],
    ) -> None:
        self.factory = factory
        self.settings = settings
        self.rules = rules
        self.clock = clock
        # deliver_soon() while a delivery runs: that run goes round once more instead
        # of a second run being scheduled (which APScheduler would skip, with a warning)
        self._again = threading.Event()
        self._running = False
        self._delivering = threading.Lock()
        self.scheduler = BackgroundScheduler(
            # three threads: a long delivery, a sweep, and a delivery tick that finds
            # the first still running and returns at once
            executors={"default": ThreadPoolExecutor(3)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )

    def deliver(self) -> None:
        """Deliver until nothing due is left: a burst of 1 000 replies must not wait
        for ten scheduled runs of one batch each (measured: it capped delivery at
        about 10 replies/s). A tick while a delivery runs returns at once: that run
        already goes round until nothing is due."""
        if not self._delivering.acquire(blocking=False):
            return
        self._running = True
        try:
            for _ in range(1000):  # bounded; a batch that was not full ends it anyway
                self._again.clear()
                stats = deliver_pending(
                    self.factory, self.settings, self.clock(), limit=DELIVER_BATCH
                )
                if stats.deferred or stats.unconfirmed:
                    break  # the relay is struggling: wait for the next run
                metrics.delivery_done()
                if stats.sent + stats.failed < DELIVER_BATCH and not self._again.is_set():
                    break
        except Exception:
            log.exception("outbox delivery failed; retried on the next run")
        finally:
            self._running = False
            self._delivering.release()

    def sweep(self) -> None:
        try:
            with exclusive(self.factory.kw["bind"], SWEEP) as ours:
                if not ours:
                    log.debug("another process is sweeping; this run is skipped")
                    return
                stats = run_sweeps(self.factory, self.settings, self.rules(), self.clock())
            if stats.claims or stats.rmas or stats.errors:
                log.info(
                    "sweep",
                    extra={"claims": stats.claims, "rmas": stats.rmas, "errors": stats.errors},
                )
        except Exception:
            log.exception("deadline sweep failed; retried on the next run")

    def start(self) -> None:
        sched = self.settings.schedule
        now = datetime.now(UTC)
        # Two instances allowed, the second returning at once when the first still runs
        # (deliver's lock): with one, APScheduler logs a WARNING for every tick that
        # falls into a long delivery ("maximum number of running instances reached").
        self.scheduler.add_job(
            self.deliver,
            "interval",
            seconds=sched.deliver_seconds,
            id="deliver",
            next_run_time=now,
            max_instances=2,
        )
        self.scheduler.add_job(
            self.sweep,
            "interval",
            minutes=sched.sweep_minutes,
            id="sweep",
            next_run_time=now + timedelta(seconds=1),
        )
        self.scheduler.start()

    def deliver_soon(self) -> None:
        """Called after each intake batch and pass: replies go out now, not at the next
        interval. A delivery already running takes the new replies in its next round."""
        self._again.set()
        if self._running:
            return
        job = self.scheduler.get_job("deliver")
        if job is not None:
            job.modify(next_run_time=datetime.now(UTC))

    def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
