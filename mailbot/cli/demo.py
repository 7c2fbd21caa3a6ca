"""`mailbot demo`: the main job on embedded defaults, end to end, in one command.

Starts a private Dovecot (the claims mailbox) and an SMTP sink on loopback, uses
SQLite in a temporary data directory, registers claims and an RMA, lets sample
customers write in (receipts as photo and PDF, an out-of-office reply, a bounce,
shipment notifications, refused attachments, a duplicate), runs mailbot after
each step exactly as an operator would (`mailbot once`), and prints the claims,
the RMAs and every reply that was sent.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from mailbot.cli.app import App, print_table
from mailbot.devtools import scenario as sc
from mailbot.devtools.dovecot import LocalDovecot
from mailbot.devtools.samples import bounce_for
from mailbot.devtools.smtpsink import SmtpSink

# The shipped campaign cashback-2022 ran in 2022-2023: the demo lives in that time.
START = "2023-01-20T09:00:00+00:00"


class _Demo(sc.Operator):
    """The scenario's operator, running each `mailbot` command in this process."""

    options = ("--log-format", "text", "--log-level", "ERROR")

    def __init__(self, base: Path, dovecot: LocalDovecot, sink: SmtpSink, out: TextIO):
        super().__init__(
            base, dovecot, sink, now=START, sections={"smtp": {"rate_limit_per_hour": 100}}
        )
        self.out = out

    def invoke(self, argv: list[str]) -> tuple[int, str, str]:
        from mailbot.cli.main import main

        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            code = main(argv)
        return code, buf.getvalue(), ""

    def mailbot(self, *args: str) -> str:
        """Run one `mailbot` command; return what it printed."""
        return self.run(*args).stdout

    def say(self, text: str) -> None:
        self.out.write(f"\n== {text}\n")

    def process(self) -> None:
        before = len(self.sink.messages)
        self.mailbot("once")
        for mail in self.sink.wait_for(before, timeout=1)[before:]:
            self.out.write(f"   -> reply to {mail.rcpt_tos[0]}: {mail.message['Subject']}\n")
        if len(self.sink.messages) == before:
            self.out.write("   (no reply, as intended)\n")

    def show_last_reply(self, address: str) -> None:
        """Print the text of the newest reply to `address`, indented."""
        for line in sc.text_of(self.last_reply_to(address)).strip().splitlines()[:16]:
            self.out.write(f"      | {line}\n")


def _script(d: _Demo) -> None:
    d.mailbot("db", "upgrade")
    d.say("An operator registers two cashback claims (as the web form would)")
    kari = d.created(sc.KARI_CLAIM)
    sven = d.created(sc.SVEN_CLAIM)
    d.out.write(f"   codes {kari} and {sven}\n")
    d.process()

    d.say("Kari replies with a receipt photo without the VAT number, and a serial photo")
    d.deliver(sc.photo_receipt_answer(d.last_reply_to(sc.KARI)))
    d.process()
    d.show_last_reply(sc.KARI)

    d.say("Kari answers the missing-information mail with a proper PDF receipt")
    d.deliver(sc.pdf_receipt_answer(d.last_reply_to(sc.KARI)))
    d.process()

    d.say("Kari's out-of-office answers our mail")
    d.deliver(sc.out_of_office(d.last_reply_to(sc.KARI)))
    d.process()

    d.say("Sven sends a ZIP and a 7 MB photo; the same mail arrives twice")
    dup = sc.refused_attachments(sc.SVEN, f"Kvitto {sven}", "Här!")
    d.deliver(dup, dup)
    d.process()

    d.say("A reply to Sven bounces")
    ours = d.last_reply_to(sc.SVEN).message["Message-ID"]
    d.deliver(bounce_for(ours, sc.SVEN, to=sc.BOT, reporting="mx.example.se"))
    d.process()

    d.say("A warranty return: the operator issues an RMA")
    rma = d.created(sc.OLA_RMA)
    d.process()
    d.say("Ola sends the shipment notification but forgets the tracking number")
    d.deliver(sc.shipment_notice(sc.OLA, rma, sc.NOTICE_WITHOUT_TRACKING))
    d.process()
    d.show_last_reply(sc.OLA)
    d.say("Ola sends the shipment notification with the tracking number")
    d.now = "2023-01-21T17:00:00+00:00"
    d.deliver(sc.shipment_notice(sc.OLA, rma, sc.NOTICE_WITH_TRACKING))
    d.process()
    d.say("Someone writes about an RMA that does not exist")
    d.deliver(sc.unknown_rma_notice())
    d.process()


def _tables(d: _Demo) -> None:
    import json

    d.say("Claims")
    claims = json.loads(d.mailbot("claims", "list", "--json"))
    for c in claims:
        p = c["payout"]
        c["payout"] = f"{p['amount']} {p['currency']}" if p else ""
        c["undeliverable"] = "yes" if c["address_undeliverable"] else ""
    print_table(claims, ("code", "campaign", "state", "reasons", "payout", "undeliverable"), d.out)
    d.say("RMAs")
    rmas = json.loads(d.mailbot("rma", "list", "--json"))
    print_table(rmas, ("number", "state", "tracking_number", "carrier"), d.out)
    d.say("Replies sent")
    rows = [{"to": m.rcpt_tos[0], "subject": m.message["Subject"]} for m in d.sink.messages]
    print_table(rows, ("to", "subject"), d.out)
    d.say("Ledger")
    d.out.write(d.mailbot("messages", "stats"))


@contextlib.contextmanager
def _servers(base: Path) -> Iterator[tuple[LocalDovecot, SmtpSink]]:
    dovecot = LocalDovecot(base=base / "dovecot")
    sink = SmtpSink()
    try:
        dovecot.start()
        sink.start()
        yield dovecot, sink
    finally:
        sink.stop()
        dovecot.stop()


def cmd_demo(args: argparse.Namespace, app: App) -> int:
    base = Path(tempfile.mkdtemp(prefix="mailbot-demo-"))
    base.chmod(0o755)
    (base / "dovecot").mkdir()
    out = app.out
    out.write(f"mailbot demo: data in {base}\n")
    try:
        with _servers(base) as (dovecot, sink):
            demo = _Demo(base, dovecot, sink, out)
            _script(demo)
            _tables(demo)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    out.write("\ndemo finished\n")
    return 0
