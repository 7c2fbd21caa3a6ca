"""Shared fixtures: a real Dovecot, a real SMTP sink, SQLite and PostgreSQL databases."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from mailbot.devtools import dovecot as dovecot_mod
from mailbot.devtools.dovecot import LocalDovecot
from mailbot.devtools.smtpsink import SmtpSink

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus"
# CI runs the property tests on fixed examples (the same on every run) and without the
# per-example deadline, so a busy machine or a lucky draw cannot turn a green main red;
# a developer's run keeps drawing new examples.
settings.register_profile("ci", derandomize=True, deadline=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

PG_URL = os.environ.get("MAILBOT_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def dovecot() -> Iterator[LocalDovecot]:
    """A private Dovecot on a free loopback port; user `claims` / password `secret`."""
    why = dovecot_mod.available()
    if why:
        pytest.skip(why)
    server = LocalDovecot(users={"claims": "secret", "other": "secret2"})
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """An aiosmtpd server on a free loopback port capturing every mail."""
    with SmtpSink() as sink:
        yield sink


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mailbot.db'}"


def _pg_reachable() -> str | None:
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (extra 'postgres')"
    try:
        with psycopg.connect(PG_URL, connect_timeout=3):
            return None
    except Exception as exc:  # any failure means: no server to test against
        return f"no PostgreSQL answers at {PG_URL}: {exc.__class__.__name__}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    why = _pg_reachable()
    if why:
        pytest.skip(why)
    import psycopg

    schema = f"mbtest_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Run a test once on SQLite and once on PostgreSQL."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return str(request.getfixturevalue(name))
