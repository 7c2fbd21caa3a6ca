"""`mailbot messages list|show|stats [--json]`: the ledger, so an operator sees nothing was
lost and what waits for a person."""

from __future__ import annotations

import argparse
import json
from typing import Any, TextIO

from sqlalchemy.orm import Session, sessionmaker

from mailbot.cli.app import App
from mailbot.core.errors import InputError
from mailbot.services.messages import (
    PERSON_KINDS,
    STATUSES,
    message_detail,
    messages_stats,
    raw_bytes,
    recent_messages,
)


def cmd_list(args: argparse.Namespace, app: App) -> int:
    app.ensure_schema()
    return run_messages_list(
        app.factory, status=args.status, limit=args.limit, as_json=args.json, out=app.out
    )


def cmd_show(args: argparse.Namespace, app: App) -> int:
    app.ensure_schema()
    return run_messages_show(app.factory, args.id, raw=args.raw, as_json=args.json, out=app.out)


def cmd_stats(args: argparse.Namespace, app: App) -> int:
    app.ensure_schema()
    return run_messages_stats(app.factory, as_json=args.json, out=app.out)


def dump_json(obj: Any, out: TextIO) -> None:
    """A report as JSON for scripts and people alike: indented, non-ASCII as it is."""
    out.write(json.dumps(obj, ensure_ascii=False, indent=1) + "\n")


def run_messages_list(
    factory: sessionmaker[Session],
    *,
    status: str | None = None,
    limit: int = 50,
    as_json: bool = False,
    out: TextIO,
) -> int:
    """Newest ledger rows first (optionally one status); returns the exit code."""
    try:
        rows = recent_messages(factory, status=status, limit=limit)
    except ValueError as exc:
        out.write(f"{exc}\n")
        return 2
    if as_json:
        dump_json(rows, out)
        return 0
    if not rows:
        out.write("no messages\n")
        return 0
    out.write(
        f"{'id':>7}  {'fetched':19}  {'status':11}  {'from':22}  {'claim':8}  "
        f"{'subject':30}  cause\n"
    )
    for r in rows:
        when = (r["fetched_at"] or "")[:19]
        action = "" if r["mailbox_done"] or r["status"] == "pending" else " [mailbox action owed]"
        link = r["claim"] or r["rma"] or "-"
        out.write(
            f"{r['id']:>7}  {when:19}  {r['status']:11}  {(r['from'] or '-')[:22]:22}  "
            f"{link[:8]:8}  {(r['subject'] or '-')[:30]:30}  {r['cause']}{action}\n"
        )
    return 0


def _write_raw(data: bytes, out: TextIO) -> None:
    buffer = getattr(out, "buffer", None)
    if buffer is not None:
        out.flush()
        buffer.write(data)
        buffer.flush()
    else:  # a text-only stream (tests, embedding): bytes that are not UTF-8 kept as escapes
        out.write(data.decode("utf-8", errors="backslashreplace"))


def run_messages_show(
    factory: sessionmaker[Session],
    ledger_id: int,
    *,
    raw: bool = False,
    as_json: bool = False,
    out: TextIO,
) -> int:
    """One ledger row: headers, cause, status history, replies; `raw` prints the stored
    bytes as they came (unmasked: they are the customer's mail)."""
    if raw:
        _write_raw(raw_bytes(factory, ledger_id), out)
        return 0
    d = message_detail(factory, ledger_id)
    if d is None:
        raise InputError(f"ledger row {ledger_id} does not exist")
    if as_json:
        dump_json(d, out)
        return 0
    out.write(f"ledger #{d['id']}  {d['status']}  ({d['reason'] or '-'})\n")
    out.write(f"  {'cause:':12} {d['cause']}\n")
    if d["needs_person"]:
        out.write(f"  {'waits for:':12} a person ({d['needs_person']})\n")
    if d["claim"] or d["rma"]:
        link = f"claim {d['claim']}" if d["claim"] else f"RMA {d['rma']}"
        out.write(f"  {'about:':12} {link} (matched by {d['match_signal'] or '-'})\n")
    out.write(
        f"  {'mailbox:':12} {d['folder']} uid {d['uid']}, {d['size']} bytes, kind {d['kind']}\n"
    )
    for name, value in d["headers"].items():
        out.write(f"  {name + ':':12} {value}\n")
    if not d["raw_stored"]:
        out.write("  (the raw bytes are not stored)\n")
    out.write("history:\n")
    for h in d["history"]:
        out.write(f"  {(h['at'] or '-'):25}  {h['what']:28}  {h['detail'] or ''}\n")
    for r in d["replies"]:
        out.write(f"reply: outbox #{r['outbox_id']} {r['template']} to {r['to']}: {r['status']}\n")
    for doc in d["documents"]:
        verdict = "accepted" if doc["accepted"] else f"refused ({doc['refusal']})"
        out.write(f"document: {doc['filename']} {doc['kind'] or ''} {verdict}\n")
    if d["error"]:
        out.write(f"error:\n{d['error']}\n")
    return 0


_PERSON_WORDS = {
    "review": "mails to review (no match, conflicting codes, claims in review)",
    "held": "mails held (sender is not the claimant, DMARC failed)",
    "question": "questions or notes without documents",
    "closed_claim": "mails with documents for a decided or closed claim",
    "quarantined": "mails quarantined",
    "failed": "mails failed (see `mailbot reprocess --failed`)",
}


def run_messages_stats(
    factory: sessionmaker[Session], *, as_json: bool = False, out: TextIO
) -> int:
    st = messages_stats(factory)
    if as_json:
        dump_json(st, out)
        return 0
    out.write(f"ledger: {st['total']} messages\n")
    for status in STATUSES:
        n = st["by_status"].get(status, 0)
        out.write(f"  {status:12} {n:>8}\n")
        for reason, m in st["by_reason"].get(status, {}).items():
            if reason != "-":
                out.write(f"      {reason:40} {m:>6}\n")
    out.write(f"  {'(sum)':12} {sum(st['by_status'].values()):>8}\n")
    out.write(f"mailbox actions owed (retried on the next pass): {st['mailbox_actions_owed']}\n")
    outbox = ", ".join(f"{k} {v}" for k, v in st["outbox"].items()) or "empty"
    out.write(f"outbox: {outbox}\n")
    attention = st["needs_attention"]
    mails = [(k, attention[k]) for k in PERSON_KINDS if attention[k]]
    replies = [(k, v) for k, v in st["outbox_attention"].items() if v]
    if not mails and not replies and not attention["pending"]:
        out.write("needs attention: nothing\n")
        return 0
    hint = ", ".join(f"{v} {k}" for k, v in [*mails, *((f"outbox {k}", v) for k, v in replies)])
    out.write(f"needs attention: {hint}\n")
    for k, v in mails:
        out.write(f"  {v:>6}  {_PERSON_WORDS[k]}\n")
    for k, v in replies:
        out.write(f"  {v:>6}  replies {k} (see `mailbot outbox list --status {k}`)\n")
    if attention["pending"]:
        out.write(f"  {attention['pending']:>6}  mails pending (not processed yet)\n")
    return 0
