"""`mailbot rules check|test|show|replay`.

`replay` decides the claims that hold documents with candidate rules and prints each
decision that would change; it writes nothing (`mailbot.services.replay`). `show`
prints the rules behind a version recorded on an event or an extraction.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import select

from mailbot.cli.app import App, print_json
from mailbot.core.errors import MailbotError
from mailbot.store import models as m
from mailbot.store.db import transaction


def cmd_check(args: argparse.Namespace, app: App) -> int:
    from mailbot.ruleset.loader import load_ruleset

    try:
        rules = load_ruleset(app.rules_dir)
    except MailbotError as exc:
        if args.json:
            print_json({"ok": False, "error": str(exc)}, app.out)
        else:
            app.out.write(f"FAIL {exc}\n")
        return 1
    summary: dict[str, Any] = {
        "ok": True,
        "directory": str(rules.directory),
        "version": rules.version,
        "campaigns": sorted(rules.campaigns),
        "returns": rules.returns.id,
    }
    if args.json:
        print_json(summary, app.out)
    else:
        app.out.write(
            f"OK   rules in {rules.directory} (version {rules.version}): campaigns "
            f"{', '.join(summary['campaigns'])}; returns policy {rules.returns.id}\n"
        )
    return 0


def cmd_test(args: argparse.Namespace, app: App) -> int:
    """Each document in the file as the mail path reads it (`mailbot extract`'s
    reading: HEIC converted, TNEF opened, refusals the mail's), shown for a person."""
    from mailbot.cli.extract import _options
    from parsers.document.extraction import document_json, read_files, render_document

    opts = _options(args, app)
    failed = 0
    for doc in read_files(Path(args.file), name=args.file, **opts):
        failed += doc.result is None
        if args.json:
            print_json(document_json(doc), app.out)
        else:
            app.out.write(render_document(doc) + "\n")
    return 1 if failed else 0


def cmd_show(args: argparse.Namespace, app: App) -> int:
    app.ensure_schema()
    with transaction(app.factory) as s:
        row = s.scalars(
            select(m.RulesVersion).where(m.RulesVersion.version == args.version.strip())
        ).one_or_none()
        if row is None:
            sys.stderr.write(
                f"mailbot: no rules version {args.version!r} stored (a version is stored "
                "the first time an event records it)\n"
            )
            return 1
        files: dict[str, str] = dict(row.files)
        first_used = row.first_used_at
    if args.json:
        print_json(
            {"version": args.version.strip(), "first_used_at": first_used, "files": files},
            app.out,
        )
        return 0
    app.out.write(f"rules version {args.version.strip()}, first used {first_used.isoformat()}\n")
    for name in sorted(files):
        text = files[name]
        app.out.write(f"\n==> {name} <==\n{text}")
        if text and not text.endswith("\n"):
            app.out.write("\n")
    return 0


def cmd_replay(args: argparse.Namespace, app: App) -> int:
    from mailbot.cli.main import parse_moment
    from mailbot.ruleset.loader import load_ruleset
    from mailbot.services.replay import replay

    try:
        rules = load_ruleset(Path(args.rules))
    except MailbotError as exc:
        sys.stderr.write(f"mailbot: candidate rules: {exc}\n")
        return 2
    if args.campaign and args.campaign not in rules.campaigns:
        sys.stderr.write(
            f"mailbot: candidate rules have no campaign {args.campaign!r} "
            f"(known: {', '.join(sorted(rules.campaigns)) or 'none'})\n"
        )
        return 2
    since = parse_moment(args.since) if args.since else None
    app.ensure_schema()
    reader = None
    if args.reread:
        from mailbot.services.documents import make_reader

        ocr = app.settings.ocr
        reader = make_reader(lambda: rules, ocr.languages, ocr.timeout_seconds)
    report = replay(
        app.factory, rules, app.now(), since=since, campaign=args.campaign, reread=reader
    )
    summary = report.as_dict()
    if args.json:
        print_json(summary, app.out)
        return 0
    out = app.out
    out.write(
        f"replayed {summary['claims']} claims holding documents with rules "
        f"{rules.version} ({args.rules}; in force: {_in_force(app)}): "
        f"{summary['changed']} would change\n"
    )
    for c in report.changes:
        if c.note is not None:
            out.write(f"{c.code}  {c.old_state}: not compared ({c.note}; {c.campaign})\n")
            continue
        closed = "" if c.open else "  (decided for good: reevaluate does not apply)"
        out.write(
            f"{c.code}  {c.old_state} -> {c.new_state}  reasons: "
            f"{', '.join(c.old_reasons) or '-'} -> {', '.join(c.new_reasons) or '-'}  "
            f"reply: {c.reply or 'none'}{closed}\n"
        )
    for change, n in summary["by_change"].items():
        out.write(f"  {change}: {n}\n")
    return 0


def _in_force(app: App) -> str:
    try:
        return app.rules.version
    except MailbotError:
        return "none (the configured rules do not load)"
