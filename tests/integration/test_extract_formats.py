"""`mailbot extract` reads every format the mail path accepts, through the same check.

HEIC photos (converted to JPEG as for a mail), Outlook `winmail.dat` (TNEF: the
files inside), PDFs whose receipt is an embedded image, and a refusal the mail
path would give. The files are made in tests/_formats.py; nothing comes from the corpus.
"""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from pathlib import Path

from mailbot.cli.main import main
from tests._formats import heic_receipt, needs_tesseract, scanned_receipt_pdf, winmail_dat


def extract(*paths: Path) -> tuple[int, list[dict[str, object]]]:
    buf = io.StringIO()
    with redirect_stdout(buf):
        code = main(["extract", "--json", "--campaign", "cashback-2022", *map(str, paths)])
    return code, [json.loads(line) for line in buf.getvalue().splitlines() if line.strip()]


def read_one(path: Path, data: bytes) -> dict[str, object]:
    """`data` written to `path` and extracted: it succeeds with one object."""
    path.write_bytes(data)
    code, objs = extract(path)
    assert code == 0, objs
    (obj,) = objs
    return obj


def _receipt_read(obj: dict[str, object]) -> None:
    fields = obj["fields"]
    assert isinstance(fields, dict), obj
    assert fields["purchase_date"] and fields["purchase_date"]["value"] == "2022-12-12", obj
    assert fields["vat_number"] and fields["vat_number"]["value"] == "988077917", obj


@needs_tesseract
def test_heic_photo_is_read_as_the_mail_path_converts_it(tmp_path: Path) -> None:
    path = tmp_path / "kvittering.heic"
    obj = read_one(path, heic_receipt())
    assert obj["file"] == str(path) and obj["source"] == "ocr"
    assert obj["converted_from"] == "image/heic"
    _receipt_read(obj)


def test_tnef_winmail_dat_gives_one_object_per_file_inside(tmp_path: Path) -> None:
    path = tmp_path / "winmail.dat"
    path.write_bytes(winmail_dat())
    code, objs = extract(path)
    assert code == 1  # the program inside is refused, as a mail's would be
    pdf, exe = objs
    assert pdf["file"] == f"{path}[kvittering.pdf]" and pdf["source"] == "pdf-text"
    _receipt_read(pdf)
    assert exe["file"] == f"{path}[notes.exe]"
    assert "programs and scripts are not accepted" in str(exe["error"])


@needs_tesseract
def test_pdf_whose_receipt_is_an_embedded_image(tmp_path: Path) -> None:
    obj = read_one(tmp_path / "scan.pdf", scanned_receipt_pdf())
    assert obj["source"] == "ocr"
    _receipt_read(obj)


def test_refusals_are_the_mail_paths(tmp_path: Path) -> None:
    encrypted_like = tmp_path / "broken.pdf"
    encrypted_like.write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF")
    archive = tmp_path / "receipts.zip"
    archive.write_bytes(b"PK\x03\x04" + b"\0" * 40)
    code, objs = extract(encrypted_like, archive)
    assert code == 1
    assert [o["file"] for o in objs] == [str(encrypted_like), str(archive)]
    assert "damaged" in str(objs[0]["error"])
    assert "archives" in str(objs[1]["error"])
