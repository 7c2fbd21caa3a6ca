"""Several daemons on one PostgreSQL, against a real Dovecot and SMTP sink.

Three processes (two `mailbot run`, one `mailbot worker`) share 1 000 mails: shipment
notices (some RMAs get two, decided one after the other) and receipt photos read by
OCR, on a PostgreSQL cluster of the test's own (`devtools.postgres`). The intake
leader is killed with SIGKILL mid-run (more mail arrives after that, which only a new
leader can fetch); half-way the PostgreSQL server is stopped under the daemons and
started again (more mail arrives meanwhile); then the worker is killed. Every mail
must end once with a final status, no reply may go out twice, no daemon may die or
log an unexpected error, and the claims and RMAs must end as a single-process run of
the same mails (on SQLite) leaves them. SQLite itself refuses a second daemon.
"""

from __future__ import annotations

import functools
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import TypedDict

import pytest
from PIL import Image
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from mailbot.cli.app import App
from mailbot.config import load_settings
from mailbot.core.errors import RowBusy
from mailbot.devtools import postgres as devtools_postgres
from mailbot.devtools import scenario
from mailbot.devtools.dovecot import LocalDovecot
from mailbot.devtools.postgres import LocalPostgres
from mailbot.devtools.samples import receipt_image
from mailbot.devtools.smtpsink import SmtpSink
from mailbot.intake import ledger
from mailbot.intake.ledger import Factory, Fetched
from mailbot.intake.pipeline import lock_for_decision
from mailbot.outbound.delivery import deliver_pending
from mailbot.store import models as m
from mailbot.store.db import transaction
from mailbot.store.rawstore import RawStore
from tests.integration._ingest_helpers import (
    append_all,
    folder_count,
    make_factory,
    make_mail,
    processing_counts,
    recording_processor,
    status_counts,
    wait_for,
)

REPO = Path(__file__).resolve().parents[2]
NOW = "2023-01-20T10:00:00+00:00"  # inside the shipped campaign cashback-2022
# RMAs with one notice, every TWICE_EVERY-th of them with a second; claims with a photo
TEXT, TWICE_EVERY, RECEIPTS = 800, 10, 120
TWICE = TEXT // TWICE_EVERY
HEADERS = BytesHeaderParser()


def _now() -> datetime:
    return datetime.fromisoformat(NOW)


def _config(
    path: Path,
    imap_port: int,
    smtp_port: int,
    data: Path,
    url: str,
    ocr_workers: int = 1,
    **imap: object,
) -> Path:
    sections: dict[str, dict[str, str | int | float | bool]] = {
        "imap": {"idle": True, "poll_seconds": 2, "batch_size": 25, **imap},  # type: ignore[dict-item]
        "ocr": {"workers": ocr_workers},
        # an unknown outcome (the killed leader was mid-send) is never resent on its
        # own: "no reply twice" is then strict (the default resends once, same Message-ID)
        "smtp": {"rate_limit_per_hour": 100000, "resend_unconfirmed": False},
        "schedule": {"deliver_seconds": 1},
        "log": {"format": "json", "level": "INFO"},
    }
    path.write_text(scenario.config_toml(imap_port, smtp_port, data, url, sections=sections))
    return path


