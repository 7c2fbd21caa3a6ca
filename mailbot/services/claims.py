"""Claim use cases for the CLI and the pipeline: register, import, show, list, pay.

Registration issues a fresh 8-digit code (Damm check digit) from the system's
random source, retries on the rare collision, stores the claim, writes the event
and queues the confirmation mail in one transaction.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailbot.config import Settings
from mailbot.core import claims as claim_sm
from mailbot.core.codes import generate_code
from mailbot.core.errors import InputError as InputError
from mailbot.core.errors import MailbotError
from mailbot.core.snapshots import to_plain as to_json
from mailbot.ruleset.loader import RuleSet
from mailbot.services.records import claim_by_code, claim_snapshot, record
from mailbot.store import models as m

_RNG = random.SystemRandom()


@dataclass(frozen=True)
class Registration:
    campaign: str
    email: str
    name: str
    model: str
    serial: str | None = None
    purchase_date: str | None = None
    retailer: str | None = None
    country: str | None = None
    language: str | None = None
    price: str | None = None
    currency: str | None = None
    first_campaign_mail_on: str | None = None
    company: str | None = None
    """"yes"/"true"/"1" when the buyer registered as a company."""


def ensure_campaign_row(session: Session, rules: RuleSet, campaign_id: str, now: datetime) -> None:
    campaign = rules.campaign(campaign_id)
    row = session.get(m.Campaign, campaign_id)
    if row is None:
        row = m.Campaign(id=campaign_id)
        session.add(row)
    row.kind = "cashback"
    row.name = campaign.name
    row.rules_version = rules.version
    row.loaded_at = now
    session.flush()


def _date(text: str | None, what: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InputError(f"{what}: not a date YYYY-MM-DD: {text!r}") from None


def _decimal(text: str | None) -> Decimal | None:
    if not text:
        return None
    try:
        return Decimal(text.strip().replace(",", "."))
    except InvalidOperation:
        raise InputError(f"price: not a number: {text!r}") from None


def _new_code(session: Session) -> str:
    for _ in range(50):
        code = generate_code(_RNG)
        if claim_by_code(session, code) is None:
            return code
    raise MailbotError("could not find a free registration code")  # pragma: no cover


def register_claim(
    session: Session, reg: Registration, *, rules: RuleSet, settings: Settings, now: datetime
) -> m.Claim:
    if "@" not in reg.email:
        raise InputError(f"email: not an address: {reg.email!r}")
    campaign = rules.campaign(reg.campaign)
    if reg.language and reg.language not in ("nb", "sv", "da", "fi", "en"):
        raise InputError(f"language: one of nb, sv, da, fi, en, not {reg.language!r}")
    ensure_campaign_row(session, rules, campaign.id, now)
    transition = claim_sm.register(
        code=_new_code(session),
        campaign=campaign,
        email=reg.email.strip(),
        name=reg.name.strip(),
        model=reg.model.strip(),
        now=now,
        language=reg.language or None,
        serial=reg.serial or None,
        purchase_date=_date(reg.purchase_date, "purchase date"),
        retailer=reg.retailer or None,
        country=reg.country or None,
        price=_decimal(reg.price),
        currency=reg.currency or None,
        company=(reg.company or "").strip().lower() in ("1", "yes", "true", "ja"),
        first_campaign_mail_on=_date(reg.first_campaign_mail_on, "first campaign mail date"),
    )
    _, _ = record(
        session, transition, settings=settings, rules_version=rules.version, campaign_id=campaign.id
    )
    row = claim_by_code(session, transition.snapshot.code)
    assert row is not None
    return row


def mark_paid(
    session: Session, code: str, *, rules: RuleSet, settings: Settings, now: datetime
) -> m.Claim:
    row = claim_by_code(session, code)
    if row is None:
        raise InputError(f"no claim with code {code}")
    try:
        transition = claim_sm.mark_paid(claim_snapshot(row), now)
    except claim_sm.TransitionError as exc:
        raise InputError(f"claim {code}: {exc}") from None
    record(
        session,
        transition,
        settings=settings,
        rules_version=rules.version,
        claim_row=row,
        campaign_id=row.campaign_id,
    )
    return row


def claim_summary(row: m.Claim) -> dict[str, Any]:
    payout = None
    if row.payout_amount is not None:
        payout = {"amount": str(row.payout_amount), "currency": row.payout_currency}
    return {
        "code": row.code,
        "campaign": row.campaign_id,
        "state": row.state,
        "reasons": ",".join(row.state_reasons or []),
        "email": row.email,
        "model": row.model,
        "deadline_at": row.deadline_at.isoformat() if row.deadline_at else None,
        "payout": payout,
        "address_undeliverable": row.address_undeliverable,
        "created_at": row.created_at.isoformat(),
    }


def claim_details(session: Session, row: m.Claim) -> dict[str, Any]:
    snap = claim_snapshot(row)
    out = claim_summary(row)
    out["missing_documents"] = list(snap.missing_documents)
    out["missing_fields"] = list(snap.missing_fields)
    out["facts"] = dict(snap.facts)
    out["registered"] = {
        "name": snap.name,
        "serial": snap.serial,
        "purchase_date": snap.purchase_date.isoformat() if snap.purchase_date else None,
        "retailer": snap.retailer,
        "country": snap.country,
        "language": snap.language,
    }
    docs = session.scalars(
        select(m.Document).where(m.Document.claim_id == row.id).order_by(m.Document.id)
    ).all()
    out["documents"] = [
        {
            "id": d.id,
            "filename": d.filename,
            "type": d.content_type,
            "size": d.size,
            "sha256": d.sha256,
            "accepted": d.accepted,
            "refusal": d.refusal,
            "kind": d.document_kind,
        }
        for d in docs
    ]
    events = session.scalars(
        select(m.Event).where(m.Event.claim_id == row.id).order_by(m.Event.id)
    ).all()
    out["events"] = [
        {
            "at": e.created_at.isoformat(),
            "kind": e.kind,
            "from": e.from_state,
            "to": e.to_state,
            "reasons": e.reasons,
            "evidence": e.evidence,
            "rules_version": e.rules_version,
            "message": e.message_id,
        }
        for e in events
    ]
    replies = session.scalars(
        select(m.Outbox).where(m.Outbox.claim_id == row.id).order_by(m.Outbox.id)
    ).all()
    out["replies"] = [
        {
            "template": o.template,
            "status": o.status,
            "subject": o.subject,
            "sent_at": o.sent_at.isoformat() if o.sent_at else None,
        }
        for o in replies
    ]
    return to_json(out)  # type: ignore[no-any-return]


def list_claims(
    session: Session, *, state: str | None = None, campaign: str | None = None, limit: int = 100
) -> Sequence[m.Claim]:
    q = select(m.Claim).order_by(m.Claim.id.desc()).limit(limit)
    if state:
        q = q.where(m.Claim.state == state)
    if campaign:
        q = q.where(m.Claim.campaign_id == campaign)
    return session.scalars(q).all()
