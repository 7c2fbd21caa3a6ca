"""What to do with one understood mail: claim documents, shipment notices, bounces.

Called by the pipeline inside the message's transaction. Each handler loads the
snapshot it concerns, asks the pure core for a decision with `now`, and records
it (event + at most one reply). Conflicts and unknowns are recorded for review,
never attached to a claim by guessing and never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import and_, false, or_, select
from sqlalchemy.orm import Session

from mailbot.config import Settings
from mailbot.core import claim_machine as claim_sm
from mailbot.core import fraud
from mailbot.core import rma_machine as rma_sm
from mailbot.core.claim_match import MatchResult, dmarc_failed, hold_reasons, is_sender
from mailbot.core.mail import Classification, InboundEmail
from mailbot.core.transition import ReplyIntent, Transition
from mailbot.ruleset.loader import RuleSet
from mailbot.services.context import reply_context
from mailbot.services.documents import DocumentStore, Reader, handle_attachments
from mailbot.services.outbox import mark_undeliverable, queue_reply
from mailbot.services.records import (
    ReplyTarget,
    add_event,
    claim_snapshot,
    record,
    rma_by_number,
    rma_snapshot,
)
from mailbot.store import models as m
from mailbot.store.limits import fit
from parsers.mail.intent import text_intent
from parsers.returns.notice import ShipmentNotice


@dataclass(frozen=True)
class Inbound:
    """Everything a handler needs about the message and the world, fixed for this mail."""

    email: InboundEmail
    row: m.Message
    settings: Settings
    rules: RuleSet
    now: datetime
    reader: Reader
    store: DocumentStore

    @property
    def reply_to(self) -> ReplyTarget:
        return ReplyTarget(self.email.message_id, self.email.references)


Result = tuple[str, str]
"""(ledger status, reason) for the message."""


def _record(session: Session, inb: Inbound, t: Transition[Any], **kw: Any) -> None:
    record(
        session,
        t,
        settings=inb.settings,
        rules_version=inb.rules.version,
        message_row_id=inb.row.id,
        reply_to=inb.reply_to,
        **kw,
    )


def _event(session: Session, inb: Inbound, kind: str, **fields: Any) -> m.Event:
    """An event about this mail: its ledger row, the time and the rules it is read with."""
    return add_event(
        session,
        kind=kind,
        now=inb.now,
        message_row_id=inb.row.id,
        rules_version=inb.rules.version,
        **fields,
    )


# --- claims -----------------------------------------------------------------------------


def _others_for_fraud(
    session: Session, claim_row: m.Claim, shas: list[str], keys: list[str]
) -> list[m.Claim]:
    """Claims that could share a receipt or a sender with this one: the same document
    bytes, the same receipt identity key (any age, any campaign), or the same address;
    and the claims already holding documents of the same campaign."""
    ids = other_ids_for_fraud(session, claim_row, shas, keys)
    if not ids:
        return []
    q = select(m.Claim).where(m.Claim.id.in_(ids)).order_by(m.Claim.id.desc())
    return list(session.scalars(q).all())


def other_ids_for_fraud(
    session: Session, claim_row: m.Claim, shas: list[str], keys: list[str]
) -> set[int]:
    """The ids of `_others_for_fraud` (a replay holds their snapshots already)."""
    # DISTINCT over ids only: PostgreSQL has no equality operator for the JSON
    # snapshot columns, so `SELECT DISTINCT claims.*` fails there.
    base = (
        select(m.Claim.id)
        .outerjoin(m.Document, m.Document.claim_id == m.Claim.id)
        .where(m.Claim.id != claim_row.id)
        .distinct()
    )
    # Exact-byte and same-identity twins and the sender's own claims, whatever their
    # age (indexed, few); then the most recent claims holding documents, bounded.
    twins = base.where(
        or_(
            m.Document.sha256.in_(shas) if shas else false(),
            m.Document.receipt_key.in_(keys) if keys else false(),
            m.Claim.email == claim_row.email,
        )
    )
    recent = (
        base.where(
            and_(m.Claim.campaign_id == claim_row.campaign_id, m.Document.accepted.is_(True))
        )
        .order_by(m.Claim.id.desc())
        .limit(500)
    )
    return set(session.scalars(twins).all()) | set(session.scalars(recent).all())


def handle_claim_mail(session: Session, inb: Inbound, match: MatchResult) -> Result:
    if match.status == "held" and match.claim is not None:
        return _claim_held(session, inb, match)
    if not match.matched or match.claim is None:
        return _claim_review(session, inb, match)
    claim_row = session.get(m.Claim, match.claim.claim_id)
    assert claim_row is not None
    inb.row.claim_id = claim_row.id
    inb.row.match_signal = match.signal
    snap = claim_snapshot(claim_row)
    campaign = inb.rules.campaign(snap.campaign_id)
    files = [a for a in inb.email.attachments if not a.ignored]
    if not files:
        # A question or a note without documents: kept on the claim for a person
        # (the ledger reason lists it among the mails a person reads); answered
        # only when the text clearly says "attached" or asks about the status.
        said = text_intent(inb.email.new_text, inb.rules.classify.text_intent)
        answer = None
        if said.kind == "attachment_missing":
            answer = claim_sm.answer_attachment_missing(snap, campaign, inb.now, phrase=said.phrase)
        elif said.kind == "status_question":
            answer = claim_sm.answer_status_question(snap, campaign, inb.now, phrase=said.phrase)
        if answer is not None:
            answer = replace(answer, evidence={**answer.evidence, "signal": match.signal})
            _record(session, inb, answer, claim_row=claim_row, campaign_id=campaign.id)
            return "processed", "claim_message_without_documents"
        _event(
            session,
            inb,
            "claim.message",
            claim_id=claim_row.id,
            from_state=snap.state.value,
            to_state=snap.state.value,
            reasons=["no_attachments", said.reason],
            evidence={"signal": match.signal, "phrase": said.phrase},
        )
        return "processed", "claim_message_without_documents"
    evidence = handle_attachments(
        session,
        inb.email.attachments,
        message_row=inb.row,
        claim_row=claim_row,
        campaign=campaign,
        serial=snap.serial,
        reader=inb.reader,
        store=inb.store,
        rules_version=inb.rules.version,
        now=inb.now,
    )
    t = claim_sm.receive_documents(snap, campaign, evidence, inb.now, auto_approve=True)
    keys = [
        i.key
        for i in (fraud.receipt_identity(e.fields, campaign.min_confidence) for e in evidence)
        if i is not None
    ]
    others_rows = _others_for_fraud(session, claim_row, [e.sha256 for e in evidence], keys)
    others = [claim_snapshot(r) for r in others_rows]
    signals = fraud.fraud_signals(t.snapshot, others, campaign)
    if signals:
        reasons = [s.reason for s in signals]
        t = claim_sm.receive_documents(
            snap, campaign, evidence, inb.now, review_reasons=reasons, auto_approve=True
        )
        t = fraud.with_evidence(t, signals)
        # The other claims named: an earlier holder of the receipt only gets a note
        # naming this claim (never reopened); the sender's undecided claims, review.
        by_code = {r.code: r for r in others_rows}
        for u in fraud.apply_signals(signals, others, inb.now):
            row = by_code.get(u.snapshot.code)
            if row is not None:
                record(
                    session,
                    u,
                    settings=inb.settings,
                    rules_version=inb.rules.version,
                    claim_row=row,
                    message_row_id=inb.row.id,
                )
    _record(session, inb, t, claim_row=claim_row, campaign_id=campaign.id)
    return "processed", f"claim:{t.kind}"


def _kept_files(inb: Inbound) -> list[dict[str, Any]]:
    """Store a held mail's files without applying them: the claim's documents feed
    its checks and other claims' fraud checks, so nothing a person has not accepted
    becomes one. The raw mail stays in the raw store as well."""
    kept: list[dict[str, Any]] = []
    for att in inb.email.attachments:
        if att.ignored:
            continue
        if att.accepted:
            inb.store.put(att.content, att.sha256)
        kept.append(
            {
                "sha256": att.sha256,
                "type": att.sniffed_type or att.declared_type,
                "size": att.size,
                "accepted": att.accepted,
            }
        )
    return kept


def _claim_held(session: Session, inb: Inbound, match: MatchResult) -> Result:
    """A mail about a claim that may not move it: from another address than the
    claim's, or failing DMARC. Recorded on the claim for a person, files kept, the
    claim unchanged, and nobody answered: the claimant did not write, and an answer
    to the sender would tell a stranger that the code or thread belongs to a live
    claim (or, with DMARC failed, reach whoever the forged From names)."""
    assert match.claim is not None
    row = session.get(m.Claim, match.claim.claim_id)
    assert row is not None
    inb.row.claim_id = row.id
    inb.row.match_signal = match.signal
    state = claim_snapshot(row).state.value
    sender_is_claimant = is_sender(inb.email, row.email)
    _event(
        session,
        inb,
        "claim.mail_held",
        claim_id=row.id,
        from_state=state,
        to_state=state,
        reasons=list(match.reasons),
        evidence={
            "signal": match.signal,
            "sender": "claimant" if sender_is_claimant else "other",
            "documents": _kept_files(inb),
        },
    )
    return "processed", f"review:{match.reason}"


def _claim_review(session: Session, inb: Inbound, match: MatchResult) -> Result:
    reason = match.reason or "no_match"
    evidence = {
        "codes": list(match.codes),
        "mistyped_codes": list(match.mistyped_codes),
        "candidates": list(match.candidates),
        "signals": [s.name for s in match.signals],
    }
    if match.claim is not None:
        row = session.get(m.Claim, match.claim.claim_id)
        if row is not None:
            snap = claim_snapshot(row)
            inb.row.claim_id = row.id
            if snap.state not in claim_sm.TERMINAL:
                _record(session, inb, claim_sm.to_review(snap, reason, inb.now), claim_row=row)
                return "processed", f"review:{reason}"
    _event(
        session,
        inb,
        "mail.review",
        reasons=list(match.reasons) or [reason],
        evidence=evidence,
    )
    return "processed", f"review:{reason}"


# --- RMAs -------------------------------------------------------------------------------


def is_rma_notice(session: Session, notice: ShipmentNotice) -> bool:
    """Whether to handle the mail as a shipment notice. One recognised by an RMA number
    in the body alone is one only for an RMA we issued: a number after "RMA" in a mail
    about something else (a claim) is not answered with the returns policy. Its sender
    is checked against the RMA's address in `handle_shipment` (another sender: held)."""
    if not notice.body_only:
        return True
    return notice.rma_number is not None and rma_by_number(session, notice.rma_number) is not None


