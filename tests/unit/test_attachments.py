"""Attachment judging: magic bytes, HEIC, TNEF, forwarded mails, refusals, limits."""

from __future__ import annotations

import base64
import io
import random
import struct
import zipfile
import zlib
from email.message import EmailMessage

import pytest
from PIL import Image

from mailbot.core.mail import Attachment
from parsers.mail.attachments import AttachmentLimits, judge_file, safe_filename, sniff_type
from parsers.mail.parse import parse_email
from tests._formats import heic_bytes, make_tnef

# --- fixture builders -------------------------------------------------------


def photo_jpeg(w: int = 900, h: int = 1200) -> bytes:
    """A noisy photo: big enough (bytes and pixels) not to look like a logo."""
    im = Image.effect_noise((w, h), 80).convert("RGB")
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def png(w: int, h: int, noise: bool = True) -> bytes:
    im = Image.effect_noise((w, h), 80).convert("RGB") if noise else Image.new("RGB", (w, h))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def heic(w: int = 640, h: int = 480) -> bytes:
    return heic_bytes(Image.effect_noise((w, h), 60), quality=60)


def make_pdf(pages: int = 1, encrypted: bool = False) -> bytes:
    """A minimal valid PDF with a correct xref table. With `encrypted`, a
    Standard security handler (RC4, R2) whose /U does not match the empty
    password, i.e. a PDF that needs a password to open. pypdf is not in the
    dependency set, so the bytes are written by hand per ISO 32000-1 7.5/7.6."""
    objs: list[bytes] = []
    kids = " ".join(f"{3 + i} 0 R" for i in range(pages))
    objs.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objs.append(f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>".encode())
    for _ in range(pages):
        objs.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>")
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + body + b"\nendobj\n"
    encrypt = ""
    if encrypted:
        offsets.append(len(out))
        o = "<" + "11" * 32 + ">"
        u = "<" + "22" * 32 + ">"
        out += (
            f"{len(objs) + 1} 0 obj\n<< /Filter /Standard /V 1 /R 2 /O {o} /U {u} /P -4 >>"
            "\nendobj\n"
        ).encode()
        encrypt = f" /Encrypt {len(objs) + 1} 0 R /ID [<0123456789abcdef0123456789abcdef>"
        encrypt += " <0123456789abcdef0123456789abcdef>]"
    xref = len(out)
    n = len(offsets) + 1
    out += f"xref\n0 {n}\n0000000000 65535 f \n".encode()
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {n} /Root 1 0 R{encrypt} >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def png_bomb(w: int = 100_000, h: int = 100_000) -> bytes:
    """A PNG whose header claims w x h pixels but whose data is a few bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 1000))
        + chunk(b"IEND", b"")
    )


def one(items: list[Attachment]) -> Attachment:
    assert len(items) == 1, items
    return items[0]


# --- sniffing ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\xff\xd8\xff\xe0rest", "image/jpeg"),
        (b"\x89PNG\r\n\x1a\nrest", "image/png"),
        (b"%PDF-1.7\n", "application/pdf"),
        (b"junk before\n%PDF-1.4\n", "application/pdf"),
        (b"PK\x03\x04rest", "application/zip"),
        (b"Rar!\x1a\x07\x00", "application/vnd.rar"),
        (b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
        (b"\x1f\x8b\x08", "application/gzip"),
        (b"MZ\x90\x00", "application/x-msdownload"),
        (b"\x7fELF\x02", "application/x-executable"),
        (b"hello world", None),
        (b"", None),
    ],
)
def test_sniff_type_by_magic_bytes(data: bytes, expected: str | None) -> None:
    assert sniff_type(data) == expected


def test_sniff_heic() -> None:
    assert sniff_type(heic(64, 64)) == "image/heic"


# --- accepted ---------------------------------------------------------------


def test_jpeg_photo_accepted_with_hash_and_size() -> None:
    data = photo_jpeg()
    a = one(judge_file("kvittering.jpg", "image/jpeg", data))
    assert a.accepted and not a.ignored and a.refusal is None
    assert a.sniffed_type == "image/jpeg"
    assert a.size == len(data)
    assert len(a.sha256) == 64


def test_type_comes_from_bytes_not_name_or_declared_type() -> None:
    data = png(600, 800)
    a = one(judge_file("receipt.pdf", "application/pdf", data))
    assert a.accepted and a.sniffed_type == "image/png" and a.declared_type == "application/pdf"
    z = io.BytesIO()
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("receipt.jpg", photo_jpeg(300, 300))
    refused = one(judge_file("receipt.jpg", "image/jpeg", z.getvalue()))
    assert not refused.accepted and refused.refusal_code == "archive"


def test_pdf_accepted() -> None:
    a = one(judge_file("invoice.pdf", "application/pdf", make_pdf(2)))
    assert a.accepted, a.refusal


def test_heic_converted_to_jpeg() -> None:
    data = heic()
    a = one(judge_file("IMG_0001.HEIC", "image/heic", data))
    assert a.accepted, a.refusal
    assert a.converted_from == "image/heic"
    assert a.sniffed_type == "image/jpeg" and a.content[:3] == b"\xff\xd8\xff"
    assert a.filename == "IMG_0001.jpg"
    assert a.size == len(a.content) and a.content != data
    assert Image.open(io.BytesIO(a.content)).size == (640, 480)


def test_tnef_winmail_dat_unpacked() -> None:
    pdf = make_pdf(1)
    jpg = photo_jpeg(700, 900)
    blob = make_tnef([("Kvittering Elkjøp.pdf", pdf), ("bilde.jpg", jpg)])
    items = judge_file("winmail.dat", "application/ms-tnef", blob)
    assert [a.filename for a in items] == ["Kvittering Elkjøp.pdf", "bilde.jpg"]
    assert all(a.accepted for a in items)
    assert items[0].content == pdf and items[1].content == jpg


def test_tnef_with_an_archive_inside_refuses_that_file() -> None:
    z = io.BytesIO()
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("a.txt", "x")
    items = judge_file("winmail.dat", "application/ms-tnef", make_tnef([("a.zip", z.getvalue())]))
    assert one(items).refusal_code == "archive"


def test_broken_tnef_refused_not_raised() -> None:
    blob = struct.pack("<IH", 0x223E9F78, 1) + b"\x02\xff\xff" * 5
    a = one(judge_file("winmail.dat", "application/ms-tnef", blob))
    assert not a.accepted


# --- refused ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"PK\x03\x04" + b"\x00" * 100, "archive"),
        (b"Rar!\x1a\x07\x01\x00" + b"\x00" * 50, "archive"),
        (b"7z\xbc\xaf\x27\x1c" + b"\x00" * 50, "archive"),
        (b"\x1f\x8b\x08\x00" + b"\x00" * 50, "archive"),
        (b"MZ\x90\x00" + b"\x00" * 200, "executable"),
        (b"\x7fELF\x02\x01" + b"\x00" * 50, "executable"),
        (b"#!/bin/sh\nrm -rf /\n", "executable"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 50, "unsupported_type"),
        (b"GIF89a" + b"\x00" * 20_000, "unsupported_type"),
        (b"just some text", "unsupported_type"),
        (b"", "unsupported_type"),
    ],
)
def test_refusals_have_code_and_reason(data: bytes, code: str) -> None:
    a = one(judge_file("file.jpg", "image/jpeg", data))
    assert not a.accepted and not a.ignored
    assert a.refusal_code == code
    assert a.refusal and "file.jpg" in a.refusal


def test_encrypted_pdf_refused() -> None:
    a = one(judge_file("kvittering.pdf", "application/pdf", make_pdf(1, encrypted=True)))
    assert a.refusal_code == "pdf_encrypted", a.refusal
    assert "password" in (a.refusal or "")


@pytest.mark.parametrize(
    "data",
    [
        b"%PDF-1.4\n" + bytes(random.Random(1).getrandbits(8) for _ in range(3000)),
        b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\n",
        make_pdf(3)[:200],
    ],
)
def test_broken_pdf_refused(data: bytes) -> None:
    a = one(judge_file("doc.pdf", "application/pdf", data))
    assert a.refusal_code == "pdf_broken", a.refusal


def test_pdf_page_limit() -> None:
    limits = AttachmentLimits(max_pdf_pages=50)
    assert one(judge_file("a.pdf", "application/pdf", make_pdf(50), limits=limits)).accepted
    a = one(judge_file("a.pdf", "application/pdf", make_pdf(51), limits=limits))
    assert a.refusal_code == "too_large"


def test_size_limit_default_5mb_and_configurable() -> None:
    assert AttachmentLimits().max_bytes == 5 * 1024 * 1024
    data = photo_jpeg(400, 400)
    small = AttachmentLimits(max_bytes=len(data) - 1)
    a = one(judge_file("a.jpg", "image/jpeg", data, limits=small))
    assert a.refusal_code == "too_large" and "MB" in (a.refusal or "")
    big = b"%PDF-1.4\n" + b"0" * (5 * 1024 * 1024)
    assert one(judge_file("a.pdf", "application/pdf", big)).refusal_code == "too_large"


def test_decompression_bomb_refused_before_decoding() -> None:
    a = one(judge_file("bomb.png", "image/png", png_bomb()))
    assert a.refusal_code == "too_large"
    limits = AttachmentLimits(max_pixels=100 * 100)
    b = one(judge_file("p.png", "image/png", png(300, 300), limits=limits))
    assert b.refusal_code == "too_large"


def test_unreadable_images_refused() -> None:
    jpeg = photo_jpeg(600, 600)
    truncated = one(judge_file("a.jpg", "image/jpeg", jpeg[: len(jpeg) // 3]))
    assert truncated.refusal_code == "image_unreadable"
    junk = one(judge_file("b.png", "image/png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40_000))
    assert junk.refusal_code == "image_unreadable"
    bad_heic = one(judge_file("c.heic", "image/heic", heic(64, 64)[:200]))
    assert bad_heic.refusal_code == "image_unreadable"


# --- inline images ----------------------------------------------------------


def test_tiny_inline_logo_ignored_but_same_as_attachment_accepted() -> None:
    logo = png(120, 40)
    a = one(judge_file("logo.png", "image/png", logo, content_id="logo@x", inline=True))
    assert a.ignored and not a.accepted and a.refusal is None


def test_cid_referenced_logo_ignored_but_cid_referenced_photo_kept() -> None:
    logo = png(600, 300)
    assert len(logo) > 10 * 1024
    a = one(judge_file("banner.png", "image/png", logo, inline=True, cid_referenced=True))
    assert a.ignored
    # Apple Mail shows attached photos inline via cid: a receipt photo must survive
    photo = photo_jpeg(1200, 1600)
    b = one(judge_file("IMG_1.jpeg", "image/jpeg", photo, inline=True, cid_referenced=True))
    assert b.accepted and not b.ignored


# --- walking a whole mail ---------------------------------------------------


def _mail(text: str) -> EmailMessage:
    """A customer's mail saying `text`, to add attachments to."""
    m = EmailMessage()
    m["From"] = "Kari <kari@example.no>"
    m["To"] = "kampanje@example.com"
    m["Subject"] = "Kvittering"
    m["Message-ID"] = "<m1@example.no>"
    m.set_content(text)
    return m


def _accepted(raw: bytes) -> list[tuple[str, bool]]:
    """(file name, accepted) of each attachment found in the mail `raw`."""
    return [(a.filename, a.accepted) for a in parse_email(raw).attachments]


def test_mail_with_html_logo_photo_zip_and_heic() -> None:
    m = _mail("Her er kvitteringen.")
    m.add_alternative('<p>Her er kvitteringen.</p><img src="cid:logo123@x">', subtype="html")
    m.get_payload()[1].add_related(png(300, 100), "image", "png", cid="<logo123@x>")
    m.add_attachment(
        photo_jpeg(), maintype="application", subtype="octet-stream", filename="kvittering.JPG"
    )
    m.add_attachment(
        b"PK\x05\x06" + b"\x00" * 18, maintype="application", subtype="zip", filename="alt.zip"
    )
    m.add_attachment(heic(), maintype="image", subtype="heic", filename="IMG_4711.HEIC")
    parsed = parse_email(m.as_bytes())
    by_name = {a.filename: a for a in parsed.attachments}
    assert len(parsed.attachments) == 4
    assert {"kvittering.JPG", "alt.zip", "IMG_4711.jpg"} <= set(by_name)
    assert by_name["kvittering.JPG"].accepted
    assert by_name["alt.zip"].refusal_code == "archive"
    assert by_name["IMG_4711.jpg"].converted_from == "image/heic"
    logos = [a for a in parsed.attachments if a.content_id == "logo123@x"]
    assert len(logos) == 1 and logos[0].ignored


def test_forwarded_message_attachments_found() -> None:
    inner = _mail("Original mail from the shop")
    inner.add_attachment(make_pdf(1), maintype="application", subtype="pdf", filename="faktura.pdf")
    outer = _mail("Videresender kvitteringen.")
    outer.add_attachment(inner)  # message/rfc822
    assert _accepted(outer.as_bytes()) == [("faktura.pdf", True)]


def test_base64_encoded_forwarded_message_opened() -> None:
    inner = _mail("shop mail")
    inner.add_attachment(
        photo_jpeg(500, 500), maintype="image", subtype="jpeg", filename="foto.jpg"
    )
    b64 = base64.encodebytes(inner.as_bytes()).decode()
    raw = (
        "From: a@example.no\r\nTo: b@example.com\r\nSubject: Fwd\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="XX"\r\n\r\n--XX\r\n'
        "Content-Type: text/plain\r\n\r\nsee attached\r\n--XX\r\n"
        "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + b64
        + "\r\n--XX--\r\n"
    ).encode()
    assert _accepted(raw) == [("foto.jpg", True)]


def test_tnef_in_a_mail() -> None:
    m = _mail("see attached")
    blob = make_tnef([("scan.png", png(500, 700))])
    m.add_attachment(blob, maintype="application", subtype="ms-tnef", filename="winmail.dat")
    assert _accepted(m.as_bytes()) == [("scan.png", True)]


def test_rfc2231_and_rfc2047_filenames_decoded() -> None:
    m = _mail("x")
    m.add_attachment(
        make_pdf(1), maintype="application", subtype="pdf", filename="kvittering_for_kjøp_Å.pdf"
    )
    raw = m.as_bytes()
    assert b"kj\xc3\xb8p" not in raw.split(b"\n\n", 1)[0]  # really encoded
    parsed = parse_email(raw)
    assert parsed.attachments[0].filename == "kvittering_for_kjøp_Å.pdf"


# --- safe_filename ----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\evil.jpg", "evil.jpg"),
        ("kvit\x00ter\ning.pdf", "kvittering.pdf"),
        ("...hidden", "hidden"),
        ("a..b..pdf", "a.b.pdf"),
        ("CON.txt", "_CON.txt"),
        ("", "attachment"),
        ("..", "attachment"),
        ('what?"<>|*.png', "what______.png"),
        ("Kvittering Elkjøp.pdf", "Kvittering Elkjøp.pdf"),
    ],
)
def test_safe_filename(name: str, expected: str) -> None:
    assert safe_filename(name) == expected


