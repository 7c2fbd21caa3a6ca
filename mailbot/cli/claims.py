"""`mailbot claims register|import|show|list`, and the operator actions
`decide|ask|reopen|attach|email|correct|pay` (`mailbot.services.operator`)."""

from __future__ import annotations

import argparse
import csv
import getpass
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO, TypeVar

from sqlalchemy.orm import Session

from mailbot.cli.app import EVENT_COLUMNS, App, print_json, print_record, print_table
from mailbot.services import claims as svc
from mailbot.services import operator as op
from mailbot.services.claims import InputError, Registration
from mailbot.services.records import claim_by_code
from mailbot.services.rmas import rma_summary
from mailbot.store.db import transaction

LIST_COLUMNS = ("code", "campaign", "state", "reasons", "model", "payout", "deadline_at")


def _refused(exc: InputError) -> int:
    """An operator's value was refused: the reason on stderr and exit code 2 (as for
    a wrong option), never a traceback; nothing was written."""
    sys.stderr.write(f"mailbot: {exc}\n")
    return 2


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
    try:
        with transaction(app.factory) as session:
            row = svc.register_claim(
                session,
                reg,
                rules=app.rules,
                settings=app.settings,
                now=app.now(),
                force=args.force,
            )
            summary = svc.claim_summary(row)
    except InputError as exc:
        return _refused(exc)
    headline = f"registered claim for campaign {summary['campaign']}; code:"
    return report_created(args, app, summary, headline, summary["code"])


def report_created(
    args: argparse.Namespace, app: App, summary: dict[str, Any], headline: str, ref: str
) -> int:
    """What a command created: its summary as JSON (`--json`), or the headline and then
    the new code or number alone on the last line, for a script to take."""
    if args.json:
        print_json(summary, app.out)
    else:
        app.out.write(f"{headline}\n{ref}\n")
    return 0


# The registration form's CSV export, header row first (README: "claims import").
# `campaign`, `email`, `name` and `model` are required; the others may be absent.
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
    "external_id",
)
REQUIRED_COLUMNS = ("campaign", "email", "name", "model")
# other spellings spreadsheets and form tools write for the same columns
COLUMN_ALIASES = {"first_mail_date": "first_campaign_mail_on", "id": "external_id"}


def _header_key(text: str) -> str:
    key = "_".join(text.strip().lower().replace("-", " ").split())
    return COLUMN_ALIASES.get(key, key)


def _reader(fh: TextIO) -> csv.DictReader[str]:
    """Comma or semicolon separated, whichever the file uses (spreadsheets set to a
    Nordic locale write semicolons, because the comma is their decimal mark)."""
    sample = fh.read(64 * 1024)
    fh.seek(0)
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(sample, delimiters=",;")
    except csv.Error:
        # one column, or too little text to tell: the header line decides
        header = sample.splitlines()[0] if sample else ""
        dialect = csv.excel if header.count(",") >= header.count(";") else _Semicolon
    return csv.DictReader(fh, dialect=dialect)


class _Semicolon(csv.excel):
    delimiter = ";"


def cmd_import(args: argparse.Namespace, app: App) -> int:
    try:
        return _import(args, app)
    except InputError as exc:
        return _refused(exc)


