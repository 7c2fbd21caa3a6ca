"""The long-running intake: connect, sync, wait (IDLE or poll), reconnect on failure.

`run()` never gives up on a transient failure (`TransientError`: the IMAP server or
the database going away): it reconnects after an exponential backoff with jitter (so
a fleet does not reconnect in lockstep, and a dead server is never hammered). The
backoff starts over only after a pass that did its work (sync and database), not
after a mere IMAP login: with the database down, logging in again every second would
be a reconnect storm. SIGTERM/SIGINT set the stop event: the message being processed
is finished, the loop exits, 0 is returned. SIGHUP asks for the `on_reload` hook
(rules, templates, log level), run in the main loop between passes, never inside
one; the daemon keeps running. `once()` drains everything pending and returns the
counts (`mailbot once`). The periodic work the command adds (outbox delivery, deadline
sweeps) runs through the `on_idle_tick` hook after every pass; its failures are
logged, never fatal. Liveness goes to `mailbot.metrics`: every successful pass is a
poll, and the loop beats (the systemd watchdog) after each pass and each second of
a deliberate wait (IDLE, poll interval, reconnect backoff): a loop stuck inside a
pass stops beating, a server outage does not (a restart would not cure it; /healthz
reports it). `on_connected` runs after each successful connect (READY=1).

With `leader` (several daemons on PostgreSQL, see mailbot.daemon.leader) the intake
runs only while this process holds the intake lock: it tries to take it about every
second, and drops the IMAP connection as soon as it finds the lock gone (checked
after every pass and every second of IDLE). A leader only fetches into the ledger
and performs the mailbox actions owed; deciding is every process's worker's job.
"""

from __future__ import annotations

import logging
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from mailbot import metrics
from mailbot.config import Settings
from mailbot.core.errors import TransientError
from mailbot.daemon.leader import AdvisoryLock
from mailbot.intake import ledger
from mailbot.intake.ledger import Factory, Processor
from mailbot.intake.mailbox import Mailbox, TokenSource
from mailbot.intake.sync import Ingestor, SyncCounts
from mailbot.store.db import make_engine, session_factory, transaction
from mailbot.store.models import MailboxState

log = logging.getLogger(__name__)

Hook = Callable[[], None]
# How long a wait goes without looking at a SIGHUP: a reload is applied within this.
WAKE_SECONDS = 1.0
# How often a standby daemon tries to take the intake over: a new leader within this
# (plus the time the database needs to notice the old one's connection is gone).
LEADER_RETRY_SECONDS = 1.0


@dataclass
class Backoff:
    """Exponential backoff with "equal jitter": half the step fixed, half random.

    The fixed half means a delay is never ~0, so a failing server never causes a
    busy loop; the random half spreads reconnects out.
    """

    initial: float = 1.0
    maximum: float = 300.0
    factor: float = 2.0
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next_delay(self) -> float:
        step = min(self.maximum, self.initial * self.factor**self.attempt)
        self.attempt += 1
        return step / 2 + self.rng.uniform(0, step / 2)

    def reset(self) -> None:
        self.attempt = 0


def default_factory(settings: Settings) -> Factory:
    return session_factory(make_engine(settings.database_url))


def _call_hook(hook: Hook | None) -> None:
    if hook is None:
        return
    try:
        hook()
    except Exception:  # periodic extras must never stop the intake
        log.exception("periodic hook failed")


class _Signals:
    """SIGTERM/SIGINT set the stop event, SIGHUP asks for a reload, while installed
    (main thread only). The handlers only set flags: the reload runs in the loop, at a
    point where no transaction or IMAP command is half done."""

    def __init__(self, stop_event: threading.Event, on_reload: Hook | None = None) -> None:
        self.stop_event = stop_event
        self.on_reload = on_reload
        self.reload_requested = threading.Event()
        self.saved: dict[int, Any] = {}

    def __enter__(self) -> _Signals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self.saved[sig] = signal.signal(sig, self._handle)
            hup = getattr(signal, "SIGHUP", None)  # not on Windows
            if hup is not None:
                self.saved[hup] = signal.signal(hup, self._hangup)
        return self

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        log.info("stop requested", extra={"signal": signal.Signals(signum).name})
        self.stop_event.set()

    def _hangup(self, _signum: int, _frame: FrameType | None) -> None:
        self.reload_requested.set()

    def interrupted(self) -> bool:
        """Should a wait end early (stop, or a reload to apply)?"""
        return self.stop_event.is_set() or self.reload_requested.is_set()

    def apply_reload(self) -> None:
        """Run the reload hook if SIGHUP asked for it; its failures are logged, never fatal."""
        if not self.reload_requested.is_set():
            return
        self.reload_requested.clear()
        log.info("reload requested", extra={"signal": "SIGHUP"})
        if self.on_reload is None:
            log.info("nothing to reload in this process")
            return
        try:
            self.on_reload()
        except Exception:
            log.exception("reload failed; the previous configuration stays in force")

    def pause(self, seconds: float) -> None:
        """Wait up to `seconds` or until stopped; a SIGHUP meanwhile is applied at once
        and the wait goes on (a backoff is not cut short by a reload)."""
        left = seconds
        while left > 0 and not self.stop_event.is_set():
            step = min(WAKE_SECONDS, left)
            if self.stop_event.wait(step):
                return
            left -= step
            metrics.beat()
            self.apply_reload()

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)


