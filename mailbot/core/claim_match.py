"""Which claim a customer's mail is about, with the signal that said so, or why we cannot tell.

Signals, strongest first:
  thread        In-Reply-To/References names a Message-ID we sent     1.0
  subject_code  a valid registration code in the subject              0.9
  body_code     a valid registration code in the new (unquoted) text  0.7
  open_claim    the sender has exactly one open claim                 0.5

A conflict is never resolved by guessing: the result is `status="review"` with a
reason code (two_codes, code_unknown, thread_conflict, ambiguous_open_claims,
no_match) that the pipeline records and a human reads.

Knowing the claim is not leave to act on it. A mail that names a claim (its thread
or its code) from an address other than the claim's, or whose From domain fails
DMARC, comes back `status="held"` with the claim and a reason (sender_not_claimant,
code_other_address, dmarc_fail): recorded on the claim for a person, never moving
it, never answered. Our Message-IDs and the codes travel in mail that gets
forwarded and quoted, so neither proves who is writing.
Pure: the claim store is reached only through the `ClaimDirectory` protocol.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol

from mailbot.core.codes import find_codes, find_mistyped_codes
from mailbot.core.mail import InboundEmail

STRENGTH = {"thread": 1.0, "subject_code": 0.9, "body_code": 0.7, "open_claim": 0.5}

ReviewReason = Literal[
    "two_codes",
    "code_other_address",
    "code_unknown",
    "thread_conflict",
    "ambiguous_open_claims",
    "no_match",
    # held: the claim is known, the sender may not move it
    "sender_not_claimant",
    "code_other_address",
    "dmarc_fail",
]


@dataclass(frozen=True)
class ClaimRef:
    claim_id: int
    code: str
    email: str
    state: str


class ClaimDirectory(Protocol):
    def by_sent_message_id(self, mid: str) -> ClaimRef | None: ...

    def by_code(self, code: str) -> ClaimRef | None: ...

    def open_claims_for(self, address: str) -> tuple[ClaimRef, ...]: ...


@dataclass(frozen=True)
class MatchSignal:
    name: str
    """thread | subject_code | body_code | open_claim"""
    strength: float
    claim_id: int | None
    detail: str
    """The Message-ID or code that fired (no personal data)."""


@dataclass(frozen=True)
class MatchResult:
    status: Literal["matched", "review", "held"]
    """matched: act on `claim`; review: no claim can be named; held: `claim` is the
    one, but this mail may not move it (see `reason`)."""
    claim: ClaimRef | None = None
    signal: str | None = None
    """The signal the match rests on."""
    strength: float = 0.0
    reason: ReviewReason | None = None
    """Set when status is 'review' or 'held'."""
    dmarc_fail: bool = False
    """The From domain failed DMARC in a trusted Authentication-Results header."""
    signals: tuple[MatchSignal, ...] = ()
    """Everything observed, for the event's evidence and `mailbot inspect`."""
    codes: tuple[str, ...] = ()
    """Valid codes found (subject first)."""
    mistyped_codes: tuple[str, ...] = ()
    """8-digit numbers where a code would stand that fail the check digit."""
    candidates: tuple[int, ...] = ()
    """Claim ids a reviewer should look at (for two_codes, ambiguous_open_claims ...)."""

    @property
    def matched(self) -> bool:
        return self.status == "matched"

    @property
    def reasons(self) -> tuple[str, ...]:
        """Every reason a person should read: the match's, and dmarc_fail."""
        found = [r for r in (self.reason, "dmarc_fail" if self.dmarc_fail else None) if r]
        return tuple(dict.fromkeys(found))


def normalize_message_id(mid: str) -> str:
    """'<abc@x>' and ' abc@x ' are the same Message-ID."""
    return mid.strip().strip("<>").strip()


def _same_address(a: str, b: str) -> bool:
    return a.strip().casefold() == b.strip().casefold()


