"""Files in the formats a customer's mail brings, made in the tests: a receipt as an
iPhone's HEIC photo, as a PDF that holds only a scan, inside an Outlook `winmail.dat`
(TNEF) beside a program the mail path refuses."""

from __future__ import annotations

import io
import struct

import pillow_heif
import pytest
from PIL import Image

from mailbot.devtools.samples import text_pdf
from parsers.document.ocr import TESSERACT
from tests.golden.make_fixtures import render_receipt, scanned_pdf

needs_tesseract = pytest.mark.skipif(TESSERACT.is_available() is None, reason="no tesseract")

# What the extraction must read from every format: a shop, its VAT number, a date.
RECEIPT_LINES = [
    "ELKJOP NORGE AS",
    "Org.nr 988 077 917 MVA",
    "Dato: 12.12.2022",
    "Sony WH-1000XM5   3 990,00",
    "TOTAL 3 990,00",
]

# The start of a Windows program (MZ header): refused wherever it arrives.
PROGRAM = b"MZ\x90\x00" + b"\0" * 64


def heic_bytes(image: Image.Image, quality: int = 90) -> bytes:
    """`image` saved as HEIC."""
    out = io.BytesIO()
    pillow_heif.from_pillow(image.convert("RGB")).save(out, quality=quality)
    return out.getvalue()


def heic_receipt() -> bytes:
    """A photo of the receipt, as an iPhone sends it."""
    return heic_bytes(render_receipt(RECEIPT_LINES, size=30))


def scanned_receipt_pdf() -> bytes:
    """A PDF whose only content is an image of the receipt (no text layer)."""
    return scanned_pdf(render_receipt(RECEIPT_LINES, size=30))


def _tnef_attr(level: int, attr_id: int, attr_type: int, data: bytes) -> bytes:
    checksum = sum(data) & 0xFFFF
    return (
        struct.pack("<BHHI", level, attr_id, attr_type, len(data))
        + data
        + struct.pack("<H", checksum)
    )


def make_tnef(files: list[tuple[str, bytes]]) -> bytes:
    """A tiny TNEF (winmail.dat) stream, written per [MS-OXTNEF] 2.1.3 because
    tnefparse can only read: signature, key, version and code page, then per
    file attAttachRendData (starts an attachment), attAttachTitle, attAttachData."""
    out = struct.pack("<IH", 0x223E9F78, 0x0001)
    out += _tnef_attr(1, 0x9006, 0x0008, struct.pack("<I", 0x00010000))  # attTnefVersion
    out += _tnef_attr(1, 0x9007, 0x0006, struct.pack("<II", 1252, 0))  # attOemCodepage
    for name, data in files:
        out += _tnef_attr(2, 0x9002, 0x0006, b"\x01\x00" + b"\xff" * 4 + b"\x00" * 8)
        out += _tnef_attr(2, 0x8010, 0x0001, name.encode("cp1252") + b"\x00")
        out += _tnef_attr(2, 0x800F, 0x0006, data)
    return out


def winmail_dat() -> bytes:
    """An Outlook winmail.dat holding the receipt as `kvittering.pdf` (a text PDF) and
    a program as `notes.exe`."""
    return make_tnef([("kvittering.pdf", text_pdf(RECEIPT_LINES)), ("notes.exe", PROGRAM)])
