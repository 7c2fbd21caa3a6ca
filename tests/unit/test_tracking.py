"""Tracking numbers: carrier patterns from rules/matching.yaml, check digits per carrier spec.

Every number here is synthesized; its check digit is computed in this file from
the published algorithm, independently of parsers.returns.tracking.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbot.core.errors import RulesError
from mailbot.resources import rules_dir
from mailbot.ruleset.matching_rules import MatchingRules, load_matching_rules, parse_matching_rules
from parsers.returns.tracking import check_ok, find_tracking_number, find_tracking_numbers

RULES = load_matching_rules()


# --- check digits from the specs ---------------------------------------------------


def ups(body15: str) -> str:
    """UPS: after '1Z', letters -> (ord-63)%10; odd positions x1, even x2; 10 - sum%10."""
    total = 0
    for i, ch in enumerate(body15):
        v = int(ch) if ch.isdigit() else (ord(ch) - 63) % 10
        total += v * (2 if i % 2 == 1 else 1)
    return "1Z" + body15 + str((10 - total % 10) % 10)


def s10(prefix: str, serial8: str, country: str) -> str:
    """UPU S10: weights 8 6 4 2 3 5 9 7; 11 - sum%11; 10 -> 0, 11 -> 5."""
    total = sum(int(d) * w for d, w in zip(serial8, (8, 6, 4, 2, 3, 5, 9, 7), strict=True))
    c = 11 - total % 11
    c = 0 if c == 10 else 5 if c == 11 else c
    return f"{prefix}{serial8}{c}{country}"


def gs1(body: str) -> str:
    """GS1 mod 10: from the right, weights 3,1,3,...; check makes the sum a multiple of 10."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return body + str((10 - total % 10) % 10)


def dhl(body9: str) -> str:
    return body9 + str(int(body9) % 7)


def fedex12(body11: str) -> str:
    total = sum(int(d) * (1, 3, 7)[i % 3] for i, d in enumerate(reversed(body11)))
    return body11 + str(total % 11 % 10)


UPS = ups("999AA1012345678")
S10_NO = s10("RR", "12345678", "NO")
S10_SE = s10("UA", "47110815", "SE")
SSCC = gs1("37072620123456789")
DHL = dhl("498213745")
FEDEX = fedex12("78126354912")
FEDEX15 = gs1("12345678901234")
DHL_SSCC = gs1("34043412345678901")


def test_reference_values_match_published_examples() -> None:
    # UPS's own documentation example and the S10 example from the UPU standard texts
    assert UPS == "1Z999AA10123456784"
    assert s10("RB", "12345678", "GB") == "RB123456785GB"


def wrong_last_digit(n: str) -> str:
    i = max(i for i, ch in enumerate(n) if ch.isdigit())
    return n[:i] + str((int(n[i]) + 1) % 10) + n[i + 1 :]


@pytest.mark.parametrize(
    ("algorithm", "number"),
    [
        ("ups", UPS),
        ("s10", S10_NO),
        ("s10", S10_SE),
        ("gs1", SSCC),
        ("gs1", "00" + SSCC),
        ("mod7", DHL),
        ("fedex", FEDEX),
        ("fedex", FEDEX15),
        ("fedex", "96" + "12345" + gs1("12345678901234")),
    ],
)
def test_check_digit_algorithms(algorithm: str, number: str) -> None:
    assert check_ok(algorithm, number)
    assert not check_ok(algorithm, wrong_last_digit(number))


