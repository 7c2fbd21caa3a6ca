"""Purchase date: forms, month names per language, distractor dates, impossible dates."""

from __future__ import annotations

import datetime as dt

import pytest

from parsers.receipt.date import find_purchase_date
from parsers.receipt.ocrtext import split_lines
from tests.unit._receipt_helpers import rules


def date(text: str, now: dt.date | None = None) -> str | None:
    found = find_purchase_date(split_lines(text), rules(), now)
    # As extract_fields does: below the threshold is no value.
    if found is None or found.confidence < rules().threshold("purchase_date"):
        return None
    return found.value


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Dato: 21.11.2022 15:43", "2022-11-21"),
        ("Dato 3.1.23", "2023-01-03"),
        ("Datum 2022-11-05 10:12", "2022-11-05"),
        ("Kvitto nr 12\nDatum: 22-12-03 13:31", "2022-12-03"),  # Swedish yy-mm-dd
        ("Date: 25/12/2018 10:01", "2018-12-25"),
        ("Date 25-12-18", "2018-12-25"),
        ("Dato: 2. desember 2022", "2022-12-02"),
        ("Datum 3 januari 2023", "2023-01-03"),
        ("Dato 14. marts 2023", "2023-03-14"),
        ("Päivämäärä 2. joulukuuta 2022", "2022-12-02"),
        ("Rechnungsdatum 7. Mai 2014", "2014-05-07"),
        ("Invoice Date: August 3, 2014", "2014-08-03"),
        ("Date: 12 Nov 2022", "2022-11-12"),
        ("Factuurdatum: 19 april 2014", "2014-04-19"),
        ("2022. 01.18 12:37 Nr. :0076", "2022-01-18"),
    ],
)
def test_forms_and_month_names(line: str, expected: str) -> None:
    assert date(f"Shop\n{line}\nTotal 100.00") == expected


@pytest.mark.parametrize(
    "distractor",
    [
        "Forfallsdato: 16.12.2022",
        "Förfallodag 2022-12-16",
        "Eräpäivä 16.12.2022",
        "Due date: 16/12/2022",
        "Fällig am 16.12.2022",
        "Åpent kjøp til 16.12.2022",
        "Öppet köp till 2022-12-16",
        "Bytes innen 16.12.2022",
        "Garanti til 16.12.2022",
        "Warranty until 16.12.2022",
        "Utskrift 16.12.2022 10:00",
        "Utskrevet 2022-12-16 10:11",
        "Utskrivet 2022-12-16 10:11",
        "Udskrevet 16.12.2022",
        "Eraépaiva: 16.12.2022",  # eräpäivä as OCR reads its ä
    ],
)
def test_distractor_dates_are_not_the_purchase_date(distractor: str) -> None:
    text = f"Butikk\nDato: 01.12.2022 12:00\n{distractor}\nTotalt 100,00"
    assert date(text) == "2022-12-01"
    assert date(f"Butikk\n{distractor}\nTotalt 100,00") is None


def test_an_ocr_read_paivamaara_label_is_a_purchase_label() -> None:
    # Päivämäärä with its ä misread still names the purchase date over a date
    # without a label.
    text = "Kauppa Oy\nPéivamaara: 25.11.2022\nPalvelu 1.12.2022\nYhteensä 100,00"
    assert date(text) == "2022-11-25"


def test_a_deadline_word_with_an_ocr_slip_is_no_purchase_label() -> None:
    # "Fortaldsdato" is Forfaldsdato misread: its "dato" must not make it the purchase.
    assert date("Butik\n20:24 8.1.2023\nFortaldsdato 22.01.2023\nI alt 100,00") == "2023-01-08"
    assert date("Butik\nFortaldsdato 22.01.2023\nI alt 100,00") is None


