"""The files a mail carries, found in its MIME tree and each judged (`parsers.mail.filecheck`).

Forwarded mails (message/rfc822, also base64-encoded ones the parser left shut)
are opened for their files; S/MIME and PGP signatures, vCards and calendar parts
are kept as ignored metadata; every other file goes to `judge_file` with whether
it is inline and referenced by the HTML (cid:), so logos and signature art are
ignored there: accept (JPEG, PNG, PDF), ignore, or refuse with a reason. Pure:
nothing here writes files.
"""

from __future__ import annotations

import base64
import email
import email.policy
import quopri
import re
from email.message import Message

from mailbot.core.mail import Attachment
from parsers.mail.filecheck import DEFAULT_LIMITS, AttachmentLimits, content_sha256, judge_file
from parsers.mail.filetypes import (
    ACCEPTED_TYPES,
    safe_filename,
    sniff_type,
)
from parsers.mail.headers import decode_header_value

__all__ = [
    "ACCEPTED_TYPES",
    "DEFAULT_LIMITS",
    "AttachmentLimits",
    "extract_attachments",
    "judge_file",
    "safe_filename",
    "sniff_type",
]


def _cid_refs(html: str) -> frozenset[str]:
    return frozenset(
        m.strip().strip("<>").lower()
        for m in re.findall(r"cid:([^\"'\s>)]+)", html or "", re.IGNORECASE)
    )


def _part_filename(part: Message, index: int) -> str:

    try:
        raw = part.get_filename()
    except Exception:  # malformed RFC 2231 parameters
        raw = None
    if raw is None:
        try:
            raw = part.get_param("name")  # type: ignore[assignment]
        except Exception:
            raw = None
    name = decode_header_value(raw) if isinstance(raw, str) else ""
    return safe_filename(name) if name else f"attachment-{index}"


def extract_attachments(
    msg: Message, html: str = "", limits: AttachmentLimits = DEFAULT_LIMITS
) -> tuple[Attachment, ...]:
    """Every file in `msg` (and in forwarded mails and TNEF inside it), judged."""
    out: list[Attachment] = []
    cids = _cid_refs(html)
    _walk(msg, cids, limits, out, depth=0, counter=[0])
    return tuple(out)


def _walk(
    msg: Message,
    cids: frozenset[str],
    limits: AttachmentLimits,
    out: list[Attachment],
    depth: int,
    counter: list[int],
) -> None:
    stack: list[Message] = [msg]
    while stack:
        part = stack.pop(0)
        counter[0] += 1
        if counter[0] > limits.max_parts:
            return
        ctype = part.get_content_type()
        if ctype in ("message/rfc822", "message/global") and depth < limits.max_depth:
            cte = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
            if cte in ("base64", "quoted-printable"):
                # RFC 2046 forbids encoding a message/rfc822 part, but clients
                # do; the parser then reads base64 text as a mail. Decode it.
                inner = _decode_encoded_message(part, cte)
                if inner is not None:
                    _walk(inner, _cid_refs_of(inner) | cids, limits, out, depth + 1, counter)
                continue
        if part.is_multipart():
            payload = part.get_payload()
            if isinstance(payload, list):
                stack.extend(p for p in payload if isinstance(p, Message))
            continue
        if ctype == "message/rfc822" or ctype == "message/global":
            # A forwarded mail the parser did not open (e.g. base64-encoded,
            # which RFC 2046 forbids but clients do): parse it ourselves.
            data = part.get_payload(decode=True)
            if isinstance(data, bytes) and depth < limits.max_depth:
                try:
                    inner = email.message_from_bytes(data, policy=email.policy.compat32)
                except Exception:
                    continue
                _walk(inner, _cid_refs_of(inner) | cids, limits, out, depth + 1, counter)
            continue
        disposition = part.get_content_disposition()
        has_name = bool(part.get_filename() or part.get_param("name"))
        if ctype in ("text/plain", "text/html") and disposition != "attachment" and not has_name:
            continue  # a body part
        if part.get_content_maintype() in ("message", "multipart"):
            continue  # delivery-status and the like: not files
        if ctype == "text/rfc822-headers":
            continue
        data = part.get_payload(decode=True)
        if not isinstance(data, bytes):
            continue
        if ctype in _METADATA_TYPES:
            # S/MIME and PGP signatures, vCards, invitations: part of how the
            # mail was sent, not a document; a reply must not "refuse" them.
            out.append(_metadata_part(_part_filename(part, len(out) + 1), ctype, data))
            continue
        if not data and not has_name:
            continue
        content_id = part.get("Content-ID")
        cid = str(content_id).strip().strip("<>") if content_id else None
        inline = disposition == "inline" or (cid is not None and disposition != "attachment")
        out.extend(
            judge_file(
                _part_filename(part, len(out) + 1),
                ctype,
                data,
                content_id=cid,
                inline=inline,
                cid_referenced=bool(cid and cid.lower() in cids),
                limits=limits,
                depth=depth,
            )
        )


def _decode_encoded_message(part: Message, cte: str) -> Message | None:
    payload = part.get_payload()
    if isinstance(payload, list):
        text = "".join(p.as_string() if isinstance(p, Message) else str(p) for p in payload)
    else:
        text = str(payload)
    try:
        if cte == "base64":
            data = base64.b64decode(re.sub(r"[^A-Za-z0-9+/=]", "", text) + "==")
        else:
            data = quopri.decodestring(text.encode("ascii", "replace"))
        return email.message_from_bytes(data, policy=email.policy.compat32)
    except Exception:
        return None


_METADATA_TYPES = frozenset(
    {
        "application/pkcs7-signature",
        "application/x-pkcs7-signature",
        "application/pgp-signature",
        "application/pgp-keys",
        "text/vcard",
        "text/x-vcard",
        "text/calendar",
    }
)


def _metadata_part(filename: str, ctype: str, data: bytes) -> Attachment:
    return Attachment(
        filename=filename,
        declared_type=ctype,
        sniffed_type=sniff_type(data),
        size=len(data),
        sha256=content_sha256(data),
        content=data,
        ignored=True,
    )


def _cid_refs_of(msg: Message) -> frozenset[str]:
    """cid: references in the HTML parts of a forwarded mail."""
    refs: set[str] = set()
    for part in msg.walk():
        if part.get_content_type() == "text/html":
            data = part.get_payload(decode=True)
            if isinstance(data, bytes):
                refs |= _cid_refs(data.decode("utf-8", "replace"))
    return frozenset(refs)
