"""The drop-off date and time of a return parcel, as people write it (nb, sv, en).

"levert på posten 14.03.2023 kl. 15:30", "i går kl 14", "idag 10.15",
"lämnade paketet 2023-03-14 kl 9", "dropped off yesterday at 3pm",
"14 mars kl 12", "on March 14 at 15:30".

Own patterns first, because they are predictable and dateparser misreads several
of these ("i går kl 14" -> 12:00, "14 mars kl 12" -> year 2012, "igår" unknown);
dateparser is the fallback for the English phrasings we did not foresee, only on
sentences that contain a drop-off word. Relative words are resolved against
`now`; a date more than one day after `now` or impossible in the calendar is
rejected. Year-less dates take the latest year that is not in the future.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Any

MAX_TEXT = 20_000
"""Only the start of a body is read: a drop-off note is short, and a pasted
log or newsletter must not cost seconds."""


def _numbered(groups: tuple[str, ...], start: int = 0) -> dict[str, int]:
    """Each word of each space-separated group -> the group's number (from `start`)."""
    return {word: num for num, names in enumerate(groups, start=start) for word in names.split()}


_MONTHS = _numbered(
    (
        "januar januari january jan",
        "februar februari february feb",
        "mars march mar",
        "april apr",
        "mai maj may",
        "juni june jun",
        "juli july jul",
        "august augusti aug",
        "september sept sep",
        "oktober october okt oct",
        "november nov",
        "desember december des dec",
    ),
    start=1,
)

_MONTH_ALT = "|".join(sorted(_MONTHS, key=len, reverse=True))

# relative day words -> days before `now`
_RELATIVE: tuple[tuple[str, int], ...] = (
    (r"i\s*forgårs|i\s*förrgår|iforgårs|iförrgår|day\s+before\s+yesterday", 2),
    (r"i\s*går|igår|i\s*gar|igar|yesterday|i\s*går\s*kveld|igårkväll", 1),
    (
        r"i\s*dag|idag|today|i\s*morges|i\s*morse|i\s*formiddag|i\s*ettermiddag"
        r"|i\s*eftermiddag|i\s*kveld|i\s*kväll|ikväll|this\s+morning|this\s+afternoon|tonight",
        0,
    ),
)

_WEEKDAYS = _numbered(
    (
        "mandag måndag monday",
        "tirsdag tisdag tuesday",
        "onsdag wednesday",
        "torsdag thursday",
        "fredag friday",
        "lørdag lördag saturday",
        "søndag söndag sunday",
    )
)
_WEEKDAY_ALT = "|".join(_WEEKDAYS)

_B = r"(?<![\w])"  # word start that also works before digits
_E = r"(?![\w])"

_NUMBER_WORDS = {"en": 1, "ett": 1, "one": 1, "a": 1, "to": 2, "två": 2, "two": 2, "tre": 3}
_NUMBER_WORDS |= {"three": 3, "fire": 4, "fyra": 4, "four": 4}
# "2 dager siden", "två dagar sedan", "two days ago"
_AGO = re.compile(
    _B + r"(?P<n>\d{1,2}|" + "|".join(_NUMBER_WORDS) + r")\s+(?:dager|dagar|dag|days?|døgn|dygn)"
    r"\s+(?:siden|sedan|ago)" + _E,
    re.IGNORECASE,
)

_DATE_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("iso", re.compile(_B + r"(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})" + _E)),
    (
        "dmy",
        re.compile(_B + r"(?P<d>\d{1,2})[./](?P<m>\d{1,2})[./](?P<y>\d{4}|\d{2})" + _E),
    ),
    (
        "d_month",
        re.compile(
            _B + r"(?P<d>\d{1,2})(?:\.|st|nd|rd|th)?\s*(?:of\s+)?(?P<mon>" + _MONTH_ALT + r")\.?"
            r"(?:,?\s+(?P<y>\d{4}))?" + _E,
            re.IGNORECASE,
        ),
    ),
    (
        "month_d",
        re.compile(
            _B + r"(?P<mon>" + _MONTH_ALT + r")\.?\s+(?P<d>\d{1,2})(?:st|nd|rd|th)?"
            r"(?:,?\s+(?P<y>\d{4}))?" + _E,
            re.IGNORECASE,
        ),
    ),
    # day.month without year: "14.03 kl 15", "den 14.3." (decided against times below)
    ("dm", re.compile(_B + r"(?P<d>\d{1,2})[./](?P<m>\d{1,2})\.?" + _E + r"(?![./]\d)")),
    ("ago", _AGO),
    (
        "relative",
        re.compile(
            _B + r"(?P<rel>" + "|".join(f"(?:{p})" for p, _ in _RELATIVE) + r")" + _E,
            re.IGNORECASE,
        ),
    ),
    (
        "weekday",
        re.compile(
            _B + r"(?:i\s+|på\s+|on\s+|last\s+|sist\s+)?(?P<wd>" + _WEEKDAY_ALT + r")s?" + _E,
            re.IGNORECASE,
        ),
    ),
)

