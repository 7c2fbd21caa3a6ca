"""Sample documents and customer mails for the demo, the end-to-end tests and benchmarks.

Receipts are rendered here (a JPEG "photo" with Pillow, a text-layer PDF written
by hand) so nothing depends on files we may not ship. The PDF writer is ours
because no dependency of mailbot writes PDFs with a text layer, and a one-page
PDF with one font is a few dozen lines of the PDF 1.4 syntax.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Sequence
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

_FONT_DIRS = (
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"),
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for path in _FONT_DIRS:
        if path.exists():
            return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size=size)


def receipt_image(lines: Sequence[str], *, width: int = 1000, font_size: int = 30) -> bytes:
    """A clean receipt 'photo' as JPEG bytes, one text line per entry."""
    font = _font(font_size)
    line_h = int(font_size * 1.5)
    img = Image.new("L", (width, 80 + line_h * len(lines)), 255)
    draw = ImageDraw.Draw(img)
    for i, line in enumerate(lines):
        draw.text((50, 40 + i * line_h), line, fill=0, font=font)
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _pdf_escape(text: str) -> bytes:
    raw = text.encode("cp1252", errors="replace")
    return raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def text_pdf(lines: Sequence[str], *, size: int = 11, footer: Image.Image | None = None) -> bytes:
    """A one-page A4 PDF with a real text layer (Helvetica, WinAnsi: Nordic letters
    work); `footer`, when given, is pasted as an image at the foot of the page
    (text that exists only as a picture, as some invoices carry the seller's)."""
    content = b"BT /F1 %d Tf 14 TL 56 790 Td\n" % size
    for line in lines:
        content += b"(" + _pdf_escape(line) + b") Tj T*\n"
    content += b"ET\n"
    image_ref = b""
    extra: list[bytes] = []
    if footer is not None:
        gray = footer.convert("L")
        width_pt = 480
        height_pt = round(width_pt * gray.height / gray.width)
        content += f"q {width_pt} 0 0 {height_pt} 56 40 cm /Im1 Do Q\n".encode()
        data = zlib.compress(gray.tobytes())
        extra.append(
            f"<< /Type /XObject /Subtype /Image /Width {gray.width} /Height {gray.height} "
            f"/ColorSpace /DeviceGray /BitsPerComponent 8 /Filter /FlateDecode "
            f"/Length {len(data)} >>\nstream\n".encode()
            + data
            + b"\nendstream"
        )
        image_ref = b" /XObject << /Im1 6 0 R >>"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 4 0 R >>" + image_ref + b" >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Length " + str(len(content)).encode() + b" >>\nstream\n" + content + b"endstream",
        *extra,
    ]
    return _pdf_file(objects, b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")


def deflated_pdf(content: bytes) -> bytes:
    """A one-page PDF whose page content is `content`, deflated: small on disk, as
    large inflated as `content` is (the shape of a decompression bomb)."""
    data = zlib.compress(content, 9)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(data) + data + b"\nendstream",
    ]
    return _pdf_file(objects, b"%PDF-1.4\n")


def _pdf_file(objects: Sequence[bytes], header: bytes) -> bytes:
    """The numbered objects (1 the catalog) with their cross-reference table.

    Written by hand: the sample PDFs need exact bytes (a bomb's content stream, a
    text layer in WinAnsi) and none of the dependencies writes PDF."""
    out = bytearray(header)
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return bytes(out)


def customer_mail(
    *,
    sender: str,
    to: str,
    subject: str,
    body: str,
    attachments: Sequence[tuple[str, str, bytes]] = (),
    in_reply_to: str | None = None,
    headers: dict[str, str] | None = None,
    date: datetime | None = None,
    domain: str = "customer.example",
) -> bytes:
    """A mail as a customer's client would send it; attachments are (name, mime, bytes)."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain=domain)
    if date is not None:
        msg["Date"] = format_datetime(date)
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = in_reply_to
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    for filename, mime, data in attachments:
        maintype, _, subtype = mime.partition("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes()


def bounce_for(original_message_id: str, failed: str, *, to: str, reporting: str) -> bytes:
    """A standard DSN (RFC 3464, multipart/report) saying `failed` could not be reached."""
    boundary = "dsn-boundary-0001"
    text = (
        f"From: Mail Delivery System <MAILER-DAEMON@{reporting}>\r\n"
        f"To: {to}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "Auto-Submitted: auto-replied\r\n"
        f"Message-ID: {make_msgid(domain=reporting)}\r\n"
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"\r\n'
        "\r\n"
        f"--{boundary}\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
        "Your message could not be delivered to one or more recipients.\r\n\r\n"
        f"<{failed}>: host said: 550 5.1.1 mailbox unavailable\r\n\r\n"
        f"--{boundary}\r\n"
        "Content-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; {reporting}\r\n\r\n"
        f"Final-Recipient: rfc822; {failed}\r\n"
        "Action: failed\r\n"
        "Status: 5.1.1\r\n"
        f"Diagnostic-Code: smtp; 550 5.1.1 <{failed}>: Recipient address rejected\r\n\r\n"
        f"--{boundary}\r\n"
        "Content-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: {original_message_id}\r\n"
        f"To: {failed}\r\n"
        f"Subject: (our reply)\r\n\r\n"
        f"--{boundary}--\r\n"
    )
    return text.encode("ascii")


# The demo's and the end-to-end tests' customer: a Sony WH-1000XM5 bought at
# Elkjøp on 12.12.2022 (inside the cashback-2022 purchase window).
DEMO_VAT_LINE = "Org.nr 988 077 917 MVA"


def receipt_photo_without_vat() -> bytes:
    """A receipt photo that shows retailer, date and product but no VAT number."""
    return receipt_image(
        ["ELKJØP", "Kvittering", "Dato: 12.12.2022", "Sony WH-1000XM5  3990,00", "Totalt  3990,00"]
    )


def serial_photo(serial: str = "5123456") -> bytes:
    """A photo of the product label with its serial number."""
    return receipt_image(["SONY  WH-1000XM5", "Model: WH-1000XM5", f"S/N: {serial}"])


def good_receipt_pdf() -> bytes:
    """A complete proof of purchase as a text PDF: all four fields."""
    return text_pdf(
        [
            "Elkjøp Norge AS",
            DEMO_VAT_LINE,
            "Kvittering 123456",
            "Dato: 12.12.2022",
            "Sony WH-1000XM5 hodetelefoner   3 990,00",
            "Totalt NOK 3 990,00",
        ]
    )
