"""`mailbot db upgrade`: create or migrate the schema (alembic)."""

from __future__ import annotations

import argparse

from mailbot.cli.app import App
from mailbot.store import db


def cmd_upgrade(args: argparse.Namespace, app: App) -> int:
    db.upgrade(app.engine, args.revision)
    app.out.write(f"database at {db.current_revision(app.engine)}\n")
    return 0
