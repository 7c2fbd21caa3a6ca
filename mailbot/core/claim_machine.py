"""The claim state machine: pure functions from (snapshot, event, now) to a `Transition`.

    registered -> (documents_received) -> validated -> approved -> paid
                                       -> incomplete -> (answer) -> ... | void (deadline)
                                       -> rejected | review
    registered/awaiting_documents: every attachment was refused -> awaiting_documents
    a person: approve, reject, ask (-> incomplete), reopen (rejected/void -> review),
              change_email and correct_field (the state does not move)

`documents_received` is passed through inside `receive_documents` (recorded in
`Transition.via`): documents arrive already read, so the decision is made at once.
Terminal states: paid, rejected, void. Every function returns at most one reply;
calling one on a state it does not apply to raises `TransitionError` (a caller bug).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from mailbot.core.campaign import Campaign
from mailbot.core.claim_rules import REJECTION_REASONS, REVIEW_REASONS, Decision, decide
from mailbot.core.claim_state import (
    DECIDABLE,
    TERMINAL,
    Claim,
    ClaimState,
    DocumentEvidence,
)
from mailbot.core.claim_state import base_context as _base_context
from mailbot.core.payout import compute_payout
from mailbot.core.receipt_fields import DocumentKind
from mailbot.core.transition import ReplyIntent, Transition, TransitionError
from mailbot.core.transition import make_transition as _t

__all__ = [
    "ASKABLE",
    "CORRECTABLE_FIELDS",
    "DECIDABLE",
    "OPERATOR_REJECTION_REASONS",
    "REJECTION_REASONS",
    "REVIEW_REASONS",
    "TERMINAL",
    "Claim",
    "ClaimState",
    "DocumentEvidence",
    "TransitionError",
    "answer_attachment_missing",
    "answer_status_question",
    "approve",
    "approve_by_hand",
    "ask",
    "change_email",
    "correct_field",
    "expire_if_overdue",
    "mark_paid",
    "receive_documents",
    "register",
    "reject",
    "remind",
    "reminder_due",
    "reopen",
    "to_review",
    "validate_claim",
]


def _file_rules(campaign: Campaign) -> dict[str, Any]:
    return {"file_types": list(campaign.file_types), "max_bytes": campaign.max_file_bytes}


def _without_deadline(claim: Claim) -> Claim:
    """No pending deadline: nothing voids the claim and no reminder is due."""
    return replace(claim, deadline_on=None, deadline_at=None, deadline_set_at=None)


def _recorded(
    claim: Claim,
    kind: str,
    now: datetime,
    reasons: Sequence[str],
    evidence: dict[str, Any],
    reply: ReplyIntent | None = None,
) -> Transition[Claim]:
    """A mail or request recorded as an event while the claim does not move."""
    return _t(claim, claim, kind, now, reasons, evidence, reply, changed=False)


def register(
    *,
    code: str,
    campaign: Campaign,
    email: str,
    name: str,
    model: str,
    now: datetime,
    language: str | None = None,
    serial: str | None = None,
    purchase_date: date | None = None,
    retailer: str | None = None,
    country: str | None = None,
    price: Decimal | None = None,
    currency: str | None = None,
    company: bool = False,
    first_campaign_mail_on: date | None = None,
) -> Transition[Claim]:
    """A new claim in `registered`, with the confirmation mail (code in its subject).
    Registered facts are the customer's statements; documents are checked later."""
    claim = Claim(
        code=code,
        campaign_id=campaign.id,
        email=email,
        name=name,
        model=model,
        state=ClaimState.REGISTERED,
        registered_at=now,
        updated_at=now,
        language=language or campaign.language,
        serial=serial,
        purchase_date=purchase_date,
        retailer=retailer,
        country=country.upper() if country else None,
        price=price,
        currency=currency.upper() if currency else None,
        company=company,
        first_campaign_mail_on=first_campaign_mail_on,
    )
    context = _base_context(claim) | {
        "campaign": campaign.name,
        "required_documents": list(campaign.required_documents),
        "required_fields": list(campaign.required_fields),
        **_file_rules(campaign),
    }
    return _t(
        None,
        claim,
        "claim.registered",
        now,
        ("registered",),
        {},
        ReplyIntent("confirmation", context),
    )


