"""Retailer: list matching with aliases, Nordic letters, OCR slips; the legal-name fallback."""

from __future__ import annotations

import pytest

from mailbot.core.campaign import NamedItem
from parsers.receipt.fields import extract_fields
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


def test_head_block_a_name_line_run_together_is_no_logo() -> None:
    # RapidOCR read "RESTAURANT JIAWEI" / "JIAWEI HOUSE" with the first line's
    # space lost: under it stands only the end of the name, never the shop's.
    text = "RESTAURANTJIAWEI\nJIAWEI HOUSE\n002693074-K\n13,JLN TASIK UTAMA 8"
    assert retailer(text) is None
    # Read with its space, the name's second line is no tagline: it repeats a word.
    assert retailer("RESTAURANT JIAWEI\nJIAWEI HOUSE\n002693074-K\n13,JLN TASIK UTAMA 8") is None
    # A logo word of usual length is still skipped.
    assert retailer("KEDAILOGO\nJIAWEI HOUSE\n002693074-K\n13,JLN TASIK UTAMA 8") == (
        "JIAWEI HOUSE"
    )


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


# --- a shop's web domain names it ------------------------------------------------------


def _found(text: str, retailers: tuple[NamedItem, ...] = ()) -> tuple[str, float, str] | None:
    f = find_retailer(split_lines(text), rules(), retailers)
    return None if f is None else (f.value, f.confidence, f.rule)


def test_domain_in_the_address_bar_names_the_retailer() -> None:
    # a cropped web-shop screenshot: the domain is the only name on it
    shot = "https://www.power.dk/ordre/100234\nOrdre 100234\nOrdredato: 10.04.2018\n1 x Sonos One"
    assert _found(shot)[:2] == ("Power", 0.9)  # type: ignore[index]
    assert _found("elkjop.no/kvittering\nKabel 99,00")[:2] == ("Elkjøp", 0.9)  # type: ignore[index]
    gigantti = _found("https://shop.gigantti.fi/tilaus/7\nSumma 10,00")
    assert gigantti is not None and gigantti[:2] == ("Gigantti", 0.9)


def test_domain_further_down_is_confident_too() -> None:
    # a short name ("Inet") in the body is not believed; its domain is
    text = (
        "Ordrebekreftelse\nOrdre 5531\nLevering\nPakke\n1 x Sonos One\nTotalt 2 499,00\n"
        "Kontakt\nKabel\nSe www.inet.se/kundservice"
    )
    assert _found(text) == ("Inet", 0.85, "retailer:domain:body")


def test_domain_lookalikes_do_not_name_a_retailer() -> None:
    head = "Hansen Elektro AS\nGata 1\nKvittering\nKabel 99,00\n"
    for tail in (
        "ordre@power.dk.example.org",  # not power.dk
        "kontakt: ola@power.dk",  # an e-mail address
        "www.superpower.dk",  # another domain
        "www.power.dk-tilbud.com",
    ):
        text = head + tail
        assert _found(text) == ("Hansen Elektro AS", 0.7, "retailer:legal-form"), text


def test_domain_names_the_campaigns_retailer() -> None:
    # the campaign lists Power without its Danish domain: the default list's domain
    # names Power, and the campaign's check finds "Power" among its retailers
    campaign = (NamedItem("Power", ("POWER Norge", "Power.no")),)
    found = _found("Kvittering\nOrdre 100234\nI alt 1 999,00 kr\nwww.power.dk", campaign)
    assert found is not None and found[0] == "Power" and found[1] >= 0.85


