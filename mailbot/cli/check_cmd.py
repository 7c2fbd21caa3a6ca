"""`mailbot check`: one line per item, OK or the exact problem.

Config, rules, templates, database, IMAP login, SMTP greeting, tesseract and its
languages. Exit 0 when all are OK, 1 otherwise, so it can gate a deployment.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from mailbot.cli.app import App, print_json
from mailbot.core.errors import MailbotError

Check = Callable[[App], str | None]
"""Returns None (OK, no detail), "ok: detail", or the problem."""


def _config(app: App) -> str | None:
    return f"ok: {app.settings.source}"


def _rules(app: App) -> str | None:
    rules = app.rules
    return (
        f"ok: {len(rules.campaigns)} campaigns ({', '.join(sorted(rules.campaigns))}), "
        f"returns policy, version {rules.version}"
    )


def _templates(app: App) -> str | None:
    from mailbot.templating import check_templates

    problems = check_templates(app.settings.paths.templates_dir or None)
    if problems:
        return f"{len(problems)} problem(s): " + "; ".join(problems[:5])
    return "ok: every template renders in nb, sv, da, fi, en"


def _database(app: App) -> str | None:
    from mailbot.store.db import check_schema

    problem = check_schema(app.engine)
    return problem or f"ok: {app.engine.dialect.name}, schema current"


def _imap(app: App) -> str | None:
    from mailbot.mailbox import Mailbox

    with Mailbox(app.settings.imap) as box:
        idle = "IDLE" if box.has("IDLE") else "no IDLE (polling)"
        return f"ok: logged in to {app.settings.imap.host}, {idle}"


def _smtp(app: App) -> str | None:
    from mailbot.smtp import check_smtp

    problem = check_smtp(app.settings.smtp)
    return problem or f"ok: {app.settings.smtp.host} greets"


def _tesseract(app: App) -> str | None:
    from parsers.text import is_available

    report = is_available()
    if not report.get("tesseract"):
        return "tesseract not found: install Debian's tesseract-ocr"
    installed = set((report.get("tesseract_languages") or "").split("+"))
    wanted = {"eng", "nor", "swe", "dan", "fin"}
    missing = sorted(wanted - installed)
    if missing:
        return (
            f"tesseract {report['tesseract']}: languages missing: {', '.join(missing)} "
            f"(apt install {' '.join('tesseract-ocr-' + m for m in missing)})"
        )
    return f"ok: tesseract {report['tesseract']}, languages {'+'.join(sorted(installed))}"


CHECKS: tuple[tuple[str, Check, bool], ...] = (
    ("config", _config, False),
    ("rules", _rules, False),
    ("templates", _templates, False),
    ("database", _database, False),
    ("imap", _imap, True),
    ("smtp", _smtp, True),
    ("tesseract", _tesseract, False),
)


def cmd_check(args: argparse.Namespace, app: App) -> int:
    results = []
    for name, check, online in CHECKS:
        if online and args.offline:
            results.append({"item": name, "ok": True, "detail": "skipped (--offline)"})
            continue
        try:
            detail = check(app)
        except MailbotError as exc:
            detail = str(exc)
        except Exception as exc:  # a check must report, never crash the command
            detail = f"{exc.__class__.__name__}: {exc}"
        ok = detail is None or detail.startswith("ok")
        text = (detail or "ok").removeprefix("ok: ").removeprefix("ok")
        results.append({"item": name, "ok": ok, "detail": text})
    if args.json:
        print_json(results, app.out)
    else:
        for r in results:
            status = "OK  " if r["ok"] else "FAIL"
            app.out.write(f"{status} {r['item']:10} {r['detail']}\n")
    return 0 if all(r["ok"] for r in results) else 1
