"""VAT / organisation numbers: labels per country, checksums, OCR slips, distractors.

Numbers are made up here with valid (or deliberately broken) check digits.
"""

from __future__ import annotations

import pytest

from parsers.receipt.fields import extract_fields
from parsers.receipt.ocrtext import split_lines
from parsers.receipt.vat import find_vat
from tests.unit._receipt_helpers import rules


def vat(text: str) -> tuple[str, str | None] | None:
    found = find_vat(split_lines(text), rules())
    return None if found is None else (found.value, found.country)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Org.nr 912 345 602 MVA", ("912345602", "NO")),
        ("Foretaksregisteret NO912345602MVA", ("912345602", "NO")),
        ("Foretaksregisteret N0912345602MVA", ("912345602", "NO")),  # O read as 0
        ("Org.nr: 556123-4567", ("5561234567", "SE")),
        ("Momsreg.nr SE556123456701", ("5561234567", "SE")),
        ("CVR-nr. 12345607", ("12345607", "DK")),
        ("SE-nr 87654303", ("87654303", "DK")),
        ("Y-tunnus 1234560-4", ("12345604", "FI")),
        ("ALV FI12345604", ("12345604", "FI")),
        ("PVN LV40003123400", ("40003123400", "LV")),
        ("PVN reģ. Nr. LV40003123400", ("40003123400", "LV")),
        ("PUN LU 40003123400", ("40003123400", "LV")),  # PVN LV as OCR reads it
        ("PVN: L40003123400", ("40003123400", "LV")),  # half the prefix lost
        ("USt-IdNr.: DE123456704", ("123456704", "DE")),
        ("BTW NL123456782B01", ("123456782B01", "NL")),
        ("VAT Reg No: GB 987 6543 11", ("987654311", "GB")),
    ],
)
def test_labelled_numbers_by_country(text: str, expected: tuple[str, str]) -> None:
    assert vat(f"Some Shop\n{text}\nTotal 100,00") == expected


def test_label_on_the_line_above() -> None:
    assert vat("Shop AS\nOrganisasjonsnummer:\n912 345 602\n") == ("912345602", "NO")


def test_ocr_lookalikes_repaired_only_when_checksum_passes() -> None:
    assert vat("Org.nr 9l2 345 6O2 MVA") == ("912345602", "NO")
    # One digit wrong: no repair makes it pass, so nothing is reported.
    assert vat("Org.nr 912 345 603 MVA") is None


@pytest.mark.parametrize(
    "text",
    [
        "Tlf 912 345 602",  # a phone number that happens to pass the checksum
        "Kvittering nr 912345602",
        "Kort ************5536",
        "Kontonr 1234.56.78903",
        "EAN 7311271234567",
        "Bankgiro 5561234567",
    ],
)
def test_distractor_numbers_are_not_vat(text: str) -> None:
    assert vat(f"Shop\n{text}\nTotalt 990,00") is None


def test_an_iban_is_not_a_prefixed_vat_number() -> None:
    # FI12 3456 04..: country code, then digits that pass the Y-tunnus checksum.
    seller = "Y-tunnus 1234560-4"
    assert vat(f"Kauppa Oy\nIBAN FI12 3456 0400 0007 85\n{seller}") == ("12345604", "FI")
    assert vat("Kauppa Oy\nIBAN: FI12 3456 0400 0007 85") is None
    # A valid IBAN (FI87 8304 ...: 87830401 passes the checksum) is one without the word.
    assert vat("Kauppa Oy\nFI87 8304 0119 8036 49") is None
    assert vat("Kauppa Oy\nALV FI87830401") == ("87830401", "FI")


def test_failing_checksum_is_never_reported() -> None:
    assert vat("Org.nr 912 345 600 MVA\nCVR 12345600\nY-tunnus 1234567-0") is None


def test_extract_fields_reports_country() -> None:
    fields = extract_fields("Butikk AS\nOrg.nr 912 345 602 MVA\nTotalt 100,00", rules())
    assert fields.vat_number is not None
    assert fields.vat_number.country == "NO"
    assert fields.vat_number.evidence == "Org.nr 912 345 602 MVA"
    assert fields.vat_number.rule.startswith("vat:NO")
