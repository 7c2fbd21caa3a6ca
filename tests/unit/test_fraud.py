"""Duplicate receipts across claims and many claims from one sender: the checked claim
goes to review naming the others; an earlier claim is never reopened by a later one."""

from __future__ import annotations

from dataclasses import replace

from mailbot.core.claim_machine import Claim, ClaimState, receive_documents
from mailbot.core.fraud import (
    apply_signals,
    duplicate_receipts,
    fraud_signals,
    receipt_identity,
    same_receipt,
    sender_volume,
    with_evidence,
)
from mailbot.core.receipt_fields import DocumentKind, ReceiptFields
from tests.unit.claim_factories import cashback, fv, new_claim, receipt, serial_photo, utc

NOW = utc("2023-01-10 12:00")


def _claim(code: str, email: str = "a@example.no", **receipt_kw: object) -> Claim:
    c = new_claim(code=code, email=email)
    docs = [receipt(**receipt_kw), serial_photo("s" + code)]  # type: ignore[arg-type]
    return receive_documents(c, cashback(), docs, NOW).snapshot


def test_same_bytes_is_a_duplicate() -> None:
    a, b = _claim("1", sha="same"), _claim("2", email="b@x.no", sha="same")
    signals = duplicate_receipts(b, [a, b])
    assert [(s.reason, s.codes) for s in signals] == [("duplicate_receipt_sha256", ("2", "1"))]


def test_a_similar_picture_alone_is_no_duplicate() -> None:
    # Receipts of one shop's template have near or equal picture hashes
    # (bench/duplicates.py): the picture must not send an honest customer to review.
    a = _claim("1", sha="a", phash=0x0F0F, receipt_number="K-1001")
    b = _claim("2", email="b@x.no", sha="b", phash=0x0F0F, receipt_number="K-1002")
    assert duplicate_receipts(b, [a]) == ()
    assert fraud_signals(b, [a], cashback()) == ()


def test_same_seller_number_and_date() -> None:
    a = _claim("1", sha="a", receipt_number="K-1001")
    b = _claim("2", email="b@x.no", sha="b", receipt_number="k 1001")
    other_number = _claim("3", email="c@x.no", sha="c", receipt_number="K-1002")
    other_day = _claim("4", email="d@x.no", sha="d", receipt_number="K-1001",
                       purchase_date="2022-12-02")  # fmt: skip
    no_number = _claim("5", email="e@x.no", sha="e")
    signals = duplicate_receipts(b, [a])
    assert [(s.reason, s.codes, s.detail) for s in signals] == [
        ("duplicate_receipt_number", ("2", "1"), "K1001|2022-12-01")
    ]
    assert duplicate_receipts(other_number, [a]) == ()
    assert duplicate_receipts(other_day, [a]) == ()
    assert duplicate_receipts(no_number, [_claim("6", email="f@x.no", sha="f")]) == ()


def test_seller_by_vat_number_else_by_name() -> None:
    a = _claim("1", sha="a", receipt_number="1001", vat_number="NO123456785")
    other_shop = _claim("2", email="b@x.no", sha="b", receipt_number="1001",
                        vat_number="NO987654321")  # fmt: skip
    renamed = _claim("3", email="c@x.no", sha="c", receipt_number="1001", retailer="ELKJOP",
                     vat_number="NO123456785")  # fmt: skip
    assert duplicate_receipts(other_shop, [a]) == ()  # same name, two VAT numbers
    assert [s.reason for s in duplicate_receipts(renamed, [a])] == ["duplicate_receipt_number"]
    by_name = _claim("4", email="d@x.no", sha="d", receipt_number="1001", vat_number=None)
    by_name_too = _claim("5", email="e@x.no", sha="e", receipt_number="1001",
                         vat_number=None, retailer="elkjøp")  # fmt: skip
    assert [s.reason for s in duplicate_receipts(by_name_too, [by_name])] == [
        "duplicate_receipt_number"
    ]
    only_vat = _claim("6", email="f@x.no", sha="f", receipt_number="1001", retailer=None)
    assert duplicate_receipts(only_vat, [by_name]) == ()  # nothing says same seller


