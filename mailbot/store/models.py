"""SQLAlchemy 2 typed models: the ledger, claims, RMAs, documents, events and outbox.

Times are stored as timezone-aware UTC. JSON columns hold small structured values
(reason codes, evidence, extracted fields) that are read whole, never queried into.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

# Stable constraint names so alembic migrations are the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use UTC-aware times")
        from datetime import UTC

        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        from datetime import UTC

        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}


class Campaign(Base):
    """A campaign or returns policy known from rules/ (the YAML is the truth; this row
    lets claims refer to it and records which rules version was last loaded)."""

    __tablename__ = "campaigns"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), default="cashback")
    name: Mapped[str] = mapped_column(String(200), default="")
    rules_version: Mapped[str] = mapped_column(String(64), default="")
    loaded_at: Mapped[datetime | None]


class Claim(Base):
    __tablename__ = "claims"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id"))
    email: Mapped[str] = mapped_column(String(320), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    model: Mapped[str] = mapped_column(String(120), default="")
    serial: Mapped[str | None] = mapped_column(String(120))
    purchase_date: Mapped[str | None] = mapped_column(String(10))
    retailer: Mapped[str | None] = mapped_column(String(200))
    country: Mapped[str | None] = mapped_column(String(2))
    language: Mapped[str] = mapped_column(String(8), default="en")
    price: Mapped[Any | None] = mapped_column(Numeric(12, 2))
    currency: Mapped[str | None] = mapped_column(String(3))
    state: Mapped[str] = mapped_column(String(32), index=True)
    state_reasons: Mapped[list[Any]] = mapped_column(default=list)
    deadline_at: Mapped[datetime | None]
    reminded_at: Mapped[datetime | None]
    payout_amount: Mapped[Any | None] = mapped_column(Numeric(12, 2))
    payout_currency: Mapped[str | None] = mapped_column(String(3))
    address_undeliverable: Mapped[bool] = mapped_column(Boolean, default=False)
    facts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """Everything else the state machine keeps (snapshot fields, confirmed receipt facts)."""
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Rma(Base):
    __tablename__ = "rmas"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    policy_id: Mapped[str] = mapped_column(String(64), default="returns")
    email: Mapped[str] = mapped_column(String(320), index=True)
    product: Mapped[str] = mapped_column(String(200), default="")
    serial: Mapped[str | None] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(16), default="warranty")
    language: Mapped[str] = mapped_column(String(8), default="en")
    state: Mapped[str] = mapped_column(String(32), index=True)
    issued_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    tracking_number: Mapped[str | None] = mapped_column(String(64))
    carrier: Mapped[str | None] = mapped_column(String(32))
    dropoff_at: Mapped[datetime | None]
    reminded_at: Mapped[datetime | None]
    address_undeliverable: Mapped[bool] = mapped_column(Boolean, default=False)
    """A bounce said mail to this address does not arrive (no more replies to it)."""
    facts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


# lower(email): the suppression check and bounce flagging compare addresses
# case-insensitively for every reply (migration 0002)
Index("ix_claims_email_lower", func.lower(Claim.email))
Index("ix_rmas_email_lower", func.lower(Rma.email))


class MailboxState(Base):
    """Per (account, folder): the UIDVALIDITY we synced against and the highest UID seen."""

    __tablename__ = "mailbox_state"
    account: Mapped[str] = mapped_column(String(320), primary_key=True)
    folder: Mapped[str] = mapped_column(String(255), primary_key=True)
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime]


class Message(Base):
    """The ledger: one row per fetched mail, written before any processing."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("account", "folder", "uidvalidity", "uid", name="uq_messages_location"),
        Index("ix_messages_message_id_sha", "message_id", "sha256"),
        # the ingest loop asks "any mailbox action left to retry here?" on every poll
        Index("ix_messages_mailbox_todo", "account", "folder", "mailbox_done"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account: Mapped[str] = mapped_column(String(320))
    folder: Mapped[str] = mapped_column(String(255))
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    uid: Mapped[int] = mapped_column(BigInteger)
    message_id: Mapped[str | None] = mapped_column(String(998))
    sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    raw_path: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(16), index=True)
    """pending, processed, ignored, quarantined, failed, duplicate."""
    reason: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str | None] = mapped_column(String(16))
    """human, auto_reply, bounce (from classification)."""
    from_masked: Mapped[str | None] = mapped_column(String(320))
    claim_id: Mapped[int | None] = mapped_column(ForeignKey("claims.id"))
    rma_id: Mapped[int | None] = mapped_column(ForeignKey("rmas.id"))
    match_signal: Mapped[str | None] = mapped_column(String(40))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    mailbox_done: Mapped[bool] = mapped_column(Boolean, default=False)
    """True once the mailbox action (move/flag) after processing succeeded."""
    fetched_at: Mapped[datetime]
    processed_at: Mapped[datetime | None]


