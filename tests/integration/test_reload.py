"""`mailbot run` and SIGHUP: the daemon keeps running and logs what it reloaded."""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path
from typing import Any

import pytest

from mailbot.devtools.dovecot import LocalDovecot
from mailbot.resources import rules_dir
from tests.integration._daemon_helpers import start_daemon, stop_daemon
from tests.integration._ingest_helpers import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _config(tmp: Path, port: int, *, level: str = "INFO", poll: int = 1) -> str:
    return f"""
[imap]
host = "127.0.0.1"
port = {port}
tls = "none"
username = "claims"
password = "secret"
idle = false
poll_seconds = {poll}
[paths]
data_dir = "{tmp / "data"}"
rules_dir = "{tmp / "rules"}"
[log]
format = "json"
level = "{level}"
"""


def _events(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def _logged(path: Path, event: str) -> list[dict[str, Any]]:
    return [e for e in _events(path) if e["event"] == event]


def test_sighup_reloads_and_the_daemon_keeps_running(dovecot: LocalDovecot, tmp_path: Path) -> None:
    shutil.copytree(rules_dir(), tmp_path / "rules")
    config = tmp_path / "mailbot.toml"
    config.write_text(_config(tmp_path, dovecot.port))
    err = tmp_path / "daemon.log"
    proc = start_daemon(config, err)
    try:
        assert wait_for(lambda: bool(_logged(err, "imap connected")), 30), err.read_text()

        proc.send_signal(signal.SIGHUP)  # nothing changed
        assert wait_for(lambda: bool(_logged(err, "templates reloaded")), 30), err.read_text()
        assert proc.poll() is None
        [ok] = _logged(err, "rules reloaded")
        # (changed or not depends on whether the sweep, a second after the start,
        # already read the rules)
        assert ok["forced"] is True and len(ok["version"]) == 12
        assert _logged(err, "config reloaded")

        # a YAML mistake: logged with file:line, the old rules stay in force
        classify = tmp_path / "rules" / "classify.yaml"
        classify.write_text(classify.read_text() + "\n: [unclosed\n")
        proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: bool(_logged(err, "rules reload failed")), 30), err.read_text()
        [bad] = _logged(err, "rules reload failed")
        assert bad["level"] == "warning" and bad["path"] == str(classify)
        assert f"{classify}:{bad['line']}:" in bad["error"]
        assert bad["version_in_force"] == ok["version"]
        assert proc.poll() is None

        # log level applies now; a changed poll interval needs a restart, and says so
        config.write_text(_config(tmp_path, dovecot.port, level="WARNING", poll=2))
        proc.send_signal(signal.SIGHUP)
        assert wait_for(
            lambda: bool(_logged(err, "config changed; these keys apply after a restart")), 30
        ), err.read_text()
        [restart] = _logged(err, "config changed; these keys apply after a restart")
        assert restart["keys"] == ["imap.poll_seconds"]
        assert _logged(err, "log level changed")[0]["level"] == "WARNING"
        assert proc.poll() is None
    finally:
        rc = stop_daemon(proc, 20)
    assert rc == 0