def receive_documents(
    claim: Claim,
    campaign: Campaign,
    documents: Sequence[DocumentEvidence],
    now: datetime,
    *,
    review_reasons: Sequence[str] = (),
    auto_approve: bool = False,
) -> Transition[Claim]:
    """The customer sent documents (possibly none, possibly all refused). Decides at once.

    `review_reasons`: fraud signals found by the caller (`fraud.py`) before deciding.
    `auto_approve`: a validated claim whose payout can be computed is approved in the
    same step, so the customer gets one mail (approved) instead of two."""
    if claim.state in TERMINAL or claim.state in (ClaimState.VALIDATED, ClaimState.APPROVED):
        # Decided already: record the mail, change nothing, say nothing automatic.
        seen = {"state": claim.state.value, "files": [d.filename for d in documents]}
        return _recorded(claim, "claim.documents_ignored", now, ("claim_closed",), seen)
    known = {d.sha256 for d in claim.documents}
    fresh: dict[str, DocumentEvidence] = {}  # the same file twice in one mail counts once
    for d in documents:
        if d.refused is None and d.sha256 not in known and d.kind != DocumentKind.OTHER:
            fresh.setdefault(d.sha256, replace(d, received_at=now))
    accepted = tuple(fresh.values())
    refused = [{"filename": d.filename, "reason": d.refused} for d in documents if d.refused]
    updated = replace(claim, documents=claim.documents + accepted, updated_at=now)
    evidence: dict[str, Any] = {
        "accepted": [{"sha256": d.sha256, "kind": d.kind.value} for d in accepted],
        "refused": refused,
    }
    if refused and not accepted:
        state = (
            ClaimState.AWAITING_DOCUMENTS if claim.state is ClaimState.REGISTERED else claim.state
        )
        ctx = _base_context(claim) | {"refused": refused, **_file_rules(campaign)}
        return _t(
            claim,
            replace(updated, state=state),
            "claim.attachments_refused",
            now,
            ("attachments_refused",),
            evidence,
            ReplyIntent("attachment_refused", ctx),
        )
    if claim.state is ClaimState.REVIEW:
        ctx = _base_context(claim) | {"refused": refused}
        return _t(
            claim,
            updated,
            "claim.documents",
            now,
            ("documents_while_in_review",),
            evidence,
            ReplyIntent("documents_received", ctx) if accepted else None,
            changed=bool(accepted),
        )
    decision = decide(updated, campaign, now, review_reasons)
    evidence |= {
        "decision": decision.evidence,
        "rules": campaign.source,
        "rules_version": campaign.version,
    }
    keep_deadline = claim.state is ClaimState.INCOMPLETE and not accepted
    return _apply(
        claim,
        updated,
        campaign,
        decision,
        now,
        evidence,
        refused,
        keep_deadline=keep_deadline,
        auto_approve=auto_approve,
    )


def validate_claim(claim: Claim, campaign: Campaign, now: datetime) -> Transition[Claim]:
    """Decide again on what the claim holds (after a rules change, or a human releasing
    a review). No new documents; a new incomplete decision gets a new deadline."""
    if claim.state in TERMINAL or claim.state is ClaimState.APPROVED:
        raise TransitionError(f"cannot validate a claim in {claim.state}")
    decision = decide(claim, campaign, now)
    return _apply(
        claim,
        replace(claim, updated_at=now),
        campaign,
        decision,
        now,
        {
            "decision": decision.evidence,
            "rules": campaign.source,
            "rules_version": campaign.version,
        },
        [],
    )