@pytest.mark.parametrize(
    ("text", "number", "carrier_id"),
    [
        (f"Sporingsnummer: {UPS}", UPS, "ups"),
        ("tracking 1Z 999 AA1 01 2345 6784", UPS, "ups"),
        (f"tracking: {UPS.lower()}", UPS, "ups"),
        (f"Sendingsnummer {S10_NO}", S10_NO, "posten_bring_s10"),
        (f"Kolli-id: {S10_SE}", S10_SE, "postnord_s10"),
        (f"Kollinummer: {SSCC}", SSCC, "sscc"),
        (f"kolli-id (00){SSCC}", SSCC, "sscc"),  # the GS1 AI in brackets is not part
        (f"kolli-id 00{SSCC}", "00" + SSCC, "sscc"),
        (f"Kollinummer: {SSCC[:3]} {SSCC[3:9]} {SSCC[9:]}", SSCC, "sscc"),
        (f"DHL waybill {DHL}", DHL, "dhl_express"),
        (f"Spårningsnummer {DHL}", DHL, "dhl_express"),
        ("DHL: JJD0099123456789012", "JJD0099123456789012", "dhl_ecommerce"),
        (f"Sendt med DHL Parcel, {DHL_SSCC}", DHL_SSCC, "dhl_parcel_sscc"),
        (f"FedEx tracking {FEDEX}", FEDEX, "fedex"),
        (f"tracking number {FEDEX15}", FEDEX15, "fedex"),
        ("Sendt med DB Schenker, nr 1234567890", "1234567890", "schenker"),
        ("Levert til GLS pakkeshop, pakkenummer 12345678901", "12345678901", "gls"),
        ("Bring sendingsnummer 70712345678901234", "70712345678901234", "bring"),
    ],
)
def test_carrier_detection(text: str, number: str, carrier_id: str) -> None:
    tn = find_tracking_number(text, RULES)
    assert tn is not None, text
    assert (tn.number, tn.carrier_id) == (number, carrier_id)


@pytest.mark.parametrize(
    "text",
    [
        f"Sporingsnummer: {wrong_last_digit(UPS)}",
        f"Sendingsnummer {wrong_last_digit(S10_NO)}",
        f"Kolli {wrong_last_digit(SSCC)}",
        f"waybill {wrong_last_digit(DHL)}",
        "pakkenummer 12345678901",  # GLS format but GLS not named
        "nr 1234567890",  # Schenker format but Schenker not named; mod 7 fails
    ],
)
def test_wrong_check_digit_or_unnamed_carrier_is_not_taken(text: str) -> None:
    assert find_tracking_numbers(text, RULES) == ()


@pytest.mark.parametrize(
    "text",
    [
        "Ring meg på +47 412 34 567 om noe",
        "mob 0701234567",
        "Tlf: 4123456782",
        "Tel. +46 70 123 45 67",
        "Kjøpt 14.03.2023, levert 15-03-2023",
        "Registreringskode 39141772",
    ],
)
def test_phone_numbers_dates_codes_are_never_tracking(text: str) -> None:
    assert find_tracking_numbers(text, RULES) == ()


def test_words_are_never_tracking_numbers() -> None:
    # "PAKKEAUTOMAT" would fit GLS's letters-and-digits format if words were candidates
    assert find_tracking_numbers("Levert i GLS pakkeautomat, Drammen", RULES) == ()


@pytest.mark.parametrize("number", [DHL, FEDEX, FEDEX15, SSCC])
def test_all_digit_formats_need_a_tracking_word_or_the_carrier_named(number: str) -> None:
    # a random number passes these check digits 1 time in 7-10: timestamps, order numbers
    assert find_tracking_number(f"Sent {number} from the web form", RULES) is None
    assert find_tracking_number(f"Tracking: {number}", RULES) is not None


@pytest.mark.parametrize(
    "text",
    ["id 000000000000", "ref 222222222000", "tracking 00000000-0000-0000-0000", "555-931-0702"],
)
def test_placeholders_and_hyphenated_ids_are_not_tracking(text: str) -> None:
    assert find_tracking_numbers(text, RULES) == ()


def test_same_number_twice_is_reported_once() -> None:
    assert len(find_tracking_numbers(f"tracking {UPS}\nOnce more: {UPS}", RULES)) == 1


def test_phone_prefix_blocks_a_number_that_would_pass_mod7() -> None:
    assert find_tracking_number(f"waybill {DHL}", RULES) is not None
    assert find_tracking_number(f"telefon {DHL}", RULES) is None
    assert find_tracking_number(f"+{DHL}", RULES) is None


def test_rma_number_excluded() -> None:
    text = f"DHL RMA# {DHL}"  # (a 10-digit RMA would fit the DHL format)
    assert find_tracking_number(text, RULES) is not None
    assert find_tracking_number(text, RULES, exclude=(DHL,)) is None


def test_number_near_tracking_word_preferred() -> None:
    text = f"FedEx ordre {FEDEX} ble returnert.\nSporingsnummer: {S10_NO}"
    found = find_tracking_numbers(text, RULES)
    assert [t.number for t in found] == [S10_NO, FEDEX]
    assert found[0].near_keyword and not found[1].near_keyword


