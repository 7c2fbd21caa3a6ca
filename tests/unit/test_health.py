"""Health verdict with a fake clock, metric updates where things happen, the systemd
notify protocol over a real unix socket, and the HTTP endpoint in-process on SQLite."""

from __future__ import annotations

import json
import os
import random
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from mailbot import metrics
from mailbot.core.errors import ConfigError
from mailbot.daemon import loop
from mailbot.daemon.health import (
    HealthServer,
    Limits,
    StoreCache,
    StoreReading,
    assess,
    parse_listen,
    read_store,
)
from mailbot.daemon.loop import Backoff
from mailbot.daemon.sdnotify import Notifier, Watchdog
from mailbot.intake import ledger
from mailbot.intake.mailbox import Mailbox
from mailbot.store.rawstore import RawStore
from tests.integration._daemon_helpers import http_get
from tests.integration._ingest_helpers import (
    RAISE_MARK,
    make_factory,
    make_mail,
    make_settings,
    recording_processor,
)
from tests.unit.test_intake import FakeMailbox

LIMITS = Limits(poll=180.0, delivery=60.0)
DB_OK = StoreReading(True, 1000.0, None, {"pending": 2, "processed": 5}, {"queued": 3, "failed": 1})


def _value(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


# -- the verdict --------------------------------------------------------------------


def test_fresh_poll_and_delivery_and_a_database_that_answers_are_healthy() -> None:
    live = metrics.Liveness(started=900.0, last_poll=990.0, last_delivery=995.0)
    verdict = assess(1000.0, live, LIMITS, DB_OK)
    assert verdict.ok and verdict.body["status"] == "ok" and verdict.body["reasons"] == []
    assert verdict.body["last_poll"]["age_seconds"] == 10.0
    assert verdict.body["queues"] == {"ledger_pending": 2, "outbox_pending": 3, "outbox_flagged": 1}


def test_a_stale_poll_is_unhealthy_with_the_reason_unless_mail_is_being_processed() -> None:
    live = metrics.Liveness(started=0.0, last_poll=700.0, last_delivery=995.0)
    verdict = assess(1000.0, live, LIMITS, DB_OK)
    assert not verdict.ok
    assert verdict.body["reasons"] == ["last successful poll 300 s ago (limit 180 s)"]
    # a long pass (a burst of receipts): mails finishing count as the loop working
    live.last_progress = 998.0
    assert assess(1000.0, live, LIMITS, DB_OK).ok


def test_nothing_yet_a_stale_delivery_and_a_dead_database_are_each_reasons() -> None:
    live = metrics.Liveness(started=999.0)
    reasons = assess(1000.0, live, LIMITS, DB_OK).body["reasons"]
    assert reasons == ["no successful poll yet", "no successful outbox delivery yet"]
    live = metrics.Liveness(started=0.0, last_poll=999.0, last_delivery=800.0)
    down = StoreReading(False, 1000.0, "OperationalError: unable to open database file")
    verdict = assess(1000.0, live, LIMITS, down)
    assert verdict.body["reasons"] == [
        "last successful outbox delivery 200 s ago (limit 60 s)",
        "database unreachable: OperationalError: unable to open database file",
    ]
    assert verdict.body["queues"] is None


def test_a_failed_reload_is_a_warning_not_unhealthy() -> None:
    live = metrics.Liveness(started=0.0, last_poll=999.0, last_delivery=999.0)
    reload = {
        "rules": {"error": "campaigns/x.yaml:3: bad"},
        "templates": {"error": None},
        "config_error": None,
        "restart_needed": ["imap.host"],
    }
    verdict = assess(1000.0, live, LIMITS, DB_OK, reload)
    assert verdict.ok
    assert verdict.body["warnings"] == [
        "rules reload failed, previous rules in force: campaigns/x.yaml:3: bad",
        "restart needed for: imap.host",
    ]
    assert verdict.body["reload"] is reload


def test_listen_is_host_and_port() -> None:
    assert parse_listen("127.0.0.1:9187") == ("127.0.0.1", 9187)
    assert parse_listen("[::1]:9187") == ("::1", 9187)
    for bad in ("9187", "localhost", ":9187", "host:port", "h:70000"):
        with pytest.raises(ConfigError, match=r"health\.listen"):
            parse_listen(bad)


# -- the database reading -------------------------------------------------------------


def test_store_reading_counts_by_status_and_is_cached(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    factory = make_factory(url)
    store = RawStore(tmp_path / "raw")
    ledger.reset_state(factory, "a", "INBOX", 1)
    ledger.record_batch(
        factory, store, "a", "INBOX", 1, [ledger.Fetched(u, 10, make_mail(u)) for u in (1, 2)], 10
    )
    clock = [100.0]
    cache = StoreCache(factory, seconds=10, clock=lambda: clock[0])
    first = cache.get()
    assert first.ok and first.ledger == {"pending": 2}
    ledger.record_batch(factory, store, "a", "INBOX", 1, [ledger.Fetched(3, 10, make_mail(3))], 10)
    clock[0] += 5
    assert cache.get() is first  # within the cache time: no query
    clock[0] += 6
    assert cache.get().ledger == {"pending": 3}
    # a directory is no database: the reading says so instead of raising
    broken = sessionmaker(bind=create_engine(f"sqlite:///{tmp_path}"))
    reading = read_store(broken, 0)
    assert not reading.ok and reading.error and "OperationalError" in reading.error


# -- metrics where things happen ---------------------------------------------------


def test_ledger_counts_final_statuses_once_even_when_a_group_is_redone(tmp_path: Path) -> None:
    factory = make_factory(f"sqlite:///{tmp_path / 'db.sqlite'}")
    store = RawStore(tmp_path / "raw")
    ledger.reset_state(factory, "a", "INBOX", 1)
    mails = [make_mail(1), make_mail(2, extra_header=RAISE_MARK), make_mail(3), make_mail(1)]
    before = {
        s: _value("mailbot_messages_total", status=s) for s in ("processed", "failed", "duplicate")
    }
    fetched = [ledger.Fetched(u, 10, m) for u, m in enumerate(mails, 1)]
    rows = ledger.record_batch(factory, store, "a", "INBOX", 1, fetched, 10**6)
    pending = [(r.id, None) for r in rows if r.status == ledger.PENDING]
    ledger.process_many(factory, store, pending, recording_processor(), group_seconds=60)
    after = {s: _value("mailbot_messages_total", status=s) for s in before}
    assert {s: after[s] - before[s] for s in before} == {
        "processed": 2,
        "failed": 1,
        "duplicate": 1,
    }
    # the redone row is not counted a second time when it is skipped
    ledger.process_one(factory, store, rows[0].id, recording_processor())
    assert _value("mailbot_messages_total", status="processed") == after["processed"]


def test_document_reading_is_timed_by_source() -> None:
    from mailbot.devtools.samples import good_receipt_pdf
    from parsers.document.extraction import extract
    from tests.unit._receipt_helpers import rules

    before = _value("mailbot_document_read_seconds_count", source="pdf-text")
    extract(good_receipt_pdf(), rules=rules())
    assert _value("mailbot_document_read_seconds_count", source="pdf-text") == before + 1


def test_the_loop_beats_records_polls_and_says_when_it_is_connected(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    factory = make_factory(url)
    settings = make_settings(1, tmp_path, url, poll_seconds=1, idle=False)
    fake = FakeMailbox({1: make_mail(1), 2: make_mail(2)})
    fake.fail_connects = 1
    stop = threading.Event()
    beats: list[float] = []
    connected: list[int] = []
    passes = [0]

    def tick() -> None:
        passes[0] += 1
        if passes[0] == 2:
            stop.set()

    metrics.reset(now=0.0)
    metrics.add_beat_listener(lambda: beats.append(1))
    try:
        loop.run(
            settings,
            recording_processor(),
            stop,
            factory=factory,
            backoff=Backoff(initial=0.01, maximum=0.02, rng=random.Random(0)),
            mailbox_factory=lambda: cast(Mailbox, fake),
            on_idle_tick=tick,
            on_connected=lambda: connected.append(1),
        )
    finally:
        metrics._listeners.clear()
    assert connected == [1]  # the failed connect did not count
    assert metrics.LIVENESS.last_poll is not None and metrics.LIVENESS.last_progress is not None
    assert _value("mailbot_last_poll_timestamp_seconds") == metrics.LIVENESS.last_poll
    # two mails finished, two passes, one wait step between them at least
    assert len(beats) >= 5


# -- systemd notify ------------------------------------------------------------------


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.settimeout(2)
    try:
        yield sock
    finally:
        sock.close()


def test_notifier_sends_ready_once_and_stopping(notify_socket: socket.socket) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": notify_socket.getsockname()})
    notifier.ready()
    notifier.ready()
    notifier.stopping()
    assert notify_socket.recv(4096) == b"READY=1\nSTATUS=serving"
    assert notify_socket.recv(4096) == b"STOPPING=1"


def test_abstract_socket_and_no_socket() -> None:
    name = f"mailbot-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).send("READY=1")
        assert sock.recv(100) == b"READY=1"
    assert Notifier({}).send("READY=1") is False  # not under systemd: nothing, no error
    # a socket that went away: logged once, never raised
    assert Notifier({"NOTIFY_SOCKET": "/nonexistent/notify"}).send("WATCHDOG=1") is False


def test_watchdog_pings_at_most_every_third_of_its_interval(notify_socket: socket.socket) -> None:
    env = {"NOTIFY_SOCKET": notify_socket.getsockname(), "WATCHDOG_USEC": "30000000"}
    clock = [0.0]
    dog = Watchdog(Notifier(env), clock=lambda: clock[0])
    for t in (0.0, 1.0, 9.9, 10.0, 15.0, 20.5):
        clock[0] = t
        dog()
    notify_socket.settimeout(0.2)
    got = []
    with pytest.raises(TimeoutError):
        while True:
            got.append(notify_socket.recv(100))
    assert got == [b"WATCHDOG=1"] * 3  # at 0, 10 and 20.5
    # another process's watchdog (WATCHDOG_PID) or none configured: no pings
    assert Watchdog(Notifier({**env, "WATCHDOG_PID": "1"})).every is None
    assert Watchdog(Notifier({"NOTIFY_SOCKET": "x"})).every is None


# -- the endpoint ------------------------------------------------------------------------


def test_endpoint_answers_503_then_200_and_serves_metrics(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    factory = make_factory(url)
    settings = make_settings(1, tmp_path, url, poll_seconds=1)
    metrics.reset()
    reload = {"rules": {"error": None}, "templates": {"error": "x.j2: bad"}, "config_error": None}
    server = HealthServer("127.0.0.1:0", factory, settings, reload=lambda: reload).start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        status, body = http_get(base + "/healthz")
        assert status == 503
        assert json.loads(body)["reasons"] == [
            "no successful poll yet",
            "no successful outbox delivery yet",
        ]
        metrics.poll_done()
        metrics.delivery_done()
        status, body = http_get(base + "/healthz")
        assert status == 200, body
        health = json.loads(body)
        assert health["database"]["ok"] and health["warnings"][0].startswith("templates reload")
        status, text = http_get(base + "/metrics")
        assert status == 200
        page = text.decode()
        for line in (
            'mailbot_ledger_messages{status="pending"} 0.0',
            "mailbot_outbox_pending 0.0",
            "mailbot_outbox_flagged 0.0",
            "mailbot_database_up 1.0",
            'mailbot_reload_ok{part="templates"} 0.0',
            "# TYPE mailbot_message_processing_seconds histogram",
            "# TYPE mailbot_document_read_seconds histogram",
            "# TYPE mailbot_messages_total counter",
            "process_resident_memory_bytes",
        ):
            assert line in page, line
        assert "mailbot_last_poll_timestamp_seconds 1." in page
        assert http_get(base + "/nothing")[0] == 404
    finally:
        server.stop()
    # stopped: the database gauges are no longer registered
    assert metrics.REGISTRY.get_sample_value("mailbot_database_up") is None


def test_a_taken_port_is_a_clear_config_error(tmp_path: Path) -> None:
    factory = make_factory(f"sqlite:///{tmp_path / 'db.sqlite'}")
    settings = make_settings(1, tmp_path, "sqlite://")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        listen = f"127.0.0.1:{taken.getsockname()[1]}"
        with pytest.raises(ConfigError, match=r"health\.listen: cannot listen on 127\.0\.0\.1:"):
            HealthServer(listen, factory, settings).start()
