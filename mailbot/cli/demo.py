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
from typing import Any, TextIO

from mailbot.cli.app import App, print_table
from mailbot.devtools import samples
from mailbot.devtools.dovecot import LocalDovecot
from mailbot.devtools.smtpsink import SmtpSink

BOT = "claims@brand.example"
KARI = "kari.nordmann@example.no"
SVEN = "sven.svensson@example.se"
OLA = "ola.hansen@example.no"

# The shipped campaign cashback-2022 ran in 2022-2023: the demo lives in that time.
START = "2023-01-20T09:00:00+00:00"


class _Demo:
    def __init__(self, base: Path, dovecot: LocalDovecot, sink: SmtpSink, out: TextIO):
        self.base = base
        self.dovecot = dovecot
        self.sink = sink
        self.out = out
        self.now = START
        self.config = base / "mailbot.toml"
        self.config.write_text(
            f'[imap]\nhost = "127.0.0.1"\nport = {dovecot.port}\ntls = "none"\n'
            'username = "claims"\npassword = "secret"\nidle = false\n'
            f'[smtp]\nhost = "127.0.0.1"\nport = {sink.port}\ntls = "none"\n'
            f'from_address = "{BOT}"\nrate_limit_per_hour = 100\n'
            f'[paths]\ndata_dir = "{base / "data"}"\n'
        )

    def mailbot(self, *args: str) -> str:
        """Run one `mailbot` command in-process; return what it printed."""
        from mailbot.cli.main import main

        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            code = main(
                [
                    "--config",
                    str(self.config),
                    "--now",
                    self.now,
                    "--log-format",
                    "text",
                    "--log-level",
                    "ERROR",
                    *args,
                ]
            )
        if code != 0:
            raise RuntimeError(f"mailbot {' '.join(args)} exited {code}: {buf.getvalue()}")
        return buf.getvalue()

    def say(self, text: str) -> None:
        self.out.write(f"\n== {text}\n")

    def write(self, sender: str, subject: str, body: str, **extra: Any) -> None:
        """A customer's mail to the claims mailbox (`samples.customer_mail` options)."""
        self.deliver(
            samples.customer_mail(sender=sender, to=BOT, subject=subject, body=body, **extra)
        )

    def deliver(self, raw: bytes) -> None:
        from imapclient import IMAPClient

        client = IMAPClient("127.0.0.1", port=self.dovecot.port, ssl=False, timeout=10)
        client.login("claims", "secret")
        client.append("INBOX", raw)
        client.logout()

    def process(self) -> None:
        before = len(self.sink.messages)
        self.mailbot("once")
        for mail in self.sink.wait_for(before, timeout=1)[before:]:
            self.out.write(f"   -> reply to {mail.rcpt_tos[0]}: {mail.message['Subject']}\n")
        if len(self.sink.messages) == before:
            self.out.write("   (no reply, as intended)\n")

    def show_last_reply(self, address: str) -> None:
        """Print the text of the newest reply to `address`, indented."""
        for mail in reversed(self.sink.messages):
            if address in mail.rcpt_tos:
                body = mail.message.get_body(preferencelist=("plain",))
                text = str(body.get_content()) if body is not None else ""
                for line in text.strip().splitlines()[:16]:
                    self.out.write(f"      | {line}\n")
                return

    def last_reply_to(self, address: str) -> tuple[str, str]:
        for mail in reversed(self.sink.messages):
            if address in mail.rcpt_tos:
                return str(mail.message["Subject"]), str(mail.message["Message-ID"])
        raise RuntimeError(f"no reply to {address} yet")