def _apply(
    before: Claim,
    claim: Claim,
    campaign: Campaign,
    d: Decision,
    now: datetime,
    evidence: dict[str, Any],
    refused: list[dict[str, Any]],
    *,
    keep_deadline: bool = False,
    auto_approve: bool = False,
) -> Transition[Claim]:
    via = ["documents_received"]
    ctx = _base_context(claim) | {"refused": refused}
    if d.outcome == "incomplete":
        if keep_deadline and claim.deadline_on is not None:
            deadline_on = claim.deadline_on
            set_at = claim.deadline_set_at
        else:
            deadline_on = campaign.local_date(now) + timedelta(days=campaign.reply_days)
            set_at = now
        new = replace(
            _decided(claim, d, ClaimState.INCOMPLETE),
            deadline_on=deadline_on,
            deadline_at=campaign.end_of_day(deadline_on),
            deadline_set_at=set_at,
        )
        ctx |= {
            "missing_documents": list(d.missing_documents),
            "missing_fields": list(d.missing_fields),
            "deadline": deadline_on,
            "required_fields": list(campaign.required_fields),
            **_file_rules(campaign),
        }
        reply = ReplyIntent("missing_info", ctx)
    elif d.outcome == "rejected":
        new = _decided(claim, d, ClaimState.REJECTED)
        reply = ReplyIntent("rejected", ctx | {"reasons": list(d.reasons)})
    elif d.outcome == "review":
        new = _decided(claim, d, ClaimState.REVIEW)
        # The customer learns we have the documents, not that a human suspects anything.
        reply = ReplyIntent("documents_received", ctx)
    else:
        new = replace(_decided(claim, d, ClaimState.VALIDATED), validated_at=now)
        if auto_approve:
            approved = approve(new, campaign, now)
            return replace(
                approved,
                from_state=before.state.value,
                via=(*via, "validated"),
                reasons=d.reasons + approved.reasons,
                evidence=evidence | dict(approved.evidence),
            )
        reply = ReplyIntent("documents_received", ctx)
    # the event is named after the state the decision leads to (claim.incomplete ...)
    return _t(before, new, f"claim.{new.state.value}", now, d.reasons, evidence, reply, via)


def _decided(claim: Claim, d: Decision, state: ClaimState) -> Claim:
    return replace(
        _without_deadline(claim),
        state=state,
        state_reasons=d.reasons,
        facts=tuple(sorted(d.facts.items())),
        missing_documents=d.missing_documents,
        missing_fields=d.missing_fields,
    )


def approve(
    claim: Claim, campaign: Campaign, now: datetime, price: Decimal | None = None
) -> Transition[Claim]:
    """validated (or review, by a human) -> approved with the payout; when the payout cannot
    be computed (no price, unknown currency) -> review instead, without a reply."""
    if claim.state not in (ClaimState.VALIDATED, ClaimState.REVIEW):
        raise TransitionError(f"cannot approve a claim in {claim.state}")
    facts = dict(claim.facts)
    model = facts.get("model") or claim.model
    price = price if price is not None else claim.price
    result = compute_payout(campaign, model, claim.currency, price)
    evidence: dict[str, Any] = {
        "price": price,
        "currency": result.currency,
        "payout_kind": campaign.payout.kind.value,
        "capped": result.capped,
        "uncapped": result.uncapped,
        "rules": campaign.source,
        "rules_version": campaign.version,
    }
    if result.amount is None:
        new = replace(
            claim,
            state=ClaimState.REVIEW,
            state_reasons=result.reasons,
            updated_at=now,
            price=price,
        )
        return _t(claim, new, "claim.review", now, result.reasons, evidence)
    new = replace(
        claim,
        state=ClaimState.APPROVED,
        approved_at=now,
        updated_at=now,
        price=price,
        payout_amount=result.amount,
        payout_currency=result.currency,
        state_reasons=("approved",),
    )
    ctx = _base_context(claim) | {
        "amount": result.amount,
        "currency": result.currency,
        "payment_days": campaign.payment_days,
    }
    return _t(
        claim, new, "claim.approved", now, ("approved",), evidence, ReplyIntent("approved", ctx)
    )


# Transitions not caused by documents: a human's decision, the payment, the clock.
# A human rejects or sends to review; the bank pays; the deadline sweep voids an
# incomplete claim and sends one reminder per deadline. `to_review` never replies:
# a suspect is not told.


def reject(claim: Claim, reasons: Sequence[str], now: datetime) -> Transition[Claim]:
    """A human rejects (from review or any open state), with the reasons the mail explains."""
    if claim.state in TERMINAL or claim.state is ClaimState.APPROVED:
        raise TransitionError(f"cannot reject a claim in {claim.state}")
    new = replace(
        _without_deadline(claim),
        state=ClaimState.REJECTED,
        state_reasons=tuple(reasons),
        updated_at=now,
    )
    ctx = _base_context(claim) | {"reasons": list(reasons), "refused": []}
    return _t(claim, new, "claim.rejected", now, reasons, {}, ReplyIntent("rejected", ctx))


