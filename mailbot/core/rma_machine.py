"""The RMA state machine (returns policy): pure functions (snapshot, event, now) -> Transition.

    issued -> shipment_notified -> received -> closed (replaced | refunded)
    issued -> expired            (no shipment notice before the start of day 15)

A shipment notice after expiry is answered with the policy (`rma_policy`), never
accepted silently; a second notice with a new tracking number updates the RMA and
is acknowledged again; the same tracking number again changes nothing and gets no
second acknowledgement. A notice lacking what the policy requires (a tracking
number, the drop-off time: `ReturnsPolicy.notice_requires`) gets a request naming
what is missing and the last day (`rma_missing_info`) and the RMA stays where it is;
with `tracking_proves_handover` a tracking number alone is enough. An unknown RMA number is the
caller's to answer with `rma_policy` (there is no snapshot to move). Advance
replacements whose original is not back in time are flagged for billing once
(`bill_due`, `flag_billing`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from mailbot.core.campaign import ReturnsPolicy
from mailbot.core.transition import ReplyIntent, Transition, TransitionError
from mailbot.core.transition import make_transition as _t


class RmaState(StrEnum):
    ISSUED = "issued"
    SHIPMENT_NOTIFIED = "shipment_notified"
    RECEIVED = "received"
    CLOSED = "closed"
    EXPIRED = "expired"


Outcome = Literal["replaced", "refunded"]
AWAITING_ORIGINAL = frozenset({RmaState.ISSUED, RmaState.SHIPMENT_NOTIFIED, RmaState.EXPIRED})


@dataclass(frozen=True)
class TrackingNotice:
    tracking: str
    carrier: str | None
    dropoff: datetime | None
    at: datetime


@dataclass(frozen=True)
class Rma:
    """Snapshot of an RMA. The database stores every field (rmas columns + `facts`)."""

    number: str
    email: str
    product: str
    kind: Literal["warranty", "return"]
    state: RmaState
    issued_at: datetime
    expires_at: datetime
    """Start of the day the RMA expires (issue day + expires_on_day, policy time zone)."""
    updated_at: datetime
    language: str = "en"
    serial: str | None = None
    policy_id: str = "returns"
    advance_replacement: bool = False
    replacement_shipped_at: datetime | None = None
    bill_due_at: datetime | None = None
    """For advance replacements: when an original not yet received is billed."""
    tracking_number: str | None = None
    carrier: str | None = None
    dropoff_at: datetime | None = None
    notices: tuple[TrackingNotice, ...] = ()
    """Every accepted tracking notice, oldest first."""
    received_at: datetime | None = None
    closed_at: datetime | None = None
    outcome: Outcome | None = None
    reminded_at: datetime | None = None
    billing_flagged_at: datetime | None = None


def _ctx(rma: Rma, policy: ReturnsPolicy | None = None) -> dict[str, Any]:
    ctx: dict[str, Any] = {
        "rma_number": rma.number,
        "product": rma.product,
        "language": rma.language,
        "expires_at": rma.expires_at,
        # The last day the RMA is valid, as the customer counts days.
        "last_day": (rma.expires_at - timedelta(days=1)).date(),
    }
    if policy is not None:
        ctx["valid_days"] = policy.valid_days
    return ctx


def issue(
    *,
    number: str,
    email: str,
    product: str,
    policy: ReturnsPolicy,
    now: datetime,
    kind: Literal["warranty", "return"] = "warranty",
    serial: str | None = None,
    language: str | None = None,
    advance_replacement: bool = False,
) -> Transition[Rma]:
    """A new RMA with the RMA mail (number, instructions, the 14 days)."""
    if advance_replacement and not policy.advance_replacement:
        raise TransitionError("the returns policy does not offer advance replacement")
    expires_at = policy.expires_at(now)
    rma = Rma(
        number=number,
        email=email,
        product=product,
        kind=kind,
        state=RmaState.ISSUED,
        issued_at=now,
        expires_at=expires_at,
        updated_at=now,
        language=language or policy.language,
        serial=serial,
        policy_id=policy.id,
        advance_replacement=advance_replacement,
        bill_due_at=expires_at if advance_replacement and policy.bill_if_not_returned else None,
    )
    ctx = _ctx(rma, policy) | {"kind": kind, "advance_replacement": advance_replacement}
    return _t(
        None,
        rma,
        "rma.issued",
        now,
        ("issued",),
        {"policy": policy.source, "rules_version": policy.version},
        ReplyIntent("rma_issued", ctx),
    )


def notify_shipment(
    rma: Rma, tracking: str, carrier: str | None, dropoff: datetime | None, now: datetime
) -> Transition[Rma]:
    """The customer's `Shipment Notification: RMA# ...` mail, already parsed."""
    tracking = tracking.strip().upper().replace(" ", "")
    evidence: dict[str, Any] = {"tracking": tracking, "carrier": carrier, "dropoff": dropoff}
    notice = TrackingNotice(tracking, carrier, dropoff, now)
    if _too_late(rma, now):
        return _late_notice(rma, now, evidence, tracking)
    if rma.state in (RmaState.RECEIVED, RmaState.CLOSED):
        return _t(
            rma, rma, "rma.notice_ignored", now, ("already_received",), evidence, changed=False
        )
    if rma.state is RmaState.SHIPMENT_NOTIFIED and rma.tracking_number == tracking:
        # The same notice again (a resend, a reply to our ack): acknowledged once already.
        return _t(
            rma, rma, "rma.notice_duplicate", now, ("same_tracking",), evidence, changed=False
        )
    reason = "tracking_updated" if rma.state is RmaState.SHIPMENT_NOTIFIED else "shipment_notified"
    new = replace(
        rma,
        state=RmaState.SHIPMENT_NOTIFIED,
        tracking_number=tracking,
        carrier=carrier,
        dropoff_at=dropoff,
        notices=(*rma.notices, notice),
        updated_at=now,
    )
    evidence["previous_tracking"] = rma.tracking_number
    ctx = _ctx(rma) | {
        "tracking": tracking,
        "carrier": carrier,
        "dropoff": dropoff,
        "updated": reason == "tracking_updated",
    }
    return _t(
        rma,
        new,
        "rma.shipment_notified",
        now,
        (reason,),
        evidence,
        ReplyIntent("tracking_ack", ctx),
    )


