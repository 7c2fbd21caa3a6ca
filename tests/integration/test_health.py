"""`mailbot run` against Dovecot: /healthz and /metrics answer, systemd hears READY=1,
WATCHDOG=1 and STOPPING=1 on a notify socket the test binds, and a dead IMAP server
turns /healthz to 503 with the reason."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from mailbot.devtools.dovecot import LocalDovecot, free_port
from mailbot.devtools.smtpsink import SmtpSink
from tests.integration._ingest_helpers import append_all, make_mail, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


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
    config = tmp_path / "mailbot.toml"
    config.write_text(f"""
[imap]
host = "127.0.0.1"
port = {dovecot.port}
tls = "none"
username = "claims"
password = "secret"
idle = true
poll_seconds = 2
timeout_seconds = 2.0
[smtp]
host = "127.0.0.1"
port = {smtp_sink.port}
tls = "none"
[paths]
data_dir = "{tmp_path / "data"}"
[log]
format = "json"
[health]
listen = "127.0.0.1:{port}"
""")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    err = tmp_path / "daemon.log"
    env = dict(os.environ, PYTHONPATH=str(REPO), NOTIFY_SOCKET=str(tmp_path / "notify"))
    env["WATCHDOG_USEC"] = "1500000"  # a ping at least every 0.5 s while the loop runs
    env.pop("MAILBOT_CONFIG", None)
    env.pop("WATCHDOG_PID", None)
    base = f"http://127.0.0.1:{port}"
    with open(err, "wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mailbot", "--config", str(config), "run"],
            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip
    try:
        assert _next(notify, 30) == b"READY=1\nSTATUS=serving", err.read_text()
        pings = _received(notify, 2.5)
        assert pings.count(b"WATCHDOG=1") >= 3, pings

        assert wait_for(lambda: _get(base + "/healthz")[0] == 200, 30), err.read_text()
        health = json.loads(_get(base + "/healthz")[1])
        assert health["status"] == "ok" and health["database"]["ok"]
        assert health["reload"]["rules"]["version"]  # the reloader's status is part of it

        append_all(dovecot.port, [make_mail(1), make_mail(2)])

        def handled() -> bool:
            page = _get(base + "/metrics")[1].decode()
            return _sample(page, "mailbot_messages_total") >= 2

        assert wait_for(handled, 30), err.read_text()
        page = _get(base + "/metrics")[1].decode()
        assert _sample(page, "mailbot_message_processing_seconds_count") >= 2
        assert _sample(page, "mailbot_database_up") == 1
        assert "mailbot_outbox_pending" in page and "mailbot_outbox_flagged" in page
        assert abs(_sample(page, "mailbot_last_poll_timestamp_seconds") - time.time()) < 10

        # the IMAP server dies: the loop backs off (and keeps pinging: it is not hung),
        # /healthz says why it is unhealthy once the last poll is too old
        dovecot.stop()
        assert wait_for(lambda: _get(base + "/healthz")[0] == 503, 40), err.read_text()
        reasons = json.loads(_get(base + "/healthz")[1])["reasons"]
        assert any(r.startswith("last successful poll") for r in reasons), reasons
        assert b"WATCHDOG=1" in _received(notify, 2)
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(30)
    assert rc == 0, err.read_text()
    assert b"STOPPING=1" in _received(notify, 2)
    notify.close()
    assert _get(base + "/healthz")[0] == 0  # the endpoint went with the daemon
