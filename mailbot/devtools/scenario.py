"""The customers' side of mailbot, written once for the demo, the e2e tests and the e2e bench.

What an operator enters (claim registrations, RMAs), what customers write (receipt
photos and PDFs, serial photos, out-of-office answers, refused attachments, shipment
notices), the config that points mailbot at a throwaway Dovecot and SMTP sink, and
`Operator`, which runs `mailbot` against them the way a person at a shell would and
reads the replies off the sink. The people and mails are those of the demo's story:
Kari's cashback claim, Sven's refused attachments, Ola's warranty return.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from imapclient import IMAPClient
from sqlalchemy.orm import Session

from mailbot.config import Settings
from mailbot.devtools.dovecot import LocalDovecot
from mailbot.devtools.samples import (
    customer_mail,
    good_receipt_pdf,
    receipt_photo_without_vat,
    serial_photo,
)
from mailbot.devtools.smtpsink import Captured, SmtpSink
from mailbot.ruleset.loader import RuleSet
from mailbot.services.claims import Registration, register_claim
from mailbot.services.rmas import issue_rma

BOT = "claims@brand.example"
KARI = "kari.nordmann@example.no"
SVEN = "sven.svensson@example.se"
OLA = "ola.hansen@example.no"
TRACKING = "1Z999AA10123456784"
UNKNOWN_RMA = "7654321"
# The shipped campaign cashback-2022 ran in 2022-2023: the scenario lives in that time.
CAMPAIGN = "cashback-2022"
NOW = "2023-01-20T10:00:00+00:00"

Attachment = tuple[str, str, bytes]
Sections = Mapping[str, Mapping[str, str | int | float | bool]]


# --- what the operator enters -------------------------------------------------------------


@dataclass(frozen=True)
class ClaimForm:
    """A cashback registration, as the web form (or `mailbot claims register`) takes it."""

    email: str
    name: str
    model: str = "WH-1000XM5"
    purchase_date: str = "2022-12-12"
    country: str | None = None
    language: str | None = None
    serial: str | None = None
    retailer: str | None = None
    campaign: str = CAMPAIGN

    def args(self) -> list[str]:
        """The `mailbot claims register` command line."""
        return ["claims", "register", *_options(asdict(self))]

    def create(self, session: Session, rules: RuleSet, settings: Settings, now: datetime) -> str:
        """Registered in-process with the service `claims register` calls; the claim's code."""
        form = Registration(**asdict(self))
        return register_claim(session, form, rules=rules, settings=settings, now=now).code


@dataclass(frozen=True)
class RmaForm:
    """A return authorisation, as `mailbot rma issue` takes it."""

    email: str
    product: str = "Sonos One"
    kind: Literal["warranty", "return"] | None = "warranty"
    language: str = "nb"

    def args(self) -> list[str]:
        """The `mailbot rma issue` command line."""
        return ["rma", "issue", *_options(asdict(self))]

    def create(self, session: Session, rules: RuleSet, settings: Settings, now: datetime) -> str:
        """Issued in-process with the service `rma issue` calls; the RMA's number."""
        rma = issue_rma(
            session,
            email=self.email,
            product=self.product,
            kind=self.kind or "warranty",
            serial=None,
            language=self.language,
            rules=rules,
            settings=settings,
            now=now,
        )
        return rma.number


def _options(values: Mapping[str, str | None]) -> list[str]:
    """Command-line options for the fields that are set (`purchase_date` -> `--purchase-date`)."""
    return [
        part
        for name, value in values.items()
        if value is not None
        for part in (f"--{name.replace('_', '-')}", value)
    ]


KARI_CLAIM = ClaimForm(
    KARI,
    "Kari Nordmann",
    serial="5123456",
    retailer="Elkjøp",
    country="NO",
    language="nb",
)
SVEN_CLAIM = ClaimForm(
    SVEN, "Sven Svensson", purchase_date="2022-12-01", country="SE", language="sv"
)
OLA_RMA = RmaForm(OLA)


# --- what the customers write -------------------------------------------------------------