def _script(d: _Demo) -> None:
    d.mailbot("db", "upgrade")
    d.say("An operator registers two cashback claims (as the web form would)")
    kari = d.mailbot(
        "claims",
        "register",
        "--campaign",
        "cashback-2022",
        "--email",
        KARI,
        "--name",
        "Kari Nordmann",
        "--model",
        "WH-1000XM5",
        "--serial",
        "5123456",
        "--purchase-date",
        "2022-12-12",
        "--retailer",
        "Elkjøp",
        "--country",
        "NO",
        "--language",
        "nb",
    ).split()[-1]
    sven = d.mailbot(
        "claims",
        "register",
        "--campaign",
        "cashback-2022",
        "--email",
        SVEN,
        "--name",
        "Sven Svensson",
        "--model",
        "WH-1000XM5",
        "--country",
        "SE",
        "--purchase-date",
        "2022-12-01",
        "--language",
        "sv",
    ).split()[-1]
    d.out.write(f"   codes {kari} and {sven}\n")
    d.process()

    d.say("Kari replies with a receipt photo without the VAT number, and a serial photo")
    subject, mid = d.last_reply_to(KARI)
    photo = samples.receipt_photo_without_vat()
    serial = samples.serial_photo()
    d.write(
        KARI,
        subject=f"Re: {subject}",
        body="Hei! Her er kvitteringen.\n\nHilsen Kari",
        in_reply_to=mid,
        attachments=[
            ("kvittering.jpg", "image/jpeg", photo),
            ("serienr.jpg", "image/jpeg", serial),
        ],
    )
    d.process()
    d.show_last_reply(KARI)

    d.say("Kari answers the missing-information mail with a proper PDF receipt")
    subject, mid = d.last_reply_to(KARI)
    pdf = samples.good_receipt_pdf()
    d.write(
        KARI,
        subject=f"SV: {subject}",
        body="Her kommer kvitteringen som PDF.",
        in_reply_to=mid,
        attachments=[("kvittering.pdf", "application/pdf", pdf)],
    )
    d.process()

    d.say("Kari's out-of-office answers our mail")
    subject, mid = d.last_reply_to(KARI)
    d.write(
        KARI,
        subject=f"Fraværende: {subject}",
        body="Jeg er på ferie.",
        in_reply_to=mid,
        headers={"Auto-Submitted": "auto-replied"},
    )
    d.process()

    d.say("Sven sends a ZIP and a 7 MB photo; the same mail arrives twice")
    dup = samples.customer_mail(
        sender=SVEN,
        to=BOT,
        subject=f"Kvitto {sven}",
        body="Här!",
        attachments=[
            ("kvitton.zip", "application/zip", b"PK\x03\x04" + bytes(64)),
            ("foto.jpg", "image/jpeg", b"\xff\xd8\xff\xe0" + bytes(7 << 20)),
        ],
    )
    d.deliver(dup)
    d.deliver(dup)
    d.process()

    d.say("A reply to Sven bounces")
    _, mid = d.last_reply_to(SVEN)
    d.deliver(samples.bounce_for(mid, SVEN, to=BOT, reporting="mx.example.se"))
    d.process()

    d.say("A warranty return: the operator issues an RMA")
    rma = d.mailbot(
        "rma",
        "issue",
        "--email",
        OLA,
        "--product",
        "Sonos One",
        "--kind",
        "warranty",
        "--language",
        "nb",
    ).split()[-1]
    d.process()
    d.say("Ola sends the shipment notification but forgets the tracking number")
    d.write(
        OLA,
        subject=f"Shipment Notification: RMA# {rma}",
        body="Hei,\npakken er sendt i dag.\n",
    )
    d.process()
    d.show_last_reply(OLA)
    d.say("Ola sends the shipment notification with the tracking number")
    d.now = "2023-01-21T17:00:00+00:00"
    d.write(
        OLA,
        subject=f"Shipment Notification: RMA# {rma}",
        body="Hei,\nSporingsnummer 1Z999AA10123456784, levert på posten i dag kl. 15:30.\n",
    )
    d.process()
    d.say("Someone writes about an RMA that does not exist")
    d.write(
        "per@example.no",
        subject="shipment notification RMA #7654321",
        body="Tracking: 1Z999AA10123456784",
    )
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
