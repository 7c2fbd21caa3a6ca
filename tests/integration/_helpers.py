"""Scaffolding of the integration tests that run `mailbot` in-process: a config over a
database and a data directory, a command line whose output is captured, an upgraded store."""

from __future__ import annotations

import io
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from mailbot.cli.main import main
from mailbot.store import db


def store_config(tmp: Path, db_url: str, extra: str = "") -> Path:
    """`tmp/m.toml`: the database at `db_url`, data under `tmp/data`, then `extra` (TOML)."""
    cfg = tmp / "m.toml"
    cfg.write_text(f'[database]\nurl = "{db_url}"\n[paths]\ndata_dir = "{tmp / "data"}"\n' + extra)
    return cfg


def run_cli(
    cfg: Path, *argv: str, level: str = "ERROR", stdin: str | None = None
) -> tuple[int, str, str]:
    """`mailbot --config cfg --log-level level argv` in-process, reading `stdin` when
    given; (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    old_stdin = sys.stdin
    if stdin is not None:
        sys.stdin = io.StringIO(stdin)
    try:
        with redirect_stdout(out), redirect_stderr(err):
            code = main(["--config", str(cfg), "--log-level", level, *argv])
    finally:
        sys.stdin = old_stdin
    return code, out.getvalue(), err.getvalue()


def upgraded_factory(db_url: str) -> sessionmaker[Session]:
    """Sessions on the database at `db_url`, its schema migrated to the newest."""
    engine = db.make_engine(db_url)
    db.upgrade(engine)
    return db.session_factory(engine)