def write(
    sender: str,
    subject: str,
    body: str,
    attachments: Sequence[Attachment] = (),
    headers: dict[str, str] | None = None,
) -> bytes:
    """A new mail from a customer to the claims mailbox."""
    return customer_mail(
        sender=sender, to=BOT, subject=subject, body=body, attachments=attachments, headers=headers
    )


def answer(
    ours: Captured,
    sender: str,
    prefix: str,
    body: str,
    attachments: Sequence[Attachment] = (),
    headers: dict[str, str] | None = None,
) -> bytes:
    """A customer's answer to one of our mails: in its thread, its subject after `prefix`."""
    return customer_mail(
        sender=sender,
        to=BOT,
        subject=f"{prefix}{ours.message['Subject']}",
        body=body,
        in_reply_to=ours.message["Message-ID"],
        attachments=attachments,
        headers=headers,
    )


def photo_receipt_answer(ours: Captured) -> bytes:
    """Kari answers with a receipt photo that lacks the VAT number, and a serial photo."""
    return answer(
        ours,
        KARI,
        "Re: ",
        "Hei! Her er kvitteringen.\n\nHilsen Kari",
        [
            ("kvittering.jpg", "image/jpeg", receipt_photo_without_vat()),
            ("serienr.jpg", "image/jpeg", serial_photo()),
        ],
    )


def complete_answer(ours: Captured, sender: str = KARI) -> bytes:
    """A customer answers the confirmation with everything: the receipt PDF and the
    serial photo."""
    return answer(
        ours,
        sender,
        "Re: ",
        "Her er kvitteringen og serienummeret.",
        [
            ("kvittering.pdf", "application/pdf", good_receipt_pdf()),
            ("serienummer.jpg", "image/jpeg", serial_photo()),
        ],
    )


def pdf_receipt_answer(ours: Captured) -> bytes:
    """Kari answers the missing-information mail with a complete PDF receipt."""
    return answer(
        ours,
        KARI,
        "SV: ",
        "Her kommer kvitteringen som PDF.",
        [("kvittering.pdf", "application/pdf", good_receipt_pdf())],
    )


def out_of_office(ours: Captured) -> bytes:
    """Kari's out-of-office reply to one of our mails."""
    return answer(
        ours,
        KARI,
        "Fraværende: ",
        "Jeg er på ferie.",
        headers={"Auto-Submitted": "auto-replied"},
    )


def refused_attachments(
    sender: str, subject: str, body: str, *, photo: str = "foto.jpg", archive: str = "kvitton.zip"
) -> bytes:
    """A ZIP and a 7 MB photo: both refused, and named in the answer."""
    return write(
        sender,
        subject,
        body,
        [
            (archive, "application/zip", b"PK\x03\x04" + bytes(64)),
            (photo, "image/jpeg", b"\xff\xd8\xff\xe0" + bytes(7 << 20)),
        ],
    )


def receipt_mail(sender: str, code: str, photo: bytes) -> bytes:
    """A receipt photo sent for claim `code`, the code in the subject."""
    return write(
        sender,
        f"Kvittering {code}",
        "Hei, her er kvitteringen.\n\nHilsen Kari",
        [("kvittering.jpg", "image/jpeg", photo)],
    )


NOTICE_WITHOUT_TRACKING = "Hei,\npakken er sendt i dag.\n"
NOTICE_WITH_TRACKING = f"Hei,\nSporingsnummer {TRACKING}, levert på posten i dag kl. 15:30.\n"


def shipment_notice(sender: str, number: str, body: str) -> bytes:
    """The customer's shipment notification for RMA `number`."""
    return write(sender, f"Shipment Notification: RMA# {number}", body)


def unknown_rma_notice() -> bytes:
    """A shipment notification about an RMA that does not exist."""
    return write(
        "per@example.no", f"shipment notification RMA #{UNKNOWN_RMA}", f"Tracking: {TRACKING}"
    )


# --- the servers and the operator ---------------------------------------------------------