def test_identity_needs_every_part_read_with_confidence() -> None:
    def fields(number: str | None, confidence: float = 0.95) -> ReceiptFields:
        return ReceiptFields(
            DocumentKind.RECEIPT,
            retailer=fv("Power", confidence),
            purchase_date=fv("2022-12-01"),
            receipt_number=fv(number, confidence) if number else None,
        )

    ident = receipt_identity(fields("00-4711"), 0.8)
    assert ident is not None and ident.key == "004711|2022-12-01"
    assert receipt_identity(fields("00-4711", confidence=0.7), 0.8) is None
    assert receipt_identity(fields(None), 0.8) is None
    assert receipt_identity(fields("013"), 0.8) is None  # a daily counter repeats
    serial = replace(fields("00-4711"), document_kind=DocumentKind.SERIAL_PHOTO)
    assert receipt_identity(serial) is None
    assert same_receipt(ident, ident)
    # The campaign's confidence bar applies.
    low = _claim("1", sha="a", receipt_number="K-1001", confidence=0.7)
    low2 = _claim("2", email="b@x.no", sha="b", receipt_number="K-1001", confidence=0.7)
    assert fraud_signals(low2, [low], cashback()) == ()


def _claim_with_total(
    code: str, email: str, total: str | None, confidence: float = 0.95, **receipt_kw: object
) -> Claim:
    doc = receipt(sha="t" + code, receipt_number="K-1001", **receipt_kw)  # type: ignore[arg-type]
    assert doc.fields is not None
    total_fv = fv(total, confidence) if total is not None else None
    doc = replace(doc, fields=replace(doc.fields, total=total_fv))
    c = new_claim(code=code, email=email)
    return receive_documents(c, cashback(), [doc, serial_photo("s" + code)], NOW).snapshot


def test_totals_read_on_both_must_agree() -> None:
    # One shop, day and receipt number (registers numbered alike): what they cost
    # tells the receipts apart.
    first = _claim_with_total("1", "a@x.no", "3990.00")
    other_price = _claim_with_total("2", "b@x.no", "1299.00")
    same_price = _claim_with_total("3", "c@x.no", "3990.00")
    assert duplicate_receipts(other_price, [first]) == ()
    signals = duplicate_receipts(same_price, [first])
    assert [(s.reason, s.detail) for s in signals] == [
        ("duplicate_receipt_number", "K1001|2022-12-01")
    ]


def test_a_total_not_read_never_hides_a_reused_receipt() -> None:
    first = _claim_with_total("1", "a@x.no", "3990.00")
    cropped = _claim_with_total("2", "b@x.no", None)  # the total line cut off
    doubtful = _claim_with_total("3", "c@x.no", "3998.00", confidence=0.5)  # below the bar
    for later in (cropped, doubtful):
        assert [s.reason for s in duplicate_receipts(later, [first], min_confidence=0.8)] == [
            "duplicate_receipt_number"
        ]


def test_the_total_is_part_of_the_identity_but_not_of_its_key() -> None:
    def fields(total: str | None, confidence: float = 0.95) -> ReceiptFields:
        return ReceiptFields(
            DocumentKind.RECEIPT,
            retailer=fv("Power"),
            purchase_date=fv("2022-12-01"),
            receipt_number=fv("00-4711"),
            total=fv(total, confidence) if total else None,
        )

    with_total = receipt_identity(fields("1299.00"), 0.8)
    without = receipt_identity(fields(None), 0.8)
    doubtful = receipt_identity(fields("1299.00", 0.7), 0.8)
    assert with_total is not None and with_total.total == "1299.00"
    assert without is not None and without.total is None
    assert doubtful is not None and doubtful.total is None  # not believed, not required
    # The database look-up of candidates is by number and date alone.
    assert with_total.key == without.key == "004711|2022-12-01"
    other = receipt_identity(fields("1399.00"), 0.8)
    assert other is not None
    assert same_receipt(with_total, without) and same_receipt(without, other)
    assert not same_receipt(with_total, other)


