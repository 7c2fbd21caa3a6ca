"""The intake against a real Dovecot: nothing lost, nothing processed twice.

Each test checks the two invariants the same way: every Message-ID appended is in
the ledger with a final status, and the recording processor committed exactly one
Event per processed row (a double processing would show as two).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from mailbot.core.errors import MailboxError
from mailbot.daemon import loop
from mailbot.daemon.loop import Backoff
from mailbot.devtools.dovecot import LocalDovecot
from mailbot.intake import sync
from mailbot.intake.ledger import Factory
from mailbot.intake.mailbox import Mailbox
from mailbot.store.db import transaction
from mailbot.store.models import MailboxState, Message
from tests.integration._ingest_helpers import (
    IGNORE_MARK,
    RAISE_MARK,
    append_all,
    folder_count,
    imap_client,
    ledger_message_ids,
    make_factory,
    make_mail,
    make_settings,
    processing_counts,
    recording_processor,
    status_counts,
    wait_for,
)

REPO = Path(__file__).resolve().parents[2]


def assert_once_each(factory: Factory, expected_ids: set[str]) -> None:
    """Every expected mail is in the ledger exactly once (ignoring duplicate rows),
    and every non-duplicate row that was processed was processed exactly once."""
    seen = Counter(m for m in ledger_message_ids(factory) if m)
    dups = Counter(m for m in ledger_message_ids(factory, "duplicate") if m)
    firsts = seen - dups
    assert set(firsts) == expected_ids
    assert all(n == 1 for n in firsts.values()), [m for m, n in firsts.items() if n > 1]
    doubles = {mid: n for mid, n in processing_counts(factory).items() if n != 1}
    assert doubles == {}


@pytest.fixture
def daemon_thread() -> Iterator[list[threading.Thread]]:
    threads: list[threading.Thread] = []
    yield threads
    for t in threads:
        t.join(timeout=10)
        assert not t.is_alive(), "daemon did not stop"


def start_daemon(threads: list[threading.Thread], settings, factory, processor) -> threading.Event:  # type: ignore[no-untyped-def]
    stop = threading.Event()
    t = threading.Thread(
        target=loop.run,
        args=(settings, processor, stop),
        kwargs={"factory": factory, "backoff": Backoff(initial=0.2, maximum=1.0)},
        daemon=True,
    )
    t.start()
    threads.append(t)
    return stop


def test_500_arriving_while_the_daemon_runs(
    dovecot: LocalDovecot, tmp_path: Path, db_url: str, daemon_thread: list[threading.Thread]
) -> None:
    sqlite_url = db_url  # runs on SQLite and on PostgreSQL
    factory = make_factory(sqlite_url)
    settings = make_settings(dovecot.port, tmp_path, sqlite_url, batch_size=40)
    stop = start_daemon(daemon_thread, settings, factory, recording_processor())
    mails = [make_mail(i) for i in range(500)]
    # Two concurrent appenders, so mail lands while batches are being fetched and moved.
    appenders = [
        threading.Thread(target=append_all, args=(dovecot.port, mails[k::2])) for k in (0, 1)
    ]
    for t in appenders:
        t.start()
    for t in appenders:
        t.join()
    try:
        assert wait_for(lambda: status_counts(factory).get("processed", 0) >= 500, 60)
        assert wait_for(lambda: folder_count(dovecot.port, "mailbot/processed") == 500, 20)
    finally:
        stop.set()
    assert status_counts(factory) == {"processed": 500}
    assert folder_count(dovecot.port, "INBOX") == 0
    assert_once_each(factory, {f"<t-{i}@example.no>" for i in range(500)})
    with transaction(factory) as s:
        assert s.scalar(select(func.count()).where(Message.mailbox_done.is_(False))) == 0


def _spawn(dovecot: LocalDovecot, tmp_path: Path, url: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen(
        [sys.executable, "-m", "tests.integration._daemon_main", str(dovecot.port),
         str(tmp_path), url],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "d.err", "ab"),
    )  # fmt: skip


def test_kill_9_mid_batch_then_restart(dovecot: LocalDovecot, tmp_path: Path, db_url: str) -> None:
    factory = make_factory(db_url)
    n = 150
    append_all(dovecot.port, [make_mail(i) for i in range(n)])
    proc = _spawn(dovecot, tmp_path, db_url)
    try:
        # kill while a batch is committed to the ledger but only partly processed
        def mid_batch() -> bool:
            c = status_counts(factory)
            return c.get("processed", 0) >= 10 and c.get("pending", 0) >= 1

        assert wait_for(mid_batch, 30, interval=0.02)
    finally:
        proc.kill()
        proc.wait(10)
    after_kill = status_counts(factory)
    assert after_kill.get("pending", 0) >= 1 and after_kill.get("processed", 0) < n
    proc = _spawn(dovecot, tmp_path, db_url)
    try:
        assert wait_for(lambda: status_counts(factory) == {"processed": n}, 60)
        assert wait_for(lambda: folder_count(dovecot.port, "mailbot/processed") == n, 20)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0  # SIGTERM: finish the current message, exit 0
    assert folder_count(dovecot.port, "INBOX") == 0
    assert_once_each(factory, {f"<t-{i}@example.no>" for i in range(n)})


def test_dovecot_restart_mid_run_recovers(
    dovecot: LocalDovecot, tmp_path: Path, sqlite_url: str, daemon_thread: list[threading.Thread]
) -> None:
    factory = make_factory(sqlite_url)
    settings = make_settings(dovecot.port, tmp_path, sqlite_url)
    stop = start_daemon(daemon_thread, settings, factory, recording_processor())
    try:
        append_all(dovecot.port, [make_mail(i) for i in range(20)])
        assert wait_for(lambda: status_counts(factory).get("processed", 0) == 20, 20)
        dovecot.restart()  # drops the daemon's connection (it was in IDLE)
        append_all(dovecot.port, [make_mail(i) for i in range(20, 40)])
        assert wait_for(lambda: status_counts(factory).get("processed", 0) == 40, 30)
        assert wait_for(lambda: folder_count(dovecot.port, "mailbot/processed") == 40, 10)
    finally:
        stop.set()
    assert_once_each(factory, {f"<t-{i}@example.no>" for i in range(40)})


def _recreate_folder(port: int, folder: str, mails: list[bytes]) -> None:
    c = imap_client(port)
    try:
        c.delete_folder(folder)
        c.create_folder(folder)
        for raw in mails:
            c.append(folder, raw)
    finally:
        c.logout()


@pytest.mark.parametrize("action", ["flag", "move"])
def test_uidvalidity_change_processes_nothing_twice(
    dovecot: LocalDovecot, tmp_path: Path, db_url: str, action: str
) -> None:
    factory = make_factory(db_url)
    settings = make_settings(
        dovecot.port, tmp_path, db_url, folders=("Claims",), processed_action=action
    )
    mails = [make_mail(i) for i in range(8)]
    append_all(dovecot.port, mails, folder="Claims")
    assert loop.once(settings, recording_processor(), factory=factory).processed == 8
    with transaction(factory) as s:
        before = s.get(MailboxState, ("claims@test", "Claims"))
        assert before is not None
        old_validity = before.uidvalidity
    # The folder is deleted and recreated holding the same mails, plus one new one.
    _recreate_folder(dovecot.port, "Claims", [*mails, make_mail(100)])
    counts = loop.once(settings, recording_processor(), factory=factory)
    with transaction(factory) as s:
        after = s.get(MailboxState, ("claims@test", "Claims"))
        assert after is not None and after.uidvalidity != old_validity
    assert (counts.processed, counts.duplicate) == (1, 8)
    assert status_counts(factory) == {"processed": 9, "duplicate": 8}
    assert_once_each(factory, {f"<t-{i}@example.no>" for i in [*range(8), 100]})
    if action == "move":
        assert folder_count(dovecot.port, "Claims") == 0
    # and a third pass finds nothing
    assert loop.once(settings, recording_processor(), factory=factory).fetched == 0


def test_raising_message_is_quarantined_and_reprocess_retries_it(
    dovecot: LocalDovecot, tmp_path: Path, db_url: str
) -> None:
    factory = make_factory(db_url)
    settings = make_settings(dovecot.port, tmp_path, db_url)
    mails = [make_mail(i) for i in range(6)]
    mails[2] = make_mail(2, extra_header=RAISE_MARK)
    mails[4] = make_mail(4, extra_header=IGNORE_MARK)
    append_all(dovecot.port, mails)
    counts = loop.once(settings, recording_processor(), factory=factory)
    assert (counts.processed, counts.ignored, counts.failed) == (4, 1, 1)
    assert folder_count(dovecot.port, "mailbot/quarantine") == 1
    assert folder_count(dovecot.port, "mailbot/processed") == 5
    with transaction(factory) as s:
        bad = s.scalars(select(Message).where(Message.status == "failed")).one()
        assert bad.message_id == "<t-2@example.no>"
        assert bad.error and "RuntimeError" in bad.error
        assert "kari@example.no" not in bad.error  # masked in the stored traceback
        bad_id = bad.id
    assert bad_id not in processing_counts(factory)  # its Event was rolled back

    # reprocess --failed after "the bug was fixed": a processor that does not raise
    def fixed(session, msg, raw):  # type: ignore[no-untyped-def]
        return recording_processor()(session, msg, raw.replace(RAISE_MARK, b"X-Fixed: 1"))

    result = sync.reprocess(factory, fixed)
    assert result.processed == 1
    assert status_counts(factory) == {"processed": 5, "ignored": 1}
    assert processing_counts(factory)[bad_id] == 1
    # processed rows are never run again, even when named
    assert sync.reprocess(factory, fixed, message_ids=[bad_id]).processed == 0
    assert processing_counts(factory)[bad_id] == 1


class SpyMailbox(Mailbox):
    fetched: list[int]
    fail_moves = 0

    def fetch_bodies(self, uids):  # type: ignore[no-untyped-def]
        self.fetched.extend(uids)
        return super().fetch_bodies(uids)

    def move(self, uids, target):  # type: ignore[no-untyped-def]
        if SpyMailbox.fail_moves > 0 and target.endswith("processed"):
            SpyMailbox.fail_moves -= 1
            raise MailboxError("injected move failure")
        return super().move(uids, target)


def test_oversized_quarantined_without_download(
    dovecot: LocalDovecot, tmp_path: Path, db_url: str
) -> None:
    factory = make_factory(db_url)
    settings = make_settings(dovecot.port, tmp_path, db_url, max_message_bytes=4000)
    append_all(dovecot.port, [make_mail(1), make_mail(2, pad=10_000), make_mail(3)])
    spy = SpyMailbox(settings.imap)
    spy.fetched = []
    counts = loop.once(
        settings, recording_processor(), factory=factory, mailbox_factory=lambda: spy
    )
    assert (counts.processed, counts.quarantined) == (2, 1)
    assert spy.fetched == [1, 3]  # UID 2 was never downloaded
    with transaction(factory) as s:
        big = s.scalars(select(Message).where(Message.status == "quarantined")).one()
        assert big.uid == 2 and big.raw_path is None and big.sha256 is None
        assert big.reason and big.reason.startswith("too_large")
        assert big.message_id == "<t-2@example.no>"  # from the header alone
    assert folder_count(dovecot.port, "mailbot/quarantine") == 1
    assert len(list((tmp_path / "raw").rglob("*.eml"))) == 2  # only the two small ones


def test_failed_mailbox_action_is_retried_not_reprocessed(
    dovecot: LocalDovecot, tmp_path: Path, db_url: str
) -> None:
    factory = make_factory(db_url)
    settings = make_settings(dovecot.port, tmp_path, db_url)
    append_all(dovecot.port, [make_mail(i) for i in range(3)])
    SpyMailbox.fail_moves = 1
    spy = SpyMailbox(settings.imap)
    spy.fetched = []
    counts = loop.once(
        settings, recording_processor(), factory=factory, mailbox_factory=lambda: spy
    )
    assert (counts.processed, counts.mailbox_errors) == (3, 3)
    assert folder_count(dovecot.port, "INBOX") == 3  # still there
    with transaction(factory) as s:
        assert s.scalar(select(func.count()).where(Message.mailbox_done.is_(False))) == 3
    counts = loop.once(settings, recording_processor(), factory=factory)
    assert (counts.fetched, counts.mailbox_actions) == (0, 3)
    assert folder_count(dovecot.port, "mailbot/processed") == 3
    assert_once_each(factory, {f"<t-{i}@example.no>" for i in range(3)})


def test_move_without_the_move_extension_copies_flags_and_expunges(
    dovecot: LocalDovecot, tmp_path: Path, sqlite_url: str
) -> None:
    settings = make_settings(dovecot.port, tmp_path, sqlite_url)
    append_all(dovecot.port, [make_mail(i) for i in range(4)])
    with Mailbox(settings.imap) as mb:
        assert mb.has("MOVE") and mb.has("UIDPLUS")
        mb._caps = mb._caps - {"MOVE"}  # pretend an older server
        mb.select("INBOX")
        mb.move([1, 3], "Elsewhere")
        # a mail another client marked \Deleted must survive our UID EXPUNGE
        mb.client.add_flags([2], [b"\\Deleted"], silent=True)
        mb.move([4], "Elsewhere")
    assert folder_count(dovecot.port, "Elsewhere") == 3
    assert folder_count(dovecot.port, "INBOX") == 1


def test_database_down_is_no_reconnect_storm(
    dovecot: LocalDovecot, tmp_path: Path, daemon_thread: list[threading.Thread]
) -> None:
    # IMAP works, the database cannot be opened: every pass fails after a good login.
    # The backoff must grow across those logins instead of starting over at each.
    from sqlalchemy import create_engine

    from mailbot.store.db import session_factory

    append_all(dovecot.port, [make_mail(0)])
    dead = session_factory(create_engine(f"sqlite:///{tmp_path / 'no-such-dir' / 'db.sqlite'}"))
    settings = make_settings(dovecot.port, tmp_path, "sqlite://")
    log_file = dovecot.base / "dovecot.log"

    def logins() -> int:
        return log_file.read_text(errors="replace").count("Login: user=<claims>")

    before = logins()
    stop = threading.Event()
    t = threading.Thread(
        target=loop.run,
        args=(settings, recording_processor(), stop),
        kwargs={"factory": dead, "backoff": Backoff(initial=0.2, maximum=60.0)},
        daemon=True,
    )
    t.start()
    daemon_thread.append(t)
    try:
        assert wait_for(lambda: logins() > before, 10)
        stop.wait(4.0)
    finally:
        stop.set()
    n = logins() - before
    # delays 0.1-0.2, 0.2-0.4, 0.4-0.8, 0.8-1.6, 1.6-3.2 s: at most 6 logins in 4 s
    # (restarting the backoff after each login: one every 0.1-0.2 s, 20 or more)
    assert 2 <= n <= 6, n
    assert folder_count(dovecot.port, "INBOX") == 1  # the mail waits, untouched
