"""`mailbot rules test FILE` reads a file as `mailbot extract` and the mail path do, and
both show every field read, the extras (buyer company, receipt number, total) too.

HEIC photos (converted to JPEG as for a mail), PDFs whose receipt is an embedded
image, Outlook `winmail.dat` (TNEF: each file inside). The files are made in
tests/_formats.py.
"""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from pathlib import Path

from mailbot.cli.main import main
from mailbot.devtools.samples import text_pdf
from tests._formats import heic_receipt, needs_tesseract, scanned_receipt_pdf, winmail_dat

INVOICE = [
    "Hansen Lyd AS",
    "Org.nr 988077917 MVA",
    "FAKTURA",
    "Fakturanr 100234",
    "Fakturadato 05.04.2022",
    "Kunde:",
    "Nordlys Lyd AS",
    "Org.nr 923609016",
    "1 x Sony WH-1000XM5   3 990,00",
    "Totalt NOK 3 990,00",
]


def run(*argv: str) -> tuple[int, str]:
    buf = io.StringIO()
    with redirect_stdout(buf):
        code = main(list(argv))
    return code, buf.getvalue()


def rules_test(path: Path, *extra: str) -> tuple[int, str]:
    return run("rules", "test", str(path), "--campaign", "cashback-2022", *extra)


def read_ok(path: Path, data: bytes) -> str:
    """`data` written to `path` and read by `rules test`: it succeeds; its output."""
    path.write_bytes(data)
    code, out = rules_test(path)
    assert code == 0, out
    return out


def words(out: str) -> str:
    """The output with runs of spaces as one (column widths are the view's business)."""
    return " ".join(out.split())


def _receipt_read(shown: str) -> None:
    assert "purchase_date 2022-12-12" in words(shown), shown
    assert "vat_number NO 988077917" in words(shown), shown
    assert "total 3990.00 (confidence" in words(shown), shown


@needs_tesseract
def test_rules_test_reads_a_heic_photo_as_the_mail_path_converts_it(tmp_path: Path) -> None:
    path = tmp_path / "kvittering.heic"
    out = read_ok(path, heic_receipt())
    assert "read as:   ocr" in out and "(converted from image/heic)" in out
    _receipt_read(out)
    code, out = rules_test(path, "--json")
    assert code == 0, out
    obj = json.loads(out)
    assert obj["converted_from"] == "image/heic" and obj["source"] == "ocr"
    assert obj["fields"]["vat_number"]["value"] == "988077917"


@needs_tesseract
def test_rules_test_reads_a_pdf_that_holds_only_an_image(tmp_path: Path) -> None:
    out = read_ok(tmp_path / "scan.pdf", scanned_receipt_pdf())
    assert "read as:   ocr" in out
    _receipt_read(out)


def test_rules_test_opens_a_winmail_dat_and_refuses_what_a_mail_would(tmp_path: Path) -> None:
    path = tmp_path / "winmail.dat"
    path.write_bytes(winmail_dat())
    code, out = rules_test(path)
    assert code == 1  # the program inside is refused
    assert f"file:      {path}[kvittering.pdf]" in out and "read as:   pdf-text" in out
    _receipt_read(out)
    assert f"cannot read {path}[notes.exe]: " in out
    assert "programs and scripts are not accepted" in out


def test_every_field_read_is_shown_by_extract_and_rules_test(tmp_path: Path) -> None:
    path = tmp_path / "faktura.pdf"
    path.write_bytes(text_pdf(INVOICE))
    code, out = run("extract", str(path), "--json", "--campaign", "cashback-2022")
    assert code == 0, out
    obj = json.loads(out)
    assert set(obj["fields"]) == {"retailer", "purchase_date", "product", "vat_number"}
    other = obj["other_fields"]
    assert set(other) == {"serial_number", "receipt_number", "buyer_company", "total"}
    assert other["serial_number"] is None
    assert other["receipt_number"]["value"] == "100234"
    assert other["buyer_company"]["value"] == "Nordlys Lyd AS"
    assert other["total"] == {
        **other["total"],
        "value": "3990.00",
        "currency": "NOK",
        "evidence": "Totalt NOK 3 990,00",
    }
    code, out = run("extract", str(path), "--campaign", "cashback-2022")
    assert code == 0, out
    assert "buyer_company Nordlys Lyd AS [NO] (confidence 0.95" in words(out)
    assert "total 3990.00 NOK (confidence 0.9: 'Totalt NOK 3 990,00')" in words(out)
    assert "receipt_number 100234" in words(out)
    assert "serial_number" not in out  # not read: extras are shown only when read
    code, out = rules_test(path)
    assert code == 0, out
    assert "buyer_company NO Nordlys Lyd AS (confidence 0.95)" in words(out)
    assert "total 3990.00 NOK (confidence 0.90) rule: total:label+again" in words(out)
    assert "receipt_number 100234 (confidence" in words(out)
    code, out = rules_test(path, "--json")
    assert json.loads(out)["other_fields"]["total"]["value"] == "3990.00"