def test_many_claims_from_one_sender() -> None:
    limit = cashback().fraud.max_claims_per_sender
    claims = [new_claim(code=str(i), email="Same@Example.no ") for i in range(limit + 1)]
    assert sender_volume(claims[0], claims[1:limit], limit) is None
    s = sender_volume(claims[0], claims[1:], limit)
    assert s is not None and s.reason == "many_claims_per_sender"
    assert set(s.codes) == {c.code for c in claims}
    other_campaign = [replace(c, campaign_id="promo-20pct") for c in claims[1:]]
    assert sender_volume(claims[0], other_campaign, limit) is None


def test_a_reused_receipt_sends_only_the_new_claim_to_review_naming_the_old() -> None:
    approved = replace(_claim("1", sha="same"), state=ClaimState.APPROVED)
    incomplete = replace(_claim("3", email="c@x.no", sha="same"), state=ClaimState.INCOMPLETE)
    new = new_claim(code="2", email="b@x.no")
    docs = [receipt(sha="same"), serial_photo("s2")]
    signals = fraud_signals(new, [approved, incomplete], cashback(), incoming=docs)
    assert [(s.reason, s.codes) for s in signals] == [
        ("duplicate_receipt_sha256", ("2", "1")),
        ("duplicate_receipt_sha256", ("2", "3")),
    ]
    t = receive_documents(new, cashback(), docs, NOW, review_reasons=[s.reason for s in signals])
    t = with_evidence(t, signals)
    assert t.to_state == "review" and t.reasons == ("duplicate_receipt_sha256",)
    assert [f["other_claims"] for f in t.evidence["fraud"]] == [["1"], ["3"]]
    notes = apply_signals(signals, [approved, incomplete], NOW)
    assert [(n.snapshot.code, n.kind, n.changed) for n in notes] == [
        ("1", "claim.fraud_note", False),
        ("3", "claim.fraud_note", False),
    ]
    assert notes[0].snapshot == approved and notes[1].snapshot == incomplete
    assert notes[0].evidence["fraud"][0]["other_claims"] == ["2"]
    assert all(n.reply is None for n in notes)


def test_many_claims_put_the_senders_undecided_claims_in_review_once() -> None:
    limit = cashback().fraud.max_claims_per_sender
    mine = [new_claim(code=str(i), email="same@example.no") for i in range(limit)]
    approved = replace(new_claim(code="9", email="same@example.no"), state=ClaimState.APPROVED)
    checked = new_claim(code="0", email="same@example.no")
    others = [*mine[1:], approved]
    signals = fraud_signals(checked, others, cashback())
    assert [s.reason for s in signals] == ["many_claims_per_sender"]
    ts = apply_signals(signals, others, NOW)
    moved = {t.snapshot.code: t.to_state for t in ts if t.changed}
    assert moved == {c.code: "review" for c in mine[1:]}
    assert [(t.snapshot.code, t.kind) for t in ts if not t.changed] == [("9", "claim.fraud_note")]
    assert all(t.reply is None for t in ts)
    reviewed = [t.snapshot for t in ts if t.changed]
    assert [t.kind for t in apply_signals(signals, [*reviewed, approved], NOW)] == [
        "claim.fraud_note"
    ]  # the ones in review for it already produce nothing


def test_documents_arriving_now_are_compared_before_the_decision() -> None:
    first = _claim("1", sha="same")
    second = new_claim(code="2", email="b@x.no")
    docs = [receipt(sha="same"), serial_photo("s2")]
    signals = fraud_signals(second, [first], cashback(), incoming=docs)
    assert [s.reason for s in signals] == ["duplicate_receipt_sha256"]
    # Refused attachments are not receipts to compare.
    refused_doc = replace(receipt(sha="same"), refused="too_large")
    assert fraud_signals(second, [first], cashback(), incoming=[refused_doc]) == ()
