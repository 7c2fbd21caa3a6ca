"""Engine and session setup, SQLite pragmas, and migration to the newest schema.

SQLite (the embedded default) gets WAL journaling and foreign keys switched on for
every connection; PostgreSQL needs the `postgres` extra (psycopg 3). Migrations are
alembic scripts shipped inside the package, run with `mailbot db upgrade`.

The driver's "cannot reach the database" errors leave this module as
`StoreUnavailable` (a TransientError): callers back off on the tree's class and
never need to know SQLAlchemy's.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from mailbot.core.errors import StoreError, StoreUnavailable

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _normalise(url: str) -> str:
    # Operators write postgresql://; psycopg 3 is the driver we ship in the extra.
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str, **kwargs: Any) -> Engine:
    url = _normalise(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {"timeout": 30})
    else:
        kwargs.setdefault("pool_pre_ping", True)
    try:
        engine = create_engine(url, **kwargs)
    except (SQLAlchemyError, ImportError) as exc:
        raise StoreError(f"cannot open database {parsed.render_as_string()}: {exc}") from exc
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets `mailbot messages list` read while the daemon writes; busy_timeout
    # makes a concurrent writer wait instead of failing at once.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


# What a database that is down, restarting, unreachable, locked past busy_timeout or
# dropping the connection looks like through SQLAlchemy, whatever the driver.
# Constraint and data errors are not in it: those are about the row, not the server.
UNAVAILABLE = (OperationalError, InterfaceError)


@contextmanager
def unavailable_is_transient() -> Iterator[None]:
    """Raise the driver's connection errors from the block as StoreUnavailable."""
    try:
        yield
    except UNAVAILABLE as exc:
        # the driver's own message only: SQLAlchemy's text adds the statement and its
        # parameters, which may hold addresses
        cause = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        detail = cause[0][:300] if cause else ""
        raise StoreUnavailable(f"database unavailable: {exc.__class__.__name__}: {detail}") from exc


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any exception.

    A database that cannot be reached raises StoreUnavailable (transient)."""
    session = factory()
    try:
        with unavailable_is_transient():
            yield session
            session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = None
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision` (alembic), creating the database if needed."""
    from alembic import command

    cfg = _alembic_config(engine)
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    except SQLAlchemyError as exc:
        raise StoreError(f"migration failed: {exc}") from exc


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    cfg = _alembic_config(None)  # type: ignore[arg-type]
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head


def check_schema(engine: Engine) -> str | None:
    """None when the database is reachable and at the newest migration, else the problem."""
    try:
        current = current_revision(engine)
        if "messages" not in inspect(engine).get_table_names():
            return "database has no tables: run `mailbot db upgrade`"
    except SQLAlchemyError as exc:
        return f"cannot connect: {exc.__class__.__name__}: {str(exc).splitlines()[0]}"
    head = head_revision()
    if current != head:
        return f"schema at {current}, newest is {head}: run `mailbot db upgrade`"
    return None
