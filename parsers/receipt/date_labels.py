"""What the words before a date say it is: the purchase, a deadline, or not known.

`parsers.receipt.date` finds the dates; this module reads their labels with the
admin's patterns (`rules/receipts/dates.yaml`): whether the words name the
purchase ("Kjøpsdato", "Dato" alone, a compound the rules name), a deadline OCR
misread by a letter or two ("Fortaldsdato"), and which column of a table header
means what.
"""

from __future__ import annotations

import functools
import re

from rapidfuzz import fuzz

from mailbot.ruleset.receipts import ReceiptRules
from parsers.receipt.ocrtext import fold

__all__ = ["column_labels", "like_a_deadline", "like_a_purchase_label", "purchase_label"]


_GENERIC = frozenset({"dato", "datum", "date", "päivä", "paiva", "pvm"})
# A capital letter split off its word, as PDF text layers space kerned letters
# ("F actuurdatum"): joined again before labels are read.
_SPLIT_CAPITAL = re.compile(r"\b([A-Z]) (?=[a-zà-ÿ]{3,})")


def purchase_label(context: str, rules: ReceiptRules) -> str | None:
    """ "strong" or "purchase" when `context` names the purchase date, else None.

    A plain date word ("Dato", "Datum") counts alone or in a compound another
    purchase pattern names ("Kvitteringsdato", "Fakturadatum"); in any other
    compound it is some other date, often a deadline OCR misread ("Fortellodatum"
    for Förfallodatum), and counts for nothing."""
    context = _SPLIT_CAPITAL.sub(r"\1", context)
    for kind, patterns in (("strong", rules.strong_purchase), ("purchase", rules.purchase)):
        for pattern in patterns:
            for m in pattern.finditer(context):
                if m.group(0).casefold() not in _GENERIC:
                    return kind
                start, end = _whole_word(context, m.start(), m.end())
                word = context[start:end]
                if word.casefold() == m.group(0).casefold() or _named_compound(word, rules):
                    return kind
    return None


def _named_compound(word: str, rules: ReceiptRules) -> bool:
    """Whether a purchase pattern other than a plain date word matches in `word`."""
    return any(
        m.group(0).casefold() not in _GENERIC
        for p in (*rules.strong_purchase, *rules.purchase)
        for m in p.finditer(word)
    )


NEAR_DEADLINE_RATIO = 85
"""rapidfuzz partial ratio from which a word is a deadline word as OCR read it: one
slip in a word of seven letters or more ("fortalds" for "forfald"), none in shorter ones."""


@functools.cache
def _plain_words(patterns: tuple[str, ...], min_letters: int) -> tuple[str, ...]:
    """The plain words (`min_letters` letters or more) among the patterns'
    alternatives, folded, sorted: what a misread label is compared with."""
    plain = re.compile(rf"[^\W\d_]{{{min_letters},}}")
    words = {
        fold(alternative)
        for pattern in patterns
        for alternative in pattern.split("|")
        if plain.fullmatch(alternative)
    }
    return tuple(sorted(words))


def like_a_deadline(context: str, rules: ReceiptRules) -> bool:
    """Whether a word of `context` is a deadline word with an OCR slip."""
    stems = _plain_words(tuple(p.pattern for p in rules.not_purchase), 5)
    for word in re.findall(r"[^\W\d_]{5,}", fold(context)):
        for stem in stems:
            if len(word) + 1 >= len(stem) and fuzz.partial_ratio(word, stem) >= NEAR_DEADLINE_RATIO:
                return True
    return False


NEAR_LABEL_RATIO = 75
"""rapidfuzz ratio from which a word is a purchase label as OCR read it
("Kj@psdato", "Kebsdato" for Kjøpsdato/Købsdato)."""


def like_a_purchase_label(word: str, rules: ReceiptRules) -> bool:
    """Whether `word` is a purchase label with an OCR slip or two."""
    patterns = tuple(p.pattern for p in (*rules.strong_purchase, *rules.purchase))
    folded = fold(word)
    return any(fuzz.ratio(folded, w) >= NEAR_LABEL_RATIO for w in _plain_words(patterns, 6))


def _whole_word(text: str, start: int, end: int) -> tuple[int, int]:
    """The span of the whole word(s) around text[start:end] ("dato" inside
    "Forfallsdato" is that word)."""
    tail = _WORD_TAIL.search(text[:start])
    head = _WORD_HEAD.match(text, end)
    return start - (len(tail.group(0)) if tail else 0), end + (len(head.group(0)) if head else 0)


_WORD_TAIL = re.compile(r"\w*$")
_WORD_HEAD = re.compile(r"\w*")
_DATE_WORD = re.compile(r"dat|date|päivä|paiva|pvm|tarikh", re.IGNORECASE)


def column_labels(header: str, rules: ReceiptRules) -> list[str]:
    """The date labels of a table header line, left to right: "purchase",
    "strong", "order" (a web-shop order date) or "not" (a deadline). A label is
    a whole word; a word matching several kinds ("Forfallsdato": deadline and
    "dato") takes the deadline."""
    words: dict[tuple[int, int], str] = {}
    priority = {"not": 0, "order": 1, "strong": 2, "purchase": 3}
    for kind, patterns in (
        ("not", rules.not_purchase),
        ("order", rules.order_date),
        ("strong", rules.strong_purchase),
        ("purchase", rules.purchase),
    ):
        for p in patterns:
            for m in p.finditer(header):
                if m.end() == m.start() or not (
                    kind in ("not", "order") or _DATE_WORD.search(m.group(0))
                ):
                    continue
                key = _whole_word(header, m.start(), m.end())
                if key not in words or priority[kind] < priority[words[key]]:
                    words[key] = kind
    out: list[str] = []
    last_end = -1
    for (ws, we), kind in sorted(words.items()):
        if ws >= last_end:
            out.append(kind)
            last_end = we
    return out
