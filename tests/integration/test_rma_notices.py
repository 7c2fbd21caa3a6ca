"""Shipment notices end to end (Dovecot, aiosmtpd, both databases): an RMA number in the
body alone, held when another address writes, and a notice without the drop-off time
asked for (the returns policy requires both the tracking number and the drop-off time)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from mailbot.core.codes import generate_rma_number
from mailbot.devtools import scenario as sc
from mailbot.devtools.scenario import Operator

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BODY_ONLY = (
    "Hei,\nRMA nr. {number}\nPakken er sendt, sporingsnummer {tracking}.\n"
    "Levert på posten 20.01.2023 kl. 09:30.\n\nHilsen Ola"
)


def _ledger(op: Operator) -> list[dict[str, Any]]:
    rows = op.json("messages", "list")
    assert isinstance(rows, list)
    return rows


def _state(op: Operator, number: str) -> str:
    rma = op.json("rma", "show", number)
    assert isinstance(rma, dict)
    return str(rma["state"])


def test_rma_number_only_in_the_body(op_db: Operator) -> None:
    op = op_db
    number = op.created(sc.OLA_RMA)
    op.run("once")
    assert len(op.replies_after(0, 1)) == 1

    # Another address naming the RMA in the body: held for a person, nobody answered.
    body = BODY_ONLY.format(number=number, tracking=sc.TRACKING)
    op.deliver(sc.write("per@example.no", "Retur av Sonos Roam", body))
    op.run("once")
    assert _state(op, number) == "issued"
    assert "review:sender_not_claimant" in [r["reason"] for r in _ledger(op)]

    # A valid RMA number we never issued, in the body alone: not a notice (no policy
    # answer to a mail that may be about something else), left for a person.
    unknown = generate_rma_number(random.Random(3))
    assert unknown != number
    op.deliver(
        sc.write(
            sc.OLA, "Retur av Sonos Roam", BODY_ONLY.format(number=unknown, tracking=sc.TRACKING)
        )
    )
    op.run("once")
    assert op.sink.wait_for(2, timeout=2)[1:] == []
    assert "rma:unknown_notice" not in [r["reason"] for r in _ledger(op)]

    # The registered address: a notice, acknowledged.
    op.deliver(sc.write(sc.OLA, "Retur av Sonos Roam", body))
    op.run("once")
    [ack] = op.replies_after(1, 1)
    assert sc.TRACKING in sc.text_of(ack) and number in ack.message["Subject"]
    assert _state(op, number) == "shipment_notified"


def test_notice_without_dropoff_time_asks_for_it(op_db: Operator) -> None:
    op = op_db
    number = op.created(sc.OLA_RMA)
    op.run("once")
    assert len(op.replies_after(0, 1)) == 1

    op.deliver(
        sc.shipment_notice(sc.OLA, number, f"Hei,\nPakken er sendt. Sporingsnummer {sc.TRACKING}\n")
    )
    op.run("once")
    [ask] = op.replies_after(1, 1)
    asked = sc.text_of(ask)
    assert "når du leverte pakken" in asked and number in ask.message["Subject"]
    assert "sporingsnummeret for returen" not in asked  # that one was given
    assert _state(op, number) == "issued"

    # The answer with the drop-off time completes the notice.
    op.deliver(
        sc.answer(
            ask,
            sc.OLA,
            "SV: ",
            f"Sporingsnummer: {sc.TRACKING}\nLevert på posten 20.01.2023 kl. 09:30\n",
        )
    )
    op.run("once")
    [ack] = op.replies_after(2, 1)
    assert sc.TRACKING in sc.text_of(ack)
    assert _state(op, number) == "shipment_notified"
