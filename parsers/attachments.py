"""Judge every file a mail carries: accept (JPEG, PNG, PDF), ignore, or refuse with a reason.

Types are decided by magic bytes, never by the name or the declared MIME type
(both are chosen by the sender). Phone HEIC/HEIF photos are converted to JPEG,
Outlook `winmail.dat` (TNEF) is unpacked, forwarded mails (message/rfc822) are
opened for their files, inline logos are ignored. Each refusal carries a human
reason a reply can quote and a stable `refusal_code` templates can key on.
Pure: nothing here writes files.
"""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import io
import quopri
import re
import warnings
from dataclasses import dataclass, replace
from email.message import Message

import pdfplumber
import pillow_heif
import tnefparse
from PIL import Image

from mailbot.core.mail import Attachment
from parsers.filetypes import (
    ACCEPTED_TYPES,
    ALLOWED_HINT,
    ARCHIVE_TYPES,
    EXECUTABLE_TYPES,
    KIND_NAMES,
    safe_filename,
    sniff_type,
)

__all__ = [
    "ACCEPTED_TYPES",
    "DEFAULT_LIMITS",
    "AttachmentLimits",
    "extract_attachments",
    "judge_file",
    "safe_filename",
    "sniff_type",
]


@dataclass(frozen=True)
class AttachmentLimits:
    max_bytes: int = 5 * 1024 * 1024
    """The campaign's rule: at most 5 MB per file."""
    max_pixels: int = 89_478_485
    """Decompression-bomb guard (Pillow's own default), checked before decoding."""
    max_pdf_pages: int = 50
    inline_min_bytes: int = 10 * 1024
    """Inline images smaller than this are logos or signature art."""
    inline_min_side: int = 200
    """Inline images narrower or lower than this (px) are logos too."""
    photo_min_side: int = 1000
    """A cid-referenced image at least this long on one side is kept: Apple Mail
    embeds the photos a customer attaches as cid-referenced inline images."""
    max_depth: int = 5
    """Nesting of forwarded mails and TNEF containers we open."""
    max_parts: int = 500
    """MIME parts looked at per mail (torture tests carry thousands)."""


DEFAULT_LIMITS = AttachmentLimits()

_EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "application/pdf": "pdf"}


def _cid_refs(html: str) -> frozenset[str]:
    return frozenset(
        m.strip().strip("<>").lower()
        for m in re.findall(r"cid:([^\"'\s>)]+)", html or "", re.IGNORECASE)
    )


def _part_filename(part: Message, index: int) -> str:
    from parsers.email import decode_header_value  # lazy: email.py imports us

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
        sha256=_sha(data),
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


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def judge_file(
    filename: str,
    declared_type: str,
    data: bytes,
    *,
    content_id: str | None = None,
    inline: bool = False,
    cid_referenced: bool = False,
    limits: AttachmentLimits = DEFAULT_LIMITS,
    depth: int = 0,
) -> list[Attachment]:
    """Judge one file; a list because a TNEF container yields the files inside it."""
    filename = safe_filename(filename)
    sniffed = sniff_type(data)
    base = Attachment(
        filename=filename,
        declared_type=declared_type,
        sniffed_type=sniffed,
        size=len(data),
        sha256=_sha(data),
        content=data,
        content_id=content_id,
    )

    def refuse(code: str, reason: str) -> list[Attachment]:
        return [replace(base, accepted=False, refusal=reason, refusal_code=code)]

    if sniffed == "application/ms-tnef":
        return _unpack_tnef(base, limits, depth)
    if sniffed in ARCHIVE_TYPES:
        return refuse(
            "archive",
            f"{filename}: archives (ZIP, RAR, 7z ...) are not accepted; {ALLOWED_HINT} directly",
        )
    if sniffed in EXECUTABLE_TYPES:
        return refuse("executable", f"{filename}: programs and scripts are not accepted")
    if len(data) > limits.max_bytes:
        mb = limits.max_bytes / (1024 * 1024)
        return refuse("too_large", f"{filename}: the file is larger than {mb:g} MB")
    if sniffed in ("image/jpeg", "image/png"):
        return [_judge_image(base, inline, cid_referenced, limits)]
    if sniffed == "image/heic":
        return [_convert_heic(base, limits)]
    if sniffed == "application/pdf":
        return [_judge_pdf(base, limits)]
    if (sniffed or "").startswith("image/") and (
        cid_referenced or (inline and len(data) < limits.inline_min_bytes)
    ):
        # a GIF/BMP logo drawn by the HTML: presentation, not a document
        return [replace(base, ignored=True)]
    if not data:
        return refuse("unsupported_type", f"{filename}: the file is empty")
    what = KIND_NAMES.get(sniffed or "", "this file type")
    return refuse("unsupported_type", f"{filename}: {what} is not accepted; {ALLOWED_HINT}")