class Document(Base):
    __tablename__ = "documents"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    claim_id: Mapped[int | None] = mapped_column(ForeignKey("claims.id"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str | None] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    phash: Mapped[int | None] = mapped_column(BigInteger)
    receipt_key: Mapped[str | None] = mapped_column(String(80), index=True)
    """Receipt number and date as read (`fraud.ReceiptIdentity.key`): finds a receipt's
    earlier claims however old; the seller is compared on the snapshots."""
    path: Mapped[str | None] = mapped_column(String(500))
    accepted: Mapped[bool] = mapped_column(Boolean, default=False)
    refusal_code: Mapped[str | None] = mapped_column(String(40))
    refusal: Mapped[str | None] = mapped_column(String(300))
    document_kind: Mapped[str | None] = mapped_column(String(20))
    created_at: Mapped[datetime]


class Extraction(Base):
    __tablename__ = "extractions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id"), index=True)
    rules_version: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16))
    fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    seconds: Mapped[float] = mapped_column(default=0.0)
    created_at: Mapped[datetime]


class Event(Base):
    """The audit trail: every transition, with its reasons and the rules that decided it."""

    __tablename__ = "events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    claim_id: Mapped[int | None] = mapped_column(ForeignKey("claims.id"), index=True)
    rma_id: Mapped[int | None] = mapped_column(ForeignKey("rmas.id"), index=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"), index=True)
    kind: Mapped[str] = mapped_column(String(40), index=True)
    from_state: Mapped[str | None] = mapped_column(String(32))
    to_state: Mapped[str | None] = mapped_column(String(32))
    reasons: Mapped[list[Any]] = mapped_column(default=list)
    evidence: Mapped[dict[str, Any]] = mapped_column(default=dict)
    rules_version: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]


class RulesVersion(Base):
    """The rules behind a version, stored the first time an event used it, so the
    version on any event can be shown (`mailbot rules show VERSION`) long after the
    files changed."""

    __tablename__ = "rules_versions"
    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    files: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """Every rules file: its path relative to the rules directory -> its text."""
    first_used_at: Mapped[datetime]


class Outbox(Base):
    """A reply queued in the same transaction as the event that caused it."""

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    """Our Message-ID, fixed when queued so a resend after a crash is recognisable."""
    event_id: Mapped[int | None] = mapped_column(ForeignKey("events.id"), unique=True)
    """At most one reply per event."""
    event: Mapped[Event | None] = relationship()
    """Lets a reply be queued with its event before either has an id: both are
    inserted by the transaction's next flush (one per group commit, not per mail)."""
    claim_id: Mapped[int | None] = mapped_column(ForeignKey("claims.id"), index=True)
    rma_id: Mapped[int | None] = mapped_column(ForeignKey("rmas.id"), index=True)
    template: Mapped[str] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(8), default="en")
    to_addr: Mapped[str] = mapped_column(String(320), index=True)
    subject: Mapped[str] = mapped_column(String(998))
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)
    headers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16), index=True)
    """queued, held, claimed, sending, sent, failed, unconfirmed (mailbot.outbound.delivery)."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    """When a queued or held row is due; the lease while it is claimed or sending."""
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(40))
    """The sender run holding the lease; its updates are conditional on it."""
    attempted_at: Mapped[datetime | None]
    """When the latest attempt was handed to the relay."""
    possible_duplicate: Mapped[bool] = mapped_column(Boolean, default=False)
    """Sent again after an attempt whose outcome was unknown: may have arrived twice."""


class WebUser(Base):
    """A person who may log in to the web desk (`mailbot users ...`)."""

    __tablename__ = "web_users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    """argon2id, in the PHC string format argon2-cffi writes."""
    role: Mapped[str] = mapped_column(String(16))
    """viewer (reads), agent (acts on claims and RMAs), admin (also outbox, reprocess)."""
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    session_version: Mapped[int] = mapped_column(Integer, default=0)
    """Part of every session cookie: a new password or disabling ends all sessions."""
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    last_login_at: Mapped[datetime | None]
