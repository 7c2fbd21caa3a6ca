"""Raw bytes of one mail -> `InboundEmail`, for any input, without ever raising.

mail-parser does the MIME work (body parts, charsets, defects). It raises on
some real-world bounces and on absurdly nested MIME; then we fall back to the
standard library's parser, and if even that fails, to the headers alone.
Headers are decoded here rather than by mail-parser because customers' clients
send undeclared 8-bit Nordic letters, which mail-parser leaves as surrogates.
The reply's new text (quote headers, quoted lines and signatures removed) comes
from mail-parser-reply plus our own Nordic rules (`parsers.mail.reply`).
"""

from __future__ import annotations

import email
import email.header
import email.parser
import email.policy
import email.utils
import logging
import re
from datetime import UTC, datetime
from email.message import Message
from typing import Any

import html2text
import mailparser

from mailbot.core.mail import InboundEmail
from parsers.mail.attachments import DEFAULT_LIMITS, AttachmentLimits, extract_attachments
from parsers.mail.authresults import parse_authentication_results
from parsers.mail.headers import (
    decode_bytes,
    decode_header_value,
    names_unsafe_charset,
    raw_to_text,
)
from parsers.mail.reply import new_text_of

__all__ = ["html_to_text", "normalise_message_ids", "parse_email"]

# mail-parser logs file names and header values at debug level (personal data)
# and a warning for every MIME type it does not render (noise): errors only.
logging.getLogger("mailparser").setLevel(logging.ERROR)

# A body larger than this is cut before HTML conversion (only text matters).
_MAX_BODY_CHARS = 2_000_000

_PART_RE = re.compile(rb"^content-type:", re.IGNORECASE | re.MULTILINE)
_PART_SCAN_BYTES = 8 * 1024 * 1024
_MAX_MAILPARSER_PARTS = 500


_MSGID_RE = re.compile(r"<([^<>\s]+)>")
_ENCODED_WORD_RE = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")


def normalise_message_ids(value: str | None) -> tuple[str, ...]:
    """Every `<id>` in a Message-ID / In-Reply-To / References value, in order,
    without duplicates; a bare id without brackets gets them."""
    if not value:
        return ()
    found = [f"<{m}>" for m in _MSGID_RE.findall(value)]
    if not found:
        bare = value.strip().split()
        if len(bare) == 1 and "@" in bare[0]:
            found = [f"<{bare[0].strip('<>')}>"]
    seen: dict[str, None] = {}
    for item in found:
        seen.setdefault(item, None)
    return tuple(seen)


def _addresses(raw_values: list[str]) -> list[tuple[str, str]]:
    """(name, address) pairs; names decoded after splitting, so an encoded
    name containing a comma does not split one address into two."""
    pairs: list[tuple[str, str]] = []
    try:
        parsed = email.utils.getaddresses(raw_values)
    except Exception:
        return pairs
    for name, addr in parsed:
        addr = addr.strip()
        if not addr or "@" not in addr:
            continue
        pairs.append((decode_header_value(name) if name else "", addr.lower()))
    return pairs


def _parse_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        dt = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if dt.tzinfo is None:  # "-0000": UTC, origin unknown (RFC 5322 3.3)
        dt = dt.replace(tzinfo=UTC)
    return dt


def html_to_text(html: str) -> str:
    """HTML body -> readable plain text (quoted blocks become "> " lines)."""
    conv = html2text.HTML2Text()
    conv.body_width = 0
    conv.ignore_images = True
    conv.ignore_links = True
    conv.ignore_emphasis = True
    conv.ignore_tables = True
    try:
        return str(conv.handle(html[:_MAX_BODY_CHARS]))
    except Exception:
        # html2text's parser is lenient, but must never take the mail down.
        return re.sub(r"<[^>]*>", " ", html)


def _stdlib_bodies(msg: Message) -> tuple[list[str], list[str]]:
    """Text and HTML body parts (not attachments, not inside forwarded mails)."""
    plain: list[str] = []
    html: list[str] = []
    stack: list[Message] = [msg]
    seen = 0
    while stack and seen < 2000:
        part = stack.pop(0)
        seen += 1
        if part.get_content_maintype() == "message":
            continue  # a forwarded mail: its attachments are read, not its text
        payload = part.get_payload()
        if part.is_multipart():
            if isinstance(payload, list):
                stack.extend(p for p in payload if isinstance(p, Message))
            continue
        if part.get_content_maintype() == "multipart" and isinstance(payload, str):
            # a multipart whose boundary was lost: its raw text is all we have
            plain.append(payload)
            continue
        if part.get_content_disposition() == "attachment" or part.get_filename():
            continue
        ctype = part.get_content_type()
        if ctype not in ("text/plain", "text/html"):
            continue
        data = part.get_payload(decode=True)
        if not isinstance(data, bytes):
            continue
        text = decode_bytes(data, part.get_content_charset())
        (html if ctype == "text/html" else plain).append(text)
    return plain, html


def _bodies_from_mailparser(mp: Any) -> tuple[list[str], list[str]]:
    plain = [str(t) for t in (mp.text_plain or [])]
    html = [str(t) for t in (mp.text_html or [])]
    return plain, html


