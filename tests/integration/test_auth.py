"""Mail that is not the claimant's never moves a claim or an RMA by itself.

End to end against Dovecot and aiosmtpd through the `mailbot` command: a forged
From (DMARC failed, per the Authentication-Results header the receiving server
wrote), a stranger answering in the confirmation's thread, a code sent from
another address, a shipment notice from someone other than the RMA's holder.
Each is recorded on the claim or RMA for a person, the state stays, and nobody
gets a mail because of it; the claimant's own mail afterwards still works.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from mailbot.devtools import scenario as sc
from mailbot.devtools.samples import customer_mail, good_receipt_pdf, serial_photo
from mailbot.devtools.scenario import BOT, KARI, Operator

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STRANGER = "mallory@evil.example"
OURS = "mx.brand.example"
DMARC_FAIL = (
    f"{OURS}; spf=fail smtp.mailfrom=evil.example; dmarc=fail (p=reject) header.from=example.no"
)
DMARC_PASS = f"{OURS}; dkim=pass header.d=example.no; dmarc=pass header.from=example.no"
FILES = [
    ("kvittering.pdf", "application/pdf", good_receipt_pdf()),
    ("serienummer.jpg", "image/jpeg", serial_photo()),
]


def kari_sends_files(body: str, dmarc: str, **thread: Any) -> bytes:
    """Kari's mail with the receipt and the serial photo, under our server's DMARC
    verdict (`Authentication-Results`)."""
    return customer_mail(
        sender=KARI,
        to=BOT,
        body=body,
        attachments=FILES,
        headers={"Authentication-Results": dmarc},
        **thread,
    )


def register(op: Operator) -> str:
    return op.created(replace(sc.KARI_CLAIM, retailer=None))


def no_new_mail(op: Operator, before: int) -> None:
    got = op.sink.wait_for(before + 1, timeout=2)
    assert len(got) == before, [(m.rcpt_tos, m.message["Subject"]) for m in got[before:]]


def newest_ledger_reason(op: Operator) -> str:
    rows = op.json("messages", "list", "--limit", "1")
    assert isinstance(rows, list)
    return str(rows[0]["reason"])


def ledger_reasons(op: Operator) -> list[str]:
    """The reasons of every ledger row, sorted."""
    rows = op.json("messages", "list")
    assert isinstance(rows, list)
    return sorted(r["reason"] for r in rows)


def claim(op: Operator, code: str) -> dict[str, Any]:
    got = op.json("claims", "show", code)
    assert isinstance(got, dict)
    return got


def test_forged_and_foreign_mail_is_held_on_the_claim(op: Operator) -> None:
    code = register(op)
    op.run("once")
    [confirmation] = op.sink.wait_for(1, timeout=5)
    state = claim(op, code)["state"]
    thread = {
        "subject": f"Re: {confirmation.message['Subject']}",
        "in_reply_to": confirmation.message["Message-ID"],
    }

    # 1. the claimant's address forged: our server says DMARC failed
    op.deliver(kari_sends_files("Her er kvitteringen.", DMARC_FAIL, **thread))
    op.run("once")
    no_new_mail(op, 1)
    assert newest_ledger_reason(op) == "review:dmarc_fail"
    c = claim(op, code)
    assert c["state"] == state and c["documents"] == []
    held = c["events"][-1]
    assert (held["kind"], held["from"], held["to"]) == ("claim.mail_held", state, state)
    assert held["reasons"] == ["dmarc_fail"]
    assert [d["accepted"] for d in held["evidence"]["documents"]] == [True, True]

    # 2. a stranger answers in the confirmation's thread (no DMARC verdict at all)
    op.deliver(
        customer_mail(sender=STRANGER, to=BOT, body="Her er min.", attachments=FILES, **thread)
    )
    # 3. a stranger writes the claim's code from their own address
    op.deliver(
        customer_mail(
            sender=STRANGER,
            to=BOT,
            subject=f"Registrering {code}",
            body="Se vedlegg.",
            attachments=FILES,
        )
    )
    op.run("once")
    no_new_mail(op, 1)
    c = claim(op, code)
    assert c["state"] == state and c["documents"] == [] and len(c["replies"]) == 1
    assert [(e["kind"], e["reasons"], e["evidence"]["sender"]) for e in c["events"][-2:]] == [
        ("claim.mail_held", ["sender_not_claimant"], "other"),
        ("claim.mail_held", ["code_other_address"], "other"),
    ]
    assert ledger_reasons(op) == [
        "review:code_other_address",
        "review:dmarc_fail",
        "review:sender_not_claimant",
    ]

    # 4. Kari herself, authenticated: the claim moves and she is answered
    op.deliver(kari_sends_files("Her er kvitteringen og serienummeret.", DMARC_PASS, **thread))
    op.run("once")
    [answer] = op.sink.wait_for(2, timeout=5)[1:]
    assert answer.rcpt_tos == (KARI,) and code in answer.message["Subject"]
    c = claim(op, code)
    assert c["state"] != state and len(c["documents"]) == 2


def test_only_the_configured_servers_verdict_counts(op: Operator) -> None:
    """With our server's authserv-id configured, a fail written further down (by a
    forwarder, or by the sender) does not hold the claimant's genuine mail."""
    op.config.write_text(
        op.config.read_text().replace("[smtp]", f'trusted_authserv_ids = ["{OURS}"]\n[smtp]', 1)
    )
    code = register(op)
    op.run("once")
    [confirmation] = op.sink.wait_for(1, timeout=5)
    raw = customer_mail(
        sender=KARI,
        to=BOT,
        subject=f"Re: {confirmation.message['Subject']}",
        body="Her er kvitteringen.",
        in_reply_to=confirmation.message["Message-ID"],
        attachments=FILES,
        headers={
            "Authentication-Results": "relay.forwarder.example; dmarc=fail header.from=example.no"
        },
    )
    # our server's header goes on top, as a receiving server writes it
    op.deliver(f"Authentication-Results: {DMARC_PASS}\r\n".encode() + raw)
    op.run("once")
    [answer] = op.sink.wait_for(2, timeout=5)[1:]
    assert answer.rcpt_tos == (KARI,)
    assert claim(op, code)["state"] != "registered"


