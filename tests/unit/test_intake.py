"""Intake pieces without a server: backoff, batching and the cheap poll with an in-memory
mailbox, the open-range filter, XOAUTH2 refresh, the raw store, the messages command."""

from __future__ import annotations

import io
import json
import logging
import os
import random
import signal
import threading
from pathlib import Path
from typing import Any, cast

import pytest
from imapclient.exceptions import LoginError
from sqlalchemy import create_engine

from mailbot.cli.messages import run_messages_list, run_messages_stats
from mailbot.config import ImapSettings, Settings
from mailbot.core.errors import MailboxError
from mailbot.daemon import loop
from mailbot.daemon.loop import Backoff
from mailbot.intake.ledger import Factory
from mailbot.intake.mailbox import FolderStatus, Mailbox, NewMessage, TokenSource, _uid_set
from mailbot.intake.sync import Ingestor
from mailbot.store.db import session_factory
from mailbot.store.rawstore import RawStore, sha256_hex
from tests.integration._ingest_helpers import (
    RAISE_MARK,
    make_factory,
    make_mail,
    make_settings,
    processing_counts,
    recording_processor,
    status_counts,
)


class FakeMailbox:
    """In-memory stand-in for Mailbox: one folder's messages and a call log."""

    def __init__(self, mails: dict[int, bytes], uidvalidity: int = 7) -> None:
        self.mails = dict(mails)
        self.uidvalidity = uidvalidity
        self.calls: list[tuple[str, Any]] = []
        self.moved: dict[str, list[int]] = {}
        self.idle = False
        self.top = max(mails, default=0)
        self.fail_connects = 0

    def connect(self) -> FakeMailbox:
        self.calls.append(("connect", None))
        if self.fail_connects > 0:
            self.fail_connects -= 1
            raise MailboxError("connection refused")
        return self

    def close(self) -> None:
        pass

    def __enter__(self) -> FakeMailbox:
        return self.connect()

    def __exit__(self, *a: object) -> None:
        pass

    def has(self, cap: str) -> bool:
        return cap == "IDLE" and self.idle

    def ensure_folder(self, name: str) -> None:
        pass

    def status(self, folder: str) -> FolderStatus:
        self.calls.append(("status", folder))
        return FolderStatus(self.uidvalidity, self.top + 1, len(self.mails))

    def select(self, folder: str) -> FolderStatus:
        self.calls.append(("select", folder))
        return self.status(folder)

    def new_messages(self, after_uid: int, limit: int) -> list[NewMessage]:
        uids = sorted(u for u in self.mails if u > after_uid)[:limit]
        return [NewMessage(u, len(self.mails[u])) for u in uids]

    def fetch_bodies(self, uids: list[int]) -> dict[int, bytes]:
        self.calls.append(("bodies", list(uids)))
        return {u: self.mails[u] for u in uids}

    def fetch_message_ids(self, uids: list[int]) -> dict[int, str]:
        return {}

    def move(self, uids: list[int], target: str) -> None:
        self.moved.setdefault(target, []).extend(uids)
        for u in uids:
            self.mails.pop(u, None)

    def flag(self, uids: list[int]) -> None:
        self.calls.append(("flag", list(uids)))


def test_backoff_grows_is_capped_jittered_and_never_zero() -> None:
    b = Backoff(initial=1.0, maximum=8.0, rng=random.Random(1))
    delays = [b.next_delay() for _ in range(8)]
    steps = [1, 2, 4, 8, 8, 8, 8, 8]
    for d, step in zip(delays, steps, strict=True):
        assert step / 2 <= d <= step
    assert len({round(d, 6) for d in delays[3:]}) > 1  # jitter: not lockstep
    b.reset()
    assert b.next_delay() <= 1.0


def test_uid_set_is_compact() -> None:
    assert _uid_set([7, 1, 2, 3, 5, 6, 3]) == "1:3,5:7"
    assert _uid_set([4]) == "4"


