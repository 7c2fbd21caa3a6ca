"""SMTP fault scenarios for the outbox sender: how many replies arrive once, twice, never.

Each scenario queues N replies (distinct recipients, no rate limit) in a fresh
database, makes the SMTP sink (`mailbot.devtools.smtpsink`, real aiosmtpd) or the
database misbehave, and runs the sender (`deliver_pending`) on a moving clock until
every row has settled (sent, failed or unconfirmed), or 200 runs. Then each reply's
Message-ID is counted in the sink:

* drop after DATA: the sink receives the whole message, keeps it (the relay
  accepted it) or not, and closes the connection before its final reply; N/2 of the
  deliveries.
* slow final reply: the sink keeps the message and answers after 1.5 s, the
  sender's timeout is 1 s; N/4 of the deliveries.
* 421/451: temporary refusals of the message (N/2 of the deliveries).
* 550: permanent refusals (N/4 of the deliveries; lost by design, flagged).
* db write failure after 250: the first 8 `sent` writes fail as a lost database
  does (OperationalError).
* kill -9 mid-batch: a sender in a subprocess (slow relay: each answer after 0.3 s)
  is killed with SIGKILL after about 1.2 s; a live sender then runs on a clock
  stepped in 5 s from the kill. The scenario's name says after how many seconds the
  dead sender's rows were taken over.

Columns: delivered_once / delivered_twice (or more) / lost (never arrived) count
Message-IDs in the sink; flagged counts rows left for an admin (failed or
unconfirmed). `run()` returns one dict per scenario; `bench/faults.py` calls it.

Run:  PYTHONPATH=. python bench/faults_smtp.py [--replies 20] [--db-url postgresql://...]
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailbot.config import Settings
from mailbot.devtools.faults import fail_sent_writes
from mailbot.devtools.sending import APPROVED, sink_settings
from mailbot.devtools.smtpsink import SmtpSink
from mailbot.outbound.delivery import deliver_pending
from mailbot.services.outbox import queue_reply
from mailbot.store import db
from mailbot.store.models import Outbox

T0 = datetime(2023, 1, 20, 10, 0, tzinfo=UTC)
SETTLED = ("sent", "failed", "unconfirmed")

# The killed sender: a separate process, so SIGKILL is a real kill -9.
_CHILD = """
import sys
from datetime import datetime
from mailbot.devtools.sending import sink_settings
from mailbot.outbound.delivery import deliver_pending
from mailbot.store import db
url, port, now = sys.argv[1], int(sys.argv[2]), datetime.fromisoformat(sys.argv[3])
factory = db.session_factory(db.make_engine(url))
print("ready", flush=True)
deliver_pending(factory, sink_settings(port, rate_limit_per_hour=0), now, limit=1000)
"""


def _settings(port: int, **smtp: Any) -> Settings:
    """Sending to the sink on `port` with no rate limit and 8 attempts; `smtp` overrides."""
    return sink_settings(port, **({"rate_limit_per_hour": 0, "max_attempts": 8} | smtp))


@contextmanager
def _database(base_url: str | None, workdir: Path) -> Iterator[str]:
    """A fresh, migrated database: a SQLite file, or a new PostgreSQL schema."""
    if not base_url or base_url.startswith("sqlite"):
        path = workdir / f"{uuid.uuid4().hex[:8]}.db"
        url = f"sqlite:///{path}"
        db.upgrade(db.make_engine(url))
        yield url
        return
    import psycopg

    schema = f"faults_{uuid.uuid4().hex[:10]}"
    plain = base_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        url = f"{base_url}?options=-csearch_path%3D{schema}"
        db.upgrade(db.make_engine(url))
        yield url
    finally:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def _queue(factory: sessionmaker[Session], settings: Settings, n: int) -> list[str]:
    mids = []
    with db.transaction(factory) as s:
        for i in range(n):
            row = queue_reply(
                s,
                template="approved",
                language="nb",
                context=APPROVED,
                to_addr=f"customer{i}@example.no",
                now=T0,
                settings=settings,
            )
            assert row is not None
            mids.append(row.message_id)
    return mids


def _settle(factory: sessionmaker[Session], settings: Settings, start: datetime) -> None:
    """Run the sender on a clock moving 10 minutes a run until every row settled."""
    now = start
    for _ in range(200):
        try:
            deliver_pending(factory, settings, now, limit=1000)
        except Exception:  # a database failure ends a run; the next one goes on
            pass
        with factory() as s:
            open_rows = s.scalars(select(Outbox.id).where(Outbox.status.not_in(SETTLED))).first()
        if open_rows is None:
            return
        now += timedelta(minutes=10)


def _count(
    name: str, factory: sessionmaker[Session], sink: SmtpSink, mids: list[str]
) -> dict[str, Any]:
    time.sleep(0.3)  # the sink's last mail of a slow or dropped conversation
    copies = Counter(m.message["Message-ID"] for m in list(sink.messages))
    with factory() as s:
        flagged = len(
            s.scalars(select(Outbox.id).where(Outbox.status.in_(("failed", "unconfirmed")))).all()
        )
    return {
        "scenario": name,
        "replies": len(mids),
        "delivered_once": sum(1 for m in mids if copies[m] == 1),
        "delivered_twice": sum(1 for m in mids if copies[m] >= 2),
        "lost": sum(1 for m in mids if copies[m] == 0),
        "flagged": flagged,
    }


def _scenario(
    name: str,
    replies: int,
    base_url: str | None,
    workdir: Path,
    fault: Callable[[SmtpSink, sessionmaker[Session]], None],
    **smtp: Any,
) -> dict[str, Any]:
    with _database(base_url, workdir) as url, SmtpSink() as sink:
        factory = db.session_factory(db.make_engine(url))
        settings = _settings(sink.port, **smtp)
        mids = _queue(factory, settings, replies)
        fault(sink, factory)
        _settle(factory, settings, T0)
        return _count(name, factory, sink, mids)


def _kill_mid_batch(replies: int, base_url: str | None, workdir: Path) -> dict[str, Any]:
    with _database(base_url, workdir) as url, SmtpSink() as sink:
        factory = db.session_factory(db.make_engine(url))
        settings = _settings(sink.port)
        mids = _queue(factory, settings, replies)
        sink.slow_next(replies, 0.3)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, url, str(sink.port), T0.isoformat()],
            stdout=subprocess.PIPE,
            env=env,
        )
        assert child.stdout is not None
        child.stdout.readline()  # "ready": imports done, delivery starts now
        time.sleep(1.2)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        killed_at = T0 + timedelta(seconds=1.2)
        with sink._lock:
            sink._fail_queue.clear()  # the rest of the relay is quick again
        taken_over = None
        for step in range(0, 3600, 5):
            stats = deliver_pending(factory, settings, killed_at + timedelta(seconds=step))
            # the rows the dead sender held (the rest of the queue goes out at once)
            if stats.recovered or getattr(stats, "unconfirmed", 0):
                taken_over = step
                break
        _settle(factory, settings, killed_at + timedelta(hours=1))
        after = f"after {taken_over} s" if taken_over is not None else "never"
        return _count(f"kill -9 mid-batch (taken over {after})", factory, sink, mids)


def run(replies: int = 20, db_url: str | None = None) -> list[dict[str, Any]]:
    """Every scenario once; one row each (see the module docstring)."""
    half, quarter = replies // 2, max(1, replies // 4)
    with tempfile.TemporaryDirectory(prefix="faults-smtp-") as tmp:
        work = Path(tmp)
        return [
            _scenario(
                "drop after DATA, relay kept the mail",
                replies,
                db_url,
                work,
                lambda sink, _: sink.drop_next(half, keep=True),
            ),
            _scenario(
                "drop after DATA, relay did not keep it",
                replies,
                db_url,
                work,
                lambda sink, _: sink.drop_next(half, keep=False),
            ),
            _scenario(
                "slow final reply (1.5 s, timeout 1 s)",
                replies,
                db_url,
                work,
                lambda sink, _: sink.slow_next(quarter, 1.5, keep=True),
                timeout_seconds=1,
            ),
            _scenario(
                "421/451 temporary refusals",
                replies,
                db_url,
                work,
                lambda sink, _: (
                    sink.fail_next(quarter, "421 4.4.2 closing"),
                    sink.fail_next(half - quarter, "451 4.3.0 try later"),
                ),
            ),
            _scenario(
                "550 permanent refusals",
                replies,
                db_url,
                work,
                lambda sink, _: sink.fail_next(quarter, "550 5.7.1 refused"),
            ),
            _scenario(
                "db write failure after 250 (8 writes)",
                replies,
                db_url,
                work,
                lambda _, factory: fail_sent_writes(factory, 8),
            ),
            _kill_mid_batch(replies, db_url, work),
        ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--replies", type=int, default=20)
    parser.add_argument("--db-url", default=None, help="PostgreSQL URL (default: SQLite)")
    args = parser.parse_args(argv)
    logging.disable(logging.CRITICAL)  # the sender logs every fault; the table says it
    keys = ["replies", "delivered_once", "delivered_twice", "lost", "flagged"]
    rows = run(args.replies, args.db_url)
    print(f"{'scenario':48} " + " ".join(f"{k:>15}" for k in keys))
    for row in rows:
        print(f"{row['scenario']:48} " + " ".join(f"{row[k]:>15}" for k in keys))
    return 0 if all(r["delivered_twice"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