def test_a_date_word_counts_alone_or_in_a_compound_the_rules_name() -> None:
    # "Fortellodatum" (Förfallodatum misread twice over) is no purchase label...
    text = "Butik AB\nFortellodatum: 2022-12-08\n14:43 24 november 2022\nTotalt 100,00"
    assert date(text) == "2022-11-24"
    # ...while the compounds the rules name are, and a capital a PDF text layer
    # split off its word ("F actuurdatum") is joined again.
    for label in ("Kvitteringsdato", "Fakturadatum", "F actuurdatum", "Datum"):
        text = f"Butik\n{label}: 19.04.2014\nBetalt 21.04.2014\nTotaal 10,00"
        assert date(text) == "2014-04-19", label


def test_a_line_with_a_broken_date_is_not_the_label_of_the_next() -> None:
    # "Forfaldsdato: 9.12023" holds a date OCR broke; the date below is not that one.
    text = "Butik\nForfaldsdato: 9.12023\n14:46 13/01/2023\nI alt 100,00"
    assert date(text) == "2023-01-13"


def test_label_above_date() -> None:
    assert date("Faktura\nForfallsdato:\n16.12.2022\nFakturadato:\n02.12.2022") == "2022-12-02"


def test_impossible_and_future_dates_rejected() -> None:
    assert date("Dato 31.02.2022") is None
    assert date("Dato 32.13.2022") is None
    assert date("Dato 29.02.2023") is None
    assert date("Dato 01.12.2030", now=dt.date(2023, 1, 1)) is None
    assert date("Dato 01.12.2022", now=dt.date(2023, 1, 1)) == "2022-12-01"


def test_prices_are_not_dates() -> None:
    assert date("Totalt 12.50 kr\nMVA 2.50\nSum 1.990,00") is None


def test_impossible_time_next_to_a_date_makes_it_doubtful() -> None:
    assert date("Shop\n06/03/2016 20:81 1810\nTotal 5.00") is None


def test_dates_under_a_table_header_take_their_column_meaning() -> None:
    text = "Kunde Ordre Fakturadato Faktura Forfallsdato\nK123 O456 8-9-2022 F789 22-9-2022\n"
    assert date(text) == "2022-09-08"


def test_two_readings_of_one_date_abstain() -> None:
    assert date("Shop\nDate: 20/03/2018 13:01\nTotal 5.00\nDate: 20/03/2016 13:01\n") is None


def test_an_amount_after_a_currency_sign_is_not_a_date() -> None:
    assert date("Total $9.03 2018\nThank you", dt.date(2026, 1, 1)) is None
    assert date("Sum RM 12.10 2021", dt.date(2026, 1, 1)) is None
    assert date("Date: 12.10 2021", dt.date(2026, 1, 1)) == "2021-10-12"


def test_a_date_another_pass_misread_with_a_far_year_is_not_believed() -> None:
    # Pass 1 read the year as 2078 and the month as 03; pass 2 read 02: which is right?
    text = "Date: 10/03/2078 8:41:08 PAX\n\nDate: 10/02/2018 5:41:06 PAX NO: 4"
    assert date(text, dt.date(2026, 1, 1)) is None
    # The same day and month in both readings: only the year was misread.
    text = "Date: 10/02/2078 8:41:08 PAX\n\nDate: 10/02/2018 5:41:06 PAX NO: 4"
    assert date(text, dt.date(2026, 1, 1)) == "2018-02-10"
    # A return-by date a few years on is not a misreading.
    text = "Dato: 10.02.2024 12:00\nGaranti til: 11.03.2027"
    assert date(text, dt.date(2025, 1, 1)) == "2024-02-10"


# --- an order date is the purchase date only where nothing else dates the purchase ---


def test_order_date_on_a_web_shop_screenshot_is_the_purchase_date() -> None:
    shot = "https://www.power.dk/ordre/100234\nOrdre 100234\nOrdredato: 10.04.2018\n1 x Sonos One"
    assert date(shot, dt.date(2026, 1, 1)) == "2018-04-10"
    assert date("Tilaus 88123\nTilauspäivä 3.2.2023\nSumma 199,00", dt.date(2026, 1, 1)) == (
        "2023-02-03"
    )
    assert date("Order date: 12 Nov 2022\nTotal 5.00", dt.date(2026, 1, 1)) == "2022-11-12"


