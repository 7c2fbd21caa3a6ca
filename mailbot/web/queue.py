"""The desk's queue: everything that waits for a person, each with its reason in words,
its age and its deadline, sorted by what is due first.

Five sources: claims in review, approved claims to pay (due at the end of the day
payment is promised: the campaign's `payment_days` after the approval; no deadline
when the campaign sets none), ledger mails parked for a person (review, held,
questions, documents for a closed claim, quarantined, failed; a mail an operator has
attached somewhere is done), replies the outbox could not deliver (refused by SMTP or
outcome unknown) and returned items received but not closed. The page draws the most
due rows first, up to a page (`queue.html`); the rest is reached by filter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from mailbot.log import mask_email, scrub
from mailbot.ruleset.loader import RuleSet
from mailbot.services.messages import PERSON_REASONS, cause, needs_person
from mailbot.store import models as m

KINDS = (
    "review", "payment", "held", "question", "closed_claim", "quarantined", "failed", "outbox",
    "rma",
)  # fmt: skip
KIND_WORDS = {
    "review": "claim or mail in review",
    "payment": "approved claim to pay",
    "held": "mail held (sender doubtful)",
    "question": "question from a customer",
    "closed_claim": "mail for a closed claim",
    "quarantined": "quarantined mail",
    "failed": "mail that failed processing",
    "outbox": "reply not delivered",
    "rma": "returned item to close",
}
LIMIT = 500
"""Rows read per source: a queue longer than this is a backlog to be worked by filter."""


@dataclass(frozen=True)
class Item:
    kind: str
    ref: str
    link: str
    reason: str
    since: datetime
    deadline: datetime | None
    campaign: str | None
    state: str
    dom_id: str

    def age(self, now: datetime) -> str:
        return human_age(now - self.since)


def human_age(delta: Any) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


def _words(code: str) -> str:
    return str(code).replace("_", " ")


def _claims(s: Session) -> list[Item]:
    # only the columns shown: a whole row also decodes the claim's JSON snapshot
    c = m.Claim
    cols = (c.code, c.state_reasons, c.updated_at, c.deadline_at, c.campaign_id, c.state)
    rows = s.execute(
        select(*cols).where(c.state == "review").order_by(c.updated_at).limit(LIMIT)
    ).all()
    return [
        Item(
            kind="review",
            ref=c.code,
            link=f"/claims/{c.code}",
            reason="claim in review: " + (", ".join(map(_words, c.state_reasons or [])) or "-"),
            since=c.updated_at,
            deadline=c.deadline_at,
            campaign=c.campaign_id,
            state=c.state,
            dom_id=f"queue-claim-{c.code}",
        )
        for c in rows
    ]


def _payments(s: Session, rules: RuleSet | None) -> list[Item]:
    c = m.Claim
    # one time from the snapshot JSON (each JSON path parses the whole document), not
    # the snapshot decoded per row; updated_at only stands in for a snapshot without it
    approved = c.facts[("snapshot", "approved_at")].as_string()
    cols = (c.code, c.campaign_id, c.updated_at, c.payout_amount, c.payout_currency, c.state)
    rows = s.execute(
        select(*cols, approved.label("approved_at"))
        .where(c.state == "approved")
        .order_by(c.updated_at)
        .limit(LIMIT)
    ).all()
    campaigns = rules.campaigns if rules is not None else {}
    out = []
    for r in rows:
        campaign = campaigns.get(r.campaign_id)
        at = datetime.fromisoformat(r.approved_at) if r.approved_at else r.updated_at
        day = campaign.pay_by(at) if campaign is not None else None
        amount = f" {r.payout_amount} {r.payout_currency}" if r.payout_amount is not None else ""
        if day is not None:
            when = f"pay by {day.isoformat()}"
        elif campaign is not None:
            when = "the campaign promises no payment day"
        else:
            when = "payment day unknown (campaign not in the rules)"
        out.append(
            Item(
                kind="payment",
                ref=r.code,
                link=f"/claims/{r.code}",
                reason=f"approved{amount}: {when}",
                since=at,
                # the whole promised day of the campaign's calendar; in UTC like the
                # store's times, which the desk shows as UTC
                deadline=campaign.end_of_day(day).astimezone(UTC) if campaign and day else None,
                campaign=r.campaign_id,
                state=r.state,
                dom_id=f"queue-payment-{r.code}",
            )
        )
    return out


def _messages(s: Session) -> list[Item]:
    done = select(m.Event.message_id).where(
        m.Event.kind.in_(("claim.message_attached", "rma.message_attached", "message.dismissed")),
        m.Event.message_id.is_not(None),
    )
    g = m.Message  # not the traceback or the headers: only what the row shows
    stmt = (
        select(g.id, g.status, g.reason, g.fetched_at)
        .add_columns(m.Claim.code, m.Claim.campaign_id, m.Claim.deadline_at, m.Claim.state)
        .outerjoin(m.Claim, m.Claim.id == g.claim_id)
        .where(
            or_(
                g.status.in_(("quarantined", "failed")),
                g.reason.like("review:%"),
                g.reason.in_(PERSON_REASONS),
                g.reason.like("too_large%"),
            ),
            g.id.not_in(done),
        )
        .order_by(g.id)
        .limit(LIMIT)
    )
    out = []
    for r in s.execute(stmt).all():
        kind = needs_person(r.status, r.reason)
        if kind is None:
            continue
        if kind == "review" and r.state == "review":
            continue  # the claim itself is in the queue
        out.append(
            Item(
                kind=kind,
                ref=f"#{r.id}",
                link=f"/messages/{r.id}",
                reason=cause(r.status, r.reason) + (f" (claim {r.code})" if r.code else ""),
                since=r.fetched_at,
                deadline=r.deadline_at,
                campaign=r.campaign_id,
                state=r.status,
                dom_id=f"queue-message-{r.id}",
            )
        )
    return out


def _outbox(s: Session) -> list[Item]:
    o_ = m.Outbox  # not the bodies and the raw message: only what the row shows
    cols = (o_.id, o_.status, o_.last_error, o_.template, o_.to_addr, o_.attempted_at,
            o_.created_at)  # fmt: skip
    stmt = (
        select(*cols, m.Claim.code, m.Claim.campaign_id, m.Rma.number)
        .outerjoin(m.Claim, m.Claim.id == m.Outbox.claim_id)
        .outerjoin(m.Rma, m.Rma.id == m.Outbox.rma_id)
        .where(m.Outbox.status.in_(("failed", "unconfirmed")))
        .order_by(m.Outbox.id)
        .limit(LIMIT)
    )
    out = []
    for o in s.execute(stmt).all():
        code, campaign, number = o.code, o.campaign_id, o.number
        what = "refused or given up" if o.status == "failed" else "delivery unknown"
        error = f": {scrub(o.last_error)[:160]}" if o.last_error else ""
        owner = f" (claim {code})" if code else (f" (RMA {number})" if number else "")
        out.append(
            Item(
                kind="outbox",
                ref=f"reply {o.id}",
                link=f"/outbox/{o.id}",
                reason=f"{o.template} reply to {mask_email(o.to_addr)} {what}{error}{owner}",
                since=o.attempted_at or o.created_at,
                deadline=None,
                campaign=campaign,
                state=o.status,
                dom_id=f"queue-outbox-{o.id}",
            )
        )
    return out


def _rmas(s: Session) -> list[Item]:
    rows = s.scalars(
        select(m.Rma).where(m.Rma.state == "received").order_by(m.Rma.updated_at).limit(LIMIT)
    )
    return [
        Item(
            kind="rma",
            ref=r.number,
            link=f"/rmas/{r.number}",
            reason="item received: close it as replaced or refunded",
            since=r.updated_at,
            deadline=None,
            campaign=r.policy_id,
            state=r.state,
            dom_id=f"queue-rma-{r.number}",
        )
        for r in rows
    ]


def due_order(item: Item) -> tuple[int, datetime, datetime]:
    """Items with a deadline first, the nearest first; then the oldest first."""
    return (0 if item.deadline else 1, item.deadline or item.since, item.since)


def build(
    s: Session,
    *,
    kind: str = "",
    campaign: str = "",
    reason: str = "",
    rules: RuleSet | None = None,
) -> tuple[list[Item], dict[str, int], list[str]]:
    """The filtered queue, counts per kind (unfiltered) and the campaigns seen.
    `rules` gives the campaigns' payment terms (without them, claims to pay have no
    deadline)."""
    items = _claims(s) + _payments(s, rules) + _messages(s) + _outbox(s) + _rmas(s)
    counts = {k: 0 for k in KINDS}
    for it in items:
        counts[it.kind] += 1
    campaigns = sorted({it.campaign for it in items if it.campaign})
    if kind:
        items = [it for it in items if it.kind == kind]
    if campaign:
        items = [it for it in items if it.campaign == campaign]
    if reason:
        needle = reason.strip().lower()
        items = [it for it in items if needle in it.reason.lower()]
    return sorted(items, key=due_order), counts, campaigns
