"""What every state-machine function returns: the new snapshot, the event, and at most one reply.

The caller (pipeline, scheduler, CLI) stores `snapshot`, writes one event row from
`kind`/`from_state`/`to_state`/`reasons`/`evidence` (plus the rules version and the
message that caused it), and queues `reply` in the outbox in the same transaction.
A reply is a template name plus the facts it needs; wording lives in templates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, Protocol, TypeVar

from mailbot.core.errors import TransitionError as TransitionError

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
    "rma_missing_info",
    "reminder",
    "attachment_missing",
    "claim_status",
)
"""Every template a transition may ask for (templates/<lang>/<name>.*)."""

_CLAIM = ("code", "name", "model", "language")
_RMA = ("rma_number", "product", "language", "expires_at", "last_day")
TEMPLATE_CONTEXT: dict[str, tuple[str, ...]] = {
    "confirmation": (*_CLAIM, "campaign", "required_documents", "required_fields",
                     "file_types", "max_bytes"),
    "documents_received": (*_CLAIM, "refused"),
    "missing_info": (*_CLAIM, "refused", "missing_documents", "missing_fields", "deadline",
                     "required_fields", "file_types", "max_bytes"),
    "approved": (*_CLAIM, "amount", "currency", "payment_days"),
    "rejected": (*_CLAIM, "reasons", "refused"),
    "attachment_refused": (*_CLAIM, "refused", "file_types", "max_bytes"),
    "rma_issued": (*_RMA, "valid_days", "kind", "advance_replacement"),
    "tracking_ack": (*_RMA, "tracking", "carrier", "dropoff", "updated"),
    "rma_expired": _RMA,
    "rma_policy": ("rma_number", "reason"),
    "rma_missing_info": (*_RMA, "missing"),
    "reminder": ("language", "kind", "deadline"),
    "attachment_missing": (*_CLAIM, "missing_documents", "missing_fields", "deadline",
                           "file_types", "max_bytes"),
    "claim_status": (*_CLAIM, "state", "missing_documents", "missing_fields", "deadline",
                     "payment_days", "pay_by", "paid_on", "amount", "currency"),
}  # fmt: skip
"""Keys every reply's context has, per template (the contract with the templates).
`refused` is a list of {filename, reason}; `reasons` are codes from
`claim_rules.REJECTION_REASONS` or `deadline_passed`; `deadline`/`last_day` are dates,
`expires_at`/`dropoff` aware datetimes (dropoff may be None), `amount` a Decimal.
`reminder` has `kind` 'claim' (plus the claim keys, missing_documents, missing_fields)
or 'rma' (plus the RMA keys). `rma_policy` has `reason` 'rma_expired' or 'rma_unknown'.
`rma_missing_info` has `missing`: codes of `rma.RMA_NOTICE_FIELDS`. `claim_status` has
`state` (a `ClaimState` value); `deadline`, `payment_days`, `pay_by`, `paid_on`,
`amount` and `currency` may be None."""


@dataclass(frozen=True)
class ReplyIntent:
    template: str
    context: Mapping[str, Any]
    """Plain values (str, int, Decimal, date, datetime, lists/tuples and dicts of them)."""

    def __post_init__(self) -> None:
        if self.template not in TEMPLATES:
            raise ValueError(f"unknown reply template {self.template!r}")
        missing = [k for k in TEMPLATE_CONTEXT[self.template] if k not in self.context]
        if missing:
            raise ValueError(f"reply {self.template!r} lacks {', '.join(missing)}")


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


class _Stateful(Protocol):
    @property
    def state(self) -> StrEnum: ...


T = TypeVar("T", bound=_Stateful)


def make_transition(
    before: T | None,
    after: T,
    kind: str,
    now: datetime,
    reasons: Sequence[str] = (),
    evidence: dict[str, Any] | None = None,
    reply: ReplyIntent | None = None,
    via: Sequence[str] = (),
    changed: bool = True,
) -> Transition[T]:
    """The one way the state machines build a Transition from two snapshots."""
    return Transition(
        snapshot=after,
        kind=kind,
        from_state=None if before is None else before.state.value,
        to_state=after.state.value,
        at=now,
        reasons=tuple(reasons),
        evidence=evidence or {},
        reply=reply,
        via=tuple(via),
        changed=changed,
    )