def test_batches_are_bounded_and_oversized_never_downloaded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    factory = make_factory(url)
    settings = make_settings(1, tmp_path, url, batch_size=100, max_message_bytes=2000)
    mails = {u: make_mail(u) for u in range(1, 251)}
    mails[120] = make_mail(120, pad=5000)
    mails[7] = make_mail(7, extra_header=RAISE_MARK)
    fake = FakeMailbox(mails)
    ing = Ingestor(settings, factory, recording_processor())
    with caplog.at_level(logging.DEBUG):
        counts = ing.sync_pass(cast(Mailbox, fake))
    # raw record fields, not only the (masking) formatter's output: nothing to leak
    logged = "\n".join(str(v) for r in caplog.records for v in vars(r).values())
    assert "message processing failed" in logged
    assert "@example.no" not in logged.replace("***@example.no", "")  # addresses masked
    body_calls = [c[1] for c in fake.calls if c[0] == "bodies"]
    assert [len(c) for c in body_calls] == [100, 99, 50]
    assert 120 not in {u for c in body_calls for u in c}
    assert (counts.processed, counts.failed, counts.quarantined) == (248, 1, 1)
    assert sorted(fake.moved["mailbot/quarantine"]) == [7, 120]
    assert len(fake.moved["mailbot/processed"]) == 248
    assert all(n == 1 for n in processing_counts(factory).values())
    # nothing new: the pass stops at STATUS, no SELECT, no fetch
    fake.calls.clear()
    assert ing.sync_pass(cast(Mailbox, fake)).fetched == 0
    assert [c[0] for c in fake.calls] == ["status"]


def test_batch_hook_runs_after_each_committed_batch(tmp_path: Path) -> None:
    """The daemon starts delivery from this hook: by then the batch's rows (and the
    replies they queued) are committed and the mails moved."""
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    factory = make_factory(url)
    settings = make_settings(1, tmp_path, url, batch_size=10)
    fake = FakeMailbox({u: make_mail(u) for u in range(1, 26)})
    seen: list[dict[str, int]] = []

    def hook() -> None:
        seen.append(status_counts(factory))
        if len(seen) == 1:
            raise RuntimeError("a failing hook does not stop the pass")

    counts = Ingestor(settings, factory, recording_processor(), on_batch=hook).sync_pass(
        cast(Mailbox, fake)
    )
    assert counts.processed == 25
    assert seen == [{"processed": 10}, {"processed": 20}, {"processed": 25}]


def test_batch_bytes_are_bounded() -> None:
    from mailbot.intake.sync import _within_budget

    new = [NewMessage(u, 40) for u in range(1, 6)]
    assert [m.uid for m in _within_budget(new, limit=50, budget=100)] == [1, 2]
    assert [m.uid for m in _within_budget([NewMessage(1, 500)], 1000, 100)] == [1]
    big = [NewMessage(1, 40), NewMessage(2, 10_000), NewMessage(3, 40)]
    assert len(_within_budget(big, limit=50, budget=100)) == 3  # oversized is not downloaded