def _import(args: argparse.Namespace, app: App) -> int:
    """All rows or none: every bad row is named with file:line and nothing is
    registered. Rows registered by an earlier import (same external_id, else same
    campaign, address, model and serial) are reported and not registered again."""
    app.ensure_schema()
    path = Path(args.file)
    extra_mode = args.extra_columns
    force = args.force
    try:
        fh = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror}") from None
    with fh:
        try:
            reader = _reader(fh)
            names = [_header_key(n) for n in (reader.fieldnames or ())]
            reader.fieldnames = names
            rows = list(reader)
        except (UnicodeDecodeError, csv.Error) as exc:
            raise InputError(f"{path}: not a UTF-8 CSV file ({exc})") from None
    doubled = sorted({n for n in names if names.count(n) > 1})
    if doubled:
        raise InputError(f"{path}:1: columns given twice: {', '.join(doubled)}")
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise InputError(f"{path}:1: missing columns {', '.join(missing)}")
    extra = [n for n in names if n not in CSV_COLUMNS]
    if extra and extra_mode == "refuse":
        raise InputError(f"{path}:1: unknown columns {', '.join(extra)}")
    if extra and extra_mode == "ignore":
        sys.stderr.write(f"mailbot: {path}: ignored columns {', '.join(extra)}\n")
    now = app.now()
    done: list[dict[str, object]] = []
    errors: list[str] = []
    seen: dict[tuple[str, ...], int] = {}
    with transaction(app.factory) as session:
        for line, raw in enumerate(rows, start=2):
            if None in raw:
                errors.append(f"{path}:{line}: more cells than the header has columns")
                continue
            values = {key: (cell or "").strip() for key, cell in raw.items()}
            if not any(values.values()):
                continue  # spreadsheets end files with empty rows
            reg = _registration(values, extra if extra_mode == "keep" else [])
            try:
                checked = svc.check_registration(reg, app.rules, now, force=force)
            except InputError as exc:
                errors.append(f"{path}:{line}: {exc}")
                continue
            key = _idempotency_key(checked)
            if key in seen:
                errors.append(f"{path}:{line}: the same registration as line {seen[key]}")
                continue
            seen[key] = line
            old = svc.find_registered(session, checked, external_id=reg.external_id)
            if old is not None:
                done.append(
                    {"line": line, "code": old.code, "email": old.email, "status": "exists"}
                )
                continue
            claim = svc.register_claim(
                session, reg, rules=app.rules, settings=app.settings, now=now, force=force
            )
            done.append(
                {"line": line, "code": claim.code, "email": claim.email, "status": "registered"}
            )
        if errors:
            # the transaction rolls back: all rows or none
            raise InputError("\n".join(errors))
    if args.json:
        print_json(done, app.out)
    else:
        print_table(done, ("line", "code", "email", "status"), app.out)
    return 0


def _registration(values: dict[str, str], keep: list[str]) -> Registration:
    def get(name: str) -> str | None:
        return values.get(name) or None

    return Registration(
        campaign=values.get("campaign", ""),
        email=values.get("email", ""),
        name=values.get("name", ""),
        model=values.get("model", ""),
        serial=get("serial"),
        purchase_date=get("purchase_date"),
        retailer=get("retailer"),
        country=get("country"),
        language=get("language"),
        price=get("price"),
        currency=get("currency"),
        first_campaign_mail_on=get("first_campaign_mail_on"),
        company=get("company"),
        external_id=get("external_id"),
        extra=tuple((k, values[k]) for k in keep if values.get(k)),
    )


def _idempotency_key(c: svc.Checked) -> tuple[str, ...]:
    if c.reg.external_id:
        return ("external_id", c.campaign.id, c.reg.external_id)
    return ("claim", c.campaign.id, c.email.lower(), c.model, (c.reg.serial or "").strip())


R = TypeVar("R")

Layout = tuple[Sequence[str], Sequence[tuple[str, Sequence[str]]]]
"""What `print_record` shows of a record: its fields, then its titled tables."""

SHOW: Layout = (
    (
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
    ),
    (
        ("events", EVENT_COLUMNS),
        ("documents", ("filename", "type", "kind", "accepted", "refusal")),
        ("replies", ("template", "status", "subject")),
    ),
)


def show_record(
    args: argparse.Namespace,
    app: App,
    find: Callable[[Session], R | None],
    details: Callable[[Session, R], dict[str, Any]],
    missing: str,
    layout: Layout,
) -> int:
    """A `show` command: the row `find` returns, as JSON (`--json`) or for people;
    `missing` is the refusal when there is none."""
    with transaction(app.factory) as session:
        row = find(session)
        if row is None:
            raise InputError(missing)
        record = details(session, row)
    if args.json:
        print_json(record, app.out)
    else:
        print_record(record, *layout, app.out)
    return 0


def cmd_show(args: argparse.Namespace, app: App) -> int:
    missing = f"no claim with code {args.code}"
    return show_record(
        args, app, lambda s: claim_by_code(s, args.code), svc.claim_details, missing, SHOW
    )


def list_records(
    args: argparse.Namespace,
    app: App,
    rows: Callable[[Session], list[dict[str, Any]]],
    columns: Sequence[str],
    for_people: Callable[[dict[str, Any]], dict[str, Any]] = lambda row: row,
) -> int:
    """A `list` command: the rows as JSON (`--json`), or a table of `columns` with each
    row as `for_people` puts it."""
    with transaction(app.factory) as session:
        found = rows(session)
    if args.json:
        print_json(found, app.out)
    else:
        print_table([for_people(r) for r in found], columns, app.out)
    return 0