@functools.cache  # the reference and the run under test send the same photos
def receipt_photo(i: int) -> bytes:
    """A receipt photo of its own (number, framing, light): distinct difference hashes,
    so no mail is taken for a resubmitted receipt (see bench/e2e.py)."""
    lines = [
        "ELKJØP",
        "Org.nr 988 077 917 MVA",
        f"Kvittering nr {400000 + i}",
        "Dato: 12.12.2022",
        "Sony WH-1000XM5  3990,00",
        "Totalt  3990,00",
    ]
    rng = random.Random(i)
    with Image.open(io.BytesIO(receipt_image(lines))) as paper:
        w, h = paper.size
        grid = Image.new("L", (9, 8))
        grid.putdata([rng.randint(60, 170) for _ in range(72)])
        table = grid.resize((w + 600, h + 500), Image.Resampling.BILINEAR).convert("RGB")
        table.paste(paper.convert("RGB"), (rng.randint(0, 600), rng.randint(0, 500)))
        buf = io.BytesIO()
        table.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _register(
    cfg: Path, text: int = TEXT, receipts: int = RECEIPTS
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """One RMA per text customer and one claim per receipt customer; their confirmation
    mails are delivered now, so the sinks only see what the mails under test cause."""
    app = App(load_settings(cfg), clock=_now)
    app.ensure_schema()
    with transaction(app.factory) as s:
        rmas = [
            (a, scenario.RmaForm(a).create(s, app.rules, app.settings, app.now()))
            for a in (f"text{i}@customer.example" for i in range(text))
        ]
        claims = [
            (a, scenario.ClaimForm(a, f"Kari {i}", country="NO", language="nb").create(
                s, app.rules, app.settings, app.now()
            ))
            for i, a in enumerate(f"receipt{i}@customer.example" for i in range(receipts))
        ]  # fmt: skip
    while deliver_pending(app.factory, app.settings, app.now(), limit=500).sent:
        pass
    app.engine.dispose()
    return rmas, claims


def _mails(rmas: list[tuple[str, str]], claims: list[tuple[str, str]]) -> list[bytes]:
    """In arrival order: receipts spread evenly among the notices; every TWICE_EVERY-th
    RMA gets its notice a second time five mails later, where another process is
    likely to take it while the first is being decided (the same text both times, so
    the outcome does not depend on which one is decided first)."""
    body = scenario.NOTICE_WITH_TRACKING
    notices = [scenario.shipment_notice(a, n, body) for a, n in rmas]
    photos = [scenario.receipt_mail(a, c, receipt_photo(i)) for i, (a, c) in enumerate(claims)]
    out: list[bytes] = []
    for i, notice in enumerate(notices):
        out.append(notice)
        if i >= 5 and (i - 5) % TWICE_EVERY == 0:
            a, n = rmas[i - 5]
            out.append(scenario.shipment_notice(a, n, body))
        # as many photos so far as the share of notices so far
        while len(claims) - len(photos) < (i + 1) * len(claims) // len(notices):
            out.append(photos.pop(0))
    return out + photos


class Outcome(TypedDict):
    states: dict[str, str]  # customer -> claim "state:reasons" or RMA state
    ledger: dict[str, int]  # ledger status -> mails
    broken: list[int]  # RMAs whose events do not chain
    outbox: Counter[str]  # outbox status -> replies
    replies: Counter[str]  # recipient -> replies
    busy: int  # replies not yet sent or given up


def _outcome(cfg: Path) -> Outcome:
    """What the run left: each customer's claim or RMA state, and every ledger status."""
    app = App(load_settings(cfg), clock=_now)
    with transaction(app.factory) as s:
        states = {
            email: f"{state}:{','.join(reasons or [])}"
            for email, state, reasons in s.execute(
                select(m.Claim.email, m.Claim.state, m.Claim.state_reasons)
            )
        }
        states.update(
            {email: state for email, state in s.execute(select(m.Rma.email, m.Rma.state))}
        )
        by_status = select(m.Message.status, func.count()).group_by(m.Message.status)
        ledger = {status: int(n) for status, n in s.execute(by_status)}
        chains_broken = _broken_chains(s)
        by_outbox = select(m.Outbox.status, func.count()).group_by(m.Outbox.status)
        outbox = Counter({status: int(n) for status, n in s.execute(by_outbox)})
        replies = Counter(s.scalars(select(m.Outbox.to_addr)))
    app.engine.dispose()
    return {
        "states": states,
        "ledger": ledger,
        "broken": chains_broken,
        "outbox": outbox,
        "replies": replies,
        "busy": sum(outbox[k] for k in ("queued", "claimed", "sending", "held")),
    }


def _broken_chains(s: Session) -> list[int]:
    """RMAs whose events do not chain (an event's from_state is not the state the
    previous one left): what two decisions at the same time would leave."""
    rows = s.execute(
        select(m.Event.rma_id, m.Event.from_state, m.Event.to_state)
        .where(m.Event.rma_id.is_not(None), m.Event.from_state.is_not(None))
        .order_by(m.Event.rma_id, m.Event.id)
    )
    broken: list[int] = []
    last: dict[int, str | None] = {}
    for rma_id, from_state, to_state in rows:
        assert rma_id is not None
        if rma_id in last and last[rma_id] != from_state:
            broken.append(rma_id)
        last[rma_id] = to_state
    return broken


def _mailbot(cfg: Path, command: str, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen(
        [sys.executable, "-m", "mailbot", "--config", str(cfg), "--now", NOW, command],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=open(log, "ab"),
    )  # fmt: skip


def _leads(log: Path) -> int:
    return log.read_text(errors="replace").count("intake leader: this process fetches")


def _replies(sink: SmtpSink) -> tuple[Counter[str], Counter[str]]:
    """(Message-ID -> times captured, recipient -> replies)."""
    ids: Counter[str] = Counter()
    to: Counter[str] = Counter()
    for c in sink.messages:
        ids[str(HEADERS.parsebytes(c.data)["Message-ID"])] += 1
        to.update(c.rcpt_tos)
    return ids, to


@pytest.fixture
def ref_sink() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink


@pytest.fixture
def private_pg() -> Iterator[LocalPostgres]:
    """A PostgreSQL cluster of this test's own: it is stopped under the daemons, which
    the machine's shared server must not be. Never a skip: without the server
    binaries the test fails, naming what is missing."""
    why = devtools_postgres.available()
    if why:
        pytest.fail(f"this test starts a PostgreSQL cluster of its own: {why}")
    server = LocalPostgres().start()
    try:
        yield server
    finally:
        server.cleanup()


# The last line of a traceback whose cause is the database being down, nothing else
OUTAGE = "mailbot.core.errors.StoreUnavailable: database unavailable: "


def _log_errors(log: Path) -> tuple[list[str], int]:
    """What a daemon's JSON log says went wrong, and how many error records were only
    the database being down (the outbox delivery job logs those with their traceback
    and tries again on its next run). Wrong: a record at level error or above or with
    a traceback for any other cause, and any line that is not a record (the
    interpreter's own traceback when a process crashes)."""
    wrong, outage = [], 0
    for line in log.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            wrong.append(line)
            continue
        if record.get("level") in ("error", "critical") or "exc" in record:
            exc = str(record.get("exc", "")).strip()
            if exc and exc.splitlines()[-1].startswith(OUTAGE):
                outage += 1
            else:
                wrong.append(f"{record.get('event')}: {exc[-400:]}")
    return wrong, outage


def test_three_processes_kill_9_leader_and_worker_and_restart_postgres(
    dovecot: LocalDovecot,
    smtp_sink: SmtpSink,
    ref_sink: SmtpSink,
    private_pg: LocalPostgres,
    sqlite_url: str,
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    # the reference: one process on SQLite, its own folder and sink, the same mails; its
    # photos read two at a time (both cores), which changes nothing of what is decided
    ref = _config(
        tmp_path / "ref.toml", dovecot.port, ref_sink.port, tmp_path / "ref", sqlite_url, 2,
        folders=["Ref"], processed_folder="ref/processed", quarantine_folder="ref/quarantine",
    )  # fmt: skip
    append_all(dovecot.port, _mails(*_register(ref)), folder="Ref")
    before = len(ref_sink.messages)
    # it decides while the run under test is being set up (its own database and sink)
    reference = _mailbot(ref, "once", tmp_path / "ref.log")
    cfg = _config(
        tmp_path / "pg.toml", dovecot.port, smtp_sink.port, tmp_path / "pg", private_pg.url
    )
    mails = _mails(*_register(cfg))
    assert reference.wait(600) == 0, (tmp_path / "ref.log").read_text()[-2000:]
    expected = _outcome(ref)
    del ref_sink.messages[:before]
    total = TEXT + TWICE + RECEIPTS
    assert sum(expected["ledger"].values()) == total
    set_up = time.monotonic() - started

    smtp_sink.messages.clear()
    confirmations = _outcome(cfg)["outbox"]["sent"]
    # the first part now; the second after the leader's kill (only a new leader can
    # fetch it), the third while the database is down (fetched once it is back)
    first, second, third = (
        mails[: total // 2],
        mails[total // 2 : total * 4 // 5],
        mails[total * 4 // 5 :],
    )
    append_all(dovecot.port, first)
    logs = [tmp_path / f"p{k}.log" for k in range(4)]
    procs = [
        _mailbot(cfg, "run", logs[0]),
        _mailbot(cfg, "run", logs[1]),
        _mailbot(cfg, "worker", logs[2]),
    ]
    app = App(load_settings(cfg), clock=_now)

    def finished() -> int:
        with transaction(app.factory) as s:
            return int(s.scalar(select(func.count()).where(m.Message.status != "pending")) or 0)

    run_started = time.monotonic()
    try:
        assert wait_for(lambda: _leads(logs[0]) + _leads(logs[1]) == 1, 60)
        leader = 0 if _leads(logs[0]) else 1
        survivor = 1 - leader
        assert wait_for(lambda: finished() >= total // 6, 180, interval=0.05)
        procs[leader].kill()  # mid-run: rows taken by it go back to the others
        procs[leader].wait(10)
        killed_at = time.monotonic()
        append_all(dovecot.port, second)
        assert wait_for(lambda: _leads(logs[survivor]) == 1, 30)
        failover = time.monotonic() - killed_at

        assert wait_for(lambda: finished() >= total // 2, 240, interval=0.05)
        decided_before = finished()
        app.engine.dispose()
        private_pg.stop()  # fast: every session is ended, mid-transaction or not
        stopped_at = time.monotonic()
        append_all(dovecot.port, third)
        time.sleep(max(0.0, 2.0 - (time.monotonic() - stopped_at)))  # refused meanwhile
        private_pg.start()
        outage = time.monotonic() - stopped_at
        back_at = time.monotonic()
        # the survivor takes the intake again (its lock went with its connection), and
        # deciding goes on
        assert wait_for(lambda: _leads(logs[survivor]) == 2, 60)
        assert wait_for(lambda: finished() > decided_before, 60, interval=0.05)
        resumed = time.monotonic() - back_at
        assert [p.poll() for p in procs if p is not procs[leader]] == [None, None]

        assert wait_for(lambda: finished() >= total * 3 // 4, 180, interval=0.05)
        procs[2].kill()  # the worker, mid-run
        procs[2].wait(10)
        procs.append(_mailbot(cfg, "worker", logs[3]))  # and a new one
        assert wait_for(lambda: finished() == total, 300)
        assert wait_for(lambda: folder_count(dovecot.port, "INBOX") == 0, 30)
        queued = ("queued", "held")
        assert wait_for(lambda: sum(_outcome(cfg)["outbox"][k] for k in queued) == 0, 60)
        run_seconds = time.monotonic() - run_started
        # no daemon died on the way (the killed ones aside)
        assert [p.poll() for p in (procs[survivor], procs[3])] == [None, None]
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        codes = [p.wait(60) for p in procs]
    # Rows the killed leader had claimed or was sending keep their lease (60 s), and the
    # daemons' clock is fixed (--now): let the lease run out here. Claimed rows are
    # sent now; a row that was `sending` becomes `unconfirmed` (it may have gone out).
    later_on = _now() + timedelta(minutes=5)
    while deliver_pending(app.factory, app.settings, later_on, limit=500).sent:
        pass
    time.sleep(1)  # a reply sent twice would show up meanwhile
    app.engine.dispose()
    assert codes[survivor] == 0 and codes[-1] == 0  # the survivors stop cleanly
    # the restart is waited out; nothing went wrong beyond the database being down
    seen = {log.name: _log_errors(log) for log in logs}
    assert {name: wrong for name, (wrong, _) in seen.items()} == {log.name: [] for log in logs}
    outage_errors = sum(n for _, n in seen.values())
    got = _outcome(cfg)
    assert got["busy"] == 0, got["outbox"]
    assert got["ledger"] == expected["ledger"]
    assert got["broken"] == [] and expected["broken"] == []
    assert got["states"] == expected["states"]
    # the same replies decided for the same customers, each captured once at most
    assert got["replies"] == expected["replies"]
    assert set(expected["outbox"]) == {"sent"}
    outbox = got["outbox"]
    assert set(outbox) <= {"sent", "unconfirmed"}, outbox
    ids, to = _replies(smtp_sink)
    assert [mid for mid, n in ids.items() if n > 1] == []  # no reply twice
    sent = outbox["sent"] - confirmations
    assert sent <= sum(to.values()) <= sent + outbox["unconfirmed"]
    assert (
        folder_count(dovecot.port, "mailbot/processed")
        + folder_count(dovecot.port, "mailbot/quarantine")
        == total
    )
    assert failover < 10, failover
    print(
        f"{total} mails: set-up and reference {set_up:.0f} s, three processes {run_seconds:.0f} s; "
        f"intake fail-over after kill -9 {failover:.1f} s; PostgreSQL down {outage:.1f} s, "
        f"deciding again {resumed:.1f} s after it was back ({outage_errors} error records "
        "of the outage itself)"
    )


def test_sqlite_refuses_a_second_daemon(
    dovecot: LocalDovecot, smtp_sink: SmtpSink, sqlite_url: str, tmp_path: Path
) -> None:
    cfg = _config(tmp_path / "c.toml", dovecot.port, smtp_sink.port, tmp_path / "d", sqlite_url)
    first = _mailbot(cfg, "run", tmp_path / "first.log")
    try:
        lock = Path(sqlite_url[10:] + ".daemon.lock")
        assert wait_for(lambda: lock.exists() and lock.read_text().strip() == str(first.pid), 30)
        time.sleep(1)
        second = subprocess.run(
            [sys.executable, "-m", "mailbot", "--config", str(cfg), "run"],
            cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True,
            timeout=60,
        )  # fmt: skip
        assert second.returncode == 1
        err = second.stderr.decode()
        assert "another mailbot daemon" in err and "SQLite is single-process" in err
        assert f"pid {first.pid}" in err
        worker = subprocess.run(
            [sys.executable, "-m", "mailbot", "--config", str(cfg), "worker"],
            cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True,
            timeout=60,
        )  # fmt: skip
        assert worker.returncode == 2 and b"needs PostgreSQL" in worker.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(30) == 0
    # the lock went with the first daemon: a new one starts
    again = _mailbot(cfg, "run", tmp_path / "again.log")
    lock = Path(sqlite_url[10:] + ".daemon.lock")
    try:
        assert wait_for(lambda: lock.read_text().strip() == str(again.pid), 30)
        time.sleep(1)
        assert again.poll() is None
    finally:
        again.send_signal(signal.SIGTERM)
        assert again.wait(30) == 0


def _ledger_rows(factory: Factory, store: RawStore, n: int) -> list[int]:
    ledger.reset_state(factory, "claims@test", "INBOX", 1)
    items = [Fetched(uid, 100, make_mail(uid)) for uid in range(1, n + 1)]
    rows = ledger.record_batch(factory, store, "claims@test", "INBOX", 1, items, 10**6)
    return [r.id for r in rows]


def test_a_decision_whose_claim_is_taken_is_put_back(pg_url: str, tmp_path: Path) -> None:
    """Within a group, a mail whose claim another process is deciding raises RowBusy:
    the group so far commits, and the mail is decided first in the next group (where
    it may wait), once; a mail that raises is redone alone and failed, the others kept."""
    factory = make_factory(pg_url)
    store = RawStore(tmp_path / "raw")
    ids = _ledger_rows(factory, store, 6)
    record = recording_processor()
    seen: list[tuple[int, int]] = []  # (ledger id, decisions already in its transaction)

    def processor(session, msg, raw):  # type: ignore[no-untyped-def]
        work = session.info.get(ledger.GROUP_WORK, 0)
        seen.append((msg.id, work))
        if msg.id == ids[2] and work > 0:
            raise RowBusy("claim taken")
        if msg.id == ids[4]:
            raise RuntimeError("bad mail")
        return record(session, msg, raw)

    done = dict(ledger.process_available(factory, store, "claims@test", ["INBOX"], processor))
    assert done == {i: "failed" if i == ids[4] else "processed" for i in ids}
    assert (ids[2], 0) in seen  # redone as the first of a group
    assert processing_counts(factory) == {i: 1 for i in ids if i != ids[4]}
    assert status_counts(factory) == {"processed": 5, "failed": 1}


def test_lock_for_decision_waits_only_as_the_first_of_a_group(pg_url: str, tmp_path: Path) -> None:
    cfg = _config(tmp_path / "c.toml", 1, 1, tmp_path / "d", pg_url)
    _register(cfg, text=1, receipts=0)
    app = App(load_settings(cfg), clock=_now)
    with transaction(app.factory) as s:
        rma_id = s.scalars(select(m.Rma.id)).one()
    holder = app.factory()
    try:
        holder.get(m.Rma, rma_id, with_for_update=True)  # another process decides it
        other = app.factory()
        try:
            other.info[ledger.GROUP_WORK] = 1
            with pytest.raises(RowBusy):
                lock_for_decision(other, m.Rma, rma_id)
            other.rollback()
            other.info[ledger.GROUP_WORK] = 0  # the first of a group waits for it
            other.execute(text("SET LOCAL lock_timeout = '300ms'"))
            with pytest.raises(OperationalError, match="lock timeout"):
                lock_for_decision(other, m.Rma, rma_id)
        finally:
            other.rollback()
            other.close()
        holder.rollback()
        with app.factory() as free:  # and takes it once it is free
            free.info[ledger.GROUP_WORK] = 1
            lock_for_decision(free, m.Rma, rma_id)
            free.rollback()
    finally:
        holder.close()
        app.engine.dispose()
