"""The ledger as an operator sees it: recent rows and counts per status and reason.

`messages_stats` answers "is anything lost or stuck?" at a glance: counts per status
and per (status, reason), how many are still pending, failed or owe a mailbox
action, and the total that every status adds up to. Addresses are masked in all
output (the ledger stores only masked senders, and Message-IDs often contain
addresses too).
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from mailbot.log import scrub
from mailbot.store.db import transaction
from mailbot.store.models import Message

STATUSES = ("pending", "processed", "ignored", "quarantined", "failed", "duplicate")
# statuses an operator has to look at
ATTENTION = ("pending", "failed")


def _row(m: Message) -> dict[str, Any]:
    return {
        "id": m.id,
        "fetched_at": m.fetched_at.isoformat(timespec="seconds") if m.fetched_at else None,
        "folder": m.folder,
        "uid": m.uid,
        "status": m.status,
        "reason": scrub(m.reason) if m.reason else None,
        "from": scrub(m.from_masked) if m.from_masked else None,
        "message_id": scrub(m.message_id) if m.message_id else None,
        "size": m.size,
        "attempts": m.attempts,
        "mailbox_done": m.mailbox_done,
    }


def recent_messages(
    factory: sessionmaker[Session], *, status: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """Newest ledger rows first, optionally of one status (one of STATUSES)."""
    if status is not None and status not in STATUSES:
        raise ValueError(f"unknown status {status!r}; one of: {', '.join(STATUSES)}")
    with transaction(factory) as s:
        stmt = select(Message).order_by(Message.id.desc()).limit(max(0, limit))
        if status is not None:
            stmt = stmt.where(Message.status == status)
        return [_row(m) for m in s.scalars(stmt)]


def _reason_key(reason: str | None) -> str:
    """Group reasons by their stable part: "same mail as ledger #12" -> without the id,
    "too_large: 30000 > 4000 bytes" -> "too_large"."""
    if not reason:
        return "-"
    key = re.sub(r"\s*#\d+", "", scrub(reason))
    return key.split(":")[0] if key.startswith("too_large") else key


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
    by_status: dict[str, int] = dict.fromkeys(STATUSES, 0)
    reasons: dict[str, dict[str, int]] = defaultdict(dict)
    for status, reason, n in per_reason:
        by_status[status] = by_status.get(status, 0) + n
        key = _reason_key(reason)
        reasons[status][key] = reasons[status].get(key, 0) + n
    total = sum(by_status.values())
    return {
        "total": total,
        "by_status": by_status,
        "by_reason": {k: dict(sorted(v.items())) for k, v in sorted(reasons.items())},
        "needs_attention": {k: by_status.get(k, 0) for k in ATTENTION},
        "mailbox_actions_owed": int(owed or 0),
    }
