"""Load `rules/campaigns/*.yaml` into frozen `Campaign`s and `returns.yaml` into a `ReturnsPolicy`.

The YAML is the truth admins edit; it is validated on load by a pydantic schema
(unknown keys rejected, ISO dates) and by cross-field checks, and every error names
the file and the line (`mailbot.ruleset.yamlfile`). The returns policy lives in the
same directory; any file whose top-level `id` is `returns` is the policy, not a campaign.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from decimal import Decimal
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mailbot.core.campaign import (
    Campaign,
    ClaimWindow,
    FraudLimits,
    NamedItem,
    Payout,
    PayoutKind,
    ReturnsPolicy,
    normalize_name,
)
from mailbot.core.errors import RulesError
from mailbot.core.languages import Language
from mailbot.core.receipt_fields import RECEIPT_FIELDS
from mailbot.resources import rules_dir
from mailbot.ruleset.yamlfile import YamlDoc, check, parse_yaml, validate

RETURNS_ID = "returns"
_DOCUMENT_KINDS = ("receipt", "serial_photo")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _iso_date(value: object) -> object:
    # Only YYYY-MM-DD: "1.11.2022" or "2022-11-1" must not be read some other way.
    if isinstance(value, str):
        try:
            if len(value) != 10:
                raise ValueError
            return dt.date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"not an ISO date YYYY-MM-DD: {value!r}") from None
    return value


class _Purchase(_Strict):
    start: dt.date | None = None
    end: dt.date | None = None

    _dates = field_validator("start", "end", mode="before")(_iso_date)


class _ClaimWindow(_Strict):
    opens_after_purchase_days: int = Field(default=0, ge=0, le=3650)
    closes_on: dt.date | None = None
    accept_until: dt.date | None = None
    weeks_after_first_mail: int | None = Field(default=None, ge=1, le=520)

    _dates = field_validator("closes_on", "accept_until", mode="before")(_iso_date)


class _Named(_Strict):
    name: str = Field(min_length=1)
    aliases: list[str] = Field(default_factory=list)


class _Attachments(_Strict):
    types: list[str] = Field(min_length=1)
    max_bytes: int = Field(gt=0)


class _Payout(_Strict):
    kind: Literal["fixed", "percentage"]
    fixed: dict[str, dict[str, Decimal]] = Field(default_factory=dict)
    percent: Decimal | None = Field(default=None, gt=0, le=100)
    caps: dict[str, Decimal] = Field(default_factory=dict)


class _Fraud(_Strict):
    max_claims_per_sender: int = Field(default=3, ge=1)


Currency = str


class _CampaignSchema(_Strict):
    id: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    name: str = Field(min_length=1)
    language: Language
    currencies: list[Currency] = Field(min_length=1)
    timezone: str
    purchase: _Purchase
    claim_window: _ClaimWindow
    models: list[_Named] = Field(min_length=1)
    retailers: list[_Named] = Field(default_factory=list)
    countries: list[str] = Field(default_factory=list)
    required_documents: list[Literal["receipt", "serial_photo"]]
    required_fields: list[str]
    attachments: _Attachments
    reply_days: int = Field(ge=1, le=365)
    payment_days: int | None = Field(default=None, ge=1)
    payout: _Payout
    companies_allowed: bool
    min_confidence: float = Field(ge=0.0, le=1.0)
    fraud: _Fraud = Field(default_factory=_Fraud)


class _Rma(_Strict):
    valid_days: int = Field(ge=1, le=365)
    expires_on_day: int = Field(ge=1, le=366)


_NoticeItem = Literal["tracking_number", "dropoff_time"]


def _both() -> list[_NoticeItem]:
    return ["tracking_number", "dropoff_time"]


class _Notice(_Strict):
    requires: list[_NoticeItem] = Field(default_factory=_both, min_length=1)
    tracking_proves_handover: bool = False


class _ReturnsSchema(_Strict):
    id: Literal["returns"]
    language: Language = "en"
    timezone: str
    rma: _Rma
    notice: _Notice = Field(default_factory=_Notice)
    advance_replacement: bool
    bill_if_not_returned: bool
    warranty_years: int = Field(default=2, ge=0)
    return_right_days: int = Field(default=100, ge=0)


def _zone(doc: YamlDoc, name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise doc.error(f"timezone: unknown time zone {name!r}", ("timezone",)) from None


def _named(items: list[_Named]) -> tuple[NamedItem, ...]:
    return tuple(NamedItem(i.name, tuple(i.aliases)) for i in items)


def _unique_names(doc: YamlDoc, items: list[_Named], key: str) -> None:
    # Two entries answering to the same spelling would make matching depend on order.
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        spellings: list[tuple[str, tuple[str | int, ...]]] = [(item.name, (key, i, "name"))]
        spellings += [(a, (key, i, "aliases", j)) for j, a in enumerate(item.aliases)]
        for spelling, loc in spellings:
            norm = normalize_name(spelling)
            check(doc, bool(norm), f"{key}.{i}: {spelling!r} has no letters or digits", loc)
            other = seen.get(norm)
            check(
                doc,
                other is None or other == i,
                f"{key}.{i}: {spelling!r} is also a name of {key}.{other}",
                loc,
            )
            seen[norm] = i


def _check_campaign(doc: YamlDoc, s: _CampaignSchema) -> None:
    p, w = s.purchase, s.claim_window
    if p.start and p.end:
        check(doc, p.start <= p.end, "purchase: start is after end", ("purchase", "end"))
    check(
        doc,
        w.closes_on is not None
        or w.accept_until is not None
        or w.weeks_after_first_mail is not None,
        "claim_window: needs closes_on, accept_until or weeks_after_first_mail",
        ("claim_window",),
    )
    if w.closes_on and w.accept_until:
        check(
            doc,
            w.accept_until >= w.closes_on,
            "claim_window.accept_until: before closes_on",
            ("claim_window", "accept_until"),
        )
    last = w.accept_until or w.closes_on
    if last and p.start:
        check(
            doc,
            last >= p.start,
            "claim_window: closes before the purchase window opens",
            ("claim_window",),
        )
    _unique_names(doc, s.models, "models")
    _unique_names(doc, s.retailers, "retailers")
    for i, cur in enumerate(s.currencies):
        check(
            doc, len(cur) == 3 and cur.isupper(), f"currencies.{i}: not ISO 4217", ("currencies", i)
        )
    for i, cc in enumerate(s.countries):
        check(doc, len(cc) == 2 and cc.isupper(), f"countries.{i}: not ISO 3166", ("countries", i))
    for i, f in enumerate(s.required_fields):
        check(
            doc,
            f in RECEIPT_FIELDS,
            f"required_fields.{i}: {f!r} is not one of {', '.join(RECEIPT_FIELDS)}",
            ("required_fields", i),
        )
    for i, t in enumerate(s.attachments.types):
        check(
            doc,
            t == t.lower() and t.isalnum(),
            f"attachments.types.{i}: bad type {t!r}",
            ("attachments", "types", i),
        )
    pay = s.payout
    if pay.kind == "fixed":
        check(doc, bool(pay.fixed), "payout.fixed: needs an amount per model", ("payout",))
        check(
            doc,
            pay.percent is None and not pay.caps,
            "payout: percent/caps only with kind percentage",
            ("payout",),
        )
        for model, amounts in pay.fixed.items():
            loc = ("payout", "fixed", model)
            check(
                doc,
                any(m.matches(model) for m in _named(s.models)),
                f"payout.fixed.{model}: not a model of this campaign",
                loc,
            )
            for cur, amount in amounts.items():
                check(
                    doc,
                    cur in s.currencies,
                    f"payout.fixed.{model}.{cur}: not in currencies",
                    (*loc, cur),
                )
                check(doc, amount > 0, f"payout.fixed.{model}.{cur}: must be positive", (*loc, cur))
    else:
        check(doc, pay.percent is not None, "payout.percent: required for percentage", ("payout",))
        check(doc, not pay.fixed, "payout.fixed: only with kind fixed", ("payout", "fixed"))
        for cur in s.currencies:
            check(doc, cur in pay.caps, f"payout.caps: no cap for {cur}", ("payout", "caps"))
        for cur, cap in pay.caps.items():
            check(
                doc,
                cur in s.currencies,
                f"payout.caps.{cur}: not in currencies",
                ("payout", "caps", cur),
            )
            check(doc, cap > 0, f"payout.caps.{cur}: must be positive", ("payout", "caps", cur))


def campaign_from_doc(doc: YamlDoc) -> Campaign:
    """Validate one parsed campaign file; every error names the file and the line."""
    s: _CampaignSchema = validate(doc, _CampaignSchema)
    _check_campaign(doc, s)
    pay = s.payout
    return Campaign(
        id=s.id,
        name=s.name,
        language=s.language,
        currencies=tuple(s.currencies),
        tz=_zone(doc, s.timezone),
        purchase_start=s.purchase.start,
        purchase_end=s.purchase.end,
        claim_window=ClaimWindow(
            opens_after_purchase_days=s.claim_window.opens_after_purchase_days,
            closes_on=s.claim_window.closes_on,
            accept_until=s.claim_window.accept_until,
            weeks_after_first_mail=s.claim_window.weeks_after_first_mail,
        ),
        models=_named(s.models),
        retailers=_named(s.retailers),
        countries=tuple(s.countries),
        required_documents=tuple(s.required_documents),
        required_fields=tuple(s.required_fields),
        file_types=tuple(s.attachments.types),
        max_file_bytes=s.attachments.max_bytes,
        reply_days=s.reply_days,
        payout=Payout(
            kind=PayoutKind(pay.kind),
            fixed=tuple((m, tuple(a.items())) for m, a in pay.fixed.items()),
            percent=pay.percent,
            caps=tuple(pay.caps.items()),
        ),
        companies_allowed=s.companies_allowed,
        min_confidence=s.min_confidence,
        fraud=FraudLimits(s.fraud.max_claims_per_sender),
        payment_days=s.payment_days,
        source=doc.path,
    )


def returns_policy_from_doc(doc: YamlDoc) -> ReturnsPolicy:
    s: _ReturnsSchema = validate(doc, _ReturnsSchema)
    check(
        doc,
        s.rma.expires_on_day == s.rma.valid_days + 1,
        "rma.expires_on_day: must be valid_days + 1 (the day after the last valid day)",
        ("rma", "expires_on_day"),
    )
    check(
        doc,
        len(set(s.notice.requires)) == len(s.notice.requires),
        "notice.requires: an item is listed twice",
        ("notice", "requires"),
    )
    check(
        doc,
        "tracking_number" in s.notice.requires or not s.notice.tracking_proves_handover,
        "notice.tracking_proves_handover: needs tracking_number in notice.requires",
        ("notice", "tracking_proves_handover"),
    )
    return ReturnsPolicy(
        id=s.id,
        tz=_zone(doc, s.timezone),
        valid_days=s.rma.valid_days,
        expires_on_day=s.rma.expires_on_day,
        advance_replacement=s.advance_replacement,
        bill_if_not_returned=s.bill_if_not_returned,
        warranty_years=s.warranty_years,
        return_right_days=s.return_right_days,
        language=s.language,
        source=doc.path,
        notice_requires=tuple(s.notice.requires),
        tracking_proves_handover=s.notice.tracking_proves_handover,
    )


def rules_version(text: str) -> str:
    """What events record as the rules version: the file's content, not its mtime."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def parse_campaign(text: str, path: str = "<string>") -> Campaign:
    campaign = campaign_from_doc(parse_yaml(text, path))
    return dataclasses.replace(campaign, version=rules_version(text))


