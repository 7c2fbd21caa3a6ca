"""`mailbot` argument parsing and dispatch.

Each subcommand names its handler as "module:function" and is imported only when
run, so one command's heavy imports (OCR, IMAP) never slow down another. Handlers
take (args, app) and return the exit code.

The commands are one table (`COMMANDS`): a command is its name, help and arguments;
a group's commands have their handlers in one module, as `cmd_<name>`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mailbot import __version__
from mailbot.core.errors import MailbotError
from mailbot.core.languages import LANGUAGES

HANDLERS = "mailbot.cli."

Arg = tuple[tuple[str, ...], dict[str, Any]]
"""One `add_argument` call: its names and its options."""


def _arg(*names: str, **options: Any) -> Arg:
    return names, options


@dataclass(frozen=True)
class Cmd:
    """A command, its handler `<module>:cmd_<name>`; or, with `commands`, a group of
    commands whose handlers are in `module`."""

    name: str
    help: str
    args: Sequence[Arg] = ()
    module: str = ""
    commands: Sequence[Cmd] = ()
    description: str = ""
    """The --help text, when it says more than `help`."""


JSON = (_arg("--json", action="store_true", help="print JSON for scripts"),)


def _operator(*, why_required: bool) -> tuple[Arg, ...]:
    """Who acts and why: recorded in the action's event (`mailbot.services.operator`)."""
    return (
        _arg("--why", required=why_required, help="the reason, kept in the event"),
        _arg("--by", help="who acts (default: $MAILBOT_ACTOR, else the login name)"),
        _arg("--role", choices=("operator", "admin"), default="operator"),
        *JSON,
    )


ACTS = _operator(why_required=True)
ACTS_WHY_OPTIONAL = _operator(why_required=False)
CODE = _arg("code")
NUMBER = _arg("number")
LEDGER_ROW = _arg("message", type=int, help="ledger row id (`mailbot messages list`)")
OUTBOX_ROW = _arg("id", type=int, metavar="ID", help="outbox row id")
OUTBOX_ACTOR = (
    _arg("--by", help="who does this (default: the OS user)"),
    _arg("--reason", help="why, kept with the event"),
)
LOGIN = _arg("name", help="login name: a-z, 0-9, '.', '_', '-'")
PASSWORD_STDIN = _arg(
    "--password-stdin",
    action="store_true",
    help="read the password from one line of stdin instead of a prompt",
)
WEB_ROLES = ("viewer", "agent", "admin")

CLAIMS = (
    Cmd(
        "register",
        "register a claim: prints its 8-digit code and queues the confirmation mail",
        (
            _arg("--campaign", required=True, help="campaign id, e.g. cashback-2022"),
            _arg("--email", required=True),
            _arg("--name", required=True),
            _arg("--model", required=True, help="product model as registered"),
            _arg("--serial"),
            _arg("--purchase-date", help="YYYY-MM-DD (or DD.MM.YYYY, DD/MM/YYYY)"),
            _arg("--retailer"),
            _arg("--country", help="ISO country code, e.g. NO"),
            _arg("--language", help=f"{', '.join(LANGUAGES)} (default: the campaign's)"),
            _arg("--price", help="purchase price, for percentage payouts"),
            _arg("--currency", help="ISO currency of the price"),
            _arg(
                "--first-mail-date",
                help="YYYY-MM-DD of the first campaign mail (for windows counted from it, "
                "e.g. 6 weeks)",
            ),
            _arg("--company", action="store_true", help="the buyer registered as a company"),
            _arg("--force", action="store_true", help="register even if the campaign is closed"),
            *JSON,
        ),
    ),
    Cmd(
        "import",
        "register claims in bulk from the registration form's CSV export",
        (
            _arg("file", help="CSV, comma or semicolon: campaign,email,name,model[,...]"),
            _arg(
                "--extra-columns",
                choices=("ignore", "keep", "refuse"),
                default="ignore",
                help="columns mailbot does not know: ignore (default), keep with the claim, "
                "or refuse",
            ),
            _arg("--force", action="store_true", help="register even if a campaign is closed"),
            *JSON,
        ),
    ),
    Cmd("show", "one claim: state, fields, documents, events", (CODE, *JSON)),
    Cmd(
        "list",
        "list claims",
        (_arg("--state"), _arg("--campaign"), _arg("--limit", type=int, default=100), *JSON),
    ),
    Cmd(
        "decide",
        "approve (approval mail with the payout) or reject with a reason code (rejection mail)",
        (
            CODE,
            _arg("decision", choices=("approve", "reject")),
            _arg("--reason", help="reject: purchase_outside_window, not_verified, ..."),
            _arg("--price", help="approve: the price the payout is computed from"),
            *ACTS,
        ),
    ),
    Cmd(
        "ask",
        "ask for named missing items: missing-information mail with the campaign's deadline",
        (
            CODE,
            _arg("--document", action="append", help="e.g. receipt, serial_photo (repeat)"),
            _arg("--field", action="append", help="e.g. purchase_date, retailer (repeat)"),
            *ACTS,
        ),
    ),
    Cmd("reopen", "a rejected or void claim back to review", (CODE, *ACTS)),
    Cmd(
        "attach",
        "put a ledger message (and its documents) on a claim, decided as if it had matched",
        (CODE, LEDGER_ROW, *ACTS),
    ),
    Cmd("email", "change the claimant's address", (CODE, _arg("email"), *ACTS)),
    Cmd(
        "correct",
        "set a receipt field by hand, kept beside the value read (decides nothing)",
        (
            CODE,
            _arg("field", help="retailer, purchase_date, product, price, ... (as missing_fields)"),
            _arg("value"),
            *ACTS,
        ),
    ),
    Cmd(
        "pay",
        "mark an approved claim as paid",
        (
            CODE,
            _arg("--reference", help="the payment's reference (bank or payout batch)"),
            *ACTS_WHY_OPTIONAL,
        ),
    ),
    Cmd(
        "reevaluate",
        "decide an open claim again on what it holds with the current rules (reply as decided)",
        (
            CODE,
            _arg(
                "--dry-run",
                action="store_true",
                help="print what would change and the reply; write nothing",
            ),
            *ACTS_WHY_OPTIONAL,
        ),
    ),
)

