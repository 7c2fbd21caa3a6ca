"""Registration codes and RMA numbers: making them, checking them, finding them in text.

A registration code is 8 digits, the first non-zero, the last a Damm check digit.
Damm detects every single-digit typo and every adjacent transposition, so a
mistyped code is *invalid* rather than someone else's claim.

An RMA number we issue is 7 digits, the first non-zero, the last a Damm check
digit, written `RMA# 1234567` in our mails. The length differs from the
registration code on purpose: one can never be taken for the other.

`find_codes` is used on subjects and mail bodies, where many other 8-digit
numbers live (dates, phone numbers, order and receipt numbers); it returns only
valid codes that stand alone and are not introduced by such a word.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from datetime import date
from functools import lru_cache

from stdnum import damm

CODE_LENGTH = 8
RMA_LENGTH = 7

# Words that, right before a number, say it is not our code. Lower case; each is
# matched at a word start and may be followed by more letters ("ordrenummer",
# "telefonnr"), so stems are enough. "ref"/"referanse" is deliberately absent:
# the FAQ calls the registration code the customer's reference number.
DEFAULT_IGNORE_WORDS: tuple[str, ...] = (
    # phone
    "tel",
    "tlf",
    "phone",
    "mob",
    "cell",
    "fax",
    "puh",
    "sms",
    "whatsapp",
    # order / receipt / invoice / customer numbers (nb, sv, da, fi, en, de)
    "order",
    "ordre",
    "bestilling",
    "beställning",
    "bestellung",
    "kvittering",
    "kvitto",
    "kvit",
    "bong",
    "faktura",
    "invoice",
    "receipt",
    "lasku",
    "kuitti",
    "tilaus",
    "rechnung",
    "kunde",
    "kund",
    "customer",
    "asiakas",
    "konto",
    "account",
    "org",
    "transa",
    "serie",
    "serial",
    "imei",
    "ean",
    "sku",
    "vare",
    "item",
    "rma",
    "sporing",
    "spårning",
    "tracking",
    "sendings",
    "kolli",
    "waybill",
    "awb",
    "postnr",
    "zip",
    "bank",
    "iban",
    "kid",
)


def _damm_ok(digits: str) -> bool:
    return damm.checksum(digits) == 0


def _with_check(body: str) -> str:
    return body + damm.calc_check_digit(body)


def looks_like_date(digits: str) -> bool:
    """True if 8 digits read as YYYYMMDD, DDMMYYYY or MMDDYYYY with a plausible year."""
    if len(digits) != 8 or not digits.isdigit():
        return False
    candidates = (
        (digits[0:4], digits[4:6], digits[6:8]),  # YYYYMMDD
        (digits[4:8], digits[2:4], digits[0:2]),  # DDMMYYYY
        (digits[4:8], digits[0:2], digits[2:4]),  # MMDDYYYY
    )
    for y, m, d in candidates:
        year = int(y)
        if not 1900 <= year <= 2099:
            continue
        try:
            date(year, int(m), int(d))
        except ValueError:
            continue
        return True
    return False


def generate_code(rng: random.Random) -> str:
    """A new random registration code. Uniqueness is the store's job (retry on clash).

    Codes that look like dates are never issued, because `find_codes` ignores
    date-like numbers and such a code could then never be matched in a mail.
    """
    while True:
        body = str(rng.randint(1, 9)) + "".join(str(rng.randint(0, 9)) for _ in range(6))
        code = _with_check(body)
        if not looks_like_date(code):
            return code


def is_valid_code(s: str) -> bool:
    """8 ASCII digits, first non-zero, Damm check digit correct."""
    return len(s) == CODE_LENGTH and s.isascii() and s.isdigit() and s[0] != "0" and _damm_ok(s)


def generate_rma_number(rng: random.Random) -> str:
    """A new random RMA number: 6 random digits (first non-zero) + Damm check digit."""
    body = str(rng.randint(1, 9)) + "".join(str(rng.randint(0, 9)) for _ in range(5))
    return _with_check(body)


def is_valid_rma_number(s: str) -> bool:
    """7 ASCII digits, first non-zero, Damm check digit correct."""
    return len(s) == RMA_LENGTH and s.isascii() and s.isdigit() and s[0] != "0" and _damm_ok(s)


def format_rma_number(number: str) -> str:
    """How our mails write an RMA number (and what customers are asked to put in subjects)."""
    return f"RMA# {number}"


# An 8-digit run not glued to letters, digits or decimal/thousand separators
# followed by digits ("12.345678", "1234-5678" are something else).
_TOKEN = re.compile(r"(?<![\w])(?<![\d][.,/:-])(\d{8})(?![\w])(?![.,/:-]\d)")
_INTL_PREFIX = re.compile(r"(?:\+|\b00)\d{1,3}[\s\u00a0().-]*$")
_LEFT_GROUP = re.compile(r"(?:^|[^\d])(\d{1,7})[ \u00a0-]$")
_RIGHT_GROUP = re.compile(r"^[ \u00a0-](\d{1,7})(?!\d)")


@lru_cache(maxsize=32)
def _ignore_pattern(words: tuple[str, ...]) -> re.Pattern[str]:
    alternation = "|".join(sorted((re.escape(w.lower()) for w in words), key=len, reverse=True))
    # keyword stem, rest of that word, then optional "nr"/"no."/"#"/":" before the number
    return re.compile(
        r"\b(?:" + alternation + r")[\w.]*\s*"
        r"(?:(?:nr|no|num|number|nummer|numero|numer|n:o|#|id)\.?\s*)?"
        r"[:#=.\-–]?\s*$",
        re.IGNORECASE,
    )


_DEFAULT_IGNORE_RE = _ignore_pattern(DEFAULT_IGNORE_WORDS)


def _context_rejects(text: str, start: int, end: int, ignore_re: re.Pattern[str]) -> bool:
    line_start = text.rfind("\n", 0, start) + 1
    before = text[max(line_start, start - 40) : start]
    if ignore_re.search(before) or _INTL_PREFIX.search(before):
        return True
    # part of a longer digit group written with spaces ("0047 12345678", "12345678 90")
    if _LEFT_GROUP.search(text[max(0, start - 9) : start]):
        return True
    return bool(_RIGHT_GROUP.match(text[end : end + 9]))


def _scan(text: str, ignore_words: Iterable[str] | None, want_valid: bool) -> tuple[str, ...]:
    ignore_re = _DEFAULT_IGNORE_RE if ignore_words is None else _ignore_pattern(tuple(ignore_words))
    found: list[str] = []
    for m in _TOKEN.finditer(text):
        digits = m.group(1)
        if is_valid_code(digits) != want_valid or looks_like_date(digits):
            continue
        if _context_rejects(text, m.start(1), m.end(1), ignore_re):
            continue
        if digits not in found:
            found.append(digits)
    return tuple(found)


def find_mistyped_codes(text: str, ignore_words: Iterable[str] | None = None) -> tuple[str, ...]:
    """8-digit numbers that stand where a code would, but fail the check digit.

    Not matched to anything; reported so a reply or a reviewer can say
    "the code you wrote looks mistyped" instead of "we found no code".
    """
    return _scan(text, ignore_words, want_valid=False)


def find_codes(text: str, ignore_words: Iterable[str] | None = None) -> tuple[str, ...]:
    """Valid registration codes standing alone in `text`, in order, without repeats.

    Ignored: numbers failing the check digit, date-like numbers, and numbers that
    follow a phone/order/receipt/... word (`ignore_words`, default
    `DEFAULT_IGNORE_WORDS`) or an international dialling prefix.
    """
    return _scan(text, ignore_words, want_valid=True)
