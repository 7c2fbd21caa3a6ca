"""The ledger as an operator sees it: recent rows, one row in full, counts per status and reason.

Every row is shown with its cause in words (why it ended as it did, e.g. "held:
sender is not the claimant" for `review:sender_not_claimant`), its subject and the
claim or RMA it was linked to. `messages_stats` answers "is anything lost, stuck or
waiting for a person?" at a glance: counts per status and per (status, reason),
the mails parked for a person (review, held, questions, documents for a closed
claim, quarantined, failed) and the replies the outbox could not deliver. Addresses
and long digit runs are masked in all output as in the logs (the ledger stores
only masked senders; subjects and Message-IDs often contain addresses too); only
`raw_bytes` gives the stored mail as it came.
"""

from __future__ import annotations

import re
from collections import defaultdict
from email.header import decode_header, make_header
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from mailbot.core.errors import InputError, StoreError
from mailbot.log import mask_email, scrub
from mailbot.services.records import linked, newest_linked
from mailbot.store.db import transaction
from mailbot.store.models import Document, Event, Message, Outbox
from mailbot.store.rawstore import RawStore

STATUSES = ("pending", "processed", "ignored", "quarantined", "failed", "duplicate")

# Review reasons of a mail that is about a known claim (or RMA) but may not move it.
_HELD = {
    "sender_not_claimant": "sender is not the claimant",
    "code_other_address": "claim code sent from another address than the claim's",
    "dmarc_fail": "sender failed DMARC (the From may be forged)",
}
_REVIEW = {
    "two_codes": "two claim codes in one mail",
    "code_unknown": "the claim code is not known",
    "thread_conflict": "the thread and the code name different claims",
    "ambiguous_open_claims": "the sender has several open claims",
    "no_match": "no claim found for this mail",
}
# ledger reason (its stable part) -> (cause in words, what a person has to do, if anything)
_CAUSES: dict[str, tuple[str, str | None]] = {
    "claim_message_without_documents": ("question or note without documents", "question"),
    "claim:claim.review": ("claim sent to review", "review"),
    "claim:claim.documents": ("documents added to a claim in review", "review"),
    "claim:claim.documents_ignored": ("documents for a decided or closed claim", "closed_claim"),
    "claim:claim.review_ignored": ("review asked for a closed claim", "closed_claim"),
    "claim:claim.approved": ("claim approved", None),
    "claim:claim.validated": ("claim validated", None),
    "claim:claim.incomplete": ("claim incomplete: the customer was asked for more", None),
    "claim:claim.rejected": ("claim rejected", None),
    "claim:claim.attachments_refused": ("attachments refused: the customer was asked again", None),
    "rma:rma.shipment_notified": ("shipment notice recorded", None),
    "rma:rma.notice_incomplete": ("shipment notice incomplete: the customer was asked", None),
    "rma:rma.notice_duplicate": ("the same shipment notice again", None),
    "rma:rma.notice_ignored": ("shipment notice for an RMA already received", None),
    "rma:rma.late_notice": ("shipment notice after the RMA expired", None),
    "rma:unknown_notice": ("shipment notice for an unknown RMA", "review"),
    "bounce:flagged": ("bounce: the address is flagged undeliverable", None),
    "bounce:unknown_recipient": ("bounce for an address we do not know", None),
    "own_mail": ("our own mail", None),
    "too_large": ("too large", "quarantined"),
}
PERSON_KINDS = ("review", "held", "question", "closed_claim", "quarantined", "failed")
"""What `needs_person` can answer, in the order stats print them."""
OUTBOX_ATTENTION = ("failed", "unconfirmed", "held")
"""Outbox states an operator looks at: refused by SMTP (5xx) or given up, delivery
unknown, held back by the per-recipient rate limit."""


def _reason_key(reason: str | None) -> str:
    """Group reasons by their stable part: "same mail as ledger #12" -> without the id,
    "too_large: 30000 > 4000 bytes" -> "too_large"."""
    if not reason:
        return "-"
    key = re.sub(r"\s*#\d+", "", scrub(reason))
    return key.split(":")[0] if key.startswith("too_large") else key