def mark_paid(claim: Claim, now: datetime, reference: str | None = None) -> Transition[Claim]:
    if claim.state is not ClaimState.APPROVED:
        raise TransitionError(f"cannot pay a claim in {claim.state}")
    new = replace(
        claim,
        state=ClaimState.PAID,
        paid_at=now,
        updated_at=now,
        payment_reference=reference,
        state_reasons=("paid",),
    )
    return _t(claim, new, "claim.paid", now, ("paid",), {"reference": reference})


def expire_if_overdue(claim: Claim, now: datetime) -> Transition[Claim] | None:
    """incomplete past its deadline -> void, telling the customer once. None otherwise."""
    if claim.state is not ClaimState.INCOMPLETE or claim.deadline_at is None:
        return None
    if now < claim.deadline_at:
        return None
    new = replace(claim, state=ClaimState.VOID, updated_at=now, state_reasons=("deadline_passed",))
    ctx = _base_context(claim) | {
        "reasons": ["deadline_passed"],
        "deadline": claim.deadline_on,
        "refused": [],
    }
    return _t(
        claim,
        new,
        "claim.void",
        now,
        ("deadline_passed",),
        {"deadline_at": claim.deadline_at},
        ReplyIntent("rejected", ctx),
    )


def reminder_due(claim: Claim, now: datetime, before: timedelta) -> bool:
    """An incomplete claim within `before` of its deadline, not yet reminded for this deadline."""
    if claim.state is not ClaimState.INCOMPLETE or claim.deadline_at is None:
        return False
    if not (claim.deadline_at - before <= now < claim.deadline_at):
        return False
    set_at = claim.deadline_set_at
    return claim.reminded_at is None or (set_at is not None and claim.reminded_at < set_at)


def remind(claim: Claim, now: datetime) -> Transition[Claim]:
    if claim.state is not ClaimState.INCOMPLETE:
        raise TransitionError(f"no reminder for a claim in {claim.state}")
    new = replace(claim, reminded_at=now, updated_at=now)
    ctx = _base_context(claim) | {
        "kind": "claim",
        "deadline": claim.deadline_on,
        "missing_documents": list(claim.missing_documents),
        "missing_fields": list(claim.missing_fields),
    }
    return _t(
        claim,
        new,
        "claim.reminder",
        now,
        ("deadline_near",),
        {"deadline_at": claim.deadline_at},
        ReplyIntent("reminder", ctx),
    )


def to_review(claim: Claim, reason: str | Sequence[str], now: datetime) -> Transition[Claim]:
    """A human must look (fraud signal, conflicting match). Never replies: a suspect is not
    told. Terminal claims do not move (the event is still recorded, `changed=False`)."""
    given = (reason,) if isinstance(reason, str) else tuple(reason)
    if claim.state in TERMINAL:
        return _recorded(claim, "claim.review_ignored", now, given, {"state": claim.state.value})
    reasons = given
    if claim.state is ClaimState.REVIEW:
        reasons = tuple(dict.fromkeys((*claim.state_reasons, *given)))
    new = replace(
        _without_deadline(claim),
        state=ClaimState.REVIEW,
        state_reasons=reasons,
        updated_at=now,
        # An approval in review is withdrawn; approving again recomputes the payout.
        payout_amount=None,
        payout_currency=None,
        approved_at=None,
    )
    return _t(claim, new, "claim.review", now, given, {"previous": claim.state.value})


# Answers to a claim mail that carried no usable documents, decided by the text
# (parsers.mail.intent): "here it is" with nothing attached, or "where is my claim?".
# The state does not move; the event records the mail so a person still sees it.

NEEDS_DOCUMENTS = frozenset(
    {ClaimState.REGISTERED, ClaimState.AWAITING_DOCUMENTS, ClaimState.INCOMPLETE}
)
"""States in which the customer still owes documents (a forgotten attachment matters)."""


def _still_needed(claim: Claim, campaign: Campaign) -> tuple[list[str], list[str], date | None]:
    """(missing documents, missing fields, the day they are due or None when no day
    applies). An incomplete claim has its decision's lists and deadline; before a
    decision, every required document not yet held, due when the campaign's window
    for claims counted from the first campaign mail closes, if it has one."""
    if claim.state is ClaimState.INCOMPLETE:
        return list(claim.missing_documents), list(claim.missing_fields), claim.deadline_on
    if claim.state not in NEEDS_DOCUMENTS:
        return [], [], None
    held = {d.kind.value for d in claim.documents}
    docs = [d for d in campaign.required_documents if d not in held]
    weeks, first = campaign.claim_window.weeks_after_first_mail, claim.first_campaign_mail_on
    due = first + timedelta(weeks=weeks) if weeks is not None and first is not None else None
    return docs, [], due


