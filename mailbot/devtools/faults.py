"""Faults injected into a real store, for the tests and benches that show mailbot survives them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker


def fail_sent_writes(factory: sessionmaker[Session], times: int) -> list[int]:
    """Make the next `times` writes of an outbox row's `sent` fail as a lost database would.

    The one-element list counts the failures still to come."""
    engine = factory.kw["bind"]
    left = [times]

    def before(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("UPDATE outbox") and "sent_at" in statement and left[0] > 0:
            left[0] -= 1
            raise engine.dialect.loaded_dbapi.OperationalError("injected: database gone")

    event.listen(engine, "before_cursor_execute", before)
    return left