RMA = (
    Cmd(
        "issue",
        "issue an RMA number and queue the RMA mail with the return instructions",
        (
            _arg("--email", required=True),
            _arg("--product", required=True),
            _arg("--serial"),
            _arg("--kind", choices=("warranty", "return"), default="warranty"),
            _arg("--language", default="nb"),
            *JSON,
        ),
    ),
    Cmd("show", "one RMA with its events", (NUMBER, *JSON)),
    Cmd("list", "list RMAs", (_arg("--state"), _arg("--limit", type=int, default=100), *JSON)),
    Cmd("receive", "record that the returned item arrived", (NUMBER, *ACTS_WHY_OPTIONAL)),
    Cmd(
        "close",
        "close a received RMA: replaced or refunded",
        (NUMBER, _arg("--outcome", choices=("replaced", "refunded"), required=True), *ACTS),
    ),
    Cmd(
        "attach",
        "put a ledger message on an RMA (a shipment notice in it is applied)",
        (NUMBER, LEDGER_ROW, *ACTS),
    ),
)

MESSAGES = (
    Cmd(
        "list",
        "list ledger rows (newest first) with subject, claim code and cause",
        (
            _arg("--status", help="processed, ignored, quarantined, failed, duplicate, pending"),
            _arg("--limit", type=int, default=50),
            *JSON,
        ),
    ),
    Cmd(
        "show",
        "one ledger row: headers, cause, status history, replies, documents",
        (
            _arg("id", type=int, metavar="ID", help="ledger row id"),
            _arg(
                "--raw",
                action="store_true",
                help="print the stored mail bytes as fetched (unmasked)",
            ),
            *JSON,
        ),
    ),
    Cmd(
        "stats",
        "counts per status and reason; mails waiting for a person; replies not delivered",
        JSON,
    ),
)

OUTBOX = (
    Cmd(
        "list",
        "list replies (newest first)",
        (
            _arg(
                "--status",
                help="queued, held, claimed, sending, sent, failed, unconfirmed, cancelled",
            ),
            _arg("--limit", type=int, default=50),
            *JSON,
        ),
    ),
    Cmd("show", "one reply: state, error, cause, operator actions", (OUTBOX_ROW, *JSON)),
    Cmd(
        "retry",
        "send a failed, unconfirmed or cancelled reply again (same Message-ID)",
        (OUTBOX_ROW, *OUTBOX_ACTOR, *JSON),
    ),
    Cmd(
        "cancel",
        "make sure a reply that is not sending or sent is never sent",
        (OUTBOX_ROW, *OUTBOX_ACTOR, *JSON),
    ),
)

RULES = (
    Cmd("check", "validate every rules file", JSON),
    Cmd(
        "test",
        "show what extraction reads from a document: text, fields, the rule that fired",
        (_arg("file"), _arg("--campaign"), *JSON),
    ),
    Cmd(
        "show",
        "print the rules files behind a version recorded on an event or extraction",
        (
            _arg("version", help="the rules version (content hash), e.g. from claims show"),
            *JSON,
        ),
    ),
    Cmd(
        "replay",
        "decide the claims holding documents with candidate rules and print each decision "
        "that would change; writes nothing",
        (
            _arg("--rules", required=True, metavar="DIR", help="the candidate rules directory"),
            _arg("--since", metavar="DATE", help="only claims with documents received since"),
            _arg("--campaign", help="only this campaign's claims"),
            _arg(
                "--reread",
                action="store_true",
                help="read the stored documents again with the candidate receipt rules "
                "(PDF text, OCR)",
            ),
            *JSON,
        ),
    ),
)