def is_sender(email: InboundEmail, address: str) -> bool:
    """Whether the mail's From is `address` (case-insensitive)."""
    return email.from_address is not None and _same_address(email.from_address, address)


def dmarc_failed(email: InboundEmail, trusted_authserv_ids: Collection[str] = ()) -> bool:
    """Whether a trusted Authentication-Results header says DMARC failed.

    With `trusted_authserv_ids` empty every header counts. That is safe because a
    verdict is only ever used to hold a mail back, never to vouch for one: a header
    the sender forged can hold only the sender's own mail, and cannot hide the
    verdict our receiving server writes on top. With ids given, only those servers'
    headers count, so a forwarder's or an earlier hop's fail does not hold genuine
    mail. A fail about another domain than our From's still counts: the server then
    read a different From than we do, which is a trick, not an accident.
    """
    trusted = {i.strip().casefold() for i in trusted_authserv_ids}
    return any(
        r.method == "dmarc" and r.result == "fail" and (not trusted or r.authserv_id in trusted)
        for r in email.auth_results
    )


def _thread_ids(email: InboundEmail) -> list[str]:
    # In-Reply-To names the mail answered; References lists the thread oldest
    # first, so walk it newest first.
    ids: list[str] = []
    for mid in (*email.in_reply_to, *reversed(email.references)):
        n = normalize_message_id(mid)
        if n and n not in ids:
            ids.append(n)
    return ids


def hold_reasons(
    email: InboundEmail, owner: str, trusted_authserv_ids: Collection[str] = ()
) -> tuple[ReviewReason, ...]:
    """Why `email` may not act for the holder of `owner` (an RMA's address) by itself;
    empty when it may."""
    reasons: list[ReviewReason] = []
    if not is_sender(email, owner):
        reasons.append("sender_not_claimant")
    if dmarc_failed(email, trusted_authserv_ids):
        reasons.append("dmarc_fail")
    return tuple(reasons)


def match_claim(
    email: InboundEmail,
    directory: ClaimDirectory,
    *,
    ignore_words: Iterable[str] | None = None,
    trusted_authserv_ids: Collection[str] = (),
) -> MatchResult:
    """Decide which claim `email` concerns and whether it may move it. Never raises for
    odd mail; conflicts come back as `status="review"`, a claim this mail may not
    move as `status="held"`, each with a reason."""
    result = _match(email, directory, ignore_words)
    if not dmarc_failed(email, trusted_authserv_ids):
        return result
    if result.status == "matched":
        return replace(result, status="held", reason="dmarc_fail", dmarc_fail=True)
    return replace(result, dmarc_fail=True)


