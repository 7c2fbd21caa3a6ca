"""The mailbox month bench (bench/month.py) runs end to end on a tiny month: every mail
is scored, none is lost and none answered twice. Accuracy is the bench's own job."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mailbot.devtools import dovecot as dovecot_mod

ROOT = Path(__file__).resolve().parents[2]


def test_month_bench_scores_every_mail() -> None:
    why = dovecot_mod.available()
    if why:
        pytest.skip(why)
    # its own temp dir: Dovecot's sockets need a short path its login processes can reach
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "month.py"),
            *("--claims", "6", "--rmas", "2"),
            "--seed",
            "3",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert done.returncode in (0, 1), done.stderr[-3000:]
    assert done.stdout.strip(), done.stderr[-3000:]
    result = json.loads(done.stdout)
    overall = result["personas"]["overall"]
    assert result["mails"] >= 8
    assert result["scored"] == result["mails"]
    assert overall["mails"] == result["mails"]
    assert sum(overall.get(k, 0) for k in ("right", "parked", "wrong", "lost")) == result["mails"]
    assert overall.get("lost", 0) == 0, result["wrong"]
    assert overall.get("twice", 0) == 0, result["wrong"]
    for mail in result["mails_detail"]:
        assert mail["verdict"] in ("right", "parked", "wrong"), mail
    assert done.returncode == 0