def test_rma_notice_from_another_address_is_held(op: Operator) -> None:
    number = (
        op.run(
            "rma",
            "issue",
            "--email",
            "ola@example.no",
            "--product",
            "Sonos One",
            "--language",
            "nb",
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    op.run("once")
    op.sink.wait_for(1, timeout=5)
    notice = {
        "to": BOT,
        "subject": f"Shipment Notification: RMA# {number}",
        "body": "Sporingsnummer: 1Z999AA10123456784\nLevert på posten 21.01.2023 kl. 15:30\n",
    }
    op.deliver(customer_mail(sender=STRANGER, **notice))
    op.deliver(
        customer_mail(
            sender="ola@example.no", headers={"Authentication-Results": DMARC_FAIL}, **notice
        )
    )
    # a forged From on a notice for no RMA: no policy answer to whoever it names
    op.deliver(
        customer_mail(
            sender="per@example.no",
            to=BOT,
            subject="shipment notification rma #7654321",
            body="Tracking 1Z999AA10123456784",
            headers={"Authentication-Results": DMARC_FAIL},
        )
    )
    op.now = "2023-01-21T18:00:00+00:00"
    op.run("once")
    no_new_mail(op, 1)
    rma = op.json("rma", "show", number)
    assert isinstance(rma, dict) and rma["state"] == "issued" and not rma["tracking_number"]
    assert [(e["kind"], e["reasons"]) for e in rma["events"][-2:]] == [
        ("rma.notice_held", ["sender_not_claimant"]),
        ("rma.notice_held", ["dmarc_fail"]),
    ]
    assert ledger_reasons(op) == [
        "review:dmarc_fail",
        "review:sender_not_claimant",
        "rma:unknown_notice",
    ]

    # the holder's own notice still moves the RMA and is answered
    op.deliver(customer_mail(sender="ola@example.no", **notice))
    op.run("once")
    [ack] = op.sink.wait_for(2, timeout=5)[1:]
    assert ack.rcpt_tos == ("ola@example.no",)
    rma = op.json("rma", "show", number)
    assert isinstance(rma, dict) and rma["state"] == "shipment_notified"