def test_retailer_domains_are_validated(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import shutil

    import pytest

    from mailbot.core.errors import RulesError
    from mailbot.resources import rules_dir
    from mailbot.ruleset.receipts import load_receipt_rules

    assert ("power.dk", "Power") in rules().retailer_domains
    for bad, msg in (
        ("domains: [power.no,", "domains: [https://power.no,"),
        ("domains: [power.no,", "domains: [www.power.no,"),
        ("domains: [power.no,", "domains: [Power.NO,"),
        ("domains: [inet.se]", "domains: [power.dk]"),  # a domain names one retailer
    ):
        d = tmp_path / str(len(list(tmp_path.iterdir())))
        shutil.copytree(rules_dir() / "receipts", d)
        f = d / "retailers.yaml"
        text = f.read_text(encoding="utf-8")
        assert bad in text
        f.write_text(text.replace(bad, msg, 1), encoding="utf-8")
        with pytest.raises(RulesError, match="domains"):
            load_receipt_rules(d)


# --- the claim check on the retailer read ------------------------------------------------


def test_a_low_confidence_retailer_is_never_rejected() -> None:
    from mailbot.core.claim_machine import receive_documents
    from tests.unit.claim_factories import new_claim, promo, promo_receipt, utc

    at = utc("2018-04-25 08:00")
    sure = receive_documents(
        new_claim(promo(), now=at), promo(), [promo_receipt(retailer="Teknikmagasinet")], at
    )
    assert sure.to_state == "rejected" and sure.reasons == ("retailer_not_authorized",)
    unsure = receive_documents(
        new_claim(promo(), now=at),
        promo(),
        [promo_receipt(retailer="Teknikmagasinet", low=("retailer",))],
        at,
    )
    assert unsure.to_state != "rejected"
    assert "retailer_not_authorized" not in unsure.reasons
    # a registered retailer off the list, the receipt's unsure read on it: not refused
    registered = receive_documents(
        new_claim(promo(), now=at, retailer="Teknikmagasinet"),
        promo(),
        [promo_receipt(retailer="Elgiganten", low=("retailer",))],
        at,
    )
    assert registered.to_state != "rejected", registered.reasons


# --- a name must look like one: OCR debris of a logo or a stamp is no shop -------------


@pytest.mark.parametrize(
    "text",
    [
        "EEE EEE\nStorgata 12, 0150 Oslo\nKvittering\nTotal 5,00",  # one letter repeated
        "PEE IE\nStorgata 12, 0150 Oslo\nTotal 5,00",  # nearly all vowels
        "EEE EEE AS\nGata 1\nTotal 5,00",
        "XTRKZ BVLM AS\nGata 1\nTotal 5,00",  # no vowel at all
    ],
)
def test_ocr_debris_is_no_shop_name(text: str) -> None:
    assert retailer(text) is None


def test_names_with_few_or_many_vowels_are_still_names() -> None:
    assert retailer("Aanitaio Oy\nTorget 29\nSumma 5,00") == "Aanitaio Oy"
    assert retailer("MR. D.I.Y. (M) SDN BHD\n(860671-D)\nTotal 5.00") == "MR. D.I.Y. (M) SDN BHD"
    assert retailer("KOTITEATTERI POHJOLA\nVestergade 8, 7348\nSumma 5,00") == (
        "KOTITEATTERI POHJOLA"
    )


def test_a_seller_in_quotes_ocr_cut_short_is_not_replaced_by_the_brand_at_the_head() -> None:
    # SIA "KONGS" by its PVN number, the closing quote lost: the head line is the
    # shop's brand, not the seller a proof of purchase must name
    text = (
        'INSTRUMENTU NAMS\nAkademijas iela 17, Jelgava\nSIA "KONGS PVN LV43603006320\n'
        "KASIERIS 01\nSUMMA 3.90\nCEKS\n14.05.2022 12:49"
    )
    assert extract_fields(text, rules()).retailer is None
    # the seller's line is unreadable, but another pass read it with its quotes
    text = text.replace('SIA "KONGS PVN', "SIA KONGS PVN") + '\n\nSTA “KONGS" = PVN 043603006320'
    assert extract_fields(text, rules()).retailer is None


def test_the_name_by_the_sellers_number_in_the_first_pass_that_read_it() -> None:
    # Two OCR passes: the second read the number cleanly but the name with a slip;
    # the first read the name beside its (misread) number label.
    one = (
        "FYNS HIFI\nVestergade 92, 5143\nKvittering nr 211865\nKobsdato: 06.12.22 20:26\n"
        "Kasse 1\nSonos Playbar 199,00\nPose 249,00\nI alt 697,00\nheraf moms 25% 139,00\n"
        "Tak for handlen!\n"
    )
    text = one + "Fyns Hifi A/S\nCVvR-nr. 43487582\n\n" + one + "FynsHini A/S\nCVR-nr.43487582"
    assert extract_fields(text, rules()).retailer is not None
    assert extract_fields(text, rules()).retailer.value == "Fyns Hifi A/S"  # type: ignore[union-attr]


FOOTER_NAMED = """{head}
Storgata 96, 3792
Kvittering nr 988276
Dato 2022-12-12 09:20
I alt 10 479,00
Tak for handlen!
{footer}
CVR: DK 15 00 55 64
"""


@pytest.mark.parametrize(
    ("head", "footer", "expected"),
    [
        # the head and the footer agree: the footer's legal name
        ("FYNS HIFI", "Fyns Hifi A/S", "Fyns Hifi A/S"),
        # the brand over a longer company name is no second reading of it
        ("LYDHUSET", "Lydhuset Aarhus ApS", "Lydhuset Aarhus ApS"),
        # two readings of one name that disagree: one holds an OCR slip, abstain
        ("FYNSHIFT", "Fyes Hin AS", None),
        ("KOTITEATTER: POHJOLA", "Kotteatter Poryols Oy", None),
    ],
)
def test_a_footer_name_the_head_reads_otherwise_is_not_believed(
    head: str, footer: str, expected: str | None
) -> None:
    assert retailer(FOOTER_NAMED.format(head=head, footer=footer)) == expected
