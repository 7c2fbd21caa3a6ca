"""Scaffolding of the integration tests that run `mailbot` in-process: a config over a
database and a data directory, a command line whose output is captured, an upgraded
store, and a claim read back with its newest event."""

from __future__ import annotations

import io
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailbot.cli.main import main
from mailbot.store import db
from mailbot.store import models as m


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


def claim_and_last_event(session: Session, code: str) -> tuple[m.Claim, m.Event]:
    """The claim `code` and its newest event (it must have one)."""
    claim = session.scalars(select(m.Claim).where(m.Claim.code == code)).one()
    event = session.scalars(
        select(m.Event).where(m.Event.claim_id == claim.id).order_by(m.Event.id.desc())
    ).first()
    assert event is not None
    return claim, event
