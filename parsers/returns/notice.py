"""Shipment notifications for returns: `Shipment Notification: RMA# <n>` and its variants.

The returns policy asks the customer to mail that subject with the return
tracking number and the drop-off time in the body. People type it every way:
"SV: Re: shipment notification RMA 1234567", "Shipment Notification - RMA-1234567",
"FW: ShipmentNotification RMA nr. 1234567", or leave the number out of the
subject. We read what is there and say what is missing; deciding what to do
about it is the RMA state machine's job.

A mail whose subject is neither ("Returnering af Sonos Roam") is still a notice
when its new body text names the RMA number after an RMA word ("RMA nr. 3836043",
"returnummer 3836043": `rma.body_words` in rules/matching.yaml) with a valid
check digit and carries a tracking number. Such a notice is `body_only`: the
routing takes it as one only for an RMA that exists, from its registered address.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from stdnum import damm

from mailbot.core.mail import InboundEmail
from mailbot.ruleset.matching_rules import MatchingRules
from parsers.returns.dropoff import parse_dropoff
from parsers.returns.tracking import TrackingNumber, find_tracking_number

# Defaults equal to the built-in rules, so `find_rma_number(text)` works without
# loading a file (the pipeline passes the loaded rules).
_DEFAULT_LABEL = (
    r"RMA\s*(?:[#\-:]\s*)?(?:(?:nr|no|n:o|num|number|nummer|nummber|numer)\.?\s*)?[:#.\-]?\s*"
)
_DEFAULT_NUMBER = r"[1-9][0-9]{6}"


@dataclass(frozen=True)
class ShipmentNotice:
    rma_number: str | None
    """As written (digits only); None when the mail names none."""
    rma_number_valid: bool
    """Matches the configured pattern and check digit."""
    rma_from: str | None
    """'subject' or 'body'."""
    tracking: TrackingNumber | None
    dropoff: datetime | None
    dropoff_time_known: bool
    dropoff_evidence: str | None
    missing: tuple[str, ...]
    """Subset of ('rma_number', 'tracking_number', 'dropoff_time') to ask the customer for.
    An RMA number that fails its check digit counts as missing."""
    body_only: bool = False
    """Recognised by the RMA number in the body alone (no shipment phrase, no
    labelled number in the subject)."""


@lru_cache(maxsize=16)
def _rma_re(label: str) -> re.Pattern[str]:
    # the label is required: a bare 7-digit number is too common to be an RMA number
    return re.compile(
        r"(?<![\w])" + label + r"(?P<n>\d+)(?![\d])",
        re.IGNORECASE,
    )


def _rma_valid(n: str, number_pattern: str, check: str) -> bool:
    if not re.fullmatch(number_pattern, n):
        return False
    return check != "damm" or damm.is_valid(n)


def _find_rma(text: str, label: str, number: str, check: str) -> tuple[str | None, bool]:
    first: str | None = None
    for m in _rma_re(label).finditer(text):
        n = m.group("n")
        if _rma_valid(n, number, check):
            return n, True
        if first is None:
            first = n
    return first, False


def find_rma_number(text: str, rules: MatchingRules | None = None) -> str | None:
    """The first valid RMA number written with its label ('RMA# 1234567') in `text`."""
    label = rules.rma_label if rules else _DEFAULT_LABEL
    number = rules.rma_number_pattern if rules else _DEFAULT_NUMBER
    check = rules.rma_check if rules else "damm"
    n, ok = _find_rma(text, label, number, check)
    return n if ok else None


@lru_cache(maxsize=16)
def _body_word_re(words: tuple[str, ...]) -> re.Pattern[str]:
    # each space or hyphen in a word matches any run of them or nothing ("RMA-nummer");
    # up to three separators (". : # -", spaces) between the word and the number
    parts = sorted(
        (r"[\s\-_]*".join(re.escape(p) for p in re.split(r"[\s\-_]+", w) if p) for w in words),
        key=len,
        reverse=True,
    )
    return re.compile(
        r"(?<![\w])(?:" + "|".join(parts) + r")[\s.:#\-]{0,3}(?P<n>\d+)(?![\d])",
        re.IGNORECASE,
    )


def find_body_rma_number(text: str, rules: MatchingRules) -> str | None:
    """The first number after an RMA word in `text` that is a valid RMA number."""
    for m in _body_word_re(rules.rma_body_words).finditer(text):
        n = m.group("n")
        if _rma_valid(n, rules.rma_number_pattern, rules.rma_check):
            return n
    return None


@lru_cache(maxsize=16)
def _prefix_re(prefixes: tuple[str, ...]) -> re.Pattern[str]:
    alt = "|".join(sorted((re.escape(p) for p in prefixes), key=len, reverse=True))
    # "Re:", "RE[2]:", "Re^3:", "Fwd :", "[EXTERNAL]" tags, repeated
    return re.compile(
        r"^\s*(?:(?:(?:" + alt + r")\s*(?:\[\d+\]|\^\d+|\(\d+\))?\s*[:：]|\[[^\]]{1,30}\])\s*)+",
        re.IGNORECASE,
    )


def strip_subject_prefixes(subject: str, rules: MatchingRules) -> str:
    return _prefix_re(rules.subject_prefixes).sub("", subject).strip()


@lru_cache(maxsize=16)
def _phrase_re(phrases: tuple[str, ...]) -> re.Pattern[str]:
    # each space in a phrase matches any run of spaces/hyphens/underscores or nothing
    parts = [r"[\s\-_]*".join(re.escape(w) for w in p.split()) for p in phrases]
    return re.compile(r"(?:" + "|".join(parts) + r")", re.IGNORECASE)


def is_shipment_subject(subject: str, rules: MatchingRules) -> bool:
    return bool(_phrase_re(rules.shipment_subject_phrases).search(subject))


def parse_shipment_notification(
    email: InboundEmail, rules: MatchingRules, now: datetime
) -> ShipmentNotice | None:
    """A ShipmentNotice when the mail is one, else None.

    It is one when the subject (reply/forward prefixes removed) carries the
    shipment phrase, or carries a labelled RMA number while the body has a
    tracking number, or (`body_only`) the new body text carries a valid RMA
    number after an RMA word and a tracking number. The RMA number is taken
    from the subject, else the body.
    """
    subject = strip_subject_prefixes(email.subject or "", rules)
    body = email.new_text or email.text or ""
    rma_sub, ok_sub = _find_rma(subject, rules.rma_label, rules.rma_number_pattern, rules.rma_check)
    phrase = is_shipment_subject(subject, rules)

    rma_number, rma_ok, rma_from = rma_sub, ok_sub, "subject" if rma_sub else None
    if not rma_ok:
        rma_body, ok_body = _find_rma(
            body, rules.rma_label, rules.rma_number_pattern, rules.rma_check
        )
        if ok_body or (rma_number is None and rma_body is not None):
            rma_number, rma_ok, rma_from = rma_body, ok_body, "body"
    if not rma_ok:
        # "returnummer 3836043", "RMA nr.3836043": the looser body words, check digit required
        worded = find_body_rma_number(body, rules)
        if worded is not None:
            rma_number, rma_ok, rma_from = worded, True, "body"

    exclude = tuple(n for n in (rma_number, rma_sub) if n)
    tracking = find_tracking_number(body, rules, exclude=exclude)
    full = email.text or ""
    if tracking is None and full and full != body:
        # a number pasted below a signature separator, or in a forwarded part, still counts
        tracking = find_tracking_number(full, rules, exclude=exclude)

    body_only = not phrase and not rma_sub
    if not phrase and tracking is None:
        return None
    if body_only and not (rma_ok and rma_from == "body"):
        return None

    keywords = rules.all_dropoff_keywords()
    drop = parse_dropoff(body, now, keywords)
    if drop is None and full and full != body:
        drop = parse_dropoff(full, now, keywords)
    missing: list[str] = []
    if not rma_ok:
        missing.append("rma_number")
    if tracking is None:
        missing.append("tracking_number")
    if drop is None:
        missing.append("dropoff_time")
    return ShipmentNotice(
        rma_number=rma_number,
        rma_number_valid=rma_ok,
        rma_from=rma_from,
        tracking=tracking,
        dropoff=drop.when if drop else None,
        dropoff_time_known=drop.time_known if drop else False,
        dropoff_evidence=drop.evidence if drop else None,
        missing=tuple(missing),
        body_only=body_only,
    )
