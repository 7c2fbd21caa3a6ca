"""Claim transitions with fixed clocks: every state, decision reason, deadline and payout."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest

from mailbot.core.campaign import Campaign
from mailbot.core.claim_machine import (
    Claim,
    ClaimState,
    TransitionError,
    approve,
    approve_by_hand,
    ask,
    change_email,
    correct_field,
    expire_if_overdue,
    mark_paid,
    receive_documents,
    register,
    reject,
    remind,
    reminder_due,
    reopen,
    to_review,
    validate_claim,
)
from tests.unit.claim_factories import (
    cashback,
    new_claim,
    promo,
    promo_receipt,
    receipt,
    refused,
    serial_photo,
    utc,
)

NOW = utc("2023-01-10 12:00")
OUTSIDE = "purchase_outside_window"
CONFLICT = "receipt_conflict:vat_number"


def test_register_sends_the_confirmation_with_the_code() -> None:
    t = register(
        code="12345678",
        campaign=cashback(),
        email="kari@example.no",
        name="Kari",
        model="WH-1000XM5",
        now=NOW,
        country="no",
    )
    assert t.from_state is None and t.to_state == "registered"
    assert t.snapshot.state is ClaimState.REGISTERED
    assert t.snapshot.language == "nb" and t.snapshot.country == "NO"
    assert t.reply is not None and t.reply.template == "confirmation"
    assert t.reply.context["code"] == "12345678"
    assert t.reply.context["required_documents"] == ["receipt", "serial_photo"]


def test_complete_documents_validate() -> None:
    t = receive_documents(new_claim(), cashback(), [receipt(), serial_photo()], NOW)
    assert (t.from_state, t.to_state, t.via) == ("registered", "validated", ("documents_received",))
    assert t.reply is not None and t.reply.template == "documents_received"
    c = t.snapshot
    assert c.validated_at == NOW and c.deadline_at is None
    facts = dict(c.facts)
    assert facts["model"] == "WH-1000XM5" and facts["vat_number"] == "NO123456785"
    assert [d.sha256 for d in c.documents] == ["r1", "s1"]
    assert all(d.received_at == NOW for d in c.documents)


def test_auto_approve_gives_one_reply_with_the_amount() -> None:
    t = receive_documents(
        new_claim(), cashback(), [receipt(), serial_photo()], NOW, auto_approve=True
    )
    assert t.to_state == "approved" and t.via == ("documents_received", "validated")
    assert t.reply is not None and t.reply.template == "approved"
    assert t.reply.context["amount"] == Decimal("500.00")
    assert t.reply.context["currency"] == "NOK" and t.reply.context["payment_days"] == 28
    assert t.snapshot.payout_amount == Decimal("500.00")


def test_incomplete_names_documents_fields_and_deadline() -> None:
    t = receive_documents(new_claim(), cashback(), [receipt(vat_number=None)], NOW)
    c = t.snapshot
    assert t.to_state == "incomplete"
    assert c.missing_documents == ("serial_photo",) and c.missing_fields == ("vat_number",)
    assert set(t.reasons) == {"missing_document:serial_photo", "missing_field:vat_number"}
    assert c.deadline_on == date(2023, 1, 24)  # 14 calendar days
    assert c.deadline_at is not None and c.deadline_at.isoformat() == "2023-01-25T00:00:00+01:00"
    assert t.reply is not None and t.reply.template == "missing_info"
    ctx = t.reply.context
    assert ctx["missing_documents"] == ["serial_photo"] and ctx["missing_fields"] == ["vat_number"]
    assert ctx["deadline"] == date(2023, 1, 24) and ctx["max_bytes"] == 5 * 1024 * 1024
    assert ctx["file_types"] == ["jpg", "jpeg", "png", "pdf"]


def test_deadline_counts_local_calendar_days() -> None:
    # 23:30 UTC on 10 January is already 11 January in Oslo.
    t = receive_documents(new_claim(), cashback(), [], utc("2023-01-10 23:30"))
    assert t.snapshot.deadline_on == date(2023, 1, 25)
    assert t.snapshot.missing_documents == ("receipt", "serial_photo")
    assert t.snapshot.missing_fields == ()  # no receipt yet: the document is asked for


def test_promo_deadline_is_seven_days() -> None:
    claim = new_claim(promo(), now=utc("2018-04-25 08:00"))
    t = receive_documents(claim, promo(), [promo_receipt(retailer=None)], utc("2018-04-25 08:00"))
    assert t.to_state == "incomplete" and t.snapshot.missing_fields == ("retailer",)
    assert t.snapshot.deadline_on == date(2018, 5, 2)


def test_answer_to_incomplete_validates_and_clears_deadline() -> None:
    first = receive_documents(new_claim(), cashback(), [receipt(vat_number=None)], NOW).snapshot
    later = NOW + timedelta(days=3)
    vat_only = receipt("r2", retailer=None, purchase_date=None, product=None)
    t = receive_documents(first, cashback(), [vat_only, serial_photo()], later)
    assert (t.from_state, t.to_state) == ("incomplete", "validated")
    assert t.snapshot.deadline_at is None and t.snapshot.deadline_on is None


def test_partial_answer_gets_a_new_deadline_but_a_resend_does_not() -> None:
    first = receive_documents(new_claim(), cashback(), [receipt(vat_number=None)], NOW).snapshot
    resend = receive_documents(first, cashback(), [receipt(vat_number=None)], NOW + timedelta(1))
    assert resend.to_state == "incomplete"
    assert resend.snapshot.deadline_on == first.deadline_on  # same file again: no extension
    assert len(resend.snapshot.documents) == 1
    partial = receive_documents(first, cashback(), [serial_photo()], NOW + timedelta(days=2))
    assert partial.to_state == "incomplete" and partial.snapshot.missing_documents == ()
    assert partial.snapshot.deadline_on == date(2023, 1, 26)


@pytest.mark.parametrize(
    ("claim_kw", "doc_kw", "registered_at", "reason"),
    [
        ({"purchase_date": None}, {"purchase_date": "2023-01-16"}, "2023-03-01 10:00", OUTSIDE),
        ({"purchase_date": None}, {"purchase_date": "2022-10-31"}, "2023-01-10 10:00", OUTSIDE),
        ({"model": "PlayStation 5"}, {}, "2023-01-10 10:00", "model_not_eligible"),
        ({"model": ""}, {"product": "iPhone 14"}, "2023-01-10 10:00", "model_not_eligible"),
        ({}, {}, "2022-12-30 10:00", "claimed_too_early"),
        ({}, {}, "2023-03-16 23:00", "claimed_too_late"),
        ({"country": "SE"}, {}, "2023-01-10 10:00", "country_not_participating"),
    ],
)  # fmt: skip
def test_cashback_rejections(
    claim_kw: dict[str, Any], doc_kw: dict[str, Any], registered_at: str, reason: str
) -> None:
    at = utc(registered_at)
    claim = new_claim(now=at, **claim_kw)
    t = receive_documents(claim, cashback(), [receipt(**doc_kw), serial_photo()], at)
    assert t.to_state == "rejected" and reason in t.reasons, t.reasons
    assert t.reply is not None and t.reply.template == "rejected"
    assert reason in t.reply.context["reasons"]


@pytest.mark.parametrize(
    ("registered_at", "purchase", "ok"),
    [
        ("2022-11-30 23:00", date(2022, 11, 1), True),  # 1 Dec 00:00 in Oslo: day 30
        ("2022-11-30 22:59", date(2022, 11, 1), False),  # still 30 Nov in Oslo
        ("2023-03-16 22:59", date(2022, 12, 1), True),  # 23:59 on 16 March, Oslo
        ("2023-03-16 23:00", date(2022, 12, 1), False),  # midnight: too late
    ],
)
def test_claim_window_boundaries(registered_at: str, purchase: date, ok: bool) -> None:
    at = utc(registered_at)
    claim = new_claim(now=at, purchase_date=purchase)
    docs = [receipt(purchase_date=purchase.isoformat()), serial_photo()]
    t = receive_documents(claim, cashback(), docs, at)
    assert (t.to_state == "validated") is ok, t.reasons


def test_promo_rejections_company_retailer_country() -> None:
    at = utc("2018-04-25 08:00")
    company = new_claim(promo(), now=at, company=True)
    t = receive_documents(company, promo(), [promo_receipt()], at)
    assert t.to_state == "rejected" and t.reasons == ("company_buyer",)
    shop = receive_documents(
        new_claim(promo(), now=at), promo(), [promo_receipt(retailer="Teknikmagasinet")], at
    )
    assert shop.reasons == ("retailer_not_authorized",)
    pl = receive_documents(new_claim(promo(), now=at, country="PL"), promo(), [promo_receipt()], at)
    assert pl.reasons == ("country_not_participating",)
    ok = receive_documents(
        new_claim(promo(), now=at), promo(), [promo_receipt(retailer="elgiganten ab")], at
    )
    assert ok.to_state == "validated" and dict(ok.snapshot.facts)["retailer"] == "Elgiganten"


def test_promo_six_weeks_from_first_mail() -> None:
    first_mail = date(2018, 4, 2)
    limit = first_mail + timedelta(weeks=6)  # 14 May
    in_time = utc(f"{limit.isoformat()} 21:00")  # 23:00 in Stockholm
    late = utc(f"{limit.isoformat()} 22:00")  # 00:00 next day in Stockholm
    for at, expect in ((in_time, "validated"), (late, "rejected")):
        claim = new_claim(promo(), now=utc("2018-04-20 10:00"))
        t = receive_documents(claim, promo(), [promo_receipt()], at)
        assert t.to_state == expect, (at, t.reasons)
    unknown = new_claim(promo(), now=in_time, first_campaign_mail_on=None)
    t = receive_documents(unknown, promo(), [promo_receipt()], in_time)
    assert t.to_state == "review" and t.reasons == ("first_mail_unknown",)


@pytest.mark.parametrize(
    ("claim_kw", "docs", "reason"),
    [
        ({}, [receipt(product="WF-1000XM4"), serial_photo()], "model_mismatch"),
        ({}, [receipt(purchase_date="2022-12-02"), serial_photo()], "purchase_date_mismatch"),
        ({"serial": "S01-123"}, [receipt(), serial_photo(serial="S01-999")], "serial_mismatch"),
        ({}, [receipt(), receipt("r2", vat_number="NO9"), serial_photo()], CONFLICT),
        ({}, [receipt(low=("vat_number",)), serial_photo()], "low_confidence:vat_number"),
        ({}, [receipt(purchase_date="2022-13-45"), serial_photo()], "bad_purchase_date"),
    ],
)  # fmt: skip
def test_review_reasons(claim_kw: dict[str, Any], docs: list[Any], reason: str) -> None:
    t = receive_documents(new_claim(**claim_kw), cashback(), docs, NOW)
    assert t.to_state == "review" and reason in t.reasons, t.reasons
    # The customer is told the documents arrived, nothing about suspicion.
    assert t.reply is not None and t.reply.template == "documents_received"


def test_conflicting_fact_is_not_used_to_reject() -> None:
    # Registered 1 Dec (inside), receipt says 20 Jan (outside): a human decides.
    docs = [receipt(purchase_date="2023-01-20"), serial_photo()]
    t = receive_documents(new_claim(now=utc("2023-03-01 10:00")), cashback(), docs, NOW)
    assert t.to_state == "review" and "purchase_outside_window" not in t.reasons


def test_confident_receipt_fills_unregistered_facts_low_confidence_does_not() -> None:
    at = utc("2023-03-01 10:00")
    sure = receive_documents(
        new_claim(now=at, purchase_date=None),
        cashback(),
        [receipt(purchase_date="2023-01-02"), serial_photo()],
        at,
    )
    assert (
        sure.to_state == "validated" and dict(sure.snapshot.facts)["purchase_date"] == "2023-01-02"
    )
    unsure = receive_documents(
        new_claim(now=at, purchase_date=None),
        cashback(),
        [receipt(purchase_date="2023-01-20", low=("purchase_date",)), serial_photo()],
        at,
    )
    assert unsure.to_state == "review" and unsure.reasons == ("low_confidence:purchase_date",)


def test_a_fraud_signal_from_the_caller_sends_to_review() -> None:
    t = receive_documents(
        new_claim(),
        cashback(),
        [receipt(), serial_photo()],
        NOW,
        review_reasons=["duplicate_receipt_sha256"],
        auto_approve=True,
    )
    assert t.to_state == "review" and t.reasons == ("duplicate_receipt_sha256",)


def test_all_attachments_refused() -> None:
    t = receive_documents(
        new_claim(), cashback(), [refused("a.zip"), refused("b.jpg", "too_large")], NOW
    )
    assert (t.from_state, t.to_state) == ("registered", "awaiting_documents")
    assert t.reply is not None and t.reply.template == "attachment_refused"
    assert t.reply.context["refused"] == [
        {"filename": "a.zip", "reason": "file_type"},
        {"filename": "b.jpg", "reason": "too_large"},
    ]
    assert t.snapshot.documents == ()
    # Then the good documents arrive.
    t2 = receive_documents(t.snapshot, cashback(), [receipt(), serial_photo()], NOW)
    assert (t2.from_state, t2.to_state) == ("awaiting_documents", "validated")


def test_refusals_ride_along_with_the_decision_mail() -> None:
    t = receive_documents(
        new_claim(), cashback(), [receipt(vat_number=None), refused("x.zip")], NOW
    )
    assert t.to_state == "incomplete"
    assert t.reply is not None and t.reply.template == "missing_info"
    assert t.reply.context["refused"] == [{"filename": "x.zip", "reason": "file_type"}]


@pytest.mark.parametrize(
    "state",
    [
        ClaimState.REJECTED,
        ClaimState.VOID,
        ClaimState.PAID,
        ClaimState.VALIDATED,
        ClaimState.APPROVED,
    ],
)
def test_documents_for_a_decided_claim_change_nothing(state: ClaimState) -> None:
    claim = replace(new_claim(), state=state)
    t = receive_documents(claim, cashback(), [receipt(), serial_photo()], NOW)
    assert not t.changed and t.reply is None and t.snapshot == claim


def test_documents_during_review_are_kept_and_acknowledged() -> None:
    claim = to_review(new_claim(), "code_unknown", NOW).snapshot
    t = receive_documents(claim, cashback(), [receipt()], NOW)
    assert t.to_state == "review" and len(t.snapshot.documents) == 1
    assert t.reply is not None and t.reply.template == "documents_received"


def _validated(campaign: Campaign | None = None, **kw: Any) -> Claim:
    c = new_claim(campaign, now=utc("2018-04-25 08:00"), **kw) if campaign else new_claim(**kw)
    c = replace(c, state=ClaimState.VALIDATED, facts=(("model", c.model),))
    return c


@pytest.mark.parametrize(
    ("currency", "price", "amount"),
    [
        ("SEK", "1000", "200.00"),
        ("SEK", "8250", "1650.00"),  # exactly at the cap
        ("SEK", "8250.05", "1650.00"),  # 1650.01: one cent over the cap
        ("SEK", "10000", "1650.00"),  # capped
        ("NOK", "9000", "1620.00"),
        ("EUR", "123.45", "24.69"),  # 24.690
        ("EUR", "0.03", "0.01"),  # 0.006 rounds half up to 0.01
        ("USD", "999.99", "200.00"),
        ("CHF", "1000.01", "200.00"),
        ("GBP", "799.99", "160.00"),
        ("AUD", "1300", "260.00"),
        ("CAD", "1249.95", "249.99"),
        ("DKK", "6250", "1250.00"),
    ],
)
def test_percentage_payout_with_caps(currency: str, price: str, amount: str) -> None:
    claim = _validated(promo(), currency=currency)
    t = approve(claim, promo(), NOW, price=Decimal(price))
    assert t.to_state == "approved"
    assert t.snapshot.payout_amount == Decimal(amount) and t.snapshot.payout_currency == currency
    assert t.reply is not None and t.reply.context["amount"] == Decimal(amount)


@pytest.mark.parametrize(
    ("kw", "price", "reason"),
    [
        ({"currency": "SEK"}, None, "price_unknown"),
        ({"currency": "SEK"}, Decimal("-5"), "price_invalid"),
        ({"currency": "PLN"}, Decimal("100"), "currency_not_supported"),
        ({"currency": None}, Decimal("100"), "currency_unknown"),
    ],
)
def test_payout_that_cannot_be_computed_goes_to_review(
    kw: dict[str, Any], price: Decimal | None, reason: str
) -> None:
    t = approve(_validated(promo(), **kw), promo(), NOW, price=price)
    assert t.to_state == "review" and t.reasons == (reason,) and t.reply is None


def test_fixed_payout_uses_the_registered_price_or_none() -> None:
    t = approve(_validated(model="HT-A7000"), cashback(), NOW)
    assert t.snapshot.payout_amount == Decimal("1500.00") and t.snapshot.payout_currency == "NOK"
    promo_claim = _validated(promo(), price=Decimal("500"))
    assert approve(promo_claim, promo(), NOW).snapshot.payout_amount == Decimal("100.00")


def test_approve_and_pay_only_from_the_right_states() -> None:
    with pytest.raises(TransitionError):
        approve(new_claim(), cashback(), NOW)
    approved = approve(_validated(), cashback(), NOW).snapshot
    with pytest.raises(TransitionError):
        approve(approved, cashback(), NOW)
    with pytest.raises(TransitionError):
        mark_paid(_validated(), NOW)
    paid = mark_paid(approved, NOW, reference="BANK-1")
    assert paid.to_state == "paid" and paid.reply is None
    assert paid.snapshot.paid_at == NOW and paid.snapshot.payment_reference == "BANK-1"
    with pytest.raises(TransitionError):
        mark_paid(paid.snapshot, NOW)


def _incomplete() -> Claim:
    return receive_documents(new_claim(), cashback(), [receipt(vat_number=None)], NOW).snapshot


def test_expire_if_overdue() -> None:
    c = _incomplete()
    assert c.deadline_at is not None
    assert expire_if_overdue(c, c.deadline_at - timedelta(seconds=1)) is None
    t = expire_if_overdue(c, c.deadline_at)
    assert t is not None and t.to_state == "void" and t.reasons == ("deadline_passed",)
    assert t.reply is not None and t.reply.template == "rejected"
    assert t.reply.context["reasons"] == ["deadline_passed"]
    assert expire_if_overdue(t.snapshot, c.deadline_at + timedelta(days=9)) is None
    assert expire_if_overdue(new_claim(), utc("2030-01-01 00:00")) is None


def test_reminder_once_per_deadline() -> None:
    c = _incomplete()
    assert c.deadline_at is not None
    before = timedelta(days=3)
    assert not reminder_due(c, c.deadline_at - before - timedelta(seconds=1), before)
    at = c.deadline_at - before
    assert reminder_due(c, at, before)
    t = remind(c, at)
    assert t.reply is not None and t.reply.template == "reminder"
    assert t.reply.context["deadline"] == c.deadline_on
    assert not reminder_due(t.snapshot, at + timedelta(hours=1), before)
    assert not reminder_due(c, c.deadline_at, before)  # overdue: void, not remind
    # A new missing-info request sets a new deadline: one more reminder allowed.
    again = receive_documents(
        t.snapshot, cashback(), [serial_photo()], at + timedelta(hours=2)
    ).snapshot
    assert again.deadline_at is not None and again.deadline_at > c.deadline_at
    assert reminder_due(again, again.deadline_at - timedelta(days=1), before)
    with pytest.raises(TransitionError):
        remind(new_claim(), NOW)


def test_to_review_never_replies_and_keeps_terminal_claims() -> None:
    t = to_review(_incomplete(), "duplicate_receipt_sha256", NOW)
    assert t.to_state == "review" and t.reply is None and t.snapshot.deadline_at is None
    t2 = to_review(t.snapshot, ["many_claims_per_sender"], NOW)
    assert t2.snapshot.state_reasons == ("duplicate_receipt_sha256", "many_claims_per_sender")
    paid = replace(new_claim(), state=ClaimState.PAID)
    t3 = to_review(paid, "x", NOW)
    assert not t3.changed and t3.snapshot.state is ClaimState.PAID and t3.reply is None


def test_human_reject_and_revalidate_after_review() -> None:
    claim = receive_documents(
        new_claim(), cashback(), [receipt(product="WF-1000XM4"), serial_photo()], NOW
    ).snapshot
    assert claim.state is ClaimState.REVIEW
    r = reject(claim, ["model_not_eligible"], NOW)
    assert r.to_state == "rejected" and r.reply is not None and r.reply.template == "rejected"
    with pytest.raises(TransitionError):
        reject(r.snapshot, ["x"], NOW)
    fixed = replace(claim, model="WF-1000XM4")
    v = validate_claim(fixed, cashback(), NOW)
    assert (v.from_state, v.to_state) == ("review", "validated")
    with pytest.raises(TransitionError):
        validate_claim(r.snapshot, cashback(), NOW)


def test_refused_attachments_during_review_are_answered() -> None:
    claim = to_review(new_claim(), "code_unknown", NOW).snapshot
    t = receive_documents(claim, cashback(), [refused("a.zip")], NOW)
    assert t.to_state == "review" and t.reply is not None
    assert t.reply.template == "attachment_refused"
    nothing = receive_documents(claim, cashback(), [], NOW)
    assert not nothing.changed and nothing.reply is None


# --- operator actions -------------------------------------------------------------------


def test_ask_names_the_items_and_sets_the_campaigns_deadline() -> None:
    review = replace(_validated(), state=ClaimState.REVIEW, state_reasons=(CONFLICT,))
    t = ask(review, cashback(), ["serial_photo"], ["purchase_date"], NOW)
    snap = t.snapshot
    assert t.from_state == "review" and t.to_state == "incomplete"
    assert snap.missing_documents == ("serial_photo",) and snap.missing_fields == ("purchase_date",)
    # 14 reply days counted in Oslo from 10 January: void from the start of 25 January
    assert snap.deadline_on == date(2023, 1, 24) and snap.deadline_set_at == NOW
    assert snap.deadline_at == utc("2023-01-24 23:00")
    assert t.reply is not None and t.reply.template == "missing_info"
    assert t.reply.context["missing_documents"] == ["serial_photo"]
    assert t.reply.context["deadline"] == date(2023, 1, 24)
    # the customer's answer is decided by the rules, and the claim can be voided
    assert expire_if_overdue(snap, utc("2023-01-24 23:00")) is not None


def test_ask_refuses_items_the_campaign_does_not_require_and_closed_claims() -> None:
    with pytest.raises(TransitionError, match="not required by campaign"):
        ask(new_claim(), promo(), ["serial_photo"], [], NOW)  # promo requires only a receipt
    with pytest.raises(TransitionError, match="at least one"):
        ask(new_claim(), cashback(), [], [], NOW)
    approved = approve(_validated(), cashback(), NOW).snapshot
    for closed in (approved, reject(new_claim(), ["not_verified"], NOW).snapshot):
        with pytest.raises(TransitionError, match="cannot ask"):
            ask(closed, cashback(), ["receipt"], [], NOW)


def test_reopen_only_a_rejected_or_void_claim_to_review_without_a_reply() -> None:
    rejected = reject(new_claim(), ["not_verified"], NOW).snapshot
    t = reopen(rejected, NOW + timedelta(days=1))
    assert t.from_state == "rejected" and t.to_state == "review" and t.reply is None
    assert t.snapshot.state_reasons == ("reopened",)
    # from review a person can then approve
    assert approve(replace(t.snapshot, facts=(("model", "WH-1000XM5"),)), cashback(), NOW).reply
    paid = mark_paid(approve(_validated(), cashback(), NOW).snapshot, NOW).snapshot
    for state in (paid, new_claim(), _validated()):
        with pytest.raises(TransitionError, match="cannot reopen"):
            reopen(state, NOW)


def test_change_email_keeps_the_state_and_records_the_old_address() -> None:
    claim = new_claim()
    t = change_email(claim, "kari.new@example.no", NOW)
    assert t.snapshot.email == "kari.new@example.no" and t.snapshot.state is claim.state
    assert t.evidence["previous_email"] == claim.email and t.reply is None
    with pytest.raises(TransitionError, match="already"):
        change_email(t.snapshot, "kari.new@example.no", NOW)
    with pytest.raises(TransitionError):
        change_email(reject(claim, ["not_verified"], NOW).snapshot, "x@example.no", NOW)


def test_correct_field_keeps_the_value_read_and_decides_nothing() -> None:
    claim = replace(_validated(), state=ClaimState.REVIEW, facts=(("retailer", "Elkjop"),))
    t = correct_field(claim, "retailer", " Elkjøp Norge ", NOW)
    assert t.snapshot.state is ClaimState.REVIEW and t.reply is None
    assert t.snapshot.facts == (("retailer", "Elkjop"),)  # the evidence is untouched
    assert dict(t.snapshot.corrections) == {"retailer": "Elkjøp Norge"}
    assert t.evidence["read"] == "Elkjop" and t.evidence["previous_correction"] is None
    again = correct_field(t.snapshot, "retailer", "Elkjøp", NOW)
    assert again.evidence["previous_correction"] == "Elkjøp Norge"
    with pytest.raises(TransitionError, match="unknown field"):
        correct_field(claim, "iban", "NO93", NOW)
    with pytest.raises(TransitionError, match="empty"):
        correct_field(claim, "retailer", "  ", NOW)
    with pytest.raises(TransitionError, match="cannot correct"):
        correct_field(approve(_validated(), cashback(), NOW).snapshot, "price", "10", NOW)


def test_approve_by_hand_takes_a_parked_claim_and_drops_its_deadline() -> None:
    incomplete = ask(new_claim(), cashback(), ["receipt"], [], NOW).snapshot
    t = approve_by_hand(incomplete, cashback(), NOW + timedelta(days=1))
    assert t.from_state == "incomplete" and t.to_state == "approved"
    assert t.snapshot.deadline_at is None and t.snapshot.deadline_on is None
    assert t.reply is not None and t.reply.template == "approved"
    assert expire_if_overdue(t.snapshot, NOW + timedelta(days=60)) is None
    for closed in (t.snapshot, reject(new_claim(), ["not_verified"], NOW).snapshot):
        with pytest.raises(TransitionError, match="cannot approve"):
            approve_by_hand(closed, cashback(), NOW)


# --- a company named as the buyer on the document; a better copy of one purchase ------


def _with_buyer(doc: Any, name: str, confidence: float) -> Any:
    from mailbot.core.receipt_fields import FieldValue

    buyer = FieldValue(name, confidence, f"{name} / Org.nr 923609016", "buyer:name+number")
    return replace(doc, fields=replace(doc.fields, buyer_company=buyer))


def test_a_company_buyer_on_the_invoice_is_refused_where_companies_are_excluded() -> None:
    at = utc("2018-04-25 08:00")
    invoice = _with_buyer(promo_receipt(), "Fjord Media AB", 0.95)
    t = receive_documents(new_claim(promo(), now=at), promo(), [invoice], at)
    assert t.to_state == "rejected" and t.reasons == ("company_buyer",)
    assert dict(t.snapshot.facts)["buyer_company"] == "Fjord Media AB"


def test_a_company_buyer_read_unsure_goes_to_a_person_not_a_refusal() -> None:
    at = utc("2018-04-25 08:00")
    invoice = _with_buyer(promo_receipt(), "Fjord Media AB", 0.7)
    t = receive_documents(new_claim(promo(), now=at), promo(), [invoice], at)
    assert t.to_state == "review" and t.reasons == ("possible_company_buyer",)
    assert "buyer_company" not in dict(t.snapshot.facts)


def test_a_company_buyer_is_fine_where_companies_may_claim() -> None:
    invoice = _with_buyer(receipt(), "Nordlys Lyd AS", 0.95)
    t = receive_documents(new_claim(), cashback(), [invoice, serial_photo()], NOW)
    assert t.to_state == "validated", t.reasons


def test_the_shops_invoice_completes_a_photo_of_the_same_purchase() -> None:
    # The photo shows no VAT number and the till's receipt number; the PDF invoice
    # prints the VAT number and its own invoice number: no conflict, the claim completes.
    photo = receipt("r1", vat_number=None, receipt_number="4711", filename="kvittering.jpg")
    first = receive_documents(new_claim(), cashback(), [photo, serial_photo()], NOW)
    assert first.to_state == "incomplete" and "missing_field:vat_number" in first.reasons
    invoice = receipt("r2", retailer="Elkjøp Nordic AS", receipt_number="FA-2022-0815")
    t = receive_documents(first.snapshot, cashback(), [invoice], NOW)
    assert t.to_state == "validated", t.reasons
    assert dict(t.snapshot.facts)["vat_number"] == "NO123456785"


@pytest.mark.parametrize(
    ("other", "conflict"),
    [
        ({"purchase_date": "2022-12-03"}, "purchase_date"),
        ({"retailer": "Power"}, "retailer"),
        ({"product": "WF-1000XM4"}, "product"),
    ],
)
def test_another_day_shop_or_product_on_a_second_document_is_a_conflict(
    other: dict[str, str], conflict: str
) -> None:
    docs = [receipt("r1"), receipt("r2", **other), serial_photo()]
    t = receive_documents(new_claim(), cashback(), docs, NOW)
    assert t.to_state == "review" and f"receipt_conflict:{conflict}" in t.reasons, t.reasons
