"""One message, start to end: parse -> classify -> route -> decide -> record.

This is the `Processor` the intake calls inside the message's transaction
(`mailbot.intake.ledger.process_one`): whatever it records (claim state, events, queued
replies) commits together with the ledger status, or not at all. Loops are cut
here: nothing is answered that comes from ourselves, is an auto-reply or is a
bounce (bounces flag the address instead).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailbot import metrics
from mailbot.config import Settings
from mailbot.core.claim_match import match_claim
from mailbot.core.errors import RowBusy
from mailbot.core.mail import Classification, MailKind
from mailbot.intake.ledger import GROUP_WORK, ProcessOutcome
from mailbot.intake.prefetch import Prefetcher
from mailbot.log import mask_email
from mailbot.ruleset.loader import RuleSet
from mailbot.services import inbound
from mailbot.services.documents import DocumentStore, Reader, make_reader
from mailbot.services.outbox import bare_address
from mailbot.services.records import rma_by_number
from mailbot.store import models as m
from mailbot.store.directory import StoreClaimDirectory
from mailbot.store.models import Message
from parsers.mail.classify import classify
from parsers.mail.parse import parse_email
from parsers.returns.notice import parse_shipment_notification

log = logging.getLogger(__name__)


def lock_for_decision(session: Session, model: type[m.Claim] | type[m.Rma], row_id: int) -> None:
    """Lock the claim or RMA row this mail is about to decide, until the commit.

    With several daemons on PostgreSQL, two mails of one claim may be taken by two
    processes at once: the second waits here for the first's commit and then decides
    on the claim as that commit left it (the row is read again), as a single process
    would have. Only the first decision of a group waits; a later one raises RowBusy
    when the row is taken (its group commits and it is redone first in the next), so
    no two transactions can wait on each other. SQLite has one writer: nothing to do.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    first = not session.info.get(GROUP_WORK)
    q = select(model).where(model.id == row_id).with_for_update(skip_locked=not first)
    got = session.scalars(q.execution_options(populate_existing=True)).first()
    if got is None and not first:
        raise RowBusy(f"{model.__tablename__} row {row_id} is being decided by another process")


@dataclass
class Pipeline:
    settings: Settings
    rules: Callable[[], RuleSet]
    clock: Callable[[], datetime]
    reader: Reader | None = None
    factory: sessionmaker[Session] | None = None
    """Given (with ocr.workers > 1): documents of a fetched batch are read in parallel."""

    def __post_init__(self) -> None:
        ocr = self.settings.ocr
        if self.reader is None:
            self.reader = make_reader(self.rules, ocr.languages, ocr.timeout_seconds)
        self.store = DocumentStore(self.settings.data_dir / "documents")
        self.prefetcher: Prefetcher | None = None
        if self.factory is not None and ocr.workers > 1:
            self.prefetcher = Prefetcher(
                self.factory, self.rules, ocr.workers, ocr.languages, ocr.timeout_seconds
            )
            self.reader = self.prefetcher.wrap(self.reader)

    def prefetch(self, raws: Sequence[bytes]) -> None:
        """Called by the intake with a fetched batch before it is processed."""
        if self.prefetcher is not None:
            try:
                self.prefetcher.prefetch(raws)
            except Exception:  # an optimisation must never cost a message
                log.exception("prefetch failed; documents are read in line")

    def settle(self) -> None:
        """Called when a taken batch is done: drop reads prefetched for mails another
        process decided (they would otherwise be kept for ever)."""
        if self.prefetcher is not None:
            self.prefetcher.forget()

    def close(self) -> None:
        if self.prefetcher is not None:
            self.prefetcher.close()

    def __call__(self, session: Session, row: Message, raw: bytes) -> ProcessOutcome:
        started = time.monotonic()
        try:
            return self._process(session, row, raw)
        finally:
            metrics.processing_seconds(time.monotonic() - started)

    def _process(self, session: Session, row: Message, raw: bytes) -> ProcessOutcome:
        rules = self.rules()
        now = self.clock()
        email = parse_email(raw)
        cls = classify(email, raw, rules.classify)
        row.kind = cls.kind.value
        row.from_masked = mask_email(email.from_address or "")[:320] or None
        assert self.reader is not None
        inb = inbound.Inbound(
            email=email,
            row=row,
            settings=self.settings,
            rules=rules,
            now=now,
            reader=self.reader,
            store=self.store,
        )
        # No autoflush: the ledger row's new kind must not be written (taking SQLite's
        # write lock) by the first lookup, before the documents are read.
        with session.no_autoflush:
            status, reason = self._route(session, inb, cls)
        log.info(
            "message handled",
            extra={"ledger_id": row.id, "kind": cls.kind.value, "status": status, "reason": reason},
        )
        return ProcessOutcome(status, reason)  # type: ignore[arg-type]

    def _route(self, session: Session, inb: inbound.Inbound, cls: Classification) -> inbound.Result:
        ours = bare_address(self.settings.smtp.from_address).lower()
        sender = bare_address(inb.email.from_address or "").lower()
        if cls.kind is MailKind.BOUNCE:
            return inbound.handle_bounce(session, inb, cls)
        if sender and sender == ours:
            return "ignored", "own_mail"
        if cls.kind is MailKind.AUTO_REPLY:
            return "ignored", f"auto_reply:{cls.reason}"[:200]
        local_now = inb.now.astimezone(inb.rules.returns.tz)
        notice = parse_shipment_notification(inb.email, inb.rules.matching, local_now)
        if notice is not None and inbound.is_rma_notice(session, notice):
            rma = rma_by_number(session, notice.rma_number) if notice.rma_number else None
            if rma is not None:
                lock_for_decision(session, m.Rma, rma.id)
            return inbound.handle_shipment(session, inb, notice)
        match = match_claim(
            inb.email,
            StoreClaimDirectory(session),
            ignore_words=inb.rules.matching.all_code_ignore_words(),
            trusted_authserv_ids=self.settings.imap.trusted_authserv_ids,
        )
        if match.claim is not None:
            lock_for_decision(session, m.Claim, match.claim.claim_id)
        return inbound.handle_claim_mail(session, inb, match)
