"""The claim directory the pure matcher asks, backed by the database.

Implements `mailbot.core.claim_match.ClaimDirectory` over one Session: our sent
Message-IDs come from the outbox, codes and open claims from the claims table.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailbot.core.claim_match import DEFAULT_CLOSED_STATES, ClaimRef, normalize_message_id
from mailbot.store.models import Claim, Outbox


def _ref(claim: Claim) -> ClaimRef:
    return ClaimRef(claim_id=claim.id, code=claim.code, email=claim.email, state=claim.state)


class StoreClaimDirectory:
    def __init__(self, session: Session) -> None:
        self.session = session

    def by_sent_message_id(self, mid: str) -> ClaimRef | None:
        bare = normalize_message_id(mid)
        row = self.session.execute(
            select(Claim)
            .join(Outbox, Outbox.claim_id == Claim.id)
            .where(Outbox.message_id.in_((bare, f"<{bare}>")))
        ).scalar_one_or_none()
        return _ref(row) if row is not None else None

    def by_code(self, code: str) -> ClaimRef | None:
        row = self.session.execute(select(Claim).where(Claim.code == code)).scalar_one_or_none()
        return _ref(row) if row is not None else None

    def open_claims_for(self, address: str) -> tuple[ClaimRef, ...]:
        # The state is checked here, not in SQL: within a group commit an earlier mail
        # may have closed (or reopened) a claim without that change being flushed yet;
        # the loaded rows carry the session's current state, the table does not.
        rows = self.session.scalars(
            select(Claim)
            .where(func.lower(Claim.email) == address.strip().lower())
            .order_by(Claim.id)
        ).all()
        return tuple(_ref(r) for r in rows if r.state not in DEFAULT_CLOSED_STATES)
