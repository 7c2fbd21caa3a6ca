"""The total paid: label-driven, normalised, never a subtotal, VAT, change or cash line,
confident only when the page backs it, nothing when unsure; labels are admin data."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mailbot.core.errors import RulesError
from mailbot.core.receipt_fields import RECEIPT_FIELDS
from mailbot.resources import rules_dir
from mailbot.ruleset.receipts import load_receipt_rules
from parsers.receipt.fields import extract_fields
from parsers.receipt.ocrtext import split_lines
from parsers.receipt.total import CHECKED, ONE_READING, UNSURE, find_total, parse_amount
from tests.unit._receipt_helpers import rules


def total(*lines: str) -> tuple[str, float, str | None] | None:
    found = find_total(split_lines("\n".join(lines)), rules())
    return None if found is None else (found.value, found.confidence, found.currency)


def value(*lines: str) -> str | None:
    found = total(*lines)
    return found[0] if found is not None else None


@pytest.mark.parametrize(
    ("printed", "cents"),
    [
        ("1 299,00", 129900),
        ("1.299,00", 129900),
        ("1,299.00", 129900),
        ("1299.-", 129900),
        ("1299,-", 129900),
        ("1\u00a0299,00", 129900),
        ("12,99", 1299),
        ("39. 80", 3980),  # OCR's space after the decimal point
    ],
)
def test_amounts_are_normalised(printed: str, cents: int) -> None:
    assert parse_amount(printed) == (cents, True)


def test_not_one_amount() -> None:
    assert parse_amount("1.299.00") is None  # the same separator twice
    assert parse_amount("1.299 000") is None
    assert parse_amount("1 299") == (129900, False)  # no decimals: an integer, said so


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Totalt  3 990,00", "3990.00"),
        ("TOTAL 1.299,00", "1299.00"),
        ("Total: 1,299.00", "1299.00"),
        ("I alt 1299.-", "1299.00"),
        ("lalt 13 438,00", "13438.00"),  # OCR's "I alt"
        ("SUMMA 249,00", "249.00"),
        ("Summe 12,99", "12.99"),
        ("Yhteensä 49,90", "49.90"),
        ("KOPĀ 3.45", "3.45"),
        ("Att betala: 1 299,00", "1299.00"),
        ("Å betale kr 1299", "1299.00"),  # an integer with its currency
        ("Totalt inkl. mva 3 990,00", "3990.00"),  # tax said to be included
        ("Totalt (inkl. 25% mva) 3 990,00", "3990.00"),
        ("Total Sales (Inclusive of GST) 54.50", "54.50"),
        ("BETALT 3 990,00", "3990.00"),
    ],
)
def test_labelled_totals(line: str, expected: str) -> None:
    assert value("Sony WH-1000XM5", line) == expected


@pytest.mark.parametrize(
    "line",
    [
        "Subtotal 3 990,00",
        "Delsum 3 990,00",
        "herav MVA 25%  798,00",
        "Sum MVA 798,00",
        "Summa moms 798,00",
        "Total eks. mva 3 192,00",
        "Total excl. VAT 3 192,00",
        "Växel 10,00",
        "Kontant 500,00",
        "Change 2,00",
        "Du sparte 300,00",
        "Avrunding 0,40",
        "Totalt 3 varer",  # a count
        "TOTAL QTY: 2.00",
        "Total 3 990,00 798,00",  # two amounts: which one?
        "Totalt -1 299,00",  # a refund
        "Totalt 0,00",
        "2 x Sony total 3 990,00",  # a label after digits: an item line
        "SUMME EUR 5.417",  # "5,41" misread, or thousands?
        "SUMME EUR 26, 9O",
        "KOPA EUR 2. Oo",  # a decimal OCR broke: not the integer 2
        "Paid Amount 100.00",  # cash handed over
        "Amount 12,00",  # a column's word, not a total's
        "Consumer 12,00",  # "sum" only as a word
    ],
)
def test_never_a_total(line: str) -> None:
    assert total(line) is None


def test_currency_when_printed() -> None:
    assert total("Totalt NOK 3 990,00") == ("3990.00", ONE_READING, "NOK")
    assert total("Yhteensä 49,90 €") == ("49.90", ONE_READING, "EUR")
    assert total("TOTAL RM9.00") == ("9.00", ONE_READING, "MYR")
    assert total("Totalt 3 990,00 kr") == ("3990.00", ONE_READING, None)  # kr: which one?


def test_the_amount_to_pay_outranks_a_plain_sum() -> None:
    # After a discount the sum above is the price before it.
    assert value("Sum varer 4 990,00", "Rabatt -1 000,00", "Å betale 3 990,00") == "3990.00"


def test_the_last_total_of_a_block_wins_below_the_campaigns_bar() -> None:
    found = total("Sum 4 990,00", "Totalt 3 990,00")
    assert found is not None and found[0] == "3990.00"
    assert 0.6 <= found[1] < 0.8  # shown, not relied on
    # The discount between them explains it: the prices add up.
    explained = total("Sum 4 990,00", "Kupong -1 000,00", "Totalt 3 990,00")
    assert explained is not None and explained[0] == "3990.00" and explained[1] >= 0.8


def test_confident_only_when_the_page_backs_it() -> None:
    items = ["Sonos One 2 490,00", "HDMI-kabel 2m 199,00", "Bærepose 2,00"]
    backed = total(*items, "Totalt 2 691,00")
    assert backed is not None and backed[:2] == ("2691.00", CHECKED)  # the items add up
    # A model's digits are not thousands of the price beside it ("XM4 249,00").
    model = total("Sony WH-1000XM5 99,00", "Sony WF-1000XM4 249,00", "Totalt 348,00")
    assert model is not None and model[:2] == ("348.00", CHECKED)
    paid = total("Sonos One 2 490,00", "Totalt 2 490,00", "Bankkort 2 490,00")
    assert paid is not None and paid[1] == CHECKED  # another line shows it
    # OCR turned 10 470,00 into 106 476,06: nothing else on the page says so.
    alone = total(*items, "I alt 106 476,06")
    assert alone is not None and alone[1] == ONE_READING < 0.8


def test_the_same_line_read_twice_backs_nothing() -> None:
    # Two OCR passes of one page are two blocks; the engine repeats its own slips.
    found = total("Totalt 3 998,00", "", "Totalt 3 998,00")
    assert found is not None and found[1] == ONE_READING


def test_passes_that_disagree_give_no_total() -> None:
    found = total("Totalt 3 990,00", "", "Totalt 3 998,00")
    assert found is not None and found[1] == UNSURE < rules().threshold("total")
    text = "Elkjøp Norge AS\nDato: 12.12.2022\nTotalt 3 990,00\n\nTotalt 3 998,00\n"
    assert extract_fields(text, rules()).total is None


def test_total_is_an_extra_field_not_a_required_one() -> None:
    assert "total" not in RECEIPT_FIELDS
    fields = extract_fields(
        "Elkjøp Norge AS\nOrg.nr 988 077 917 MVA\nDato: 12.12.2022\n"
        "Sony WH-1000XM5   3 990,00\nTOTAL 3 990,00\nherav MVA 25% 798,00\n",
        rules(),
        models=("WH-1000XM5",),
    )
    assert fields.total is not None
    assert (fields.total.value, fields.total.rule) == ("3990.00", "total:label+again")
    assert fields.total.evidence == "TOTAL 3 990,00"
    assert fields.missing() == ()
    without = extract_fields("Elkjøp Norge AS\nDato: 12.12.2022\n", rules())
    assert without.total is None and "total" not in without.missing()


@pytest.fixture
def rules_copy(tmp_path: Path) -> Path:
    target = tmp_path / "receipts"
    shutil.copytree(rules_dir() / "receipts", target)
    return target


def test_labels_are_admin_data(rules_copy: Path) -> None:
    path = rules_copy / "document.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("\ntotal_labels:\n", "\ntotal_labels:\n  - 'zusammen'\n"), "utf-8")
    tuned = load_receipt_rules(rules_copy)
    lines = split_lines("Zusammen 12,50")
    assert find_total(lines, rules()) is None
    found = find_total(lines, tuned)
    assert found is not None and found.value == "12.50"


@pytest.mark.parametrize(
    ("replacement", "message"),
    [("  - 'summ(e'\n", "regular expression"), ("  - 'x?'\n", "matches an empty line")],
)
def test_a_bad_label_names_file_and_line(rules_copy: Path, replacement: str, message: str) -> None:
    path = rules_copy / "document.yaml"
    text = path.read_text(encoding="utf-8")
    text = text.replace("\nnot_total_labels:\n", "\nnot_total_labels:\n" + replacement)
    path.write_text(text, encoding="utf-8")
    line = text.splitlines().index(replacement.rstrip("\n")) + 1
    with pytest.raises(RulesError) as err:
        load_receipt_rules(rules_copy)
    assert f"document.yaml:{line}" in str(err.value) and message in str(err.value)