def test_stop_flag_leaves_the_rest_pending_for_the_next_start(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    factory = make_factory(url)
    settings = make_settings(1, tmp_path, url, batch_size=10)
    fake = FakeMailbox({u: make_mail(u) for u in range(1, 11)})
    seen: list[int] = []
    inner = recording_processor()

    def proc(s, m, raw):  # type: ignore[no-untyped-def]
        seen.append(m.uid)
        return inner(s, m, raw)

    ing = Ingestor(settings, factory, proc, should_stop=lambda: len(seen) >= 3)
    ing.sync_pass(cast(Mailbox, fake))
    assert status_counts(factory) == {"processed": 3, "pending": 7}
    assert len(fake.moved["mailbot/processed"]) == 3  # only finished ones are moved
    # next start: pending rows processed from raw bytes, each once
    Ingestor(settings, factory, proc).sync_pass(cast(Mailbox, fake))
    assert status_counts(factory) == {"processed": 10}
    assert sorted(seen) == list(range(1, 11))
    assert sorted(fake.moved["mailbot/processed"]) == list(range(1, 11))


def _serve(
    settings: Settings,
    fake: FakeMailbox,
    stop: threading.Event,
    factory: Factory,
    backoff: Backoff,
    **hooks: Any,
) -> int:
    """The daemon's loop over `fake` with a recording processor, until `stop` is set:
    its exit code. `hooks` are loop.run's own (on_idle_tick, on_reload, ...)."""
    return loop.run(
        settings,
        recording_processor(),
        stop,
        factory=factory,
        backoff=backoff,
        mailbox_factory=lambda: cast(Mailbox, fake),
        **hooks,
    )


def test_run_reconnects_with_backoff_then_serves_and_stops(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    factory = make_factory(url)
    settings = make_settings(1, tmp_path, url, poll_seconds=1, idle=False)
    fake = FakeMailbox({1: make_mail(1)})
    fake.fail_connects = 3

    stop = threading.Event()
    ticks: list[int] = []

    def tick() -> None:
        ticks.append(1)
        stop.set()

    b = Backoff(initial=0.01, maximum=0.05, rng=random.Random(0))
    rc = _serve(settings, fake, stop, factory, b, on_idle_tick=tick)
    assert rc == 0
    assert [c[0] for c in fake.calls].count("connect") == 4 and ticks == [1]
    assert b.attempt == 0  # reset after the pass that succeeded
    assert status_counts(factory) == {"processed": 1}


class FakeClockStop(threading.Event):
    """A stop event whose waits advance a fake clock instead of sleeping; it sets
    itself once the clock passes `until`, so a test covers minutes in milliseconds."""

    def __init__(self, until: float) -> None:
        super().__init__()
        self.now = 0.0
        self.until = until

    def wait(self, timeout: float | None = None) -> bool:
        if not self.is_set():
            self.now += timeout or 0.0
            if self.now >= self.until:
                self.set()
        return self.is_set()


def test_database_down_backs_off_although_imap_logins_succeed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # IMAP answers, the database does not: the backoff must keep growing, not start
    # over after every successful login (that was a login every 0.5-1 s).
    settings = make_settings(1, tmp_path, "sqlite://", poll_seconds=1, idle=False)
    fake = FakeMailbox({1: make_mail(1)})
    dead = session_factory(create_engine(f"sqlite:///{tmp_path / 'no-such-dir' / 'db.sqlite'}"))
    stop = FakeClockStop(until=120.0)
    b = Backoff(initial=1.0, maximum=300.0, rng=random.Random(0))
    caplog.set_level(logging.INFO, logger="mailbot.daemon.loop")
    rc = _serve(settings, fake, stop, dead, b)
    assert rc == 0
    logins = [c[0] for c in fake.calls].count("connect")
    # 0.5-1, 1-2, 2-4, ... 32-64 s: at most 8 logins in two minutes (before: ~160)
    assert 5 <= logins <= 8, logins
    delays = [r.delay_seconds for r in caplog.records if r.getMessage() == "reconnecting"]
    assert delays == sorted(delays) and delays[-1] > 16
    interrupted = [r for r in caplog.records if r.getMessage().startswith("intake interrupted")]
    assert interrupted and all("StoreUnavailable" in r.error for r in interrupted)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]  # not "a bug"
    assert fake.moved == {}  # nothing acted on while nothing could be recorded


def test_sighup_reloads_between_passes_and_the_daemon_keeps_serving(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    settings = make_settings(1, tmp_path, url, poll_seconds=1, idle=False)
    fake = FakeMailbox({1: make_mail(1)})
    stop = threading.Event()
    events: list[str] = []
    # Without a handler of the daemon's this one sees the signal (instead of SIGHUP's
    # default action ending the test run) and the reload never happens.
    saved = signal.signal(signal.SIGHUP, lambda *_: events.append("unhandled"))

    def tick() -> None:
        events.append("tick")
        if events.count("tick") == 1:
            os.kill(os.getpid(), signal.SIGHUP)
        elif events.count("tick") >= 3:
            stop.set()

    try:
        rc = _serve(
            settings,
            fake,
            stop,
            make_factory(url),
            Backoff(initial=0.01, maximum=0.05),
            on_idle_tick=tick,
            tick_seconds=0.05,
            on_reload=lambda: events.append("reload"),
        )
    finally:
        signal.signal(signal.SIGHUP, saved)
    assert rc == 0
    assert events[:2] == ["tick", "reload"] and events.count("reload") == 1
    assert "unhandled" not in events
    assert events.count("tick") == 3  # served on after the reload
    assert [c[0] for c in fake.calls].count("connect") == 1  # no reconnect for a reload


def test_a_failing_reload_is_logged_and_the_daemon_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> None:
        raise ValueError("a bug in the reload")

    signals = loop._Signals(threading.Event(), on_reload=broken)
    signals.reload_requested.set()
    signals.apply_reload()
    assert "reload failed; the previous configuration stays in force" in caplog.text
    assert not signals.reload_requested.is_set()


class _FakeImapLow:
    def __init__(self, uids_sizes: dict[int, int]) -> None:
        self.data = uids_sizes
        self.ranges: list[str] = []

    def uid(self, cmd: str, rng: str, what: str) -> tuple[str, list[bytes]]:
        self.ranges.append(rng)
        lo, _, hi = rng.partition(":")
        top = max(self.data)
        hi_n = top if hi == "*" else int(hi)
        lo_n = int(lo)
        # RFC 3501: n:* always includes the highest UID, even below n
        open_above = hi == "*" and lo_n > top
        picked = [top] if open_above else [u for u in self.data if lo_n <= u <= hi_n]
        return "OK", [
            f"{i + 1} (UID {u} RFC822.SIZE {self.data[u]})".encode() for i, u in enumerate(picked)
        ]


def _mailbox_with(low: _FakeImapLow) -> Mailbox:
    mb = Mailbox(ImapSettings())
    mb._client = type("C", (), {"_imap": low})()
    return mb


def test_open_range_returning_the_last_message_is_filtered() -> None:
    low = _FakeImapLow({5: 100, 9: 200})
    mb = _mailbox_with(low)
    assert mb.new_messages(9, 50) == []
    assert mb.new_messages(5, 50) == [NewMessage(9, 200)]
    # a window first, then the open range only when the window is empty
    low2 = _FakeImapLow({u: 10 for u in range(1, 301)})
    assert [m.uid for m in _mailbox_with(low2).new_messages(100, 50)] == list(range(101, 151))
    assert low2.ranges == ["101:150"]


def test_xoauth2_refreshes_a_refused_token() -> None:
    logins: list[str] = []

    class Client:
        def __init__(self, *a: object, **k: object) -> None:
            pass

        def oauth2_login(self, user: str, token: str) -> None:
            logins.append(token)
            if token == "expired":
                raise LoginError("AUTHENTICATE failed")

        def capabilities(self) -> tuple[bytes, ...]:
            return (b"IMAP4REV1", b"IDLE", b"MOVE")

    tokens = iter(["expired", "fresh"])

    class Tokens(TokenSource):
        def _read(self) -> str:
            return next(tokens)

    settings = ImapSettings(username="claims@example.com", oauth2_token_command="x", tls="none")
    mb = Mailbox(settings, tokens=Tokens("x"), client_factory=Client).connect()
    assert logins == ["expired", "fresh"] and mb.has("MOVE") and mb.has("idle")


def test_tls_modes_reach_the_client() -> None:
    made: list[dict[str, Any]] = []

    class Client:
        def __init__(self, host: str, **kw: Any) -> None:
            made.append(dict(kw, starttls=False))

        def starttls(self, ctx: object) -> None:
            made[-1]["starttls"] = True

        def login(self, user: str, password: str) -> None:
            pass

        def capabilities(self) -> tuple[bytes, ...]:
            return ()

    for tls in ("ssl", "starttls", "none"):
        Mailbox(ImapSettings(tls=tls, timeout_seconds=7), client_factory=Client).connect()
    assert [(m["ssl"], m["starttls"]) for m in made] == [
        (True, False),
        (False, True),
        (False, False),
    ]
    assert all(m["timeout"].connect == 7 and m["timeout"].read == 7 for m in made)


def test_token_source_reads_command_and_file(tmp_path: Path) -> None:
    assert TokenSource(command="echo abc").get() == "abc"
    f = tmp_path / "tok"
    f.write_text("t1\n")
    src = TokenSource(path=str(f))
    assert src.get() == "t1"
    f.write_text("t2\n")
    assert src.get() == "t1" and src.get(refresh=True) == "t2"
    with pytest.raises(MailboxError):
        TokenSource(command="false").get()


def test_raw_store_is_content_addressed_and_verified(tmp_path: Path) -> None:
    store = RawStore(tmp_path)
    raw = make_mail(1)
    sha, path = store.put(raw)
    assert sha == sha256_hex(raw)
    assert path == tmp_path / sha[:2] / sha[2:4] / f"{sha}.eml"
    assert store.put_many([raw, raw, make_mail(2)])[0] == (sha, path)
    assert store.get(path, sha) == raw
    path.write_bytes(b"tampered")
    with pytest.raises(ValueError):
        store.get(path, sha)
    assert not list(tmp_path.rglob("*.tmp"))


def test_messages_list_and_stats_mask_addresses(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    factory = make_factory(url)
    settings = make_settings(1, tmp_path, url, max_message_bytes=2000)
    mails = {u: make_mail(u) for u in range(1, 6)}
    mails[2] = make_mail(2, extra_header=RAISE_MARK)
    mails[3] = make_mail(3, pad=5000)
    Ingestor(settings, factory, recording_processor()).sync_pass(cast(Mailbox, FakeMailbox(mails)))
    out = io.StringIO()
    assert run_messages_stats(factory, as_json=True, out=out) == 0
    st = json.loads(out.getvalue())
    assert st["total"] == 5 == sum(st["by_status"].values())
    assert st["by_status"]["processed"] == 3 and st["needs_attention"]["failed"] == 1
    assert st["by_reason"]["quarantined"] == {"too_large": 1}
    assert st["by_reason"]["failed"] == {"exception: RuntimeError": 1}
    text = io.StringIO()
    run_messages_stats(factory, out=text)
    assert "needs attention: 1 quarantined, 1 failed" in text.getvalue()
    assert st["needs_person"] == 2 and st["needs_attention"]["quarantined"] == 1
    for as_json in (True, False):
        out = io.StringIO()
        assert run_messages_list(factory, limit=10, as_json=as_json, out=out) == 0
        body = out.getvalue()
        assert "kari1@example.no" not in body and "t-1@example.no" not in body
        assert "k***@example.no" in body
    out = io.StringIO()
    run_messages_list(factory, status="failed", as_json=True, out=out)
    (failed,) = json.loads(out.getvalue())
    assert failed["uid"] == 2 and failed["subject"] == "test t 2"
    assert failed["cause"].startswith("failed: RuntimeError")
    out = io.StringIO()
    run_messages_list(factory, status="quarantined", as_json=True, out=out)
    too_large = json.loads(out.getvalue())[0]["cause"]
    assert too_large.startswith("too large: ") and too_large.endswith(" > 2000 bytes")
    assert run_messages_list(factory, status="nope", out=io.StringIO()) == 2


def test_own_target_folders_are_never_watched(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    folders = ("INBOX", "mailbot/processed", "mailbot/quarantine", "Claims")
    moving = make_settings(1, tmp_path, url, folders=folders)
    flagging = make_settings(1, tmp_path, url, folders=folders, processed_action="flag")
    factory = make_factory(url)
    assert Ingestor(moving, factory, recording_processor()).folders == ("INBOX", "Claims")
    assert Ingestor(flagging, factory, recording_processor()).folders == (
        "INBOX",
        "mailbot/processed",
        "Claims",
    )


def test_group_commit_redoes_a_group_one_by_one_when_a_message_raises(tmp_path: Path) -> None:
    from mailbot.intake import ledger

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    factory = make_factory(url)
    store = RawStore(tmp_path / "raw")
    ledger.reset_state(factory, "a", "INBOX", 1)
    mails = [make_mail(u) for u in range(1, 6)]
    mails[2] = make_mail(3, extra_header=RAISE_MARK)
    rows = ledger.record_batch(
        factory,
        store,
        "a",
        "INBOX",
        1,
        [ledger.Fetched(u, 10, m) for u, m in enumerate(mails, 1)],
        10**6,
    )
    calls: list[int] = []
    inner = recording_processor()

    def proc(s, m, raw):  # type: ignore[no-untyped-def]
        calls.append(m.uid)
        return inner(s, m, raw)

    out = ledger.process_many(factory, store, [(r.id, None) for r in rows], proc, group_seconds=60)
    assert [st for _, st in out] == ["processed", "processed", "failed", "processed", "processed"]
    # one group 1..3 rolled back and redone alone (1, 2, 3), then 4..5 as a group
    assert calls == [1, 2, 3, 1, 2, 3, 4, 5]
    counts = processing_counts(factory)
    assert sorted(counts.values()) == [1, 1, 1, 1] and rows[2].id not in counts
