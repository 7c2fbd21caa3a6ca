"""The test servers themselves work: Dovecot speaks IMAP (and restarts), the sink captures mail."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

from imapclient import IMAPClient

from mailbot.devtools.dovecot import LocalDovecot
from mailbot.devtools.smtpsink import SmtpSink


def test_dovecot_login_append_and_restart(dovecot: LocalDovecot) -> None:
    client = IMAPClient("127.0.0.1", port=dovecot.port, ssl=False, timeout=10)
    client.login("claims", "secret")
    assert b"IDLE" in client.capabilities()
    client.append("INBOX", b"Subject: hi\r\nMessage-ID: <a@test>\r\n\r\nbody\r\n")
    assert client.select_folder("INBOX")[b"EXISTS"] == 1
    client.logout()
    dovecot.restart()
    client = IMAPClient("127.0.0.1", port=dovecot.port, ssl=False, timeout=10)
    client.login("claims", "secret")
    assert client.select_folder("INBOX")[b"EXISTS"] == 1
    client.logout()


def test_dovecot_rejects_wrong_password(dovecot: LocalDovecot) -> None:
    client = IMAPClient("127.0.0.1", port=dovecot.port, ssl=False, timeout=10)
    try:
        client.login("claims", "wrong")
    except Exception as exc:
        assert "fail" in str(exc).lower() or "auth" in str(exc).lower()
    else:  # pragma: no cover - a failure of the fixture
        raise AssertionError("login with a wrong password succeeded")


def test_smtp_sink_captures_and_can_fail(smtp_sink: SmtpSink) -> None:
    msg = EmailMessage()
    msg["From"] = "bot@example.com"
    msg["To"] = "kunde@example.no"
    msg["Subject"] = "Hei på deg"
    msg.set_content("Æ ø å")
    smtp_sink.fail_next(1)
    with smtplib.SMTP("127.0.0.1", smtp_sink.port, timeout=10) as smtp:
        try:
            smtp.send_message(msg)
        except smtplib.SMTPDataError as exc:
            assert exc.smtp_code == 451
        else:  # pragma: no cover
            raise AssertionError("the injected failure did not happen")
        smtp.send_message(msg)
    got = smtp_sink.wait_for(1)
    assert len(got) == 1
    assert got[0].message["Subject"] == "Hei på deg"
    assert got[0].rcpt_tos == ("kunde@example.no",)