def parse_returns_policy(text: str, path: str = "<string>") -> ReturnsPolicy:
    policy = returns_policy_from_doc(parse_yaml(text, path))
    return dataclasses.replace(policy, version=rules_version(text))


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError(f"cannot read: {exc}", path=str(path)) from None


def _is_returns(doc: YamlDoc) -> bool:
    return isinstance(doc.data, dict) and doc.data.get("id") == RETURNS_ID


def load_campaigns(dir: Path | None = None) -> dict[str, Campaign]:
    """Every campaign in `dir` (default the built-in `rules/campaigns/`), by id.
    The returns policy file in the same directory is skipped."""
    d = dir if dir is not None else rules_dir() / "campaigns"
    out: dict[str, Campaign] = {}
    for path in sorted(d.glob("*.yaml")):
        text = _read(path)
        doc = parse_yaml(text, str(path))
        if _is_returns(doc):
            continue
        campaign = dataclasses.replace(campaign_from_doc(doc), version=rules_version(text))
        if campaign.id in out:
            raise doc.error(
                f"id: {campaign.id!r} already defined in {out[campaign.id].source}", ("id",)
            )
        out[campaign.id] = campaign
    return out


def load_returns_policy(path: Path | None = None) -> ReturnsPolicy:
    p = path if path is not None else rules_dir() / "campaigns" / "returns.yaml"
    if not p.exists():
        raise RulesError("returns policy file not found", path=str(p))
    text = _read(p)
    policy = returns_policy_from_doc(parse_yaml(text, str(p)))
    return dataclasses.replace(policy, version=rules_version(text))