def _beat_and_check(signals: _Signals) -> bool:
    # asked about once a second during IDLE, between socket reads that returned: the
    # loop is alive (a wait as long as poll_seconds must not look like a hang)
    metrics.beat()
    return signals.interrupted()


def _behind(factory: Factory, account: str, folder: str, uidvalidity: int, uidnext: int) -> bool:
    """Did mail arrive between our pass and the SELECT that starts IDLE?"""
    with transaction(factory) as s:
        state = s.get(MailboxState, (account, folder))
        return state is None or state.uidvalidity != uidvalidity or state.last_uid < uidnext - 1


def _idle_check(signals: _Signals, wake: Callable[[], bool]) -> Callable[[], bool]:
    return lambda: _beat_and_check(signals) or wake()


def _never() -> bool:
    return False


def _leader_wake(leader: AdvisoryLock, ingestor: Ingestor, folder: str) -> Callable[[], bool]:
    """For IDLE: end the wait when the lock is gone, or when workers decided mail whose
    mailbox action this leader owes (checked at most once a second)."""
    started = time.monotonic()

    def wake() -> bool:
        if time.monotonic() - started < WAKE_SECONDS:
            return False
        if not leader.held():
            return True
        return ledger.folder_snapshot(ingestor.factory, ingestor.account, folder)[1]

    return wake


def _serve(
    mailbox: Mailbox,
    ingestor: Ingestor,
    settings: Settings,
    signals: _Signals,
    on_idle_tick: Hook | None,
    wait_seconds: float,
    on_pass_done: Hook,
    leader: AdvisoryLock | None = None,
) -> None:
    imap = settings.imap
    stop_event = signals.stop_event
    use_idle = imap.idle and mailbox.has("IDLE")
    while not stop_event.is_set() and (leader is None or leader.held()):
        counts = ingestor.sync_pass(mailbox)
        # the pass reached IMAP and the database and did its work: the connection is
        # good again, so the next failure starts the backoff from the beginning
        on_pass_done()
        metrics.poll_done()
        if counts.fetched:
            log.info("sync pass", extra=counts.as_dict())
        _call_hook(on_idle_tick)
        signals.apply_reload()
        if stop_event.is_set():
            return
        if use_idle:
            if not ingestor.folders:
                signals.pause(wait_seconds)
                continue
            folder = ingestor.folders[0]
            sel = mailbox.select(folder)
            if _behind(ingestor.factory, ingestor.account, folder, sel.uidvalidity, sel.uidnext):
                continue
            # Other folders and the hook are served at least every wait_seconds.
            wake = _leader_wake(leader, ingestor, folder) if leader is not None else _never
            mailbox.idle_wait(wait_seconds, _idle_check(signals, wake))
            metrics.beat()
        else:
            signals.pause(wait_seconds)


