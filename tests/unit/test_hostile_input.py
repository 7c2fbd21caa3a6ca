"""Hostile input is read within bounded time and memory, and comes out as a decision.

Each case here once took seconds to minutes (or hundreds of MB) on a small file:
a long text line (the legal-name rule backtracked quadratically), a PDF whose
content inflates to megabytes of NULs, a body declared as punycode, a PNG with a
huge header size. Times are asserted with wide margins (the machine is shared);
before the fixes each case took many times its bound.
"""

from __future__ import annotations

import time

from parsers.receipt import MAX_LINE_CHARS, bounded_text, extract_fields
from parsers.receipt_retailer import _legal_name
from tests.unit._receipt_helpers import rules


def _seconds(fn, *args, **kwargs) -> float:
    started = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - started


def test_legal_name_rule_is_linear_on_a_long_line() -> None:
    # 5 000 characters without a legal form: the old pattern took > 10 s here.
    for line in ("A" * 5000, "a " * 2500, "ab" * 2500):
        assert _seconds(_legal_name, line, rules()) < 0.5


def test_legal_name_still_reads_names() -> None:
    assert _legal_name("Elkjøp Nordic AS - Postboks 1", rules()) == "Elkjøp Nordic AS"
    assert _legal_name("Power Norge AS.", rules()) == "Power Norge AS."
    assert _legal_name("Coolblue B.V. (KvK 1234)", rules()) == "Coolblue B.V."
    assert _legal_name("Kvittering 12.03.2024", rules()) is None


def test_field_rules_read_a_bounded_text() -> None:
    text = "\n".join(["x" * 10_000] * 50 + ["Elkjøp Nordic AS"])
    bounded = bounded_text(text)
    assert max(len(line) for line in bounded.splitlines()) == MAX_LINE_CHARS
    assert len(bounded) <= 20_000


def test_field_rules_on_megabytes_of_text_take_under_a_second_or_two() -> None:
    dense = " ".join(["Elkjøp AS Dato 12.03.2024 MVA NO 123 456 789 Total 1999,00 kr"] * 10)
    text = "\n".join([dense] * 20_000)  # ~12 MB of keywords, dates and numbers
    assert _seconds(extract_fields, text, rules(), models=["WH-1000XM5"]) < 3.0