@pytest.mark.parametrize(
    "invoice",
    [
        "Faktura 5521\nOrdredato: 02.04.2018\nFakturadato: 05.04.2018\nTotalt 2 499,00",
        # in either order, and under a table header too
        "Fakturadato: 05.04.2018\nOrdredato: 02.04.2018\nTotalt 2 499,00",
        "Ordredato Fakturadato Forfallsdato\n02.04.2018 05.04.2018 19.04.2018\n",
    ],
    ids=["order_date_first", "invoice_date_first", "table"],
)
def test_invoice_printing_both_dates_reads_the_invoice_date(invoice: str) -> None:
    assert date(invoice, dt.date(2026, 1, 1)) == "2018-04-05"


def test_no_order_date_beside_a_date_ocr_broke() -> None:
    # "2023-01-92" is the receipt's own date misread: it, not the order, dates the purchase
    text = "Kvittering nr 498486\nOrdredato: 31.12.2022\n20:15 2023-01-92\nTotalt 3 088,00"
    assert date(text, dt.date(2026, 1, 1)) is None
    # a phone number or an amount is no date
    text = "Ordredato: 31.12.2022\nTlf 22.33.44\nTotalt 3.990.00"
    assert date(text, dt.date(2026, 1, 1)) == "2022-12-31"


def test_an_order_date_beside_deadlines_only_is_the_purchase_date() -> None:
    text = "Ordrebekreftelse\nOrdredato: 02.04.2018\nLeveringsdato: 09.04.2018\nSum 99,00"
    assert date(text, dt.date(2026, 1, 1)) == "2018-04-02"


# --- precision first: a page that contradicts itself, a label no rule names ------------


def test_a_purchase_date_after_a_due_or_print_date_is_not_believed() -> None:
    now = dt.date(2026, 1, 1)
    # 20.12 for 20.11: the due date and the print time say a digit was misread
    assert date("Ostopäivä: 20.12.2022 11:59\nEräpäivä: 2022-12-04\nSumma 5,00", now) is None
    assert date("Kjøpsdato: 14.01.2023\nUtskrevet 2023-01-06 10:12", now) is None
    # in order, the same page is believed
    assert date("Ostopäivä: 20.11.2022 11:59\nEräpäivä: 2022-12-04\nSumma 5,00", now) == (
        "2022-11-20"
    )
    assert date("Kjøpsdato: 06.01.2023\nUtskrevet 2023-01-06 10:12", now) == "2023-01-06"
    # a delivery date may come before an invoice date
    assert date("Leveringsdato: 02.01.2023\nFakturadato: 05.01.2023", now) == "2023-01-05"


def test_a_date_under_a_compound_no_rule_names_is_not_believed() -> None:
    now = dt.date(2026, 1, 1)
    # a deadline label OCR mangled past recognition
    assert date("Shop AS\nFovtdvdate:2023-01-15\nTotal 5.00", now) is None
    assert date("Shop AS\nFerfatlsdate: 14.1.2023\nTotal 5.00", now) is None
    # a longer word no rule reads: a print time or an order date misread
    assert date("Shop AS\nUdekrovet 2022-11-21 10:13\nTotal 5.00", now) is None
    assert date("Shop AS\nTiauspdivaé: 10/12/2022\nTotal 5.00", now) is None
    # a short word is often what OCR left of a label ("Pv" for Pvm)
    assert date("Kotiteatteri Pohjola Oy\nPv: 13. marraskuuta 2022\nSumma 5,00", now) == (
        "2022-11-13"
    )
    # a purchase label with an OCR slip still counts
    assert date("Shop AS\nKj@psdato: 4. januar 2023\nTotal 5.00", now) == "2023-01-04"
    assert date("Shop AS\nKebsdato: 14.12.22\nTotal 5.00", now) == "2022-12-14"
    assert date("Shop AS\nPaivamadara: 2022-11-18\nTotal 5.00", now) == "2022-11-18"
