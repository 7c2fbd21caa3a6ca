"""Text of one document -> `ReceiptFields`: retailer, purchase date, product, VAT number.

The input is plain text lines as OCR or pdfplumber give them (`parsers.document.text`).
Each field has its own module (vat, date, retailer, product, buyer, total) driven by
the admin-tunable `ReceiptRules`; this module runs them, tells a receipt from a
serial-number photo, picks up the serial and the receipt number, and applies the
rule that matters most: a field below its confidence threshold is None (abstain
rather than guess), so the claim asks for it instead of acting on a wrong value.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence

from rapidfuzz.distance import Levenshtein

from mailbot.core.receipt_fields import DocumentKind, FieldValue, ReceiptFields
from mailbot.ruleset.receipts import ReceiptRules, Retailer
from parsers.receipt.buyer import buyer_block, find_buyer, without_block
from parsers.receipt.date import find_purchase_date
from parsers.receipt.ocrtext import TextLine, model_key, split_lines
from parsers.receipt.product import find_product
from parsers.receipt.retailer import find_retailer
from parsers.receipt.total import find_total
from parsers.receipt.vat import find_vat

__all__ = ["MAX_LINE_CHARS", "MAX_TEXT_CHARS", "bounded_text", "extract_fields"]

MAX_LINE_CHARS = 240
"""Longer lines are cut to this before any field rule reads them. Receipts and
invoices print far shorter lines (the longest in the corpus: 170 characters); the
rules' cost grows with line length, and a hostile text layer can hold one line of
megabytes."""
MAX_TEXT_CHARS = 20_000
"""Text past this is not read by the field rules (the corpus' longest document,
text layer or OCR passes, holds well under it; the fields are on the first pages).
With MAX_LINE_CHARS this bounds one `extract_fields` call to well under a second
on any text (measured: 0.6 s for 20 000 characters of keywords, dates and numbers)."""


def bounded_text(text: str) -> str:
    """`text` as the field rules read it: lines cut to MAX_LINE_CHARS, at most
    MAX_TEXT_CHARS in all (whole lines)."""
    out: list[str] = []
    total = 0
    for line in text[: MAX_TEXT_CHARS * 50].splitlines():
        cut = line[:MAX_LINE_CHARS]
        total += len(cut) + 1
        if total > MAX_TEXT_CHARS:
            break
        out.append(cut)
    return "\n".join(out)


_SERIAL_VALUE = re.compile(r"[:#.\s]*([A-Z0-9][A-Z0-9\-]{4,29})", re.IGNORECASE)
_NUMBER_VALUE = re.compile(r"[:#.\s]*([A-Z0-9][A-Z0-9\-/]{2,24})", re.IGNORECASE)


def _labelled(
    lines: Sequence[TextLine], labels: Sequence[re.Pattern[str]], value: re.Pattern[str], rule: str
) -> FieldValue | None:
    """The token right after the first label (S/N, Kvittering nr...) that has a digit."""
    for line in lines:
        for label in labels:
            m = label.search(line.text)
            if m is None:
                continue
            v = value.match(line.text, m.end())
            if v and any(ch.isdigit() for ch in v.group(1)):
                return FieldValue(v.group(1), 0.8, line.text, rule)
    return None


FUZZY_SERIAL_MIN = 6
"""Registered serials at least this long are also recognised with one OCR slip
(a character misread, dropped or added): "459963?" for 4599631. Shorter ones
must be read exactly, or too many other numbers would be one slip away."""


def _serial_seen(lines: Sequence[TextLine], serial: str) -> tuple[TextLine, bool] | None:
    """The line showing the claim's serial, OCR look-alikes folded, and whether
    it was read exactly (False: within one slip)."""
    want = model_key(serial)
    if len(want) < 4:
        return None
    keys = [(line, model_key(line.text)) for line in lines]
    for line, key in keys:
        if want in key:
            return line, True
    if len(want) < FUZZY_SERIAL_MIN:
        return None
    for line, key in keys:
        # Windows one shorter, as long and one longer than the serial: an edit
        # distance of one over each (rapidfuzz; lines are at most 240 characters).
        for size in (len(want) - 1, len(want), len(want) + 1):
            for start in range(max(0, len(key) - size) + 1):
                window = key[start : start + size]
                if Levenshtein.distance(window, want, score_cutoff=1) <= 1:
                    return line, False
    return None


def _model_label(rules: ReceiptRules, product: FieldValue | None) -> bool:
    """Whether the product was read from a model label ("MODEL:WH-1000XM5")."""
    if product is None:
        return False
    return any(p.search(product.evidence) for p in rules.model_labels)


def _kind(
    lines: Sequence[TextLine],
    rules: ReceiptRules,
    serial_line: TextLine | None,
    serial_label: FieldValue | None,
    model_label: bool,
    found: int,
) -> DocumentKind:
    signals = sum(1 for p in rules.receipt_signals if any(p.search(ln.text) for ln in lines))
    receipt_like = signals + found
    # A product label shows a serial, or a model after "Model:", and little else.
    # A receipt can print a serial too (of what was sold, or of the cash
    # register), but it also has a date or VAT number, or several receipt words.
    label_like = serial_line is not None or serial_label is not None or model_label
    if label_like and found == 0 and signals < 3:
        return DocumentKind.SERIAL_PHOTO
    if receipt_like >= 2:
        return DocumentKind.RECEIPT
    return DocumentKind.OTHER


def _keep(value: FieldValue | None, rules: ReceiptRules, name: str) -> FieldValue | None:
    if value is None or value.confidence < rules.threshold(name):
        return None
    return value


def extract_fields(
    text: str,
    rules: ReceiptRules,
    *,
    models: Sequence[str] = (),
    retailers: Sequence[Retailer] = (),
    serial: str | None = None,
    now: dt.date | None = None,
    doubts: Mapping[str, frozenset[str]] | None = None,
) -> ReceiptFields:
    """Read the fields of a proof of purchase from `text`.

    `models` and `retailers` are the campaign's lists (the rules' catalogue and
    default retailer list are used besides); `serial` is the serial registered
    on the claim, to recognise its photo; `now` rejects dates in the future;
    `doubts` are the words OCR read with low confidence per line (`parsers.document.ocr.
    line_doubts`): a business name found by layout alone must not hold one.
    """
    lines = split_lines(bounded_text(text))
    # The buyer's block holds the buyer's name and number, never the seller's.
    block = buyer_block(lines, rules)
    seller_lines = without_block(lines, block)
    seller_vat = find_vat(seller_lines, rules)
    vat = _keep(seller_vat or find_vat(lines, rules), rules, "vat_number")
    vat_line = next((ln.index for ln in lines if vat is not None and ln.text == vat.evidence), None)
    date = _keep(find_purchase_date(lines, rules, now), rules, "purchase_date")
    retailer = _keep(
        find_retailer(seller_lines, rules, retailers, vat_line, doubts or {}), rules, "retailer"
    )
    buyer = _keep(
        find_buyer(
            lines,
            block,
            rules,
            seller_vat=seller_vat.value if seller_vat is not None else None,
            seller_names=_seller_names(retailer, retailers, rules),
        ),
        rules,
        "buyer_company",
    )
    product = _keep(find_product(lines, rules, models), rules, "product")
    receipt_no = _keep(
        _labelled(lines, rules.receipt_number_labels, _NUMBER_VALUE, "receipt-number:label"),
        rules,
        "receipt_number",
    )
    total = _keep(find_total(lines, rules), rules, "total")
    seen = _serial_seen(lines, serial) if serial else None
    serial_line = seen[0] if seen else None
    serial_label = _labelled(lines, rules.serial_labels, _SERIAL_VALUE, "serial:label")
    serial_value: FieldValue | None = serial_label
    if seen is not None and serial is not None:
        exact = seen[1]
        serial_value = FieldValue(
            serial,
            0.95 if exact else 0.85,
            seen[0].text,
            "serial:claim" if exact else "serial:claim-fuzzy",
        )
    found = sum(1 for f in (vat, date, receipt_no) if f is not None)
    model_label = _model_label(rules, product)
    kind = _kind(lines, rules, serial_line, serial_label, model_label, found)
    return ReceiptFields(
        document_kind=kind,
        retailer=retailer,
        purchase_date=date,
        product=product,
        vat_number=vat,
        serial_number=_keep(serial_value, rules, "serial_number"),
        receipt_number=receipt_no,
        buyer_company=buyer,
        total=total,
    )


def _seller_names(
    retailer: FieldValue | None, retailers: Sequence[Retailer], rules: ReceiptRules
) -> list[str]:
    """Names a buyer is not: the retailer read and every listed retailer's spellings."""
    names = [n for r in (*retailers, *rules.retailers) for n in (r.name, *r.aliases)]
    return names + ([retailer.value] if retailer is not None else [])
