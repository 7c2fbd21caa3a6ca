"""Operator actions on claims and RMAs: the one layer the CLI (and later the web desk) calls.

Every action loads the snapshot, asks a pure core transition with `now`, and records
it through `records.record`: the new snapshot, one event whose evidence carries
`actor`, `role` and `why`, and at most one templated reply queued in the outbox in
the same transaction. An action the claim's state does not allow, or a value that
is wrong, is an `InputError` naming the claim and the reason; nothing is written.
Nothing here prints: callers render the returned `Done`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailbot.config import Settings
from mailbot.core import claim_machine as claim_sm
from mailbot.core import rma_machine as rma_sm
from mailbot.core.claim_match import ClaimRef, MatchResult
from mailbot.core.claim_state import Claim
from mailbot.core.errors import InputError, TransitionError
from mailbot.core.mail import InboundEmail
from mailbot.core.rma_machine import Rma
from mailbot.core.transition import Transition
from mailbot.ruleset.loader import RuleSet
from mailbot.services import inbound
from mailbot.services.claims import parse_date
from mailbot.services.documents import DocumentStore, Reader, make_reader
from mailbot.services.records import (
    ReplyTarget,
    add_event,
    claim_by_code,
    claim_snapshot,
    record,
    rma_by_number,
    rma_snapshot,
)
from mailbot.store import models as m
from mailbot.store.limits import problem
from mailbot.store.rawstore import RawStore
from parsers.mail.address import registration_address
from parsers.mail.parse import parse_email
from parsers.returns.notice import parse_shipment_notification

WHY_MAX = 2000
"""Longest free-text reason kept in an event (a note, not a document)."""

ROLES = ("operator", "admin", "system")


@dataclass(frozen=True)
class Actor:
    """Who acts: a person's login (or a service account) and the role they act in."""

    who: str
    role: str = "operator"


@dataclass(frozen=True)
class Context:
    """The world an action runs in, fixed for the action."""

    rules: RuleSet
    settings: Settings
    now: datetime
    actor: Actor
    why: str


@dataclass(frozen=True)
class Done:
    """What an action did: the event written and the reply queued (template or None)."""

    kind: str
    from_state: str | None
    to_state: str
    reply: str | None
    claim: m.Claim | None = None
    rma: m.Rma | None = None


def context(
    *, rules: RuleSet, settings: Settings, now: datetime, actor: Actor, why: str | None
) -> Context:
    """Check the actor and the reason once, before any action reads the database."""
    who = actor.who.strip()
    if not who:
        raise InputError("actor: empty")
    if actor.role not in ROLES:
        raise InputError(f"role: one of {', '.join(ROLES)}, not {actor.role!r}")
    text = (why or "").strip()
    if len(text) > WHY_MAX:
        raise InputError(f"why: at most {WHY_MAX} characters")
    return Context(rules, settings, now, Actor(who, actor.role), text)


def _who(ctx: Context) -> dict[str, str]:
    return {"actor": ctx.actor.who, "role": ctx.actor.role, "why": ctx.why}


def _claim_row(session: Session, code: str) -> m.Claim:
    row = claim_by_code(session, code.strip())
    if row is None:
        raise InputError(f"no claim with code {code}")
    return row


def _rma_row(session: Session, number: str) -> m.Rma:
    row = rma_by_number(session, number.strip())
    if row is None:
        raise InputError(f"no RMA {number}")
    return row


def _record(
    session: Session,
    ctx: Context,
    t: Transition[Any],
    *,
    claim_row: m.Claim | None = None,
    rma_row: m.Rma | None = None,
) -> Done:
    t = replace(t, evidence={**t.evidence, **_who(ctx)})
    _, outbox = record(
        session,
        t,
        settings=ctx.settings,
        rules_version=ctx.rules.version,
        claim_row=claim_row,
        rma_row=rma_row,
        campaign_id=claim_row.campaign_id if claim_row is not None else None,
    )
    return Done(
        kind=t.kind,
        from_state=t.from_state,
        to_state=t.to_state,
        reply=outbox.template if outbox is not None else None,
        claim=claim_row,
        rma=rma_row,
    )


