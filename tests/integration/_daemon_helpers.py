"""`mailbot` in processes of its own over the real stack, for the integration and browser
tests: an operator's shell on a database it upgraded, `mailbot run` over Dovecot and
the SMTP sink started and stopped as systemd does, and a probe of what it serves over
HTTP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from mailbot.devtools.dovecot import LocalDovecot
from mailbot.devtools.scenario import Operator, Sections, config_toml
from mailbot.devtools.smtpsink import SmtpSink

REPO = Path(__file__).resolve().parents[2]


def upgraded_operator(
    tmp: Path, dovecot: LocalDovecot, sink: SmtpSink, db_url: str | None = None
) -> Operator:
    """`mailbot` as an operator runs it against `dovecot` and `sink` (on `db_url`, or the
    default SQLite file), after `mailbot db upgrade`."""
    operator = Operator(tmp, dovecot, sink, db_url)
    operator.run("db", "upgrade")
    return operator


def run_config(tmp: Path, imap_port: int, smtp_port: int, extra: str = "") -> Path:
    """`tmp/mailbot.toml` for `mailbot run`: the throwaway servers' config
    (`scenario.config_toml`, data under `tmp/data`) with IMAP IDLE (a poll every 2 s,
    2 s timeouts) and JSON logs at INFO; then `extra` (TOML sections of its own)."""
    config = tmp / "mailbot.toml"
    sections: Sections = {
        "imap": {"idle": True, "poll_seconds": 2, "timeout_seconds": 2.0},
        "log": {"format": "json", "level": "INFO"},
    }
    config.write_text(config_toml(imap_port, smtp_port, tmp / "data", sections=sections) + extra)
    return config


def daemon_env(**extra: str) -> dict[str, str]:
    """The environment of a `mailbot` subprocess: this checkout importable, and none of
    the config path, notify socket or watchdog the test run itself may have been given;
    then `extra`."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    for name in ("MAILBOT_CONFIG", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        env.pop(name, None)
    env.update(extra)
    return env


def start_daemon(config: Path, log: Path, **env: str) -> subprocess.Popen[bytes]:
    """`mailbot --config config run` in the config's directory, its log (stderr) written
    to `log`, in `daemon_env(**env)`."""
    with open(log, "wb") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "mailbot", "--config", str(config), "run"],
            cwd=config.parent,
            env=daemon_env(**env),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )


def stop_daemon(proc: subprocess.Popen[bytes], timeout: float) -> int:
    """SIGTERM, as systemd stops the service, and its exit code. A daemon still running
    after `timeout` seconds is killed, and the wait's TimeoutExpired raised."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


def http_get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    """GET `url`: (status, body), an error status with its body too; (0, b"") when
    nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""
