"""Replies through a transactional outbox: queued with the decision, sent later, once.

`queue_reply` runs inside the caller's transaction (the one that changes the
claim or RMA and records the event): it renders the template, builds the whole
MIME message with a Message-ID fixed now, and stores it as an `Outbox` row. If the
transaction rolls back, the reply never existed; if it commits, the reply will be
sent. The sender (`mailbot.outbound.delivery.deliver_pending`) works from these rows only.

Loop protection lives here too: no reply to our own address, to mailer-daemon,
postmaster, no-reply style addresses, or to an address a bounce marked
undeliverable. (Auto-replies and bounces are recognised earlier, by
`parsers.mail.classify`, and never reach a transition that replies.)
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from email.utils import format_datetime, parseaddr
from typing import Any

from sqlalchemy import bindparam, exists, func, or_, select, update
from sqlalchemy.orm import Session

from mailbot.config import Settings, SmtpSettings
from mailbot.log import mask_email
from mailbot.store.models import Claim, Event, Outbox, Rma
from mailbot.templating.mime import write_mail
from mailbot.templating.render import RenderedMail, Templates, templates_for

__all__ = [
    "bare_address",
    "build_message",
    "mark_undeliverable",
    "queue_reply",
    "suppression_reason",
    "thread_headers",
]

log = logging.getLogger(__name__)


def _rows(result: Any) -> int:
    """Rows an UPDATE touched (CursorResult.rowcount; typed loosely by SQLAlchemy)."""
    return int(getattr(result, "rowcount", 0) or 0)


# Local parts that are machines, not people: answering them starts mail loops or
# lands in nobody's inbox. Matched case-insensitively against the part before "@".
_MACHINE_LOCAL = re.compile(
    r"^(?:mailer-daemon|postmaster|listserv|majordomo|owner-.*|.*-request|bounces?(?:[+.=-].*)?)$"
    r"|(?:^|[._+-])(?:no-?reply|no_reply|do-?not-?reply|do_not_reply)(?:[._+-]|$)",
    re.IGNORECASE,
)
# A References header grows with every exchange; keep the first and the newest
# ids, as RFC 5322 section 3.6.4 suggests when trimming.
_MAX_REFERENCES = 10

AUTO_HEADERS = {
    # RFC 3834: this is an automatic answer; well-behaved responders stay quiet.
    "Auto-Submitted": "auto-replied",
    # Exchange/Outlook honour this instead: no out-of-office or read receipts back.
    "X-Auto-Response-Suppress": "All",
}


def bare_address(address: str) -> str:
    """`Kari <Kari@Example.NO>` -> `Kari@example.no` (the domain is case-insensitive)."""
    _, addr = parseaddr(address or "")
    addr = addr.strip()
    if "@" not in addr:
        return addr
    local, _, domain = addr.rpartition("@")
    return f"{local}@{domain.lower()}"


def _ours(settings: SmtpSettings) -> set[str]:
    return {bare_address(a).lower() for a in (settings.from_address, settings.reply_to) if a}


def suppression_reason(session: Session, address: str, settings: SmtpSettings) -> str | None:
    """Why `address` must not get an automatic reply, or None when it may."""
    addr = bare_address(address)
    if not addr or "@" not in addr or any(c in address for c in "\r\n"):
        return "invalid_address"
    low = addr.lower()
    if low in _ours(settings):
        return "own_address"
    if _MACHINE_LOCAL.search(low.rpartition("@")[0]):
        return "machine_address"
    # no_autoflush: these reads never need the caller's pending rows, so they must
    # not force the caller's half-done unit of work out to the database
    with session.no_autoflush:
        if session.scalar(_FLAGGED, {"address": low}):
            return "address_undeliverable"
    return None


# Built once (it runs for every reply): one round trip for both tables, over the
# lower(email) indexes of migration 0002.
_FLAGGED = select(
    or_(
        *(
            exists()
            .where(func.lower(table.email) == bindparam("address"))
            .where(table.address_undeliverable.is_(True))
            for table in (Claim, Rma)
        )
    )
)


_MSGID = re.compile(r"<[^<>\s]{1,250}>")


def _angle(mid: str) -> str | None:
    """`<id>` for a Message-ID, None for anything that is not one (whitespace, line
    breaks, absurd length): a customer's header must not become ours unchecked."""
    mid = mid.strip()
    mid = mid if mid.startswith("<") else f"<{mid}>"
    return mid if _MSGID.fullmatch(mid) else None


def new_message_id(from_address: str) -> str:
    """A Message-ID on our own domain; random, so it says nothing about the customer."""
    domain = bare_address(from_address).rpartition("@")[2] or "mailbot.invalid"
    return f"<{uuid.uuid4().hex}@{domain}>"


def thread_headers(in_reply_to: str | None, references: Iterable[str] = ()) -> dict[str, str]:
    """In-Reply-To and References that put our reply in the customer's thread."""
    parent = _angle(in_reply_to) if in_reply_to else None
    found = [_angle(r) for r in references if r and r.strip()]
    refs = [r for r in dict.fromkeys([*found, parent]) if r is not None]
    if len(refs) > _MAX_REFERENCES:
        refs = [refs[0], *refs[-(_MAX_REFERENCES - 1) :]]
    out: dict[str, str] = {}
    if parent:
        out["In-Reply-To"] = parent
    if refs:
        out["References"] = " ".join(refs)
    return out