def _step(
    session: Session,
    ctx: Context,
    what: str,
    step: Callable[[], Transition[Any]],
    *,
    claim_row: m.Claim | None = None,
    rma_row: m.Rma | None = None,
) -> Done:
    """Take one step and record it; a step the state machine refuses is the operator's
    InputError, naming `what` it was asked of."""
    try:
        t = step()
    except TransitionError as exc:
        raise InputError(f"{what}: {exc}") from None
    return _record(session, ctx, t, claim_row=claim_row, rma_row=rma_row)


def _on_claim(
    session: Session, ctx: Context, code: str, step: Callable[[Claim], Transition[Claim]]
) -> Done:
    row = _claim_row(session, code)
    return _step(
        session, ctx, f"claim {row.code}", lambda: step(claim_snapshot(row)), claim_row=row
    )


def _on_rma(
    session: Session, ctx: Context, number: str, step: Callable[[Rma], Transition[Rma]]
) -> Done:
    row = _rma_row(session, number)
    return _step(session, ctx, f"RMA {row.number}", lambda: step(rma_snapshot(row)), rma_row=row)


def _price(text: str | None) -> Decimal | None:
    if text is None or not text.strip():
        return None
    try:
        value = Decimal(text.strip().replace(" ", "").replace(",", "."))
    except InvalidOperation:
        raise InputError(f"price: not a number: {text!r}") from None
    if not value.is_finite() or value <= 0:
        raise InputError(f"price: must be a positive amount, not {text!r}")
    return value


# --- claims -----------------------------------------------------------------------------


def approve(session: Session, ctx: Context, code: str, *, price: str | None = None) -> Done:
    """Approve with the payout (approval mail), also a claim the rules parked as
    incomplete or have not decided yet. The price is the given one, else the one
    an operator corrected, else the registered one. When the payout still cannot be
    computed the approval is refused with the reason; the claim does not move."""
    given = _price(price)

    def step(snap: Claim) -> Transition[Claim]:
        campaign = ctx.rules.campaign(snap.campaign_id)
        corrected = _price(dict(snap.corrections).get("price"))
        price = given if given is not None else corrected
        t = claim_sm.approve_by_hand(snap, campaign, ctx.now, price)
        if t.kind != "claim.approved":
            raise TransitionError(
                f"the payout cannot be computed ({', '.join(t.reasons)}); give --price"
            )
        return t

    return _on_claim(session, ctx, code, step)


def reject(session: Session, ctx: Context, code: str, reason: str) -> Done:
    """Reject with one reason code the rejection mail explains."""
    if reason not in claim_sm.OPERATOR_REJECTION_REASONS:
        known = ", ".join(claim_sm.OPERATOR_REJECTION_REASONS)
        raise InputError(f"reason: one of {known}, not {reason!r}")
    return _on_claim(session, ctx, code, lambda snap: claim_sm.reject(snap, [reason], ctx.now))


def decide(
    session: Session,
    ctx: Context,
    code: str,
    decision: Literal["approve", "reject"],
    *,
    reason: str | None = None,
    price: str | None = None,
) -> Done:
    if decision == "approve":
        if reason:
            raise InputError("reason: only for reject")
        return approve(session, ctx, code, price=price)
    if price:
        raise InputError("price: only for approve")
    if not reason:
        raise InputError("reject needs a reason code")
    return reject(session, ctx, code, reason)


def ask(
    session: Session,
    ctx: Context,
    code: str,
    *,
    documents: Sequence[str] = (),
    fields: Sequence[str] = (),
) -> Done:
    """Ask for named items (missing-information mail with the campaign's deadline)."""

    def step(snap: Claim) -> Transition[Claim]:
        campaign = ctx.rules.campaign(snap.campaign_id)
        return claim_sm.ask(snap, campaign, documents, fields, ctx.now)

    return _on_claim(session, ctx, code, step)


