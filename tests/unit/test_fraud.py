"""Duplicate receipts across claims and many claims from one sender put claims in review."""

from __future__ import annotations

from dataclasses import replace

from mailbot.core.claims import Claim, ClaimState, receive_documents
from mailbot.core.fraud import (
    apply_signals,
    duplicate_receipts,
    fraud_signals,
    hamming,
    sender_volume,
)
from tests.unit.claim_factories import cashback, new_claim, receipt, serial_photo, utc

NOW = utc("2023-01-10 12:00")


def _claim(code: str, email: str = "a@example.no", **receipt_kw: object) -> Claim:
    c = new_claim(code=code, email=email)
    docs = [receipt(**receipt_kw), serial_photo("s" + code)]  # type: ignore[arg-type]
    return receive_documents(c, cashback(), docs, NOW).snapshot


def test_same_bytes_is_a_duplicate() -> None:
    a, b = _claim("1", sha="same"), _claim("2", email="b@x.no", sha="same")
    signals = duplicate_receipts(b, [a, b])
    assert [(s.reason, s.codes) for s in signals] == [("duplicate_receipt_sha256", ("2", "1"))]


def test_perceptual_hash_within_threshold() -> None:
    base = 0x0F0F_0F0F_0F0F_0F0F
    a = _claim("1", sha="a", phash=base)
    near = _claim("2", email="b@x.no", sha="b", phash=base ^ 0b111111)  # 6 bits differ
    far = _claim("3", email="c@x.no", sha="c", phash=base ^ 0b1111111)  # 7 bits
    assert hamming(base, base ^ 0b111111) == 6
    assert [s.reason for s in duplicate_receipts(near, [a], 6)] == ["duplicate_receipt_phash"]
    assert duplicate_receipts(far, [a], 6) == ()


def test_same_retailer_date_and_receipt_number() -> None:
    a = _claim("1", sha="a", receipt_number="K-1001")
    b = _claim("2", email="b@x.no", sha="b", receipt_number="k 1001")
    other_number = _claim("3", email="c@x.no", sha="c", receipt_number="K-1002")
    no_number = _claim("4", email="d@x.no", sha="d")
    assert [s.reason for s in duplicate_receipts(b, [a])] == ["duplicate_receipt_number"]
    assert duplicate_receipts(other_number, [a]) == ()
    assert duplicate_receipts(no_number, [_claim("5", email="e@x.no", sha="e")]) == ()


def test_many_claims_from_one_sender() -> None:
    limit = cashback().fraud.max_claims_per_sender
    claims = [new_claim(code=str(i), email="Same@Example.no ") for i in range(limit + 1)]
    assert sender_volume(claims[0], claims[1:limit], limit) is None
    s = sender_volume(claims[0], claims[1:], limit)
    assert s is not None and s.reason == "many_claims_per_sender"
    assert set(s.codes) == {c.code for c in claims}
    other_campaign = [replace(c, campaign_id="promo-20pct") for c in claims[1:]]
    assert sender_volume(claims[0], other_campaign, limit) is None


def test_apply_puts_both_claims_in_review_once_without_replies() -> None:
    a = _claim("1", sha="same", receipt_number="K-1")
    b = _claim("2", email="b@x.no", sha="same", receipt_number="K-1")
    paid = replace(_claim("3", email="c@x.no", sha="same"), state=ClaimState.PAID)
    signals = fraud_signals(b, [a, paid], cashback())
    assert {s.reason for s in signals} == {"duplicate_receipt_sha256"}
    ts = apply_signals(signals, [a, b, paid], NOW)
    assert sorted(t.snapshot.code for t in ts) == ["1", "2"]  # paid stays paid
    assert all(t.to_state == "review" and t.reply is None for t in ts)
    reviewed = [t.snapshot for t in ts]
    assert apply_signals(signals, [*reviewed, paid], NOW) == []  # idempotent


def test_documents_arriving_now_are_compared_before_the_decision() -> None:
    from mailbot.core.claims import receive_documents as receive

    first = _claim("1", sha="same")
    second = new_claim(code="2", email="b@x.no")
    docs = [receipt(sha="same"), serial_photo("s2")]
    signals = fraud_signals(second, [first], cashback(), incoming=docs)
    assert [s.reason for s in signals] == ["duplicate_receipt_sha256"]
    t = receive(second, cashback(), docs, NOW, review_reasons=[s.reason for s in signals])
    assert t.to_state == "review" and t.reasons == ("duplicate_receipt_sha256",)
    others = apply_signals(signals, [first], NOW)
    assert [(o.snapshot.code, o.to_state) for o in others] == [("1", "review")]
    # Refused attachments are not receipts to compare.
    refused_doc = replace(receipt(sha="same"), refused="too_large")
    assert fraud_signals(second, [first], cashback(), incoming=[refused_doc]) == ()
