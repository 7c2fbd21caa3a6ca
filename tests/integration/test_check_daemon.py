"""`mailbot check`'s `daemon` line against a real /healthz: the health server of the
daemon in-process with the daemon's own reloader (the rules and templates versions in
force, a rules or templates reload that failed, an unhealthy daemon, a daemon that
does not answer), SKIP when nothing listens or `[health] listen` is not set, and the
whole `mailbot run` over Dovecot: OK, FAIL after a SIGHUP with broken rules, SKIP
once it stopped."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mailbot import metrics
from mailbot.cli.app import App
from mailbot.cli.run_reload import Reloader
from mailbot.config import load_settings
from mailbot.daemon.health import HealthServer
from mailbot.devtools.dovecot import LocalDovecot, free_port
from mailbot.devtools.smtpsink import SmtpSink
from mailbot.resources import rules_dir
from mailbot.templating.render import templates_version
from tests.integration._daemon_helpers import http_get, start_daemon, stop_daemon
from tests.integration._helpers import run_cli
from tests.integration._ingest_helpers import wait_for

BROKEN_YAML = "\n: [unclosed\n"


def _config(tmp: Path, listen: str | None, *, imap_port: int = 1, smtp_port: int = 1) -> Path:
    cfg = tmp / "m.toml"
    health = f'[health]\nlisten = "{listen}"\n' if listen else ""
    cfg.write_text(
        f'[imap]\nhost = "127.0.0.1"\nport = {imap_port}\ntls = "none"\n'
        'username = "claims"\npassword = "secret"\nidle = false\npoll_seconds = 1\n'
        f'[smtp]\nhost = "127.0.0.1"\nport = {smtp_port}\ntls = "none"\n'
        f'[paths]\ndata_dir = "{tmp / "data"}"\nrules_dir = "{tmp / "rules"}"\n'
        f'templates_dir = "{tmp / "templates"}"\n[log]\nformat = "json"\n' + health
    )
    return cfg


def daemon_item(cfg: Path) -> tuple[int, dict[str, Any]]:
    """`mailbot check --json`: (exit code, its daemon item)."""
    code, out, _ = run_cli(cfg, "check", "--json")
    [item] = [r for r in json.loads(out) if r["item"] == "daemon"]
    return code, item


def daemon_line(cfg: Path) -> str:
    """The daemon line of `mailbot check`."""
    _, text, _ = run_cli(cfg, "check")
    [line] = [x for x in text.splitlines() if x.split()[1:2] == ["daemon"]]
    return line


@dataclass
class Daemon:
    tmp: Path
    config: Path
    app: App
    reloader: Reloader
    server: HealthServer

    @property
    def where(self) -> str:
        return f"127.0.0.1:{self.server.port}"


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    """The health server of `mailbot run`, in-process, with the daemon's reloader over
    a copy of the rules and a (still empty) site templates directory."""
    shutil.copytree(rules_dir(), tmp_path / "rules")
    (tmp_path / "templates").mkdir()
    listen = f"127.0.0.1:{free_port()}"
    cfg = _config(tmp_path, listen)
    app = App(load_settings(cfg, environ={}))
    app.ensure_schema()
    reloader = Reloader(app, str(cfg), log_level_fixed=True)
    metrics.reset()
    metrics.poll_done()
    metrics.delivery_done()
    assert app.rules.version  # loaded as the daemon's first mail or sweep does
    server = HealthServer(listen, app.factory, app.settings, reload=reloader.status).start()
    try:
        yield Daemon(tmp_path, cfg, app, reloader, server)
    finally:
        server.stop()
        app.engine.dispose()
        metrics.reset()


def test_running_daemon_shows_the_versions_in_force(daemon: Daemon) -> None:
    rules = daemon.app.rules.version
    templates = templates_version(str(daemon.tmp / "templates"))
    _, item = daemon_item(daemon.config)
    assert item["status"] == "ok" and item["ok"] is True
    assert item["detail"] == (
        f"running; rules {rules} templates {templates}; not reloaded since start"
    )
    daemon.reloader()  # SIGHUP, nothing changed
    line = daemon_line(daemon.config)
    assert line == f"OK   daemon     running; rules {rules} templates {templates}; last reload ok"


def test_a_failed_rules_reload_fails_the_daemon_line(daemon: Daemon) -> None:
    in_force = daemon.app.rules.version
    classify = daemon.tmp / "rules" / "classify.yaml"
    good = classify.read_text()
    classify.write_text(good + BROKEN_YAML)
    daemon.reloader()
    status = daemon.app.rules_cache.status
    assert status.error and status.version == in_force
    code, item = daemon_item(daemon.config)
    assert code == 1 and item["status"] == "fail" and item["ok"] is False
    assert item["detail"].startswith(
        f"rules reload failed, previous rules in force: {classify}:{status.line}:"
    )
    assert item["detail"].endswith(
        f"; in force: rules {in_force} templates {daemon.server.templates}"
    )
    classify.write_text(good)  # mended: the next reload is fine again
    daemon.reloader()
    assert daemon_item(daemon.config)[1]["status"] == "ok"


def test_a_failed_templates_reload_keeps_the_previous_version(daemon: Daemon) -> None:
    started = daemon.server.templates
    subject = daemon.tmp / "templates" / "nb" / "approved.subject.j2"
    subject.parent.mkdir()
    subject.write_text("Godkjent: {{ code }}\n")
    daemon.reloader()  # a good override: its version is in force
    good = templates_version(str(daemon.tmp / "templates"))
    _, item = daemon_item(daemon.config)
    assert good != started and f"templates {good};" in item["detail"]

    subject.write_text("Godkjent {% if %}\n")
    daemon.reloader()
    broken = templates_version(str(daemon.tmp / "templates"))
    code, item = daemon_item(daemon.config)
    assert code == 1 and item["status"] == "fail"
    assert item["detail"].startswith("templates reload failed, previous templates in force: ")
    assert "approved.subject.j2" in item["detail"]
    assert item["detail"].endswith(f"templates {good}") and broken not in item["detail"]


def test_an_unhealthy_daemon_fails_with_its_reasons(daemon: Daemon) -> None:
    metrics.reset()  # as just started: no poll, no delivery yet
    code, item = daemon_item(daemon.config)
    assert code == 1 and item["status"] == "fail"
    assert item["detail"].startswith(
        "running but unhealthy: no successful poll yet; no successful outbox delivery yet; rules "
    )


def test_nothing_listening_or_not_configured_is_skipped(tmp_path: Path) -> None:
    shutil.copytree(rules_dir(), tmp_path / "rules")
    (tmp_path / "templates").mkdir()
    port = free_port()
    cfg = _config(tmp_path, f"127.0.0.1:{port}")
    _, item = daemon_item(cfg)
    assert item == {
        "item": "daemon",
        "ok": True,
        "status": "skip",
        "detail": f"not running at 127.0.0.1:{port}",
    }
    assert daemon_line(cfg) == f"SKIP daemon     not running at 127.0.0.1:{port}"
    _, out, _ = run_cli(cfg, "check", "--offline")
    assert "SKIP daemon     skipped (--offline)" in out
    # a wildcard listen address is asked on this host
    _, item = daemon_item(_config(tmp_path, f"0.0.0.0:{port}"))
    assert item["detail"] == f"not running at 127.0.0.1:{port}"
    assert daemon_line(_config(tmp_path, None)) == "SKIP daemon     [health] listen not set"


def test_a_daemon_that_does_not_answer_fails_after_two_seconds(tmp_path: Path) -> None:
    shutil.copytree(rules_dir(), tmp_path / "rules")
    (tmp_path / "templates").mkdir()
    with socket.socket() as hung:  # accepts connections (the backlog), never answers
        hung.bind(("127.0.0.1", 0))
        hung.listen(4)
        port = hung.getsockname()[1]
        cfg = _config(tmp_path, f"127.0.0.1:{port}")
        started = time.monotonic()
        code, item = daemon_item(cfg)
        took = time.monotonic() - started
    assert code == 1 and item["status"] == "fail"
    assert item["detail"] == f"127.0.0.1:{port}: no answer from /healthz within 2 s"
    assert took < 30  # the two seconds plus the other checks


@pytest.mark.integration
@pytest.mark.slow
def test_mailbot_run_ok_then_a_broken_rules_reload_then_stopped(
    dovecot: LocalDovecot, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    shutil.copytree(rules_dir(), tmp_path / "rules")
    (tmp_path / "templates").mkdir()
    port = free_port()
    cfg = _config(tmp_path, f"127.0.0.1:{port}", imap_port=dovecot.port, smtp_port=smtp_sink.port)
    log = tmp_path / "daemon.log"
    proc = start_daemon(cfg, log)
    try:
        healthz = f"http://127.0.0.1:{port}/healthz"
        assert wait_for(lambda: http_get(healthz, timeout=2)[0] == 200, 40), log.read_text()
        rules = App(load_settings(cfg, environ={})).rules.version
        # /healthz answers from the start; the rules are in force once the intake loaded them
        in_force = f"running; rules {rules} templates "
        assert wait_for(lambda: daemon_item(cfg)[1]["detail"].startswith(in_force), 30), (
            daemon_item(cfg)
        )

        classify = tmp_path / "rules" / "classify.yaml"
        classify.write_text(classify.read_text() + BROKEN_YAML)
        proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: "rules reload failed" in log.read_text(), 30), log.read_text()
        line = daemon_line(cfg)
        assert line.startswith(
            f"FAIL daemon     rules reload failed, previous rules in force: {classify}:"
        )
        assert f"; in force: rules {rules} templates " in line
    finally:
        rc = stop_daemon(proc, 30)
    assert rc == 0, log.read_text()
    assert daemon_line(cfg) == f"SKIP daemon     not running at 127.0.0.1:{port}"
