"""classify: bounces (DSN, non-standard, heuristic), auto-replies, OOO subjects, humans, rules."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbot.core.errors import RulesError
from mailbot.core.mail import MailKind
from mailbot.ruleset.classify_rules import (
    default_classify_rules,
    load_classify_rules,
    parse_classify_rules,
)
from parsers.mail.classify import classify
from parsers.mail.parse import parse_email


def run(raw: bytes):  # type: ignore[no-untyped-def]
    return classify(parse_email(raw), raw)


def human_mail(**headers: str) -> bytes:
    m = EmailMessage()
    m["From"] = headers.pop("From", "Kari Nordmann <kari@example.no>")
    m["To"] = "kampanje@example.com"
    m["Subject"] = headers.pop("Subject", "Kvittering for Sonos One")
    m["Message-ID"] = "<h1@example.no>"
    for k, v in headers.items():
        m[k.replace("_", "-")] = v
    m.set_content("Hei, her er kvitteringen.")
    return m.as_bytes()


def dsn(action: str = "failed", status: str = "5.1.1", extra_headers: str = "") -> bytes:
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.com>\r\n"
        "To: kampanje@example.com\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "Message-ID: <dsn1@mx.example.com>\r\n"
        f"{extra_headers}"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.com\r\n\r\n"
        "Final-Recipient: rfc822; Ola.Nordmann@Example.NO\r\n"
        f"Action: {action}\r\nStatus: {status}\r\n\r\n"
        "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        "From: kampanje@example.com\r\nTo: ola.nordmann@example.no\r\n"
        "Message-ID: <reply-42@mailbot.example.com>\r\nSubject: Registrering 12345674\r\n\r\n"
        "--B--\r\n"
    ).encode()


# --- bounces ----------------------------------------------------------------


def test_dsn_bounce_names_recipient_and_original_message_id() -> None:
    c = run(dsn())
    assert c.kind is MailKind.BOUNCE
    assert c.failed_recipients == ("ola.nordmann@example.no",)
    assert c.bounced_message_id == "<reply-42@mailbot.example.com>"
    assert not c.temporary
    assert "DSN" in c.reason


def test_bounce_checked_before_auto_submitted() -> None:
    c = run(dsn(extra_headers="Auto-Submitted: auto-replied\r\n"))
    assert c.kind is MailKind.BOUNCE


def test_delayed_dsn_is_a_temporary_bounce() -> None:
    c = run(dsn(action="delayed", status="4.4.7"))
    assert c.kind is MailKind.BOUNCE and c.temporary
    assert c.failed_recipients == ("ola.nordmann@example.no",)


def test_dsn_with_broken_boundary_still_names_recipient() -> None:
    raw = dsn().replace(b'boundary="B"', b'boundary="WRONG"')
    c = run(raw)
    assert c.kind is MailKind.BOUNCE
    assert c.failed_recipients == ("ola.nordmann@example.no",)


EXIM = (
    b"From: Mail Delivery System <Mailer-Daemon@mx.example.com>\r\n"
    b"To: kampanje@example.com\r\nSubject: Mail delivery failed: returning message to sender"
    b"\r\nX-Failed-Recipients: kari@example.no\r\nAuto-Submitted: auto-replied\r\n\r\n"
    b"This message was created automatically by mail delivery software.\r\n"
)
QMAIL = (
    b"From: MAILER-DAEMON@mx.example.net\r\nTo: kampanje@example.com\r\n"
    b"Subject: failure notice\r\n\r\n"
    b"Hi. This is the qmail-send program at mx.example.net.\r\n"
    b"I'm afraid I wasn't able to deliver your message to the following addresses.\r\n"
    b"This is a permanent error; I've given up. Sorry it didn't work out.\r\n\r\n"
    b"<lisa@example.se>:\r\nSorry, no mailbox here by that name. (#5.1.1)\r\n\r\n"
    b"--- Below this line is a copy of the message.\r\n\r\n"
    b"Message-ID: <reply-7@mailbot.example.com>\r\nSubject: hei\r\n"
)
GERMAN = (
    b"From: postmaster@firma.example.de\r\nTo: kampanje@example.com\r\n"
    b"Subject: Unzustellbar: Ihre Registrierung\r\n\r\n"
    b"Die Nachricht konnte nicht zugestellt werden an: hans@firma.example.de\r\n"
    b"Bei Fragen: postmaster@firma.example.de\r\n"
)


@pytest.mark.parametrize(
    ("raw", "recipient", "bounced"),
    [
        pytest.param(EXIM, "kari@example.no", None, id="exim_x_failed_recipients"),
        pytest.param(QMAIL, "lisa@example.se", "<reply-7@mailbot.example.com>", id="qmail_flufl"),
        pytest.param(GERMAN, "hans@firma.example.de", None, id="heuristic_german_text"),
    ],
)
def test_bounce_without_a_dsn_names_the_recipient(
    raw: bytes, recipient: str, bounced: str | None
) -> None:
    """Non-standard bounces (an Exim header, qmail via flufl, words in German); the
    bounced Message-ID where the bounce quotes it."""
    c = run(raw)
    assert c.kind is MailKind.BOUNCE
    assert c.failed_recipients == (recipient,)
    if bounced is not None:
        assert c.bounced_message_id == bounced


def test_arf_report_is_not_a_bounce() -> None:
    raw = (
        b"From: abuse@isp.example\r\nTo: kampanje@example.com\r\nSubject: complaint\r\n"
        b'Content-Type: multipart/report; report-type=feedback-report; boundary="F"\r\n\r\n'
        b"--F\r\nContent-Type: text/plain\r\n\r\nA complaint.\r\n"
        b"--F\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\n\r\n--F--\r\n"
    )
    c = run(raw)
    assert c.kind is MailKind.AUTO_REPLY and "ARF" in c.reason


# --- auto-replies -------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("Auto-Submitted", "auto-replied"),
        ("Auto-Submitted", "auto-generated"),
        ("X-Autoreply", "yes"),
        ("X-Autorespond", "Kari is away"),
        ("Precedence", "auto_reply"),
        ("Precedence", "bulk"),
        ("Precedence", "junk"),
        ("Precedence", "list"),
        ("List-Id", "<kunder.example.no>"),
        ("Return-Path", "<>"),
    ],
)
def test_auto_reply_headers(header: str, value: str) -> None:
    c = run(human_mail(**{header: value}))
    assert c.kind is MailKind.AUTO_REPLY
    assert header in c.reason


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("Auto-Submitted", "no"),
        ("Auto-Submitted", " No "),
        ("Precedence", "first-class"),
        ("Return-Path", "<kari@example.no>"),
        ("X-Auto-Response-Suppress", "All"),
    ],
)
def test_headers_that_do_not_make_an_auto_reply(header: str, value: str) -> None:
    assert run(human_mail(**{header: value})).kind is MailKind.HUMAN


@pytest.mark.parametrize(
    "subject",
    [
        "Out of Office: Kvittering",
        "Automatic reply: Registrering 12345674",
        "Auto reply: hi",
        "Autosvar: Kvittering",
        "Automatisk svar: Re: 12345674",
        "Fraværende: Re: Kampanje",
        "Ikke til stede til 20. mars",
        "Frånvarande: Kvitto",
        "Frånvaro – åter 3 april",
        "Automatiskt svar: Kvitto",
        "Poissa: Kuitti",
        "Lomalla 20.3. asti",
        "Automaattinen vastaus: kuitti",
        "Abwesenheitsnotiz: Ihre Anfrage",
        "Automatische Antwort: Registrierung",
    ],
)
def test_out_of_office_subjects(subject: str) -> None:
    c = run(human_mail(Subject=subject))
    assert c.kind is MailKind.AUTO_REPLY, c.reason
    assert "out-of-office" in c.reason


def test_ooo_subject_encoded_in_latin1() -> None:
    raw = (
        b"From: a@example.no\r\nTo: k@example.com\r\n"
        b"Subject: =?ISO-8859-1?Q?Frav=E6rende=3A_Re=3A_Kampanje?=\r\n\r\nJeg er borte.\r\n"
    )
    assert run(raw).kind is MailKind.AUTO_REPLY


@pytest.mark.parametrize(
    "subject",
    [
        "Kvittering for Sonos One",
        "Re: Registreringskode 12345674",
        "SV: Kvitto bifogat",
        "VS: Kuitti liitteenä",
        "Takk for hjelpen",
        "Shipment Notification: RMA# 123456",
        "Reply about my office chair",
        "Kuitti ostoksesta",
    ],
)
def test_humans(subject: str) -> None:
    c = run(human_mail(Subject=subject))
    assert c.kind is MailKind.HUMAN, c.reason


def test_human_quoting_a_bounce_phrase_is_still_human() -> None:
    assert run(human_mail(Subject="Re: Undeliverable? I got your mail fine")).kind is (
        MailKind.HUMAN
    )


# --- rules file -------------------------------------------------------------


def test_builtin_rules_load() -> None:
    rules = default_classify_rules()
    assert rules.auto_reply_headers and rules.ooo_subject_phrases
    assert {lang for lang, _ in rules.ooo_subject_phrases} >= {"en", "nb", "sv", "da", "fi", "de"}


_MIN_RULES = """
bounce:
  sender_localparts: [mailer-daemon]
  subject_phrases: [undeliverable]
