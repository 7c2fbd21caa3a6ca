"""The whole product as an operator and customers meet it.

A real Dovecot holds the claims mailbox, a real SMTP server (aiosmtpd) receives
the replies, and every step drives the `mailbot` command in a subprocess, the way
an operator or cron would. The clock is fixed with `--now` because the shipped
campaigns (cashback-2022) ran in 2022-2023.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from imapclient import IMAPClient

from mailbot.devtools.dovecot import LocalDovecot
from mailbot.devtools.samples import (
    bounce_for,
    customer_mail,
    good_receipt_pdf,
    receipt_photo_without_vat,
    serial_photo,
)
from mailbot.devtools.smtpsink import Captured, SmtpSink

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BOT = "claims@brand.example"
KARI = "kari.nordmann@example.no"


class Operator:
    """Runs `mailbot` like a person at a shell, with a config file and a fixed clock."""

    def __init__(
        self, tmp: Path, dovecot: LocalDovecot, sink: SmtpSink, db_url: str | None = None
    ) -> None:
        self.tmp = tmp
        self.dovecot = dovecot
        self.sink = sink
        self.config = tmp / "mailbot.toml"
        self.config.write_text(
            f"""
[imap]
host = "127.0.0.1"
port = {dovecot.port}
tls = "none"
username = "claims"
password = "secret"
idle = false
poll_seconds = 1
[smtp]
host = "127.0.0.1"
port = {sink.port}
tls = "none"
from_address = "{BOT}"
rate_limit_per_hour = 50
[paths]
data_dir = "{tmp / "data"}"
[log]
format = "text"
level = "WARNING"
"""
            + (f'[database]\nurl = "{db_url}"\n' if db_url else "")
        )
        self.now = "2023-01-20T10:00:00+00:00"

    def run(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "mailbot",
                "--config",
                str(self.config),
                "--now",
                self.now,
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=self.tmp,
        )
        if ok:
            assert proc.returncode == 0, f"mailbot {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
        return proc

    def json(self, *args: str) -> object:
        return json.loads(self.run(*args, "--json").stdout)

    def deliver(self, raw: bytes) -> None:
        client = IMAPClient("127.0.0.1", port=self.dovecot.port, ssl=False, timeout=10)
        client.login("claims", "secret")
        client.append("INBOX", raw)
        client.logout()

    def replies_after(self, count_before: int, expect: int) -> list[Captured]:
        got = self.sink.wait_for(count_before + expect, timeout=5)
        return got[count_before:]


def _text(mail: Captured) -> str:
    msg = mail.message
    body = msg.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


@pytest.fixture
def op(tmp_path: Path, dovecot: LocalDovecot, smtp_sink: SmtpSink) -> Operator:
    operator = Operator(tmp_path, dovecot, smtp_sink)
    operator.run("db", "upgrade")
    return operator


@pytest.fixture
def op_db(tmp_path: Path, dovecot: LocalDovecot, smtp_sink: SmtpSink, db_url: str) -> Operator:
    """As `op`, on SQLite and on PostgreSQL."""
    operator = Operator(tmp_path, dovecot, smtp_sink, db_url)
    operator.run("db", "upgrade")
    return operator


def test_receipt_mail_is_processed_and_answered_on_both_databases(op_db: Operator) -> None:
    """Every query a claim mail with documents makes (fraud twins included) runs on
    both engines: a PDF and a photo to a registered claim, through Dovecot and SMTP."""
    op = op_db
    out = op.run(
        "claims",
        "register",
        "--campaign",
        "cashback-2022",
        "--email",
        KARI,
        "--name",
        "Kari Nordmann",
        "--model",
        "WH-1000XM5",
        "--serial",
        "5123456",
        "--purchase-date",
        "2022-12-12",
        "--country",
        "NO",
        "--language",
        "nb",
    ).stdout
    code = out.strip().splitlines()[-1]
    op.run("once")
    [confirmation] = op.replies_after(0, 1)
    op.deliver(
        customer_mail(
            sender=KARI,
            to=BOT,
            subject=f"Re: {confirmation.message['Subject']}",
            body="Her er kvitteringen og serienummeret.",
            in_reply_to=confirmation.message["Message-ID"],
            attachments=[
                ("kvittering.pdf", "application/pdf", good_receipt_pdf()),
                ("serienummer.jpg", "image/jpeg", serial_photo()),
            ],
        )
    )
    op.run("once")
    [answer] = op.replies_after(1, 1)
    assert code in answer.message["Subject"]
    assert answer.message["In-Reply-To"]  # answers the customer's mail
    stats = op.json("messages", "stats")
    assert isinstance(stats, dict)
    assert stats["total"] == 1 and stats["by_status"]["processed"] == 1, stats
    claim = op.json("claims", "show", code)
    assert isinstance(claim, dict) and claim["state"] != "registered", claim
    assert {d["filename"] for d in claim["documents"]} == {"kvittering.pdf", "serienummer.jpg"}

    # a bounce of that answer flags the claim's address (the outbox lookup by Message-ID)
    op.deliver(bounce_for(answer.message["Message-ID"], KARI, to=BOT, reporting="mx.example.no"))
    op.run("once")
    claim = op.json("claims", "show", code)
    assert isinstance(claim, dict) and claim["address_undeliverable"] is True


def test_cashback_conversation(op: Operator) -> None:
    # 1. registration -> confirmation with the code in the subject
    out = op.run(
        "claims",
        "register",
        "--campaign",
        "cashback-2022",
        "--email",
        KARI,
        "--name",
        "Kari Nordmann",
        "--model",
        "WH-1000XM5",
        "--serial",
        "5123456",
        "--purchase-date",
        "2022-12-12",
        "--retailer",
        "Elkjøp",
        "--country",
        "NO",
        "--language",
        "nb",
    ).stdout
    code = out.strip().splitlines()[-1]
    assert len(code) == 8 and code.isdigit()
    op.run("once")
    [confirmation] = op.replies_after(0, 1)
    assert code in confirmation.message["Subject"]
    assert confirmation.rcpt_tos == (KARI,)
    assert confirmation.message["Auto-Submitted"] == "auto-replied"

    # 2. a reply with a receipt photo lacking the VAT number (and the serial photo)
    op.deliver(
        customer_mail(
            sender=KARI,
            to=BOT,
            subject=f"Re: {confirmation.message['Subject']}",
            body="Hei, her er kvitteringen og serienummeret.\n\nHilsen Kari",
            in_reply_to=confirmation.message["Message-ID"],
            attachments=[
                ("kvittering.jpg", "image/jpeg", receipt_photo_without_vat()),
                ("serienummer.jpg", "image/jpeg", serial_photo()),
            ],
        )
    )
    op.run("once")
    [missing] = op.replies_after(1, 1)
    text = _text(missing).lower()
    assert code in missing.message["Subject"]
    assert "org" in text or "mva" in text  # names the VAT / organisation number
    assert "2023" in text  # the deadline date
    assert missing.message["In-Reply-To"]
    claim = op.json("claims", "show", code)
    assert isinstance(claim, dict) and claim["state"] == "incomplete"

    # 3. the customer answers with a good PDF -> approved
    op.deliver(
        customer_mail(
            sender=KARI,
            to=BOT,
            subject=f"SV: {missing.message['Subject']}",
            body="Her er en bedre kvittering.",
            in_reply_to=missing.message["Message-ID"],
            attachments=[("kvittering.pdf", "application/pdf", good_receipt_pdf())],
        )
    )
    op.run("once")
    [approved] = op.replies_after(2, 1)
    claim = op.json("claims", "show", code)
    assert isinstance(claim, dict) and claim["state"] == "approved", claim
    assert claim["payout"]["amount"] and claim["payout"]["currency"] == "NOK"
    assert str(claim["payout"]["amount"]).split(".")[0] in _text(approved).replace(" ", "")

    # 4. an out-of-office reply -> no answer
    op.deliver(
        customer_mail(
            sender=KARI,
            to=BOT,
            subject=f"Automatisk svar: {approved.message['Subject']}",
            body="Jeg er på ferie til 1. februar.",
            in_reply_to=approved.message["Message-ID"],
            headers={"Auto-Submitted": "auto-replied"},
        )
    )
    # 5. the same mail delivered twice -> one answer
    dup = customer_mail(
        sender=KARI, to=BOT, subject=f"Spørsmål om {code}", body=f"Når kommer pengene for {code}?"
    )
    op.deliver(dup)
    op.deliver(dup)
    op.run("once")
    later = op.replies_after(3, 1)
    assert len(later) <= 1
    op.sink.wait_for(5, timeout=2)
    assert len(op.sink.messages) <= 4, [m.message["Subject"] for m in op.sink.messages]

    # 6. a bounce of one of our mails -> the claim's address is flagged
    op.deliver(bounce_for(approved.message["Message-ID"], KARI, to=BOT, reporting="mx.example.no"))
    op.run("once")
    claim = op.json("claims", "show", code)
    assert isinstance(claim, dict) and claim["address_undeliverable"] is True

    stats = op.json("messages", "stats")
    assert isinstance(stats, dict)
    assert stats["by_status"].get("failed", 0) == 0
    assert stats["total"] == 6


def test_refused_attachments_are_named(op_db: Operator) -> None:
    op = op_db  # on both engines
    out = op.run(
        "claims",
        "register",
        "--campaign",
        "cashback-2022",
        "--email",
        KARI,
        "--name",
        "Kari",
        "--model",
        "WH-1000XM5",
        "--purchase-date",
        "2022-12-12",
        "--language",
        "nb",
    ).stdout
    code = out.strip().splitlines()[-1]
    big = b"\xff\xd8\xff\xe0" + b"\0" * (7 * 1024 * 1024)
    zipped = b"PK\x03\x04" + b"\0" * 200
    op.deliver(
        customer_mail(
            sender=KARI,
            to=BOT,
            subject=f"Kvittering {code}",
            body="Vedlagt.",
            attachments=[
                ("stort-bilde.jpg", "image/jpeg", big),
                ("dokumenter.zip", "application/zip", zipped),
            ],
        )
    )
    op.run("once")
    replies = op.sink.wait_for(2, timeout=5)
    refusal = replies[-1]
    text = _text(refusal)
    assert "stort-bilde.jpg" in text and "dokumenter.zip" in text
    assert code in refusal.message["Subject"]


def test_rma_shipment_notifications(op_db: Operator) -> None:
    op = op_db  # on both engines
    number = (
        op.run(
            "rma",
            "issue",
            "--email",
            "ola@example.no",
            "--product",
            "Sonos One",
            "--kind",
            "warranty",
            "--language",
            "nb",
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    op.run("once")
    [issued] = op.replies_after(0, 1)
    assert number in issued.message["Subject"]

    # A notice without the tracking number: asked for by name, with the last day.
    op.deliver(
        customer_mail(
            sender="ola@example.no",
            to=BOT,
            subject=f"Shipment Notification: RMA# {number}",
            body="Hei, nå har jeg sendt pakken.\n",
        )
    )
    op.run("once")
    [ask] = op.replies_after(1, 1)
    asked = _text(ask)
    assert "sporingsnummeret" in asked and number in ask.message["Subject"]
    assert json.loads(op.run("rma", "show", number, "--json").stdout)["state"] == "issued"

    # The answer to that mail (its subject carries the RMA#) completes the notice.
    op.deliver(
        customer_mail(
            sender="ola@example.no",
            to=BOT,
            subject=f"SV: {ask.message['Subject']}",
            body="Sporingsnummer: 1Z999AA10123456784\nLevert på posten 21.01.2023 kl. 15:30\n",
            in_reply_to=ask.message["Message-ID"],
        )
    )
    op.now = "2023-01-21T18:00:00+00:00"
    op.run("once")
    [ack] = op.replies_after(2, 1)
    text = _text(ack)
    assert "1Z999AA10123456784" in text and "UPS" in text and number in ack.message["Subject"]
    rma = op.json("rma", "show", number)
    assert isinstance(rma, dict) and rma["state"] == "shipment_notified"
    assert rma["carrier"] == "UPS"

    # unknown RMA -> polite policy answer
    op.deliver(
        customer_mail(
            sender="per@example.no",
            to=BOT,
            subject="shipment notification rma #7654321",
            body="Tracking 1Z999AA10123456784",
        )
    )
    op.run("once")
    [policy] = op.replies_after(3, 1)
    assert "14" in _text(policy)


def test_expired_rma_gets_policy_answer(op: Operator) -> None:
    number = (
        op.run(
            "rma",
            "issue",
            "--email",
            "ola@example.no",
            "--product",
            "Sonos One",
            "--language",
            "en",
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    op.run("once")
    op.now = "2023-02-10T10:00:00+00:00"
    op.run("sweep")
    rma = op.json("rma", "show", number)
    assert isinstance(rma, dict) and rma["state"] == "expired"
    op.run("once")  # delivers the expiry mail the sweep queued
    [expired] = op.replies_after(1, 1)
    assert number in expired.message["Subject"]
    before = 2
    op.deliver(
        customer_mail(
            sender="ola@example.no",
            to=BOT,
            subject=f"Re: Shipment Notification: RMA# {number}",
            body="Tracking number 1Z999AA10123456784, dropped off today at 3pm",
        )
    )
    op.run("once")
    [policy] = op.replies_after(before, 1)
    assert "expired" in _text(policy).lower()
    assert json.loads(op.run("rma", "show", number, "--json").stdout)["state"] == "expired"
