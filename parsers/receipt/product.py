"""The campaign's eligible model on a receipt's item lines, OCR-tolerant.

Model names and their aliases (`rules/receipts/products.yaml`) are compared on
a key that ignores case, spaces and punctuation and folds OCR look-alikes
(`PIay 1` = `Play:1`, `WH-1000XMS` = `WH-1000XM5`), at word boundaries on the
line. Guards against false positives: a different digit never matches
(`Play:3` is not `Play:1`); a short name (`Sub`, `One`, `Boost`) counts only
with its brand on the same line; fuzzy matching (rapidfuzz, one slip) only for
long names and only when the digits agree. The longest matching name wins
(`Connect:Amp` over `Connect`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rapidfuzz import fuzz, process

from mailbot.core.receipt_fields import FieldValue
from mailbot.ruleset.receipts import Product, ReceiptRules
from parsers.receipt.ocrtext import TextLine, model_key

__all__ = ["find_product"]

FUZZY_MIN_LEN = 8
"""Keys shorter than this only match exactly: one slip in "play1" is another model."""


@dataclass(frozen=True)
class _Hit:
    name: str
    line: TextLine
    score: float
    length: int
    rule: str


def _catalogue(models: Sequence[str], rules: ReceiptRules) -> list[Product]:
    """The models to look for: the campaign's (with the catalogue's aliases and
    brand when it knows them), else the whole catalogue."""
    known = {model_key(p.name): p for p in rules.products}
    if not models:
        return list(rules.products)
    return [known.get(model_key(m), Product(m, None)) for m in models]


def _tokens(text: str) -> list[str]:
    return [
        model_key(t)
        for t in re.split(r"[\s:/,;()\[\]\"'+]+|(?<=\D)-|-(?=\D)", text)
        if model_key(t)
    ]


def _raw_tokens(text: str) -> list[str]:
    return [t for t in _SPLIT.split(text) if model_key(t)]


_SPLIT = re.compile(r"[\s:/,;()\[\]\"'+]+|(?<=\D)-|-(?=\D)")


def _windows(raw: list[str], max_len: int) -> dict[str, str]:
    """Joined runs of consecutive tokens (word boundaries kept at both ends):
    folded key -> the digits as printed."""
    out: dict[str, str] = {}
    for i in range(len(raw)):
        joined = ""
        digits = ""
        for tok in raw[i:]:
            joined += model_key(tok)
            digits += re.sub(r"\D", "", tok)
            if len(joined) > max_len + 2:
                break
            out.setdefault(joined, digits)
    return out


@dataclass(frozen=True)
class _Line:
    line: TextLine
    tokens: frozenset[str]
    windows: dict[str, str]
    """Folded key of each run of tokens -> its raw digits (for the fuzzy guard)."""


@dataclass(frozen=True)
class _Model:
    product: Product
    keys: tuple[str, ...]
    """Longest first."""
    digits: tuple[str, ...]
    """The digits of each key's spelling as written."""
    brand: str | None


def _model(product: Product) -> _Model:
    spellings = [product.name, *product.aliases]
    if product.brand:
        spellings += [f"{product.brand} {s}" for s in (product.name, *product.aliases)]
    by_key = {model_key(s): re.sub(r"\D", "", s) for s in spellings if model_key(s)}
    keys = sorted(by_key, key=len, reverse=True)
    brand = model_key(product.brand) if product.brand else None
    return _Model(product, tuple(keys), tuple(by_key[k] for k in keys), brand)


def _find_on_line(
    model: _Model, line: _Line, rules: ReceiptRules, others: frozenset[str] = frozenset()
) -> _Hit | None:
    brand_on_line = model.brand is not None and model.brand in line.tokens
    name = model.product.name
    for key in model.keys:
        short = len(key) < rules.brand_required_below
        if short and not brand_on_line:
            continue
        if key in line.windows:
            return _Hit(name, line.line, 0.9, len(key), "product:exact")
    for key, digits in zip(model.keys, model.digits, strict=True):
        if len(key) < FUZZY_MIN_LEN:
            continue
        near = process.extractOne(
            key, line.windows.keys(), scorer=fuzz.ratio, score_cutoff=rules.fuzzy_product
        )
        # A slip may not change a digit as printed (Play:5 is not Play:1).
        # Nor is another model the catalogue knows, spelled exactly, a slip of
        # this one (WF-1000XM5 printed is not the eligible WH-1000XM5).
        if (
            near is not None
            and line.windows[near[0]] == digits
            and abs(len(near[0]) - len(key)) <= 1
            and near[0] not in others
        ):
            return _Hit(name, line.line, 0.75, len(key), "product:fuzzy")
    return None


def find_product(
    lines: Sequence[TextLine], rules: ReceiptRules, models: Sequence[str] = ()
) -> FieldValue | None:
    catalogue = [_model(p) for p in _catalogue(models, rules)]
    longest = max((len(k) for m in catalogue for k in m.keys), default=0)
    prepared = []
    for line in lines:
        raw = _raw_tokens(line.text)
        tokens = frozenset(model_key(t) for t in raw)
        prepared.append(_Line(line, tokens, _windows(raw, longest)))
    known = {
        model_key(s)
        for p in rules.products
        for s in (p.name, *p.aliases, *((f"{p.brand} {p.name}",) if p.brand else ()))
    }
    hits = []
    for model in catalogue:
        not_this = frozenset(known - set(model.keys))
        for pline in prepared:
            hit = _find_on_line(model, pline, rules, not_this)
            if hit is not None:
                hits.append(hit)
    if not hits:
        return None
    # Longest name first (Connect:Amp over Connect on the same line), then score.
    best = sorted(hits, key=lambda h: (-h.score, -h.length, h.line.index))[0]
    others = {h.name for h in hits if h.name != best.name and h.line.index != best.line.index}
    conf = best.score - (0.05 if others else 0.0)  # several eligible models: still a match
    return FieldValue(best.name, round(conf, 3), best.line.text, best.rule)