def handle_shipment(session: Session, inb: Inbound, notice: ShipmentNotice) -> Result:
    row = rma_by_number(session, notice.rma_number) if notice.rma_number else None
    if row is None:
        return _unknown_rma(session, inb, notice)
    inb.row.rma_id = row.id
    snap = rma_snapshot(row)
    held = hold_reasons(inb.email, row.email, inb.settings.imap.trusted_authserv_ids)
    if held:
        # as for claims: another sender, or a forged From, never moves the RMA and
        # is never answered; a person reads the notice on the RMA
        _event(
            session,
            inb,
            "rma.notice_held",
            rma_id=row.id,
            from_state=snap.state.value,
            to_state=snap.state.value,
            reasons=list(held),
            evidence={"tracking": notice.tracking.number if notice.tracking else None},
        )
        return "processed", f"review:{held[0]}"
    # What the policy requires and the notice lacks is asked for, not guessed.
    t = rma_sm.receive_notice(
        snap,
        inb.rules.returns,
        notice.tracking.number if notice.tracking else None,
        notice.tracking.carrier if notice.tracking else None,
        notice.dropoff,
        notice.missing,
        inb.now,
    )
    _record(session, inb, t, rma_row=row)
    return "processed", f"rma:{t.kind}"


def _unknown_rma(session: Session, inb: Inbound, notice: ShipmentNotice) -> Result:
    """No RMA with that number (or none given): answer with the policy, politely,
    unless the From failed DMARC (the answer would reach whoever it impersonates)."""
    forged = dmarc_failed(inb.email, inb.settings.imap.trusted_authserv_ids)
    event = _event(
        session,
        inb,
        "rma.unknown_notice",
        reasons=["rma_unknown", "dmarc_fail"] if forged else ["rma_unknown"],
        evidence={
            "rma_number": notice.rma_number,
            "tracking": notice.tracking.number if notice.tracking else None,
        },
    )
    sender = inb.email.from_address
    if sender and fit(m.Outbox.to_addr, sender) != sender:
        # longer than any address mail reaches (and than the column): not answered,
        # since a cut address would be someone else's
        sender = None
    if sender and not forged:
        policy = inb.rules.returns
        intent = ReplyIntent(
            "rma_policy",
            {
                "rma_number": notice.rma_number,
                "reason": "rma_unknown",
                "valid_days": policy.valid_days,
            },
        )
        # No greeting name: no RMA holds one for this sender, and the mail's display
        # name is the sender's own text (any length, any content), not ours to repeat;
        # a name looked up by address would tell a forged sender who registered it.
        context = reply_context(intent, None, inb.settings, {"name": ""})
        queue_reply(
            session,
            template="rma_policy",
            language=policy.language,
            context=context,
            to_addr=sender,
            event=event,
            in_reply_to=inb.email.message_id,
            references=inb.email.references,
            now=inb.now,
            settings=inb.settings,
        )
    return "processed", "rma:unknown_notice"


# --- bounces ----------------------------------------------------------------------------


def handle_bounce(session: Session, inb: Inbound, cls: Classification) -> Result:
    """A bounce of one of our replies flags that address: no more mail to it."""
    claim_id = rma_id = None
    addresses = set(cls.failed_recipients)
    if cls.bounced_message_id:
        bare = cls.bounced_message_id.strip().strip("<>")
        sent = session.scalars(
            select(m.Outbox).where(m.Outbox.message_id.in_((bare, f"<{bare}>")))
        ).first()
        if sent is not None:
            claim_id, rma_id = sent.claim_id, sent.rma_id
            addresses.add(sent.to_addr)
    flagged = sum(mark_undeliverable(session, a) for a in sorted(addresses))
    inb.row.claim_id, inb.row.rma_id = claim_id, rma_id
    _event(
        session,
        inb,
        "mail.bounce",
        claim_id=claim_id,
        rma_id=rma_id,
        reasons=["bounce"],
        evidence={"failed_recipients": len(addresses), "flagged": flagged, "detail": cls.reason},
    )
    return "processed", "bounce:flagged" if flagged else "bounce:unknown_recipient"
