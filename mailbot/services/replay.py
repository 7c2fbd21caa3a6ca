"""Rule replay and re-evaluation: what other rules (or the current ones) decide for the
claims already holding documents, from what was read off those documents.

One path serves both: `redecide` asks the core for the rules' decision on everything
a claim holds (the stored extraction facts in its snapshot), with the fraud checks
against the other claims, exactly as a mail with documents is decided. `replay` runs
it for many claims with candidate rules and only compares: it reads, and its session
is rolled back, so it writes nothing. `reevaluate` applies it to one claim with the
current rules and records the transition (event with who and why, reply through the
outbox); its preview is the same work rolled back, as a sweep's dry run.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailbot.core import claim_machine as claim_sm
from mailbot.core import fraud
from mailbot.core.campaign import Campaign
from mailbot.core.claim_rules import REASONS, VALIDATED_REASON
from mailbot.core.claim_state import Claim, ClaimState
from mailbot.core.errors import InputError, RulesError, TransitionError
from mailbot.core.transition import Transition
from mailbot.ruleset.loader import RuleSet
from mailbot.services.documents import Reader
from mailbot.services.inbound import _others_for_fraud, other_ids_for_fraud
from mailbot.services.operator import Context
from mailbot.services.records import claim_by_code, claim_snapshot, record
from mailbot.store import models as m

OPEN = frozenset(
    {
        ClaimState.REGISTERED,
        ClaimState.AWAITING_DOCUMENTS,
        ClaimState.DOCUMENTS_RECEIVED,
        ClaimState.INCOMPLETE,
        ClaimState.REVIEW,
        ClaimState.VALIDATED,
    }
)
"""States in which `reevaluate` may apply a new decision; the others (approved, paid,
rejected, void) were decided for good, and replay only says what the rules would say."""


RULES_REASONS = frozenset(
    {
        *REASONS,
        *fraud.SIGNALS,
        VALIDATED_REASON,
        "approved",
        # payout: why an approval could not compute the amount (`core.payout`)
        "currency_unknown",
        "currency_not_supported",
        "price_unknown",
        "price_invalid",
        "no_fixed_amount",
    }
)
"""Reason codes the rules (checks, fraud signals, payout) give; decided again here."""


def _held_for_a_person(snap: Claim) -> list[str]:
    """Review reasons the rules did not give (a conflicting match, a reopened claim):
    deciding again keeps them, so only a person releases such a claim."""
    if snap.state is not ClaimState.REVIEW:
        return []
    return [r for r in snap.state_reasons if r.split(":", 1)[0] not in RULES_REASONS]


def _compared(snap: Claim) -> tuple[str, tuple[str, ...]]:
    # paid is approved and then paid by a person: the rules' part of it is "approved"
    if snap.state is ClaimState.PAID:
        return ClaimState.APPROVED.value, ("approved",)
    return snap.state.value, tuple(snap.state_reasons)


def redecide(
    session: Session,
    row: m.Claim,
    snap: Claim,
    campaign: Campaign,
    at: datetime,
    snapshots: dict[int, Claim] | None = None,
) -> Transition[Claim]:
    """The rules' decision on what the claim holds, from its present state, as the
    pipeline decides a mail's documents (fraud signals included; a validated claim
    whose payout can be computed is approved in the same step). A claim not open
    (`OPEN`) is decided as if its documents had just come, for comparison only."""
    base = snap
    if snap.state not in claim_sm.DECIDABLE:
        # receive_documents decides only undecided claims; the decision is asked
        # of the same claim as if undecided, and its starting state kept
        base = replace(snap, state=ClaimState.DOCUMENTS_RECEIVED)
    held = _held_for_a_person(snap)
    t = claim_sm.receive_documents(base, campaign, (), at, review_reasons=held, auto_approve=True)
    keys = [
        i.key
        for i in (fraud.receipt_identity(d.fields, campaign.min_confidence) for d in snap.documents)
        if i is not None
    ]
    shas = [d.sha256 for d in snap.documents]
    if snapshots is None:
        others = [claim_snapshot(r) for r in _others_for_fraud(session, row, shas, keys)]
    else:
        # a replay compares each claim with up to 500 others and changes none: each
        # snapshot is loaded and decoded once per run, not once per claim compared
        ids = sorted(other_ids_for_fraud(session, row, shas, keys), reverse=True)
        missing = [i for i in ids if i not in snapshots]
        if missing:
            for r in session.scalars(select(m.Claim).where(m.Claim.id.in_(missing))):
                snapshots[r.id] = claim_snapshot(r)
        others = [snapshots[i] for i in ids if i in snapshots]
    signals = fraud.fraud_signals(t.snapshot, others, campaign)
    if signals:
        t = claim_sm.receive_documents(
            base,
            campaign,
            (),
            at,
            review_reasons=[*held, *(s.reason for s in signals)],
            auto_approve=True,
        )
        t = fraud.with_evidence(t, signals)
    return replace(t, from_state=snap.state.value)


def decided_at(snap: Claim, now: datetime) -> datetime:
    """When the claim's documents were last decided on: its newest document's arrival."""
    arrived = [d.received_at for d in snap.documents if d.received_at is not None]
    return max(arrived) if arrived else now


@dataclass(frozen=True)
class Change:
    """One claim's decision now and under the rules replayed."""

    code: str
    campaign: str
    old_state: str
    old_reasons: tuple[str, ...]
    new_state: str | None
    new_reasons: tuple[str, ...]
    reply: str | None
    """The mail the new decision would send (template), None when none."""
    open: bool
    """Whether `claims reevaluate` could apply it (the claim is not decided for good)."""
    note: str | None = None
    """Why no decision could be made (the campaign is not in the rules replayed)."""

    @property
    def changed(self) -> bool:
        if self.new_state is None:
            return False
        if self.old_state == ClaimState.VOID.value:
            # void: the rules asked for more and the deadline passed; asking still is
            # no change (the reasons were replaced by deadline_passed)
            return self.new_state != ClaimState.INCOMPLETE.value
        return self.new_state != self.old_state or self.new_reasons != self.old_reasons

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "campaign": self.campaign,
            "old_state": self.old_state,
            "old_reasons": list(self.old_reasons),
            "new_state": self.new_state,
            "new_reasons": list(self.new_reasons),
            "reply": self.reply,
            "open": self.open,
            "changed": self.changed,
            "note": self.note,
        }


