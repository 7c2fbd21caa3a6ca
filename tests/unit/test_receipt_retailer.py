"""Retailer: list matching with aliases, Nordic letters, OCR slips; the legal-name fallback."""

from __future__ import annotations

from mailbot.core.campaign import NamedItem
from parsers.receipt.ocrtext import split_lines
from parsers.receipt.retailer import find_retailer
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


def test_head_block_name_above_the_shops_details() -> None:
    # A hand-written note (lower case) and a one-word logo over the name are skipped.
    text = "jon smith\nKedaiLogo\nKEDAI BUKU MAJU JAYA\n12, JALAN MAWAR 3\nTEL 03-1234 5678"
    assert retailer(text) == "KEDAI BUKU MAJU JAYA"


def test_head_block_joins_a_legal_form_line_and_an_ampersand() -> None:
    assert (
        retailer("KEDAI BUKU MAJU JAYA\nSDN BHD\n(123456-A)\nNO 5, JALAN MAWAR")
        == "KEDAI BUKU MAJU JAYA SDN BHD"
    )
    assert (
        retailer("NORTH STAR HARDWARE &\nELECTRICAL\nNO. 12, JALAN RIA 4")
        == "NORTH STAR HARDWARE & ELECTRICAL"
    )


def test_head_block_skips_a_tagline() -> None:
    assert retailer("BLUE HARBOUR\nBISTRO & CAFE\n12, HARBOUR ROAD 7") == "BLUE HARBOUR"


def test_head_block_abstains() -> None:
    assert retailer("BLUE HARBOUR\nThank you for shopping\nTotal 12.00") is None  # no details
    assert retailer("RES!AURANT LAUT BIRU\n12, JALAN RIA 4") is None  # a letter OCR lost
    assert retailer("SAA. GL AL LID\n12, JALAN RIA 4") is None  # fragments
    assert retailer("FUYI MI T\n12, JALAN RIA 4") is None  # a lone letter
    assert retailer("TAX INVOICE\nBLUE HARBOUR\n12, HARBOUR ROAD 7") is None  # title first


def test_each_ocr_pass_has_its_own_head() -> None:
    # The second pass (after a blank line) read the head the first pass lost.
    text = "ee oe ;\n¥¥ |\nTotal 12.00\n\nBLUE HARBOUR CAFE\n12, HARBOUR ROAD 7"
    assert retailer(text) == "BLUE HARBOUR CAFE"


def test_a_name_wrapped_before_its_legal_form() -> None:
    text = "GREEN LEAF VEGETARIAN\nRESTAURANT SDN BHD\n(1234567-X)\n54, JALAN SS2/11"
    assert retailer(text) == "GREEN LEAF VEGETARIAN RESTAURANT SDN BHD"


def test_legal_form_before_a_registration_number() -> None:
    assert retailer("~ ZETA MART CO. (M) BHD (126925-4)\n55100 KUALA LUMPUR") == (
        "ZETA MART CO. (M) BHD"
    )


def test_quoted_name_after_a_leading_legal_form_ends_at_its_quote() -> None:
    text = 'SIA "Zelta Abele" = PVN LV40003000001\nRigas iela 1, Jelgava'
    assert retailer(text) == 'SIA "Zelta Abele"'


def test_document_title_before_the_name_is_dropped() -> None:
    assert retailer("FACTUUR. Blauwe Fiets B.V.\nPostbus 1, Utrecht") == "Blauwe Fiets B.V."


def test_a_doubtful_ocr_word_means_abstain() -> None:
    lines = split_lines("INSTRUMENTU NANS\nAkademijas iela 17, Jelgava")
    assert find_retailer(lines, rules()) is not None
    assert find_retailer(lines, rules(), doubts={"instrumentunans": frozenset({"nans"})}) is None
    # The same word doubted on another line does not count against the name.
    assert find_retailer(lines, rules(), doubts={"nanstotal": frozenset({"nans"})}) is not None


def test_no_head_name_when_the_legal_name_by_the_vat_number_was_unreadable() -> None:
    text = 'TOOL HOUSE\nAkademijas iela 17, Jelgava\nSTA "KONGS" = PVN LV40003000001'
    lines = split_lines(text)
    assert find_retailer(lines, rules(), vat_line=2) is None
    assert find_retailer(lines, rules()) is not None  # no VAT line known: the head name


def test_a_legal_form_alone_under_the_name() -> None:
    text = "Logo\nPERi-PERI GRILL\nTiger Grillhouse Malaysia\nSdn Bhd\nNo. 5, Jalan Ria"
    assert retailer(text) == "Tiger Grillhouse Malaysia Sdn Bhd"


def test_a_joined_name_quotes_both_lines_as_evidence() -> None:
    found = find_retailer(split_lines("KEDAI BUKU MAJU JAYA\nSDN BHD\n(123456-A)\nNO 5"), rules())
    assert found is not None and found.evidence == "KEDAI BUKU MAJU JAYA / SDN BHD"


def test_a_name_another_pass_could_not_read_is_not_believed() -> None:
    # Pass 1 all but guessed the name's word; pass 2 read it otherwise, sure of itself.
    text = 'STA "NMIGLA BE" VRN 43603041097\nJelgava\n\nSIA "HICLA BE" VRN 43603041097\nJelgava'
    lines = split_lines(text)
    doubts = {"stanmiglabevrn43603041097": frozenset({"nmigla"})}
    assert find_retailer(lines, rules()) is not None
    assert find_retailer(lines, rules(), doubts=doubts) is None


def test_a_letter_after_a_hyphen_is_part_of_the_name() -> None:
    assert retailer("KEDAI MAJU -K (TAMAN JAYA) SDN BHD\n(1234-W)\nNO 5, JALAN") == (
        "KEDAI MAJU -K (TAMAN JAYA) SDN BHD"
    )


def test_abbreviated_legal_forms_are_not_lone_letters() -> None:
    # "S/B" is Sdn. Bhd. abbreviated: two single letters that are not OCR debris.
    assert retailer("55 BUDGET MART S/B (123456-A)\nLOT 9, JALAN MAJU") == "55 BUDGET MART S/B"
    # A lone letter in the name itself is still a word OCR broke.
    assert retailer("BUDGET MA T S/B (123456-A)\nLOT 9, JALAN MAJU") is None
