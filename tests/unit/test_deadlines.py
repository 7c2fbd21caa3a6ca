"""Deadline sweeps: void, expire, remind, bill; idempotent; exact catch-up after downtime."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbot.core.claim_machine import Claim, ClaimState, receive_documents
from mailbot.core.deadlines import SweepPolicy, next_due, sweep
from mailbot.core.rma_machine import Rma, RmaState
from mailbot.core.transition import Transition
from tests.unit.claim_factories import cashback, issued_rma, new_claim, receipt, utc

NOW = utc("2023-01-10 12:00")
POLICY = SweepPolicy(claim_reminder_before=timedelta(days=3), rma_reminder_before=timedelta(days=2))


def _incomplete(code: str = "1") -> Claim:
    claim = new_claim(code=code)
    return receive_documents(claim, cashback(), [receipt(vat_number=None)], NOW).snapshot


def _rma(number: str = "1234567", advance: bool = False) -> Rma:
    return issued_rma(NOW, number=number, advance=advance)


def _apply(
    claims: Sequence[Claim], rmas: Sequence[Rma], ts: Sequence[Transition[Any]]
) -> tuple[list[Claim], list[Rma]]:
    """What the sweep service does: store each snapshot."""
    by_claim = {c.code: c for c in claims}
    by_rma = {r.number: r for r in rmas}
    for t in ts:
        if isinstance(t.snapshot, Claim):
            by_claim[t.snapshot.code] = t.snapshot
        else:
            by_rma[t.snapshot.number] = t.snapshot
    return list(by_claim.values()), list(by_rma.values())


def test_nothing_due_nothing_done() -> None:
    assert sweep([_incomplete(), new_claim(code="2")], [_rma()], NOW, POLICY) == []


def test_overdue_items_are_voided_and_expired_once() -> None:
    claims, rmas = [_incomplete()], [_rma()]
    later = NOW + timedelta(days=40)  # long downtime
    ts = sweep(claims, rmas, later, POLICY)
    assert [(t.kind, t.to_state) for t in ts] == [
        ("claim.void", "void"),
        ("rma.expired", "expired"),
    ]
    assert [t.reply.template for t in ts if t.reply] == ["rejected", "rma_expired"]
    claims, rmas = _apply(claims, rmas, ts)
    assert sweep(claims, rmas, later, POLICY) == []  # same now: nothing new
    assert sweep(claims, rmas, later + timedelta(days=1), POLICY) == []


def test_reminders_once_then_expiry_when_sweeping_every_hour() -> None:
    claims, rmas = [_incomplete()], [_rma(), _rma("7654321", advance=True)]
    kinds: list[tuple[str, str]] = []
    at = NOW
    while at < NOW + timedelta(days=30):
        ts = sweep(claims, rmas, at, POLICY)
        kinds += [(t.kind, getattr(t.snapshot, "code", None) or t.snapshot.number) for t in ts]
        claims, rmas = _apply(claims, rmas, ts)
        assert sweep(claims, rmas, at, POLICY) == []  # idempotent at every moment
        at += timedelta(hours=1)
    assert sorted(kinds) == sorted(
        [
            ("claim.reminder", "1"),
            ("claim.void", "1"),
            ("rma.reminder", "1234567"),
            ("rma.expired", "1234567"),
            ("rma.reminder", "7654321"),
            ("rma.expired", "7654321"),  # billing flagged in the same event
        ]
    )
    assert claims[0].state is ClaimState.VOID and claims[0].reminded_at is not None
    assert all(r.state is RmaState.EXPIRED for r in rmas)
    assert rmas[1].billing_flagged_at is not None and rmas[0].billing_flagged_at is None


def test_reminder_time_and_catch_up_skips_reminder() -> None:
    c = _incomplete()
    assert c.deadline_at is not None
    just_before = c.deadline_at - timedelta(days=3)
    ts = sweep([c], [], just_before, POLICY)
    assert [t.kind for t in ts] == ["claim.reminder"]
    assert ts[0].reply is not None and ts[0].reply.template == "reminder"
    assert sweep([c], [], just_before - timedelta(seconds=1), POLICY) == []
    assert [t.kind for t in sweep([c], [], c.deadline_at, POLICY)] == ["claim.void"]


def test_reminders_can_be_switched_off() -> None:
    c = _incomplete()
    assert c.deadline_at is not None
    off = SweepPolicy(claim_reminder_before=None, rma_reminder_before=None)
    assert sweep([c], [_rma()], c.deadline_at - timedelta(hours=1), off) == []


def test_billing_flagged_when_due_after_a_notice() -> None:
    from mailbot.core.rma_machine import notify_shipment

    r = notify_shipment(_rma(advance=True), "JJD1", None, None, NOW).snapshot
    assert r.bill_due_at is not None
    ts = sweep([], [r], r.bill_due_at, POLICY)
    assert [t.kind for t in ts] == ["rma.bill_due"] and ts[0].reply is None
    assert sweep([], [ts[0].snapshot], r.bill_due_at, POLICY) == []


def test_next_due() -> None:
    c, r = _incomplete(), _rma()
    assert c.deadline_at is not None
    assert next_due([c], [r], POLICY) == min(
        c.deadline_at - timedelta(days=3), r.expires_at - timedelta(days=2)
    )
    assert next_due([new_claim()], [replace(r, state=RmaState.CLOSED)], POLICY) is None
    reminded = replace(c, reminded_at=NOW + timedelta(days=1))
    assert next_due([reminded], [], POLICY) == c.deadline_at


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError):
        sweep([], [], NOW.replace(tzinfo=None), POLICY)


@settings(max_examples=60, deadline=None)
@given(
    claim_offsets=st.lists(st.integers(min_value=0, max_value=24 * 20), max_size=4),
    rma_offsets=st.lists(
        st.tuples(st.integers(min_value=0, max_value=24 * 20), st.booleans()), max_size=4
    ),
    sweep_gaps=st.lists(st.integers(min_value=0, max_value=24 * 12), min_size=1, max_size=8),
)
def test_any_sweep_schedule_gives_each_deadline_one_event(
    claim_offsets: list[int], rma_offsets: list[tuple[int, bool]], sweep_gaps: list[int]
) -> None:
    """Whatever the schedule (every hour, once after a long outage, twice at one moment),
    each claim is reminded at most once and voided once; each RMA reminded at most once,
    expired once, billing flagged at most once; at most one event per item per sweep."""
    claims = [
        receive_documents(
            new_claim(code=str(i)), cashback(), [receipt(vat_number=None)], NOW + timedelta(hours=h)
        ).snapshot
        for i, h in enumerate(claim_offsets)
    ]
    rmas = [
        issued_rma(NOW + timedelta(hours=h), number=f"R{i}", advance=adv)
        for i, (h, adv) in enumerate(rma_offsets)
    ]
    seen: list[tuple[str, str]] = []
    at = NOW
    for gap in sweep_gaps:
        at += timedelta(hours=gap)
        ts = sweep(claims, rmas, at, POLICY)
        items = [getattr(t.snapshot, "code", None) or t.snapshot.number for t in ts]
        assert len(items) == len(set(items))
        seen += [(t.kind, item) for t, item in zip(ts, items, strict=True)]
        claims, rmas = _apply(claims, rmas, ts)
        assert sweep(claims, rmas, at, POLICY) == []
    assert len(seen) == len(set(seen))  # no kind of event twice for one item
    final = at + timedelta(days=60)
    ts = sweep(claims, rmas, final, POLICY)
    claims, rmas = _apply(claims, rmas, ts)
    assert all(c.state is ClaimState.VOID for c in claims)
    assert all(r.state is RmaState.EXPIRED for r in rmas)
    assert all((r.billing_flagged_at is not None) == r.advance_replacement for r in rmas)
