"""`mailbot` argument parsing and dispatch.

Each subcommand names its handler as "module:function" and is imported only when
run, so one command's heavy imports (OCR, IMAP) never slow down another. Handlers
take (args, app) and return the exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from mailbot import __version__
from mailbot.core.errors import MailbotError
from mailbot.core.languages import LANGUAGES

HANDLERS = "mailbot.cli."


def _json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON for scripts")


def _operator(p: argparse.ArgumentParser, *, why_required: bool = True) -> None:
    """Who acts and why: recorded in the action's event (`mailbot.services.operator`)."""
    p.add_argument("--why", required=why_required, help="the reason, kept in the event")
    p.add_argument("--by", help="who acts (default: $MAILBOT_ACTOR, else the login name)")
    p.add_argument("--role", choices=("operator", "admin"), default="operator")
    _json(p)


def _cmd(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    handler: str,
    help_: str,
    desc: str | None = None,
) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(name, help=help_, description=desc or help_)
    p.set_defaults(handler=handler)
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mailbot",
        description="Email-driven claims processing: cashback claims and warranty returns.",
    )
    parser.add_argument("--version", action="version", version=f"mailbot {__version__}")
    parser.add_argument(
        "--config", metavar="PATH", help="TOML config file (default: $MAILBOT_CONFIG)"
    )
    parser.add_argument("--log-format", choices=("json", "text"), help="override log.format")
    parser.add_argument("--log-level", help="override log.level (DEBUG, INFO, ...)")
    parser.add_argument(
        "--now",
        metavar="ISO-DATETIME",
        help="pretend it is this time (UTC unless an offset is given): for demos, "
        "replays and tests against campaigns that have ended",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    _cmd(
        sub,
        "run",
        "run:cmd_run",
        "run the daemon: watch IMAP (IDLE or poll), "
        "process mail, deliver replies, run deadline sweeps, until SIGTERM",
    )
    _cmd(
        sub,
        "worker",
        "run:cmd_worker",
        "decide fetched mail only, beside `mailbot run` processes on the same PostgreSQL "
        "(no IMAP, no delivery, no sweeps), until SIGTERM",
    )
    p = _cmd(
        sub,
        "once",
        "run:cmd_once",
        "process everything pending, deliver the outbox, run the sweeps, exit",
    )
    _json(p)
    p = _cmd(
        sub,
        "check",
        "check:cmd_check",
        "check config, rules, templates, database, IMAP login, SMTP greeting and "
        "tesseract; one line per item, OK or the exact problem",
    )
    p.add_argument("--offline", action="store_true", help="skip the IMAP and SMTP checks")
    _json(p)

    p = sub.add_parser("db", help="database schema", description="database schema")
    dsub = p.add_subparsers(dest="db_command", metavar="SUBCOMMAND", required=True)
    q = _cmd(dsub, "upgrade", "db:cmd_upgrade", "create or migrate the schema to the newest")
    q.add_argument("--revision", default="head", help="target alembic revision (default head)")

    p = sub.add_parser("claims", help="cashback claims", description="cashback claims")
    csub = p.add_subparsers(dest="claims_command", metavar="SUBCOMMAND", required=True)
    q = _cmd(
        csub,
        "register",
        "claims:cmd_register",
        "register a claim: prints its 8-digit code and queues the confirmation mail",
    )
    q.add_argument("--campaign", required=True, help="campaign id, e.g. cashback-2022")
    q.add_argument("--email", required=True)
    q.add_argument("--name", required=True)
    q.add_argument("--model", required=True, help="product model as registered")
    q.add_argument("--serial")
    q.add_argument("--purchase-date", help="YYYY-MM-DD (or DD.MM.YYYY, DD/MM/YYYY)")
    q.add_argument("--retailer")
    q.add_argument("--country", help="ISO country code, e.g. NO")
    q.add_argument("--language", help=f"{', '.join(LANGUAGES)} (default: the campaign's)")
    q.add_argument("--price", help="purchase price, for percentage payouts")
    q.add_argument("--currency", help="ISO currency of the price")
    q.add_argument(
        "--first-mail-date",
        help="YYYY-MM-DD of the first campaign mail (for windows counted from it, e.g. 6 weeks)",
    )
    q.add_argument("--company", action="store_true", help="the buyer registered as a company")
    q.add_argument("--force", action="store_true", help="register even if the campaign is closed")
    _json(q)
    q = _cmd(
        csub,
        "import",
        "claims:cmd_import",
        "register claims in bulk from the registration form's CSV export",
    )
    q.add_argument("file", help="CSV, comma or semicolon: campaign,email,name,model[,...]")
    q.add_argument(
        "--extra-columns",
        choices=("ignore", "keep", "refuse"),
        default="ignore",
        help="columns mailbot does not know: ignore (default), keep with the claim, or refuse",
    )
    q.add_argument("--force", action="store_true", help="register even if a campaign is closed")
    _json(q)
    q = _cmd(csub, "show", "claims:cmd_show", "one claim: state, fields, documents, events")
    q.add_argument("code")
    _json(q)
    q = _cmd(csub, "list", "claims:cmd_list", "list claims")
    q.add_argument("--state")
    q.add_argument("--campaign")
    q.add_argument("--limit", type=int, default=100)
    _json(q)
    q = _cmd(
        csub,
        "decide",
        "claims:cmd_decide",
        "approve (approval mail with the payout) or reject with a reason code (rejection mail)",
    )
    q.add_argument("code")
    q.add_argument("decision", choices=("approve", "reject"))
    q.add_argument("--reason", help="reject: purchase_outside_window, not_verified, ...")
    q.add_argument("--price", help="approve: the price the payout is computed from")
    _operator(q)
    q = _cmd(
        csub,
        "ask",
        "claims:cmd_ask",
        "ask for named missing items: missing-information mail with the campaign's deadline",
    )
    q.add_argument("code")
    q.add_argument("--document", action="append", help="e.g. receipt, serial_photo (repeat)")
    q.add_argument("--field", action="append", help="e.g. purchase_date, retailer (repeat)")
    _operator(q)
    q = _cmd(csub, "reopen", "claims:cmd_reopen", "a rejected or void claim back to review")
    q.add_argument("code")
    _operator(q)
    q = _cmd(
        csub,
        "attach",
        "claims:cmd_attach",
        "put a ledger message (and its documents) on a claim, decided as if it had matched",
    )
    q.add_argument("code")
    q.add_argument("message", type=int, help="ledger row id (`mailbot messages list`)")
    _operator(q)
    q = _cmd(csub, "email", "claims:cmd_email", "change the claimant's address")
    q.add_argument("code")
    q.add_argument("email")
    _operator(q)
    q = _cmd(
        csub,
        "correct",
        "claims:cmd_correct",
        "set a receipt field by hand, kept beside the value read (decides nothing)",
    )
    q.add_argument("code")
    q.add_argument("field", help="retailer, purchase_date, product, price, ... (as missing_fields)")
    q.add_argument("value")
    _operator(q)
    q = _cmd(csub, "pay", "claims:cmd_pay", "mark an approved claim as paid")
    q.add_argument("code")
    q.add_argument("--reference", help="the payment's reference (bank or payout batch)")
    _operator(q, why_required=False)
    q = _cmd(
        csub,
        "reevaluate",
        "claims:cmd_reevaluate",
        "decide an open claim again on what it holds with the current rules (reply as decided)",
    )
    q.add_argument("code")
    q.add_argument(
        "--dry-run",
        action="store_true",
        help="print what would change and the reply; write nothing",
    )
    _operator(q, why_required=False)

    p = sub.add_parser("rma", help="warranty returns (RMA)", description="warranty returns")
    rsub = p.add_subparsers(dest="rma_command", metavar="SUBCOMMAND", required=True)
    q = _cmd(
        rsub,
        "issue",
        "rma:cmd_issue",
        "issue an RMA number and queue the RMA mail with the return instructions",
    )
    q.add_argument("--email", required=True)
    q.add_argument("--product", required=True)
    q.add_argument("--serial")
    q.add_argument("--kind", choices=("warranty", "return"), default="warranty")
    q.add_argument("--language", default="nb")
    _json(q)
    q = _cmd(rsub, "show", "rma:cmd_show", "one RMA with its events")
    q.add_argument("number")
    _json(q)
    q = _cmd(rsub, "list", "rma:cmd_list", "list RMAs")
    q.add_argument("--state")
    q.add_argument("--limit", type=int, default=100)
    _json(q)
    q = _cmd(rsub, "receive", "rma:cmd_receive", "record that the returned item arrived")
    q.add_argument("number")
    _operator(q, why_required=False)
    q = _cmd(rsub, "close", "rma:cmd_close", "close a received RMA: replaced or refunded")
    q.add_argument("number")
    q.add_argument("--outcome", choices=("replaced", "refunded"), required=True)
    _operator(q)
    q = _cmd(
        rsub,
        "attach",
        "rma:cmd_attach",
        "put a ledger message on an RMA (a shipment notice in it is applied)",
    )
    q.add_argument("number")
    q.add_argument("message", type=int, help="ledger row id (`mailbot messages list`)")
    _operator(q)

    p = sub.add_parser(
        "messages",
        help="the ledger of fetched mail",
        description="the ledger: every fetched mail and its final status",
    )
    msub = p.add_subparsers(dest="messages_command", metavar="SUBCOMMAND", required=True)
    q = _cmd(
        msub,
        "list",
        "messages:cmd_list",
        "list ledger rows (newest first) with subject, claim code and cause",
    )
    q.add_argument("--status", help="processed, ignored, quarantined, failed, duplicate, pending")
    q.add_argument("--limit", type=int, default=50)
    _json(q)
    q = _cmd(
        msub,
        "show",
        "messages:cmd_show",
        "one ledger row: headers, cause, status history, replies, documents",
    )
    q.add_argument("id", type=int, metavar="ID", help="ledger row id")
    q.add_argument(
        "--raw", action="store_true", help="print the stored mail bytes as fetched (unmasked)"
    )
    _json(q)
    q = _cmd(
        msub,
        "stats",
        "messages:cmd_stats",
        "counts per status and reason; mails waiting for a person; replies not delivered",
    )
    _json(q)

    p = sub.add_parser(
        "outbox",
        help="queued and sent replies",
        description="the outbox: every reply, its delivery state, retry or cancel one",
    )
    osub = p.add_subparsers(dest="outbox_command", metavar="SUBCOMMAND", required=True)
    q = _cmd(osub, "list", "outbox:cmd_list", "list replies (newest first)")
    q.add_argument(
        "--status",
        help="queued, held, claimed, sending, sent, failed, unconfirmed, cancelled",
    )
    q.add_argument("--limit", type=int, default=50)
    _json(q)
    q = _cmd(osub, "show", "outbox:cmd_show", "one reply: state, error, cause, operator actions")
    q.add_argument("id", type=int, metavar="ID", help="outbox row id")
    _json(q)
    for name, verb in (
        ("retry", "send a failed, unconfirmed or cancelled reply again (same Message-ID)"),
        ("cancel", "make sure a reply that is not sending or sent is never sent"),
    ):
        q = _cmd(osub, name, f"outbox:cmd_{name}", verb)
        q.add_argument("id", type=int, metavar="ID", help="outbox row id")
        q.add_argument("--by", help="who does this (default: the OS user)")
        q.add_argument("--reason", help="why, kept with the event")
        _json(q)

    p = _cmd(
        sub,
        "inspect",
        "inspect:cmd_inspect",
        "parse, classify, match and judge the attachments of one .eml; changes nothing",
    )
    p.add_argument("file")
    _json(p)
    p = _cmd(
        sub,
        "extract",
        "extract:cmd_extract",
        "read receipt fields from documents; one JSON object per file with --json",
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--campaign", help="use this campaign's models, retailers and language")
    p.add_argument("--languages", help="tesseract languages, e.g. nor+eng")
    _json(p)

    p = sub.add_parser("rules", help="admin rules in rules/", description="admin rules")
    usub = p.add_subparsers(dest="rules_command", metavar="SUBCOMMAND", required=True)
    q = _cmd(usub, "check", "rules:cmd_check", "validate every rules file")
    _json(q)
    q = _cmd(
        usub,
        "test",
        "rules:cmd_test",
        "show what extraction reads from a document: text, fields, the rule that fired",
    )
    q.add_argument("file")
    q.add_argument("--campaign")
    _json(q)
    q = _cmd(
        usub,
        "show",
        "rules:cmd_show",
        "print the rules files behind a version recorded on an event or extraction",
    )
    q.add_argument("version", help="the rules version (content hash), e.g. from claims show")
    _json(q)
    q = _cmd(
        usub,
        "replay",
        "rules:cmd_replay",
        "decide the claims holding documents with candidate rules and print each decision "
        "that would change; writes nothing",
    )
    q.add_argument("--rules", required=True, metavar="DIR", help="the candidate rules directory")
    q.add_argument("--since", metavar="DATE", help="only claims with documents received since")
    q.add_argument("--campaign", help="only this campaign's claims")
    q.add_argument(
        "--reread",
        action="store_true",
        help="read the stored documents again with the candidate receipt rules (PDF text, OCR)",
    )
    _json(q)

    p = _cmd(
        sub,
        "reprocess",
        "run:cmd_reprocess",
        "process failed ledger rows (or given ones) again from their stored bytes",
    )
    p.add_argument("--failed", action="store_true", help="every row with status failed")
    p.add_argument("ids", nargs="*", type=int, metavar="ID", help="ledger row ids")
    _json(p)
    p = _cmd(
        sub,
        "sweep",
        "sweep:cmd_sweep",
        "run the deadline sweeps once: void overdue claims, expire RMAs, send reminders",
    )
    p.add_argument(
        "--as-of",
        metavar="ISO-DATETIME",
        help="sweep as of this time (UTC); a future time only with --dry-run",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print what would change and which mails would go; write nothing",
    )
    _json(p)
    p = _cmd(
        sub,
        "demo",
        "demo:cmd_demo",
        "run the demo conversation on embedded defaults (local Dovecot + SMTP sink)",
    )
    p.add_argument("--keep", action="store_true", help="keep the demo's data directory")

    p = _cmd(
        sub,
        "web",
        "web:cmd_web",
        "serve the operators' web desk (queue, claims, search, actions) on web.listen",
    )
    p.add_argument("--listen", metavar="HOST:PORT", help="override web.listen")
    p = sub.add_parser(
        "users", help="web desk accounts", description="the web desk's accounts and roles"
    )
    usub = p.add_subparsers(dest="users_command", metavar="SUBCOMMAND", required=True)
    for name, verb in (
        ("add", "add an account: viewer reads, agent acts on claims, admin also outbox"),
        ("passwd", "set a new password (enables the account, ends its sessions)"),
        ("role", "change an account's role (ends its sessions)"),
        ("disable", "disable an account (ends its sessions)"),
    ):
        q = _cmd(usub, name, f"users:cmd_{name}", verb)
        q.add_argument("name", help="login name: a-z, 0-9, '.', '_', '-'")
        if name in ("add", "role"):
            q.add_argument(
                "--role", choices=("viewer", "agent", "admin"), required=name == "role",
                default=None if name == "role" else "viewer",
            )  # fmt: skip
        if name in ("add", "passwd"):
            q.add_argument(
                "--password-stdin",
                action="store_true",
                help="read the password from one line of stdin instead of a prompt",
            )
    q = _cmd(usub, "list", "users:cmd_list", "list accounts with role and last login")
    _json(q)
    return parser


def _fixed_clock(text: str) -> Callable[[], datetime]:
    moment = parse_moment(text)
    return lambda: moment


def parse_moment(text: str) -> datetime:
    """An ISO date or datetime from the command line; naive means UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise SystemExit(f"mailbot: not an ISO date/time: {text!r}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from mailbot.cli.app import App
    from mailbot.config import load_settings
    from mailbot.log import setup_logging

    try:
        settings = load_settings(args.config)
    except MailbotError as exc:
        print(f"mailbot: config: {exc}", file=sys.stderr)
        return 2
    setup_logging(args.log_level or settings.log.level, args.log_format or settings.log.format)
    clock = _fixed_clock(args.now) if args.now else None
    module_name, func_name = args.handler.split(":")
    module = importlib.import_module(HANDLERS + module_name)
    handler = getattr(module, func_name)
    try:
        app = App(settings) if clock is None else App(settings, clock=clock)
        code: int = handler(args, app)
    except MailbotError as exc:
        print(f"mailbot: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
