"""`mailbot messages list|stats [--json]`: the ledger, so an operator sees nothing was lost."""

from __future__ import annotations

import argparse
import json
from typing import TextIO

from sqlalchemy.orm import Session, sessionmaker

from mailbot.cli.app import App
from mailbot.services.messages import STATUSES, messages_stats, recent_messages


def cmd_list(args: argparse.Namespace, app: App) -> int:
    app.ensure_schema()
    return run_messages_list(
        app.factory, status=args.status, limit=args.limit, as_json=args.json, out=app.out
    )


def cmd_stats(args: argparse.Namespace, app: App) -> int:
    app.ensure_schema()
    return run_messages_stats(app.factory, as_json=args.json, out=app.out)


def run_messages_list(
    factory: sessionmaker[Session],
    *,
    status: str | None = None,
    limit: int = 50,
    as_json: bool = False,
    out: TextIO,
) -> int:
    """Newest ledger rows first (optionally one status); returns the exit code."""
    try:
        rows = recent_messages(factory, status=status, limit=limit)
    except ValueError as exc:
        out.write(f"{exc}\n")
        return 2
    if as_json:
        out.write(json.dumps(rows, ensure_ascii=False, indent=1) + "\n")
        return 0
    if not rows:
        out.write("no messages\n")
        return 0
    out.write(f"{'id':>7}  {'fetched':19}  {'status':11}  {'from':24}  reason\n")
    for r in rows:
        when = (r["fetched_at"] or "")[:19]
        action = "" if r["mailbox_done"] or r["status"] == "pending" else " [mailbox action owed]"
        out.write(
            f"{r['id']:>7}  {when:19}  {r['status']:11}  {(r['from'] or '-')[:24]:24}  "
            f"{r['reason'] or ''}{action}\n"
        )
    return 0


def run_messages_stats(
    factory: sessionmaker[Session], *, as_json: bool = False, out: TextIO
) -> int:
    st = messages_stats(factory)
    if as_json:
        out.write(json.dumps(st, ensure_ascii=False, indent=1) + "\n")
        return 0
    out.write(f"ledger: {st['total']} messages\n")
    for status in STATUSES:
        n = st["by_status"].get(status, 0)
        out.write(f"  {status:12} {n:>8}\n")
        for reason, m in st["by_reason"].get(status, {}).items():
            if reason != "-":
                out.write(f"      {reason:40} {m:>6}\n")
    out.write(f"  {'(sum)':12} {sum(st['by_status'].values()):>8}\n")
    out.write(f"mailbox actions owed (retried on the next pass): {st['mailbox_actions_owed']}\n")
    attention = {k: v for k, v in st["needs_attention"].items() if v}
    if attention:
        hint = ", ".join(f"{v} {k}" for k, v in attention.items())
        out.write(f"needs attention: {hint} (see `mailbot messages list --status failed`)\n")
    return 0
