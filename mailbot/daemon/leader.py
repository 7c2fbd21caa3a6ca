"""Who does what when several daemons share one database.

On PostgreSQL any number of `mailbot run` / `mailbot worker` processes share the
work: one of them at a time (the *leader*) holds the IMAP intake, every one of them
processes the ledger's pending rows, and a sweep run is done by one process at a
time. Both exclusions are PostgreSQL session-level advisory locks (`AdvisoryLock`),
each held on a connection of its own: a leader that dies, or loses its database
connection, loses the lock with it, and the next one takes it within a retry
(about a second). No columns, no heartbeat rows: the database already knows which
sessions are alive. TCP keepalives on the lock connection bound how long a machine
that vanished without closing its socket keeps the lock (about 15 s).

SQLite is single-process: `SingleDaemonLock` makes a second daemon on the same
database file refuse to start, with a message saying why, instead of two writers
racing through the busy timeout.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from mailbot.core.errors import ConfigError

log = logging.getLogger(__name__)

INTAKE = "intake"
SWEEP = "sweep"

# Keepalive on the lock connection: a peer machine that is gone without a FIN or
# RST is detected after idle + interval * count seconds (5 + 3 * 3 = 14 s).
_KEEPALIVE = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 3,
    "keepalives_count": 3,
}


def is_shared(engine: Engine) -> bool:
    """Can several processes work on this database at once (PostgreSQL)?"""
    return engine.dialect.name == "postgresql"


def lock_key(schema: str, name: str) -> int:
    """A signed 64-bit advisory key for `name` within one schema: tests (and
    installations) that share a server in separate schemas do not contend."""
    digest = hashlib.blake2b(f"mailbot:{schema}:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class AdvisoryLock:
    """A PostgreSQL session-level advisory lock held on a dedicated connection.

    `try_acquire()` never blocks; `held()` asks the server (one round trip), so a
    connection that broke (database restart, network) reads as "not held" at once.
    Not thread-safe: one owner thread calls it.
    """

    def __init__(self, engine: Engine, name: str) -> None:
        self.name = name
        args = _KEEPALIVE if engine.dialect.driver == "psycopg" else {}
        # Its own engine without a pool: the lock's connection must never be handed
        # to other work, and closing it must really close the session.
        self._engine = create_engine(engine.url, poolclass=NullPool, connect_args=args)
        self._conn: Connection | None = None

    def try_acquire(self) -> bool:
        if self._conn is not None:
            return self.held()
        try:
            conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        except SQLAlchemyError:
            return False
        try:
            schema = conn.scalar(text("SELECT current_schema()")) or "public"
            got = bool(
                conn.scalar(
                    text("SELECT pg_try_advisory_lock(:k)"), {"k": lock_key(schema, self.name)}
                )
            )
        except SQLAlchemyError:
            got = False
        if not got:
            conn.close()
            return False
        self._conn = conn
        log.info("advisory lock taken", extra={"lock": self.name, "pid": os.getpid()})
        return True

    def held(self) -> bool:
        if self._conn is None:
            return False
        try:
            self._conn.execute(text("SELECT 1"))
            return True
        except SQLAlchemyError:
            log.warning("advisory lock lost with its connection", extra={"lock": self.name})
            self._drop()
            return False

    def release(self) -> None:
        # closing the session releases every advisory lock it holds
        self._drop()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except SQLAlchemyError:
                pass  # the connection is already gone, and with it the lock

    def dispose(self) -> None:
        self._drop()
        self._engine.dispose()


@contextmanager
def exclusive(engine: Engine, name: str) -> Iterator[bool]:
    """Yield True when this process may do the `name` job now (no other process
    holds it); on SQLite always True (one process)."""
    if not is_shared(engine):
        yield True
        return
    lock = AdvisoryLock(engine, name)
    try:
        yield lock.try_acquire()
    finally:
        lock.dispose()


class SingleDaemonLock:
    """An exclusive `flock` on `<database file>.daemon.lock` for as long as the
    daemon runs; the kernel drops it when the process dies, kill -9 included."""

    def __init__(self, database_url: str, data_dir: Path) -> None:
        database = make_url(database_url).database
        if database and database != ":memory:":
            self.path = Path(database).resolve().with_name(Path(database).name + ".daemon.lock")
        else:
            self.path = data_dir / "daemon.lock"
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        """Raise ConfigError when another daemon holds the database."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = self.path.open("a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            other = f.read().strip() or "unknown"
            f.close()
            raise ConfigError(
                f"another mailbot daemon (pid {other}) already runs on this SQLite database "
                f"({self.path.name[: -len('.daemon.lock')] or self.path}). SQLite is "
                "single-process: stop the other daemon, or use PostgreSQL "
                "([database] url = postgresql://...) to run several daemons or workers."
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        self._file = f

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing drops the flock
            self._file = None
