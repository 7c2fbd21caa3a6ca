"""A campaign's terms and the returns policy as frozen values the claim and RMA rules read.

Built by `mailbot.ruleset.campaigns` from `rules/campaigns/*.yaml` (the YAML is the
truth; admins tune it without a release). Nothing here decides anything; the
helpers only answer questions about the terms (is this model eligible, when does
a local calendar day end) so that `claims`/`claim_rules`/`rma` stay short.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from enum import StrEnum


class PayoutKind(StrEnum):
    FIXED = "fixed"
    PERCENTAGE = "percentage"


def normalize_name(text: str) -> str:
    """Case, spaces and punctuation do not distinguish models or retailers
    ('Play:1' = 'PLAY 1' = 'play-1'); customers type them every way."""
    return re.sub(r"[\W_]+", "", text.casefold())


@dataclass(frozen=True)
class NamedItem:
    """An eligible model or an authorized retailer: canonical name plus aliases."""

    name: str
    aliases: tuple[str, ...] = ()

    def matches(self, text: str) -> bool:
        key = normalize_name(text)
        return bool(key) and any(normalize_name(n) == key for n in (self.name, *self.aliases))


def find_named(items: tuple[NamedItem, ...], text: str | None) -> NamedItem | None:
    if not text:
        return None
    for item in items:
        if item.matches(text):
            return item
    return None


@dataclass(frozen=True)
class ClaimWindow:
    """When a claim may be made. Either bound may be absent; both may apply."""

    opens_after_purchase_days: int = 0
    """A claim made earlier than purchase date + this many days is too early."""
    closes_on: date | None = None
    """The published last day (inclusive, campaign time zone)."""
    accept_until: date | None = None
    """Hard cut-off when later than closes_on (the FAQ accepts online registrations one
    day more); inclusive. None: closes_on is the cut-off."""
    weeks_after_first_mail: int | None = None
    """Claim (with documents) within this many weeks of the first campaign mail."""

    def last_day(self) -> date | None:
        if self.accept_until is not None:
            return self.accept_until
        return self.closes_on


@dataclass(frozen=True)
class Payout:
    kind: PayoutKind
    fixed: tuple[tuple[str, tuple[tuple[str, Decimal], ...]], ...] = ()
    """FIXED: (model name, ((currency, amount), ...)) pairs."""
    percent: Decimal | None = None
    """PERCENTAGE: percent of the price paid back."""
    caps: tuple[tuple[str, Decimal], ...] = ()
    """PERCENTAGE: (currency, maximum amount) pairs; a currency without a cap is not paid."""

    def fixed_amount(self, model: str, currency: str) -> Decimal | None:
        for name, amounts in self.fixed:
            if normalize_name(name) == normalize_name(model):
                return dict(amounts).get(currency)
        return None

    def cap(self, currency: str) -> Decimal | None:
        return dict(self.caps).get(currency)


@dataclass(frozen=True)
class FraudLimits:
    max_claims_per_sender: int = 3
    """More claims than this from one address (in this campaign) go to review."""


@dataclass(frozen=True)
class Campaign:
    id: str
    name: str
    language: str
    currencies: tuple[str, ...]
    tz: tzinfo
    """Calendar days (windows, deadlines) are counted in this zone."""
    purchase_start: date | None
    purchase_end: date | None
    claim_window: ClaimWindow
    models: tuple[NamedItem, ...]
    retailers: tuple[NamedItem, ...]
    """Empty: any retailer whose receipt shows the required fields."""
    countries: tuple[str, ...]
    """ISO 3166 alpha-2; empty: no country restriction."""
    required_documents: tuple[str, ...]
    required_fields: tuple[str, ...]
    file_types: tuple[str, ...]
    max_file_bytes: int
    reply_days: int
    """Calendar days the customer has to supply missing information."""
    payout: Payout
    companies_allowed: bool
    min_confidence: float
    """Receipt values below this are not believed (the claim goes to review)."""
    fraud: FraudLimits = field(default_factory=FraudLimits)
    payment_days: int | None = None
    """Promised payment time after validation, for the approval mail."""
    source: str = ""
    """The YAML file it came from."""
    version: str = ""
    """Short sha256 of that file's text: the rules version events record."""

    def model(self, text: str | None) -> NamedItem | None:
        return find_named(self.models, text)

    def retailer(self, text: str | None) -> NamedItem | None:
        return find_named(self.retailers, text)

    def local_date(self, moment: datetime) -> date:
        return moment.astimezone(self.tz).date()

    def pay_by(self, approved: datetime) -> date | None:
        """The last day payment is promised on: `payment_days` after the approval, in
        the campaign's calendar (the approval mail says "within N days"); None when
        the campaign promises no time."""
        if self.payment_days is None:
            return None
        return self.local_date(approved) + timedelta(days=self.payment_days)

    def end_of_day(self, day: date) -> datetime:
        """The first instant after `day` in the campaign's zone (deadlines are exclusive)."""
        return end_of_local_day(day, self.tz)


def end_of_local_day(day: date, tz: tzinfo) -> datetime:
    return datetime.combine(day + timedelta(days=1), time(0, 0), tzinfo=tz)


@dataclass(frozen=True)
class ReturnsPolicy:
    id: str
    tz: tzinfo
    valid_days: int
    """The original must be returned within this many days of the RMA."""
    expires_on_day: int
    """The RMA expires at the start of this day after the issue date (15: valid 14 days)."""
    advance_replacement: bool
    """Replacements may ship before the original comes back."""
    bill_if_not_returned: bool
    """An advance replacement whose original is not back in time is billed."""
    warranty_years: int = 2
    return_right_days: int = 100
    language: str = "en"
    source: str = ""
    version: str = ""
    """Short sha256 of the file's text: the rules version events record."""
    notice_requires: tuple[str, ...] = ("tracking_number", "dropoff_time")
    """What a shipment notice must carry besides the RMA number ("tracking-nummeret og
    tidspunkt for avlevering"): of 'tracking_number', 'dropoff_time'."""
    tracking_proves_handover: bool = False
    """A carrier's tracking number alone proves the hand-over: the drop-off time is not
    asked for when the tracking number is given."""

    def expires_at(self, issued_at: datetime) -> datetime:
        issued_day = issued_at.astimezone(self.tz).date()
        return datetime.combine(
            issued_day + timedelta(days=self.expires_on_day), time(0, 0), tzinfo=self.tz
        )

    def bill_due_at(self, issued_at: datetime, replacement_shipped_at: datetime | None) -> datetime:
        """Billing for an advance replacement starts when the original is not back within
        `valid_days` of the RMA or of the replacement's shipping, whichever is later."""
        due = self.expires_at(issued_at)
        if replacement_shipped_at is not None:
            due = max(due, self.expires_at(replacement_shipped_at))
        return due
