"""`mailbot inspect FILE.eml [--json]`: show how mailbot reads one mail, changing nothing.

This is how an admin answers "why did mailbot do that?": the parsed headers,
the new text it matched on, the classification and the signal that decided it,
and the verdict on every attachment. Output goes to `out` (the mail's content
is shown to the admin on purpose; nothing is logged). The command adds the
claim and RMA matching under `extra`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO

from mailbot.core.mail import Attachment, Classification, InboundEmail
from parsers.mail.attachments import DEFAULT_LIMITS, AttachmentLimits
from parsers.mail.classify import classify
from parsers.mail.parse import parse_email

_TEXT_PREVIEW = 2000


def inspect_bytes(
    raw: bytes, *, limits: AttachmentLimits = DEFAULT_LIMITS
) -> tuple[InboundEmail, Classification]:
    """Parse and classify one raw mail (pure)."""
    msg = parse_email(raw, limits=limits)
    return msg, classify(msg, raw)


def _attachment_dict(a: Attachment) -> dict[str, Any]:
    d = asdict(a)
    d.pop("content", None)
    d["verdict"] = "ignored" if a.ignored else ("accepted" if a.accepted else "refused")
    return d


def report(
    path: Path, msg: InboundEmail, cls: Classification, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Everything inspect shows, as one JSON-ready dict."""
    return {
        "file": str(path),
        "message_id": msg.message_id,
        "in_reply_to": list(msg.in_reply_to),
        "references": list(msg.references),
        "from_address": msg.from_address,
        "from_name": msg.from_name,
        "to": list(msg.to),
        "subject": msg.subject,
        "date": msg.date.isoformat() if msg.date else None,
        "classification": {
            "kind": cls.kind.value,
            "reason": cls.reason,
            "failed_recipients": list(cls.failed_recipients),
            "bounced_message_id": cls.bounced_message_id,
            "temporary": cls.temporary,
        },
        "new_text": msg.new_text,
        "text": msg.text,
        "attachments": [_attachment_dict(a) for a in msg.attachments],
        "headers": [[k, v] for k, v in msg.headers],
        "parse_defects": list(msg.parse_defects),
        # claim/RMA matching and its signals, added by the command
        "extra": dict(extra or {}),
    }


def _print_human(data: dict[str, Any], out: TextIO) -> None:
    w = out.write
    w(f"File:         {data['file']}\n")
    w(f"Message-ID:   {data['message_id'] or '-'}\n")
    w(f"In-Reply-To:  {' '.join(data['in_reply_to']) or '-'}\n")
    w(f"References:   {' '.join(data['references']) or '-'}\n")
    sender = data["from_address"] or "-"
    if data["from_name"]:
        sender = f"{data['from_name']} <{sender}>"
    w(f"From:         {sender}\n")
    w(f"To:           {', '.join(data['to']) or '-'}\n")
    w(f"Subject:      {data['subject']}\n")
    w(f"Date:         {data['date'] or '-'}\n")
    c = data["classification"]
    w(f"\nKind:         {c['kind']}\nReason:       {c['reason']}\n")
    if c["kind"] == "bounce":
        w(f"Failed:       {', '.join(c['failed_recipients']) or '(not stated)'}\n")
        w(f"Bounced mail: {c['bounced_message_id'] or '(not quoted)'}\n")
        w(f"Temporary:    {'yes' if c['temporary'] else 'no'}\n")
    w(f"\nAttachments ({len(data['attachments'])}):\n")
    for a in data["attachments"]:
        kind = a["sniffed_type"] or "unknown"
        conv = f", converted from {a['converted_from']}" if a["converted_from"] else ""
        w(f"  - {a['filename']} [{kind}{conv}, declared {a['declared_type']}, {a['size']} bytes]\n")
        w(f"    {a['verdict']}")
        if a["refusal"]:
            w(f" ({a['refusal_code']}): {a['refusal']}")
        w(f"\n    sha256 {a['sha256']}\n")
    new_text = data["new_text"]
    w("\nNew text (what the sender wrote now):\n")
    w(_indent(new_text[:_TEXT_PREVIEW] or "(empty)"))
    if len(new_text) > _TEXT_PREVIEW:
        w(f"  ... ({len(new_text) - _TEXT_PREVIEW} more characters)\n")
    w(f"\nWhole text: {len(data['text'])} characters\n")
    if data["parse_defects"]:
        w("\nParse problems:\n")
        for d in data["parse_defects"]:
            w(f"  - {d}\n")
    if data["extra"]:
        w("\nExtra:\n")
        w(_indent(json.dumps(data["extra"], indent=2, ensure_ascii=False, default=str)))


def _indent(text: str) -> str:
    return "".join(f"  {line}\n" for line in text.splitlines()) or "\n"


def run_inspect(
    path: Path,
    as_json: bool,
    out: TextIO,
    extra: Callable[[InboundEmail, Classification], dict[str, Any]] | None = None,
) -> int:
    """Inspect one .eml file. Returns the exit status: 0 read, 2 unreadable file.
    `extra` adds what the caller knows beyond the mail itself (claim/RMA routing)."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        msg = f"cannot read {path}: {exc.strerror or exc}"
        if as_json:
            out.write(json.dumps({"file": str(path), "error": msg}) + "\n")
        else:
            out.write(msg + "\n")
        return 2
    parsed, cls = inspect_bytes(raw)
    data = report(Path(path), parsed, cls, extra(parsed, cls) if extra is not None else None)
    if as_json:
        out.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")
    else:
        _print_human(data, out)
    return 0
