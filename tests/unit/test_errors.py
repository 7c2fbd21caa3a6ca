"""The exception tree is what callers decide on: the store raises it, the ledger
and the daemon catch it, and every failure mailbot defines lives in it."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from mailbot.core import errors
from mailbot.intake import ledger
from mailbot.store.db import session_factory, transaction
from mailbot.store.rawstore import RawStore
from tests.integration._ingest_helpers import make_factory, make_mail, status_counts


def test_every_failure_class_lives_in_the_tree() -> None:
    from mailbot.core.transition import TransitionError
    from mailbot.outbound.smtp import RecipientRejected, SmtpConnectError  # subclasses, in smtp.py
    from mailbot.services.claims import InputError
    from parsers.document.ocr import OcrTimeout

    # the old import paths still name the very same classes
    assert TransitionError is errors.TransitionError
    assert InputError is errors.InputError
    assert OcrTimeout is errors.OcrTimeout
    transient = (errors.StoreUnavailable, errors.MailboxError, SmtpConnectError)
    assert all(issubclass(c, errors.TransientError) for c in transient)
    assert issubclass(RecipientRejected, errors.PermanentError)
    assert issubclass(errors.OcrTimeout, errors.ExtractionError)
    assert issubclass(errors.TransitionError, ValueError)  # as before the move
    # a database that is not migrated (StoreError) is not transient; one that is
    # unreachable is both
    assert not issubclass(errors.StoreError, errors.TransientError)
    assert issubclass(errors.StoreUnavailable, errors.StoreError)


def test_an_unreachable_database_raises_store_unavailable_without_the_statement(
    tmp_path: Path,
) -> None:
    dead = session_factory(create_engine(f"sqlite:///{tmp_path / 'missing' / 'db.sqlite'}"))
    with pytest.raises(errors.StoreUnavailable) as info, transaction(dead) as s:
        s.execute(text("SELECT :who"), {"who": "kari@example.no"})
    assert isinstance(info.value, errors.TransientError)
    assert isinstance(info.value.__cause__, OperationalError)
    assert "unable to open database file" in str(info.value)
    assert "kari" not in str(info.value) and "SELECT" not in str(info.value)


def _one_pending_row(tmp_path: Path) -> tuple[ledger.Factory, RawStore, int]:
    factory = make_factory(f"sqlite:///{tmp_path / 'db.sqlite'}")
    store = RawStore(tmp_path / "raw")
    ledger.reset_state(factory, "a", "INBOX", 1)
    [row] = ledger.record_batch(
        factory, store, "a", "INBOX", 1, [ledger.Fetched(1, 10, make_mail(1))], 10**6
    )
    return factory, store, row.id


def _database_gone(*_: object) -> ledger.ProcessOutcome:
    raise OperationalError("SELECT 1", {}, Exception("server closed the connection"))


def test_ledger_leaves_the_row_pending_when_the_database_goes_away(tmp_path: Path) -> None:
    factory, store, row_id = _one_pending_row(tmp_path)
    with pytest.raises(errors.StoreUnavailable, match="server closed the connection"):
        ledger.process_one(factory, store, row_id, _database_gone)
    with pytest.raises(errors.StoreUnavailable):
        ledger.process_many(factory, store, [(row_id, None)], _database_gone)
    assert status_counts(factory) == {"pending": 1}  # not failed: not the mail's fault


def test_a_bug_in_the_processor_still_fails_only_that_message(tmp_path: Path) -> None:
    factory, store, row_id = _one_pending_row(tmp_path)

    def bug(*_: object) -> ledger.ProcessOutcome:
        raise KeyError("oops")

    assert ledger.process_one(factory, store, row_id, bug) == "failed"
    assert status_counts(factory) == {"failed": 1}
