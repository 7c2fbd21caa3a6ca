"""Document kind: receipt, serial-number photo or other; serial and receipt numbers."""

from __future__ import annotations

from mailbot.core.receipt_fields import DocumentKind
from parsers.receipt.fields import extract_fields
from tests.unit._receipt_helpers import rules

RECEIPT = """ELKJØP
Elkjøp Nordic AS
Org.nr 912 345 602 MVA
Kvittering nr 4711
Dato: 21.11.2022 15:43
Sonos One (Gen 2) svart 2 490,00
Totalt 2 490,00
herav MVA 25% 498,00
"""

LABEL = """SONOS
Model: S18
S/N: 5C-AA-FD-12-34-56:8
Made in China
"""


def test_receipt_with_all_fields() -> None:
    fields = extract_fields(RECEIPT, rules(), models=("Sonos One",))
    assert fields.document_kind is DocumentKind.RECEIPT
    assert fields.retailer is not None and fields.retailer.value == "Elkjøp"
    assert fields.purchase_date is not None and fields.purchase_date.value == "2022-11-21"
    assert fields.product is not None and fields.product.value == "Sonos One"
    assert fields.vat_number is not None and fields.vat_number.value == "912345602"
    assert fields.receipt_number is not None and fields.receipt_number.value == "4711"
    assert fields.missing() == ()


def test_a_bare_nr_opening_a_line_is_the_receipt_number() -> None:
    text = "Sonos Store\nNr 401657\nDatum 2023-01-12\nSonos Roam 1 990,00\n"
    fields = extract_fields(text, rules(), models=("Sonos Roam",))
    assert fields.receipt_number is not None and fields.receipt_number.value == "401657"


def test_no_receipt_number_from_a_vat_line_or_a_number_inside_a_line() -> None:
    # "NO 923 456 789 MVA" opens many Norwegian receipts; "Org. nr" and "Tlf nr" are no
    # receipt's number either
    text = "Sonos Store\nNO 923 456 789 MVA\nOrg. nr 923456789\nTlf nr 22334455\n"
    assert extract_fields(text, rules()).receipt_number is None


def test_serial_label_photo() -> None:
    fields = extract_fields(LABEL, rules())
    assert fields.document_kind is DocumentKind.SERIAL_PHOTO
    assert fields.serial_number is not None
    assert fields.serial_number.value.startswith("5C-AA-FD")


def test_registered_serial_found_with_ocr_slips() -> None:
    text = "Sonos\nModel S18\nSN 5C AA FD I2 34 56 8\n"
    fields = extract_fields(text, rules(), serial="5C-AA-FD-12-34-56:8")
    assert fields.document_kind is DocumentKind.SERIAL_PHOTO
    assert fields.serial_number is not None and fields.serial_number.rule == "serial:claim"


def test_receipt_printing_a_serial_stays_a_receipt() -> None:
    fields = extract_fields(RECEIPT + "Serienr: ABC12345\n", rules())
    assert fields.document_kind is DocumentKind.RECEIPT


def test_other_document() -> None:
    fields = extract_fields("Dear customer,\nthank you for your letter.\n", rules())
    assert fields.document_kind is DocumentKind.OTHER
    assert fields.missing() == ("retailer", "purchase_date", "product", "vat_number")