def _match(
    email: InboundEmail, directory: ClaimDirectory, ignore_words: Iterable[str] | None
) -> MatchResult:
    ignore = tuple(ignore_words) if ignore_words is not None else None
    signals: list[MatchSignal] = []

    thread: list[ClaimRef] = []
    for mid in _thread_ids(email):
        ref = directory.by_sent_message_id(mid)
        if ref is not None:
            signals.append(MatchSignal("thread", STRENGTH["thread"], ref.claim_id, mid))
            if all(r.claim_id != ref.claim_id for r in thread):
                thread.append(ref)

    subject_codes = find_codes(email.subject or "", ignore)
    body_codes = find_codes(email.new_text or "", ignore)
    codes = tuple(dict.fromkeys((*subject_codes, *body_codes)))
    mistyped = tuple(
        dict.fromkeys(
            (
                *find_mistyped_codes(email.subject or "", ignore),
                *find_mistyped_codes(email.new_text or "", ignore),
            )
        )
    )
    by_code: dict[str, ClaimRef | None] = {c: directory.by_code(c) for c in codes}
    for c in codes:
        name = "subject_code" if c in subject_codes else "body_code"
        ref = by_code[c]
        signals.append(MatchSignal(name, STRENGTH[name], ref.claim_id if ref else None, c))

    def review(reason: ReviewReason, candidates: Iterable[ClaimRef] = ()) -> MatchResult:
        ids = tuple(dict.fromkeys(r.claim_id for r in candidates))
        return MatchResult(
            status="review",
            reason=reason,
            signals=tuple(signals),
            codes=codes,
            mistyped_codes=mistyped,
            candidates=ids,
        )

    def matched(ref: ClaimRef, signal: str, held: ReviewReason | None = None) -> MatchResult:
        return MatchResult(
            status="held" if held else "matched",
            claim=ref,
            signal=signal,
            strength=STRENGTH[signal],
            reason=held,
            signals=tuple(signals),
            codes=codes,
            mistyped_codes=mistyped,
        )

    code_refs = [r for r in by_code.values() if r is not None]

    if thread:
        # The Message-ID is ours, so the thread names the claim; a code in the mail
        # naming another claim is a conflict. A valid but unknown number is not: one
        # random 8-digit number in ten passes the check digit (customer numbers,
        # EANs), and it names no claim. Who may move the claim is the claimant
        # alone: a confirmation gets forwarded and its thread answered by anyone
        # who holds it (a spouse, or whoever it was forwarded to), so another
        # sender is held for a person.
        others = [r for r in code_refs if all(r.claim_id != t.claim_id for t in thread)]
        if len(thread) > 1 or others:
            return review("thread_conflict", [*thread, *others])
        ref = thread[0]
        stranger = not is_sender(email, ref.email)
        return matched(ref, "thread", "sender_not_claimant" if stranger else None)

    if len(codes) > 1:
        return review("two_codes", code_refs)
    if len(codes) == 1:
        code = codes[0]
        ref = by_code[code]
        if ref is None:
            return review("code_unknown")
        signal = "subject_code" if code in subject_codes else "body_code"
        return matched(ref, signal, None if is_sender(email, ref.email) else "code_other_address")

    if email.from_address:
        open_claims = directory.open_claims_for(email.from_address)
        if len(open_claims) == 1:
            ref = open_claims[0]
            signals.append(
                MatchSignal("open_claim", STRENGTH["open_claim"], ref.claim_id, "sender")
            )
            return matched(ref, "open_claim")
        if len(open_claims) > 1:
            return review("ambiguous_open_claims", open_claims)
    return review("no_match")


# States in which a claim takes no more documents (same list as the store's directory);
# every other state counts as open.
DEFAULT_CLOSED_STATES: frozenset[str] = frozenset({"approved", "paid", "rejected", "void"})


@dataclass(frozen=True)
class InMemoryClaimDirectory:
    """A ClaimDirectory over plain values, for unit tests and the demo."""

    claims: tuple[ClaimRef, ...] = ()
    sent: Mapping[str, int] = field(default_factory=dict)
    """Message-ID we sent -> claim_id."""
    closed_states: frozenset[str] = DEFAULT_CLOSED_STATES

    def with_claim(self, claim: ClaimRef, *sent_ids: str) -> InMemoryClaimDirectory:
        sent = dict(self.sent)
        sent.update({normalize_message_id(m): claim.claim_id for m in sent_ids})
        others = tuple(c for c in self.claims if c.claim_id != claim.claim_id)
        return InMemoryClaimDirectory((*others, claim), sent, self.closed_states)

    def _by_id(self, claim_id: int) -> ClaimRef | None:
        return next((c for c in self.claims if c.claim_id == claim_id), None)

    def by_sent_message_id(self, mid: str) -> ClaimRef | None:
        claim_id = self.sent.get(normalize_message_id(mid))
        return self._by_id(claim_id) if claim_id is not None else None

    def by_code(self, code: str) -> ClaimRef | None:
        return next((c for c in self.claims if c.code == code), None)

    def open_claims_for(self, address: str) -> tuple[ClaimRef, ...]:
        return tuple(
            c
            for c in self.claims
            if _same_address(c.email, address) and c.state not in self.closed_states
        )
