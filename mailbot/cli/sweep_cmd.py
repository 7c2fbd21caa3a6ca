"""`mailbot sweep [--as-of T]`: run the deadline sweeps once."""

from __future__ import annotations

import argparse

from mailbot.cli.app import App, print_json
from mailbot.cli.main import parse_moment
from mailbot.services.sweeps import run_sweeps


def cmd_sweep(args: argparse.Namespace, app: App) -> int:
    app.ensure_schema()
    now = parse_moment(args.as_of) if args.as_of else app.now()
    stats = run_sweeps(app.factory, app.settings, app.rules, now)
    result = {
        "as_of": now.isoformat(),
        "claims": stats.claims,
        "rmas": stats.rmas,
        "errors": stats.errors,
        "transitions": stats.kinds,
    }
    if args.json:
        print_json(result, app.out)
    else:
        app.out.write(
            f"sweep as of {now.isoformat()}: {stats.claims} claims and "
            f"{stats.rmas} RMAs changed, {stats.errors} errors\n"
        )
        for kind, n in sorted(stats.kinds.items()):
            app.out.write(f"  {kind}: {n}\n")
    return 1 if stats.errors else 0
