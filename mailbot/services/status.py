"""The claimant's status look-up: registration code + email -> what the claimant may see.

The facts are the ones the `claim_status` reply states (the core's
`answer_status_question` and `services.context.reply_context`), cut down to what
concerns the claim's progress: its state, what is missing and by when, and when
payment comes. Nothing personal beyond what the claimant typed is returned (no
name, address, bank details or documents), and an unknown code and a wrong email
give the same `None`, after the same work, so the page cannot tell anyone which
codes exist.

`RateLimiter` is the per-client throttle of the public page; it takes the time as
an argument like the core does.
"""

from __future__ import annotations

import hmac
import re
import unicodedata
from collections import deque
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from mailbot.config import Settings
from mailbot.core import claim_machine as claim_sm
from mailbot.core.codes import CODE_LENGTH
from mailbot.core.errors import RulesError
from mailbot.ruleset.loader import RuleSet
from mailbot.services.context import reply_context
from mailbot.services.records import claim_snapshot
from mailbot.store import models as m

MAX_EMAIL_CHARS = 320
"""Longer input is not an address (RFC 5321 limits) and is not looked up."""

# Compared against when the code is unknown, so a miss costs what a wrong email does.
_DUMMY_ADDRESS = "nobody@invalid.example"
_SEPARATORS = re.compile(r"[\s\u00a0.-]+")
_ADDRESS_BY_CODE = select(m.Claim.id, m.Claim.email).where(m.Claim.code == bindparam("code"))


@dataclass(frozen=True)
class ClaimStatus:
    """What the status page shows after a matching code + email."""

    code: str
    language: str
    state: str
    missing_documents: tuple[str, ...]
    missing_fields: tuple[str, ...]
    deadline: date | None
    payment_days: int | None
    pay_by: date | None
    paid_on: date | None
    amount: Decimal | None
    currency: str | None


def normalise_code(text: str) -> str | None:
    """`1234 5678`, `1234-5678` -> `12345678`; anything but 8 digits -> None."""
    digits = _SEPARATORS.sub("", unicodedata.normalize("NFKC", text or ""))
    if len(digits) != CODE_LENGTH or not digits.isascii() or not digits.isdigit():
        return None
    return digits


def normalise_email(text: str) -> bytes:
    """The form of an address the comparison sees: NFKC, trimmed, case-folded.
    Case-insensitive on the whole address, as people type it (the stored address
    is the one the claimant registered with, which mail servers treat alike)."""
    return unicodedata.normalize("NFKC", text or "").strip().casefold().encode("utf-8")


def same_address(typed: str, stored: str) -> bool:
    """Constant-time comparison of normalised addresses (no early exit on the
    first differing character, which would leak how much of an address is right)."""
    return hmac.compare_digest(normalise_email(typed), normalise_email(stored))


def look_up(
    session: Session,
    code_text: str,
    email_text: str,
    *,
    rules: RuleSet,
    settings: Settings,
    now: datetime,
) -> ClaimStatus | None:
    """The claim's status when `code_text` names a claim registered to `email_text`;
    None for an unknown code, a wrong address or malformed input alike."""
    code = normalise_code(code_text)
    email = email_text if len(email_text or "") <= MAX_EMAIL_CHARS else ""
    # Only the address is read before it matched, and it is always compared (with a
    # dummy when there is no claim): an unknown code and a wrong address cost one
    # small query and one comparison alike; the claim itself is loaded after a match.
    hit = session.execute(_ADDRESS_BY_CODE, {"code": code}).first() if code else None
    matched = same_address(email, hit.email if hit is not None else _DUMMY_ADDRESS)
    if hit is None or not matched or not email:
        return None
    row = session.get(m.Claim, hit.id)
    if row is None:  # deleted between the two statements
        return None
    snap = claim_snapshot(row)
    try:
        campaign = rules.campaign(snap.campaign_id)
    except RulesError:
        # a campaign taken out of the rules: the state is still true, the terms unknown
        return ClaimStatus(
            code=snap.code,
            language=snap.language,
            state=snap.state.value,
            missing_documents=(),
            missing_fields=(),
            deadline=None,
            payment_days=None,
            pay_by=None,
            paid_on=None,
            amount=snap.payout_amount,
            currency=snap.payout_currency,
        )
    answer = claim_sm.answer_status_question(snap, campaign, now)
    assert answer.reply is not None  # the status answer always carries its reply
    ctx = reply_context(answer.reply, snap, settings, {})
    return ClaimStatus(
        code=snap.code,
        language=snap.language,
        state=str(ctx["state"]),
        missing_documents=tuple(ctx["missing_documents"]),
        missing_fields=tuple(ctx["missing_fields"]),
        deadline=ctx["deadline"],
        payment_days=ctx["payment_days"],
        pay_by=ctx["pay_by"],
        paid_on=ctx["paid_on"],
        amount=ctx["amount"],
        currency=ctx["currency"],
    )


class RateLimiter:
    """At most `limit` look-ups per client in a sliding `window_s` seconds.

    Hand-written (a dict of deques) rather than a rate-limit library: one process,
    memory only, a few lines; a library would bring a storage layer this does not
    need. Memory is bounded: at most `max_clients` clients are tracked, the one
    seen longest ago is dropped first.
    """

    def __init__(self, limit: int = 10, window_s: float = 600.0, max_clients: int = 10_000):
        self.limit = limit
        self.window_s = window_s
        self.max_clients = max_clients
        self._hits: dict[str, deque[float]] = {}

    def allow(self, client: str, now: float) -> bool:
        """Count one look-up by `client` at `now` (monotonic seconds); False when over."""
        hits = self._hits.pop(client, None)
        if hits is None:
            hits = deque()
        while hits and hits[0] <= now - self.window_s:
            hits.popleft()
        allowed = len(hits) < self.limit
        if allowed:
            hits.append(now)
        # re-inserted last: the dict's order is least recently seen first
        self._hits[client] = hits
        while len(self._hits) > self.max_clients:
            del self._hits[next(iter(self._hits))]
        return allowed