# Times with an explicit marker (kl, klokken, klockan, at, HH:MM, am/pm).
_TIME_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(
        r"(?:\bkl\.?|\bklokka|\bklokken|\bklockan|\bklo\.?|\baround|\bca\.?|\bat|@)\s*"
        r"(?P<h>\d{1,2})(?:[:.](?P<mi>\d{2}))?\s*(?P<ap>a\.?m\.?|p\.?m\.?)?(?![\d])",
        re.IGNORECASE,
    ),
    re.compile(_B + r"(?P<h>\d{1,2}):(?P<mi>\d{2})(?![\d])"),
    re.compile(_B + r"(?P<h>\d{1,2})(?:[:.](?P<mi>\d{2}))?\s*(?P<ap>a\.?m\.?|p\.?m\.?)" + _E, re.I),
)
# "idag 10.15": a bare H.MM right after a relative word or weekday is a time
_BARE_TIME = re.compile(r"^\s*,?\s*(?:ca\.?\s*)?(?P<h>\d{1,2})\.(?P<mi>\d{2})(?![\d.])")


@dataclass(frozen=True)
class DropOff:
    when: datetime
    """Same tzinfo as `now`. Midnight when only the date was written."""
    time_known: bool
    evidence: str
    """The text the date (and time) came from."""
    source: str
    """'pattern' or 'dateparser'."""


@dataclass(frozen=True)
class _DateHit:
    start: int
    end: int
    day: date
    kind: str


def _year_for(month: int, day: int, now: datetime) -> int | None:
    for year in (now.year, now.year - 1):
        try:
            d = date(year, month, day)
        except ValueError:
            continue
        if d <= (now + timedelta(days=1)).date():
            return year
    return None


def _make_date(kind: str, m: re.Match[str], now: datetime) -> date | None:
    g = m.groupdict()
    if kind == "relative":
        rel = g["rel"].lower()
        for pattern, days in _RELATIVE:
            if re.fullmatch(pattern, rel, re.IGNORECASE):
                return (now - timedelta(days=days)).date()
        return None
    if kind == "ago":
        n = g["n"].lower()
        back = int(n) if n.isdigit() else _NUMBER_WORDS[n]
        return (now - timedelta(days=back)).date()
    if kind == "weekday":
        wd = _WEEKDAYS[g["wd"].lower()]
        back = (now.weekday() - wd) % 7
        return (now - timedelta(days=back)).date()
    month = _MONTHS[g["mon"].lower().rstrip(".")] if g.get("mon") else int(g["m"])
    day = int(g["d"])
    if g.get("y"):
        year = int(g["y"])
        if year < 100:
            year += 2000
    else:
        maybe = _year_for(month, day, now)
        if maybe is None:
            return None
        year = maybe
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _dates(text: str, now: datetime) -> list[_DateHit]:
    hits: list[_DateHit] = []
    covered = bytearray(len(text))
    for kind, rx in _DATE_PATTERNS:
        for m in rx.finditer(text):
            if any(covered[m.start() : m.end()]):
                continue  # a more specific pattern already took this text
            if kind == "dm":
                # "10.15" after a day word or a "kl" is a time, not 10 March
                before = text[max(0, m.start() - 12) : m.start()].lower()
                if re.search(r"(kl\.?|klokk\w*|klockan|at|om)\s*$", before):
                    continue
                # "idag 10.15", "14.03.2023 15.30": H.MM right after a date is a time
                if any(0 <= m.start() - h.end <= 3 for h in hits):
                    continue
            d = _make_date(kind, m, now)
            if d is not None:
                hits.append(_DateHit(m.start(), m.end(), d, kind))
                covered[m.start() : m.end()] = b"\x01" * (m.end() - m.start())
    return sorted(hits, key=lambda h: h.start)


def _hm(h: str, mi: str | None, ap: str | None) -> time | None:
    hour, minute = int(h), int(mi) if mi else 0
    if ap:
        a = ap.lower().replace(".", "")
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if a == "pm" else 0)
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        return None
    return time(hour, minute)


