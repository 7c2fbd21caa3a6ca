"""Retailer: list matching with aliases, Nordic letters, OCR slips; the legal-name fallback."""

from __future__ import annotations

from mailbot.core.campaign import NamedItem
from parsers.receipt_retailer import find_retailer
from parsers.receipt_text import split_lines
from tests.unit._receipt_helpers import rules


def retailer(text: str, retailers: tuple[NamedItem, ...] = ()) -> str | None:
    found = find_retailer(split_lines(text), rules(), retailers)
    return None if found is None else found.value


def test_default_list_at_the_head() -> None:
    assert retailer("ELKJØP\nStorgata 1, Oslo\nKvittering 12") == "Elkjøp"
    assert retailer("Elkjop Nordic AS\nStorgata 1") == "Elkjøp"  # folded letters
    assert retailer("Clas Ohlson AB\nDrottninggatan 1") == "Clas Ohlson"


def test_ocr_slip_in_a_long_name() -> None:
    assert retailer("Elgigamten AB\nKungsgatan 3\nKvitto") == "Elgiganten"
    assert retailer("Verkkokaupa.com Oyj\nHelsinki") == "Verkkokauppa.com"


def test_campaign_list_first() -> None:
    shop = NamedItem("Lydbutikken", ("Lydbutikken AS",))
    assert retailer("LYDBUTIKKEN AS\nTorget 2\nKvittering", (shop,)) == "Lydbutikken"


def test_short_name_in_the_body_is_not_a_retailer() -> None:
    # "Power" on an item line is a product word, not the shop.
    text = "Hansen Elektro AS\nGata 1\nKvittering\nKabel\nPower adapter 20W 199,00\nTotalt 199,00"
    assert retailer(text) == "Hansen Elektro AS"


def test_legal_name_fallback_and_abstain() -> None:
    assert retailer("Bergen Lyd og Bilde AS\nStrandgaten 5\nTotalt 100") == "Bergen Lyd og Bilde AS"
    # No list match, no legal form: nothing rather than a guess.
    assert retailer("Velkommen\nStrandgaten 5\nTotalt 100") is None


def test_no_match_on_a_line_shorter_than_the_name() -> None:
    assert retailer("Pr\nTotalt 100") is None


def test_name_alone_on_its_line_further_down() -> None:
    # A second OCR pass appended below a garbled first one: the logo line counts.
    garbled = "\n".join(["ee oe a", "Sa ee :", "oo i"] * 4)
    assert retailer(f"{garbled}\nPOWER\nStorgata 1\nKvittering nr 5") == "Power"
