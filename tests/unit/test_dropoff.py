"""Drop-off date and time as people write them in Norwegian, Swedish and English."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbot.ruleset.matching_rules import load_matching_rules
from parsers.returns.dropoff import parse_dropoff

KW = load_matching_rules().all_dropoff_keywords()
# Wednesday 15 March 2023, 18:00 UTC
NOW = datetime(2023, 3, 15, 18, 0, tzinfo=UTC)


def at(day: int, hour: int = 0, minute: int = 0, month: int = 3, year: int = 2023) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected", "time_known"),
    [
        ("levert på posten 14.03.2023 kl. 15:30", at(14, 15, 30), True),
        ("i går kl 14", at(14, 14), True),
        ("igår kl. 14.30", at(14, 14, 30), True),
        ("idag 10.15", at(15, 10, 15), True),
        ("i dag kl 09:05", at(15, 9, 5), True),
        ("lämnade paketet 2023-03-14 kl 9", at(14, 9), True),
        ("Jag lämnade in paketet igår klockan 16", at(14, 16), True),
        ("dropped off yesterday at 3pm", at(14, 15), True),
        ("dropped off yesterday at 3 p.m.", at(14, 15), True),
        ("14 mars kl 12", at(14, 12), True),
        ("den 14. mars 2023 kl 12", at(14, 12), True),
        ("on March 14 at 15:30", at(14, 15, 30), True),
        ("on the 14th of March, 2023 at 4:45 pm", at(14, 16, 45), True),
        ("Leverte den 13.3 kl 16", at(13, 16), True),
        ("levert 14.03.23 kl 8", at(14, 8), True),
        ("levert 14.03.2023 15.30", at(14, 15, 30), True),
        ("levert 14.03.2023, 10.12", at(14, 10, 12), True),
        ("Innlevert 13. mars 16.05", at(13, 16, 5), True),
        ("levert på posten 14.03.2023", at(14), False),
        ("i forgårs", at(13), False),
        ("handed in last Tuesday around 2 pm", at(14, 14), True),
        ("Jeg leverte pakken på mandag", at(13), False),
        ("dropped it at the post office last Friday", at(10), False),
        ("sent two days ago at 14:00", at(13, 14), True),
        ("levert 2 dager siden kl 12", at(13, 12), True),
        ("Levert 28.12 kl 10", at(28, 10, month=12, year=2022), True),
    ],
)
def test_dropoff_phrasings(text: str, expected: datetime, time_known: bool) -> None:
    got = parse_dropoff(text, NOW, KW)
    assert got is not None, text
    assert (got.when, got.time_known) == (expected, time_known)
    assert got.evidence and got.evidence in text


@pytest.mark.parametrize(
    "text",
    [
        "levert 31.02.2023 kl 10",  # no 31 February
        "levert 20.03.2023 kl 10",  # five days after now
        "levert 14.13.2023",
        "Hei, her er pakken",
        "pris kr 12.50",
        "",
    ],
)
def test_impossible_future_or_absent_dates_are_rejected(text: str) -> None:
    assert parse_dropoff(text, NOW, KW) is None


def test_tomorrow_morning_is_tolerated_but_not_later() -> None:
    # clocks and time zones differ: up to a day after `now` is accepted
    assert parse_dropoff("levert 16.03.2023 kl 09:00", NOW, KW) is not None
    assert parse_dropoff("levert 17.03.2023 kl 09:00", NOW, KW) is None


def test_date_nearest_a_dropoff_word_wins() -> None:
    text = "Kjøpt 01.12.2022 hos Elkjøp.\nPakken ble levert på posten 14.03.2023 kl 11:20."
    got = parse_dropoff(text, NOW, KW)
    assert got is not None and got.when == at(14, 11, 20)


def test_time_in_another_sentence_is_not_attached() -> None:
    got = parse_dropoff("Levert 14.03.2023. Butikken stenger kl 18.", NOW, KW)
    assert got is not None
    assert got.when == at(14) and not got.time_known


def test_relative_words_follow_now_and_keep_its_timezone() -> None:
    oslo = timezone(timedelta(hours=1))
    now = datetime(2024, 1, 1, 9, 0, tzinfo=oslo)
    got = parse_dropoff("levert i går kl 23:10", now, KW)
    assert got is not None
    assert got.when == datetime(2023, 12, 31, 23, 10, tzinfo=oslo)


def test_yearless_date_after_now_goes_to_last_year() -> None:
    now = datetime(2023, 1, 5, 12, 0, tzinfo=UTC)
    got = parse_dropoff("levert 30.12 kl 14", now, KW)
    assert got is not None and got.when == datetime(2022, 12, 30, 14, 0, tzinfo=UTC)


def test_dateparser_fallback_for_unforeseen_english() -> None:
    got = parse_dropoff("I posted it on 3/14/2023", NOW, KW)
    assert got is not None and got.source == "dateparser"
    assert got.when.date() == datetime(2023, 3, 14).date()
    hours = parse_dropoff("dropped off 2 hours ago", NOW, KW)
    assert hours is not None and hours.when == at(15, 16) and hours.time_known


def test_dateparser_fallback_only_on_dropoff_sentences() -> None:
    assert parse_dropoff("I bought it on 3/14/2023", NOW, KW) is None
    assert parse_dropoff("I posted it on 3/14/2023", NOW, KW, use_dateparser=False) is None


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_never_in_the_future_and_never_raises(text: str) -> None:
    got = parse_dropoff(text, NOW, KW)
    if got is not None:
        assert got.when <= NOW + timedelta(days=1)
