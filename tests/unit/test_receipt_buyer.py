"""The buyer block of an invoice: a company named as the buyer is a fact with its
confidence; a private buyer, a customer number or the seller's own block is none;
the buyer's number and name never become the seller's VAT number or retailer."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mailbot.core.errors import RulesError
from mailbot.resources import rules_dir
from mailbot.ruleset.receipts import load_receipt_rules
from parsers.receipt.fields import extract_fields
from tests.unit._receipt_helpers import rules

SELLER = "Hansen Lyd AS\nOrg.nr 988077917 MVA\nwww.hansenlyd.no\nFAKTURA\nFakturanr 100234\n"
ITEMS = "\n1 x Sonos One   2 499,00\nTotalt  2 499,00\n"


def _invoice(buyer: str) -> str:
    return SELLER + "Fakturadato 05.04.2018\n" + buyer + ITEMS


def test_company_name_and_its_number_are_a_confident_company_buyer() -> None:
    f = extract_fields(
        _invoice("Kunde / Kund:\nNordlys Lyd AS\nOrg.nr 923609016\nAtt: Innkjøp"), rules()
    )
    assert f.buyer_company is not None
    assert (f.buyer_company.value, f.buyer_company.confidence) == ("Nordlys Lyd AS", 0.95)
    # the seller's fields stay the seller's
    assert f.vat_number is not None and f.vat_number.value == "988077917"
    assert f.vat_number.confidence == 0.95  # not lowered by a second number
    assert f.retailer is not None and f.retailer.value == "Hansen Lyd AS"


@pytest.mark.parametrize(
    ("block", "value", "confidence"),
    [
        ("Køber: Baltic Events ApS\nVestergade 3", "Baltic Events ApS", 0.7),
        ("Bill to:\nSauna Sound Oy\nY-tunnus 0112038-9", "Sauna Sound Oy", 0.95),
        ("Faktureres til\nOla Nordmann\nOrg.nr 923609016", "923609016", 0.85),
        ("Asiakas:\nFjord Media AB\nKatu 1", "Fjord Media AB", 0.7),
    ],
)
def test_buyer_blocks_in_the_nordic_languages(block: str, value: str, confidence: float) -> None:
    f = extract_fields(_invoice(block), rules())
    assert f.buyer_company is not None
    assert (f.buyer_company.value, f.buyer_company.confidence) == (value, confidence)


@pytest.mark.parametrize(
    "block",
    [
        "Kunde:\nOla Nordmann\nStorgata 1\n0150 Oslo",  # a person
        "Kundenummer: 55123\nNordlys Lyd AS",  # no buyer label: a customer number
        "Customer copy\nNordlys Lyd AS",  # a receipt's copy line
        "Kunde:\nHansen Lyd AS\nOrg.nr 988077917",  # the seller's own name and number
        "Kunde: Elkjøp Norge AS",  # a listed shop is a seller, not a buyer
    ],
)
def test_no_company_buyer(block: str) -> None:
    assert extract_fields(_invoice(block), rules()).buyer_company is None


def test_a_number_under_the_label_counts_only_beside_the_sellers_own() -> None:
    # Without a seller's number elsewhere, the one in the block may be the seller's.
    text = "Hansen Lyd AS\nFAKTURA\nFakturadato 05.04.2018\nKunde:\nOla Nordmann\nOrg.nr 923609016"
    f = extract_fields(text + ITEMS, rules())
    assert f.buyer_company is None
    assert f.vat_number is not None and f.vat_number.value == "923609016"


def test_a_buyer_label_matching_an_empty_line_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "receipts"
    shutil.copytree(rules_dir() / "receipts", target)
    path = target / "document.yaml"
    text = path.read_text(encoding="utf-8").replace("  - 'kunde|", "  - '(kunde)?|", 1)
    path.write_text(text, encoding="utf-8")
    line = text.splitlines().index(next(ln for ln in text.splitlines() if "(kunde)?" in ln)) + 1
    with pytest.raises(RulesError) as err:
        load_receipt_rules(target)
    assert f"document.yaml:{line}" in str(err.value) and "empty" in str(err.value)