def answer_attachment_missing(
    claim: Claim, campaign: Campaign, now: datetime, *, phrase: str | None = None
) -> Transition[Claim]:
    """The text says something is attached and nothing usable came: tell the customer
    nothing arrived and what is still needed by when. Only while documents are owed
    (`NEEDS_DOCUMENTS`) and something is still needed; otherwise the mail is only
    recorded (no reply), since "nothing arrived" would answer a question not asked."""
    docs, fields, due = _still_needed(claim, campaign)
    evidence: dict[str, Any] = {"intent": "attachment_missing", "phrase": phrase}
    if claim.state not in NEEDS_DOCUMENTS or not (docs or fields):
        reasons = ("attachment_mentioned_nothing_needed",)
        return _recorded(
            claim, "claim.message", now, reasons, evidence | {"state": claim.state.value}
        )
    ctx = _base_context(claim) | {
        "missing_documents": docs,
        "missing_fields": fields,
        "deadline": due,
        **_file_rules(campaign),
    }
    reply = ReplyIntent("attachment_missing", ctx)
    return _recorded(
        claim, "claim.question_answered", now, ("attachment_missing",), evidence, reply
    )


def answer_status_question(
    claim: Claim, campaign: Campaign, now: datetime, *, phrase: str | None = None
) -> Transition[Claim]:
    """A question about progress or payment: the state in words, what is missing and
    by when, and when payment comes under the campaign's terms (`payment_days` after
    the approval, the day the desk's queue shows too). A claim in review is described
    as being checked, like the documents_received mail does: nobody is told of a
    suspicion."""
    docs, fields, due = _still_needed(claim, campaign)
    approved = claim.approved_at or claim.validated_at
    pay_by = campaign.pay_by(approved) if approved is not None else None
    ctx = _base_context(claim) | {
        "state": claim.state.value,
        "missing_documents": docs,
        "missing_fields": fields,
        "deadline": due,
        "payment_days": campaign.payment_days,
        "pay_by": pay_by if claim.state is ClaimState.APPROVED else None,
        "paid_on": campaign.local_date(claim.paid_at) if claim.paid_at else None,
        "amount": claim.payout_amount,
        "currency": claim.payout_currency,
        **_file_rules(campaign),
    }
    evidence = {"intent": "status_question", "phrase": phrase, "state": claim.state.value}
    reply = ReplyIntent("claim_status", ctx)
    return _recorded(claim, "claim.question_answered", now, ("status_question",), evidence, reply)


# Operator actions besides approve, reject and mark_paid: ask for named items, reopen
# a closed claim, change the claimant's address, correct a field read from a document.

OPERATOR_REJECTION_REASONS = (*REJECTION_REASONS, "duplicate_claim", "not_verified")
"""Codes a person may reject with: the rules' own, and two only people decide on
(each has words in every language's `_words.j2`)."""

CORRECTABLE_FIELDS = (
    "retailer",
    "purchase_date",
    "product",
    "vat_number",
    "serial_number",
    "price",
    "receipt_number",
)
"""Receipt fields an operator may correct (the codes `missing_fields` uses)."""

ASKABLE = frozenset(
    {
        ClaimState.REGISTERED,
        ClaimState.AWAITING_DOCUMENTS,
        ClaimState.DOCUMENTS_RECEIVED,
        ClaimState.INCOMPLETE,
        ClaimState.VALIDATED,
        ClaimState.REVIEW,
    }
)