def _open_image(data: bytes, limits: AttachmentLimits) -> tuple[Image.Image | None, str | None]:
    """(image, None) when fully decodable within limits, else (None, refusal code)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            w, h = im.size
            if w * h > limits.max_pixels:  # checked before any pixel is decoded
                return None, "too_large"
            im.load()
        return im, None
    except Image.DecompressionBombError:
        return None, "too_large"
    except Exception:
        return None, "image_unreadable"


def _judge_image(
    base: Attachment, inline: bool, cid_referenced: bool, limits: AttachmentLimits
) -> Attachment:
    im, problem = _open_image(base.content, limits)
    if im is None:
        if problem == "too_large":
            return replace(
                base,
                refusal_code="too_large",
                refusal=f"{base.filename}: the image has too many pixels to be read safely",
            )
        return replace(
            base,
            refusal_code="image_unreadable",
            refusal=f"{base.filename}: the image is damaged or cannot be opened",
        )
    w, h = im.size
    tiny = (
        base.size < limits.inline_min_bytes
        or w < limits.inline_min_side
        or (h < limits.inline_min_side)
    )
    if (inline or cid_referenced) and tiny:
        return replace(base, ignored=True)
    if cid_referenced and max(w, h) < limits.photo_min_side:
        return replace(base, ignored=True)  # a logo drawn by the HTML, not a photo
    return replace(base, accepted=True)


def _convert_heic(base: Attachment, limits: AttachmentLimits) -> Attachment:
    """HEIC/HEIF phone photo -> JPEG, so readers and people downstream can open it."""
    unreadable = replace(
        base,
        refusal_code="image_unreadable",
        refusal=f"{base.filename}: the HEIC photo is damaged or cannot be opened",
    )
    try:
        heif = pillow_heif.open_heif(io.BytesIO(base.content))
        w, h = heif.size
        if w * h > limits.max_pixels:
            return replace(
                base,
                refusal_code="too_large",
                refusal=f"{base.filename}: the image has too many pixels to be read safely",
            )
        im = heif.to_pillow().convert("RGB")
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=90)
    except Exception:
        return unreadable
    jpeg = buf.getvalue()
    stem = base.filename.rsplit(".", 1)[0] if "." in base.filename else base.filename
    converted = replace(
        base,
        filename=safe_filename(stem + ".jpg"),
        sniffed_type="image/jpeg",
        size=len(jpeg),
        sha256=_sha(jpeg),
        content=jpeg,
        converted_from="image/heic",
    )
    if len(jpeg) > limits.max_bytes:
        mb = limits.max_bytes / (1024 * 1024)
        return replace(
            converted,
            refusal_code="too_large",
            refusal=f"{base.filename}: the photo is larger than {mb:g} MB",
        )
    return replace(converted, accepted=True)


def _judge_pdf(base: Attachment, limits: AttachmentLimits) -> Attachment:
    """Open the PDF the way the text reader will (pdfplumber/pdfminer)."""
    name = base.filename
    try:
        with pdfplumber.open(io.BytesIO(base.content)) as pdf:
            doc = pdf.doc
            pages = 0
            from pdfminer.pdfpage import PDFPage

            for _ in PDFPage.create_pages(doc):
                pages += 1
                if pages > limits.max_pdf_pages:
                    return replace(
                        base,
                        refusal_code="too_large",
                        refusal=f"{name}: the PDF has more than {limits.max_pdf_pages} pages",
                    )
    except Exception as exc:
        if _is_password_error(exc):
            return replace(
                base,
                refusal_code="pdf_encrypted",
                refusal=f"{name}: the PDF is password-protected; please send it without a password",
            )
        return replace(
            base,
            refusal_code="pdf_broken",
            refusal=f"{name}: the PDF is damaged and cannot be read",
        )
    if pages == 0:
        return replace(
            base,
            refusal_code="pdf_broken",
            refusal=f"{name}: the PDF is damaged and cannot be read",
        )
    return replace(base, accepted=True)


def _is_password_error(exc: BaseException) -> bool:
    from pdfminer.pdfdocument import PDFEncryptionError, PDFPasswordIncorrect

    seen: BaseException | None = exc
    for _ in range(5):  # pdfplumber wraps pdfminer's errors
        if seen is None:
            break
        if isinstance(seen, PDFPasswordIncorrect | PDFEncryptionError):
            return True
        seen = seen.__cause__ or seen.__context__
    text = f"{type(exc).__name__} {exc}".lower()
    return "password" in text or "encrypt" in text


def _tnef_name(att: object) -> str:
    """The file's name. tnefparse decodes the short title as UTF-8, but Outlook
    writes it in the OEM code page (cp1252 in the Nordics), so decode it ourselves."""
    try:
        return str(att.long_filename())  # type: ignore[attr-defined]
    except Exception:
        raw = getattr(att, "_name", b"")
        if isinstance(raw, bytes):
            from parsers.email import decode_bytes

            return decode_bytes(raw.rstrip(b"\x00"))
        return str(raw)


def _unpack_tnef(base: Attachment, limits: AttachmentLimits, depth: int) -> list[Attachment]:
    """Outlook's winmail.dat: the files inside are what the customer sent."""
    unreadable = [
        replace(
            base,
            refusal_code="unsupported_type",
            refusal=f"{base.filename}: this Outlook winmail.dat cannot be unpacked; {ALLOWED_HINT}",
        )
    ]
    if depth >= limits.max_depth:
        return unreadable
    try:
        tnef = tnefparse.TNEF(base.content, do_checksum=False)
        inner = [(_tnef_name(a), bytes(a.data)) for a in tnef.attachments]
    except Exception:
        return unreadable
    if not inner:
        return [replace(base, ignored=True)]  # only the rich-text body, no files
    out: list[Attachment] = []
    for i, (name, data) in enumerate(inner, 1):
        for att in judge_file(
            name or f"winmail-{i}", "application/octet-stream", data, limits=limits, depth=depth + 1
        ):
            out.append(att)
    return out
