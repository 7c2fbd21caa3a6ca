"""Every reply the core can ask for renders with the context the adapter builds."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from mailbot import resources
from mailbot.config import load_settings
from mailbot.core import claim_machine as claim_sm
from mailbot.core import rma_machine as rma_sm
from mailbot.core.claim_state import DocumentEvidence
from mailbot.core.receipt_fields import DocumentKind
from mailbot.ruleset.loader import load_ruleset
from mailbot.services.context import reply_context
from mailbot.templating.render import Templates
from tests.unit.claim_factories import unread_photo

RULES = load_ruleset(resources.rules_dir())
SETTINGS = load_settings(environ={})
TEMPLATES = Templates()


def _render(t: object, snapshot: object, language: str) -> str:
    intent = t.reply  # type: ignore[attr-defined]
    assert intent is not None
    mail = TEMPLATES.render(
        intent.template, language, reply_context(intent, snapshot, SETTINGS, {})
    )
    assert mail.subject and mail.text.strip()
    return mail.text


@pytest.mark.parametrize("language", ["nb", "sv", "da", "fi", "en"])
def test_claim_replies_render(language: str) -> None:
    campaign = RULES.campaign("cashback-2022")
    now = datetime(2023, 1, 20, 10, tzinfo=UTC)
    reg = claim_sm.register(
        code="12345674",
        campaign=campaign,
        email="k@example.no",
        name="Kari",
        model="WH-1000XM5",
        now=now,
        language=language,
        purchase_date=date(2022, 12, 12),
    )
    assert "12345674" in _render(reg, reg.snapshot, language)
    refused = DocumentEvidence(
        kind=DocumentKind.OTHER, fields=None, refused="archive", sha256="ab", filename="docs.zip"
    )
    t = claim_sm.receive_documents(reg.snapshot, campaign, [refused], now)
    assert t.reply is not None and t.reply.template == "attachment_refused"
    assert "docs.zip" in _render(t, t.snapshot, language)
    photo = unread_photo("cd")
    t = claim_sm.receive_documents(reg.snapshot, campaign, [photo], now)
    assert t.reply is not None and t.reply.template == "missing_info"
    text = _render(t, t.snapshot, language)
    assert "2023" in text  # the deadline date
    rejected = claim_sm.reject(t.snapshot, ["model_not_eligible"], now)
    assert rejected.reply is not None and rejected.reply.template == "rejected"
    _render(rejected, rejected.snapshot, language)


def test_rma_dates_are_local_days() -> None:
    policy = RULES.returns
    # 23:30 UTC on 19 January is already 20 January in Oslo
    now = datetime(2023, 1, 19, 23, 30, tzinfo=UTC)
    t = rma_sm.issue(
        number="1234567",
        email="o@example.no",
        product="Sonos One",
        policy=policy,
        now=now,
        language="en",
    )
    assert t.reply is not None
    ctx = reply_context(t.reply, t.snapshot, SETTINGS, {})
    assert ctx["issued_on"] == date(2023, 1, 20)
    assert ctx["valid_days"] == 14
    assert ctx["valid_until"] == date(2023, 2, 3)
    text = _render(t, t.snapshot, "en")
    assert "14 days" in text


@pytest.mark.parametrize("language", ["nb", "sv", "da", "fi", "en"])
def test_rma_notice_without_tracking_names_what_is_missing_and_the_last_day(
    language: str,
) -> None:
    now = datetime(2023, 1, 20, 10, tzinfo=UTC)
    issued = rma_sm.issue(
        number="1234567",
        email="o@example.no",
        product="Sonos One",
        policy=RULES.returns,
        now=now,
        language=language,
    ).snapshot
    t = rma_sm.incomplete_notice(issued, ("tracking_number", "dropoff_time"), now)
    text = _render(t, t.snapshot, language)
    words = TEMPLATES.words(language)["fields"]
    assert words["tracking_number"] in text and words["dropoff_time"] in text
    assert "RMA# 1234567" in text
    assert "2023" in text  # the last day the original may be sent (3 February)
