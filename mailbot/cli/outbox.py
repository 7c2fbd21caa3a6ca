"""`mailbot outbox list|show|retry|cancel [--json]`: the replies, and what an operator may
do with one that failed, is unconfirmed or must not go out."""

from __future__ import annotations

import argparse
import getpass

from mailbot.cli.app import App
from mailbot.cli.messages import dump_json
from mailbot.core.errors import InputError
from mailbot.services import outbox_admin


def operator_name(given: str | None) -> str:
    """`--by`, else the OS user running the command."""
    if given and given.strip():
        return given.strip()[:80]
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name (a container without a passwd entry)
        return "unknown"


def cmd_list(args: argparse.Namespace, app: App) -> int:
    app.ensure_schema()
    try:
        rows = outbox_admin.list_outbox(app.factory, status=args.status, limit=args.limit)
    except ValueError as exc:
        app.out.write(f"{exc}\n")
        return 2
    if args.json:
        dump_json(rows, app.out)
        return 0
    if not rows:
        app.out.write("no replies\n")
        return 0
    app.out.write(
        f"{'id':>7}  {'created':19}  {'status':11}  {'template':20}  {'to':24}  "
        f"{'claim':8}  tries  last error\n"
    )
    for r in rows:
        link = r["claim"] or r["rma"] or "-"
        dup = " [possible duplicate]" if r["possible_duplicate"] else ""
        app.out.write(
            f"{r['id']:>7}  {(r['created_at'] or '')[:19]:19}  {r['status']:11}  "
            f"{r['template'][:20]:20}  {r['to'][:24]:24}  {link[:8]:8}  {r['attempts']:>5}  "
            f"{(r['last_error'] or '')[:60]}{dup}\n"
        )
    return 0


def cmd_show(args: argparse.Namespace, app: App) -> int:
    app.ensure_schema()
    d = outbox_admin.show_outbox(app.factory, args.id)
    if d is None:
        raise InputError(f"outbox row {args.id} does not exist")
    if args.json:
        dump_json(d, app.out)
        return 0
    out = app.out
    out.write(f"outbox #{d['id']}  {d['status']}  {d['template']} ({d['language']})\n")
    for label, key in (
        ("to", "to"),
        ("subject", "subject"),
        ("claim", "claim"),
        ("rma", "rma"),
        ("message-id", "message_id"),
        ("created", "created_at"),
        ("attempts", "attempts"),
        ("next try", "next_attempt_at"),
        ("attempted", "attempted_at"),
        ("sent", "sent_at"),
        ("last error", "last_error"),
    ):
        if d[key] not in (None, ""):
            out.write(f"  {label + ':':12}{d[key]}\n")
    if d["possible_duplicate"]:
        out.write("  possible duplicate: sent again after an unknown outcome\n")
    if d["caused_by"]:
        c = d["caused_by"]
        out.write(f"  caused by:  event #{c['event_id']} {c['kind']} at {c['at']}")
        out.write(f" (ledger #{c['ledger_id']})\n" if c["ledger_id"] else "\n")
    for a in d["actions"]:
        why = f": {a['reason']}" if a["reason"] else ""
        out.write(f"  {a['at']}  {a['action']} by {a['by']} ({a['from']} -> {a['to']}){why}\n")
    return 0


def _action(args: argparse.Namespace, app: App, what: str) -> int:
    app.ensure_schema()
    fn = outbox_admin.retry if what == "retry" else outbox_admin.cancel
    done = fn(
        app.factory,
        args.id,
        by=operator_name(args.by),
        why=(args.reason or "").strip(),
        now=app.now(),
    )
    if args.json:
        dump_json(done, app.out)
    else:
        app.out.write(f"outbox #{done['id']}: {done['from']} -> {done['to']} (by {done['by']})\n")
    return 0


def cmd_retry(args: argparse.Namespace, app: App) -> int:
    return _action(args, app, "retry")


def cmd_cancel(args: argparse.Namespace, app: App) -> int:
    return _action(args, app, "cancel")