def _too_late(rma: Rma, now: datetime) -> bool:
    return rma.state is RmaState.EXPIRED or (rma.state is RmaState.ISSUED and now >= rma.expires_at)


def _late_notice(
    rma: Rma, now: datetime, evidence: dict[str, Any], tracking: str | None
) -> Transition[Rma]:
    """Too late: the policy refuses returns after day 14. Expire now if the sweep has not."""
    new = replace(rma, state=RmaState.EXPIRED, updated_at=now)
    ctx = _ctx(rma) | {"reason": "rma_expired", "tracking": tracking}
    return _t(
        rma, new, "rma.late_notice", now, ("rma_expired",), evidence, ReplyIntent("rma_policy", ctx)
    )


RMA_NOTICE_FIELDS = ("tracking_number", "dropoff_time")
"""What a shipment notice must carry besides the RMA number (the returns policy)."""


def still_missing(
    policy: ReturnsPolicy, tracking: str | None, missing: tuple[str, ...]
) -> tuple[str, ...]:
    """Of the notice's `missing` items (RMA_NOTICE_FIELDS), those the policy requires.
    A tracking number proves the hand-over by itself when the policy says so."""
    required = set(policy.notice_requires)
    if tracking is None:
        # a notice without a tracking number is never an acknowledged shipment
        required.add("tracking_number")
    elif policy.tracking_proves_handover:
        required.discard("dropoff_time")
    return tuple(f for f in RMA_NOTICE_FIELDS if f in required and f in missing)


def receive_notice(
    rma: Rma,
    policy: ReturnsPolicy,
    tracking: str | None,
    carrier: str | None,
    dropoff: datetime | None,
    missing: tuple[str, ...],
    now: datetime,
) -> Transition[Rma]:
    """A parsed shipment notice for this RMA: acknowledged when it carries what the
    policy requires, else the customer is asked for the rest (`incomplete_notice`)."""
    if tracking is None and "tracking_number" not in missing:
        missing = (*missing, "tracking_number")
    lacking = still_missing(policy, tracking, missing)
    if lacking or tracking is None:
        return incomplete_notice(rma, lacking, now)
    return notify_shipment(rma, tracking, carrier, dropoff, now)


def incomplete_notice(rma: Rma, missing: tuple[str, ...], now: datetime) -> Transition[Rma]:
    """A shipment notice for this RMA lacking what the policy requires: the customer is
    told what is missing (`missing`: of RMA_NOTICE_FIELDS) and by when the original must
    be sent. The RMA does not move: no hand-over the policy accepts is known. A notice
    once the RMA has a tracking number (a thank-you, a question) or is back with us
    changes nothing and gets no reply; one after expiry gets the policy, like any."""
    asked = tuple(f for f in RMA_NOTICE_FIELDS if f in missing) or ("tracking_number",)
    evidence: dict[str, Any] = {"missing": list(asked)}
    if _too_late(rma, now):
        return _late_notice(rma, now, evidence, None)
    if rma.state is not RmaState.ISSUED:
        why = "tracking_known" if rma.state is RmaState.SHIPMENT_NOTIFIED else "already_received"
        return _t(rma, rma, "rma.notice_ignored", now, (why,), evidence, changed=False)
    ctx = _ctx(rma) | {"missing": list(asked)}
    return _t(
        rma,
        rma,
        "rma.notice_incomplete",
        now,
        tuple(f"{f}_missing" for f in asked),
        evidence,
        ReplyIntent("rma_missing_info", ctx),
        changed=False,
    )