def reopen(session: Session, ctx: Context, code: str) -> Done:
    return _on_claim(session, ctx, code, lambda snap: claim_sm.reopen(snap, ctx.now))


def change_email(session: Session, ctx: Context, code: str, email: str) -> Done:
    """The claimant's new address. The claim's bounce flag is cleared: it was about
    the old address (a bounce of the new one flags it again)."""
    address = registration_address(email)
    if why := problem(m.Claim.email, address, "email"):
        raise InputError(why)
    done = _on_claim(session, ctx, code, lambda snap: claim_sm.change_email(snap, address, ctx.now))
    assert done.claim is not None
    done.claim.address_undeliverable = False
    return done


def correct_field(session: Session, ctx: Context, code: str, field_name: str, value: str) -> Done:
    """Keep an operator's value for a receipt field beside the value read."""
    if field_name == "price":
        value = str(_price(value) or value)
    elif field_name == "purchase_date":
        day = parse_date(value, "purchase_date")
        value = day.isoformat() if day else value
    step = lambda snap: claim_sm.correct_field(snap, field_name, value, ctx.now)  # noqa: E731
    return _on_claim(session, ctx, code, step)


def pay(session: Session, ctx: Context, code: str, *, reference: str | None = None) -> Done:
    ref = (reference or "").strip() or None
    if ref is not None and len(ref) > 200:
        raise InputError("reference: at most 200 characters")
    return _on_claim(session, ctx, code, lambda snap: claim_sm.mark_paid(snap, ctx.now, ref))


# --- RMAs -------------------------------------------------------------------------------


def rma_receive(session: Session, ctx: Context, number: str) -> Done:
    return _on_rma(session, ctx, number, lambda snap: rma_sm.mark_received(snap, ctx.now))


def rma_close(session: Session, ctx: Context, number: str, outcome: str) -> Done:
    if outcome not in ("replaced", "refunded"):
        raise InputError(f"outcome: replaced or refunded, not {outcome!r}")
    return _on_rma(
        session,
        ctx,
        number,
        lambda snap: rma_sm.close(snap, outcome, ctx.now),  # type: ignore[arg-type]
    )


# --- attach a ledger message ------------------------------------------------------------


def attach(
    session: Session,
    ctx: Context,
    message_id: int,
    *,
    claim_code: str | None = None,
    rma_number: str | None = None,
    reader: Reader | None = None,
) -> Done:
    """Put a mail from the ledger (one parked for review, held, or sent without a code)
    on a claim or an RMA, as if it had matched: its documents are stored, read and
    decided on by the same code the intake runs (`inbound.handle_claim_mail`), with
    the reply that decision asks for. A shipment notice attached to an RMA is applied
    as one. The operator's event comes first, naming the message."""
    if (claim_code is None) == (rma_number is None):
        raise InputError("attach to one claim or one RMA")
    msg = session.get(m.Message, message_id)
    if msg is None:
        raise InputError(f"ledger row {message_id} does not exist")
    if msg.status in ("pending", "failed"):
        raise InputError(
            f"ledger row {message_id} is {msg.status}: the intake (or `mailbot reprocess`) "
            "processes it"
        )
    if not msg.raw_path:
        raise InputError(f"ledger row {message_id} has no stored mail")
    try:
        raw = RawStore(ctx.settings.data_dir / "raw").get(msg.raw_path, msg.sha256)
    except (OSError, ValueError) as exc:
        raise InputError(f"ledger row {message_id}: stored mail unreadable ({exc})") from None
    email = parse_email(raw)
    if claim_code is not None:
        return _attach_to_claim(session, ctx, msg, email, claim_code, reader)
    assert rma_number is not None
    return _attach_to_rma(session, ctx, msg, email, rma_number)


