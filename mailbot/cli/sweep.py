"""`mailbot sweep [--dry-run] [--as-of T]`: run the deadline sweeps once, or preview them.

A real sweep acts on the clock (or `--now`): a moment in the future would void
claims, expire RMAs and send mails before their time, and date events ahead,
so `--as-of` later than now is only accepted with `--dry-run`, which reports
what would change and which mails would go and writes nothing.
"""

from __future__ import annotations

import argparse
import sys

from mailbot.cli.app import App, print_json
from mailbot.cli.main import parse_moment
from mailbot.services.sweeps import SweepChange, run_sweeps


def _line(c: SweepChange) -> str:
    if c.reply is not None:
        mail = f"mail {c.reply} to {c.to}"
    elif c.suppressed:
        mail = f"no mail ({c.suppressed})"
    else:
        mail = "no mail"
    return f"  {c.table} {c.ref}: {c.kind} {c.from_state} -> {c.to_state}, {mail}\n"


def cmd_sweep(args: argparse.Namespace, app: App) -> int:
    now = app.now()
    as_of = parse_moment(args.as_of) if args.as_of else now
    if as_of > now and not args.dry_run:
        sys.stderr.write(
            f"mailbot: sweep: --as-of {as_of.isoformat()} is in the future "
            f"(now is {now.isoformat()}); a real sweep would act early and date its "
            "events ahead. Preview it with --dry-run.\n"
        )
        return 2
    app.ensure_schema()
    stats = run_sweeps(app.factory, app.settings, app.rules, as_of, dry_run=args.dry_run)
    mails = sum(1 for c in stats.changes if c.reply is not None)
    if args.json:
        print_json(
            {
                "as_of": as_of.isoformat(),
                "dry_run": stats.dry_run,
                "claims": stats.claims,
                "rmas": stats.rmas,
                "mails": mails,
                "errors": stats.errors,
                "transitions": stats.kinds,
                "changes": [c.as_dict() for c in stats.changes],
            },
            app.out,
        )
    else:
        if stats.dry_run:
            app.out.write(
                f"dry run, nothing written: sweep as of {as_of.isoformat()} would change "
                f"{stats.claims} claims and {stats.rmas} RMAs and send {mails} mails, "
                f"{stats.errors} errors\n"
            )
        else:
            app.out.write(
                f"sweep as of {as_of.isoformat()}: {stats.claims} claims and "
                f"{stats.rmas} RMAs changed, {mails} mails queued, {stats.errors} errors\n"
            )
        for change in stats.changes:
            app.out.write(_line(change))
    return 1 if stats.errors else 0
