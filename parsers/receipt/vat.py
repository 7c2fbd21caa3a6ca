"""VAT and organisation numbers on a receipt: find, repair OCR slips, validate.

A number is only reported when python-stdnum accepts its checksum for the
country whose label (`rules/receipts/vat.yaml`) stands right before it, or
whose country prefix it carries (SE556036079301, NO988077917MVA, NL...B01).
Phone, card, receipt and bank numbers have no such label and rarely pass a
checksum, so they are not taken. OCR look-alikes (O->0, l->1) and spaces inside
a number are accepted only because the checksum must still pass afterwards.

The value is normalised as the labels are: without country prefix or suffix
(`988077917`, `5560360793`, `12345678` for FI 1234567-8), with `country`.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache

from mailbot.core.receipt_fields import FieldValue
from mailbot.ruleset.receipts import ReceiptRules, VatCountry
from parsers.receipt.ocrtext import TextLine, digits_from_ocr

__all__ = ["find_vat", "vat_candidates"]

# Validators are looked up by the name in vat.yaml; mypy sees stdnum as Any.
Validator = Callable[[str], bool]

# One number body: digit look-alikes with single separators (space . - /) between.
_BODY = re.compile(r"[0-9OoIl|SBD](?:[ .\-/]?[0-9OoIl|SBD])*")
# What may sit between a label and its number: separators and short words
# ("reģ.nr.", "nr", "kods") but no digits.
_GAP = re.compile(r"^[\s:.#,;=\-]*(?:[^\W\d_]{1,12}[\s:.#,;=\-]+){0,3}")
# A two-letter prefix as OCR reads it: NO as N0, LV as LU, SE as 5E.
_PREFIX_FIX = str.maketrans({"0": "O", "5": "S", "1": "I", "U": "V", "Y": "V", "$": "S"})
_EU_PREFIXED = re.compile(
    r"\b(AT|BE|BG|CY|CZ|DE|DK|EE|EL|GR|ES|FI|FR|HR|HU|IE|IT|LT|LU|LV|MT|NL|PL|PT|RO|SE|SI|SK|NO|GB|XI)"
    r"\s?([0-9][0-9A-Z .]{6,16})"
)
# Printed forms distinctive enough to need no label when the checksum passes:
# Swedish org.nr 556036-0793, Finnish Y-tunnus 1234567-8, Norwegian "988 077 917 MVA".
_FORMATS = (
    ("SE", "se.orgnr", re.compile(r"(?<![\d-])(\d{6})-(\d{4})(?![\d-])")),
    ("FI", "fi.ytunnus", re.compile(r"(?<![\d-])(\d{7})-(\d)(?![\d-])")),
    ("NO", "no.orgnr", re.compile(r"(?<![\d ])(\d{3}) ?(\d{3}) ?(\d{3}) ?MVA\b", re.IGNORECASE)),
)
_LENGTHS = {"NO": (9,), "SE": (10, 12), "DK": (8,), "FI": (8,), "LV": (11,), "GB": (9, 12)}


@dataclass(frozen=True)
class VatCandidate:
    number: str
    country: str
    line: TextLine
    confidence: float
    rule: str


@cache
def _validator(name: str) -> Validator:
    module = importlib.import_module(f"stdnum.{name}")
    check: Validator = module.is_valid
    return check


def _prefix_ok(text: str, prefix: str | None) -> bool:
    return prefix is not None and text.upper().translate(_PREFIX_FIX) == prefix


def _groups(body: str) -> list[str]:
    return [g for g in re.split(r"[ .\-/]", digits_from_ocr(body)) if g]


def _national(
    country: VatCountry, tail: str, not_vat: Sequence[re.Pattern[str]]
) -> tuple[str, bool] | None:
    """The number right at the start of `tail` that passes `country`'s checksum:
    (normalised number, repaired-by-OCR-rules)."""
    gap = _GAP.match(tail)
    if gap is not None and gap.group(0):
        # Up to three short words may stand between label and number ("kods",
        # "reģ. nr."), but never a phone/card/account word.
        if any(p.search(gap.group(0)) for p in not_vat):
            return None
        tail = tail[gap.end() :]
    m = re.match(r"([A-Za-z0-9$]{2})\s?(?=[0-9OoIl|SBD])", tail)
    if m and _prefix_ok(m.group(1), country.prefix) and not m.group(1).isdigit():
        tail = tail[m.end() :]
    elif country.prefix and re.match(rf"{country.prefix[0]}\d", tail):
        tail = tail[1:]  # half a prefix survived OCR ("L4360..." for "LV4360...")
    body = _BODY.match(tail)
    if body is None:
        return None
    raw = body.group(0)
    groups = _groups(raw)
    if sum(ch.isdigit() for ch in raw) < 6:
        return None
    valid = _validator(country.validator)
    joined = ""
    # Numbers are printed in groups ("988 077 917"); try the leading groups joined,
    # never a cut inside a group (that could pass some other country's checksum).
    for k, group in enumerate(groups):
        joined += group
        if not joined.isdigit():
            return None
        number = _normalise(country.country, joined)
        if number is not None and valid(number if country.country != "FI" else _fi(number)):
            repaired = k > 0 or not raw.replace(" ", "").replace("-", "").isdigit()
            return number, repaired
    return None


def _fi(number: str) -> str:
    return f"{number[:7]}-{number[7:]}"


def _normalise(country: str, digits: str) -> str | None:
    lengths = _LENGTHS.get(country)
    if lengths is None or len(digits) not in lengths:
        return None
    if country == "SE" and len(digits) == 12:
        # Swedish VAT number = SE + org.nr + "01".
        return digits[:10] if digits.endswith("01") else None
    return digits


_IBAN_WORD = re.compile(r"\bIBAN\b[\s:.]*$")
_IBAN_SHAPE = re.compile(r"[A-Z]{2}\d{2}(?:\s?[A-Z0-9]{4}){2,7}(?:\s?[A-Z0-9]{1,3})?")


def _iban_at(text: str, start: int) -> bool:
    """Whether the country code at `start` begins an IBAN (FI21 1234 5600 0007 85):
    printed after the word IBAN, or valid as one. An account number starts with a
    country code too, and a run of its digits can pass a VAT checksum by chance."""
    if _IBAN_WORD.search(text[max(0, start - 12) : start]):
        return True
    shape = _IBAN_SHAPE.match(text, start)
    return shape is not None and bool(_validator("iban")(shape.group(0)))


def _eu(text: str) -> list[tuple[str, str]]:
    """EU VAT numbers with their country prefix anywhere in `text`: (country, number)."""
    out = []
    valid = _validator("eu.vat")
    upper = text.upper()
    for m in _EU_PREFIXED.finditer(upper):
        if _iban_at(upper, m.start()):
            continue
        code = m.group(1)
        body = m.group(2).rstrip(" .")
        # The body may run into the next word: shorten until it validates.
        for end in range(len(body), 6, -1):
            cut = body[:end]
            if cut.endswith((" ", ".")):
                continue
            number = re.sub(r"[ .]", "", cut)
            if code == "NO" or code == "GB":
                ok = _validator("no.orgnr" if code == "NO" else "gb.vat")(number)
            else:
                ok = valid(code + number)
            if ok:
                out.append((_country_code(code), _strip_suffix(code, number)))
                break
    return out


def _country_code(code: str) -> str:
    return "GR" if code == "EL" else code


def _strip_suffix(code: str, number: str) -> str:
    if code == "SE" and len(number) == 12 and number.endswith("01"):
        return number[:10]
    return number


def vat_candidates(lines: Sequence[TextLine], rules: ReceiptRules) -> list[VatCandidate]:
    """Every checksum-valid VAT/org number with a label or prefix, in text order."""
    found: list[VatCandidate] = []
    for line in lines:
        text = line.text
        for country in rules.vat:
            if country.country == "EU":
                continue
            for label in country.labels:
                for m in label.finditer(text):
                    tails = [text[m.end() : m.end() + 48]]
                    nxt = line.index + 1
                    if (
                        not re.search(r"\d", tails[0])
                        and nxt < len(lines)
                        and not any(p.search(lines[nxt].text) for p in rules.not_vat)
                    ):
                        tails.append(lines[nxt].text[:48])
                    for tail in tails:
                        hit = _national(country, tail, rules.not_vat)
                        if hit is not None:
                            number, repaired = hit
                            conf = 0.85 if repaired else 0.95
                            rule = f"vat:{country.country}:label"
                            found.append(VatCandidate(number, country.country, line, conf, rule))
        for code, validator, pattern in _FORMATS:
            for fm in pattern.finditer(text):
                number = "".join(fm.groups())
                check = f"{number[:7]}-{number[7:]}" if code == "FI" else number
                if _validator(validator)(check):
                    found.append(VatCandidate(number, code, line, 0.8, f"vat:{code}:format"))
        # Prefixed numbers (EU VAT format) need no label: the prefix and checksum are enough.
        for code, number in _eu(digits_prefix_fix(text)):
            found.append(VatCandidate(number, code, line, 0.9, f"vat:{code}:prefixed"))
    return found


def digits_prefix_fix(text: str) -> str:
    """'N0988077917MVA' -> 'NO988077917MVA': a 0 read for O right after an N."""
    return re.sub(r"\bN0(?=\s?\d{9})", "NO", text)


def find_vat(lines: Sequence[TextLine], rules: ReceiptRules) -> FieldValue | None:
    """The seller's number: the best-supported candidate (label over prefix, then the
    number printed most often, then the first)."""
    cands = vat_candidates(lines, rules)
    if not cands:
        return None
    score: dict[tuple[str, str], float] = {}
    first: dict[tuple[str, str], VatCandidate] = {}
    for c in cands:
        key = (c.country, c.number)
        # Repeats (header and footer) support a number a little.
        score[key] = max(score.get(key, 0.0), c.confidence) + (0.01 if key in score else 0.0)
        best = first.get(key)
        if best is None or c.confidence > best.confidence:
            first[key] = c
    ranked = sorted(score, key=lambda k: (-score[k], first[k].line.index))
    best_key = ranked[0]
    chosen = first[best_key]
    conf = min(score[best_key], 0.99)
    # Two different well-supported numbers (seller and buyer on an invoice): less sure.
    if len(ranked) > 1 and {ranked[0][1], ranked[1][1]} and ranked[1][1] != ranked[0][1]:
        conf -= 0.1
    return FieldValue(
        value=chosen.number,
        confidence=round(conf, 3),
        evidence=chosen.line.text,
        rule=chosen.rule,
        country=chosen.country,
    )