def test_safe_filename_caps_length_keeps_extension() -> None:
    out = safe_filename("x" * 500 + ".jpeg")
    assert len(out) <= 100 and out.endswith(".jpeg")


def test_signature_and_vcard_parts_ignored_not_refused() -> None:
    m = _mail("kvittering vedlagt")
    m.add_attachment(
        b"0\x82\x05\x00fake-cms",
        maintype="application",
        subtype="pkcs7-signature",
        filename="smime.p7s",
    )
    m.add_attachment(
        b"BEGIN:VCARD\r\nFN:Kari\r\nEND:VCARD\r\n",
        maintype="text",
        subtype="vcard",
        filename="kari.vcf",
    )
    m.add_attachment(make_pdf(1), maintype="application", subtype="pdf", filename="k.pdf")
    parsed = parse_email(m.as_bytes())
    verdicts = {a.filename: (a.accepted, a.ignored, a.refusal_code) for a in parsed.attachments}
    assert verdicts == {
        "smime.p7s": (False, True, None),
        "kari.vcf": (False, True, None),
        "k.pdf": (True, False, None),
    }


def test_inline_gif_logo_ignored_but_attached_gif_refused() -> None:
    gif = b"GIF89a" + b"\x00" * 20_000
    logo = one(judge_file("logo.gif", "image/gif", gif, inline=True, cid_referenced=True))
    assert logo.ignored and logo.refusal is None
    attached = one(judge_file("kvittering.gif", "image/gif", gif))
    assert attached.refusal_code == "unsupported_type"
