"""`mailbot claims register|import|show|list|pay`."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from mailbot.cli.app import App, print_json, print_table
from mailbot.services import claims as svc
from mailbot.services.claims import InputError, Registration
from mailbot.services.records import claim_by_code
from mailbot.store.db import transaction

LIST_COLUMNS = ("code", "campaign", "state", "reasons", "model", "payout", "deadline_at")


def cmd_register(args: argparse.Namespace, app: App) -> int:
    app.ensure_schema()
    reg = Registration(
        campaign=args.campaign,
        email=args.email,
        name=args.name,
        model=args.model,
        serial=args.serial,
        purchase_date=args.purchase_date,
        retailer=args.retailer,
        country=args.country,
        language=args.language,
        price=args.price,
        currency=args.currency,
        first_campaign_mail_on=args.first_mail_date,
        company="yes" if args.company else None,
    )
    with transaction(app.factory) as session:
        row = svc.register_claim(
            session, reg, rules=app.rules, settings=app.settings, now=app.now()
        )
        summary = svc.claim_summary(row)
    if args.json:
        print_json(summary, app.out)
    else:
        app.out.write(f"registered claim for campaign {summary['campaign']}; code:\n")
        app.out.write(f"{summary['code']}\n")
    return 0


# The registration form's CSV export: these columns, header row first.
CSV_COLUMNS = (
    "campaign",
    "email",
    "name",
    "model",
    "serial",
    "purchase_date",
    "retailer",
    "country",
    "language",
    "price",
    "currency",
    "first_campaign_mail_on",
    "company",
)


def cmd_import(args: argparse.Namespace, app: App) -> int:
    """All rows or none: a bad row names its line and nothing is registered."""
    app.ensure_schema()
    path = Path(args.file)
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        unknown = set(reader.fieldnames or ()) - set(CSV_COLUMNS)
        if unknown:
            raise InputError(f"{path}: unknown columns {', '.join(sorted(unknown))}")
        rows = list(reader)
    done = []
    with transaction(app.factory) as session:
        for line, row in enumerate(rows, start=2):
            values = {k: (v or "").strip() or None for k, v in row.items()}
            for required in ("campaign", "email", "name", "model"):
                if not values.get(required):
                    raise InputError(f"{path}:{line}: {required} is empty")
            try:
                claim = svc.register_claim(
                    session,
                    Registration(**values),  # type: ignore[arg-type]
                    rules=app.rules,
                    settings=app.settings,
                    now=app.now(),
                )
            except InputError as exc:
                raise InputError(f"{path}:{line}: {exc}") from None
            done.append({"line": line, "code": claim.code, "email": claim.email})
    if args.json:
        print_json(done, app.out)
    else:
        print_table(done, ("line", "code", "email"), app.out)
    return 0


def cmd_show(args: argparse.Namespace, app: App) -> int:
    with transaction(app.factory) as session:
        row = claim_by_code(session, args.code)
        if row is None:
            raise InputError(f"no claim with code {args.code}")
        details = svc.claim_details(session, row)
    if args.json:
        print_json(details, app.out)
        return 0
    for key in (
        "code",
        "campaign",
        "state",
        "reasons",
        "model",
        "deadline_at",
        "payout",
        "address_undeliverable",
        "missing_documents",
        "missing_fields",
    ):
        app.out.write(f"{key:22} {details.get(key)}\n")
    app.out.write("\nevents:\n")
    print_table(details["events"], ("at", "kind", "from", "to", "reasons"), app.out)
    app.out.write("\ndocuments:\n")
    print_table(details["documents"], ("filename", "type", "kind", "accepted", "refusal"), app.out)
    app.out.write("\nreplies:\n")
    print_table(details["replies"], ("template", "status", "subject"), app.out)
    return 0


def cmd_list(args: argparse.Namespace, app: App) -> int:
    with transaction(app.factory) as session:
        rows = [
            svc.claim_summary(r)
            for r in svc.list_claims(
                session, state=args.state, campaign=args.campaign, limit=args.limit
            )
        ]
    if args.json:
        print_json(rows, app.out)
    else:
        for r in rows:
            p = r["payout"]
            r["payout"] = f"{p['amount']} {p['currency']}" if p else ""
        print_table(rows, LIST_COLUMNS, app.out)
    return 0


def cmd_pay(args: argparse.Namespace, app: App) -> int:
    with transaction(app.factory) as session:
        row = svc.mark_paid(
            session, args.code, rules=app.rules, settings=app.settings, now=app.now()
        )
        summary = svc.claim_summary(row)
    if args.json:
        print_json(summary, app.out)
    else:
        app.out.write(f"{summary['code']} {summary['state']}\n")
    return 0
