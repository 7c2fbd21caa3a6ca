"""`mailbot check`: one line per item, OK, SKIP or the exact problem.

Config, rules, templates, database, IMAP login and the folders mailbot uses (each
created when missing, as `run` would, so a name the server refuses fails here),
SMTP greeting, tesseract and the OCR languages the config and campaigns need, and
the running daemon as its /healthz tells (`[health] listen`): the rules and templates
versions in force and a reload that failed. Exit 0 when nothing failed (skipped
items do not fail: a daemon that is not running is skipped), 1 otherwise, so it can
gate a deployment.
"""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from mailbot.cli.app import App, print_json
from mailbot.core.errors import MailbotError, MailboxError
from mailbot.core.languages import LANGUAGES

Check = Callable[[App], str | None]
"""Returns None (OK, no detail), "ok: detail", "skip: why", or the problem."""

DAEMON_TIMEOUT = 2.0
"""Seconds the daemon's /healthz has to answer: it answers from memory and a cache."""


def _config(app: App) -> str | None:
    return f"ok: {app.settings.source}"


def _rules(app: App) -> str | None:
    rules = app.rules
    return (
        f"ok: {len(rules.campaigns)} campaigns ({', '.join(sorted(rules.campaigns))}), "
        f"returns policy, version {rules.version}"
    )


def _templates(app: App) -> str | None:
    from mailbot.templating.render import check_templates

    problems = check_templates(app.settings.paths.templates_dir or None)
    if problems:
        return f"{len(problems)} problem(s): " + "; ".join(problems[:5])
    return f"ok: every template renders in {', '.join(LANGUAGES)}"


def _database(app: App) -> str | None:
    from mailbot.store.db import check_schema

    problem = check_schema(app.engine)
    return problem or f"ok: {app.engine.dialect.name}, schema current"


def _where(host: str, port: int, tls: str, problem: str) -> str:
    """The problem with the server's host:port in front, and what a TLS mismatch means:
    ssl's own words (WRONG_VERSION_NUMBER) name neither the server nor the cause."""
    if f"{host}:{port}" not in problem:
        problem = f"{host}:{port}: {problem}"
    if "WRONG_VERSION_NUMBER" in problem or "wrong version number" in problem:
        problem += (
            ' (the server did not answer TLS: tls = "ssl" wants implicit TLS on this port; '
            'a plain port wants tls = "starttls")'
            if tls == "ssl"
            else f' (tls = "{tls}" does not match what the server speaks on this port)'
        )
    return problem


def _imap_folders(app: App) -> tuple[str, ...]:
    imap = app.settings.imap
    own = [imap.quarantine_folder]
    if imap.processed_action == "move":
        own.append(imap.processed_folder)
    return tuple(dict.fromkeys([*imap.folders, *own]))


def _imap(app: App) -> str | None:
    from mailbot.intake.mailbox import Mailbox

    s = app.settings.imap
    try:
        with Mailbox(s) as box:
            idle = "IDLE" if box.has("IDLE") else "no IDLE (polling)"
            delimiter = box.delimiter
            folders = []
            for folder in _imap_folders(app):
                created = box.ensure_folder(folder)
                wire = box.server_name(folder)
                folders.append(f"{wire} (created)" if created else wire)
    except MailboxError as exc:
        return _where(s.host, s.port, s.tls, str(exc))
    return (
        f"ok: logged in to {s.host}:{s.port}, {idle}, hierarchy delimiter "
        f"{delimiter!r}, folders {', '.join(folders)}"
    )


def _smtp(app: App) -> str | None:
    from mailbot.outbound.smtp import check_smtp

    s = app.settings.smtp
    problem = check_smtp(s)
    return _where(s.host, s.port, s.tls, problem) if problem else f"ok: {s.host}:{s.port} greets"


def _ocr_languages(app: App) -> tuple[list[str], str]:
    """The tesseract languages reading will ask for, and where that list comes from."""
    from mailbot.services.documents import ocr_languages

    configured = app.settings.ocr.languages
    if configured:
        return [lang for lang in configured.split("+") if lang], "ocr.languages"
    campaigns = app.rules.campaigns.values()
    wanted = {lang for c in campaigns for lang in ocr_languages(c, "").split("+")}
    return sorted(wanted), "the campaigns' languages"