def cause(status: str, reason: str | None) -> str:
    """The ledger reason in words, for a person."""
    if status == "pending":
        return "waiting to be processed"
    if not reason:
        return status
    key = _reason_key(reason)
    if key.startswith("review:"):
        code = key.split(":", 1)[1]
        if code in _HELD:
            return f"held: {_HELD[code]}"
        return f"review: {_REVIEW.get(code, code.replace('_', ' '))}"
    if key in _CAUSES:
        words = _CAUSES[key][0]
        return f"{words}: {scrub(reason).split(':', 1)[1].strip()}" if key == "too_large" else words
    if key.startswith("auto_reply:"):
        return f"auto-reply ({key.split(':', 1)[1]})"
    if key.startswith("exception:"):
        return f"failed: {key.split(':', 1)[1].strip()} (see `messages show`)"
    if status == "duplicate":
        return scrub(reason)
    for prefix in ("claim:claim.", "rma:rma."):
        if key.startswith(prefix):
            return key[len(prefix) :].replace("_", " ")
    return scrub(reason)


# the ledger reasons (exact, as stored) that leave work for a person
PERSON_REASONS: tuple[str, ...] = tuple(k for k, (_, who) in _CAUSES.items() if who is not None)


def needs_person(status: str, reason: str | None) -> str | None:
    """Which of PERSON_KINDS a ledger row waits for, or None when nobody has to look."""
    if status in ("quarantined", "failed"):
        return status
    key = _reason_key(reason)
    if key.startswith("review:"):
        return "held" if key.split(":", 1)[1] in _HELD else "review"
    return _CAUSES.get(key, ("", None))[1]


SHOWN_HEADERS = ("From", "To", "Cc", "Reply-To", "Subject", "Date", "Message-ID")
# Hand-written instead of email.parser for the listing: the stdlib parser costs about
# 0.25 ms a mail (20 000 rows took 6 s), a search in the header block a few µs.
_SUBJECT = re.compile(rb"^subject:[ \t]*(.*(?:\r?\n[ \t].*)*)", re.IGNORECASE | re.MULTILINE)


def _header_block(path: str | None) -> bytes | None:
    if not path:
        return None
    try:
        with Path(path).open("rb") as fh:
            raw = fh.read(64 * 1024)
    except OSError:
        return None
    ends = [i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0]
    return raw[: min(ends) + 2] if ends else raw


def _decoded(value: str) -> str:
    """An RFC 2047 header value as text, unfolded and masked as in the logs."""
    try:
        text = str(make_header(decode_header(value)))
    except (ValueError, LookupError, UnicodeError):  # a bad encoded word: shown as it is
        text = value
    return scrub(" ".join(text.split()))


def _subject_of(path: str | None) -> str | None:
    head = _header_block(path)
    found = _SUBJECT.search(head) if head else None
    return _decoded(found.group(1).decode("utf-8", "replace")) if found else None


def _headers_of(path: str | None) -> dict[str, str]:
    """The stored mail's SHOWN_HEADERS (only the header block is read), masked."""
    head = _header_block(path)
    if head is None:
        return {}
    msg = BytesHeaderParser().parsebytes(head)
    return {n: _decoded(str(msg[n])) for n in SHOWN_HEADERS if msg.get(n) is not None}


def _iso(value: Any) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None


def _row(m: Message, code: str | None, rma: str | None, subject: str | None) -> dict[str, Any]:
    return {
        "id": m.id,
        "fetched_at": _iso(m.fetched_at),
        "folder": m.folder,
        "uid": m.uid,
        "status": m.status,
        "reason": scrub(m.reason) if m.reason else None,
        "cause": cause(m.status, m.reason),
        "needs_person": needs_person(m.status, m.reason),
        "from": scrub(m.from_masked) if m.from_masked else None,
        "subject": subject,
        "claim": code,
        "rma": rma,
        "message_id": scrub(m.message_id) if m.message_id else None,
        "size": m.size,
        "attempts": m.attempts,
        "mailbox_done": m.mailbox_done,
    }


