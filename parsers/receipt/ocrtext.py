"""Small text helpers shared by the receipt field extractors (parsers/receipt_*.py).

OCR text differs from the printed receipt in predictable ways: letters read as
digits and back (O/0, l/I/1, S/5, B/8), Nordic letters dropped or swapped
(Elkjøp -> Elkjop, Elkjgp), stray punctuation at line starts. These helpers fold
those differences away for matching; the evidence reported is always the
original line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Nordic and German letters fold to what OCR and keyboards without them produce.
_FOLD = str.maketrans(
    {"æ": "ae", "ø": "o", "å": "a", "ä": "a", "ö": "o", "ü": "u", "ß": "ss", "é": "e", "è": "e"}
)
# Characters OCR confuses with digits: used only inside number-like tokens,
# and a number so "repaired" must still pass its checksum to be believed.
_DIGIT_LOOKALIKE = str.maketrans(
    {
        "O": "0",
        "o": "0",
        "D": "0",
        "Q": "0",
        "l": "1",
        "I": "1",
        "|": "1",
        "i": "1",
        "!": "1",
        "S": "5",
        "s": "5",
        "B": "8",
        "Z": "2",
        "z": "2",
        "g": "9",
    }
)
# For model names: map each confusable group onto one symbol so either reading matches.
_MODEL_FOLD = str.maketrans({"i": "l", "1": "l", "|": "l", "!": "l", "0": "o", "5": "s", "8": "b"})


@dataclass(frozen=True)
class TextLine:
    index: int
    text: str
    """The original line, stripped of OCR edge noise."""
    folded: str
    """Case-folded, Nordic letters folded."""
    block: int = 0
    """Which blank-line separated block: a PDF page or an OCR pass over the page."""
    row: int = 0
    """Position within its block: row 0 is the top of a page as that pass read it."""


def fold(text: str) -> str:
    return text.casefold().translate(_FOLD)


def model_key(text: str) -> str:
    """Alphanumerics only, case and OCR look-alikes folded ('PIay:1' = 'Play 1')."""
    return re.sub(r"[\W_]+", "", fold(text)).translate(_MODEL_FOLD)


def name_key(text: str) -> str:
    """Alphanumerics only, case and Nordic letters folded (retailer names)."""
    return re.sub(r"[\W_]+", "", fold(text))


def word_key(text: str) -> str:
    """A word's letters and digits, case-folded: how OCR words and the words of
    a line of text are compared (quotes and edge punctuation vary)."""
    return re.sub(r"[\W_]+", "", text).casefold()


def digits_from_ocr(text: str) -> str:
    """Look-alike letters read as digits ('N0 9B8 O77' -> '0 988 077')."""
    return text.translate(_DIGIT_LOOKALIKE)


_EDGE_NOISE = re.compile(r"^[\s|_\\/.,:;'`~\-=*»«]+|[\s|_\\/,;'`~=*»«]+$")


def split_lines(text: str) -> list[TextLine]:
    """Non-empty lines with OCR edge noise ('_ ', '| ') trimmed, numbered in order.

    A blank line starts a new block (`parsers.document.text` joins pages and OCR passes
    with one; tesseract's own output has none), so every pass has its own head."""
    out: list[TextLine] = []
    block, row = 0, 0
    for raw in text.splitlines():
        if not raw.strip():
            if row:
                block, row = block + 1, 0
            continue
        line = _EDGE_NOISE.sub("", raw).strip()
        if re.search(r"\w", line):
            out.append(TextLine(len(out), line, fold(line), block, row))
            row += 1
    return out
