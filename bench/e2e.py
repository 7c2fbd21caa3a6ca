"""End-to-end benchmark: customer mail APPENDed into Dovecot -> reply captured by the SMTP sink.

What it measures, per mail kind (`text`: an RMA shipment notification, answered with a
tracking acknowledgement; `receipt`: a claim reply with one JPEG receipt photo, answered
with missing-info / documents-received / approved) and per `[ocr] workers` setting:

* latency of one mail at a time ("single"): APPEND one mail into an idle daemon that
  waits in IMAP IDLE, wait for its reply, repeat. This is what one customer sees.
* throughput and latency under load ("burst"): APPEND all N mails back to back on one
  IMAP connection, then wait for all N replies. Throughput = replies / (last reply -
  first APPEND); latencies here include the time a mail queued behind the others.
* peak memory of the daemon's process tree (the `mailbot run` process plus its
  children: the tesseract runs), sampled from /proc every 100 ms, both as summed
  RSS (the daemon's RSS plus each child's own peak, VmHWM, so short tesseract runs
  are not caught below their peak) and as summed PSS (pages shared between
  processes split, not counted once per process); and the daemon's own
  high-water mark (VmHWM, exact, read just before SIGTERM).
* CPU seconds the tree used per mail during the burst (from /proc/<pid>/stat): unlike
  wall time it hardly depends on how busy the shared machine is, so it tells what
  one free core could sustain. The extraction time per document comes from the
  database (`extractions.seconds`). `--profile` runs the daemon under cProfile and
  prints the main thread's hot spots.

How: a private Dovecot (`mailbot.devtools.dovecot`) and SMTP sink
(`mailbot.devtools.smtpsink`) on loopback ports, a fresh SQLite data dir per run, and
the daemon as an operator runs it: `python -m mailbot --config CFG --now ... run` in a
subprocess, with IDLE on. Claims and RMAs are registered in-process with the same
service functions `mailbot claims import` / `mailbot rma issue` call, and their
confirmation mails are delivered (with `deliver_pending`, to the sink) and discounted
before the daemon starts, so the daemon only sees the measured mails. Every measured
mail gets its own claim or RMA and its own customer address; a reply is matched to its
mail by In-Reply-To (our Message-ID), falling back to the recipient address.

Latency = sink `received_at` - wall-clock time just before the APPEND was sent.
The clock is fixed with `--now 2023-01-20T10:00:00` because the shipped campaign
cashback-2022 ran 2022-11..2023-03. Only loopback traffic.

Targets: >= 50 text-only mails/s; median latency <= 2 s with IDLE for
text-only mails; peak RSS < 300 MB over 1 000 mails with receipts.

Run (exit 0 when every mail was answered, 1 otherwise; every wait is bounded):
    PYTHONPATH=. python bench/e2e.py --quick            # 100 text, 30 receipt mails
    PYTHONPATH=. python bench/e2e.py --kind text --mails 1000 --workers 1,2
    PYTHONPATH=. python bench/e2e.py --kind receipt --mails 300 --workers 1 --profile
"""

from __future__ import annotations

import argparse
import email.parser
import email.policy
import io
import os
import pstats
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from imapclient import IMAPClient
from PIL import Image
from sqlalchemy import func, select

from mailbot.cli.app import App
from mailbot.config import load_settings
from mailbot.devtools import scenario
from mailbot.devtools.dovecot import LocalDovecot
from mailbot.devtools.samples import receipt_image
from mailbot.devtools.smtpsink import Captured, SmtpSink
from mailbot.outbound.delivery import deliver_pending
from mailbot.store import models as m
from mailbot.store.db import transaction

NOW = scenario.NOW
TEXT_BODY = "Sporingsnummer 1Z999AA10123456784\nLevert 20.01.2023 kl. 09:00"
HEADER_PARSER = email.parser.BytesHeaderParser(policy=email.policy.default)


# --- process-tree RSS ---------------------------------------------------------------------


