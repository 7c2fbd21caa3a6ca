"""The purchase date on a receipt or invoice.

Every date on the page is a candidate: numeric (31.12.2022, 31/12/22, 22-12-31,
2022-12-31, 2022. 01.18 as OCR spaces it) and with month names from
`rules/receipts/dates.yaml` (2. desember 2022, 19 april 2014, August 3, 2014,
25-Dec-18). The words before a date on its line, or on the line above when the
date stands alone, decide what it is: due dates, open-purchase / return-by,
warranty, delivery, print and billing-period dates are rejected; an order date
is the purchase date only where no other date is left (a web-shop screenshot);
"Dato",
"Kjøpsdato", "Invoice date" and a time of day make a purchase date likelier.

Hand-written rather than dateparser.search: that finds "dates" in prices and
receipt numbers, cannot say which words stood before a date, and costs ~100 ms
per call; the forms on receipts are few and listed here.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from rapidfuzz import fuzz

from mailbot.core.receipt_fields import FieldValue
from mailbot.ruleset.receipts import ReceiptRules
from parsers.receipt.date_labels import (
    column_labels,
    like_a_deadline,
    like_a_purchase_label,
    purchase_label,
)
from parsers.receipt.ocrtext import TextLine, fold

__all__ = ["date_candidates", "find_purchase_date"]

# Both separators must be the same character: "1. 11-2022" is OCR damage, not a date.
_YMD = re.compile(
    r"(?<![\w.])(?P<y>\d{4})\s?(?P<sep>[-./])\s?(?P<m>\d{1,2})\s?(?P=sep)\s?(?P<d>\d{1,2})(?!\d)"
)
_DMY = re.compile(
    r"(?<![\w.,])(?P<d>\d{1,2})\s?(?P<sep>[-./])\s?(?P<m>\d{1,2})\s?(?P=sep)\s?"
    r"(?P<y>\d{4}|\d{2})(?![\d,%]|\.\d)"
)
# "18.01 2022": OCR lost the second dot; only with a four-digit year.
_DM_Y = re.compile(r"(?<![\d.,])(\d{1,2})\.\s?(\d{1,2})\s(20\d{2})(?!\d)")
_COMPACT = re.compile(r"(?<!\d)(20\d{2})(\d{2})(\d{2})(?!\d)")
# Characters that are OCR debris on a receipt line, not print.
_JUNK = re.compile(r"[¥©®§¢¤{}<>»«]")
CONTRADICTED = 0.5
"""At most this sure of a purchase date later than a deadline on the same page."""
MISREAD_YEARS = 10
"""A year this far after the purchase is an OCR slip (2018 read as 2078), not a deadline."""
SAME_LINE_RATIO = 60
"""rapidfuzz ratio above which two OCR lines are readings of one printed line."""
_BROKEN_DATE = re.compile(r"\d\s?[./-]\s?\d")
_TIME = re.compile(r"(?<!\d)\d{1,2}[:.]\d{2}(?![\d.,])")
# A "date" right after a currency sign is an amount ("$9.03 2018" is OCR of a
# price or of a stamp over the date line, never a date as printed).
_MONEY_BEFORE = re.compile(r"(?:[$€£¥]|\b(?:RM|kr|EUR|USD|SEK|NOK|DKK))\s?$", re.IGNORECASE)


@dataclass(frozen=True)
class DateCandidate:
    value: dt.date
    line: TextLine
    score: float
    rule: str
    rejected: str | None = None
    deadline: bool = False
    """Labelled as a date that never comes before the purchase (due, return-by,
    warranty, print: `after_purchase`)."""


_PATTERNS: dict[str, tuple[re.Pattern[str], re.Pattern[str]]] = {}


def _month_patterns(rules: ReceiptRules) -> tuple[re.Pattern[str], re.Pattern[str]]:
    cached = _PATTERNS.get(rules.version)
    if cached is not None:
        return cached
    names = "|".join(re.escape(name) for name, _ in rules.months)
    dmy = re.compile(
        rf"(?<!\d)(\d{{1,2}})\.?[\s\-/,]*({names})\.?(?![a-zäöå])[\s\-/.,]*(\d{{4}}|\d{{2}})(?!\d)",
        re.IGNORECASE,
    )
    mdy = re.compile(
        rf"(?<![a-zäöå])({names})\.?\s*(\d{{1,2}})(?:st|nd|rd|th)?\s*,?\s*(\d{{4}})(?!\d)",
        re.IGNORECASE,
    )
    _PATTERNS[rules.version] = (dmy, mdy)
    return dmy, mdy


def _year(text: str) -> int:
    y = int(text)
    return y + 2000 if len(text) == 2 else y


def _date(y: int, m: int, d: int) -> dt.date | None:
    if not 1990 <= y <= 2100:
        return None
    try:
        return dt.date(y, m, d)
    except ValueError:
        return None


def _raw_dates(
    text: str, rules: ReceiptRules, ref_year: int | None, year_first: bool
) -> list[tuple[int, int, dt.date, str]]:
    """(start, end, date, rule) for every date form on one line."""
    out: list[tuple[int, int, dt.date, str]] = []
    months = dict(rules.months)
    dmy_name, mdy_name = _month_patterns(rules)
    taken: list[tuple[int, int]] = []

    def add(m: re.Match[str], value: dt.date | None, rule: str) -> None:
        if value is None or any(s < m.end() and m.start() < e for s, e in taken):
            return
        if _MONEY_BEFORE.search(text[: m.start()]):
            return
        taken.append((m.start(), m.end()))
        out.append((m.start(), m.end(), value, rule))

    for m in dmy_name.finditer(text):
        add(
            m,
            _date(_year(m.group(3)), months[m.group(2).casefold()], int(m.group(1))),
            "date:d-month-y",
        )
    for m in mdy_name.finditer(text):
        add(
            m,
            _date(int(m.group(3)), months[m.group(1).casefold()], int(m.group(2))),
            "date:month-d-y",
        )
    for m in _YMD.finditer(text):
        add(m, _date(int(m["y"]), int(m["m"]), int(m["d"])), "date:iso")
    for m in _DMY.finditer(text):
        a, b, c = int(m["d"]), int(m["m"]), m["y"]
        dmy = _date(_year(c), b, a)
        if len(c) == 2:
            # yy-mm-dd (Swedish) and dd-mm-yy look alike: take the reading whose
            # year fits the other years on the page (or today), else day first.
            ymd = _date(2000 + a, b, int(c)) if "-" in m.group(0) else None
            closer = _closer(ymd.year, dmy.year, ref_year) if ymd and dmy else None
            prefer_ymd = year_first if closer is None else closer
            if ymd is not None and (dmy is None or prefer_ymd):
                add(m, ymd, "date:yy-mm-dd")
                continue
        if dmy is None and a <= 12:
            add(m, _date(_year(c), a, b), "date:m/d/y")  # US order when day-first is impossible
            continue
        add(m, dmy, "date:d-m-y")
    for m in _DM_Y.finditer(text):
        add(m, _date(int(m.group(3)), int(m.group(2)), int(m.group(1))), "date:d.m y")
    for m in _COMPACT.finditer(text):
        add(m, _date(int(m.group(1)), int(m.group(2)), int(m.group(3))), "date:yyyymmdd")
    return sorted(out, key=lambda t: t[0])


def _closer(a: int, b: int, ref: int | None) -> bool | None:
    if ref is None or abs(a - ref) == abs(b - ref):
        return None
    return abs(a - ref) < abs(b - ref)


def _four_digit_years(lines: Sequence[TextLine]) -> int | None:
    # Four-digit years, also inside compact dates (20230201).
    years = [
        int(y)
        for line in lines
        for y in re.findall(r"(?<!\d)(20\d\d)(?=\d{4}(?!\d)|(?!\d))", line.text)
    ]
    years = [y for y in years if 1990 <= y <= 2100]
    return sorted(years)[len(years) // 2] if years else None


def date_candidates(
    lines: Sequence[TextLine], rules: ReceiptRules, now: dt.date | None = None
) -> list[DateCandidate]:
    """Every date on the page, scored as a purchase date, rejected ones marked why."""
    # Only years printed on the page settle yy-mm-dd vs dd-mm-yy: today does not
    # (a 2018 receipt read in 2026 would turn 24-01-18 into 2024).
    ref = _four_digit_years(lines)
    year_first = any(p.search(ln.text) for p in rules.year_first_words for ln in lines)
    out: list[DateCandidate] = []
    prev_context = ""
    warned = {ln.index for ln in lines if any(p.search(ln.text) for p in rules.not_purchase)}
    # A page that is mostly OCR debris (a blurred or tiny-print photo) makes
    # every date on it less certain: digits there are often misread too.
    debris = sum(_noisy(ln.text, 2) for ln in lines) > 0.6 * max(len(lines), 1)
    for line in lines:
        raw = _raw_dates(line.text, rules, ref, year_first)
        columns = column_labels(prev_context, rules) if len(raw) >= 2 else []
        if len(columns) != len(raw):
            columns = []
        last_end = 0
        for number, (start, end, value, rule) in enumerate(raw):
            if columns:
                out.append(_from_column(columns[number], value, line, rule, now))
                continue
            before = line.text[last_end:start]
            after = line.text[end : end + 20]
            context = before
            if last_end == 0 and not re.search(r"\w{3}", before):
                context = prev_context + " " + before  # a date alone under its label
            last_end = end
            reason = _rejected(context, value, rules, now)
            ordered = reason is None and _order_label(context, rules)
            if ordered:
                reason = ORDER_DATE
            # "Fortaldsdato": a deadline word one OCR slip away from the list is
            # no purchase label, and the date under it is less sure.
            near_deadline = reason is None and like_a_deadline(context, rules)
            score = 0.45 if near_deadline else 0.6
            clock = _TIME.search(after) or _TIME.search(before[-8:])
            if clock and _real_time(clock.group(0)):
                score += 0.1
            elif clock:
                score -= 0.2  # "20:81": the line was misread, its date digits may be too
            label = None if near_deadline else purchase_label(context, rules)
            if ordered:
                label = "purchase"  # as labelled as a purchase date, where it is one
            score += {"strong": 0.3, "purchase": 0.2, None: 0.0}[label]
            # A deadline word on the line above or below, in OCR that may have split
            # "Forfalls|dato" over two lines, or a line that is mostly OCR noise:
            # less sure.
            # (Only below: a deadline word above is the context rule's business.)
            if line.index + 1 in warned:
                score -= 0.15
            if _noisy(line.text) or _JUNK.search(line.text):
                score -= 0.1
            if debris:
                score -= 0.1
            if rule in ("date:yyyymmdd", "date:m/d/y"):
                score -= 0.1  # forms that also fit numbers that are not dates
            if reason is None and _unknown_label(before, rules):
                # "Fovtdvdate:", "Udekrovet": a label no rule reads is some other
                # date, often a deadline or print time OCR misread.
                score -= 0.15
            deadline = reason is not None and any(p.search(context) for p in rules.after_purchase)
            out.append(DateCandidate(value, line, round(score, 3), rule, reason, deadline))
        # A line is the label of the date below it only when it holds no date of
        # its own, not even one OCR broke ("Ordredato: 9.12023").
        prev_context = "" if raw or _BROKEN_DATE.search(line.text) else line.text
    return out


def _from_column(
    kind: str, value: dt.date, line: TextLine, rule: str, now: dt.date | None
) -> DateCandidate:
    """A date under a table header takes the meaning of its column."""
    if kind == "not":
        return DateCandidate(value, line, 0.6, rule + ":column", "column label")
    if now is not None and value > now:
        return DateCandidate(value, line, 0.6, rule + ":column", "after today")
    if kind == "order":
        return DateCandidate(value, line, 0.75, rule + ":column", ORDER_DATE)
    return DateCandidate(value, line, 0.85 if kind == "strong" else 0.75, rule + ":column")


def _one_part_differs(a: dt.date, b: dt.date) -> bool:
    return sum((a.year != b.year, a.month != b.month, a.day != b.day)) == 1


def _misread_elsewhere(best: DateCandidate, future: Sequence[DateCandidate]) -> bool:
    """Another OCR pass read the same printed line with an impossible year and a
    different day or month ("10/03/2078" beside "10/02/2018"): that pass misread
    digits of this date, so which day and month are right is not known."""
    for other in future:
        if (other.value.month, other.value.day) == (best.value.month, best.value.day):
            continue
        # A return-by or warranty date may lie in the future too, a few years
        # at most; a year decades ahead is a misread digit.
        if other.value.year - best.value.year < MISREAD_YEARS:
            continue
        if fuzz.ratio(other.line.text, best.line.text) >= SAME_LINE_RATIO:
            return True
    return False


def _real_time(text: str) -> bool:
    hours, minutes = (int(x) for x in re.split(r"[:.]", text))
    return hours <= 23 and minutes <= 59


def _noisy(text: str, min_words: int = 4) -> bool:
    """Mostly one- and two-letter fragments: what OCR makes of a blurred area."""
    words = re.findall(r"[^\W\d_]+", text)
    return len(words) >= min_words and sum(len(w) <= 2 for w in words) * 2 >= len(words)


_LABEL_WORD = re.compile(r"(\S*[^\W\d_]{2}\S*?)[\s:.]*$")
_DATE_WORDS = ("dato", "datum", "date", "paiva", "pvm")


def _unknown_label(context: str, rules: ReceiptRules) -> bool:
    """Whether the word right before the date on its line is a label no purchase or
    order rule names, nor one OCR slipped on: a compound of a date word
    ("Fovtdvdate") or a longer word ("Udekrovet", "Tiauspdivaé"). Such a date may
    be any date (a deadline or a print time misread); the date word alone is a
    label, and short words ("Pv", "Frid") are often what OCR left of one."""
    m = _LABEL_WORD.search(context)
    if m is None:
        return False
    label = m.group(1)
    word = fold(label)
    if word in _DATE_WORDS:
        return False
    if not any(w in word for w in _DATE_WORDS) and len(re.sub(r"[\W\d_]", "", word)) < 6:
        return False
    return (
        purchase_label(label, rules) is None
        and not _order_label(label, rules)
        and not like_a_purchase_label(label, rules)
    )


ORDER_DATE = "order date"
"""Why a date is set aside while another is left: the day a web-shop order was placed."""


# A date's shape with a four-digit year, whatever the digits: "2023-01-92" is one.
_DATE_SHAPED = re.compile(
    r"(?<![\d.])(?:(?:19|20)\d\d([-./])\d{1,2}\1\d{1,3}|\d{1,2}([-./])\d{1,2}\2(?:19|20)\d\d)(?!\d)"
)


def _unreadable_date(lines: Sequence[TextLine], every: Sequence[DateCandidate]) -> bool:
    """Whether a line prints something shaped like a date that reads as none."""
    dated = {c.line.index for c in every}
    return any(ln.index not in dated and _DATE_SHAPED.search(ln.text) for ln in lines)


def _order_label(context: str, rules: ReceiptRules) -> bool:
    return any(p.search(context) for p in rules.order_date)


def _rejected(context: str, value: dt.date, rules: ReceiptRules, now: dt.date | None) -> str | None:
    if now is not None and value > now:
        return "after today"
    for p in rules.not_purchase:
        m = p.search(context)
        if m:
            return f"context {m.group(0)!r}"
    return None


def find_purchase_date(
    lines: Sequence[TextLine], rules: ReceiptRules, now: dt.date | None = None
) -> FieldValue | None:
    every = date_candidates(lines, rules, now)
    cands = [c for c in every if c.rejected is None]
    if not cands:
        # An order confirmation or a web-shop screenshot prints only the order
        # date, and the order is the purchase; beside an invoice or receipt date
        # it is not taken (an invoice prints both), nor beside a date OCR broke
        # ("20:15 2023-01-92"), which may be that receipt date.
        if _unreadable_date(lines, every):
            return None
        cands = [
            replace(c, rule=f"{c.rule}:order", rejected=None)
            for c in every
            if c.rejected == ORDER_DATE
        ]
    future = [c for c in every if c.rejected == "after today"]
    if not cands:
        return None
    best_by_value: dict[dt.date, DateCandidate] = {}
    seen: dict[dt.date, int] = {}
    for c in cands:
        seen[c.value] = seen.get(c.value, 0) + 1
        if c.value not in best_by_value or c.score > best_by_value[c.value].score:
            best_by_value[c.value] = c

    # Highest score; on a tie the earliest date (the purchase comes before any
    # deadline that escaped the context words).
    # A date printed (or read by two OCR passes) more than once is likelier read right.
    def support(c: DateCandidate) -> float:
        return c.score + (0.05 if seen[c.value] > 1 else 0.0)

    ranked = sorted(best_by_value.values(), key=lambda c: (-support(c), c.value))
    best = ranked[0]
    conf = support(best)
    if any(c.deadline and c.value < best.value for c in every):
        # A due, return-by or print date before the purchase: the page contradicts
        # itself, a digit was misread (20.12 for 20.11 beside a due date of 04.12).
        conf = min(conf, CONTRADICTED)
    if _misread_elsewhere(best, future):
        conf -= 0.4
    if len(ranked) > 1 and support(ranked[1]) >= conf - 0.05:
        conf -= 0.15  # another date is about as likely: less sure
        if _one_part_differs(best.value, ranked[1].value):
            # 20/03/2018 and 20/03/2016 at equal standing: two readings of one
            # printed date (OCR passes disagree); neither is safe.
            conf -= 0.2
    return FieldValue(
        value=best.value.isoformat(),
        confidence=round(min(conf, 0.99), 3),
        evidence=best.line.text,
        rule=best.rule,
    )