def recent_messages(
    factory: sessionmaker[Session], *, status: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """Newest ledger rows first, optionally of one status (one of STATUSES)."""
    with transaction(factory) as s:
        rows = newest_linked(s, Message, status=status, limit=limit, statuses=STATUSES)
        return [_row(m, code, rma, _subject_of(m.raw_path)) for m, code, rma in rows]


def message_detail(factory: sessionmaker[Session], ledger_id: int) -> dict[str, Any] | None:
    """One ledger row in full: headers, cause, what it is linked to, its status
    history (fetched, each event it caused, its final status) and the replies and
    documents it produced; None if there is no such row."""
    with transaction(factory) as s:
        found = s.execute(linked(Message).where(Message.id == ledger_id)).one_or_none()
        if found is None:
            return None
        m, code, rma = found
        headers = _headers_of(m.raw_path)
        out = _row(m, code, rma, headers.get("Subject"))
        events = list(
            s.scalars(
                select(Event).where(Event.message_id == m.id).order_by(Event.created_at, Event.id)
            )
        )
        history: list[dict[str, Any]] = [
            {"at": _iso(m.fetched_at), "what": "fetched", "detail": f"{m.folder} uid {m.uid}"}
        ]
        for e in events:
            moved = f"{e.from_state} -> {e.to_state}" if e.from_state != e.to_state else None
            history.append(
                {
                    "at": _iso(e.created_at),
                    "what": e.kind,
                    "detail": "; ".join(
                        x for x in (moved, ", ".join(map(str, e.reasons or []))) if x
                    ),
                    "event_id": e.id,
                }
            )
        history.append({"at": _iso(m.processed_at), "what": m.status, "detail": out["cause"]})
        replies = s.scalars(
            select(Outbox).where(Outbox.event_id.in_([e.id for e in events])).order_by(Outbox.id)
        )
        documents = s.scalars(select(Document).where(Document.message_id == m.id))
        out |= {
            "headers": headers,
            "kind": m.kind,
            "match_signal": m.match_signal,
            "processed_at": _iso(m.processed_at),
            "sha256": m.sha256,
            "raw_stored": bool(m.raw_path and Path(m.raw_path).exists()),
            "error": scrub(m.error) if m.error else None,
            "history": history,
            "replies": [
                {
                    "outbox_id": r.id,
                    "template": r.template,
                    "to": mask_email(r.to_addr),
                    "status": r.status,
                }
                for r in replies
            ],
            "documents": [
                {
                    "filename": scrub(d.filename),
                    "kind": d.document_kind,
                    "accepted": d.accepted,
                    "refusal": d.refusal_code,
                }
                for d in documents
            ],
        }
        return out


def raw_bytes(factory: sessionmaker[Session], ledger_id: int) -> bytes:
    """The stored mail exactly as fetched (hash verified); InputError when there is
    no such row or its bytes are not stored, StoreError when they do not match."""
    with transaction(factory) as s:
        m = s.get(Message, ledger_id)
        if m is None:
            raise InputError(f"ledger row {ledger_id} does not exist")
        path, sha = m.raw_path, m.sha256
    if not path or not Path(path).exists():
        raise InputError(f"ledger row {ledger_id} has no stored bytes")
    try:
        return RawStore(Path(path).parent).get(path, sha)
    except ValueError as exc:
        raise StoreError(str(exc)) from exc


def messages_stats(factory: sessionmaker[Session]) -> dict[str, Any]:
    with transaction(factory) as s:
        per_reason = s.execute(
            select(Message.status, Message.reason, func.count()).group_by(
                Message.status, Message.reason
            )
        ).all()
        owed = s.scalar(
            select(func.count()).where(
                Message.mailbox_done == False,  # noqa: E712
                Message.status != "pending",
            )
        )
        outbox = dict(
            s.execute(select(Outbox.status, func.count()).group_by(Outbox.status)).tuples().all()
        )
    by_status: dict[str, int] = dict.fromkeys(STATUSES, 0)
    reasons: dict[str, dict[str, int]] = defaultdict(dict)
    person: dict[str, int] = dict.fromkeys(PERSON_KINDS, 0)
    for status, reason, n in per_reason:
        by_status[status] = by_status.get(status, 0) + n
        key = _reason_key(reason)
        reasons[status][key] = reasons[status].get(key, 0) + n
        kind = needs_person(status, reason)
        if kind is not None:
            person[kind] += n
    outbox_attention = {k: int(outbox.get(k, 0)) for k in OUTBOX_ATTENTION}
    return {
        "total": sum(by_status.values()),
        "by_status": by_status,
        "by_reason": {k: dict(sorted(v.items())) for k, v in sorted(reasons.items())},
        "needs_attention": {
            "pending": by_status["pending"],
            **person,
            **{f"outbox_{k}": v for k, v in outbox_attention.items()},
        },
        "needs_person": sum(person.values()),
        "outbox": {k: int(v) for k, v in sorted(outbox.items())},
        "outbox_attention": outbox_attention,
        "mailbox_actions_owed": int(owed or 0),
    }
