"""Shared bits of the ingest tests: settings for a LocalDovecot, mails, a recording processor."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from imapclient import IMAPClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailbot.config import DatabaseSettings, ImapSettings, PathSettings, Settings
from mailbot.intake.ledger import Factory, ProcessOutcome
from mailbot.store.db import make_engine, session_factory, transaction, upgrade
from mailbot.store.models import Event, Message

RAISE_MARK = b"X-Test-Raise: yes"
IGNORE_MARK = b"X-Test-Ignore: yes"
EVENT_KIND = "ingest_test"


def make_settings(port: int, data_dir: Path, db_url: str, **imap: object) -> Settings:
    base: dict[str, object] = dict(
        host="127.0.0.1",
        port=port,
        tls="none",
        username="claims",
        password="secret",
        poll_seconds=2,
        batch_size=50,
        timeout_seconds=5.0,
        account="claims@test",
    )
    base.update(imap)
    return Settings(
        imap=ImapSettings(**base),  # type: ignore[arg-type]
        database=DatabaseSettings(url=db_url),
        paths=PathSettings(data_dir=str(data_dir)),
    )


def make_factory(db_url: str) -> Factory:
    engine = make_engine(db_url)
    upgrade(engine)
    return session_factory(engine)


def make_mail(i: int, *, extra_header: bytes = b"", pad: int = 0, tag: str = "t") -> bytes:
    head = (
        f"From: Kari Nordmann <kari{i}@example.no>\r\n"
        f"To: claims@example.com\r\n"
        f"Subject: test {tag} {i}\r\n"
        f"Message-ID: <{tag}-{i}@example.no>\r\n"
        f"Date: Sun, 22 Nov 2026 03:00:00 +0000\r\n"
    ).encode()
    body = f"hello {i}\r\n".encode() + b"x" * pad + b"\r\n"
    return head + extra_header + (b"\r\n" if extra_header else b"") + b"\r\n" + body


def imap_client(port: int) -> IMAPClient:
    c = IMAPClient("127.0.0.1", port=port, ssl=False, timeout=10)
    c.login("claims", "secret")
    return c


def append_all(port: int, mails: list[bytes], folder: str = "INBOX") -> None:
    c = imap_client(port)
    try:
        if not c.folder_exists(folder):
            c.create_folder(folder)
        for raw in mails:
            c.append(folder, raw)
    finally:
        c.logout()


def folder_count(port: int, folder: str) -> int:
    c = imap_client(port)
    try:
        if not c.folder_exists(folder):
            return 0
        return int(c.folder_status(folder, ["MESSAGES"])[b"MESSAGES"])
    finally:
        c.logout()


def recording_processor(delay: float = 0.0) -> Callable[[Session, Message, bytes], ProcessOutcome]:
    """Records one Event per processing in the same transaction: doubles are visible."""

    def process(session: Session, msg: Message, raw: bytes) -> ProcessOutcome:
        if delay:
            time.sleep(delay)  # widens the window a kill -9 can land in
        session.add(Event(kind=EVENT_KIND, message_id=msg.id, created_at=datetime.now(UTC)))
        if RAISE_MARK in raw:
            raise RuntimeError("test processor asked to fail for kari@example.no")
        if IGNORE_MARK in raw:
            return ProcessOutcome("ignored", "test_ignore")
        return ProcessOutcome("processed")

    return process


def status_counts(factory: Factory) -> dict[str, int]:
    with transaction(factory) as s:
        rows = s.execute(select(Message.status, func.count()).group_by(Message.status))
        return {status: n for status, n in rows}


def processing_counts(factory: Factory) -> dict[int, int]:
    """ledger id -> how many committed processings it had."""
    with transaction(factory) as s:
        rows = s.execute(
            select(Event.message_id, func.count())
            .where(Event.kind == EVENT_KIND)
            .group_by(Event.message_id)
        )
        return {int(mid): n for mid, n in rows if mid is not None}


def ledger_message_ids(factory: Factory, status: str | None = None) -> list[str]:
    with transaction(factory) as s:
        stmt = select(Message.message_id)
        if status:
            stmt = stmt.where(Message.status == status)
        return [m or "" for m in s.scalars(stmt)]


def wait_for(cond: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(interval)
    return cond()
