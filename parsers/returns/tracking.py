"""Tracking numbers in free text, with the carrier that issued them.

The formats are data (`rules/matching.yaml`, `carriers`); the check-digit
algorithms are code, named there by `check`. A number is believed when its
format matches and its check digit (where the carrier defines one) is right, or,
for formats without a check digit, when the mail names the carrier.

People write numbers in groups ("1Z 999 AA1 01 2345 6784", "00 3707 ..."), so
runs of short upper-case/digit groups separated by single spaces are joined and
tried as one number. Phone numbers, dates, the RMA number and registration codes
are never taken (none of our formats is 8 digits, and phone/date-looking digit
runs are filtered by context).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from stdnum import ean

from mailbot.ruleset.matching_rules import CarrierPattern, MatchingRules


@dataclass(frozen=True)
class TrackingNumber:
    number: str
    """Normalised: no spaces, upper case."""
    carrier: str
    """Display name, e.g. 'UPS', 'Posten/Bring'."""
    carrier_id: str
    """The rule id in matching.yaml, e.g. 'ups', 'sscc'."""
    check: str
    """The check algorithm that verified it ('none' when the format has none)."""
    near_keyword: bool
    """A tracking word ('sporingsnummer', 'tracking' ...) stood just before it."""
    evidence: str
    """The text as written."""


# --- check-digit algorithms ---------------------------------------------------


def _ups_ok(n: str) -> bool:
    # 1Z + 15 chars + check. Letters map to (ord - 63) % 10 (A=2 ... Z=7);
    # odd positions count once, even positions twice.
    body, check = n[2:17], n[17]
    total = 0
    for i, ch in enumerate(body):
        v = int(ch) if ch.isdigit() else (ord(ch) - 63) % 10
        total += v * (2 if i % 2 else 1)
    return (10 - total % 10) % 10 == int(check) if check.isdigit() else False


def s10_check_digit(eight_digits: str) -> int:
    """UPU S10 check digit over the 8-digit serial."""
    total = sum(int(d) * w for d, w in zip(eight_digits, (8, 6, 4, 2, 3, 5, 9, 7), strict=True))
    c = 11 - total % 11
    return 0 if c == 10 else 5 if c == 11 else c


def _s10_ok(n: str) -> bool:
    digits = n[2:11]
    return len(digits) == 9 and digits.isdigit() and s10_check_digit(digits[:8]) == int(digits[8])


def _gs1_ok(n: str) -> bool:
    return n.isdigit() and ean.calc_check_digit(n[:-1]) == n[-1]


def _mod7_ok(n: str) -> bool:
    return n.isdigit() and len(n) == 10 and int(n[:9]) % 7 == int(n[9])


def fedex12_check_digit(eleven: str) -> int:
    total = sum(int(d) * (1, 3, 7)[i % 3] for i, d in enumerate(reversed(eleven)))
    return total % 11 % 10


def _fedex_ok(n: str) -> bool:
    if not n.isdigit():
        return False
    if len(n) == 12:
        return fedex12_check_digit(n[:11]) == int(n[11])
    if len(n) == 15:
        return _gs1_ok(n)
    if len(n) == 20:
        return _gs1_ok(n)
    if len(n) == 22:
        return _gs1_ok(n[7:])
    return False


def _none_ok(n: str) -> bool:
    return True


_CHECKS = {
    "ups": _ups_ok,
    "s10": _s10_ok,
    "gs1": _gs1_ok,
    "mod7": _mod7_ok,
    "fedex": _fedex_ok,
    "none": _none_ok,
}


def check_ok(algorithm: str, number: str) -> bool:
    """Whether `number` passes the named check ('damm' is for RMA numbers, not here)."""
    fn = _CHECKS.get(algorithm)
    return fn(number) if fn is not None else False


# --- finding candidates ---------------------------------------------------------

# A group: letters/digits. Groups may be joined by one space / nbsp / hyphen.
_GROUP = re.compile(r"[A-Za-z0-9]+")
_MAX_LEN = 34
MAX_TEXT = 50_000
"""Only the start of a body is searched (a pasted log must not cost seconds)."""
_MAX_GROUPS = 7


@lru_cache(maxsize=16)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


@lru_cache(maxsize=16)
def _keyword_re(words: tuple[str, ...]) -> re.Pattern[str]:
    alt = "|".join(sorted((re.escape(w) for w in words), key=len, reverse=True))
    return re.compile(r"(?:" + alt + r")", re.IGNORECASE)


_DATE_LIKE = re.compile(r"\d{1,4}[./-]\d{1,2}[./-]\d{1,4}")
_INTL = re.compile(r"(?:\+|\b00)\d{1,3}[\s\u00a0()./-]*$")


def _joinable(g: str) -> bool:
    # inner groups of a written-out number: digits, or short upper-case/digit chunks
    return g.isdigit() or (len(g) <= 6 and g == g.upper())


def _candidates(text: str) -> list[tuple[int, int, str]]:
    """(start, end, compact) for every run of 1..7 joinable groups, longest first."""
    groups = [(m.start(), m.end(), m.group()) for m in _GROUP.finditer(text)]
    out: list[tuple[int, int, str]] = []
    for i, (s, e, g) in enumerate(groups):
        compact = g.upper()
        out.append((s, e, compact))
        if not _joinable(g) and not g.upper().startswith("1Z"):
            continue
        end = e
        for j in range(i + 1, min(i + _MAX_GROUPS, len(groups))):
            s2, e2, g2 = groups[j]
            gap = text[end:s2]
            # spaces only: hyphenated runs are phone numbers, UUIDs, IBAN-like ids
            if gap not in (" ", "\u00a0") or not _joinable(g2):
                break
            compact += g2.upper()
            end = e2
            if len(compact) > _MAX_LEN:
                break
            out.append((s, end, compact))
    return out


def _degenerate(compact: str) -> bool:
    """'000000000000', '222222222000': placeholders and test data, never a parcel."""
    digits = [ch for ch in compact if ch.isdigit()]
    return max(digits.count(d) for d in set(digits)) * 10 > len(digits) * 6


def _identify(
    compact: str, rules: MatchingRules, named: set[str], near: bool
) -> tuple[CarrierPattern, bool] | None:
    """The carrier for a compact number: the first matching pattern whose check
    passes, unless a later one is named in the mail. Returns (pattern, named)."""
    fits: list[CarrierPattern] = []
    for c in rules.carriers:
        if not _compiled(c.pattern).fullmatch(compact):
            continue
        if not check_ok(c.check, compact):
            continue
        is_named = any(n in named for n in c.names)
        if c.require_name and not is_named:
            continue
        if c.needs_context and not (is_named or near):
            continue
        fits.append(c)
    if not fits:
        return None
    for c in fits:
        if any(n in named for n in c.names):
            return c, True
    return fits[0], False


def _phone_context(text: str, start: int, rules: MatchingRules) -> bool:
    line_start = text.rfind("\n", 0, start) + 1
    before = text[max(line_start, start - 30) : start]
    if before.endswith("+") or _INTL.search(before):
        return True
    if not rules.phone_words:
        return False
    return bool(_phone_re(rules.phone_words).search(before))


@lru_cache(maxsize=16)
def _phone_re(words: tuple[str, ...]) -> re.Pattern[str]:
    alt = "|".join(re.escape(w) for w in words)
    return re.compile(r"\b(?:" + alt + r")[\w.]*\s*(?:nr\.?|no\.?)?\s*[:.]?\s*$", re.IGNORECASE)


def find_tracking_numbers(
    text: str, rules: MatchingRules, *, exclude: tuple[str, ...] = ()
) -> tuple[TrackingNumber, ...]:
    """Every tracking number in `text`, best first: near a tracking word, then
    verified by a check digit, then carrier named, then earliest. `exclude`
    holds numbers never to return (the RMA number, registration codes)."""
    text = text[:MAX_TEXT]
    lowered = text.lower()
    named = {
        n for c in rules.carriers for n in c.names if re.search(rf"\b{re.escape(n)}\b", lowered)
    }
    kw_re = _keyword_re(rules.all_tracking_keywords())
    excluded = {e.upper() for e in exclude}
    taken = bytearray(len(text))
    seen: set[str] = set()
    scored: list[tuple[tuple[int, int, int, int], TrackingNumber]] = []
    # longest spans first so "1Z 999 AA1 ..." is taken whole, not in pieces
    for s, e, compact in sorted(_candidates(text), key=lambda t: (-(t[1] - t[0]), t[0])):
        # every format has at least 5 digits; this keeps words ("PAKKESHOP") out
        if len(compact) < 10 or compact in excluded or sum(ch.isdigit() for ch in compact) < 5:
            continue
        if compact in seen or _degenerate(compact):
            continue
        if any(taken[s:e]):
            continue
        raw = text[s:e]
        if _DATE_LIKE.fullmatch(raw) or _phone_context(text, s, rules):
            continue
        line_start = text.rfind("\n", 0, s) + 1
        prev_line_start = text.rfind("\n", 0, max(0, line_start - 1)) + 1
        near = bool(kw_re.search(text[max(prev_line_start, s - 80) : s]))
        found = _identify(compact, rules, named, near)
        if found is None:
            continue
        carrier, is_named = found
        taken[s:e] = b"\x01" * (e - s)
        seen.add(compact)
        tn = TrackingNumber(
            number=compact,
            carrier=carrier.carrier,
            carrier_id=carrier.id,
            check=carrier.check,
            near_keyword=near,
            evidence=raw,
        )
        key = (0 if near else 1, 0 if carrier.check != "none" else 1, 0 if is_named else 1, s)
        scored.append((key, tn))
    scored.sort(key=lambda kv: kv[0])
    return tuple(tn for _key, tn in scored)


def find_tracking_number(
    text: str, rules: MatchingRules, *, exclude: tuple[str, ...] = ()
) -> TrackingNumber | None:
    """The most plausible tracking number in `text`, or None."""
    found = find_tracking_numbers(text, rules, exclude=exclude)
    return found[0] if found else None