def _time_near(text: str, hit: _DateHit, taken: list[tuple[int, int]]) -> tuple[time, int] | None:
    """A time written just after the date (or just before it), with its end offset."""
    after = text[hit.end : hit.end + 40]
    bare = _BARE_TIME.match(after)
    if bare:
        t = _hm(bare["h"], bare["mi"], None)
        if t is not None:
            return t, hit.end + bare.end()
    best: tuple[int, time, int] | None = None
    for rx in _TIME_PATTERNS:
        for m in rx.finditer(text, max(0, hit.start - 30), min(len(text), hit.end + 40)):
            if any(m.start("h") < e and s < m.end("h") for s, e in taken):
                continue  # the digits belong to a date
            between = (
                text[hit.end : m.start()] if m.start() >= hit.end else text[m.end() : hit.start]
            )
            if "\n\n" in between or re.search(r"[.!?]\s+[A-ZÆØÅÄÖ]", between):
                continue  # another sentence
            t = _hm(m["h"], m.groupdict().get("mi"), m.groupdict().get("ap"))
            if t is None:
                continue
            dist = m.start() - hit.end if m.start() >= hit.end else hit.start - m.end() + 10
            if best is None or dist < best[0]:
                best = (dist, t, m.end())
    return (best[1], best[2]) if best else None


@lru_cache(maxsize=16)
def _keywords_re(keywords: tuple[str, ...]) -> re.Pattern[str]:
    alt = "|".join(sorted((re.escape(k) for k in keywords), key=len, reverse=True))
    return re.compile(alt, re.IGNORECASE)


def _keyword_distance(positions: list[int], pos: int) -> int:
    """Distance from `pos` to the nearest keyword start (positions sorted)."""
    i = bisect_left(positions, pos)
    near = [abs(positions[j] - pos) for j in (i - 1, i) if 0 <= j < len(positions)]
    return min(near, default=10_000)


def _at(d: date, t: time | None, now: datetime) -> datetime:
    return datetime.combine(d, t or time(0, 0), tzinfo=now.tzinfo)


def parse_dropoff(
    text: str, now: datetime, keywords: tuple[str, ...] = (), *, use_dateparser: bool = True
) -> DropOff | None:
    """The drop-off moment written in `text`, or None.

    Among several dates the one closest to a drop-off word (`keywords`, e.g.
    from `MatchingRules.all_dropoff_keywords()`) wins, then the first.
    """
    text = text[:MAX_TEXT]
    limit = now + timedelta(days=1)
    hits = _dates(text, now)
    kw_positions = [m.start() for m in _keywords_re(keywords).finditer(text)] if keywords else []
    taken = [(h.start, h.end) for h in hits]
    options: list[tuple[tuple[int, int, int], DropOff]] = []
    for h in hits:
        near = _time_near(text, h, taken)
        when = _at(h.day, near[0] if near else None, now)
        if when > limit:
            continue
        end = near[1] if near else h.end
        key = (
            _keyword_distance(kw_positions, h.start) if keywords else 0,
            0 if near else 1,
            h.start,
        )
        options.append(
            (
                key,
                DropOff(
                    when=when,
                    time_known=near is not None,
                    evidence=text[h.start : end].strip(),
                    source="pattern",
                ),
            )
        )
    if options:
        options.sort(key=lambda kv: kv[0])
        return options[0][1]
    if use_dateparser and keywords:
        return _dateparser_fallback(text, now, keywords)
    return None


def _dateparser_fallback(text: str, now: datetime, keywords: tuple[str, ...]) -> DropOff | None:
    from dateparser.search import search_dates

    base = now.replace(tzinfo=None)
    settings: Any = {
        "RELATIVE_BASE": base,
        "PREFER_DATES_FROM": "past",
        "RETURN_AS_TIMEZONE_AWARE": False,
        "STRICT_PARSING": False,
    }
    for sentence in re.split(r"(?<=[.!?])\s+|\n+", text):
        low = sentence.lower()
        if not any(k in low for k in keywords):
            continue
        try:
            found = search_dates(sentence, languages=["nb", "sv", "en"], settings=settings)
        except Exception:  # dateparser raises assorted errors on odd input
            continue
        for phrase, value in found or ():
            # a bare number ("2023", "14") or a bare word ("on", "sent") is not a date
            if re.fullmatch(r"\W*\d+\W*", phrase):
                continue
            if not re.search(r"\d", phrase) and not re.search(
                _MONTH_ALT + "|" + _WEEKDAY_ALT, phrase, re.IGNORECASE
            ):
                continue
            when = value.replace(tzinfo=now.tzinfo)
            if when > now + timedelta(days=1):
                continue
            has_time = bool(
                re.search(r"\d[:.]\d{2}|\d\s*[ap]\.?m|kl|hour|minute|timer|timmar", phrase, re.I)
            )
            return DropOff(when=when, time_known=has_time, evidence=phrase, source="dateparser")
    return None
