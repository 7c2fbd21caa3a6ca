"""The shipped systemd unit is valid and hardened, and README's deployment steps match it."""

from __future__ import annotations

import grp
import os
import pwd
import shlex
import shutil
import subprocess
import tempfile
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
    # READY=1 and WATCHDOG=1 come from `mailbot run` (mailbot.daemon.sdnotify)
    assert d["Type"] == ["notify"]
    assert d["NotifyAccess"] == ["main"]
    assert d["WatchdogSec"] and d["WatchdogSec"][0] not in ("0", "infinity")
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


README = UNIT.parents[1] / "README.md"


def _deployment_steps() -> list[str]:
    """The shell lines of README's "Deployment with systemd" block."""
    text = README.read_text()
    section = text[text.index("## Deployment with systemd") :]
    block = section[section.index("```sh\n") + 6 :]
    return block[: block.index("```")].splitlines()


def test_documentation_points_at_files_the_deployment_installs() -> None:
    docs = _directives()["Documentation"]
    [doc_step] = [s for s in _deployment_steps() if "/usr/share/doc/mailbot" in s]
    words = doc_step.split("#")[0].split()
    installed = {Path(w).name for w in words[words.index("/usr/share/doc/mailbot") + 1 :]}
    for uri in docs:
        assert uri.startswith("file:///usr/share/doc/mailbot/"), uri
        assert Path(uri).name in installed, (uri, doc_step)
    for name in installed:
        assert any((UNIT.parents[1] / w).name == name and (UNIT.parents[1] / w).exists()
                   for w in words), name  # fmt: skip


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("runuser") is None, reason="needs root")
def test_the_service_user_can_read_the_config_the_steps_install() -> None:
    # The README's /etc/mailbot steps, run in a scratch directory with an existing
    # unprivileged user and group standing in for `mailbot`.
    user, group = "nobody", grp.getgrgid(pwd.getpwnam("nobody").pw_gid).gr_name
    root = Path(tempfile.mkdtemp(prefix="mbsysd-"))
    try:
        root.chmod(0o755)
        steps = [s for s in _deployment_steps() if s.startswith("install") and "/etc/mailbot" in s]
        assert steps
        for step in steps:
            cmd = (
                step.split("#")[0]
                .replace("/etc/mailbot", str(root / "etc"))
                .replace("-g mailbot", f"-g {group}")
                .replace("config/", f"{UNIT.parents[1] / 'config'}/")
            )
            subprocess.run(shlex.split(cmd), check=True, timeout=30)
        config = root / "etc" / "mailbot.toml"
        readable = subprocess.run(["runuser", "-u", user, "--", "test", "-r", str(config)])
        assert readable.returncode == 0, "the service user cannot read its config"
        secrets = subprocess.run(
            ["runuser", "-u", user, "--", "test", "-r", str(root / "etc" / "secrets.env")]
        )
        assert secrets.returncode != 0, "the secrets must stay root's"
    finally:
        shutil.rmtree(root, ignore_errors=True)
