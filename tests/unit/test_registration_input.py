"""The pure checks behind `claims register|import`: one address, dates in fixed forms."""

from __future__ import annotations

from datetime import date

import pytest

from mailbot.core.errors import InputError
from mailbot.services.claims import parse_date
from parsers.mail.address import registration_address


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        ("kari@example.no", "kari@example.no"),
        ("  Kari@Example.NO ", "Kari@example.no"),  # the domain is case-insensitive
        ("øyvind@bø.no", "øyvind@bø.no"),
    ],
)
def test_plain_addresses_are_accepted(text: str, stored: str) -> None:
    assert registration_address(text) == stored


@pytest.mark.parametrize(
    "text",
    [
        "r2@example.no\r\nBcc: evil@example.org",
        "kari@example.no\n",
        "Evil <evil@example.org> r4@example.no",
        "Evil <evil@example.org>",
        "<kari@example.no>",
        "kari@example.no (Kari)",
        '"kari nordmann"@example.no',
        "kari@[192.0.2.1]",
        "kari@example.test",
        "kari",
        "",
    ],
)
def test_anything_else_is_refused_naming_the_field(text: str) -> None:
    with pytest.raises(InputError, match=r"^email: "):
        registration_address(text)


@pytest.mark.parametrize(
    ("text", "day"),
    [
        ("2022-12-12", date(2022, 12, 12)),
        ("2022/12/12", date(2022, 12, 12)),
        ("12.12.2022", date(2022, 12, 12)),
        ("03/01/2023", date(2023, 1, 3)),  # day first, as written in the Nordics
        ("03-01-2023", date(2023, 1, 3)),
        ("3.1.23", date(2023, 1, 3)),
        ("2022-12-12T14:03:00", date(2022, 12, 12)),
        ("12.12.2022 14:03", date(2022, 12, 12)),
        ("", None),
    ],
)
def test_common_date_forms(text: str, day: date | None) -> None:
    assert parse_date(text, "purchase date") == day


@pytest.mark.parametrize("text", ["12/31/2022", "2022-13-45", "yesterday", "12.12"])
def test_other_dates_are_refused_with_the_forms(text: str) -> None:
    with pytest.raises(InputError, match=r"purchase date: not a date \(YYYY-MM-DD"):
        parse_date(text, "purchase date")
