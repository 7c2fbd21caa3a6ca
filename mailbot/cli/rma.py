"""`mailbot rma issue|show|list`, and the operator actions `receive|close|attach`."""

from __future__ import annotations

import argparse

from mailbot.cli.app import EVENT_COLUMNS, App, print_json, print_record, print_table
from mailbot.cli.claims import run_action
from mailbot.services import operator as op
from mailbot.services import rmas as svc
from mailbot.services.claims import InputError
from mailbot.services.records import rma_by_number
from mailbot.store.db import transaction


def cmd_issue(args: argparse.Namespace, app: App) -> int:
    app.ensure_schema()
    with transaction(app.factory) as session:
        row = svc.issue_rma(
            session,
            email=args.email,
            product=args.product,
            kind=args.kind,
            serial=args.serial,
            language=args.language,
            rules=app.rules,
            settings=app.settings,
            now=app.now(),
        )
        summary = svc.rma_summary(row)
    if args.json:
        print_json(summary, app.out)
    else:
        app.out.write(f"RMA issued, valid until {summary['expires_at']}; number:\n")
        app.out.write(f"{summary['number']}\n")
    return 0


def cmd_show(args: argparse.Namespace, app: App) -> int:
    with transaction(app.factory) as session:
        row = rma_by_number(session, args.number)
        if row is None:
            raise InputError(f"no RMA {args.number}")
        details = svc.rma_details(session, row)
    if args.json:
        print_json(details, app.out)
        return 0
    print_record(
        details,
        (
            "number",
            "state",
            "kind",
            "product",
            "issued_at",
            "expires_at",
            "tracking_number",
            "carrier",
            "dropoff_at",
        ),
        (("events", EVENT_COLUMNS),),
        app.out,
    )
    return 0


def cmd_list(args: argparse.Namespace, app: App) -> int:
    with transaction(app.factory) as session:
        rows = [
            svc.rma_summary(r) for r in svc.list_rmas(session, state=args.state, limit=args.limit)
        ]
    if args.json:
        print_json(rows, app.out)
    else:
        print_table(
            rows,
            ("number", "state", "kind", "product", "expires_at", "tracking_number", "carrier"),
            app.out,
        )
    return 0


def cmd_receive(args: argparse.Namespace, app: App) -> int:
    return run_action(args, app, lambda s, ctx: op.rma_receive(s, ctx, args.number))


def cmd_close(args: argparse.Namespace, app: App) -> int:
    return run_action(args, app, lambda s, ctx: op.rma_close(s, ctx, args.number, args.outcome))


def cmd_attach(args: argparse.Namespace, app: App) -> int:
    return run_action(
        args, app, lambda s, ctx: op.attach(s, ctx, args.message, rma_number=args.number)
    )
