"""`mailbot messages list|stats`: the ledger, so an operator sees nothing was lost."""

from __future__ import annotations

import argparse

from mailbot.cli.app import App
from mailbot.cli.messages_cmd import run_messages_list, run_messages_stats


def cmd_list(args: argparse.Namespace, app: App) -> int:
    app.ensure_schema()
    return run_messages_list(
        app.factory, status=args.status, limit=args.limit, as_json=args.json, out=app.out
    )


def cmd_stats(args: argparse.Namespace, app: App) -> int:
    app.ensure_schema()
    return run_messages_stats(app.factory, as_json=args.json, out=app.out)
