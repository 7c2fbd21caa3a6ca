"""Campaign and returns-policy rules: the shipped YAML loads with the seeds' facts, and
mistakes are reported with the file and the line."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from mailbot.core.campaign import PayoutKind
from mailbot.core.errors import RulesError
from mailbot.resources import rules_dir
from mailbot.ruleset.campaigns import (
    load_campaigns,
    load_returns_policy,
    parse_campaign,
    parse_returns_policy,
)

CASHBACK = rules_dir() / "campaigns" / "cashback-2022.yaml"


def test_shipped_campaigns_have_the_ids_the_demo_uses() -> None:
    campaigns = load_campaigns()
    assert set(campaigns) == {"cashback-2022", "promo-20pct"}


def test_cashback_facts_from_the_faq() -> None:
    c = load_campaigns()["cashback-2022"]
    assert (c.purchase_start, c.purchase_end) == (date(2022, 11, 1), date(2023, 1, 15))
    w = c.claim_window
    assert w.opens_after_purchase_days == 30
    assert w.closes_on == date(2023, 3, 15)
    assert w.last_day() == date(2023, 3, 16)
    assert c.required_documents == ("receipt", "serial_photo")
    assert c.required_fields == ("retailer", "purchase_date", "product", "vat_number")
    assert c.file_types == ("jpg", "jpeg", "png", "pdf")
    assert c.max_file_bytes == 5 * 1024 * 1024
    assert c.reply_days == 14
    assert c.language == "nb"
    assert c.payout.kind is PayoutKind.FIXED
    assert c.payout.fixed_amount("WH-1000XM5", "NOK") == Decimal("500")
    assert c.model("wh 1000 xm5") is not None
    # The deadline instant is the end of the local (Oslo) day.
    assert c.end_of_day(date(2023, 3, 16)).isoformat() == "2023-03-17T00:00:00+01:00"


def test_promo_caps_and_terms() -> None:
    c = load_campaigns()["promo-20pct"]
    caps = dict(c.payout.caps)
    assert caps == {
        "USD": 200, "CAD": 250, "AUD": 260, "GBP": 160, "EUR": 200,
        "SEK": 1650, "DKK": 1250, "NOK": 1620, "CHF": 200,
    }  # fmt: skip
    assert c.payout.percent == Decimal(20)
    assert c.claim_window.weeks_after_first_mail == 6
    assert c.reply_days == 7
    assert c.companies_allowed is False
    assert len(c.countries) == 17 and "NO" in c.countries and "SE" in c.countries
    for m in ("Sonos One", "Play:1", "PLAY 3", "play5", "Connect:Amp", "Väggmonterad Playbar"):
        assert c.model(m) is not None, m
    assert c.model("Sonos Arc") is None
    assert c.language == "sv"


def test_returns_policy() -> None:
    p = load_returns_policy()
    assert (p.id, p.valid_days, p.expires_on_day) == ("returns", 14, 15)
    assert p.advance_replacement and p.bill_if_not_returned
    issued = datetime.fromisoformat("2024-03-01T10:00:00+01:00")
    # Valid through 15 March (issue day + 14), expired from the start of 16 March.
    assert p.expires_at(issued).isoformat() == "2024-03-16T00:00:00+01:00"


def _text() -> str:
    return CASHBACK.read_text(encoding="utf-8")


def _line_of(text: str, needle: str) -> int:
    for i, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return i
    raise AssertionError(needle)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("  start: 2022-11-01", "  start: 01.11.2022", "ISO date"),
        ("  start: 2022-11-01", "  start: 2022-02-30", "ISO date"),
        ("reply_days: 14", "reply_days: fourteen", "reply_days"),
        ("reply_days: 14", "reply_days: 14\nreply_dayz: 3", "reply_dayz"),
        ("  end: 2023-01-15", "  end: 2022-10-01", "start is after end"),
        ("  accept_until: 2023-03-16", "  accept_until: 2023-03-14", "before closes_on"),
        ("timezone: Europe/Oslo", "timezone: Europe/Bergen", "unknown time zone"),
        ("    WH-1000XM5: {NOK: 500}", "    WH-1000XM5: {SEK: 500}", "not in currencies"),
        ("    WH-1000XM5: {NOK: 500}", "    WH-9000: {NOK: 500}", "not a model"),
        ("    aliases: [WF1000XM4]", "    aliases: [WH1000XM5]", "also a name of"),
        ("required_fields: [retailer,", "required_fields: [shop,", "not one of"),
        ("countries: [NO]", "countries: [Norway]", "ISO 3166"),
        ("language: nb", "language: klingon", "language"),
    ],
)
def test_mistakes_name_file_and_line(old: str, new: str, message: str) -> None:
    text = _text()
    assert old in text
    bad = text.replace(old, new, 1)
    expected_line = _line_of(bad, new.splitlines()[-1])
    with pytest.raises(RulesError) as exc:
        parse_campaign(bad, "cashback.yaml")
    assert message in str(exc.value)
    assert exc.value.path == "cashback.yaml"
    assert exc.value.line == expected_line, str(exc.value)


def test_yaml_syntax_error_has_line() -> None:
    with pytest.raises(RulesError) as exc:
        parse_campaign("id: x\nname: [unclosed\nlanguage: nb\n", "x.yaml")
    assert exc.value.path == "x.yaml" and exc.value.line is not None


def test_percentage_needs_a_cap_per_currency() -> None:
    text = (rules_dir() / "campaigns" / "promo-20pct.yaml").read_text(encoding="utf-8")
    bad = text.replace(", CHF: 200}", "}")
    with pytest.raises(RulesError, match="no cap for CHF"):
        parse_campaign(bad, "promo.yaml")


def test_returns_policy_day_15_rule() -> None:
    text = (rules_dir() / "campaigns" / "returns.yaml").read_text(encoding="utf-8")
    bad = text.replace("expires_on_day: 15", "expires_on_day: 14")
    with pytest.raises(RulesError) as exc:
        parse_returns_policy(bad, "returns.yaml")
    assert exc.value.line == _line_of(bad, "expires_on_day: 14")


def test_load_from_a_directory_skips_returns_and_rejects_duplicate_ids(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(_text(), encoding="utf-8")
    (tmp_path / "returns.yaml").write_text(
        (rules_dir() / "campaigns" / "returns.yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    assert list(load_campaigns(tmp_path)) == ["cashback-2022"]
    (tmp_path / "b.yaml").write_text(_text(), encoding="utf-8")
    with pytest.raises(RulesError, match="already defined") as exc:
        load_campaigns(tmp_path)
    assert exc.value.path is not None and exc.value.path.endswith("b.yaml")
    assert load_returns_policy(tmp_path / "returns.yaml").id == "returns"
    with pytest.raises(RulesError, match="not found"):
        load_returns_policy(tmp_path / "nope.yaml")


def test_rules_version_follows_the_content() -> None:
    c = load_campaigns()["cashback-2022"]
    assert len(c.version) == 12
    assert parse_campaign(_text(), "x.yaml").version == c.version
    changed = _text().replace("reply_days: 14", "reply_days: 15")
    assert parse_campaign(changed, "x.yaml").version != c.version
    assert load_returns_policy().version