def _payout_in_words(row: dict[str, Any]) -> dict[str, Any]:
    p = row["payout"]
    return row | {"payout": f"{p['amount']} {p['currency']}" if p else ""}


def cmd_list(args: argparse.Namespace, app: App) -> int:
    def rows(session: Session) -> list[dict[str, Any]]:
        found = svc.list_claims(session, state=args.state, campaign=args.campaign, limit=args.limit)
        return [svc.claim_summary(r) for r in found]

    return list_records(args, app, rows, LIST_COLUMNS, _payout_in_words)


def default_actor() -> str:
    """Who runs the command: $MAILBOT_ACTOR (a desk or a script sets it), else the login."""
    return os.environ.get("MAILBOT_ACTOR") or getpass.getuser()


def operator_context(args: argparse.Namespace, app: App) -> op.Context:
    """The operator context of a command: its `--by` (or the default actor), `--role`, `--why`."""
    return op.context(
        rules=app.rules,
        settings=app.settings,
        now=app.now(),
        actor=op.Actor(args.by or default_actor(), args.role),
        why=args.why,
    )


def run_action(
    args: argparse.Namespace,
    app: App,
    action: Callable[[Session, op.Context], op.Done],
) -> int:
    """Run one operator action in one transaction and report it; a refusal (wrong
    state, wrong value) is exit 2 with the reason, and nothing is written."""
    try:
        ctx = operator_context(args, app)
        with transaction(app.factory) as session:
            done = action(session, ctx)
            out: dict[str, object] = {
                "event": done.kind,
                "from": done.from_state,
                "to": done.to_state,
                "reply": done.reply,
            }
            if done.claim is not None:
                out = svc.claim_summary(done.claim) | out
            if done.rma is not None:
                out = rma_summary(done.rma) | out
    except InputError as exc:
        return _refused(exc)
    if args.json:
        print_json(out, app.out)
    else:
        ref = out.get("code") or out.get("number")
        reply = f"; reply queued: {done.reply}" if done.reply else ""
        app.out.write(f"{ref} {done.from_state} -> {done.to_state} ({done.kind}){reply}\n")
    return 0


def cmd_decide(args: argparse.Namespace, app: App) -> int:
    return run_action(
        args,
        app,
        lambda s, ctx: op.decide(
            s, ctx, args.code, args.decision, reason=args.reason, price=args.price
        ),
    )


def cmd_ask(args: argparse.Namespace, app: App) -> int:
    return run_action(
        args,
        app,
        lambda s, ctx: op.ask(
            s, ctx, args.code, documents=args.document or (), fields=args.field or ()
        ),
    )


def cmd_reopen(args: argparse.Namespace, app: App) -> int:
    return run_action(args, app, lambda s, ctx: op.reopen(s, ctx, args.code))


def cmd_attach(args: argparse.Namespace, app: App) -> int:
    return run_action(
        args, app, lambda s, ctx: op.attach(s, ctx, args.message, claim_code=args.code)
    )


def cmd_email(args: argparse.Namespace, app: App) -> int:
    return run_action(args, app, lambda s, ctx: op.change_email(s, ctx, args.code, args.email))


def cmd_correct(args: argparse.Namespace, app: App) -> int:
    return run_action(
        args, app, lambda s, ctx: op.correct_field(s, ctx, args.code, args.field, args.value)
    )


def cmd_pay(args: argparse.Namespace, app: App) -> int:
    return run_action(args, app, lambda s, ctx: op.pay(s, ctx, args.code, reference=args.reference))


def cmd_reevaluate(args: argparse.Namespace, app: App) -> int:
    """`claims reevaluate CODE [--dry-run]`: the current rules applied to one claim."""
    from mailbot.services.replay import reevaluate

    app.ensure_schema()
    try:
        ctx = operator_context(args, app)
        done = reevaluate(app.factory, ctx, args.code, dry_run=args.dry_run)
    except InputError as exc:
        return _refused(exc)
    if args.json:
        print_json(done.as_dict(), app.out)
        return 0
    verb = "would move" if done.dry_run else "moved"
    reply = done.reply or "none"
    queued = "would be queued" if done.dry_run else "queued"
    app.out.write(
        f"{done.code} {verb} {done.from_state} -> {done.to_state} ({done.kind}; "
        f"{', '.join(done.reasons)}); reply {queued}: {reply}\n"
    )
    return 0
