"""The total paid, as a receipt prints it: the amount after a total label.

A total is read only from a line that carries a label (`total_labels`,
`total_due_labels` in rules/receipts/document.yaml: "Totalt", "Summa", "I alt",
"Yhteensä", "Kopā", "Å betale", "Att betala") with one amount after it, and none of
the words of a line that is never the total (`not_total_labels`: subtotal, VAT,
change, cash given, savings, rounding, item counts). A tax word inside a phrase
saying the tax is included ("Totalt inkl. mva", `total_including`) does not count
against the line.

The amount is normalised to a decimal string with two decimals ("1 299,00",
"1.299,00", "1,299.00", "1299.-" -> "1299.00"); a bare integer ("TOTAL 3") is a count
as often as a price and is an amount only with a currency beside it ("kr 1 299") or a
",-" after it, and never grouped by a point or comma ("EUR 5.417" may be a misread
"5,41"). The currency is reported as an ISO code when the total's line prints one (NOK,
SEK, EUR, "€", "RM"); "kr" names no single currency and gives none.

Which line wins: a label of the amount to pay outranks a plain total (after a
discount, the "Sum" above it is the price before). Within one block of text (a PDF
page, an OCR pass) the last labelled line wins: a total under a discount or a
rounding line comes after the amount it corrects. The blocks must agree: two OCR
passes or pages giving different totals give no total, as do two amounts on the
label's line.

How sure: OCR misreads digits without doubting them ("106 476,06" for "10 470,00"),
so a total is confident (CHECKED, above a campaign's bar) only when the page backs
it: the prices above it add up to it, or another line (the card payment, a single
item, another label) shows the same amount. A total nothing backs is shown
(ONE_READING, above the field threshold) but not relied on. A total is never
required; it tells two receipts of one shop, day and number apart
(`mailbot.core.fraud`), so a wrong one costs more than none.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from mailbot.core.receipt_fields import FieldValue
from mailbot.ruleset.receipts import ReceiptRules
from parsers.receipt.ocrtext import TextLine, word_key

__all__ = [
    "BACKED",
    "CHECKED",
    "LAST_OF_BLOCK",
    "ONE_READING",
    "UNSURE",
    "find_total",
    "parse_amount",
]

ONE_READING = 0.75
"""The labelled totals agree, and nothing else on the page shows the amount."""
LAST_OF_BLOCK = 0.7
"""Labelled totals of one block differ and the last is taken (a discount or rounding
between them)."""
BACKED = 0.15
"""Added when the prices above add up to the total or another line shows it."""
CHECKED = ONE_READING + BACKED
UNSURE = 0.4
"""Blocks (OCR passes, pages) give different totals: below any threshold."""
ITEMS_LOOKED_AT = 60
"""Lines above the total whose prices may add up to it (a long receipt's items)."""

# An amount: digits, optionally grouped by thousands, optionally with two decimals or
# ",-"; a sign just before it is kept to tell refunds apart. Not part of a longer number
# (a date, an EAN, a card number): no digit or separator-digit on either side; letters
# may touch it, as OCR prints "NOK3990,00" and "3 990,00kr", but then it is not grouped
# ("WF-1000XM4 249,00" is 249, not 4 249). OCR's space after the decimal point ("39. 80")
# is read past, and "26, 90" or "2. Oo" is never an integer.
_AMOUNT = re.compile(
    r"(?<![\d.,])(?P<sign>[-\u2212]\s?)?"
    r"(?P<int>(?<![^\W\d_])\d{1,3}(?:[ .,'\u00a0\u202f]\d{3})+|\d+)"
    r"(?:(?P<dec_sep>[.,]) ?(?P<dec>\d{2})|(?P<dash>[.,]-{1,2}))?"
    r"(?!\d|[.,] ?\w)"
    r"(?P<minus>-(?!\d))?"
)
_CURRENCY = re.compile(
    r"(?<![A-Za-z])(?P<code>NOK|SEK|DKK|EUR|ISK|GBP|CHF|PLN|USD|MYR|RM)(?![A-Za-z])|(?P<sign>[€£])"
)
_SIGNS = {"€": "EUR", "£": "GBP"}
_KR = re.compile(r"(?<![A-Za-z])kr\.?(?![A-Za-z])|,-", re.IGNORECASE)


@dataclass(frozen=True)
class _Candidate:
    line: TextLine
    cents: int
    currency: str | None
    due: bool


def parse_amount(text: str) -> tuple[int, bool] | None:
    """Cents of the one amount `text` is ("1 299,00" -> (129900, True)), and whether
    it showed decimals (or ",-"); None when it is not one amount."""
    m = _AMOUNT.fullmatch(text.strip())
    return None if m is None else _cents(m)


def _cents(m: re.Match[str]) -> tuple[int, bool] | None:
    whole = m.group("int")
    groups = set(re.findall(r"\D", whole))
    if len(groups) > 1:  # "1.299 000": not one way of grouping thousands
        return None
    if groups and m.group("dec_sep") in groups:  # "1.299.00"
        return None
    units = int(re.sub(r"\D", "", whole))
    cents = int(m.group("dec")) if m.group("dec") else 0
    return units * 100 + cents, bool(m.group("dec") or m.group("dash"))


def _currency(text: str) -> str | None:
    found = {
        _SIGNS[m.group("sign")] if m.group("sign") else m.group("code").upper().replace("RM", "MYR")
        for m in _CURRENCY.finditer(text)
    }
    return found.pop() if len(found) == 1 else None


def _label_end(text: str, labels: Sequence[re.Pattern[str]]) -> int | None:
    """Where the earliest label on the line ends; None without one."""
    hits = [m for p in labels if (m := p.search(text))]
    if not hits:
        return None
    first = min(hits, key=lambda m: (m.start(), -m.end()))
    return first.end()


def _never_total(text: str, rules: ReceiptRules) -> bool:
    for phrase in rules.total_including:
        text = phrase.sub(" ", text)
    return any(p.search(text) for p in rules.not_total_labels)


def _candidate(line: TextLine, rules: ReceiptRules) -> _Candidate | None:
    text = line.text
    due_end = _label_end(text, rules.total_due_labels)
    plain_end = _label_end(text, rules.total_labels)
    ends = [e for e in (due_end, plain_end) if e is not None]
    if not ends or _never_total(text, rules):
        return None
    end = min(ends)
    label_start = min(
        m.start() for p in (*rules.total_due_labels, *rules.total_labels) if (m := p.search(text))
    )
    # A label after digits is part of an item or a table row ("3 x Sony ... total").
    if re.search(r"\d", text[:label_start]):
        return None
    rest = text[end:]
    values: set[int] = set()
    for m in _AMOUNT.finditer(rest):
        parsed = _cents(m)
        if parsed is None:
            return None
        cents, decimals = parsed
        if not decimals and (re.search(r"[.,']", m.group("int")) or not _near_currency(rest, m)):
            # A count ("Totalt 3 varer"), a number the line does not price, or
            # "EUR 5.417": thousands or a misread "5,41"?
            continue
        if m.group("sign") or m.group("minus") or cents == 0:
            return None  # a refund, a voucher, a zero line: no purchase total
        values.add(cents)
    if len(values) != 1:
        return None
    return _Candidate(line, values.pop(), _currency(text), due_end is not None)


def _near_currency(text: str, m: re.Match[str]) -> bool:
    """Whether a currency is printed right before or after the number ("kr 1299",
    "1299 NOK", "1299,-")."""
    before, after = text[max(0, m.start() - 5) : m.start()], text[m.end() : m.end() + 5]
    return any(p.search(part) for p in (_CURRENCY, _KR) for part in (before, after))


def find_total(lines: Sequence[TextLine], rules: ReceiptRules) -> FieldValue | None:
    """The receipt's total as a decimal string ("1299.00", currency when printed), or
    None when no labelled line gives one amount."""
    found = [c for line in lines if (c := _candidate(line, rules)) is not None]
    if not found:
        return None
    top = [c for c in found if c.due] or found
    blocks: dict[int, list[_Candidate]] = {}
    for c in top:
        blocks.setdefault(c.line.block, []).append(c)
    chosen = [cands[-1] for cands in blocks.values()]
    best = chosen[-1]
    if len({c.cents for c in chosen}) > 1:
        confidence, rule = UNSURE, "total:blocks-differ"
    elif all(len({c.cents for c in cands}) == 1 for cands in blocks.values()):
        confidence, rule = ONE_READING, "total:due" if top[0].due else "total:label"
    else:
        confidence, rule = LAST_OF_BLOCK, "total:last-in-block"
    if confidence > UNSURE:
        if _items_add_up(best, lines):
            confidence, rule = confidence + BACKED, rule + "+items"
        elif _seen_again(best, lines):
            confidence, rule = confidence + BACKED, rule + "+again"
    currencies = {c.currency for c in top if c.cents == best.cents and c.currency}
    currency = currencies.pop() if len(currencies) == 1 else None
    value = f"{best.cents // 100}.{best.cents % 100:02d}"
    return FieldValue(value, confidence, best.line.text, rule, currency=currency)


def _prices(text: str) -> list[int]:
    """The amounts with decimals on a line, in cents, negative when signed."""
    out = []
    for m in _AMOUNT.finditer(text):
        parsed = _cents(m)
        if parsed is not None and parsed[1]:
            negative = m.group("sign") or m.group("minus")
            out.append(-parsed[0] if negative else parsed[0])
    return out


def _items_add_up(best: _Candidate, lines: Sequence[TextLine]) -> bool:
    """Whether the last prices of the lines just above the total, in its block, add
    up to it (at least two of them: one alone is `_seen_again`'s)."""
    above = [ln for ln in lines[: best.line.index] if ln.block == best.line.block]
    running, count = 0, 0
    for line in reversed(above[-ITEMS_LOOKED_AT:]):
        prices = _prices(line.text)
        if not prices:
            continue
        running, count = running + prices[-1], count + 1
        if count >= 2 and running == best.cents:
            return True
    return False


def _seen_again(best: _Candidate, lines: Sequence[TextLine]) -> bool:
    """Whether a line of other words shows the same amount (the card payment, the one
    item, another label). The same line read again by another OCR pass is not
    another reading of the amount: the engine repeats its own slips."""
    key = word_key(best.line.text)
    return any(
        best.cents in _prices(line.text)
        for line in lines
        if line.index != best.line.index and word_key(line.text) != key
    )