def run(
    settings: Settings,
    processor: Processor,
    stop_event: threading.Event,
    *,
    on_idle_tick: Hook | None = None,
    on_batch: Hook | None = None,
    factory: Factory | None = None,
    backoff: Backoff | None = None,
    tick_seconds: float | None = None,
    mailbox_factory: Callable[[], Mailbox] | None = None,
    on_reload: Hook | None = None,
    on_connected: Hook | None = None,
    leader: AdvisoryLock | None = None,
) -> int:
    """Serve until `stop_event` is set (or SIGTERM/SIGINT); returns the exit code 0.

    `tick_seconds` caps how long one IDLE/poll wait lasts, i.e. how often
    `on_idle_tick` runs when no mail arrives (default: poll_seconds). `on_batch`
    runs after each fetched batch is committed, within a pass. `on_reload` runs
    after a SIGHUP, between passes (within about a second when waiting).
    `on_connected` runs after each login and folder check that succeeded, and when a
    standby process starts waiting for the intake lock. `leader`: intake only while
    this process holds that lock, fetching only (see the module docstring).
    """
    factory = factory or default_factory(settings)
    backoff = backoff or Backoff()
    tokens = TokenSource(
        settings.imap.oauth2_token_command,
        settings.imap.oauth2_token_file,
        settings.imap.timeout_seconds,
    )
    make_mailbox = mailbox_factory or (lambda: Mailbox(settings.imap, tokens=tokens))
    ingestor = Ingestor(
        settings,
        factory,
        processor,
        should_stop=stop_event.is_set,
        on_batch=on_batch,
        process=leader is None,
    )
    wait_seconds = float(min(settings.imap.poll_seconds, tick_seconds or 1e9))
    with _Signals(stop_event, on_reload) as signals:
        while not stop_event.is_set():
            signals.apply_reload()
            if leader is not None and not _take_leadership(leader, signals, on_connected):
                break  # stopped while standing by
            mailbox = make_mailbox()
            try:
                mailbox.connect()
                _prepare_folders(mailbox, settings)
                _call_hook(on_connected)
                _serve(
                    mailbox,
                    ingestor,
                    settings,
                    signals,
                    on_idle_tick,
                    wait_seconds,
                    backoff.reset,
                    leader,
                )
            except TransientError as exc:
                log.warning(
                    "intake interrupted, will reconnect",
                    extra={"error": f"{exc.__class__.__name__}: {str(exc)[:300]}"},
                )
            except Exception:
                # A bug, not the network: log it loudly, but keep the daemon alive;
                # the backoff keeps a deterministic failure from spinning.
                log.exception("unexpected error in the intake loop")
            finally:
                mailbox.close()
            if stop_event.is_set():
                break
            if leader is not None and not leader.held():
                # no backoff: whoever takes the lock next (maybe this process) starts now
                log.warning("intake lock lost; this process stops fetching")
                continue
            delay = backoff.next_delay()
            log.info(
                "reconnecting",
                extra={"delay_seconds": round(delay, 2), "attempt": backoff.attempt},
            )
            signals.pause(delay)
    if leader is not None:
        leader.release()
    log.info("intake stopped")
    return 0


def _take_leadership(leader: AdvisoryLock, signals: _Signals, on_standby: Hook | None) -> bool:
    """Wait until this process holds the intake lock (True) or is stopped (False);
    meanwhile the loop beats and applies reloads as in any other wait."""
    standing_by = False
    while not signals.stop_event.is_set():
        if leader.try_acquire():
            log.info("intake leader: this process fetches mail now")
            return True
        if not standing_by:
            log.info("another process holds the intake; standing by")
            _call_hook(on_standby)  # ready: this process decides mail meanwhile
            standing_by = True
        metrics.beat()
        signals.pause(LEADER_RETRY_SECONDS)
        signals.apply_reload()
    return False


def _prepare_folders(mailbox: Mailbox, settings: Settings) -> None:
    # A missing watched folder is created (empty) rather than failing every pass and
    # starving the other folders; a deleted one comes back with a new UIDVALIDITY.
    for folder in settings.imap.folders:
        mailbox.ensure_folder(folder)
    mailbox.ensure_folder(settings.imap.quarantine_folder)
    if settings.imap.processed_action == "move":
        mailbox.ensure_folder(settings.imap.processed_folder)


def once(
    settings: Settings,
    processor: Processor,
    *,
    factory: Factory | None = None,
    mailbox_factory: Callable[[], Mailbox] | None = None,
) -> SyncCounts:
    """Process everything pending and new, then return the counts (raises MailboxError)."""
    factory = factory or default_factory(settings)
    mailbox = mailbox_factory() if mailbox_factory else Mailbox(settings.imap)
    ingestor = Ingestor(settings, factory, processor)
    with mailbox:
        _prepare_folders(mailbox, settings)
        return ingestor.sync_pass(mailbox)


def wait_until_stopped(stop_event: threading.Event, *, on_reload: Hook | None = None) -> int:
    """The main thread of a process whose work runs in other threads (`mailbot worker`):
    SIGTERM/SIGINT set `stop_event`, SIGHUP runs `on_reload`, the loop beats each
    second. Returns 0 once stopped."""
    with _Signals(stop_event, on_reload) as signals:
        while not stop_event.is_set():
            signals.pause(WAKE_SECONDS)
            signals.apply_reload()
    return 0
