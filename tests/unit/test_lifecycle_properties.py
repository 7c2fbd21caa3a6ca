"""Property tests (hypothesis): no sequence of events leaves a claim or an RMA in an
impossible state, moves along an edge the design does not have, or answers one event
with more than one reply (or with a reply when nothing changed)."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import event as note_event
from hypothesis import strategies as st

from mailbot.core import claim_machine as C
from mailbot.core import deadlines
from mailbot.core import rma_machine as R
from mailbot.core.claim_machine import Claim, ClaimState, DocumentEvidence
from mailbot.core.rma_machine import Rma, RmaState
from mailbot.core.snapshots import claim_from_plain, rma_from_plain, to_plain
from mailbot.core.transition import TEMPLATES, Transition, TransitionError
from tests.unit.claim_factories import (
    cashback,
    issued_rma,
    new_claim,
    promo,
    promo_receipt,
    receipt,
    refused,
    returns,
    serial_photo,
    utc,
)

S = ClaimState
OPEN = {S.AWAITING_DOCUMENTS, S.INCOMPLETE, S.VALIDATED, S.REJECTED, S.REVIEW, S.APPROVED}
# The edges of the claim state machine, written out independently of the code.
CLAIM_EDGES: dict[ClaimState, set[ClaimState]] = {
    S.REGISTERED: OPEN,
    S.AWAITING_DOCUMENTS: OPEN,
    S.DOCUMENTS_RECEIVED: OPEN,
    S.INCOMPLETE: OPEN | {S.VOID},
    S.VALIDATED: {S.VALIDATED, S.INCOMPLETE, S.APPROVED, S.REVIEW, S.REJECTED},
    S.REVIEW: {S.REVIEW, S.VALIDATED, S.INCOMPLETE, S.APPROVED, S.REJECTED},
    S.APPROVED: {S.APPROVED, S.PAID, S.REVIEW},
    S.PAID: {S.PAID},
    S.REJECTED: {S.REJECTED},
    S.VOID: {S.VOID},
}
RS = RmaState
RMA_EDGES: dict[RmaState, set[RmaState]] = {
    RS.ISSUED: {RS.ISSUED, RS.SHIPMENT_NOTIFIED, RS.EXPIRED, RS.RECEIVED},
    RS.SHIPMENT_NOTIFIED: {RS.SHIPMENT_NOTIFIED, RS.RECEIVED},
    RS.RECEIVED: {RS.RECEIVED, RS.CLOSED},
    RS.CLOSED: {RS.CLOSED},
    RS.EXPIRED: {RS.EXPIRED},
}

DOCS: list[DocumentEvidence] = [
    receipt("r-good"),
    receipt("r-novat", vat_number=None),
    receipt("r-vat", retailer=None, purchase_date=None, product=None),
    receipt("r-other-model", product="WF-1000XM4"),
    receipt("r-late", purchase_date="2023-02-01"),
    receipt("r-low", low=("retailer",)),
    serial_photo("s-1"),
    serial_photo("s-2", serial="X1"),
    refused("a.zip"),
    refused("big.jpg", "too_large"),
    promo_receipt("p-good"),
]

claim_event = st.one_of(
    st.tuples(st.just("good"), st.booleans()),
    st.tuples(st.just("approve"), st.sampled_from([None, "100"])),
    st.tuples(st.just("pay")),
    st.tuples(st.just("docs"), st.lists(st.sampled_from(DOCS), max_size=3), st.booleans()),
    st.tuples(st.just("approve"), st.sampled_from([None, "100", "99999"])),
    st.tuples(st.just("pay")),
    st.tuples(st.just("sweep")),
    st.tuples(st.just("review"), st.sampled_from(["duplicate_receipt_sha256", "code_unknown"])),
    st.tuples(st.just("reject")),
    st.tuples(st.just("validate")),
    st.tuples(st.just("wait"), st.integers(min_value=1, max_value=24 * 20)),
)


def _check_reply(t: Transition[Any]) -> None:
    # One event, one Transition, so at most one reply by construction; and never a
    # reply for an event that changed nothing.
    if t.reply is not None:
        assert t.reply.template in TEMPLATES
        assert t.changed
    assert t.at.tzinfo is not None


def _check_claim(c: Claim) -> None:
    assert isinstance(c.state, ClaimState)
    incomplete = c.state is S.INCOMPLETE
    # A void claim keeps the deadline it missed (evidence); no other state has one.
    assert (c.deadline_at is not None) == (incomplete or (c.state is S.VOID))
    assert (c.deadline_on is not None) == (c.deadline_at is not None)
    if incomplete:
        assert c.missing_documents or c.missing_fields
        assert c.deadline_set_at is not None
    if c.state in (S.APPROVED, S.PAID):
        assert c.payout_amount is not None and c.payout_amount > 0
        assert c.payout_currency is not None and c.approved_at is not None
    else:
        assert c.payout_amount is None
    assert (c.paid_at is not None) == (c.state is S.PAID)
    if c.state in (S.REJECTED, S.VOID, S.REVIEW):
        assert c.state_reasons
    # What the store keeps (JSON) gives back the same snapshot.
    assert claim_from_plain(json.loads(json.dumps(to_plain(c)))) == c
    shas = [d.sha256 for d in c.documents]
    assert len(shas) == len(set(shas))
    assert all(d.refused is None and d.received_at is not None for d in c.documents)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=st.lists(claim_event, max_size=12), promo_claim=st.booleans())
def test_claim_sequences_stay_possible(events: list[tuple[Any, ...]], promo_claim: bool) -> None:
    campaign = promo() if promo_claim else cashback()
    now = utc("2018-04-20 10:00") if promo_claim else utc("2023-01-10 12:00")
    claim = new_claim(campaign, now=now)
    reminders: set[Any] = set()
    policy = deadlines.SweepPolicy(claim_reminder_before=timedelta(days=2))
    for event in events:
        t: Transition[Claim] | None
        name = event[0]
        try:
            if name == "good":
                good = [DOCS[-1]] if promo_claim else [DOCS[0], DOCS[6]]
                t = C.receive_documents(claim, campaign, good, now, auto_approve=event[1])
            elif name == "docs":
                t = C.receive_documents(claim, campaign, event[1], now, auto_approve=event[2])
            elif name == "approve":
                price = Decimal(event[1]) if event[1] else None
                t = C.approve(claim, campaign, now, price=price)
            elif name == "pay":
                t = C.mark_paid(claim, now)
            elif name == "sweep":
                t = deadlines.sweep_claim(claim, now, policy)
                again = deadlines.sweep_claim(t.snapshot, now, policy) if t else None
                assert again is None  # idempotent
            elif name == "review":
                t = C.to_review(claim, event[1], now)
            elif name == "reject":
                t = C.reject(claim, ["model_not_eligible"], now)
            elif name == "validate":
                t = C.validate_claim(claim, campaign, now)
            else:
                now += timedelta(hours=event[1])
                continue
        except TransitionError:
            # Only refused where the function does not apply; the claim is unchanged.
            assert claim.state is not S.REVIEW or name in ("pay",)
            continue
        if t is None:
            continue
        assert t.from_state == claim.state.value
        assert t.to_state == t.snapshot.state.value
        assert t.snapshot.state in CLAIM_EDGES[claim.state], (claim.state, t.snapshot.state)
        _check_reply(t)
        if t.reply is not None and t.reply.template == "reminder":
            key = claim.deadline_set_at
            assert key not in reminders  # one reminder per deadline
            reminders.add(key)
        claim = t.snapshot
        _check_claim(claim)
        note_event(f"claim {t.from_state} -> {t.to_state}")


rma_event = st.one_of(
    st.tuples(st.just("notice"), st.sampled_from(["JJD1", "JJD2", "1Z999AA10123456784"])),
    st.tuples(st.just("sweep")),
    st.tuples(st.just("received")),
    st.tuples(st.just("close"), st.sampled_from(["replaced", "refunded"])),
    st.tuples(st.just("shipped")),
    st.tuples(st.just("wait"), st.integers(min_value=1, max_value=24 * 10)),
)


def _check_rma(r: Rma) -> None:
    assert isinstance(r.state, RmaState)
    if r.state in (RS.SHIPMENT_NOTIFIED,):
        assert r.tracking_number is not None and r.notices
    if r.state is RS.EXPIRED:
        assert r.tracking_number is None  # a notified RMA never expires
    assert (r.received_at is not None) == (r.state in (RS.RECEIVED, RS.CLOSED))
    assert (r.outcome is not None) == (r.state is RS.CLOSED)
    if r.billing_flagged_at is not None:
        # Flagged only while the original was still away (it may arrive later).
        assert r.advance_replacement
        assert r.received_at is None or r.received_at >= r.billing_flagged_at
    assert rma_from_plain(json.loads(json.dumps(to_plain(r)))) == r
    trackings = [n.tracking for n in r.notices]
    assert all(a != b for a, b in itertools.pairwise(trackings))


@settings(max_examples=300, deadline=None)
@given(events=st.lists(rma_event, max_size=14), advance=st.booleans())
def test_rma_sequences_stay_possible(events: list[tuple[Any, ...]], advance: bool) -> None:
    now = utc("2024-03-01 09:00")
    rma = issued_rma(now, advance=advance)
    acks: list[str] = []
    for event in events:
        t: Transition[Rma] | None
        name = event[0]
        try:
            if name == "notice":
                t = R.notify_shipment(rma, event[1], None, None, now)
            elif name == "sweep":
                t = deadlines.sweep_rma(rma, now, deadlines.SweepPolicy())
                assert (
                    t is None
                    or deadlines.sweep_rma(t.snapshot, now, deadlines.SweepPolicy()) is None
                )
            elif name == "received":
                t = R.mark_received(rma, now)
            elif name == "close":
                t = R.close(rma, event[1], now)
            elif name == "shipped":
                t = R.mark_replacement_shipped(rma, returns(), now)
            else:
                now += timedelta(hours=event[1])
                continue
        except TransitionError:
            continue
        if t is None:
            continue
        assert t.from_state == rma.state.value and t.to_state == t.snapshot.state.value
        assert t.snapshot.state in RMA_EDGES[rma.state], (rma.state, t.snapshot.state)
        _check_reply(t)
        if t.reply is not None and t.reply.template == "tracking_ack":
            tracking = t.reply.context["tracking"]
            assert not acks or acks[-1] != tracking  # never the same number acked twice in a row
            acks.append(tracking)
        rma = t.snapshot
        _check_rma(rma)
        note_event(f"rma {t.from_state} -> {t.to_state}")


def test_review_claims_cannot_be_paid() -> None:
    # The property test's TransitionError branch relies on this.
    claim = replace(new_claim(), state=ClaimState.REVIEW, state_reasons=("x",))
    try:
        C.mark_paid(claim, utc("2023-01-10 12:00"))
    except TransitionError:
        return
    raise AssertionError("paid from review")
