"""Scale-out benchmark: 1, 2, 4 `mailbot run` processes on one PostgreSQL, receipt mails.

What it measures, per process count N (a fresh schema, Dovecot and SMTP sink each):

* throughput: every mail is a claim's reply with one JPEG receipt photo (OCR), one
  claim and one customer per mail (bench/e2e.py's `prepare`); all mails are APPENDed
  first, then N daemons start. Throughput = decided mails / (last decision - first
  decision), from the ledger's `processed_at`, so process start-up is not counted.
  The ratio N vs 1 is what scale-out buys on this machine.
* intake fail-over (`--failover`, on the largest N > 1): the leader is killed with
  SIGKILL half-way, more mail is APPENDed; fail-over = time until another process logs
  that it holds the intake. The run must still end with every mail decided once.
* CPU seconds per mail over all daemon trees (their tesseract runs included): unlike
  wall time it hardly depends on what else the machine runs, so it tells whether a
  process added costs anything beyond its share of the work.
* `--pg-restart`: stop and start PostgreSQL two thirds of the way (every session
  ended, fast mode). It runs on a cluster of the bench's own (`devtools.postgres`,
  on a free loopback port; needs the PostgreSQL server binaries) instead of
  `--pg-url`, so no other client of the machine's server loses its connections. Every
  daemon must still be running afterwards.

Every run checks the invariants: each mail decided once (final status, none pending),
no reply captured twice (Message-IDs in the sink), no daemon exited but the one killed.

Run (exit 0 when every run decided every mail, sent no reply twice and lost no daemon):
    PYTHONPATH=. python bench/scale.py --mails 1000 --procs 1,2,4 --failover
    PYTHONPATH=. python bench/scale.py --mails 200 --procs 1,2
    PYTHONPATH=. python bench/scale.py --mails 200 --procs 2 --pg-restart
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from pathlib import Path

from imapclient import IMAPClient
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent))
from e2e import NOW, prepare, tree_cpu_seconds

from mailbot.cli.app import App
from mailbot.config import load_settings
from mailbot.devtools import scenario
from mailbot.devtools.dovecot import LocalDovecot
from mailbot.devtools.postgres import LocalPostgres
from mailbot.devtools.smtpsink import SmtpSink
from mailbot.store import models as m
from mailbot.store.db import transaction

REPO = Path(__file__).resolve().parents[1]
PG_URL = os.environ.get("MAILBOT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
HEADERS = BytesHeaderParser()


@dataclass
class Result:
    procs: int
    mails: int
    decided: int = 0
    seconds: float = 0.0
    failover: float | None = None
    restarted: bool = False
    outage: float | None = None
    exited: int = 0
    doubles: int = 0
    cpu_seconds: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)

    @property
    def throughput(self) -> float:
        return (self.decided - 1) / self.seconds if self.seconds > 0 else 0.0


def _schema(url: str) -> tuple[str, str]:
    import psycopg

    name = f"mbscale_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    return name, f"{url}?options=-csearch_path%3D{name}"


def _drop(url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{name}" CASCADE')


def _leads(log: Path) -> int:
    return log.read_text(errors="replace").count("intake leader: this process fetches")


def _counts(app: App) -> dict[str, int]:
    with transaction(app.factory) as s:
        q = select(m.Message.status, func.count()).group_by(m.Message.status)
        return dict(s.execute(q).all())


def _span(app: App) -> tuple[int, float]:
    with transaction(app.factory) as s:
        n, first, last = s.execute(
            select(
                func.count(), func.min(m.Message.processed_at), func.max(m.Message.processed_at)
            ).where(m.Message.status != "pending")
        ).one()
    return int(n), (last - first).total_seconds() if first and last else 0.0


def _append(port: int, raws: list[bytes]) -> None:
    c = IMAPClient("127.0.0.1", port=port, ssl=False, timeout=60)
    c.login("claims", "secret")
    try:
        for raw in raws:
            c.append("INBOX", raw)
    finally:
        c.logout()


def run(
    n: int,
    mails: int,
    args: argparse.Namespace,
    *,
    failover: bool,
    server: LocalPostgres | None = None,
) -> Result:
    """One run of `n` daemons; `server`: the private cluster `--pg-restart` restarts."""
    base = Path(tempfile.mkdtemp(prefix=f"mbscale-{n}-"))
    schema, url = _schema(args.pg_url)
    dovecot = LocalDovecot().start()
    sink = SmtpSink().start()
    procs: list[subprocess.Popen[bytes]] = []
    result = Result(n, mails)
    try:
        cfg = base / "mailbot.toml"
        sections: dict[str, dict[str, str | int | float | bool]] = {
            "imap": {"idle": True, "poll_seconds": 5, "timeout_seconds": 60.0},
            "smtp": {"rate_limit_per_hour": 100000},
            "schedule": {"deliver_seconds": 2},
            "ocr": {"workers": args.ocr_workers},
            "log": {"format": "json", "level": "INFO"},
        }
        cfg.write_text(scenario.config_toml(dovecot.port, sink.port, base, url, sections=sections))
        prepared = [x.raw for x in prepare(cfg, "receipt", mails, f"s{n}")]
        sink.messages.clear()
        half = len(prepared) // 2 if failover else len(prepared)
        _append(dovecot.port, prepared[:half])
        env = dict(os.environ, PYTHONPATH=str(REPO))
        logs = [base / f"p{k}.log" for k in range(n)]
        for log in logs:
            cmd = [sys.executable, "-m", "mailbot", "--config", str(cfg), "--now", NOW, "run"]
            with log.open("ab") as err:  # the child keeps its own copy of the descriptor
                procs.append(
                    subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=err)
                )
        app = App(load_settings(cfg))
        deadline = time.monotonic() + args.timeout
        restarted = False
        killed_leader: int | None = None
        while time.monotonic() < deadline:
            decided = sum(v for k, v in _counts(app).items() if k != "pending")
            if failover and result.failover is None and decided >= half // 2:
                leader = next(i for i, log in enumerate(logs) if _leads(log))
                procs[leader].kill()
                procs[leader].wait(10)
                killed_leader = leader
                killed = time.monotonic()
                _append(dovecot.port, prepared[half:])
                while not any(_leads(log) for i, log in enumerate(logs) if i != leader):
                    time.sleep(0.05)
                result.failover = time.monotonic() - killed
                print(f"  leader {leader} killed; new leader after {result.failover:.2f} s")
            if server is not None and not restarted and decided >= mails * 2 // 3:
                app.engine.dispose()
                down = time.monotonic()
                server.restart()
                result.outage = time.monotonic() - down
                restarted = result.restarted = True
                print(f"  PostgreSQL restarted (down {result.outage:.2f} s)", flush=True)
            if decided >= mails:
                break
            time.sleep(0.5)
        result.exited = sum(
            1 for i, p in enumerate(procs) if i != killed_leader and p.poll() is not None
        )
        # of the processes still running (a killed leader's share is not counted)
        result.cpu_seconds = sum(tree_cpu_seconds(p.pid) for p in procs if p.poll() is None)
        result.statuses = _counts(app)
        result.decided, result.seconds = _span(app)
        time.sleep(args.deliver_wait)  # the last replies go out
        mids = Counter(str(HEADERS.parsebytes(c.data)["Message-ID"]) for c in sink.messages)
        result.doubles = sum(1 for v in mids.values() if v > 1)
        app.engine.dispose()
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
        sink.stop()
        dovecot.cleanup()
        _drop(args.pg_url, schema)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--mails", type=int, default=1000, help="receipt mails per run")
    ap.add_argument("--procs", default="1,2,4", help="comma-separated process counts")
    ap.add_argument("--ocr-workers", type=int, default=1, help="[ocr] workers per process")
    ap.add_argument("--failover", action="store_true", help="kill -9 the leader (largest N)")
    ap.add_argument(
        "--pg-restart",
        action="store_true",
        help="restart PostgreSQL mid-run (a private cluster, not --pg-url)",
    )
    ap.add_argument("--pg-url", default=PG_URL, help="the server to run on (no --pg-restart)")
    ap.add_argument("--timeout", type=float, default=3600.0, help="cap on one run (s)")
    ap.add_argument("--deliver-wait", type=float, default=5.0, help="wait for last replies (s)")
    args = ap.parse_args(argv)
    counts = [int(x) for x in args.procs.split(",") if x.strip()]
    print(
        f"mailbot scale bench: {args.mails} receipt mails; processes {counts}; "
        f"[ocr] workers {args.ocr_workers}; cpus {os.cpu_count()}; "
        f"load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    server = None
    if args.pg_restart:
        # restarting the machine's server would cut every other client off
        server = LocalPostgres().start()
        args.pg_url = server.url
        print(f"PostgreSQL: a private cluster on port {server.port}", flush=True)
    results = []
    try:
        for n in counts:
            fo = args.failover and n == max(counts) and n > 1
            print(f"run: {n} process(es){' with leader kill -9' if fo else ''}", flush=True)
            r = run(n, args.mails, args, failover=fo, server=server)
            results.append(r)
            print(
                f"  {r.decided}/{r.mails} decided in {r.seconds:.1f} s: "
                f"{r.throughput:.2f} mails/s; statuses {r.statuses}; replies twice {r.doubles}; "
                f"daemons exited {r.exited}; CPU {r.cpu_seconds / max(r.decided, 1):.2f} s/mail; "
                f"load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    finally:
        if server is not None:
            server.cleanup()
    one = next((r.throughput for r in results if r.procs == 1), None)
    print("\nprocs  mails/s  vs 1   fail-over s")
    for r in results:
        ratio = f"{r.throughput / one:5.2f}" if one else "    -"
        fo = f"{r.failover:.2f}" if r.failover is not None else "-"
        print(f"{r.procs:5d}  {r.throughput:7.2f}  {ratio}  {fo}")
    ok = all(
        r.decided == r.mails and r.doubles == 0 and r.exited == 0 and r.restarted == args.pg_restart
        for r in results
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
