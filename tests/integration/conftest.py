"""Fixtures of the integration tests: a store migrated to the newest schema, and an
operator whose database is upgraded, on the default SQLite file or on both engines."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from mailbot.devtools.dovecot import LocalDovecot
from mailbot.devtools.scenario import Operator
from mailbot.devtools.smtpsink import SmtpSink
from mailbot.store import db
from tests.integration._daemon_helpers import upgraded_operator


@pytest.fixture
def op(tmp_path: Path, dovecot: LocalDovecot, smtp_sink: SmtpSink) -> Operator:
    """`mailbot` against a throwaway Dovecot and SMTP sink, its database upgraded."""
    return upgraded_operator(tmp_path, dovecot, smtp_sink)


@pytest.fixture
def op_db(tmp_path: Path, dovecot: LocalDovecot, smtp_sink: SmtpSink, db_url: str) -> Operator:
    """As `op`, on SQLite and on PostgreSQL."""
    return upgraded_operator(tmp_path, dovecot, smtp_sink, db_url)


@pytest.fixture
def store(db_url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on `db_url` (SQLite and PostgreSQL), its schema migrated to the newest."""
    engine = db.make_engine(db_url)
    db.upgrade(engine)
    try:
        yield db.session_factory(engine)
    finally:
        engine.dispose()
