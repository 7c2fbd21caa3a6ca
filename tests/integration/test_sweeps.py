"""Deadline sweeps over the database: idempotent, and catching up after downtime."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select

from mailbot import resources
from mailbot.config import Settings, load_settings
from mailbot.core import claims as claim_sm
from mailbot.core.claim_state import DocumentEvidence
from mailbot.core.receipt import DocumentKind
from mailbot.ruleset.loader import load_ruleset
from mailbot.services.claims import Registration, register_claim
from mailbot.services.records import claim_snapshot, record
from mailbot.services.rmas import issue_rma
from mailbot.services.sweeps import run_sweeps
from mailbot.store import db
from mailbot.store import models as m

RULES = load_ruleset(resources.rules_dir())
T0 = datetime(2023, 1, 20, 10, tzinfo=UTC)


def _settings(tmp: Path, url: str) -> Settings:
    base = load_settings(environ={"MAILBOT_PATHS_DATA_DIR": str(tmp)})
    return dataclasses.replace(base, database=dataclasses.replace(base.database, url=url))


def test_sweeps_are_idempotent_and_catch_up(tmp_path: Path, db_url: str) -> None:
    settings = _settings(tmp_path, db_url)
    engine = db.make_engine(db_url)
    db.upgrade(engine)
    factory = db.session_factory(engine)
    campaign = RULES.campaign("cashback-2022")
    with db.transaction(factory) as s:
        row = register_claim(
            s,
            Registration(
                "cashback-2022", "k@example.no", "Kari", "WH-1000XM5", purchase_date="2022-12-12"
            ),
            rules=RULES,
            settings=settings,
            now=T0,
        )
        # only a serial photo arrives: incomplete, with a deadline 14 days out
        photo = DocumentEvidence(
            kind=DocumentKind.SERIAL_PHOTO,
            fields=None,
            refused=None,
            sha256="ab",
            filename="serial.jpg",
        )
        t = claim_sm.receive_documents(claim_snapshot(row), campaign, [photo], T0)
        record(s, t, settings=settings, rules_version=RULES.version, claim_row=row)
        assert row.state == "incomplete" and row.deadline_at is not None
        deadline = row.deadline_at
        issue_rma(
            s,
            email="o@example.no",
            product="Sonos One",
            kind="warranty",
            serial=None,
            language="nb",
            rules=RULES,
            settings=settings,
            now=T0,
        )

    def events() -> int:
        with db.transaction(factory) as s:
            return int(s.scalar(select(func.count()).select_from(m.Event)) or 0)

    # nothing due yet
    assert run_sweeps(factory, settings, RULES, T0).claims == 0
    # two days before the deadline: one reminder, once
    before = deadline.replace(hour=0) - (deadline - T0) / 7
    first = run_sweeps(factory, settings, RULES, before)
    n = events()
    again = run_sweeps(factory, settings, RULES, before)
    assert (again.claims, again.rmas) == (0, 0) and events() == n
    assert first.claims + first.rmas >= 1
    # after a long downtime: each overdue item gets exactly one transition
    late = datetime(2023, 6, 1, tzinfo=UTC)
    caught = run_sweeps(factory, settings, RULES, late)
    assert (caught.claims, caught.rmas) == (1, 1), caught
    assert run_sweeps(factory, settings, RULES, late).claims == 0
    with db.transaction(factory) as s:
        assert s.scalars(select(m.Claim.state)).one() == "void"
        assert s.scalars(select(m.Rma.state)).one() == "expired"
        # every transition that asked for a mail queued exactly one
        queued = s.scalar(select(func.count()).select_from(m.Outbox)) or 0
        with_reply = (
            s.scalar(
                select(func.count())
                .select_from(m.Event)
                .where(m.Event.id.in_(select(m.Outbox.event_id)))
            )
            or 0
        )
        assert queued == with_reply
    engine.dispose()