def config_toml(
    imap_port: int,
    smtp_port: int,
    data_dir: Path,
    db_url: str | None = None,
    sections: Sections | None = None,
) -> str:
    """A mailbot config for the throwaway servers; `sections` add or override keys.

    Written by hand: the standard library reads TOML but writes none, and these are
    a few flat sections of scalars."""
    config: dict[str, dict[str, str | int | float | bool]] = {
        "imap": {
            "host": "127.0.0.1",
            "port": imap_port,
            "tls": "none",
            "username": "claims",
            "password": "secret",
            "idle": False,
            "poll_seconds": 1,
        },
        "smtp": {
            "host": "127.0.0.1",
            "port": smtp_port,
            "tls": "none",
            "from_address": BOT,
            "rate_limit_per_hour": 50,
        },
        "paths": {"data_dir": str(data_dir)},
        "log": {"format": "text", "level": "WARNING"},
    }
    for name, keys in (sections or {}).items():
        config.setdefault(name, {}).update(keys)
    if db_url:
        config["database"] = {"url": db_url}
    lines = []
    for name, keys in config.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {_toml_value(value)}" for key, value in keys.items()]
    return "\n".join(lines) + "\n"


def _toml_value(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string
    return repr(value)


def imap_client(port: int, timeout: float = 10) -> IMAPClient:
    """A connection to the claims mailbox of a `LocalDovecot`, logged in."""
    client = IMAPClient("127.0.0.1", port=port, ssl=False, timeout=timeout)
    client.login("claims", "secret")
    return client


def text_of(mail: Captured) -> str:
    """The plain-text body of a captured reply ("" when it has none)."""
    body = mail.message.get_body(preferencelist=("plain",))
    return str(body.get_content()) if body is not None else ""


class Operator:
    """Runs `mailbot` like a person at a shell, with a config file and a fixed clock.

    Each command runs in a subprocess (`python -m mailbot`); a subclass may run it
    another way by overriding `invoke`. `sections` add to or override the config."""

    options: tuple[str, ...] = ()
    """Global options put before every command."""

    def __init__(
        self,
        tmp: Path,
        dovecot: LocalDovecot,
        sink: SmtpSink,
        db_url: str | None = None,
        *,
        now: str = NOW,
        sections: Sections | None = None,
    ) -> None:
        self.tmp = tmp
        self.dovecot = dovecot
        self.sink = sink
        self.now = now
        self.config = tmp / "mailbot.toml"
        self.config.write_text(config_toml(dovecot.port, sink.port, tmp / "data", db_url, sections))

    def invoke(self, argv: list[str]) -> tuple[int, str, str]:
        """Run `mailbot` with `argv`; (exit code, stdout, stderr)."""
        proc = subprocess.run(
            [sys.executable, "-m", "mailbot", *argv],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=self.tmp,
        )
        return proc.returncode, proc.stdout, proc.stderr

    def run(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        """One `mailbot` command at the current clock; with `ok`, it must exit 0."""
        argv = ["--config", str(self.config), "--now", self.now, *self.options, *args]
        code, out, err = self.invoke(argv)
        if ok and code != 0:
            raise RuntimeError(f"mailbot {' '.join(args)} exited {code}:\n{out}\n{err}")
        return subprocess.CompletedProcess(argv, code, out, err)

    def json(self, *args: str) -> object:
        return json.loads(self.run(*args, "--json").stdout)

    def created(self, form: ClaimForm | RmaForm) -> str:
        """Registers the claim or issues the RMA; its code or number."""
        return self.run(*form.args()).stdout.strip().splitlines()[-1]

    def deliver(self, *raws: bytes) -> None:
        """Put customer mails into the claims mailbox, as their mail servers would."""
        client = imap_client(self.dovecot.port)
        for raw in raws:
            client.append("INBOX", raw)
        client.logout()

    def replies_after(self, count_before: int, expect: int, timeout: float = 5) -> list[Captured]:
        """The replies after the first `count_before`, once `expect` more arrived (or timeout)."""
        return self.sink.wait_for(count_before + expect, timeout=timeout)[count_before:]

    def last_reply_to(self, address: str) -> Captured:
        for mail in reversed(self.sink.messages):
            if address in mail.rcpt_tos:
                return mail
        raise RuntimeError(f"no reply to {address} yet")
