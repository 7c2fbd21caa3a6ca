"""The shipped systemd unit is valid and hardened."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "mailbot.service"


def _directives() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_unit_is_hardened_and_runs_unprivileged() -> None:
    d = _directives()
    assert d["User"] == ["mailbot"]
    assert d["ExecStart"][0].endswith("mailbot run")
    assert d["Restart"] == ["on-failure"]
    assert "EnvironmentFile" in d or "LoadCredential" in d
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "PrivateTmp": "yes",
        "ProtectHome": "yes",
    }.items():
        assert d[key] == [value], key
    assert d["ReadWritePaths"] == ["/var/lib/mailbot"]
    assert "AF_INET" in d["RestrictAddressFamilies"][0]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not here")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify insists that ExecStart's binary exists; point it at a stand-in
    # executable so what is checked is the unit's syntax and directives.
    fake = tmp_path / "mailbot"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    unit = tmp_path / "mailbot.service"
    unit.write_text(UNIT.read_text().replace("/opt/mailbot/venv/bin/mailbot", str(fake)))
    proc = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    problems = [
        line
        for line in (proc.stdout + proc.stderr).splitlines()
        if "mailbot.service" in line or "Unknown" in line
    ]
    assert proc.returncode == 0 and not problems, proc.stdout + proc.stderr