def _attach_to_claim(
    session: Session,
    ctx: Context,
    msg: m.Message,
    email: InboundEmail,
    code: str,
    reader: Reader | None,
) -> Done:
    row = _claim_row(session, code)
    snap = claim_snapshot(row)
    if snap.state in claim_sm.TERMINAL:
        raise InputError(f"claim {row.code}: cannot attach to a claim in {snap.state} (reopen it)")
    already = session.scalar(
        select(m.Document.id)
        .where(m.Document.message_id == msg.id, m.Document.claim_id == row.id)
        .limit(1)
    )
    if already is not None:
        raise InputError(f"ledger row {msg.id}: its documents are already on claim {row.code}")
    attached = add_event(
        session,
        kind="claim.message_attached",
        now=ctx.now,
        claim_id=row.id,
        message_row_id=msg.id,
        from_state=snap.state.value,
        to_state=snap.state.value,
        reasons=["operator_attached"],
        evidence={**_who(ctx), "previous_claim_id": msg.claim_id},
        rules_version=ctx.rules.version,
    )
    ocr = ctx.settings.ocr
    inb = inbound.Inbound(
        email=email,
        row=msg,
        settings=ctx.settings,
        rules=ctx.rules,
        now=ctx.now,
        reader=reader or make_reader(lambda: ctx.rules, ocr.languages, ocr.timeout_seconds),
        store=DocumentStore(ctx.settings.data_dir / "documents"),
    )
    match = MatchResult(
        status="matched",
        claim=ClaimRef(row.id, row.code, row.email, row.state),
        signal="operator",
        strength=1.0,
    )
    session.flush()  # its id bounds the events the intake's code writes below
    with session.no_autoflush:
        inbound.handle_claim_mail(session, inb, match)
    session.flush()
    # Those events (the decision, fraud notes on other claims) are the operator's doing
    # too: each names who and why, as every operator event does.
    for event in session.scalars(
        select(m.Event).where(m.Event.message_id == msg.id, m.Event.id > attached.id)
    ):
        event.evidence = {**(event.evidence or {}), **_who(ctx)}
    last = session.scalars(
        select(m.Event).where(m.Event.claim_id == row.id).order_by(m.Event.id.desc()).limit(1)
    ).one()
    reply = session.scalars(
        select(m.Outbox.template).where(m.Outbox.event_id == last.id).limit(1)
    ).first()
    return Done(
        kind=last.kind,
        from_state=snap.state.value,
        to_state=row.state,
        reply=reply,
        claim=row,
    )


def _attach_to_rma(
    session: Session, ctx: Context, msg: m.Message, email: InboundEmail, number: str
) -> Done:
    row = _rma_row(session, number)
    snap = rma_snapshot(row)
    if msg.rma_id == row.id:
        raise InputError(f"ledger row {msg.id} is already on RMA {row.number}")
    msg.rma_id = row.id
    local_now = ctx.now.astimezone(ctx.rules.returns.tz)
    notice = parse_shipment_notification(email, ctx.rules.matching, local_now)
    if notice is None or notice.tracking is None:
        # Nothing the RMA can apply (a question, a photo): kept on it for a person.
        state = snap.state.value
        add_event(
            session,
            kind="rma.message_attached",
            now=ctx.now,
            rma_id=row.id,
            message_row_id=msg.id,
            from_state=state,
            to_state=state,
            reasons=["operator_attached"],
            evidence=_who(ctx),
            rules_version=ctx.rules.version,
        )
        return Done("rma.message_attached", state, state, None, rma=row)
    t = rma_sm.notify_shipment(
        snap, notice.tracking.number, notice.tracking.carrier, notice.dropoff, ctx.now
    )
    t = replace(t, evidence={**t.evidence, **_who(ctx), "attached": True})
    _, outbox = record(
        session,
        t,
        settings=ctx.settings,
        rules_version=ctx.rules.version,
        rma_row=row,
        message_row_id=msg.id,
        reply_to=ReplyTarget(email.message_id, email.references),
    )
    return Done(t.kind, t.from_state, t.to_state, outbox.template if outbox else None, rma=row)
