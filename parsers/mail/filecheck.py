"""Judge one file: accept (JPEG, PNG, PDF), ignore, or refuse it with a reason.

`parsers.mail.attachments` walks a mail's MIME tree and hands each file here. The type
is decided by magic bytes, never by the name or the declared MIME type (both are
chosen by the sender). Phone HEIC/HEIF photos are converted to JPEG, Outlook
`winmail.dat` (TNEF) is unpacked, images are opened with a decompression-bomb
guard, PDFs the way the text reader will open them (encrypted or broken ones are
refused). Each refusal carries a human reason and a stable `refusal_code`.
Pure: nothing here writes files.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass, replace

import pdfplumber
import pillow_heif
import tnefparse
from PIL import Image

from mailbot.core.mail import Attachment
from parsers.document.budget import over_budget_in, pdf_budget
from parsers.document.imageprep import MAX_PIXELS
from parsers.mail.filetypes import (
    ALLOWED_HINT,
    ARCHIVE_TYPES,
    EXECUTABLE_TYPES,
    KIND_NAMES,
    safe_filename,
    sniff_type,
)
from parsers.mail.headers import decode_bytes

__all__ = ["DEFAULT_LIMITS", "AttachmentLimits", "content_sha256", "judge_file"]


@dataclass(frozen=True)
class AttachmentLimits:
    max_bytes: int = 5 * 1024 * 1024
    """The campaign's rule: at most 5 MB per file."""
    max_pixels: int = MAX_PIXELS
    """Decompression-bomb guard, checked from the header before decoding: the
    reader's own limit (`parsers.document.imageprep.MAX_PIXELS`), so what is accepted here
    can be read."""
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
PDF_CHECK_SECONDS = 5.0
"""Counting a PDF's pages takes milliseconds; one that takes longer is hostile."""


def content_sha256(data: bytes) -> str:
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
        sha256=content_sha256(data),
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


def _open_image(data: bytes, limits: AttachmentLimits) -> tuple[tuple[int, int] | None, str | None]:
    """(size, None) when decodable within limits, else (None, refusal code). Never
    decodes the full image: a JPEG is decoded at 1/8 scale (which still reads all
    of its data, so a truncated one fails), a PNG's chunks are checked (CRCs up to
    IEND); the reader decodes it once, within the same pixel limit."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            w, h = im.size
            if w * h > limits.max_pixels:  # checked before any pixel is decoded
                return None, "too_large"
            if im.format == "JPEG":
                im.draft(im.mode, (max(1, w // 8), max(1, h // 8)))
                im.load()
            else:
                im.verify()
        return (w, h), None
    except Image.DecompressionBombError:
        return None, "too_large"
    except Exception:
        return None, "image_unreadable"


def _judge_image(
    base: Attachment, inline: bool, cid_referenced: bool, limits: AttachmentLimits
) -> Attachment:
    size, problem = _open_image(base.content, limits)
    if size is None:
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
    w, h = size
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
        sha256=content_sha256(jpeg),
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
        # pdfminer with the reader's limits (`parsers.document.budget`): the page tree of a
        # hostile PDF can sit in streams that inflate without end.
        with pdf_budget(PDF_CHECK_SECONDS), pdfplumber.open(io.BytesIO(base.content)) as pdf:
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
        if over_budget_in(exc) is not None:
            return replace(
                base,
                refusal_code="too_large",
                refusal=f"{name}: the PDF is too large to be read safely",
            )
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
