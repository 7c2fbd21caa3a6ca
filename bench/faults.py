"""Hostile mails through the real daemon: seconds, peak memory and outcome of each.

Each case gets a throwaway Dovecot (`mailbot.devtools.dovecot`), an SMTP sink, a
fresh SQLite data dir and two registered claims. The hostile mail is APPENDed
first, then a normal receipt mail (the canary) behind it, and `mailbot once` runs
as an operator runs it, in a subprocess. Printed per case: wall seconds of
`once`, the peak RSS of the largest process of its tree (the daemon or a
tesseract child: RUSAGE_CHILDREN of a wrapper process), the ledger status and
reason of the hostile mail, whether the canary was answered, and in total the
mails lost (APPENDed, yet no final ledger status) and answered twice.

Cases: a PDF whose one text line is 3 000 characters; a 6 KB PDF holding 6 MB of
NULs; an 838-byte PDF of 200 000 characters; a 600 KB body declared as punycode; a
9400x9400 PNG (257 KB); 2 000 nested multiparts; 5 000 parts. When
`bench/faults_smtp.py` exists, its `run()` rows (SMTP faults) are printed too.

Run:  PYTHONPATH=. .venv/bin/python bench/faults.py [--only NAME] [--timeout S]
Exit 0 when nothing was lost or answered twice and every canary was answered.
"""

from __future__ import annotations

import argparse
import base64
import importlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

from imapclient import IMAPClient
from PIL import Image
from sqlalchemy import select

from mailbot.cli.app import App
from mailbot.config import load_settings
from mailbot.devtools.dovecot import LocalDovecot
from mailbot.devtools.samples import customer_mail, deflated_pdf, good_receipt_pdf, text_pdf
from mailbot.devtools.scenario import config_toml
from mailbot.devtools.smtpsink import SmtpSink
from mailbot.outbound.delivery import deliver_pending
from mailbot.services.claims import Registration, register_claim
from mailbot.store import models as m
from mailbot.store.db import transaction

BOT = "claims@brand.example"
NOW = "2023-01-20T10:00:00+00:00"
FINAL = ("processed", "ignored", "quarantined", "failed", "duplicate")


def _with_file(name: str, mime: str, data: bytes) -> Callable[[str, str], bytes]:
    def build(sender: str, subject: str) -> bytes:
        return customer_mail(
            sender=sender,
            to=BOT,
            subject=subject,
            body="Hei, her er kvitteringen.",
            attachments=[(name, mime, data)],
        )

    return build


def _punycode(sender: str, subject: str) -> bytes:
    head = (
        f"From: {sender}\r\nTo: {BOT}\r\nSubject: {subject}\r\n"
        f"Message-ID: {make_msgid(domain='customer.example')}\r\nMIME-Version: 1.0\r\n"
        'Content-Type: text/plain; charset="punycode"\r\nContent-Transfer-Encoding: base64\r\n'
    ).encode()
    return head + b"\r\n" + base64.encodebytes(b"x-" + b"ba" * 300_000)


def _nested(depth: int) -> Callable[[str, str], bytes]:
    def build(sender: str, subject: str) -> bytes:
        head = (
            f"From: {sender}\r\nTo: {BOT}\r\nSubject: {subject}\r\n"
            f"Message-ID: {make_msgid(domain='customer.example')}\r\nMIME-Version: 1.0\r\n"
        ).encode()
        opening = b"".join(
            b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
            for i in range(depth)
        )
        closing = b"".join(b"\r\n--b%d--\r\n" % i for i in reversed(range(depth)))
        return head + opening + b"Content-Type: text/plain\r\n\r\nhei" + closing

    return build


def _many_parts(count: int) -> Callable[[str, str], bytes]:
    def build(sender: str, subject: str) -> bytes:
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = sender, BOT, subject
        msg["Message-ID"] = make_msgid(domain="customer.example")
        msg.set_content("Hei")
        for i in range(count):
            msg.add_attachment(b"x", maintype="application", subtype="octet-stream",
                               filename=f"f{i}.bin")  # fmt: skip
        return msg.as_bytes()

    return build


def _huge_png() -> bytes:
    out = io.BytesIO()
    Image.new("L", (9400, 9400), 255).save(out, format="PNG")
    return out.getvalue()


CASES: dict[str, Callable[[], Callable[[str, str], bytes]]] = {
    "long-line-pdf": lambda: _with_file(
        "kvittering.pdf", "application/pdf", text_pdf(["ab" * 1500])
    ),
    "nul-bomb-pdf": lambda: _with_file(
        "kvittering.pdf", "application/pdf", deflated_pdf(b"\0" * 6_000_000)
    ),
    "char-bomb-pdf": lambda: _with_file(
        "kvittering.pdf",
        "application/pdf",
        deflated_pdf(b"BT /F1 1 Tf 0 0 Td (" + b"a" * 200_000 + b") Tj ET"),
    ),
    "punycode-body": lambda: _punycode,
    "huge-png": lambda: _with_file("kvittering.png", "image/png", _huge_png()),
    "deep-mime": lambda: _nested(2000),
    "many-parts": lambda: _many_parts(5000),
}


def _config(path: Path, dovecot: LocalDovecot, sink: SmtpSink, data: Path) -> None:
    # no rate limit worth the name: every hostile mail may be answered
    smtp = {"rate_limit_per_hour": 100000}
    path.write_text(config_toml(dovecot.port, sink.port, data, sections={"smtp": smtp}))