auto_reply:
  headers:
    - {name: Auto-Submitted, not_values: ["no"]}
  subject_phrases:
    nb: [på hytta]
"""


def test_custom_rules_change_the_result() -> None:
    rules = parse_classify_rules(_MIN_RULES)
    raw = human_mail(Subject="Er på hytta til mandag")
    assert classify(parse_email(raw), raw).kind is MailKind.HUMAN
    c = classify(parse_email(raw), raw, rules)
    assert c.kind is MailKind.AUTO_REPLY and "på hytta" in c.reason
    # a rule set without Precedence: bulk mail counts as human
    bulk = human_mail(Precedence="bulk")
    assert classify(parse_email(bulk), bulk, rules).kind is MailKind.HUMAN


def test_rule_errors_name_file_and_line(tmp_path: Path) -> None:
    bad = _MIN_RULES.replace(
        '{name: Auto-Submitted, not_values: ["no"]}',
        "{name: Auto-Submitted, any: true, values: [x]}",
    )
    p = tmp_path / "classify.yaml"
    p.write_text(bad, encoding="utf-8")
    with pytest.raises(RulesError) as err:
        load_classify_rules(p)
    assert str(p) in str(err.value) and ":7:" in str(err.value)
    p.write_text(_MIN_RULES.replace("subject_phrases: [undeliverable]", "subject_phrase: [x]"))
    with pytest.raises(RulesError) as err2:
        load_classify_rules(p)
    # the missing key is reported at the mapping that lacks it (line 3)
    assert ":3:" in str(err2.value) and "subject_phrases" in str(err2.value)


# --- never raises -------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=1500))
def test_fuzz_classify_never_raises(raw: bytes) -> None:
    c = classify(parse_email(raw), raw)
    assert c.kind in set(MailKind) and c.reason
