"""Values from mail fit the columns on both engines, and senders' names are not echoed.

The pipeline runs inside one transaction over a ledger row made here, on SQLite and
on PostgreSQL: PostgreSQL refuses a value longer than its column (and NULs), SQLite
does not, so only these runs show that both behave the same.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from mailbot import resources
from mailbot.config import Settings, load_settings
from mailbot.devtools.samples import customer_mail
from mailbot.intake.pipeline import Pipeline
from mailbot.ruleset.loader import load_ruleset
from mailbot.services.claims import Registration, register_claim
from mailbot.services.documents import ReadResult
from mailbot.store import db
from mailbot.store import models as m

NOW = datetime(2023, 1, 20, 10, tzinfo=UTC)


def _settings(tmp: Path, url: str) -> Settings:
    base = load_settings(environ={"MAILBOT_PATHS_DATA_DIR": str(tmp)})
    return dataclasses.replace(base, database=dataclasses.replace(base.database, url=url))


def _unread(content: bytes, name: str, campaign: object, serial: str | None) -> ReadResult:
    return ReadResult(None, "error", 0.0, "not read in this test")


def _process(tmp: Path, url: str, raw: bytes, register: bool) -> tuple[str, db.Factory]:
    settings = _settings(tmp, url)
    engine = db.make_engine(url)
    db.upgrade(engine)
    factory = db.session_factory(engine)
    rules = load_ruleset(resources.rules_dir())
    code = ""
    if register:
        with db.transaction(factory) as s:
            code = register_claim(
                s,
                Registration("cashback-2022", "kari@example.no", "Kari", "WH-1000XM5"),
                rules=rules,
                settings=settings,
                now=NOW,
            ).code
    raw = raw.replace(b"CODE", code.encode())
    pipeline = Pipeline(settings, rules=lambda: rules, clock=lambda: NOW, reader=_unread)
    with db.transaction(factory) as s:
        row = m.Message(
            account="claims",
            folder="INBOX",
            uidvalidity=1,
            uid=1,
            size=len(raw),
            status="pending",
            fetched_at=NOW,
        )
        s.add(row)
        s.flush()
        pipeline(s, row, raw)
    return code, factory


def test_long_content_type_and_filename_are_cut_not_quarantined(
    tmp_path: Path, db_url: str
) -> None:
    long_type = "application/x-" + "y" * 150
    long_name = "kvittering-" + "ø" * 400 + "\x00.bin"
    raw = customer_mail(
        sender="kari@example.no",
        to="claims@brand.example",
        subject="Kvittering CODE",
        body="Vedlagt.",
        attachments=[(long_name, long_type, b"\x01\x02 not a known file type " * 10)],
    )
    _, factory = _process(tmp_path, db_url, raw, register=True)
    with factory() as s:
        [doc] = s.scalars(select(m.Document)).all()
        assert doc.content_type == long_type[:100]
        assert len(doc.filename) <= 255 and doc.filename.startswith("kvittering-ø")
        assert "\x00" not in doc.filename
        assert not doc.accepted
        [reply] = s.scalars(select(m.Outbox).where(m.Outbox.template != "confirmation")).all()
        assert reply.to_addr == "kari@example.no"


def test_the_senders_display_name_is_not_echoed_in_the_policy_answer(
    tmp_path: Path, db_url: str
) -> None:
    name = "Visit evil.example now " * 400  # ~9 000 characters
    raw = customer_mail(
        sender=f'"{name.strip()}" <per@example.no>',
        to="claims@brand.example",
        subject="shipment notification rma #7654321",
        body="Tracking 1Z999AA10123456784",
    )
    _, factory = _process(tmp_path, db_url, raw, register=False)
    with factory() as s:
        [reply] = s.scalars(select(m.Outbox)).all()
        assert reply.template == "rma_policy" and reply.to_addr == "per@example.no"
        for text in (reply.body_text, reply.body_html or "", reply.subject):
            assert "evil.example" not in text
            assert "Visit" not in text


def test_a_sender_address_longer_than_any_address_is_not_answered(
    tmp_path: Path, db_url: str
) -> None:
    raw = customer_mail(
        sender="p" * 400 + "@example.no",
        to="claims@brand.example",
        subject="shipment notification rma #7654321",
        body="Tracking 1Z999AA10123456784",
    )
    _, factory = _process(tmp_path, db_url, raw, register=False)
    with factory() as s:
        assert s.scalars(select(m.Outbox)).all() == []
        [event] = s.scalars(select(m.Event)).all()
        assert event.kind == "rma.unknown_notice"
