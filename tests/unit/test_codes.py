"""Registration codes and RMA numbers: Damm check digit, generation, finding in text."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbot.core.codes import (
    DEFAULT_IGNORE_WORDS,
    find_codes,
    find_mistyped_codes,
    format_rma_number,
    generate_code,
    generate_rma_number,
    is_valid_code,
    is_valid_rma_number,
    looks_like_date,
)

# Damm table (Wikipedia), written out here so the test does not trust the code under test.
_T = (
    (0, 3, 1, 7, 5, 9, 8, 6, 4, 2),
    (7, 0, 9, 2, 1, 5, 4, 8, 6, 3),
    (4, 2, 0, 6, 8, 7, 1, 3, 5, 9),
    (1, 7, 5, 0, 9, 8, 3, 4, 2, 6),
    (6, 1, 2, 3, 0, 4, 5, 9, 7, 8),
    (3, 6, 7, 4, 2, 0, 9, 5, 8, 1),
    (5, 8, 6, 9, 7, 2, 0, 1, 3, 4),
    (8, 9, 4, 5, 3, 6, 2, 0, 1, 7),
    (9, 4, 3, 8, 6, 1, 7, 2, 0, 5),
    (2, 5, 8, 1, 4, 3, 6, 7, 9, 0),
)


def damm_digit(body: str) -> str:
    interim = 0
    for ch in body:
        interim = _T[interim][int(ch)]
    return str(interim)


def code_from(body7: str) -> str:
    return body7 + damm_digit(body7)


valid_codes = (
    st.integers(1_000_000, 9_999_999)
    .map(lambda n: code_from(str(n)))
    .filter(lambda c: not looks_like_date(c))
)


def test_known_damm_value() -> None:
    # the textbook example: 572 -> check digit 4
    assert damm_digit("572") == "4"
    assert is_valid_code(code_from("5720000"))
    assert code_from("5724000")[-1] == damm_digit("5724000")


def test_generate_code_shape_and_validity() -> None:
    rng = random.Random(42)
    codes = [generate_code(rng) for _ in range(2000)]
    for c in codes:
        assert len(c) == 8 and c.isdigit() and c[0] != "0"
        assert c[-1] == damm_digit(c[:-1])
        assert is_valid_code(c)
        assert not looks_like_date(c)
        assert find_codes(f"Min kode er {c}") == (c,)
    assert len(set(codes)) > 1990  # random, not a counter


def test_generate_code_is_reproducible_with_seed() -> None:
    assert generate_code(random.Random(7)) == generate_code(random.Random(7))


@pytest.mark.parametrize(
    "s", ["", "1234567", "123456789", "0" + code_from("123456")[1:], "1234567a", "١٢٣٤٥٦٧٨"]
)
def test_invalid_code_shapes(s: str) -> None:
    assert not is_valid_code(s)


def test_leading_zero_rejected_even_with_right_check_digit() -> None:
    assert not is_valid_code(code_from("0123456"))


@settings(max_examples=300)
@given(valid_codes, st.integers(0, 7), st.integers(1, 9))
def test_every_single_digit_typo_is_detected(code: str, pos: int, delta: int) -> None:
    wrong = str((int(code[pos]) + delta) % 10)
    typo = code[:pos] + wrong + code[pos + 1 :]
    assert typo != code
    assert not is_valid_code(typo)


@settings(max_examples=300)
@given(valid_codes, st.integers(0, 6))
def test_every_adjacent_transposition_is_detected(code: str, pos: int) -> None:
    a, b = code[pos], code[pos + 1]
    swapped = code[:pos] + b + a + code[pos + 2 :]
    if a == b:
        assert is_valid_code(swapped)
    else:
        assert not is_valid_code(swapped)


_tokens = st.one_of(
    st.integers(0, 99_999_999).map(lambda n: f"{n:08d}"),  # 8 digits, mostly invalid
    valid_codes,
    st.sampled_from([" ", "\n", ".", ",", ":", "-", "+47", "tel", "kode", "Re:", "ordre", "#"]),
    st.text(alphabet=st.sampled_from("0123456789 \n.,:-+/abcTEL#"), max_size=5),
)


@settings(max_examples=400)
@given(st.lists(_tokens, max_size=30).map("".join))
def test_find_codes_never_returns_an_invalid_code(text: str) -> None:
    for c in find_codes(text):
        assert is_valid_code(c)
        assert c in text
    for c in find_mistyped_codes(text):
        assert not is_valid_code(c)


@settings(max_examples=200)
@given(valid_codes, st.sampled_from(["", "Re: ", "Kode: ", "(", "koden min er "]))
def test_find_codes_finds_a_standalone_code(code: str, before: str) -> None:
    assert find_codes(f"{before}{code} takk") == (code,)


C1 = code_from("3914177")
C2 = code_from("8631706")


def test_fixture_codes_are_valid() -> None:
    assert is_valid_code(C1) and is_valid_code(C2)


@pytest.mark.parametrize(
    "text",
    [
        f"tel: {C1}",
        f"Tlf. {C1}",
        f"Mobil {C1}",
        f"phone no. {C1}",
        f"+47 {C1}",
        f"0047 {C1}",
        f"(+46) {C1}",
        f"Ordrenummer: {C1}",
        f"order no. {C1}",
        f"Ordre #{C1}",
        f"Kvitteringsnr {C1}",
        f"kvitto nr {C1}",
        f"Faktura: {C1}",
        f"Invoice number {C1}",
        f"Receipt {C1}",
        f"Lasku {C1}",
        f"{C1} 90",
        f"12 {C1}",
        f"1.{C1}",
        f"{C1}-{C2}",
        f"x{C1}",
        f"{C1}5",
        f"{C1},50",
    ],
)
def test_find_codes_ignores_numbers_in_context(text: str) -> None:
    assert find_codes(text) == ()


@pytest.mark.parametrize("date_like", ["20230115", "15012023", "01152023", "20221231"])
def test_dates_are_not_codes(date_like: str) -> None:
    assert looks_like_date(date_like)
    assert find_codes(f"kjøpt {date_like}") == ()


def test_valid_damm_date_is_still_ignored() -> None:
    # find a date-shaped number whose Damm digit happens to be right
    dates = [f"2023{m:02d}{d:02d}" for m in range(1, 13) for d in range(1, 29)]
    damm_ok = [d for d in dates if is_valid_code(d)]
    assert damm_ok, "expected some dates to pass Damm by chance"
    assert find_codes(f"dato {damm_ok[0]}") == ()


def test_reference_word_does_not_hide_a_code() -> None:
    assert find_codes(f"Referansenummer: {C1}") == (C1,)
    assert find_codes(f"Ref: {C1}") == (C1,)


def test_two_codes_in_order_without_repeats() -> None:
    assert find_codes(f"{C2} og {C1}, altså {C2}") == (C2, C1)
    assert find_codes(f"Koder: {C1} {C2}") == (C1, C2)


def test_wrong_check_digit_is_ignored_but_reported_as_mistyped() -> None:
    typo = C1[:-1] + str((int(C1[-1]) + 1) % 10)
    assert find_codes(f"koden er {typo}") == ()
    assert find_mistyped_codes(f"koden er {typo}") == (typo,)
    assert find_mistyped_codes(f"koden er {C1}") == ()


def test_custom_ignore_words() -> None:
    assert find_codes(f"Bestellnummer {C1}") == (C1,)
    assert find_codes(f"Bestellnummer {C1}", ("bestell",)) == ()
    assert "ordre" in DEFAULT_IGNORE_WORDS


def test_rma_numbers() -> None:
    rng = random.Random(3)
    nums = [generate_rma_number(rng) for _ in range(500)]
    for n in nums:
        assert len(n) == 7 and n[0] != "0" and is_valid_rma_number(n)
        assert n[-1] == damm_digit(n[:-1])
        assert not is_valid_code(n)
    n = nums[0]
    assert not is_valid_rma_number(n[:-1] + str((int(n[-1]) + 1) % 10))
    assert not is_valid_rma_number(n + "0")
    assert format_rma_number(n) == f"RMA# {n}"


def test_rules_file_covers_the_builtin_ignore_words() -> None:
    # the pipeline passes the YAML list, which replaces the defaults: it must not lose any
    from mailbot.ruleset.matching_rules import load_matching_rules

    stems = load_matching_rules().all_code_ignore_words()
    for word in DEFAULT_IGNORE_WORDS:
        assert any(word.startswith(stem) for stem in stems), word
    c = code_from("3914177")
    for stem in stems:
        assert find_codes(f"{stem}: {c}", stems) == (), stem