def test_named_carrier_wins_a_tie() -> None:
    # a 20-digit 00+SSCC is also a valid FedEx 20-digit number; SSCC comes first...
    plain = find_tracking_number(f"tracking 00{SSCC}", RULES)
    assert plain is not None and plain.carrier_id == "sscc"
    # ...unless the mail names FedEx
    tn = find_tracking_number(f"FedEx tracking 00{SSCC}", RULES)
    assert tn is not None and tn.carrier_id == "fedex"


def _rules_with(carriers_yaml: str) -> MatchingRules:
    base = (rules_dir() / "matching.yaml").read_text(encoding="utf-8")
    head, _, rest = base.partition("\ncarriers:\n")
    _, _, tail = rest.partition("\n# Words that point at a tracking number")
    return parse_matching_rules(
        head + "\ncarriers:\n" + carriers_yaml + "\n# Words that point at a tracking number" + tail
    )


def test_carrier_patterns_come_from_rules() -> None:
    rules = _rules_with(
        "  - id: acme\n    carrier: Acme Freight\n    pattern: 'AC[0-9]{8}'\n    check: none\n"
    )
    tn = find_tracking_number("tracking AC12345678", rules)
    assert tn is not None and tn.carrier == "Acme Freight"
    assert find_tracking_number(f"tracking {UPS}", rules) is None


_good = [UPS, S10_NO, S10_SE, SSCC, DHL, FEDEX, FEDEX15]
_tokens = st.one_of(
    st.sampled_from(_good),
    st.sampled_from([wrong_last_digit(n) for n in _good]),
    st.integers(0, 10**12).map(str),
    st.sampled_from([" ", "\n", "tracking ", "Sporingsnummer: ", "DHL ", "FedEx ", "+47 ", "GLS "]),
    st.text(alphabet=st.sampled_from("0123456789 1ZAJDNOSE+-.:\n"), max_size=8),
)


@settings(max_examples=300)
@given(st.lists(_tokens, max_size=12).map("".join))
def test_every_returned_number_passes_its_check(text: str) -> None:
    for tn in find_tracking_numbers(text, RULES):
        assert check_ok(tn.check, tn.number)
        assert len(tn.number) >= 10
        # A carrier whose numbers carry no check digit (GLS, named before the number)
        # cannot tell a mistyped number of another carrier from one of its own.
        assert tn.check == "none" or tn.number not in {wrong_last_digit(n) for n in _good}


# --- the rules file -----------------------------------------------------------------


def test_builtin_rules_load() -> None:
    assert RULES.rma_check == "damm"
    assert {c.check for c in RULES.carriers} <= {"ups", "s10", "gs1", "mod7", "fedex", "none"}
    assert "sporingsnummer" in RULES.all_tracking_keywords()
    assert "levert" in RULES.all_dropoff_keywords()


@pytest.mark.parametrize(
    ("carrier_yaml", "message", "line_offset"),
    [
        ("  - id: x\n    carrier: X\n    pattern: '([0-9'\n    check: none\n", "regular", 3),
        ("  - id: x\n    carrier: X\n    pattern: '[0-9]{9}'\n    check: luhn\n", "check", 4),
        (
            "  - id: x\n    carrier: X\n    pattern: '1'\n    check: none\n"
            "    require_name: true\n",
            "require_name",
            1,
        ),
    ],
)
def test_rules_errors_name_file_and_line(carrier_yaml: str, message: str, line_offset: int) -> None:
    base = (rules_dir() / "matching.yaml").read_text(encoding="utf-8")
    carriers_line = base.splitlines().index("carriers:") + 1
    with pytest.raises(RulesError) as info:
        _rules_with(carrier_yaml)
    assert message in str(info.value)
    assert info.value.path == "<string>"
    assert info.value.line == carriers_line + line_offset


def test_rules_file_error_names_path(tmp_path: Path) -> None:
    bad = tmp_path / "matching.yaml"
    bad.write_text("rma:\n  check: damm\n", encoding="utf-8")
    with pytest.raises(RulesError) as info:
        load_matching_rules(bad)
    assert str(bad) in str(info.value)