def ask(
    claim: Claim,
    campaign: Campaign,
    documents: Sequence[str],
    fields: Sequence[str],
    now: datetime,
) -> Transition[Claim]:
    """A person asks for named items -> incomplete, with the campaign's reply deadline
    counted from `now` and the missing-information mail. Items must be ones the
    campaign requires: the customer's answer is decided by the same rules."""
    if claim.state not in ASKABLE:
        raise TransitionError(f"cannot ask for information on a claim in {claim.state}")
    if not documents and not fields:
        raise TransitionError("name at least one missing document or field")
    wrong = [d for d in documents if d not in campaign.required_documents]
    wrong += [f for f in fields if f not in campaign.required_fields]
    if wrong:
        raise TransitionError(
            f"not required by campaign {campaign.id}: {', '.join(wrong)} (documents: "
            f"{', '.join(campaign.required_documents) or 'none'}; fields: "
            f"{', '.join(campaign.required_fields) or 'none'})"
        )
    docs, flds = tuple(dict.fromkeys(documents)), tuple(dict.fromkeys(fields))
    deadline_on = campaign.local_date(now) + timedelta(days=campaign.reply_days)
    new = replace(
        claim,
        state=ClaimState.INCOMPLETE,
        state_reasons=("information_requested",),
        missing_documents=docs,
        missing_fields=flds,
        updated_at=now,
        deadline_on=deadline_on,
        deadline_at=campaign.end_of_day(deadline_on),
        deadline_set_at=now,
        validated_at=None,
    )
    ctx = _base_context(claim) | {
        "refused": [],
        "missing_documents": list(docs),
        "missing_fields": list(flds),
        "deadline": deadline_on,
        "required_fields": list(campaign.required_fields),
        **_file_rules(campaign),
    }
    evidence = {"documents": list(docs), "fields": list(flds), "deadline_on": deadline_on}
    return _t(
        claim,
        new,
        "claim.information_requested",
        now,
        ("information_requested",),
        evidence,
        ReplyIntent("missing_info", ctx),
    )


def approve_by_hand(
    claim: Claim, campaign: Campaign, now: datetime, price: Decimal | None = None
) -> Transition[Claim]:
    """A person approves a claim the rules parked or have not decided yet (review,
    incomplete, validated, awaiting documents): as `approve`, from any of `ASKABLE`.
    A pending deadline is dropped: an approved claim is never voided."""
    if claim.state not in ASKABLE:
        raise TransitionError(f"cannot approve a claim in {claim.state}")
    held = replace(_without_deadline(claim), state=ClaimState.REVIEW)
    return replace(approve(held, campaign, now, price), from_state=claim.state.value)


def reopen(claim: Claim, now: datetime) -> Transition[Claim]:
    """A rejected or void claim back to review for a person to decide again (approve,
    reject, ask). No reply: the next decision tells the customer. A paid claim stays
    paid."""
    if claim.state not in (ClaimState.REJECTED, ClaimState.VOID):
        raise TransitionError(f"cannot reopen a claim in {claim.state}")
    new = replace(
        _without_deadline(claim),
        state=ClaimState.REVIEW,
        state_reasons=("reopened",),
        updated_at=now,
    )
    return _t(claim, new, "claim.reopened", now, ("reopened",), {"previous": claim.state.value})


def change_email(claim: Claim, email: str, now: datetime) -> Transition[Claim]:
    """The claimant's address changes (a typo at registration, a new mailbox). Later
    replies go to the new one; the state does not move. Not on a closed claim."""
    if claim.state in TERMINAL:
        raise TransitionError(f"cannot change the address of a claim in {claim.state}")
    if email == claim.email:
        raise TransitionError("the claim already has this address")
    new = replace(claim, email=email, updated_at=now)
    return _t(
        claim,
        new,
        "claim.email_changed",
        now,
        ("email_changed",),
        {"previous_email": claim.email, "email": email},
    )


def correct_field(claim: Claim, field_name: str, value: str, now: datetime) -> Transition[Claim]:
    """A person's value for a receipt field, kept beside what was read (`facts` keeps the
    evidence, `corrections` the person's value). Decides nothing: approve or reject
    is the next, separate step."""
    if claim.state in TERMINAL or claim.state is ClaimState.APPROVED:
        raise TransitionError(f"cannot correct a claim in {claim.state}")
    if field_name not in CORRECTABLE_FIELDS:
        raise TransitionError(
            f"unknown field {field_name!r} (one of {', '.join(CORRECTABLE_FIELDS)})"
        )
    value = value.strip()
    if not value:
        raise TransitionError(f"{field_name}: empty value")
    corrections = dict(claim.corrections)
    previous = corrections.get(field_name)
    corrections[field_name] = value
    new = replace(claim, corrections=tuple(sorted(corrections.items())), updated_at=now)
    evidence = {
        "field": field_name,
        "value": value,
        "read": dict(claim.facts).get(field_name),
        "previous_correction": previous,
    }
    return _t(claim, new, "claim.field_corrected", now, ("field_corrected",), evidence)