USERS = (
    Cmd(
        "add",
        "add an account: viewer reads, agent acts on claims, admin also outbox",
        (
            LOGIN,
            _arg("--role", choices=WEB_ROLES, required=False, default="viewer"),
            PASSWORD_STDIN,
        ),
    ),
    Cmd(
        "passwd",
        "set a new password (enables the account, ends its sessions)",
        (LOGIN, PASSWORD_STDIN),
    ),
    Cmd(
        "role",
        "change an account's role (ends its sessions)",
        (LOGIN, _arg("--role", choices=WEB_ROLES, required=True, default=None)),
    ),
    Cmd("disable", "disable an account (ends its sessions)", (LOGIN,)),
    Cmd("list", "list accounts with role and last login", JSON),
)

COMMANDS: Sequence[Cmd] = (
    Cmd(
        "run",
        "run the daemon: watch IMAP (IDLE or poll), "
        "process mail, deliver replies, run deadline sweeps, until SIGTERM",
        module="run",
    ),
    Cmd(
        "worker",
        "decide fetched mail only, beside `mailbot run` processes on the same PostgreSQL "
        "(no IMAP, no delivery, no sweeps), until SIGTERM",
        module="run",
    ),
    Cmd(
        "once",
        "process everything pending, deliver the outbox, run the sweeps, exit",
        JSON,
        module="run",
    ),
    Cmd(
        "check",
        "check config, rules, templates, database, IMAP login, SMTP greeting and "
        "tesseract; one line per item, OK or the exact problem",
        (_arg("--offline", action="store_true", help="skip the IMAP and SMTP checks"), *JSON),
        module="check",
    ),
    Cmd(
        "db",
        "database schema",
        module="db",
        commands=(
            Cmd(
                "upgrade",
                "create or migrate the schema to the newest",
                (
                    _arg(
                        "--revision", default="head", help="target alembic revision (default head)"
                    ),
                ),
            ),
        ),
    ),
    Cmd("claims", "cashback claims", module="claims", commands=CLAIMS),
    Cmd(
        "rma",
        "warranty returns (RMA)",
        module="rma",
        commands=RMA,
        description="warranty returns",
    ),
    Cmd(
        "messages",
        "the ledger of fetched mail",
        module="messages",
        commands=MESSAGES,
        description="the ledger: every fetched mail and its final status",
    ),
    Cmd(
        "outbox",
        "queued and sent replies",
        module="outbox",
        commands=OUTBOX,
        description="the outbox: every reply, its delivery state, retry or cancel one",
    ),
    Cmd(
        "inspect",
        "parse, classify, match and judge the attachments of one .eml; changes nothing",
        (_arg("file"), *JSON),
        module="inspect",
    ),
    Cmd(
        "extract",
        "read receipt fields from documents; one JSON object per file with --json",
        (
            _arg("files", nargs="+", metavar="FILE"),
            _arg("--campaign", help="use this campaign's models, retailers and language"),
            _arg("--languages", help="tesseract languages, e.g. nor+eng"),
            *JSON,
        ),
        module="extract",
    ),
    Cmd(
        "rules",
        "admin rules in rules/",
        module="rules",
        commands=RULES,
        description="admin rules",
    ),
    Cmd(
        "reprocess",
        "process failed ledger rows (or given ones) again from their stored bytes",
        (
            _arg("--failed", action="store_true", help="every row with status failed"),
            _arg("ids", nargs="*", type=int, metavar="ID", help="ledger row ids"),
            *JSON,
        ),
        module="run",
    ),
    Cmd(
        "sweep",
        "run the deadline sweeps once: void overdue claims, expire RMAs, send reminders",
        (
            _arg(
                "--as-of",
                metavar="ISO-DATETIME",
                help="sweep as of this time (UTC); a future time only with --dry-run",
            ),
            _arg(
                "--dry-run",
                action="store_true",
                help="print what would change and which mails would go; write nothing",
            ),
            *JSON,
        ),
        module="sweep",
    ),
    Cmd(
        "demo",
        "run the demo conversation on embedded defaults (local Dovecot + SMTP sink)",
        (_arg("--keep", action="store_true", help="keep the demo's data directory"),),
        module="demo",
    ),
    Cmd(
        "web",
        "serve the operators' web desk (queue, claims, search, actions) on web.listen",
        (_arg("--listen", metavar="HOST:PORT", help="override web.listen"),),
        module="web",
    ),
    Cmd(
        "users",
        "web desk accounts",
        module="users",
        commands=USERS,
        description="the web desk's accounts and roles",
    ),
)


def _add(sub: argparse._SubParsersAction[argparse.ArgumentParser], cmd: Cmd, module: str) -> None:
    p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.description or cmd.help)
    if cmd.commands:
        inner = p.add_subparsers(dest=f"{cmd.name}_command", metavar="SUBCOMMAND", required=True)
        for each in cmd.commands:
            _add(inner, each, cmd.module)
        return
    p.set_defaults(handler=f"{module}:cmd_{cmd.name}")
    for names, options in cmd.args:
        p.add_argument(*names, **options)


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
    for cmd in COMMANDS:
        _add(sub, cmd, cmd.module)
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