def _register(cfg: Path, addresses: list[str]) -> list[str]:
    """One claim per address; their confirmations delivered before the run."""
    app = App(load_settings(cfg), clock=lambda: datetime.fromisoformat(NOW))
    app.ensure_schema()
    codes = []
    with transaction(app.factory) as session:
        for i, address in enumerate(addresses):
            claim = register_claim(
                session,
                Registration(
                    campaign="cashback-2022",
                    email=address,
                    name=f"Kari Nordmann {i}",
                    model="WH-1000XM5",
                    purchase_date="2022-12-12",
                    country="NO",
                    language="nb",
                ),
                rules=app.rules,
                settings=app.settings,
                now=app.now(),
            )
            codes.append(claim.code)
    deliver_pending(app.factory, app.settings, app.now(), limit=100)
    app.engine.dispose()
    return codes


_WRAPPER = (
    "import resource, subprocess, sys, time\n"
    "t = time.monotonic()\n"
    "done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
    "print(round(time.monotonic() - t, 2), done.returncode,"
    " resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)\n"
)
"""Runs the command and prints its wall seconds, exit status and the peak RSS (MB) of
the largest process of its tree (ru_maxrss of all waited-for descendants)."""


def run_case(name: str, build: Callable[[str, str], bytes], timeout: float) -> dict[str, Any]:
    base = Path(tempfile.mkdtemp(prefix=f"mbfault-{name}-"))
    dovecot = LocalDovecot().start()
    sink = SmtpSink().start()
    try:
        cfg = base / "mailbot.toml"
        _config(cfg, dovecot, sink, base / "data")
        hostile, canary = f"hostile.{name}@customer.example", f"canary.{name}@customer.example"
        codes = _register(cfg, [hostile, canary])
        sink.clear()
        mails = [
            build(hostile, f"Kvittering {codes[0]}"),
            _with_file("kvittering.pdf", "application/pdf", good_receipt_pdf())(
                canary, f"Kvittering {codes[1]}"
            ),
        ]
        client = IMAPClient("127.0.0.1", port=dovecot.port, ssl=False, timeout=60)
        client.login("claims", "secret")
        for raw in mails:
            client.append("INBOX", raw)
        client.logout()
        command = [sys.executable, "-m", "mailbot", "--config", str(cfg), "--now", NOW, "once"]
        started = time.monotonic()
        # Its own process group, so a run over the timeout is killed whole (the
        # wrapper, `once` and any tesseract child), not left running.
        wrapper = subprocess.Popen(
            [sys.executable, "-c", _WRAPPER, *command],
            stdout=subprocess.PIPE,
            text=True,
            cwd=base,
            start_new_session=True,
        )
        try:
            out, _ = wrapper.communicate(timeout=timeout)
            seconds_s, code_s, rss_s = out.split()[-3:]
            seconds, code, rss = float(seconds_s), int(code_s), int(rss_s)
        except subprocess.TimeoutExpired:
            os.killpg(wrapper.pid, signal.SIGKILL)
            wrapper.wait()
            seconds, code, rss = round(time.monotonic() - started, 1), -1, -1
        time.sleep(0.5)  # the sink's last DATA
        received = Counter(addr.lower() for captured in sink.messages for addr in captured.rcpt_tos)
        app = App(load_settings(cfg), clock=lambda: datetime.fromisoformat(NOW))
        with transaction(app.factory) as session:
            rows = session.execute(
                select(m.Message.from_masked, m.Message.status, m.Message.reason).order_by(
                    m.Message.id
                )
            ).all()
        app.engine.dispose()
        statuses = [(status, reason) for _, status, reason in rows]
        first = statuses[0] if statuses else ("missing", None)
        return {
            "case": name,
            "size_kb": round(len(mails[0]) / 1024, 1),
            "seconds": seconds,
            "exit": code,
            "peak_rss_mb": rss,
            "status": first[0],
            "reason": (first[1] or "")[:60],
            "hostile_answered": received[hostile],
            "canary_answered": received[canary],
            "lost": len(mails) - sum(1 for s, _ in statuses if s in FINAL),
            "twice": sum(1 for n in received.values() if n > 1),
        }
    finally:
        sink.stop()
        dovecot.stop()
        shutil.rmtree(base, ignore_errors=True)


def _smtp_rows() -> list[dict[str, Any]]:
    if not (Path(__file__).parent / "faults_smtp.py").exists():
        return []
    sys.path.insert(0, str(Path(__file__).parent))
    module = importlib.import_module("faults_smtp")
    return list(module.run())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", action="append", choices=sorted(CASES), help="run this case")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per `once` run")
    parser.add_argument("--no-smtp", action="store_true", help="skip bench/faults_smtp.py")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rows = []
    for name in args.only or list(CASES):
        row = run_case(name, CASES[name](), args.timeout)
        rows.append(row)
        if not args.json:
            print(
                f"{row['case']:<15} {row['size_kb']:>7} KB  {row['seconds']:>6} s  "
                f"{row['peak_rss_mb']:>5} MB  {row['status']:<11} {row['reason']:<40} "
                f"answered {row['hostile_answered']}, canary {row['canary_answered']}",
                flush=True,
            )
    lost = sum(r["lost"] for r in rows)
    twice = sum(r["twice"] for r in rows)
    canaries = sum(1 for r in rows if r["canary_answered"] != 1)
    smtp = [] if args.no_smtp else _smtp_rows()
    if args.json:
        print(json.dumps({"hostile": rows, "smtp": smtp}, indent=1, default=str))
    else:
        print(f"total: {lost} lost, {twice} answered twice, {canaries} canaries unanswered")
        for row in smtp:
            print("smtp:", " ".join(f"{k}={v}" for k, v in row.items()))
    return 0 if lost == twice == canaries == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
