"""The retailer on a receipt: a known name from the lists, else the business name.

First the campaign's retailers, then the default list (`rules/receipts/
retailers.yaml`), each with aliases, matched on case- and Nordic-letter-folded
text at word boundaries, or fuzzily (rapidfuzz, for OCR slips like "Elkjgp")
for longer names. A name at the head of the receipt is believed more than one
further down; a short name (Power, Inet) further down needs a legal form next
to it, since it is also an ordinary word.

Without a list match, the business name is the head line (or the line by the
VAT number) carrying a legal form (AS, AB, A/S, Oy, GmbH, SIA, SDN BHD...), at
lower confidence; any other head line is below the threshold (abstain).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rapidfuzz import fuzz

from mailbot.core.receipt import FieldValue
from mailbot.ruleset.receipts import ReceiptRules, Retailer
from parsers.receipt_text import TextLine, fold

__all__ = ["find_retailer"]

SHORT_NAME = 6
"""Names with fewer folded letters than this are also common words."""


SHORT_HEAD = 3
"""A short name counts as the shop's only in the first lines (logo, legal name)."""
_PRICE = re.compile(r"\d[.,]\d{2}\s*(?:[A-Z]{1,3}|kr|€|\$)?\s*$")


@dataclass(frozen=True)
class _Hit:
    name: str
    line: TextLine
    score: float
    rule: str


def _words(text: str) -> str:
    """Folded text with every run of non-alphanumerics as one space, padded."""
    return " " + re.sub(r"[\W_]+", " ", fold(text)).strip() + " "


def _has_legal_form(text: str, rules: ReceiptRules) -> bool:
    words = _words(text)
    return any(_words(form) in words for form in rules.legal_forms)


def _match(want: str, have: str, fuzzy_min: float) -> tuple[bool, float] | None:
    """(exact?, score 0..100) when the spelling `want` is on the line `have` (both `_words`)."""
    if want.strip() and want in have:
        return True, 100.0
    # Letters spaced apart by OCR ("Net On Net") or joined: compare without spaces.
    compact_want = want.replace(" ", "")
    if len(compact_want) >= SHORT_NAME:
        compact_have = have.replace(" ", "")
        if compact_want in compact_have:
            return True, 95.0
        # partial_ratio aligns the shorter string inside the longer: a line shorter
        # than the name ("Pr") would match any name starting that way.
        if len(compact_have) + 1 < len(compact_want):
            return None
        score = fuzz.partial_ratio(compact_want, compact_have, score_cutoff=fuzzy_min)
        if score:
            return False, float(score)
    return None


def _list_hits(
    lines: Sequence[TextLine], retailers: Sequence[Retailer], rules: ReceiptRules, bonus: float
) -> list[_Hit]:
    hits: list[_Hit] = []
    spellings = [
        (r.name, _words(s), len(re.sub(r"\W", "", fold(s))) < SHORT_NAME)
        for r in retailers
        for s in (r.name, *r.aliases)
    ]
    for line in lines:
        # An item line (ending in a price) is never the shop's name line.
        priced = bool(_PRICE.search(line.text))
        head = line.index < rules.head_lines and not priced
        have = _words(line.text)
        best: dict[str, _Hit] = {}
        for name, want, short in spellings:
            m = _match(want, have, rules.fuzzy_retailer)
            if m is None:
                continue
            exact = m[0]
            if head and (not short or line.index < SHORT_HEAD):
                score = 0.9 if exact else 0.75
            elif exact and (not short or _has_legal_form(line.text, rules)):
                score = 0.75
            else:
                score = 0.45
            kind = "exact" if exact else "fuzzy"
            where = "head" if head else "body"
            hit = _Hit(name, line, score + bonus, f"retailer:list:{kind}:{where}")
            if name not in best or hit.score > best[name].score:
                best[name] = hit
        hits.extend(best.values())
    return hits


def _clean_name(text: str) -> str:
    # OCR edge noise and quotes as printed; keep the name itself untouched.
    return re.sub(r"\s+", " ", text.strip(" .,:;|_-*'\"“”‘’")).strip()


def _heuristic(lines: Sequence[TextLine], rules: ReceiptRules, vat_line: int | None) -> _Hit | None:
    near_vat = set()
    if vat_line is not None:
        near_vat = {vat_line - 2, vat_line - 1, vat_line, vat_line + 1}
    for line in lines:
        if line.index >= rules.head_lines and line.index not in near_vat:
            continue
        letters = sum(ch.isalpha() for ch in line.text)
        if letters < 3 or letters < len(line.text) * 0.5:
            continue
        if _has_legal_form(line.text, rules):
            return _Hit(_clean_name(line.text), line, 0.7, "retailer:legal-form")
    return None


def find_retailer(
    lines: Sequence[TextLine],
    rules: ReceiptRules,
    retailers: Sequence[Retailer] = (),
    vat_line: int | None = None,
) -> FieldValue | None:
    """The retailer: best list match (campaign list first), else the business name."""
    hits = _list_hits(lines, retailers, rules, 0.02) + _list_hits(
        lines, rules.retailers, rules, 0.0
    )
    if hits:
        # Best score; on a tie the one higher up the page.
        best = sorted(hits, key=lambda h: (-h.score, h.line.index))[0]
        rivals = {h.name for h in hits if h.score >= best.score - 0.05 and h.name != best.name}
        conf = best.score - (0.2 if rivals else 0.0)
        if conf >= rules.threshold("retailer"):
            return FieldValue(best.name, round(min(conf, 0.99), 3), best.line.text, best.rule)
    guess = _heuristic(lines, rules, vat_line)
    if guess is None:
        return None
    return FieldValue(guess.name, guess.score, guess.line.text, guess.rule)
