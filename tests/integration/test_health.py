"""`mailbot run` against Dovecot: /healthz and /metrics answer, systemd hears READY=1,
WATCHDOG=1 and STOPPING=1 on a notify socket the test binds, and a dead IMAP server
turns /healthz to 503 with the reason."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from mailbot.devtools.dovecot import LocalDovecot, free_port
from mailbot.devtools.smtpsink import SmtpSink
from tests.integration._daemon_helpers import http_get, run_config, start_daemon, stop_daemon
from tests.integration._ingest_helpers import append_all, make_mail, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _next(sock: socket.socket, seconds: float) -> bytes:
    sock.settimeout(seconds)
    return sock.recv(4096)


def _received(sock: socket.socket, seconds: float) -> list[bytes]:
    out: list[bytes] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            out.append(sock.recv(4096))
        except TimeoutError:
            break
    return out


def _sample(page: str, name: str) -> float:
    total = 0.0
    for line in page.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_health_metrics_and_systemd_notify(
    dovecot: LocalDovecot, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    port = free_port()
    config = run_config(
        tmp_path, dovecot.port, smtp_sink.port, f'[health]\nlisten = "127.0.0.1:{port}"\n'
    )
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    err = tmp_path / "daemon.log"
    base = f"http://127.0.0.1:{port}"
    # WATCHDOG_USEC: a ping at least every 0.5 s while the loop runs
    proc = start_daemon(
        config, err, NOTIFY_SOCKET=str(tmp_path / "notify"), WATCHDOG_USEC="1500000"
    )
    try:
        assert _next(notify, 30) == b"READY=1\nSTATUS=serving", err.read_text()
        pings = _received(notify, 2.5)
        assert pings.count(b"WATCHDOG=1") >= 3, pings

        assert wait_for(lambda: http_get(base + "/healthz")[0] == 200, 30), err.read_text()
        health = json.loads(http_get(base + "/healthz")[1])
        assert health["status"] == "ok" and health["database"]["ok"]
        assert health["reload"]["rules"]["version"]  # the reloader's status is part of it

        append_all(dovecot.port, [make_mail(1), make_mail(2)])

        def handled() -> bool:
            page = http_get(base + "/metrics")[1].decode()
            return _sample(page, "mailbot_messages_total") >= 2

        assert wait_for(handled, 30), err.read_text()
        page = http_get(base + "/metrics")[1].decode()
        assert _sample(page, "mailbot_message_processing_seconds_count") >= 2
        assert _sample(page, "mailbot_database_up") == 1
        assert "mailbot_outbox_pending" in page and "mailbot_outbox_flagged" in page
        assert abs(_sample(page, "mailbot_last_poll_timestamp_seconds") - time.time()) < 10

        # the IMAP server dies: the loop backs off (and keeps pinging: it is not hung),
        # /healthz says why it is unhealthy once the last poll is too old
        dovecot.stop()
        assert wait_for(lambda: http_get(base + "/healthz")[0] == 503, 40), err.read_text()
        reasons = json.loads(http_get(base + "/healthz")[1])["reasons"]
        assert any(r.startswith("last successful poll") for r in reasons), reasons
        assert b"WATCHDOG=1" in _received(notify, 2)
        assert proc.poll() is None
    finally:
        rc = stop_daemon(proc, 30)
    assert rc == 0, err.read_text()
    assert b"STOPPING=1" in _received(notify, 2)
    notify.close()
    assert http_get(base + "/healthz")[0] == 0  # the endpoint went with the daemon
