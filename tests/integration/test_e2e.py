"""The whole product as an operator and customers meet it.

A real Dovecot holds the claims mailbox, a real SMTP server (aiosmtpd) receives
the replies, and every step drives the `mailbot` command in a subprocess, the way
an operator or cron would. The clock is fixed with `--now` because the shipped
campaigns (cashback-2022) ran in 2022-2023.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from mailbot.devtools import scenario as sc
from mailbot.devtools.samples import bounce_for
from mailbot.devtools.scenario import BOT, KARI, Operator

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_receipt_mail_is_processed_and_answered_on_both_databases(op_db: Operator) -> None:
    """Every query a claim mail with documents makes (fraud twins included) runs on
    both engines: a PDF and a photo to a registered claim, through Dovecot and SMTP."""
    op = op_db
    code = op.created(replace(sc.KARI_CLAIM, retailer=None))
    op.run("once")
    [confirmation] = op.replies_after(0, 1)
    op.deliver(sc.complete_answer(confirmation, KARI))
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
    code = op.created(sc.KARI_CLAIM)
    assert len(code) == 8 and code.isdigit()
    op.run("once")
    [confirmation] = op.replies_after(0, 1)
    assert code in confirmation.message["Subject"]
    assert confirmation.rcpt_tos == (KARI,)
    assert confirmation.message["Auto-Submitted"] == "auto-replied"

    # 2. a reply with a receipt photo lacking the VAT number (and the serial photo)
    op.deliver(sc.photo_receipt_answer(confirmation))
    op.run("once")
    [missing] = op.replies_after(1, 1)
    text = sc.text_of(missing).lower()
    assert code in missing.message["Subject"]
    assert "org" in text or "mva" in text  # names the VAT / organisation number
    assert "2023" in text  # the deadline date
    assert missing.message["In-Reply-To"]
    claim = op.json("claims", "show", code)
    assert isinstance(claim, dict) and claim["state"] == "incomplete"

    # 3. the customer answers with a good PDF -> approved
    op.deliver(sc.pdf_receipt_answer(missing))
    op.run("once")
    [approved] = op.replies_after(2, 1)
    claim = op.json("claims", "show", code)
    assert isinstance(claim, dict) and claim["state"] == "approved", claim
    assert claim["payout"]["amount"] and claim["payout"]["currency"] == "NOK"
    assert str(claim["payout"]["amount"]).split(".")[0] in sc.text_of(approved).replace(" ", "")

    # 4. an out-of-office reply -> no answer
    op.deliver(sc.out_of_office(approved))
    # 5. the same mail delivered twice -> one answer
    dup = sc.write(KARI, f"Spørsmål om {code}", f"Når kommer pengene for {code}?")
    op.deliver(dup, dup)
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
    code = op.created(sc.ClaimForm(KARI, "Kari", language="nb"))
    op.deliver(
        sc.refused_attachments(
            KARI,
            f"Kvittering {code}",
            "Vedlagt.",
            photo="stort-bilde.jpg",
            archive="dokumenter.zip",
        )
    )
    op.run("once")
    replies = op.sink.wait_for(2, timeout=5)
    refusal = replies[-1]
    text = sc.text_of(refusal)
    assert "stort-bilde.jpg" in text and "dokumenter.zip" in text
    assert code in refusal.message["Subject"]


def test_rma_shipment_notifications(op_db: Operator) -> None:
    op = op_db  # on both engines
    number = op.created(sc.OLA_RMA)
    op.run("once")
    [issued] = op.replies_after(0, 1)
    assert number in issued.message["Subject"]

    # A notice without the tracking number: asked for by name, with the last day.
    op.deliver(sc.shipment_notice(sc.OLA, number, sc.NOTICE_WITHOUT_TRACKING))
    op.run("once")
    [ask] = op.replies_after(1, 1)
    asked = sc.text_of(ask)
    assert "sporingsnummeret" in asked and number in ask.message["Subject"]
    assert json.loads(op.run("rma", "show", number, "--json").stdout)["state"] == "issued"

    # The answer to that mail (its subject carries the RMA#) completes the notice.
    op.deliver(
        sc.answer(
            ask,
            sc.OLA,
            "SV: ",
            f"Sporingsnummer: {sc.TRACKING}\nLevert på posten 21.01.2023 kl. 15:30\n",
        )
    )
    op.now = "2023-01-21T18:00:00+00:00"
    op.run("once")
    [ack] = op.replies_after(2, 1)
    text = sc.text_of(ack)
    assert "1Z999AA10123456784" in text and "UPS" in text and number in ack.message["Subject"]
    rma = op.json("rma", "show", number)
    assert isinstance(rma, dict) and rma["state"] == "shipment_notified"
    assert rma["carrier"] == "UPS"

    # unknown RMA -> polite policy answer
    op.deliver(sc.unknown_rma_notice())
    op.run("once")
    [policy] = op.replies_after(3, 1)
    assert "14" in sc.text_of(policy)


def test_expired_rma_gets_policy_answer(op: Operator) -> None:
    number = op.created(sc.RmaForm(sc.OLA, kind=None, language="en"))
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
        sc.write(
            sc.OLA,
            f"Re: Shipment Notification: RMA# {number}",
            f"Tracking number {sc.TRACKING}, dropped off today at 3pm",
        )
    )
    op.run("once")
    [policy] = op.replies_after(before, 1)
    assert "expired" in sc.text_of(policy).lower()
    assert json.loads(op.run("rma", "show", number, "--json").stdout)["state"] == "expired"
