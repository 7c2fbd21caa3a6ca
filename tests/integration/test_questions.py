"""Claim mails without documents, end to end: a forgotten attachment and a status
question are answered, a plain note is not, and each stays listed for a person.

Real Dovecot and aiosmtpd, the `mailbot` command in a subprocess, on SQLite and on
PostgreSQL (`db_url`)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from mailbot.devtools import scenario as sc
from mailbot.devtools.samples import good_receipt_pdf, serial_photo
from mailbot.devtools.scenario import KARI, Operator
from mailbot.devtools.smtpsink import Captured

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _register(op: Operator) -> str:
    return op.created(sc.KARI_CLAIM)


def _answer(ours: Captured, body: str, attachments: Sequence[tuple[str, str, bytes]] = ()) -> bytes:
    return sc.answer(ours, KARI, "Re: ", body, attachments)


def _text(mail: Captured) -> str:
    body = mail.message.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


def _state(op: Operator, code: str) -> str:
    claim = op.json("claims", "show", code)
    assert isinstance(claim, dict)
    return str(claim["state"])


def _no_more_mail(op: Operator, count: int) -> None:
    op.sink.wait_for(count + 1, timeout=2)
    assert len(op.sink.messages) == count, [m.message["Subject"] for m in op.sink.messages]


def _status_answer(op: Operator, reply_to: Captured, question: str, sent: int) -> str:
    """`question` sent in answer to `reply_to` after `sent` mails: one status mail comes
    back; its text."""
    op.deliver(_answer(reply_to, question))
    op.run("once")
    [status] = op.replies_after(sent, 1)
    assert "Status for kravet ditt" in status.message["Subject"]
    return _text(status)


def test_text_only_claim_mail_is_answered_only_when_clear(op_db: Operator) -> None:
    op = op_db
    code = _register(op)
    op.run("once")
    [confirmation] = op.replies_after(0, 1)

    # "Vedlagt kvittering." with nothing attached: nothing arrived, here is what we need
    op.deliver(_answer(confirmation, "Hei!\n\nVedlagt kvittering.\n\nHilsen\nKari"))
    op.run("once")
    [nothing] = op.replies_after(1, 1)
    subject = nothing.message["Subject"]
    assert "Vi fikk ingen vedlegg" in subject and code in subject
    assert nothing.message["In-Reply-To"]
    text = _text(nothing)
    assert "kjøpsbevis" in text and "serienummeret" in text
    assert _state(op, code) == "registered"

    # a plain note: recorded, not answered
    op.deliver(_answer(confirmation, "Tusen takk for hjelpen!\n\nKari"))
    op.run("once")
    _no_more_mail(op, 2)

    # a status question before any document: the state and what is missing
    text = _status_answer(op, confirmation, "Hei!\n\nHvor langt har kravet mitt kommet?\n\nKari", 2)
    assert "registrert" in text and "kjøpsbevis" in text and "28 dager" in text
    assert _state(op, code) == "registered"

    # documents -> approved; then "when do I get paid?" gives the amount and the day
    op.deliver(
        _answer(
            confirmation,
            "Her er kvitteringen og serienummeret.",
            [
                ("kvittering.pdf", "application/pdf", good_receipt_pdf()),
                ("serienummer.jpg", "image/jpeg", serial_photo()),
            ],
        )
    )
    op.run("once")
    [approved] = op.replies_after(3, 1)
    assert _state(op, code) == "approved"
    question = "Når får jeg pengene? Jeg sendte kvitteringen for en stund siden."
    text = _status_answer(op, approved, question, 4)
    # approved at the fixed clock 2023-01-20; payment within 28 days of validation
    assert "godkjent" in text and "17. februar 2023" in text and "NOK" in text
    assert _state(op, code) == "approved"
    _no_more_mail(op, 5)

    # every text-only mail, answered or not, still waits for a person
    stats = op.json("messages", "stats")
    assert isinstance(stats, dict)
    rows = op.json("messages", "list")
    assert isinstance(rows, list)
    questions = [r for r in rows if r.get("reason") == "claim_message_without_documents"]
    assert len(questions) == 4, rows
