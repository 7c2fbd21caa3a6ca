"""Text-only claim mails: which ones are answered (forgotten attachment, status question),
the phrase lists in rules/classify.yaml, and the two answering transitions."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest

from mailbot.config import load_settings
from mailbot.core.claim_machine import (
    ClaimState,
    answer_attachment_missing,
    answer_status_question,
    approve,
    ask,
    mark_paid,
    receive_documents,
)
from mailbot.core.errors import RulesError
from mailbot.core.transition import ReplyIntent
from mailbot.ruleset.classify_rules import default_classify_rules, parse_classify_rules
from mailbot.services.context import reply_context
from mailbot.templating.render import Templates
from parsers.mail.intent import text_intent
from tests.unit.claim_factories import cashback, new_claim, promo, receipt, serial_photo, utc

RULES = default_classify_rules().text_intent
SETTINGS = load_settings(environ={})
NOW = utc("2023-01-20 09:00")


@pytest.mark.parametrize(
    "text",
    [
        "Vedlagt kvittering.",  # nb, da
        "Hei!\n\nHer er kvitteringen.\n\nHilsen\nKari",
        "Bifogat kvitto.",
        "Kvittot bifogas.",
        "Kvittering vedhæftet.",
        "Kuitti liitteenä.",
        "Receipt attached.",
        "Please find the receipt enclosed.",
    ],
)
def test_a_mention_of_an_attachment_is_recognised_in_each_language(text: str) -> None:
    assert text_intent(text, RULES).kind == "attachment_missing"


@pytest.mark.parametrize(
    "text",
    [
        "Når får jeg pengene? Jeg sendte kvitteringen for en stund siden.",
        "Hvor langt har kravet mitt kommet?",
        "När får jag pengarna? Jag skickade kvittot för ett tag sedan.",
        "Hvornår får jeg pengene?",
        "Milloin saan rahat? Lähetin kuitin jo jokin aika sitten.",
        "When do I get paid? I sent the receipt a while ago.",
        "Any update on my claim?",
        "Status?",
    ],
)
def test_a_status_question_is_recognised_in_each_language(text: str) -> None:
    assert text_intent(text, RULES).kind == "status_question"


@pytest.mark.parametrize(
    "text, reason",
    [
        ("Thanks!", "no_clear_intent"),
        ("Tusen takk for hjelpen!", "no_clear_intent"),
        ("", "empty_text"),
        # a status word in a statement is not a question
        ("The payment was made by card.", "no_clear_intent"),
        # both at once: which one to answer is a person's call
        ("Vedlagt kvittering. Når får jeg pengene?", "ambiguous_intent"),
        # bank details, changes and complaints go to a person whatever else is said
        ("Kan pengene gå til et annet kontonummer? Når får jeg dem?", "needs_person"),
        ("I want to change my bank account, when will I get paid?", "needs_person"),
        ("Jeg vil klage. Vedlagt er brevet.", "needs_person"),
        ("Når får jeg pengene? " + "Jeg har mye å si om dette. " * 20, "text_too_long"),
    ],
)
def test_anything_unclear_is_left_to_a_person(text: str, reason: str) -> None:
    got = text_intent(text, RULES)
    assert got.kind is None
    assert got.reason == reason


def test_phrases_match_whole_words_or_a_marked_prefix() -> None:
    # "tila" (fi: status) must not fire inside "tilaus" (order)
    assert text_intent("Milloin tilaus?", RULES).kind == "status_question"  # via "milloin"
    assert text_intent("Mikä tilaus?", RULES).kind is None
    # "vedhæft*" covers its endings
    assert text_intent("Se de vedhæftede filer.", RULES).kind == "attachment_missing"


_BASE = """
bounce: {sender_localparts: [mailer-daemon], subject_phrases: [undeliverable]}
auto_reply: {headers: [{name: Auto-Submitted, not_values: ["no"]}], subject_phrases: {}}
"""


def test_the_phrase_lists_are_data_with_located_errors() -> None:
    text = _BASE + (
        "text_intent:\n  max_words: 10\n  attachment_phrases: {en: [herewith]}\n"
        "  status_phrases: {en: [where is my money]}\n"
    )
    rules = parse_classify_rules(text).text_intent
    assert text_intent("Receipt herewith.", rules).kind == "attachment_missing"
    assert text_intent("Receipt attached.", rules).kind is None
    assert text_intent("Where is my money?", rules).kind == "status_question"
    with pytest.raises(RulesError, match=r"classify\.yaml:9.*`\*`"):
        parse_classify_rules(
            _BASE
            + "text_intent:\n  max_words: 10\n  attachment_phrases: {en: [ok]}\n"
            + "  status_phrases:\n    en:\n      - 'st*tus'\n",
            "classify.yaml",
        )
    with pytest.raises(RulesError, match="max_words"):
        parse_classify_rules(
            _BASE + "text_intent: {max_words: 0, attachment_phrases: {}, status_phrases: {}}"
        )
    # no section: nothing text-only is ever answered
    assert text_intent("Receipt attached.", parse_classify_rules(_BASE).text_intent).kind is None


# --- transitions --------------------------------------------------------------------------


def test_a_forgotten_attachment_is_answered_with_what_is_still_needed() -> None:
    claim = new_claim()
    t = answer_attachment_missing(claim, cashback(), NOW, phrase="vedlagt")
    assert t.snapshot == claim and not t.changed
    assert t.kind == "claim.question_answered" and t.reasons == ("attachment_missing",)
    assert t.from_state == t.to_state == "registered"
    assert t.reply is not None and t.reply.template == "attachment_missing"
    assert t.reply.context["missing_documents"] == ["receipt", "serial_photo"]
    # cashback counts no window from a first campaign mail: no date is promised
    assert t.reply.context["deadline"] is None


def test_a_forgotten_attachment_on_an_incomplete_claim_keeps_its_deadline() -> None:
    c = cashback()
    claim = receive_documents(new_claim(), c, [receipt()], utc("2023-01-12 10:00")).snapshot
    assert claim.state is ClaimState.INCOMPLETE
    t = answer_attachment_missing(claim, c, NOW)
    assert t.reply is not None
    assert t.reply.context["missing_documents"] == ["serial_photo"]
    assert t.reply.context["deadline"] == claim.deadline_on is not None
    assert t.snapshot.deadline_on == claim.deadline_on


def test_a_forgotten_attachment_before_a_decision_gives_the_first_mail_window() -> None:
    p = promo()
    claim = new_claim(p, now=utc("2018-04-20 10:00"))
    t = answer_attachment_missing(claim, p, utc("2018-04-22 10:00"))
    assert t.reply is not None
    weeks = p.claim_window.weeks_after_first_mail
    assert weeks is not None and claim.first_campaign_mail_on is not None
    assert t.reply.context["deadline"] == claim.first_campaign_mail_on + timedelta(weeks=weeks)


def test_attached_when_nothing_is_owed_is_recorded_not_answered() -> None:
    c = cashback()
    claim = receive_documents(
        new_claim(), c, [receipt(), serial_photo()], NOW, auto_approve=True
    ).snapshot
    assert claim.state is ClaimState.APPROVED
    t = answer_attachment_missing(claim, c, NOW)
    assert t.reply is None and not t.changed and t.snapshot == claim


def test_a_status_question_on_an_approved_claim_gives_amount_and_payment_day() -> None:
    c = cashback()
    claim = receive_documents(
        new_claim(), c, [receipt(), serial_photo()], NOW, auto_approve=True
    ).snapshot
    later = NOW + timedelta(days=5)
    t = answer_status_question(claim, c, later, phrase="når får jeg")
    assert t.snapshot == claim and not t.changed and t.kind == "claim.question_answered"
    assert t.reply is not None and t.reply.template == "claim_status"
    ctx = t.reply.context
    assert ctx["state"] == "approved"
    assert ctx["payment_days"] == 28
    assert ctx["pay_by"] == c.local_date(NOW) + timedelta(days=28)
    assert ctx["amount"] == claim.payout_amount is not None
    text = _render(t.reply, claim, "nb")
    assert "godkjent" in text and "28 dager" in text and "500 NOK" in text


def test_the_payment_day_runs_from_the_approval_not_the_validation() -> None:
    # validated now, approved by a person three days later: the promise ("within 28
    # days" in the approval mail) runs from the approval, as the desk's queue counts it
    c = cashback()
    validated = receive_documents(
        new_claim(), c, [receipt(), serial_photo()], NOW, auto_approve=False
    ).snapshot
    assert validated.state is ClaimState.VALIDATED
    approved_on = NOW + timedelta(days=3)
    claim = approve(validated, c, approved_on).snapshot
    t = answer_status_question(claim, c, NOW + timedelta(days=5))
    assert t.reply is not None
    assert t.reply.context["pay_by"] == c.local_date(approved_on) + timedelta(days=28)
    assert t.reply.context["pay_by"] == c.pay_by(approved_on)


def test_a_status_question_before_documents_lists_what_is_missing() -> None:
    claim = new_claim()
    t = answer_status_question(claim, cashback(), NOW)
    assert t.reply is not None
    ctx = t.reply.context
    assert ctx["state"] == "registered" and ctx["pay_by"] is None
    assert ctx["missing_documents"] == ["receipt", "serial_photo"]
    text = _render(t.reply, claim, "en")
    assert "waiting for your documents" in text
    assert "serial number" in text
    assert "Once the claim is approved, we pay within 28 days." in text


def test_a_status_question_on_an_incomplete_claim_gives_the_deadline_in_swedish() -> None:
    p = promo()
    claim = new_claim(p, now=utc("2018-04-20 10:00"), language="sv")
    claim = ask(claim, p, ["receipt"], [], utc("2018-04-21 10:00")).snapshot
    t = answer_status_question(claim, p, utc("2018-04-22 10:00"))
    assert t.reply is not None and t.reply.context["deadline"] == claim.deadline_on
    text = _render(t.reply, claim, "sv")
    assert "Status för din ansökan" in text and "senast" in text and "30 dagar" in text


def test_a_status_question_on_a_paid_or_rejected_claim_promises_no_payment() -> None:
    c = cashback()
    approved = receive_documents(
        new_claim(), c, [receipt(), serial_photo()], NOW, auto_approve=True
    ).snapshot
    paid = mark_paid(approved, NOW + timedelta(days=3)).snapshot
    t = answer_status_question(paid, c, NOW + timedelta(days=10))
    assert t.reply is not None and t.reply.context["paid_on"] == c.local_date(paid.paid_at or NOW)
    assert "utbetalt 23. januar 2023" in _render(t.reply, paid, "nb")
    rejected = replace(new_claim(), state=ClaimState.REJECTED)
    t = answer_status_question(rejected, c, NOW)
    assert t.reply is not None
    text = _render(t.reply, rejected, "nb")
    assert "avslått" in text and "betaler" not in text and "utbetalt" not in text


def test_a_claim_in_review_is_described_as_being_checked() -> None:
    claim = replace(new_claim(), state=ClaimState.REVIEW, state_reasons=("shared_receipt",))
    t = answer_status_question(claim, cashback(), NOW)
    assert t.reply is not None
    text = _render(t.reply, claim, "en")
    assert "going through your documents" in text and "shared" not in text


def test_a_campaign_without_payment_terms_promises_no_time() -> None:
    c = replace(cashback(), payment_days=None)
    claim = new_claim()
    t = answer_status_question(claim, c, NOW)
    assert t.reply is not None
    text = _render(t.reply, claim, "en")
    assert "days" not in text


def _render(intent: ReplyIntent, claim: object, lang: str) -> str:
    ctx = reply_context(intent, claim, SETTINGS, {})
    mail = Templates().render(intent.template, lang, ctx)
    assert mail.html is not None
    return mail.subject + "\n" + mail.text


def test_amounts_keep_their_decimal_type() -> None:
    c = cashback()
    claim = receive_documents(
        new_claim(), c, [receipt(), serial_photo()], NOW, auto_approve=True
    ).snapshot
    t = answer_status_question(claim, c, NOW)
    assert t.reply is not None and isinstance(t.reply.context["amount"], Decimal)