def _tesseract(app: App) -> str | None:
    from parsers.document.text import is_available

    report = is_available()
    if not report.get("tesseract"):
        return "tesseract not found: install Debian's tesseract-ocr"
    installed = set((report.get("tesseract_languages") or "").split("+"))
    wanted, source = _ocr_languages(app)
    missing = [lang for lang in wanted if lang not in installed]
    if missing:
        return (
            f"tesseract {report['tesseract']}: {source} needs {', '.join(missing)}, "
            f"not installed (installed: {'+'.join(sorted(installed)) or 'none'}; "
            f"apt install {' '.join('tesseract-ocr-' + m for m in missing)})"
        )
    return f"ok: tesseract {report['tesseract']}, {source} {'+'.join(wanted)} installed"


def _healthz_address(listen: str) -> str:
    """Where to ask the daemon listening on `listen` (a wildcard address: this host)."""
    from mailbot.daemon.health import parse_listen

    host, port = parse_listen(listen)
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _versions(health: dict[str, Any]) -> str:
    reload = health.get("reload") or {}
    versions = health.get("in_force") or {
        part: (reload.get(part) or {}).get("version") for part in ("rules", "templates")
    }
    return " ".join(f"{part} {versions.get(part) or 'not loaded yet'}" for part in versions)


def _daemon(app: App) -> str | None:
    listen = app.settings.health.listen
    if not listen:
        return "skip: [health] listen not set"
    where = _healthz_address(listen)
    # straight to the daemon: a proxy from the environment has no business in between
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://{where}/healthz", timeout=DAEMON_TIMEOUT) as resp:
            raw = resp.read(1_000_000)
    except urllib.error.HTTPError as exc:  # 503: unhealthy, the body says why
        raw = exc.read(1_000_000)
    except TimeoutError:
        return f"{where}: no answer from /healthz within {DAEMON_TIMEOUT:g} s"
    except OSError as exc:
        if isinstance(getattr(exc, "reason", exc), TimeoutError):
            return f"{where}: no answer from /healthz within {DAEMON_TIMEOUT:g} s"
        return f"skip: not running at {where}"
    try:
        health = json.loads(raw)
    except ValueError:
        health = None
    if not isinstance(health, dict):
        return f"{where}: answered, but not with the /healthz JSON of mailbot"
    versions = _versions(health)
    # the reload failures, as the daemon words them ("rules reload failed, previous
    # rules in force: file:line: ..."); "restart needed" is no failure of the daemon
    failed = [w for w in health.get("warnings") or [] if "reload failed" in w]
    if failed:
        return f"{'; '.join(failed)}; in force: {versions}"
    if health.get("status") != "ok":
        reasons = "; ".join(health.get("reasons") or []) or "no reason given"
        return f"running but unhealthy: {reasons}; {versions}"
    reload = health.get("reload") or {}
    last = "last reload ok" if reload.get("reloaded_at") else "not reloaded since start"
    restart = [w for w in health.get("warnings") or [] if w.startswith("restart needed")]
    return f"ok: running; {versions}; {last}" + "".join(f"; {w}" for w in restart)


CHECKS: tuple[tuple[str, Check, bool], ...] = (
    ("config", _config, False),
    ("rules", _rules, False),
    ("templates", _templates, False),
    ("database", _database, False),
    ("imap", _imap, True),
    ("smtp", _smtp, True),
    ("tesseract", _tesseract, False),
    ("daemon", _daemon, True),
)


def cmd_check(args: argparse.Namespace, app: App) -> int:
    results: list[dict[str, object]] = []
    for name, check, online in CHECKS:
        if online and args.offline:
            results.append(
                {"item": name, "ok": True, "status": "skip", "detail": "skipped (--offline)"}
            )
            continue
        try:
            detail = check(app)
        except MailbotError as exc:
            detail = str(exc)
        except Exception as exc:  # a check must report, never crash the command
            detail = f"{exc.__class__.__name__}: {exc}"
        if detail is not None and detail.startswith("skip: "):
            text = detail.removeprefix("skip: ")
            results.append({"item": name, "ok": True, "status": "skip", "detail": text})
            continue
        ok = detail is None or detail.startswith("ok")
        text = (detail or "ok").removeprefix("ok: ").removeprefix("ok")
        results.append({"item": name, "ok": ok, "status": "ok" if ok else "fail", "detail": text})
    if args.json:
        print_json(results, app.out)
    else:
        for r in results:
            status = str(r["status"]).upper()
            app.out.write(f"{status:4} {r['item']:10} {r['detail']}\n")
    return 0 if all(r["ok"] for r in results) else 1
