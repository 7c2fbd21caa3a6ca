"""Who bought, as an invoice prints it: the buyer block and whether a company is in it.

A promotion may exclude companies; a B2B invoice names its buyer in a block
under a label ("Kunde:", "Køber:", "Kund:", "Asiakas:", "Bill to", "Faktureres
til": `buyer_labels` in rules/receipts/document.yaml) that stands alone or
before a colon at the start of a line. In that block (the label line's rest and
the `buyer_block_lines` lines under it, up to an item line) a company shows as a
name ending in a legal form (AS, AB, ApS, Oy, Ltd: retailers.yaml's list) or as a
checksum-valid organisation/VAT number other than the seller's. Both together
are a confident fact; the number alone nearly so; a legal-form name alone is
below a campaign's confidence (a person reviews it, nobody is refused on it).

The block is also kept away from the seller's fields: the buyer's number is not
the seller's VAT number, nor the buyer's name the retailer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

from mailbot.core.receipt_fields import FieldValue
from mailbot.ruleset.receipts import ReceiptRules
from parsers.receipt.ocrtext import TextLine, fold
from parsers.receipt.retailer import company_name
from parsers.receipt.vat import vat_candidates

__all__ = ["BOTH", "NAME_ONLY", "NUMBER_ONLY", "buyer_block", "find_buyer", "without_block"]

BOTH = 0.95
"""A legal-form name and an organisation number of its own: a company bought."""
NUMBER_ONLY = 0.85
"""A checksum-valid organisation/VAT number under a buyer label, not the seller's."""
NAME_ONLY = 0.7
"""A name ending in a legal form and nothing else: likely, not enough to refuse on."""

_PRICE = re.compile(r"\d[.,]\d{2}\s*(?:[A-Z]{1,3}|kr|€|\$)?\s*$")
_AFTER_LABEL = re.compile(r"\s*(?:/\s*)?")


def _label_rest(text: str, rules: ReceiptRules) -> str | None:
    """What follows a buyer label at the start of `text` ("" for a label alone on
    its line), or None when the line is no buyer label ("Kundenummer 7",
    "Customer copy")."""
    pos, found = 0, False
    while True:
        at = _AFTER_LABEL.match(text, pos).end() if found else pos  # type: ignore[union-attr]
        m = next((m for p in rules.buyer_labels if (m := p.match(text, at))), None)
        if m is None or m.end() == at:
            break
        # "Kunde / Kund:": labels in two languages side by side
        pos, found = m.end(), True
    if not found:
        return None
    rest = text[pos:]
    if not rest.strip(" .:-"):
        return ""
    colon = re.match(r"\s*:\s*(.*)$", rest)
    return colon.group(1) if colon else None


def buyer_block(lines: Sequence[TextLine], rules: ReceiptRules) -> tuple[TextLine, ...]:
    """The lines of the first buyer block (the label's line first), or none."""
    for line in lines:
        rest = _label_rest(line.text, rules)
        if rest is None:
            continue
        block = [replace(line, text=rest, folded=fold(rest))]
        for below in lines[line.index + 1 : line.index + 1 + rules.buyer_block_lines]:
            if below.block != line.block or _PRICE.search(below.text):
                break
            if _label_rest(below.text, rules) is not None:
                break
            block.append(below)
        return tuple(block)
    return ()


def without_block(lines: Sequence[TextLine], block: Sequence[TextLine]) -> list[TextLine]:
    """`lines` with the block's lines blanked (kept in place: the field rules look
    at a line's neighbours by index)."""
    inside = {ln.index for ln in block}
    return [_blank(ln) if ln.index in inside else ln for ln in lines]


def _only_block(lines: Sequence[TextLine], block: Sequence[TextLine]) -> list[TextLine]:
    """`lines` with everything but the block blanked, in place."""
    inside = {ln.index: ln for ln in block}
    return [inside.get(ln.index, _blank(ln)) for ln in lines]


def _blank(line: TextLine) -> TextLine:
    return replace(line, text="", folded="")


def find_buyer(
    lines: Sequence[TextLine],
    block: Sequence[TextLine],
    rules: ReceiptRules,
    *,
    seller_vat: str | None,
    seller_names: Sequence[str] = (),
) -> FieldValue | None:
    """The company in the buyer `block` of `lines`, if any. `seller_vat` is the seller's number
    read outside the block (a number in the block counts only when one was read
    there and differs); `seller_names` are the retailer read and the listed names,
    which a buyer is not."""
    sellers = {_key(n) for n in seller_names if _key(n)}
    name: tuple[str, TextLine] | None = None
    for line in block:
        found = company_name(line.text, rules)
        if found is not None and _key(found) not in sellers:
            name = (found, line)
            break
    number = None
    if seller_vat is not None:
        number = next(
            (c for c in vat_candidates(_only_block(lines, block), rules) if c.number != seller_vat),
            None,
        )
    if name is not None and number is not None:
        evidence = (
            name[1].text if name[1] is number.line else f"{name[1].text} / {number.line.text}"
        )
        return FieldValue(name[0], BOTH, evidence, "buyer:name+number", number.country)
    if number is not None:
        return FieldValue(
            number.number, NUMBER_ONLY, number.line.text, "buyer:number", number.country
        )
    if name is not None:
        return FieldValue(name[0], NAME_ONLY, name[1].text, "buyer:legal-form")
    return None


def _key(name: str) -> str:
    return re.sub(r"[\W_]+", "", fold(name))
