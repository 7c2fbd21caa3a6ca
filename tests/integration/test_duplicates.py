"""Duplicate receipts through the real pipeline (Dovecot, SMTP sink, both databases):
two different receipts of one shop are not duplicates however alike their pictures;
a reused receipt sends only the new claim to review, naming the old one, and the
approved old claim stays as it was."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import create_engine, select

from mailbot.devtools import scenario as sc
from mailbot.devtools.samples import DEMO_VAT_LINE, customer_mail, receipt_image, serial_photo
from mailbot.devtools.scenario import BOT, Operator
from mailbot.services.documents import dhash
from mailbot.store import models as m

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def shop_receipt(number: int, day: str, extra: str, total: str) -> bytes:
    """One receipt of one shop's template: header, footer and layout the same."""
    return receipt_image(
        [
            "Elkjøp Norge AS",
            DEMO_VAT_LINE,
            f"Kvittering nr {number}",
            f"Dato: {day}",
            "Sony WH-1000XM5   3 990,00",
            extra,
            f"Totalt NOK {total}",
            "Takk for handelen!",
        ]
    )


def register(op: Operator, email: str, serial: str, day: str) -> str:
    form = sc.ClaimForm(
        email, "Kari Nordmann", serial=serial, purchase_date=day, country="NO", language="nb"
    )
    return op.created(form)


def send(op: Operator, email: str, code: str, receipt: bytes, serial: str) -> None:
    op.deliver(
        customer_mail(
            sender=email,
            to=BOT,
            subject=f"Kvittering {code}",
            body="Her er kvitteringen og serienummeret.",
            attachments=[
                ("kvittering.jpg", "image/jpeg", receipt),
                ("serienummer.jpg", "image/jpeg", serial_photo(serial)),
            ],
        )
    )


def show(op: Operator, code: str) -> dict[str, Any]:
    claim = op.json("claims", "show", code)
    assert isinstance(claim, dict)
    return claim


def test_alike_receipts_pass_and_a_reused_one_reviews_only_the_new_claim(
    op_db: Operator, db_url: str
) -> None:
    op = op_db
    first = shop_receipt(400101, "12.12.2022", "HDMI-kabel 2m      199,00", "4 189,00")
    other = shop_receipt(400187, "13.12.2022", "Veggfeste          249,00", "4 239,00")
    # Different receipts, yet their pictures are alike: the old 9x8 hash within 6 bits.
    a_hash, b_hash = dhash(first), dhash(other)
    assert a_hash is not None and b_hash is not None and (a_hash ^ b_hash).bit_count() <= 6
    # The reuser sends the first receipt re-compressed: other bytes, same receipt.
    buf = io.BytesIO()
    with Image.open(io.BytesIO(first)) as img:
        img.save(buf, format="JPEG", quality=45)
    reused = buf.getvalue()

    a = register(op, "kari@example.no", "5123456", "2022-12-12")
    b = register(op, "ola@example.no", "5123457", "2022-12-13")
    c = register(op, "per@example.no", "5123458", "2022-12-12")
    send(op, "kari@example.no", a, first, "5123456")
    send(op, "ola@example.no", b, other, "5123457")
    op.run("once")
    before_a = show(op, a)
    assert before_a["state"] == "approved", op.json("messages", "list")
    assert show(op, b)["state"] == "approved"  # alike, not the same: no review

    send(op, "per@example.no", c, reused, "5123458")
    op.run("once")
    new = show(op, c)
    assert new["state"] == "review"
    assert new["reasons"] == "duplicate_receipt_number"
    [review] = [e for e in new["events"] if e["to"] == "review"]
    assert review["evidence"]["fraud"] == [
        {
            "reason": "duplicate_receipt_number",
            "other_claims": [a],
            "detail": "400101|2022-12-12",
        }
    ]
    old = show(op, a)
    kept = ("state", "reasons", "payout", "deadline_at", "facts", "documents")
    assert {k: old[k] for k in kept} == {k: before_a[k] for k in kept}
    assert old["events"][:-1] == before_a["events"]
    note = old["events"][-1]
    assert (note["kind"], note["from"], note["to"]) == ("claim.fraud_note", "approved", "approved")
    assert note["evidence"]["fraud"][0]["other_claims"] == [c]
    assert [e["kind"] for e in show(op, b)["events"]][-1] != "claim.fraud_note"
    # The old claimant hears nothing more (confirmation + approval); the new one only
    # that the documents came (review says nothing of suspicions).
    sent = op.sink.wait_for(6)
    assert [m.rcpt_tos for m in sent].count(("kari@example.no",)) == 2
    assert sent[-1].rcpt_tos == ("per@example.no",)
    # The identity key is stored, so an earlier claim is found however old it is.
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            stored = list(conn.scalars(select(m.Document.receipt_key)))
    finally:
        engine.dispose()
    assert sorted(k for k in stored if k) == [
        "400101|2022-12-12",
        "400101|2022-12-12",
        "400187|2022-12-13",
    ]
