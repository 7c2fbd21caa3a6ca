"""`mailbot run` with `[web] in_daemon = true` against Dovecot and the SMTP sink: the desk
answers over real HTTP beside the intake, a user made by `mailbot users add` logs in
and loads the queue, and SIGTERM ends the process (exit 0) and the desk's port."""

from __future__ import annotations

import http.client
import http.cookiejar
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from mailbot.devtools.dovecot import LocalDovecot, free_port
from mailbot.devtools.smtpsink import SmtpSink
from tests.integration._daemon_helpers import (
    daemon_env,
    http_get,
    run_config,
    start_daemon,
    stop_daemon,
)
from tests.integration._ingest_helpers import wait_for
from tests.integration.test_web import csrf_of

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PASSWORD = "a long desk password"


def _config(tmp: Path, imap_port: int, smtp_port: int, web_port: int) -> Path:
    web = f'[web]\nin_daemon = true\nlisten = "127.0.0.1:{web_port}"\n'
    return run_config(tmp, imap_port, smtp_port, web)


def _mailbot(config: Path, *argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailbot", "--config", str(config), *argv],
        input=stdin, capture_output=True, text=True, env=daemon_env(), timeout=120, check=False,
    )  # fmt: skip


class Browser:
    """urllib with a cookie jar, not following redirects (the test looks at them)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args: object, **kwargs: object) -> None:
                return None

        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), NoRedirect()
        )

    def request(
        self, path: str, form: dict[str, str] | None = None
    ) -> tuple[int, str, dict[str, str]]:
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        try:
            with self.opener.open(self.base + path, data=data, timeout=10) as resp:
                return resp.status, resp.read().decode(), dict(resp.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(), dict(exc.headers)


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_the_desk_served_by_the_daemon_logs_in_and_stops_with_it(
    dovecot: LocalDovecot, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    port = free_port()
    config = _config(tmp_path, dovecot.port, smtp_sink.port, port)
    made = _mailbot(config, "users", "add", "ola", "--role", "agent", "--password-stdin",
                    stdin=PASSWORD + "\n")  # fmt: skip
    assert made.returncode == 0, made.stderr
    base = f"http://127.0.0.1:{port}"
    err = tmp_path / "daemon.log"
    proc = start_daemon(config, err)
    try:
        assert wait_for(lambda: http_get(base + "/login", timeout=2)[0] == 200, 30), err.read_text()
        browser = Browser(base)
        status, page, _ = browser.request("/login")
        assert status == 200 and 'id="login-form"' in page
        login = {"username": "ola", "password": PASSWORD, "csrf_token": csrf_of(page)}
        status, _, headers = browser.request("/login", {**login, "next": "/"})
        assert status == 303 and headers["location"] == "/", (status, headers)
        status, queue, _ = browser.request("/")
        assert status == 200 and 'id="queue"' in queue and 'id="queue-count"' in queue
        assert proc.poll() is None  # the intake goes on beside the desk
        # a browser keeps its connection open: the stop does not wait for it
        idle = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        idle.request("GET", "/login")
        assert idle.getresponse().read()
    finally:
        started = time.monotonic()
        rc = stop_daemon(proc, 15)
    took = time.monotonic() - started
    log = err.read_text()
    assert rc == 0, log
    assert took < 10, f"SIGTERM took {took:.1f} s"
    assert not _port_open(port)  # the desk went with the daemon
    assert '"event": "web.listen"' in log and '"level": "error"' not in log, log
    idle.close()


def test_a_taken_port_stops_the_daemon_at_the_start(
    dovecot: LocalDovecot, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = _config(tmp_path, dovecot.port, smtp_sink.port, port)
        started = time.monotonic()
        done = _mailbot(config, "run")
    # not an intake running on without its desk: a clear error, at once
    assert done.returncode == 1, done.stderr
    assert f"web.listen: cannot listen on 127.0.0.1:{port}" in done.stderr, done.stderr
    assert time.monotonic() - started < 30
    assert '"imap connected"' not in done.stderr
