"""The schema migrates and works on SQLite and on a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from mailbot.store import db
from mailbot.store.models import Campaign, Claim, Event, Message, Outbox


def test_upgrade_creates_all_tables_and_is_idempotent(db_url: str) -> None:
    engine = db.make_engine(db_url)
    db.upgrade(engine)
    db.upgrade(engine)  # a second run changes nothing
    tables = set(inspect(engine).get_table_names())
    assert {
        "claims",
        "rmas",
        "campaigns",
        "messages",
        "documents",
        "extractions",
        "events",
        "outbox",
        "mailbox_state",
    } <= tables
    assert db.check_schema(engine) is None
    engine.dispose()


def test_address_lookups_use_the_lower_email_index(db_url: str) -> None:
    """Every queued reply checks lower(email) on claims and RMAs: an index, not a scan."""
    engine = db.make_engine(db_url)
    db.upgrade(engine)
    # (SQLAlchemy's inspector skips expression indexes on SQLite: ask the catalogue)
    catalogue = (
        "SELECT name FROM sqlite_master WHERE type = 'index'"
        if engine.dialect.name == "sqlite"
        else "SELECT indexname FROM pg_indexes"
    )
    with engine.connect() as conn:
        names = set(conn.execute(text(catalogue)).scalars())
    assert {"ix_claims_email_lower", "ix_rmas_email_lower"} <= names
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            plan = conn.execute(
                text("EXPLAIN QUERY PLAN SELECT id FROM claims WHERE lower(email) = 'a@b.no'")
            ).all()
        assert "ix_claims_email_lower" in " ".join(str(row) for row in plan)
    engine.dispose()


def test_check_schema_reports_missing_migration(db_url: str) -> None:
    engine = db.make_engine(db_url)
    assert "db upgrade" in (db.check_schema(engine) or "")
    engine.dispose()


def _claim(code: str, email: str, state: str, now: datetime, **columns: Any) -> Claim:
    """A claim of cashback-2022 created and last changed at `now`."""
    return Claim(
        code=code,
        campaign_id="cashback-2022",
        email=email,
        state=state,
        created_at=now,
        updated_at=now,
        **columns,
    )


def _inbox_mail(now: datetime) -> Message:
    """The ledger row of INBOX uid 1."""
    return Message(
        account="acc", folder="INBOX", uidvalidity=1, uid=1, status="pending", fetched_at=now
    )


def _reply(message_id: str, event_id: int, now: datetime) -> Outbox:
    """A queued reply to `event_id`."""
    return Outbox(
        message_id=message_id,
        event_id=event_id,
        template="t",
        to_addr="a@b.c",
        subject="s",
        body_text="b",
        status="queued",
        created_at=now,
    )


@pytest.fixture
def factory(db_url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on a database upgraded to the newest schema."""
    engine = db.make_engine(db_url)
    db.upgrade(engine)
    yield db.session_factory(engine)
    engine.dispose()


def test_roundtrip_and_constraints(factory: sessionmaker[Session]) -> None:
    now = datetime(2023, 1, 2, 3, 4, 5, tzinfo=UTC)
    with db.transaction(factory) as s:
        s.add(Campaign(id="cashback-2022", name="Cashback"))
        s.add(_claim("12345674", "a@example.no", "registered", now, facts={"note": "æøå"}))
        s.add(_inbox_mail(now))
    with db.transaction(factory) as s:
        claim = s.scalars(select(Claim)).one()
        assert claim.created_at == now and claim.created_at.tzinfo is not None
        assert claim.facts == {"note": "æøå"}
        s.add(
            Event(
                claim_id=claim.id,
                kind="registered",
                to_state="registered",
                reasons=["ok"],
                created_at=now,
            )
        )
    # the ledger key is unique: the same (account, folder, uidvalidity, uid) twice fails
    with pytest.raises(IntegrityError), db.transaction(factory) as s:
        s.add(_inbox_mail(now))
    # one reply per event
    with db.transaction(factory) as s:
        event_id = s.scalars(select(Event.id)).one()
        s.add(_reply("<1@x>", event_id, now))
    with pytest.raises(IntegrityError), db.transaction(factory) as s:
        s.add(_reply("<2@x>", event_id, now))


def test_sqlite_pragmas(sqlite_url: str) -> None:
    engine = db.make_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_naive_datetimes_are_refused(factory: sessionmaker[Session]) -> None:
    with pytest.raises(Exception, match="naive"), db.transaction(factory) as s:
        s.add(Campaign(id="x", loaded_at=datetime(2023, 1, 1)))


def test_directory_sees_a_claim_closed_earlier_in_the_same_transaction(
    factory: sessionmaker[Session],
) -> None:
    """Group commit: mail 1 approves a claim (not flushed yet), mail 2 from the same
    sender must not be matched to it as an open claim."""
    from mailbot.store.directory import StoreClaimDirectory

    now = datetime(2023, 1, 2, 3, 4, 5, tzinfo=UTC)
    with db.transaction(factory) as s:
        s.add(Campaign(id="cashback-2022", name="Cashback"))
        for code, email in (("12345674", "Kari@Example.no"), ("87654321", "kari@example.no")):
            s.add(_claim(code, email, "incomplete", now))
    with db.transaction(factory) as s, s.no_autoflush:
        directory = StoreClaimDirectory(s)
        assert [r.code for r in directory.open_claims_for("KARI@example.no")] == [
            "12345674",
            "87654321",
        ]
        first = s.scalars(select(Claim).where(Claim.code == "12345674")).one()
        first.state = "approved"  # decided, not flushed
        assert [r.code for r in directory.open_claims_for("kari@example.no")] == ["87654321"]
