"""Claim use cases for the CLI and the pipeline: register, import, show, list, pay.

Registration issues a fresh 8-digit code (Damm check digit) from the system's
random source, retries on the rare collision, stores the claim, writes the event
and queues the confirmation mail in one transaction.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailbot.config import Settings
from mailbot.core import claim_machine as claim_sm
from mailbot.core.campaign import Campaign
from mailbot.core.codes import generate_code
from mailbot.core.errors import InputError as InputError
from mailbot.core.errors import MailbotError
from mailbot.core.languages import LANGUAGES
from mailbot.core.snapshots import to_plain
from mailbot.ruleset.loader import RuleSet
from mailbot.services.records import (
    claim_by_code,
    claim_snapshot,
    event_row,
    owned_rows,
    record,
)
from mailbot.store import models as m
from mailbot.store.limits import problem
from parsers.mail.address import registration_address

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
    external_id: str | None = None
    """The registration form's own id for this claim (CSV import): makes re-imports
    of the same row register nothing."""
    extra: tuple[tuple[str, str], ...] = ()
    """Columns of an import the admin chose to keep, stored with the claim."""


# Operator values checked against the column that stores them (mailbot.store.limits):
# refused with the field and the limit, never cut.
_LIMITED = (
    ("name", m.Claim.name),
    ("model", m.Claim.model),
    ("serial", m.Claim.serial),
    ("retailer", m.Claim.retailer),
    ("country", m.Claim.country),
    ("currency", m.Claim.currency),
    ("language", m.Claim.language),
)

# Date forms registration exports use: ISO, and day-first as the Nordic countries
# write it. A fixed list, not a lenient parser: "03/04/2023" is always 3 April,
# never guessed, and anything else is refused with the forms named.
DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%d.%m.%Y", "%d/%m/%Y", "%d-%m-%Y", "%d.%m.%y")
DATE_FORMS_TEXT = "YYYY-MM-DD, YYYY/MM/DD, DD.MM.YYYY, DD/MM/YYYY, DD-MM-YYYY or DD.MM.YY"


def parse_date(text: str | None, what: str) -> date | None:
    if not text or not text.strip():
        return None
    value = text.strip()
    # spreadsheet exports often carry a time of day after the date: the date is what counts
    head = value.replace("T", " ").split(" ", 1)[0]
    for form in DATE_FORMATS:
        try:
            return datetime.strptime(head, form).date()
        except ValueError:
            continue
    raise InputError(f"{what}: not a date ({DATE_FORMS_TEXT}): {text!r}")


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


def _decimal(text: str | None) -> Decimal | None:
    if not text:
        return None
    try:
        return Decimal(text.strip().replace(" ", "").replace(",", "."))
    except InvalidOperation:
        raise InputError(f"price: not a number: {text!r}") from None


def _new_code(session: Session) -> str:
    for _ in range(50):
        code = generate_code(_RNG)
        if claim_by_code(session, code) is None:
            return code
    raise MailbotError("could not find a free registration code")  # pragma: no cover


def _campaign(rules: RuleSet, campaign_id: str) -> Campaign:
    if campaign_id not in rules.campaigns:
        known = ", ".join(sorted(rules.campaigns)) or "none"
        raise InputError(f"campaign: no campaign {campaign_id!r} (known: {known})")
    return rules.campaign(campaign_id)


def closed_reason(campaign: Campaign, now: datetime, first_mail_on: date | None) -> str | None:
    """Why `campaign` takes no more registrations at `now`, or None while it does."""
    today = campaign.local_date(now)
    last = campaign.claim_window.last_day()
    if last is not None and today > last:
        return f"campaign {campaign.id} closed for registrations after {last.isoformat()}"
    weeks = campaign.claim_window.weeks_after_first_mail
    if weeks is not None and first_mail_on is not None:
        until = first_mail_on + timedelta(weeks=weeks)
        if today > until:
            return (
                f"campaign {campaign.id} takes claims {weeks} weeks after the first campaign"
                f" mail ({first_mail_on.isoformat()}): closed after {until.isoformat()}"
            )
    return None


@dataclass(frozen=True)
class Checked:
    """A registration whose every value was checked: what register_claim stores."""

    reg: Registration
    campaign: Campaign
    email: str
    model: str
    purchase_date: date | None
    first_mail_on: date | None
    price: Decimal | None


def check_registration(
    reg: Registration, rules: RuleSet, now: datetime, *, force: bool = False
) -> Checked:
    """Every operator value checked before anything is written: InputError names the
    field. A closed campaign is refused with the reason unless `force`."""
    campaign = _campaign(rules, reg.campaign.strip())
    email = registration_address(reg.email)
    for field_name, column in (("email", m.Claim.email), *_LIMITED):
        value = email if field_name == "email" else getattr(reg, field_name)
        why = problem(column, value, field_name)
        if why:
            raise InputError(why)
    if not reg.name.strip():
        raise InputError("name: empty")
    item = campaign.model(reg.model.strip())
    if item is None:
        known = ", ".join(i.name for i in campaign.models)
        raise InputError(
            f"model: {reg.model.strip()!r} is not a model of {campaign.id} (models: {known})"
        )
    # the campaign's own spelling ("wh1000xm5" is stored as WH-1000XM5): lists and
    # re-imports see one model however it was typed
    model = item.name
    if reg.language and reg.language not in LANGUAGES:
        raise InputError(f"language: one of {', '.join(LANGUAGES)}, not {reg.language!r}")
    if reg.external_id is not None and len(reg.external_id) > EXTERNAL_ID_MAX:
        raise InputError(f"external_id: at most {EXTERNAL_ID_MAX} characters")
    first_mail_on = parse_date(reg.first_campaign_mail_on, "first campaign mail date")
    checked = Checked(
        reg=reg,
        campaign=campaign,
        email=email,
        model=model,
        purchase_date=parse_date(reg.purchase_date, "purchase date"),
        first_mail_on=first_mail_on,
        price=_decimal(reg.price),
    )
    closed = closed_reason(campaign, now, first_mail_on)
    if closed and not force:
        raise InputError(f"{closed}; --force registers it anyway")
    return checked


EXTERNAL_ID_MAX = 200


def register_claim(
    session: Session,
    reg: Registration,
    *,
    rules: RuleSet,
    settings: Settings,
    now: datetime,
    force: bool = False,
) -> m.Claim:
    c = check_registration(reg, rules, now, force=force)
    ensure_campaign_row(session, rules, c.campaign.id, now)
    transition = claim_sm.register(
        code=_new_code(session),
        campaign=c.campaign,
        email=c.email,
        name=reg.name.strip(),
        model=c.model,
        now=now,
        language=reg.language or None,
        serial=(reg.serial or "").strip() or None,
        purchase_date=c.purchase_date,
        retailer=(reg.retailer or "").strip() or None,
        country=(reg.country or "").strip() or None,
        price=c.price,
        currency=(reg.currency or "").strip() or None,
        company=(reg.company or "").strip().lower() in ("1", "yes", "true", "ja"),
        first_campaign_mail_on=c.first_mail_on,
    )
    _, _ = record(
        session,
        transition,
        settings=settings,
        rules_version=rules.version,
        campaign_id=c.campaign.id,
    )
    row = claim_by_code(session, transition.snapshot.code)
    assert row is not None
    if reg.external_id or reg.extra:
        # beside the snapshot, which save_claim keeps (a new dict: JSON columns do
        # not see in-place changes)
        row.facts = {
            **row.facts,
            REGISTRATION_KEY: {"external_id": reg.external_id, "extra": dict(reg.extra)},
        }
    return row


REGISTRATION_KEY = "registration"
"""`claims.facts[...]`: what the registration form said beyond the snapshot."""


def find_registered(session: Session, c: Checked, *, external_id: str | None) -> m.Claim | None:
    """The claim an earlier import of this registration made: by the form's id when
    the file has one, else by campaign + address + model + serial."""
    if external_id:
        ext = m.Claim.facts[REGISTRATION_KEY]["external_id"].as_string()
        q = select(m.Claim).where(m.Claim.campaign_id == c.campaign.id, ext == external_id)
        return session.scalars(q.order_by(m.Claim.id).limit(1)).first()
    serial = (c.reg.serial or "").strip() or None
    q = select(m.Claim).where(
        m.Claim.campaign_id == c.campaign.id,
        func.lower(m.Claim.email) == c.email.lower(),
        m.Claim.model == c.model,
        m.Claim.serial.is_(None) if serial is None else m.Claim.serial == serial,
    )
    return session.scalars(q.order_by(m.Claim.id).limit(1)).first()


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
    out["corrections"] = dict(snap.corrections)  # an operator's values, beside the facts read
    out["registered"] = {
        "name": snap.name,
        "serial": snap.serial,
        "purchase_date": snap.purchase_date.isoformat() if snap.purchase_date else None,
        "retailer": snap.retailer,
        "country": snap.country,
        "language": snap.language,
    }
    # the form's id and any columns an import kept (`claims import --extra-columns keep`)
    out["registration_form"] = (row.facts or {}).get(REGISTRATION_KEY)
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
        for d in owned_rows(session, m.Document, claim_id=row.id)
    ]
    out["events"] = [
        event_row(e) | {"message": e.message_id}
        for e in owned_rows(session, m.Event, claim_id=row.id)
    ]
    out["replies"] = [
        {
            "template": o.template,
            "status": o.status,
            "subject": o.subject,
            "sent_at": o.sent_at.isoformat() if o.sent_at else None,
        }
        for o in owned_rows(session, m.Outbox, claim_id=row.id)
    ]
    return to_plain(out)  # type: ignore[no-any-return]


def list_claims(
    session: Session, *, state: str | None = None, campaign: str | None = None, limit: int = 100
) -> Sequence[m.Claim]:
    q = select(m.Claim).order_by(m.Claim.id.desc()).limit(limit)
    if state:
        q = q.where(m.Claim.state == state)
    if campaign:
        q = q.where(m.Claim.campaign_id == campaign)
    return session.scalars(q).all()