def unknown_rma_reply(number: str | None, language: str = "en") -> ReplyIntent:
    """The polite policy answer to a shipment notice naming no RMA we know (the caller
    records the event; there is no snapshot to move)."""
    return ReplyIntent(
        "rma_policy",
        {"rma_number": number, "reason": "rma_unknown", "language": language, "tracking": None},
    )


def expire_if_overdue(rma: Rma, now: datetime) -> Transition[Rma] | None:
    """issued with no shipment notice by the start of day 15 -> expired (one mail).
    An advance replacement expiring at its billing time is flagged in the same event."""
    if rma.state is not RmaState.ISSUED or now < rma.expires_at:
        return None
    reasons = ["no_shipment_notice"]
    new = replace(rma, state=RmaState.EXPIRED, updated_at=now)
    if bill_due(new, now):
        new = replace(new, billing_flagged_at=now)
        reasons.append("bill_original")
    return _t(
        rma,
        new,
        "rma.expired",
        now,
        reasons,
        {"expires_at": rma.expires_at},
        ReplyIntent("rma_expired", _ctx(rma)),
    )


def reminder_due(rma: Rma, now: datetime, before: timedelta) -> bool:
    """Issued, no shipment notice yet, within `before` of expiry, not reminded yet."""
    return (
        rma.state is RmaState.ISSUED
        and rma.reminded_at is None
        and rma.expires_at - before <= now < rma.expires_at
    )


def remind(rma: Rma, now: datetime) -> Transition[Rma]:
    if rma.state is not RmaState.ISSUED:
        raise TransitionError(f"no reminder for an RMA in {rma.state}")
    new = replace(rma, reminded_at=now, updated_at=now)
    ctx = _ctx(rma) | {"kind": "rma", "deadline": (rma.expires_at - timedelta(days=1)).date()}
    return _t(rma, new, "rma.reminder", now, ("deadline_near",), {}, ReplyIntent("reminder", ctx))


def mark_replacement_shipped(rma: Rma, policy: ReturnsPolicy, now: datetime) -> Transition[Rma]:
    """An advance replacement left the warehouse: billing counts from the later of the RMA
    and this shipment (returns policy: "14 dager etter sendingsdatoen")."""
    if not rma.advance_replacement:
        raise TransitionError("not an advance replacement")
    due = policy.bill_due_at(rma.issued_at, now) if policy.bill_if_not_returned else None
    new = replace(rma, replacement_shipped_at=now, bill_due_at=due, updated_at=now)
    return _t(
        rma, new, "rma.replacement_shipped", now, ("replacement_shipped",), {"bill_due_at": due}
    )


def mark_received(rma: Rma, now: datetime) -> Transition[Rma]:
    """The original arrived. An expired RMA's parcel is refused by policy: a human decides."""
    if rma.state not in (RmaState.ISSUED, RmaState.SHIPMENT_NOTIFIED):
        raise TransitionError(f"cannot receive an RMA in {rma.state}")
    new = replace(rma, state=RmaState.RECEIVED, received_at=now, updated_at=now)
    return _t(rma, new, "rma.received", now, ("received",))


def close(rma: Rma, outcome: Outcome, now: datetime) -> Transition[Rma]:
    if rma.state is not RmaState.RECEIVED:
        raise TransitionError(f"cannot close an RMA in {rma.state}")
    if outcome not in ("replaced", "refunded"):
        raise TransitionError(f"unknown outcome {outcome!r}")
    new = replace(rma, state=RmaState.CLOSED, closed_at=now, outcome=outcome, updated_at=now)
    return _t(rma, new, "rma.closed", now, (outcome,))


def bill_due(rma: Rma, now: datetime) -> bool:
    """An advance replacement whose original is not back by its billing time, not yet flagged."""
    return (
        rma.advance_replacement
        and rma.bill_due_at is not None
        and rma.billing_flagged_at is None
        and rma.state in AWAITING_ORIGINAL
        and now >= rma.bill_due_at
    )


def flag_billing(rma: Rma, now: datetime) -> Transition[Rma]:
    """Record that billing is due (the billing itself is outside mailbot). No reply."""
    if not bill_due(rma, now):
        raise TransitionError("billing is not due")
    new = replace(rma, billing_flagged_at=now, updated_at=now)
    return _t(rma, new, "rma.bill_due", now, ("bill_original",), {"bill_due_at": rma.bill_due_at})