def _message_from(raw: bytes, defects: list[str]) -> tuple[Message | None, Any]:
    """The parsed message and the mail-parser object (None on fallback)."""
    if names_unsafe_charset(raw):
        # mail-parser decodes bodies with whatever codec the mail names (punycode:
        # quadratic); the standard library path decodes through parsers.mail.headers.
        defects.append("a charset that is not a text charset; standard library parser used")
    elif len(_PART_RE.findall(raw, 0, _PART_SCAN_BYTES)) > _MAX_MAILPARSER_PARTS:
        # mail-parser makes several passes over every part; on MIME torture
        # (thousands of nested parts) that alone costs more than our time budget.
        defects.append("too many MIME parts for mail-parser; standard library parser used")
    else:
        try:
            mp = mailparser.parse_from_bytes(raw)
            msg = mp.message
            if isinstance(msg, Message):
                return msg, mp
            defects.append("mail-parser returned no message; standard library parser used")
        except Exception as exc:  # mail-parser raises many kinds on real mail
            name = type(exc).__name__
            defects.append(f"mail-parser failed ({name}); standard library parser used")
    try:
        return email.message_from_bytes(raw, policy=email.policy.compat32), None
    except Exception as exc:  # RecursionError on hostile nesting, mostly
        defects.append(f"standard library parser failed ({type(exc).__name__}); headers only")
    try:
        parser = email.parser.BytesHeaderParser(policy=email.policy.compat32)
        return parser.parsebytes(raw), None
    except Exception as exc:
        defects.append(f"header parser failed ({type(exc).__name__}); nothing read")
        return None, None


def parse_email(raw: bytes, *, limits: AttachmentLimits = DEFAULT_LIMITS) -> InboundEmail:
    """Parse one raw mail. Never raises: what cannot be read is left empty and
    the problem is recorded in `parse_defects`."""
    defects: list[str] = []
    try:
        return _parse(bytes(raw), defects, limits)
    except Exception as exc:  # the last line of "never raises"
        defects.append(f"unexpected parse failure ({type(exc).__name__})")
        return _empty(defects)


def _empty(defects: list[str]) -> InboundEmail:
    return InboundEmail(
        message_id=None,
        in_reply_to=(),
        references=(),
        from_address=None,
        from_name=None,
        to=(),
        subject="",
        date=None,
        text="",
        new_text="",
        attachments=(),
        headers=(),
        parse_defects=tuple(defects),
    )


def _parse(raw: bytes, defects: list[str], limits: AttachmentLimits) -> InboundEmail:
    msg, mp = _message_from(raw, defects)
    if msg is None:
        return _empty(defects)

    raw_headers: list[tuple[str, str]] = []
    headers: list[tuple[str, str]] = []
    for name, value in msg.raw_items():
        text = raw_to_text(value)
        raw_headers.append((name, text))
        headers.append((name, decode_header_value(value)))

    def raw_all(hname: str) -> list[str]:
        return [v for k, v in raw_headers if k.lower() == hname]

    def first(hname: str) -> str | None:
        values = raw_all(hname)
        return values[0] if values else None

    from_pairs = _addresses(raw_all("from")[:1])
    to_pairs = _addresses(raw_all("to"))
    message_ids = normalise_message_ids(first("message-id"))
    subject = decode_header_value(first("subject") or "")

    plain: list[str] = []
    html: list[str] = []
    if mp is not None:
        try:
            plain, html = _bodies_from_mailparser(mp)
        except Exception as exc:
            defects.append(f"mail-parser bodies unreadable ({type(exc).__name__})")
    if mp is None or (not plain and not html):
        try:
            plain, html = _stdlib_bodies(msg)
        except Exception as exc:
            defects.append(f"body unreadable ({type(exc).__name__})")
    if mp is not None:
        try:
            if mp.has_defects:
                defects.extend(sorted(f"MIME: {c}" for c in mp.defects_categories))
        except Exception:
            pass

    html_joined = "\n".join(html)[:_MAX_BODY_CHARS]
    if plain:
        text = "\n".join(plain)[:_MAX_BODY_CHARS]
    elif html_joined:
        text = html_to_text(html_joined)
    else:
        text = ""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    # mail-parser's text also holds the bodies of attached (forwarded) mails;
    # what the sender wrote now is in the top-level body parts only.
    try:
        own_plain, own_html = _stdlib_bodies(msg)
    except Exception:
        own_plain, own_html = plain, html
    if own_plain:
        own_text = own_plain[0]
    elif own_html:
        own_text = html_to_text(own_html[0])
    else:
        own_text = ""

    try:
        attachments = extract_attachments(msg, html=html_joined, limits=limits)
    except Exception as exc:  # extract_attachments is defensive; this is a backstop
        defects.append(f"attachments unreadable ({type(exc).__name__})")
        attachments = ()

    auth_results, auth_unreadable = parse_authentication_results(raw_all("authentication-results"))
    if auth_unreadable:
        defects.append(f"Authentication-Results unreadable ({auth_unreadable})")
    return InboundEmail(
        message_id=message_ids[0] if message_ids else None,
        in_reply_to=normalise_message_ids(" ".join(raw_all("in-reply-to"))),
        references=normalise_message_ids(" ".join(raw_all("references"))),
        from_address=from_pairs[0][1] if from_pairs else None,
        from_name=(from_pairs[0][0] or None) if from_pairs else None,
        to=tuple(dict.fromkeys(addr for _, addr in to_pairs)),
        subject=subject,
        date=_parse_date(first("date")),
        text=text,
        new_text=new_text_of(own_text),
        attachments=attachments,
        headers=tuple(headers),
        parse_defects=tuple(defects),
        auth_results=auth_results,
    )