def _children_map() -> dict[int, list[int]]:
    """ppid -> pids for every process, from /proc/*/stat (no psutil needed)."""
    kids: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue  # exited while we looked
        # the command name may contain spaces and ')': the fields follow the last ')'
        fields = stat[stat.rfind(b")") + 2 :].split()
        kids.setdefault(int(fields[1]), []).append(int(entry.name))
    return kids


def _status_kb(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_kb(root: int, *, pss: bool = False) -> tuple[int, int]:
    """(summed memory in kB, number of processes) of `root` and all its descendants.

    RSS: the root's VmRSS plus each descendant's VmHWM (its own peak so far).
    Descendants are mostly tesseract runs that live well under a second: sampled
    every 100 ms, their current RSS would often be caught before their peak, so
    their high-water mark is counted instead (an upper bound, never flattering).
    With `pss`, the proportional set size of every process instead (pages shared
    between processes split, not counted once per process)."""
    kids = _children_map()
    todo, total, count = [root], 0, 0
    while todo:
        pid = todo.pop()
        if pss:
            total += _pss_kb(pid)
        else:
            total += _status_kb(pid, "VmRSS" if pid == root else "VmHWM")
        count += 1
        todo.extend(kids.get(pid, ()))
    return total, count


def tree_cpu_seconds(root: int) -> float:
    """CPU time (user + system) used so far by `root` and its descendants: live ones
    from their own counters, exited-and-reaped ones (tesseract runs) through their
    parent's cutime/cstime. Unlike wall time, this barely depends on how busy the
    shared machine is, so CPU per mail says what one free core could do."""
    kids = _children_map()
    tick = os.sysconf("SC_CLK_TCK")
    todo, total = [root], 0
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
        todo.extend(kids.get(pid, ()))
    return total / tick


class RssSampler(threading.Thread):
    """Samples the tree's RSS every `interval` seconds; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.peak_kb = 0
        self.peak_pss_kb = 0
        self.peak_procs = 0
        self.samples = 0
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(self.interval):
            kb, procs = tree_rss_kb(self.pid)
            self.samples += 1
            if kb > self.peak_kb:
                self.peak_kb, self.peak_procs = kb, procs
            self.peak_pss_kb = max(self.peak_pss_kb, tree_rss_kb(self.pid, pss=True)[0])


class InboxWatcher(threading.Thread):
    """Polls INBOX's message count on its own connection: the daemon moves each mail out
    once processed, so "INBOX empty" marks when the intake (not the reply delivery)
    was done with the burst. Separates the two stages' throughput."""

    def __init__(self, port: int, interval: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.interval = interval
        self.emptied_at = 0.0
        self.error = ""
        self.halt = threading.Event()

    def run(self) -> None:
        try:
            client = scenario.imap_client(self.port, timeout=30)
            try:
                while not self.halt.wait(self.interval):
                    left = client.folder_status("INBOX", [b"MESSAGES"])[b"MESSAGES"]
                    if left == 0:
                        self.emptied_at = time.time()
                        return
            finally:
                client.logout()
        except Exception as exc:  # a diagnostic only: never fail the run for it
            self.error = f"{exc.__class__.__name__}: {exc}"


# --- the scenario -------------------------------------------------------------------------


@dataclass
class Phase:
    mode: str
    sent: int = 0
    append_s: float = 0.0
    latencies: list[float] = field(default_factory=list)
    first_append: float = 0.0
    first_reply: float = 0.0
    last_reply: float = 0.0
    unmatched: int = 0
    cpu_s: float = 0.0
    intake_done: float = 0.0
    rss_mb: tuple[float, float] = (0.0, 0.0)

    @property
    def answered(self) -> int:
        return len(self.latencies)

    @property
    def throughput(self) -> float:
        span = self.last_reply - self.first_append
        return self.answered / span if self.answered and span > 0 else 0.0


@dataclass
class RunResult:
    kind: str
    workers: int
    phases: list[Phase]
    peak_tree_mb: float
    peak_tree_pss_mb: float
    peak_procs: int
    daemon_hwm_mb: float
    exit_code: int | None
    outcomes: dict[str, int]
    ocr_seconds: list[float]
    log_errors: int
    deliver_skips: int
    log_path: Path


@dataclass
class Mail:
    address: str
    raw: bytes
    message_id: str


def write_config(
    path: Path,
    dovecot: LocalDovecot,
    sink: SmtpSink,
    data: Path,
    args: argparse.Namespace,
    workers: int,
) -> None:
    sections = {
        "imap": {"idle": True, "poll_seconds": args.poll_seconds, "timeout_seconds": 60.0},
        # every customer is a distinct address; the limit must not hold anything back here
        "smtp": {"rate_limit_per_hour": 100000},
        "schedule": {"deliver_seconds": args.deliver_seconds},
        "ocr": {"workers": workers},
    }
    path.write_text(scenario.config_toml(dovecot.port, sink.port, data, sections=sections))


def _fixed_now() -> datetime:
    return datetime.fromisoformat(NOW)


def prepare(cfg: Path, kind: str, count: int, tag: str) -> list[Mail]:
    """Register one claim or RMA per mail (in one transaction, as `claims import` does),
    deliver their confirmations, and return the customer mails, ready to APPEND."""
    app = App(load_settings(cfg), clock=_fixed_now)
    app.ensure_schema()
    created: list[tuple[str, str]] = []  # (address, RMA number or claim code)
    with transaction(app.factory) as session:
        for i in range(count):
            address = f"{kind}{i}.{tag}@customer.example"
            form = (
                scenario.RmaForm(address)
                if kind == "text"
                else scenario.ClaimForm(address, f"Kari Nordmann {i}", country="NO", language="nb")
            )
            created.append((address, form.create(session, app.rules, app.settings, app.now())))
    # The confirmations ("RMA issued", "registered") are not what we measure: send them
    # now, with the product's own delivery, so the daemon starts with an empty outbox.
    for _ in range(count // 50 + 10):
        stats = deliver_pending(app.factory, app.settings, app.now(), limit=500)
        if stats.sent == 0:
            break
    with transaction(app.factory) as session:
        left = session.scalar(
            select(func.count(m.Outbox.id)).where(m.Outbox.status.in_(("queued", "held")))
        )
    if left:
        raise RuntimeError(f"{left} confirmation mails could not be delivered before the run")
    app.engine.dispose()
    mails = []
    for i, (address, key) in enumerate(created):
        if kind == "text":
            raw = scenario.shipment_notice(address, key, TEXT_BODY)
        else:
            raw = scenario.receipt_mail(address, key, receipt_photo(i))
        mails.append(Mail(address, raw, str(HEADER_PARSER.parsebytes(raw)["Message-ID"])))
    return mails


def receipt_photo(i: int) -> bytes:
    """A receipt photo unique to mail `i`: one of four layouts (shop wording, size, font)
    with its own receipt number, photographed on a table: placed at its own spot on a
    background of its own shade.

    Why the lighting: the duplicate check compares 64-bit difference hashes of the
    picture (Hamming distance <= 6 = the same receipt). Clean renders of one layout
    differ only in a few digits, so their hashes are 0-4 bits apart and every mail
    after the first would be a "duplicate receipt" -> review, plus every earlier claim
    put in review again: the fraud path, not the common case. Real photos differ in
    framing and light; placing the paper on a shaded table gives each photo its own
    hash the way that does, and leaves the text pixels as rendered (shading the paper
    itself made tesseract misread "12.12.2022").
    """
    layout = i % 4
    lines = [
        "ELKJØP" if layout % 2 == 0 else "Elkjøp Norge AS",
        "Org.nr 988 077 917 MVA",
        f"Kvittering nr {400000 + i}",
        "Dato: 12.12.2022",
        ("Sony WH-1000XM5  3990,00" if layout < 2 else "Sony WH-1000XM5 hodetelefoner  4290,00"),
        "Totalt  3990,00" if layout < 2 else "Totalt NOK 4290,00",
    ]
    clean = receipt_image(
        lines, width=(1000, 900, 1100, 950)[layout], font_size=(30, 28, 32, 26)[layout]
    )
    rng = random.Random(i)
    with Image.open(io.BytesIO(clean)) as paper:
        # the paper at a random place on a darker "table" with its own light gradient
        w, h = paper.size
        grid = Image.new("L", (9, 8))
        grid.putdata([rng.randint(60, 170) for _ in range(9 * 8)])
        table = grid.resize((w + 600, h + 500), Image.Resampling.BILINEAR).convert("RGB")
        table.paste(paper.convert("RGB"), (rng.randint(0, 600), rng.randint(0, 500)))
        buf = io.BytesIO()
        table.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


class Replies:
    """Walks the sink's captured mails in order, matching each to a sent mail."""

    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink
        self.seen = len(sink.messages)

    def collect(
        self,
        phase: Phase,
        pending: dict[str, tuple[str, float]],
        want: int,
        timeout: float,
        stall: float,
    ) -> None:
        """Until `want` replies matched `pending` (Message-ID -> (address, appended at)),
        or `timeout` passed, or no reply came for `stall` seconds."""
        by_address = {addr: mid for mid, (addr, _) in pending.items()}
        deadline = time.monotonic() + timeout
        last_progress = time.monotonic()
        got = 0
        while got < want:
            now = time.monotonic()
            if now >= deadline or now - last_progress >= stall:
                return
            new = self.sink.wait_for(self.seen + 1, timeout=min(0.5, deadline - now))[self.seen :]
            self.seen += len(new)
            for captured in new:
                mid = self._match(captured, pending, by_address)
                if mid is None:
                    phase.unmatched += 1
                    continue
                _, appended = pending.pop(mid)
                phase.latencies.append(captured.received_at - appended)
                phase.last_reply = max(phase.last_reply, captured.received_at)
                phase.first_reply = phase.first_reply or captured.received_at
                got += 1
                last_progress = time.monotonic()

    @staticmethod
    def _match(
        captured: Captured, pending: dict[str, tuple[str, float]], by_address: dict[str, str]
    ) -> str | None:
        headers = HEADER_PARSER.parsebytes(captured.data)
        mid = str(headers.get("In-Reply-To") or "").strip()
        if mid in pending:
            return mid
        for rcpt in captured.rcpt_tos:
            alt = by_address.get(rcpt)
            if alt in pending:
                return alt
        return None


def append(client: IMAPClient, mail: Mail) -> float:
    at = time.time()  # before the command: latency includes the APPEND itself
    client.append("INBOX", mail.raw)
    return at


def run_scenario(
    kind: str, workers: int, mails: int, singles: int, sink: SmtpSink, args: argparse.Namespace
) -> RunResult:
    base = Path(tempfile.mkdtemp(prefix=f"mbe2e-{kind}{workers}-"))
    dovecot = LocalDovecot().start()
    daemon: subprocess.Popen[bytes] | None = None
    sampler: RssSampler | None = None
    log_path = base / "daemon.log"
    try:
        cfg = base / "mailbot.toml"
        write_config(cfg, dovecot, sink, base / "data", args, workers)
        print(f"  code {code_version()}", flush=True)
        t0 = time.monotonic()
        prepared = prepare(cfg, kind, singles + mails, tag=f"w{workers}")
        print(
            f"  prepared {len(prepared)} {kind} mails in {time.monotonic() - t0:.1f} s", flush=True
        )
        replies = Replies(sink)
        with open(log_path, "wb") as log:
            # --profile: the daemon under cProfile (it exits normally on SIGTERM, so the
            # profile is written), to find where the time per mail goes
            prof = ["-m", "cProfile", "-o", str(base / "daemon.prof")] if args.profile else []
            daemon = subprocess.Popen(
                [
                    sys.executable,
                    *prof,
                    "-m",
                    "mailbot",
                    "--config",
                    str(cfg),
                    "--now",
                    NOW,
                    "--log-level",
                    "WARNING",
                    "run",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=base,
            )
        sampler = RssSampler(daemon.pid)
        sampler.start()
        client = scenario.imap_client(dovecot.port, timeout=60)
        wait_for_idle(daemon, dovecot, timeout=60)

        # 1. one at a time: the daemon is idle in IDLE when each mail arrives
        single = Phase("single")
        for mail in prepared[:singles]:
            time.sleep(args.gap)  # let it settle back into IDLE
            pending = {mail.message_id: (mail.address, append(client, mail))}
            single.first_append = single.first_append or pending[mail.message_id][1]
            single.sent += 1
            replies.collect(
                single, pending, 1, timeout=args.single_timeout, stall=args.single_timeout
            )
            check_alive(daemon, log_path)

        # 2. burst: all mails back to back, then every reply
        burst = Phase("burst")
        pending = {}
        cpu_before = tree_cpu_seconds(daemon.pid)
        rss_before = tree_rss_kb(daemon.pid)[0]
        t_app = time.monotonic()
        for mail in prepared[singles:]:
            pending[mail.message_id] = (mail.address, append(client, mail))
            burst.first_append = burst.first_append or pending[mail.message_id][1]
            burst.sent += 1
        burst.append_s = time.monotonic() - t_app
        client.logout()
        watcher = InboxWatcher(dovecot.port)
        watcher.start()
        replies.collect(burst, pending, mails, timeout=args.timeout, stall=args.stall)
        burst.cpu_s = tree_cpu_seconds(daemon.pid) - cpu_before
        watcher.halt.set()
        watcher.join(35)
        burst.intake_done = watcher.emptied_at
        # does memory grow with the number of mails handled? (the target is over 1 000)
        burst.rss_mb = (rss_before / 1024, tree_rss_kb(daemon.pid)[0] / 1024)
        check_alive(daemon, log_path)
        hwm_mb = _status_kb(daemon.pid, "VmHWM") / 1024
        exit_code = stop(daemon)
        daemon = None
        sampler.halt.set()
        sampler.join()
        final_states, ocr_seconds = outcomes(cfg, kind)
        log_lines = log_path.read_text(errors="replace").splitlines()
        if args.profile:
            show_profile(base / "daemon.prof", kind, workers)
        return RunResult(
            kind=kind,
            workers=workers,
            phases=[single, burst],
            peak_tree_mb=sampler.peak_kb / 1024,
            peak_tree_pss_mb=sampler.peak_pss_kb / 1024,
            peak_procs=sampler.peak_procs,
            daemon_hwm_mb=hwm_mb,
            exit_code=exit_code,
            outcomes=final_states,
            ocr_seconds=ocr_seconds,
            log_errors=sum(1 for line in log_lines if "ERROR" in line),
            # the delivery job found its previous run still going (blocked, e.g. on the
            # database while the intake holds it): evidence of replies waiting
            deliver_skips=sum(1 for line in log_lines if "maximum number of running" in line),
            log_path=log_path,
        )
    finally:
        if sampler is not None:
            sampler.halt.set()
        if daemon is not None:
            stop(daemon)
        dovecot.cleanup()
        if not args.keep:
            # keep the daemon log of this run for the report; drop the rest
            saved = Path(tempfile.gettempdir()) / f"mbe2e-{kind}{workers}.log"
            if log_path.exists():
                shutil.copy(log_path, saved)
            shutil.rmtree(base, ignore_errors=True)


def show_profile(path: Path, kind: str, workers: int) -> None:
    """The intake's hot spots (cProfile sees the main thread only: parse, process,
    commit, IMAP; outbox delivery runs in the scheduler's threads)."""
    if not path.exists():
        print(f"  (no profile written at {path})")
        return
    saved = Path(tempfile.gettempdir()) / f"mbe2e-{kind}{workers}.prof"
    shutil.copy(path, saved)
    print(f"  profile of the daemon's main thread ({saved}), top by cumulative time:")
    stats = pstats.Stats(str(path), stream=sys.stdout)
    stats.strip_dirs().sort_stats("cumulative").print_stats(30)


def code_version() -> str:
    """The commit the daemon runs (plus "+dirty"): the code may change between runs."""
    repo = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def wait_for_idle(daemon: subprocess.Popen[bytes], dovecot: LocalDovecot, timeout: float) -> None:
    """The daemon is ready when it has created its folders (after login and schema)."""
    deadline = time.monotonic() + timeout
    # Maildir++ keeps folder "mailbot/processed" as directory ".mailbot.processed"
    home = dovecot.maildir_root / "claims"
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            raise RuntimeError(f"daemon exited with {daemon.returncode} during start")
        if any(home.glob(".mailbot*")):
            time.sleep(1.0)  # folders exist; give it the first sync pass and SELECT + IDLE
            return
        time.sleep(0.1)
    raise RuntimeError("daemon did not get ready in time")


def check_alive(daemon: subprocess.Popen[bytes], log_path: Path) -> None:
    if daemon.poll() is not None:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-20:])
        raise RuntimeError(f"daemon exited with {daemon.returncode}:\n{tail}")


def stop(daemon: subprocess.Popen[bytes]) -> int | None:
    """SIGTERM (it finishes the current message and exits 0); kill after 60 s."""
    if daemon.poll() is None:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(60)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait(10)
    return daemon.returncode


def outcomes(cfg: Path, kind: str) -> tuple[dict[str, int], list[float]]:
    """Final states (with the first reason) of the claims / RMAs: what the replies were
    about; and the seconds each document's extraction took (OCR), from the database."""
    app = App(load_settings(cfg), clock=_fixed_now)
    states: Counter[str] = Counter()
    with transaction(app.factory) as session:
        if kind == "text":
            for state in session.scalars(select(m.Rma.state)):
                states[state] += 1
        else:
            for state, reasons in session.execute(select(m.Claim.state, m.Claim.state_reasons)):
                states[f"{state}:{reasons[0]}" if reasons else state] += 1
        ocr = [float(x) for x in session.scalars(select(m.Extraction.seconds))]
    app.engine.dispose()
    return dict(states.most_common()), ocr


# --- report -------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def print_table(results: list[RunResult], *, legend: bool = True) -> None:
    head = (
        f"{'kind':8} {'wrk':>3} {'mode':6} {'sent':>5} {'answ':>5} {'mails/s':>8} "
        f"{'p50 s':>7} {'p90 s':>7} {'max s':>7} {'RSS tree MB':>11} {'PSS tree MB':>11} "
        f"{'daemon HWM':>10}"
    )
    print("\n" + head)
    print("-" * len(head))
    for r in results:
        for p in r.phases:
            if not p.sent:
                continue
            lat = p.latencies
            print(
                f"{r.kind:8} {r.workers:>3} {p.mode:6} {p.sent:>5} {p.answered:>5} "
                f"{p.throughput:>8.1f} {statistics.median(lat) if lat else float('nan'):>7.2f} "
                f"{pct(lat, 0.9):>7.2f} {max(lat, default=float('nan')):>7.2f} "
                f"{r.peak_tree_mb:>11.0f} {r.peak_tree_pss_mb:>11.0f} {r.daemon_hwm_mb:>10.0f}"
            )
    print()
    for r in results:
        burst = r.phases[-1]
        unmatched = sum(p.unmatched for p in r.phases)
        first = burst.first_reply - burst.first_append if burst.first_reply else float("nan")
        print(
            f"{r.kind} workers={r.workers}: burst APPEND of {burst.sent} took "
            f"{burst.append_s:.1f} s, first reply after {first:.1f} s; unmatched replies "
            f"{unmatched}; peak tree {r.peak_procs} procs; exit {r.exit_code}; ERROR log "
            f"lines {r.log_errors}; delivery runs skipped (previous still busy) "
            f"{r.deliver_skips}\n  final states {r.outcomes}"
        )
        if burst.intake_done:
            took = burst.intake_done - burst.first_append
            print(
                f"  intake alone (INBOX empty) after {took:.1f} s = {burst.sent / took:.1f} "
                f"mails/s; replies trailed it by {burst.last_reply - burst.intake_done:.1f} s"
            )
        if burst.answered and burst.cpu_s:
            per_mail = burst.cpu_s / burst.answered
            span = burst.last_reply - burst.first_append
            print(
                f"  daemon CPU over the burst {burst.cpu_s:.0f} s in {span:.0f} s wall "
                f"({burst.cpu_s / span:.2f} cores busy): {per_mail * 1000:.0f} ms CPU per "
                f"mail, i.e. at most {1 / per_mail:.0f} mails/s per fully free core"
            )
        print(
            f"  tree RSS before the burst {burst.rss_mb[0]:.0f} MB, after it "
            f"{burst.rss_mb[1]:.0f} MB"
        )
        if r.ocr_seconds:
            ocr = r.ocr_seconds
            print(
                f"  extraction per document: median {statistics.median(ocr):.2f} s, p90 "
                f"{pct(ocr, 0.9):.2f} s, max {max(ocr):.2f} s, total {sum(ocr):.0f} s "
                f"for {len(ocr)} documents"
            )
    if not legend:
        sys.stdout.flush()
        return
    print(
        "\nmails/s (burst) = replies / (last reply - first APPEND); single = one mail at a "
        "time into an idle daemon.\nTargets: text >= 50 mails/s, text median <= 2 s (IDLE), "
        "receipt peak RSS < 300 MB over 1 000 mails."
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument(
        "--mails",
        type=int,
        help="burst size per run (default 1000; --quick: 100 text / 30 receipt)",
    )
    ap.add_argument(
        "--receipt-mails", type=int, help="burst size for receipt runs (default: --mails)"
    )
    ap.add_argument(
        "--singles", type=int, help="one-at-a-time mails per run (default 20 text / 5 receipt)"
    )
    ap.add_argument("--kind", choices=("text", "receipt", "both"), default="both")
    ap.add_argument("--workers", default="1,2", help="comma-separated [ocr] workers values")
    ap.add_argument("--quick", action="store_true", help="small sizes for a trial run")
    ap.add_argument(
        "--deliver-seconds",
        type=int,
        default=2,
        help="[schedule] deliver_seconds (default: the shipped default, 2)",
    )
    ap.add_argument(
        "--poll-seconds", type=int, default=60, help="[imap] poll_seconds (IDLE re-check)"
    )
    ap.add_argument("--gap", type=float, default=0.5, help="pause before each single mail (s)")
    ap.add_argument("--single-timeout", type=float, default=60.0, help="wait per single mail (s)")
    ap.add_argument("--timeout", type=float, default=1800.0, help="cap on a burst's wait (s)")
    ap.add_argument(
        "--stall",
        type=float,
        default=90.0,
        help="give up a burst after this long without a reply (s)",
    )
    ap.add_argument("--profile", action="store_true", help="run the daemon under cProfile")
    ap.add_argument("--keep", action="store_true", help="keep each run's temp dir")
    args = ap.parse_args(argv)
    kinds = ("text", "receipt") if args.kind == "both" else (args.kind,)
    workers = [int(w) for w in args.workers.split(",") if w.strip()]
    if not workers or any(w < 1 for w in workers):
        ap.error("--workers: positive integers, e.g. 1,2")
    sizes = {
        "text": args.mails or (100 if args.quick else 1000),
        "receipt": args.receipt_mails or args.mails or (30 if args.quick else 1000),
    }
    singles = (
        {"text": 20, "receipt": 5} if args.singles is None else dict.fromkeys(kinds, args.singles)
    )
    print(
        f"mailbot e2e bench: kinds {', '.join(kinds)}; workers {workers}; sizes {sizes}; "
        f"deliver_seconds {args.deliver_seconds}; cpus {os.cpu_count()}; "
        f"load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    sink = SmtpSink().start()
    results = []
    try:
        for kind in kinds:
            for w in workers:
                print(
                    f"run: {kind}, workers={w}, {singles[kind]} single + {sizes[kind]} burst",
                    flush=True,
                )
                t0 = time.monotonic()
                r = run_scenario(kind, w, sizes[kind], singles[kind], sink, args)
                results.append(r)
                burst = r.phases[-1]
                print(
                    f"  done in {time.monotonic() - t0:.0f} s: {burst.answered}/{burst.sent} "
                    f"answered, {burst.throughput:.1f} mails/s"
                )
                print_table(
                    [r], legend=False
                )  # now, so a later failure does not lose these figures
    finally:
        sink.stop()
    print("\n=== all runs ===")
    print_table(results)
    complete = all(p.answered == p.sent for r in results for p in r.phases)
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