@dataclass
class ReplayReport:
    rules_version: str
    claims: int = 0
    changes: list[Change] = field(default_factory=list)
    """Only the claims whose decision would change (or could not be made)."""

    @property
    def by_change(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.changes:
            if c.changed:
                key = f"{c.old_state} -> {c.new_state}"
                out[key] = out.get(key, 0) + 1
        return dict(sorted(out.items()))

    def as_dict(self) -> dict[str, Any]:
        return {
            "rules_version": self.rules_version,
            "claims": self.claims,
            "changed": sum(c.changed for c in self.changes),
            "not_compared": sum(c.note is not None for c in self.changes),
            "by_change": self.by_change,
            "changes": [c.as_dict() for c in self.changes],
        }


@contextmanager
def _read_only(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work is always rolled back: a replay never writes."""
    session = factory()
    try:
        yield session
    finally:
        session.rollback()
        session.close()


def replay(
    factory: sessionmaker[Session],
    rules: RuleSet,
    now: datetime,
    *,
    since: datetime | None = None,
    campaign: str | None = None,
    reread: Reader | None = None,
) -> ReplayReport:
    """Decide every claim holding documents (received since `since`, of `campaign`)
    with `rules` and report the decisions that differ from the claim's present one.
    With `reread`, each stored document is read again (with the candidate receipt
    rules) instead of using the fields read when it came."""
    report = ReplayReport(rules.version)
    with _read_only(factory) as s:
        q = select(m.Claim.id).join(m.Document, m.Document.claim_id == m.Claim.id).distinct()
        if since is not None:
            q = q.where(m.Document.created_at >= since)
        if campaign is not None:
            q = q.where(m.Claim.campaign_id == campaign)
        ids = sorted(s.scalars(q).all())
        snapshots: dict[int, Claim] = {}
        for claim_id in ids:
            row = s.get(m.Claim, claim_id)
            assert row is not None
            snap = snapshots.get(row.id) or snapshots.setdefault(row.id, claim_snapshot(row))
            if not snap.documents:
                continue  # only refused files: nothing the rules decide on
            report.claims += 1
            change = _replay_one(s, row, snap, rules, now, reread, snapshots)
            if change.changed or change.note is not None:
                report.changes.append(change)
    return report


def _read_again(s: Session, row: m.Claim, snap: Claim, campaign: Campaign, read: Reader) -> Claim:
    """The snapshot with each document's fields read again from its stored bytes; a
    document whose bytes are gone or unreadable keeps the fields read when it came."""
    paths = {
        d.sha256: d.path
        for d in s.scalars(select(m.Document).where(m.Document.claim_id == row.id))
        if d.accepted and d.path
    }
    docs = []
    for d in snap.documents:
        path = paths.get(d.sha256)
        result = None
        if path is not None and Path(path).is_file():
            result = read(Path(path).read_bytes(), d.filename, campaign, snap.serial)
        if result is not None and result.fields is not None:
            d = replace(d, fields=result.fields, kind=result.fields.document_kind)
        docs.append(d)
    return replace(snap, documents=tuple(docs))


def _replay_one(
    s: Session,
    row: m.Claim,
    snap: Claim,
    rules: RuleSet,
    now: datetime,
    reread: Reader | None,
    snapshots: dict[int, Claim],
) -> Change:
    old_state, old_reasons = _compared(snap)
    try:
        camp = rules.campaign(snap.campaign_id)
    except RulesError:
        camp = None
    by_person = _decided_by_a_person(s, row)
    t = None
    if camp is not None and not by_person:
        held = _read_again(s, row, snap, camp, reread) if reread is not None else snap
        t = redecide(s, row, held, camp, decided_at(snap, now), snapshots)
    return Change(
        code=snap.code,
        campaign=snap.campaign_id,
        old_state=old_state,
        old_reasons=old_reasons,
        new_state=t.to_state if t is not None else None,
        new_reasons=tuple(t.snapshot.state_reasons) if t is not None else (),
        reply=t.reply.template if t is not None and t.reply is not None else None,
        open=snap.state in OPEN,
        note="decided by a person" if by_person else None if t is not None else "no such campaign",
    )


PERSON_DECISIONS = frozenset(
    {
        "claim.approved",
        "claim.rejected",
        "claim.review",
        "claim.information_requested",
        "claim.reopened",
    }
)
"""Event kinds an operator's action decides with (`services.operator`)."""


def _decided_by_a_person(s: Session, row: m.Claim) -> bool:
    """Whether the claim's latest decision is an operator's (approve, reject, ask,
    reopen) rather than the rules' (its evidence holds the rules' `decision`): a
    person's decision is not compared with the rules."""
    events = s.scalars(
        select(m.Event).where(m.Event.claim_id == row.id).order_by(m.Event.id.desc()).limit(50)
    )
    for e in events:
        evidence = e.evidence or {}
        if "decision" in evidence:
            return False
        if evidence.get("actor") and e.kind in PERSON_DECISIONS:
            return True
    return False


@dataclass(frozen=True)
class Reevaluated:
    code: str
    kind: str
    from_state: str
    to_state: str
    reasons: tuple[str, ...]
    reply: str | None
    dry_run: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "event": self.kind,
            "from": self.from_state,
            "to": self.to_state,
            "reasons": list(self.reasons),
            "reply": self.reply,
            "dry_run": self.dry_run,
        }


def reevaluate(
    factory: sessionmaker[Session], ctx: Context, code: str, *, dry_run: bool = False
) -> Reevaluated:
    """Apply the current rules to one open claim: the transition recorded with who and
    why and its reply queued, one transaction. With `dry_run` the same work is done
    (rows flushed, reply rendered) and rolled back."""
    session = factory()
    try:
        row = claim_by_code(session, code.strip())
        if row is None:
            raise InputError(f"no claim with code {code}")
        snap = claim_snapshot(row)
        if snap.state not in OPEN:
            raise InputError(f"claim {row.code}: cannot reevaluate a claim in {snap.state}")
        if not snap.documents:
            raise InputError(f"claim {row.code}: holds no documents to decide on")
        try:
            t = redecide(session, row, snap, ctx.rules.campaign(snap.campaign_id), ctx.now)
        except TransitionError as exc:
            raise InputError(f"claim {row.code}: {exc}") from None
        who = {"actor": ctx.actor.who, "role": ctx.actor.role, "why": ctx.why}
        t = replace(t, evidence={**t.evidence, **who, "reevaluated": True})
        _, outbox = record(
            session,
            t,
            settings=ctx.settings,
            rules_version=ctx.rules.version,
            claim_row=row,
            campaign_id=row.campaign_id,
        )
        session.flush()
        done = Reevaluated(
            code=row.code,
            kind=t.kind,
            from_state=snap.state.value,
            to_state=t.to_state,
            reasons=tuple(t.snapshot.state_reasons),
            reply=outbox.template if outbox is not None else None,
            dry_run=dry_run,
        )
        if dry_run:
            session.rollback()
        else:
            session.commit()
        return done
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
