"""RMA use cases for the CLI: issue, show, list, receive.

The RMA number is 7 digits with a Damm check digit (`mailbot.core.codes`), drawn
from the system's random source; it is written `RMA# 1234567` in mails.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailbot.config import Settings
from mailbot.core import rma_machine as rma_sm
from mailbot.core.codes import generate_rma_number
from mailbot.core.snapshots import to_plain
from mailbot.ruleset.loader import RuleSet
from mailbot.services.claims import InputError
from mailbot.services.records import event_row, owned_rows, record, rma_by_number, rma_snapshot
from mailbot.store import models as m
from mailbot.store.limits import problem
from parsers.mail.address import registration_address

_RNG = random.SystemRandom()


def issue_rma(
    session: Session,
    *,
    email: str,
    product: str,
    kind: Literal["warranty", "return"],
    serial: str | None,
    language: str | None,
    rules: RuleSet,
    settings: Settings,
    now: datetime,
) -> m.Rma:
    email = registration_address(email)  # the same strict check as claims
    for field, column, value in (
        ("product", m.Rma.product, product),
        ("serial", m.Rma.serial, serial),
        ("language", m.Rma.language, language),
    ):
        if why := problem(column, value, field):
            raise InputError(why)
    for _ in range(50):
        number = generate_rma_number(_RNG)
        if rma_by_number(session, number) is None:
            break
    transition = rma_sm.issue(
        number=number,
        email=email.strip(),
        product=product.strip(),
        policy=rules.returns,
        now=now,
        kind=kind,
        serial=serial or None,
        language=language or None,
    )
    record(session, transition, settings=settings, rules_version=rules.version)
    row = rma_by_number(session, number)
    assert row is not None
    return row


def rma_summary(row: m.Rma) -> dict[str, Any]:
    return {
        "number": row.number,
        "state": row.state,
        "kind": row.kind,
        "product": row.product,
        "email": row.email,
        "issued_at": row.issued_at.isoformat(),
        "expires_at": row.expires_at.isoformat(),
        "tracking_number": row.tracking_number,
        "carrier": row.carrier,
        "dropoff_at": row.dropoff_at.isoformat() if row.dropoff_at else None,
    }


def rma_details(session: Session, row: m.Rma) -> dict[str, Any]:
    out = rma_summary(row)
    snap = rma_snapshot(row)
    out["notices"] = to_plain(list(snap.notices))
    out["events"] = [event_row(e) for e in owned_rows(session, m.Event, rma_id=row.id)]
    return out


def list_rmas(session: Session, *, state: str | None = None, limit: int = 100) -> Sequence[m.Rma]:
    q = select(m.Rma).order_by(m.Rma.id.desc()).limit(limit)
    if state:
        q = q.where(m.Rma.state == state)
    return session.scalars(q).all()
