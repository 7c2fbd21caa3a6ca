"""`mailbot rma issue|show|list`, and the operator actions `receive|close|attach`."""

from __future__ import annotations

import argparse
from typing import Any

from sqlalchemy.orm import Session

from mailbot.cli.app import EVENT_COLUMNS, App
from mailbot.cli.claims import Layout, list_records, report_created, run_action, show_record
from mailbot.services import operator as op
from mailbot.services import rmas as svc
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
    headline = f"RMA issued, valid until {summary['expires_at']}; number:"
    return report_created(args, app, summary, headline, summary["number"])


SHOW: Layout = (
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
)


def cmd_show(args: argparse.Namespace, app: App) -> int:
    missing = f"no RMA {args.number}"
    return show_record(
        args, app, lambda s: rma_by_number(s, args.number), svc.rma_details, missing, SHOW
    )


LIST_COLUMNS = ("number", "state", "kind", "product", "expires_at", "tracking_number", "carrier")


def cmd_list(args: argparse.Namespace, app: App) -> int:
    def rows(session: Session) -> list[dict[str, Any]]:
        found = svc.list_rmas(session, state=args.state, limit=args.limit)
        return [svc.rma_summary(r) for r in found]

    return list_records(args, app, rows, LIST_COLUMNS)


def cmd_receive(args: argparse.Namespace, app: App) -> int:
    return run_action(args, app, lambda s, ctx: op.rma_receive(s, ctx, args.number))


def cmd_close(args: argparse.Namespace, app: App) -> int:
    return run_action(args, app, lambda s, ctx: op.rma_close(s, ctx, args.number, args.outcome))


def cmd_attach(args: argparse.Namespace, app: App) -> int:
    return run_action(
        args, app, lambda s, ctx: op.attach(s, ctx, args.message, rma_number=args.number)
    )
