"""The desk's queue of approved claims to pay (SQLite and PostgreSQL): an approved claim
is listed until it is paid, due by the day its payment is promised (the campaign's
`payment_days`), sorted with the rest by what is due first, filtered and counted."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, timedelta

from sqlalchemy import select

from mailbot.store import db
from mailbot.store import models as m
from mailbot.web import queue
from tests.integration.test_web import T0, Desk, csrf_of
from tests.integration.test_web import desk as desk

PAY_BY = "2023-02-17"
"""Approved on 2023-01-20 (Oslo) + the cashback campaign's 28 payment days."""


def _approve(desk: Desk, email: str) -> str:
    code = desk.register(email)
    rc, _, err = desk.cli("claims", "decide", code, "approve", "--price", "3990", "--why", "x")
    assert rc == 0, err
    return code


def _in_review(desk: Desk, email: str, due_in_days: int) -> str:
    code = desk.register(email)
    desk.cli("claims", "decide", code, "reject", "--reason", "not_verified", "--why", "x")
    desk.cli("claims", "reopen", code, "--why", "x")
    with db.transaction(desk.app.factory) as s:
        claim = s.scalars(select(m.Claim).where(m.Claim.code == code)).one()
        claim.deadline_at = T0 + timedelta(days=due_in_days)
    return code


def _rows(html: str) -> list[str]:
    return re.findall(r'<tr id="(queue-[a-z]+-[^"]+)"', html)


def test_an_approved_claim_waits_to_be_paid_by_its_promised_day(desk: Desk) -> None:
    unpaid, paid = _approve(desk, "a@example.no"), _approve(desk, "b@example.no")
    assert desk.cli("claims", "pay", paid, "--reference", "batch 7", "--why", "x")[0] == 0
    sooner, later = _in_review(desk, "c@example.no", 2), _in_review(desk, "d@example.no", 40)
    assert desk.login("vera") == 303

    page = desk.client.get("/").text
    row = re.search(rf'<tr id="queue-payment-{unpaid}".*?</tr>', page, re.S)
    assert row is not None, page
    assert "approved claim to pay" in row.group(0) and f"pay by {PAY_BY}" in row.group(0)
    assert "500.00 NOK" in row.group(0) and f'href="/claims/{unpaid}"' in row.group(0)
    # the end of the promised day in Oslo, shown in UTC like every deadline
    assert f"{PAY_BY} 23:00 UTC" in row.group(0)
    assert f"queue-payment-{paid}" not in page  # paid: nothing left to do
    rows = _rows(page)
    # due first: review due in 2 days, the payment due in 28, review due in 40
    assert rows.index(f"queue-claim-{sooner}") < rows.index(f"queue-payment-{unpaid}")
    assert rows.index(f"queue-payment-{unpaid}") < rows.index(f"queue-claim-{later}")
    assert "approved claim to pay (1)</option>" in page  # counted with the other kinds

    only = desk.client.get("/?kind=payment").text
    assert _rows(only) == [f"queue-payment-{unpaid}"]
    assert f"queue-payment-{unpaid}" not in desk.client.get("/?kind=review").text
    assert _rows(desk.client.get("/?reason=pay+by").text) == [f"queue-payment-{unpaid}"]
    assert _rows(desk.client.get("/?kind=payment&campaign=promo-20pct").text) == []


def test_paid_from_the_desk_leaves_the_queue(desk: Desk) -> None:
    code = _approve(desk, "a@example.no")
    assert desk.login("anne") == 303
    page = desk.client.get(f"/claims/{code}")
    form = {"csrf_token": csrf_of(page.text), "why": "paid in batch 7", "reference": "batch 7"}
    done = desk.client.post(f"/claims/{code}/do/pay", data=form, follow_redirects=False)
    assert done.status_code == 303
    with db.transaction(desk.app.factory) as s:
        assert s.scalars(select(m.Claim.state).where(m.Claim.code == code)).one() == "paid"
    assert f"queue-payment-{code}" not in desk.client.get("/").text
    assert "approved claim to pay (0)</option>" in desk.client.get("/").text


def test_a_campaign_without_payment_days_gives_no_deadline(desk: Desk) -> None:
    code = _approve(desk, "a@example.no")
    rules = desk.app.rules
    cashback = rules.campaigns["cashback-2022"]
    no_term = replace(
        rules, campaigns={**rules.campaigns, cashback.id: replace(cashback, payment_days=None)}
    )
    with db.transaction(desk.app.factory) as s:
        items, counts, _ = queue.build(s, kind="payment", rules=no_term)
        assert [(it.ref, it.deadline) for it in items] == [(code, None)]
        assert "the campaign promises no payment day" in items[0].reason
        with_term, _, _ = queue.build(s, kind="payment", rules=rules)
        assert with_term[0].deadline is not None
        assert with_term[0].deadline.astimezone(UTC).isoformat() == f"{PAY_BY}T23:00:00+00:00"
    assert counts["payment"] == 1


def test_a_long_queue_draws_the_most_due_page_and_counts_the_rest(desk: Desk) -> None:
    code = _approve(desk, "a@example.no")
    with db.transaction(desk.app.factory) as s:
        for uid in range(1, 261):
            when = T0 - timedelta(minutes=uid)
            where = {"account": "a", "folder": "INBOX", "uidvalidity": 1, "uid": uid}
            s.add(m.Message(**where, status="quarantined", reason="parse_error", fetched_at=when))
    assert desk.login("vera") == 303
    page = desk.client.get("/").text
    rows = _rows(page)
    assert len(rows) == 250 and rows[0] == f"queue-payment-{code}"  # the one with a deadline
    assert 'id="queue-count">261<' in page
    more = re.search(r'<p class="muted" id="queue-more">(.*?)</p>', page, re.S)
    assert more is not None and more.group(1).startswith("11 more, due later")
    assert 'href="/?kind=quarantined" id="queue-more-quarantined">quarantined mail (11)' in page
    assert "queue-more" not in desk.client.get("/?kind=payment").text