def build_message(
    *,
    mail: RenderedMail,
    to_addr: str,
    message_id: str,
    settings: SmtpSettings,
    now: datetime,
    extra_headers: Mapping[str, str] | None = None,
) -> tuple[bytes, dict[str, str]]:
    """The complete mail as bytes (CRLF, UTF-8 quoted-printable, multipart/alternative
    when there is HTML) and the headers we set, for the outbox row. Written by
    `mailbot.templating.mime`, not the email package's generator (several times slower, and
    this runs for every reply). Raises ValueError for a line break in a header.
    """
    headers: dict[str, str] = {
        "From": settings.from_address,
        "To": to_addr,
        "Subject": mail.subject,
        "Date": format_datetime(now),
        "Message-ID": message_id,
        **dict(extra_headers or {}),
        **AUTO_HEADERS,
        "Content-Language": mail.language,
    }
    if settings.reply_to:
        headers["Reply-To"] = settings.reply_to
    return write_mail(headers, mail.text, mail.html), headers


def _record_suppression(
    session: Session, event: Event | None, event_id: int | None, template: str, reason: str
) -> None:
    if event is None and event_id is not None:
        event = session.get(Event, event_id)
    if event is None:
        return
    # a new dict: JSON columns do not notice in-place changes
    event.evidence = {
        **(event.evidence or {}),
        "reply_suppressed": {"template": template, "reason": reason},
    }


def _queued_for(session: Session, event: Event | None, event_id: int | None) -> Outbox | None:
    """The reply already queued for this event, if any: one still pending in this
    transaction (not flushed yet), or one in the database."""
    for obj in session.new:
        if isinstance(obj, Outbox) and (
            (event is not None and obj.event is event)
            or (event_id is not None and obj.event_id == event_id)
        ):
            return obj
    if event_id is None:
        return None  # an event without an id was never flushed: nothing refers to it
    with session.no_autoflush:
        return session.scalars(select(Outbox).where(Outbox.event_id == event_id)).first()


def queue_reply(
    session: Session,
    *,
    template: str,
    language: str,
    context: Mapping[str, Any],
    to_addr: str,
    event_id: int | None = None,
    event: Event | None = None,
    claim_id: int | None = None,
    rma_id: int | None = None,
    in_reply_to: str | None = None,
    references: Iterable[str] = (),
    campaign_id: str | None = None,
    now: datetime,
    settings: Settings,
    templates: Templates | None = None,
) -> Outbox | None:
    """Queue one reply in the caller's transaction; None when it must not be sent.

    The reason for a None is logged and written to the event's evidence
    (`reply_suppressed`). A second call for the same event returns the row the
    first one queued (one event, at most one reply). The event is given as
    `event_id`, or as the `event` row itself, which need not be flushed yet: the
    reply's link to it is filled in when both are inserted. Raises TemplateError when the
    template cannot be rendered: better no mail than a mail with a hole in it.
    """
    smtp = settings.smtp
    if event is not None and event_id is None:
        event_id = event.id  # None while the event is not flushed yet
    if event is not None or event_id is not None:
        existing = _queued_for(session, event, event_id)
        if existing is not None:
            return existing
    reason = suppression_reason(session, to_addr, smtp)
    if reason is not None:
        log.info(
            "reply suppressed",
            extra={"template": template, "reason": reason, "to": mask_email(to_addr)},
        )
        _record_suppression(session, event, event_id, template, reason)
        return None
    # lower case throughout: one spelling per recipient, so the rate limit can use
    # the to_addr index (no provider we reply to treats local parts case-sensitively)
    addr = bare_address(to_addr).lower()
    renderer = templates or templates_for(settings.paths.templates_dir or None)
    mail = renderer.render(template, language, context, campaign_id)
    message_id = new_message_id(smtp.from_address)
    raw, headers = build_message(
        mail=mail,
        to_addr=addr,
        message_id=message_id,
        settings=smtp,
        now=now,
        extra_headers=thread_headers(in_reply_to, references),
    )
    # the relationship only when given: setting it to None would clear event_id
    link: dict[str, Any] = {"event": event} if event is not None else {"event_id": event_id}
    row = Outbox(
        **link,
        message_id=message_id,
        claim_id=claim_id,
        rma_id=rma_id,
        template=template,
        language=mail.language,
        to_addr=addr,
        subject=mail.subject,
        body_text=mail.text,
        body_html=mail.html,
        headers=headers,
        raw=raw,
        status="queued",
        attempts=0,
        next_attempt_at=None,
        created_at=now,
    )
    # Not flushed here: it goes out with the transaction's next flush or its commit
    # (with a group commit, the replies of several mails in one INSERT round).
    session.add(row)
    log.info(
        "reply queued",
        extra={"template": template, "message_id": message_id, "to": mask_email(addr)},
    )
    return row


def mark_undeliverable(session: Session, address: str, *, reason: str = "bounce") -> int:
    """A bounce said `address` does not work: flag its claims (and RMAs), and stop
    the replies still waiting for it. Returns how many claims and RMAs were flagged."""
    low = bare_address(address).lower()
    if not low:
        return 0
    # Replies are queued without a flush; the UPDATEs below only see flushed rows,
    # and one queued earlier in this transaction (a group commit) must stop too.
    session.flush()
    claims, rmas = (
        _rows(
            session.execute(
                update(table)
                .where(func.lower(table.email) == low)
                .values(address_undeliverable=True)
                .execution_options(synchronize_session="fetch")
            )
        )
        for table in (Claim, Rma)
    )
    stopped = _rows(
        session.execute(
            update(Outbox)
            .where(func.lower(Outbox.to_addr) == low)
            .where(Outbox.status.in_(("queued", "held")))
            .values(status="failed", last_error=f"address undeliverable ({reason}); not sent")
            .execution_options(synchronize_session="fetch")
        )
    )
    log.warning(
        "address marked undeliverable",
        extra={"to": mask_email(low), "claims": claims, "rmas": rmas, "replies_stopped": stopped},
    )
    return claims + rmas
