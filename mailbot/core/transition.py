"""What every state-machine function returns: the new snapshot, the event, and at most one reply.

The caller (pipeline, scheduler, CLI) stores `snapshot`, writes one event row from
`kind`/`from_state`/`to_state`/`reasons`/`evidence` (plus the rules version and the
message that caused it), and queues `reply` in the outbox in the same transaction.
A reply is a template name plus the facts it needs; wording lives in templates.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

S = TypeVar("S")

TEMPLATES = (
    "confirmation",
    "documents_received",
    "missing_info",
    "approved",
    "rejected",
    "attachment_refused",
    "rma_issued",
    "tracking_ack",
    "rma_expired",
    "rma_policy",
    "reminder",
)
"""Every template a transition may ask for (templates/<lang>/<name>.*)."""


class TransitionError(ValueError):
    """A function was called on a snapshot in a state it does not apply to: a bug in
    the caller (or a stale snapshot), never a customer decision."""


@dataclass(frozen=True)
class ReplyIntent:
    template: str
    context: Mapping[str, Any]
    """Plain values (str, int, Decimal, date, datetime, lists/tuples and dicts of them)."""

    def __post_init__(self) -> None:
        if self.template not in TEMPLATES:
            raise ValueError(f"unknown reply template {self.template!r}")


@dataclass(frozen=True)
class Transition(Generic[S]):
    snapshot: S
    kind: str
    """Event kind, e.g. 'claim.documents', 'rma.expired'."""
    from_state: str | None
    """None when the snapshot is created."""
    to_state: str
    at: datetime
    reasons: tuple[str, ...] = ()
    evidence: Mapping[str, Any] = field(default_factory=dict)
    reply: ReplyIntent | None = None
    via: tuple[str, ...] = ()
    """States passed through inside this one step (documents_received, validated)."""
    changed: bool = True
    """False when the event changed nothing (a duplicate notice); the caller may still
    record it, but must not expect a reply."""

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise ValueError("transition time must be timezone-aware")
