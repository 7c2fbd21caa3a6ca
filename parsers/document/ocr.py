"""OCR engines behind one small interface.

`parsers.document.text` decides *when* to OCR (which pass, which engine, how much time is
left) and `parsers.document.imageprep` turns an upload into the grayscale image the engines
read best; this module runs one engine over it. Engines sit in one explicit
registry (`ENGINES`), each with `is_available()` and `to_text()` (the
invoice2data pattern), so an engine that is not installed is reported by
`mailbot check`, never an import error:

- `tesseract` (pytesseract): the primary engine, always used.
- `rapidocr` (`rapidocr-onnxruntime`, a standard dependency): PP-OCRv4 ONNX
  models shipped inside the wheel, loaded from there (nothing is downloaded).
  Reads phone photos and serial labels much better but costs more, so
  `parsers.document.text` runs it only when tesseract left a required field or
  the document kind open. One thread per OCR worker process, like tesseract;
  text boxes found on a smaller copy, each read from the full image, one at a
  time, without the angle classifier on a page known upright (`recognise`).
"""

from __future__ import annotations

import functools
import os
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Protocol

import pytesseract
from PIL import Image

from mailbot.core.errors import ExtractionError
from mailbot.core.errors import OcrTimeout as OcrTimeout
from parsers.receipt.ocrtext import word_key

# Tesseract's OpenMP threads fight each other when several documents are read
# in parallel (one process per core is faster than threads inside one process,
# and the CPU is shared). pytesseract passes our environment to its child, so
# setting it here covers every call; an operator's explicit value wins.
os.environ.setdefault("OMP_THREAD_LIMIT", "1")


@dataclass(frozen=True)
class Word:
    """One word and its box: PDF points for text PDFs, pixels of the prepared image for OCR."""

    text: str
    page: int
    x0: float
    top: float
    x1: float
    bottom: float
    confidence: float | None = None
    """0..1 as the engine reports it; None for a PDF text layer (exact)."""


@dataclass(frozen=True)
class Line:
    """One line of text with its box (the evidence the field extractor quotes)."""

    text: str
    page: int
    x0: float
    top: float
    x1: float
    bottom: float
    doubtful: frozenset[str] = frozenset()
    """`word_key`s of the words on this line the engine read with low confidence."""


@dataclass(frozen=True)
class OcrResult:
    text: str
    lines: tuple[Line, ...]
    words: tuple[Word, ...]


class Engine(Protocol):
    name: str

    def is_available(self) -> str | None:
        """The engine's version when it can run here, else None."""

    def to_text(
        self,
        image: Image.Image,
        *,
        languages: str,
        psm: int,
        timeout_s: float,
        page: int = 0,
        upright: bool = False,
        head_rows: int | None = None,
    ) -> OcrResult:
        """Read the prepared grayscale image; raise OcrTimeout past `timeout_s`.
        `upright`: the page is known to stand upright (an engine may then skip
        looking for upside-down text). `head_rows`: only the first rows of text
        are wanted (an engine may read less of the page)."""


def _for_tesseract(image: Image.Image) -> Image.Image:
    """pytesseract hands the image over as a temporary file in `image.format`,
    PNG by default: compressing a 2000 px page costs ~0.5 s of CPU per pass,
    about as much as the OCR itself. BMP is written in a millisecond (and a
    JPEG-decoded image is not re-encoded lossily either)."""
    uncompressed = image.copy()
    uncompressed.format = "BMP"
    return uncompressed


def alnum_count(text: str) -> int:
    return sum(ch.isalnum() for ch in text)


def good_words(result: OcrResult) -> int:
    """Words read with some confidence and at least three letters or digits. Raw
    character counts do not tell a sideways page from an upright one: tesseract
    reads a rotated page as plenty of confident-looking garbage of 1-2 letters."""
    return sum(
        1
        for w in result.words
        if (w.confidence is None or w.confidence >= 0.6) and alnum_count(w.text) >= 3
    )


DOUBTFUL_BELOW = 0.2
"""Word confidence under which a name read by OCR is not believed. Tesseract is
unsure of rare proper names even when it reads them right ("Kanc lers" 0.34,
"UNIHAKKA" 0.27, measured on receipt heads), so only the words it all but
guessed count: "(HM)" for "(M)" at 0.12, "NMIGLA" for "MIGLA" at 0.10."""


Doubts = Mapping[str, frozenset[str]]
"""`word_key` of a line's text -> the keys of the words on it OCR was unsure of."""


def line_doubts(lines: Sequence[Line]) -> dict[str, frozenset[str]]:
    """Doubtful words per line of text. A line read identically by several passes
    keeps only the words every reading doubted (they agree on the rest)."""
    out: dict[str, frozenset[str]] = {}
    for line in lines:
        key = word_key(line.text)
        out[key] = out[key] & line.doubtful if key in out else line.doubtful
    return {k: v for k, v in out.items() if v}


def found_little(result: OcrResult) -> bool:
    # Measured: upright receipts, even poor phone photos, give >= 20 good words at
    # psm 6; pages turned 90/180/270 degrees give 0-5. A ratio to all words also
    # caught noisy upright photos and cost them a needless 1.5 s OSD run.
    return good_words(result) < 10


class TesseractEngine:
    name = "tesseract"

    def is_available(self) -> str | None:
        try:
            return str(pytesseract.get_tesseract_version())
        except (pytesseract.TesseractNotFoundError, OSError):
            return None

    def languages(self) -> list[str]:
        try:
            return sorted(str(x) for x in pytesseract.get_languages(config="") if x != "osd")
        except (pytesseract.TesseractNotFoundError, pytesseract.TesseractError, OSError):
            return []

    def to_text(
        self,
        image: Image.Image,
        *,
        languages: str,
        psm: int,
        timeout_s: float,
        page: int = 0,
        upright: bool = False,
        head_rows: int | None = None,
    ) -> OcrResult:
        # tesseract's inverted-text pass stays on (the default): `-c tessedit_do_invert=0`
        # measured 16% less CPU per image with the same fields on the corpus, but loses a
        # shop name printed white on black (tests/unit/test_text.py).
        try:
            data: dict[str, list[Any]] = pytesseract.image_to_data(
                _for_tesseract(image),
                lang=languages,
                config=f"--psm {psm}",
                output_type=pytesseract.Output.DICT,
                timeout=max(timeout_s, 0.1),
            )
        # TesseractError subclasses RuntimeError, so it must be caught first.
        except pytesseract.TesseractError as exc:
            raise ExtractionError(f"tesseract failed: {exc.message}") from exc
        except RuntimeError as exc:  # pytesseract's "Tesseract process timeout"
            raise OcrTimeout(f"tesseract psm {psm} over {timeout_s:.1f} s") from exc
        return _from_tesseract_data(data, page)

    def rotation(self, image: Image.Image, *, timeout_s: float) -> int:
        """Degrees to rotate the image counter-clockwise (PIL's sense) to make it
        upright, by tesseract's orientation detection; 0 when unsure."""
        try:
            osd = pytesseract.image_to_osd(_for_tesseract(image), timeout=max(timeout_s, 0.1))
        except pytesseract.TesseractError:  # before RuntimeError, its base class
            return 0  # "Too few characters": nothing to orient by
        except RuntimeError as exc:  # pytesseract's "Tesseract process timeout"
            raise OcrTimeout(f"tesseract osd over {timeout_s:.1f} s") from exc
        rotate = re.search(r"Rotate:\s*(\d+)", osd)
        confidence = re.search(r"Orientation confidence:\s*([\d.]+)", osd)
        if not rotate or (confidence and float(confidence.group(1)) < 1.0):
            return 0
        # OSD's "Rotate" is clockwise; PIL's rotate() turns counter-clockwise.
        return (360 - int(rotate.group(1))) % 360


def _from_tesseract_data(data: dict[str, list[Any]], page: int) -> OcrResult:
    words: list[Word] = []
    grouped: dict[tuple[int, int, int], list[Word]] = {}
    for i, raw in enumerate(data["text"]):
        text = str(raw).strip()
        conf = float(data["conf"][i])
        if not text or conf < 0:  # conf -1 marks block/paragraph/line rows
            continue
        left, top = float(data["left"][i]), float(data["top"][i])
        word = Word(
            text=text,
            page=page,
            x0=left,
            top=top,
            x1=left + float(data["width"][i]),
            bottom=top + float(data["height"][i]),
            confidence=round(conf / 100.0, 3),
        )
        words.append(word)
        key = (int(data["block_num"][i]), int(data["par_num"][i]), int(data["line_num"][i]))
        grouped.setdefault(key, []).append(word)
    lines = tuple(_line(ws, page) for ws in grouped.values())
    return OcrResult(text="\n".join(line.text for line in lines), lines=lines, words=tuple(words))


def _line(words: list[Word], page: int) -> Line:
    return Line(
        text=" ".join(w.text for w in words),
        page=page,
        x0=min(w.x0 for w in words),
        top=min(w.top for w in words),
        x1=max(w.x1 for w in words),
        bottom=max(w.bottom for w in words),
        doubtful=frozenset(
            word_key(w.text)
            for w in words
            if w.confidence is not None and w.confidence < DOUBTFUL_BELOW and word_key(w.text)
        ),
    )


class RapidOcrEngine:
    """PP-OCRv4 through onnxruntime. Its models are Latin+Chinese, not per language,
    so `languages` and `psm` are ignored. It cannot be interrupted in-process, so
    the caller only starts it when the remaining budget covers its usual cost.

    Text boxes are found on a copy scaled to DET_LONG_SIDE and each box is read
    from the full image; on an `upright` page the per-box angle classifier is
    left out (see `recognise`)."""

    name = "rapidocr"

    def is_available(self) -> str | None:
        try:
            import rapidocr_onnxruntime  # noqa: F401
        except ImportError:
            return None
        try:
            return metadata.version("rapidocr-onnxruntime")
        except metadata.PackageNotFoundError:
            return "unknown"

    def to_text(
        self,
        image: Image.Image,
        *,
        languages: str,
        psm: int,
        timeout_s: float,
        page: int = 0,
        upright: bool = False,
        head_rows: int | None = None,
    ) -> OcrResult:
        import numpy as np

        try:
            found = recognise(
                np.asarray(image.convert("RGB")), upright=upright, head_rows=head_rows
            )
        except Exception as exc:  # onnxruntime/opencv raise many types; all mean "failed"
            raise ExtractionError(f"rapidocr failed: {exc}") from exc
        words = []
        for box, text, score in found:
            xs = [float(p[0]) for p in box]
            ys = [float(p[1]) for p in box]
            words.append(
                Word(str(text), page, min(xs), min(ys), max(xs), max(ys), round(float(score), 3))
            )
        lines = tuple(_line(row, page) for row in _rows(words))
        return OcrResult(
            text="\n".join(line.text for line in lines), lines=lines, words=tuple(words)
        )


DET_LONG_SIDE = 1280
"""Long side of the copy RapidOCR's detector looks for text boxes on. Its cost
grows with the pixels (measured on one thread: ~1.0 s at 2000 px, ~0.3 s at
1280 px); the boxes found are scaled back and read from the full image, so
recognition still reads every pixel. Measured over the receipt corpus against
detection at 2000 px: 10 fields more read right (SROIE and Latvian names, a
Nordic photo's VAT number and model), 4 fewer (three Latvian names whose closing
quote or space was lost, a date), none wrong; at 1600 px fewer gains, at 1024 px
two fields read wrong."""


def recognise(
    rgb: Any, *, upright: bool, head_rows: int | None = None
) -> list[tuple[Any, str, float]]:
    """(box corners in `rgb`'s pixels, text, score) of each text box RapidOCR reads
    with at least its own minimum score, top to bottom. `upright`: the page is
    known to stand upright (tesseract read it, or OSD turned it), so each box is
    read as it lies, without the angle classifier: on upright receipts it turned
    a few boxes by 180 degrees into debris ("YVVVVVVVVV") or lost the line; no
    field of the corpus changed without it, and it costs ~0.05 s a page.
    `head_rows`: boxes are found on the whole page but only those on its first
    rows are read (recognition is most of the cost, per box)."""
    import cv2
    import numpy as np

    engine = _rapidocr()
    height, width = rgb.shape[:2]
    if height <= engine.min_height or width > height * engine.width_height_ratio:
        # A strip of one line: RapidOCR pads it first, as its own call does.
        result, _ = engine(rgb, use_cls=not upright)
        return [(box, _normalise(str(text)), float(score)) for box, text, score in result or []]
    factor = min(1.0, DET_LONG_SIDE / max(height, width))
    small = rgb
    if factor < 1.0:
        size = (max(1, round(width * factor)), max(1, round(height * factor)))
        small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    boxes, _ = engine.auto_text_det(small)
    if boxes is None or not len(boxes):
        return []
    scaled = [np.asarray(box, dtype=np.float32) / np.float32(factor) for box in boxes]
    for box in scaled:
        box[:, 0] = np.clip(box[:, 0], 0, width - 1)
        box[:, 1] = np.clip(box[:, 1], 0, height - 1)
    if head_rows is not None:
        scaled = _first_rows(scaled, head_rows)
    crops = engine.get_crop_img_list(rgb, scaled)
    if not upright:
        crops, _, _ = engine.text_cls(crops)
    read, _ = engine.text_rec(crops, False)
    return [
        (box.tolist(), _normalise(str(text)), float(score))
        for box, (text, score, *_) in zip(scaled, read, strict=True)
        if float(score) >= engine.text_score
    ]


def _first_rows(boxes: list[Any], count: int) -> list[Any]:
    """The boxes on the first `count` visual rows (as `_rows` joins them into lines)."""
    stand_ins = [
        Word(
            str(i),
            0,
            float(b[:, 0].min()),
            float(b[:, 1].min()),
            float(b[:, 0].max()),
            float(b[:, 1].max()),
        )
        for i, b in enumerate(boxes)
    ]
    rows = sorted(_rows(stand_ins), key=lambda row: min(w.top for w in row))[:count]
    wanted = {int(w.text) for row in rows for w in row}
    return [b for i, b in enumerate(boxes) if i in wanted]


def _normalise(text: str) -> str:
    """RapidOCR's models also read Chinese and print its full-width forms ("（",
    "：", "，") for ASCII punctuation; NFKC gives the ASCII the field rules expect."""
    return unicodedata.normalize("NFKC", text)


@functools.cache
def _rapidocr() -> Any:
    import cv2
    from rapidocr_onnxruntime import RapidOCR

    # One thread per model (onnxruntime) and for OpenCV's resizing: throughput
    # comes from one process per core, like tesseract, and the speed figures in
    # parsers.document.text were measured so.
    cv2.setNumThreads(1)
    # The detector takes the DET_LONG_SIDE copy as it is (its default enlarges
    # any image to 736 px on the short side first).
    return RapidOCR(
        intra_op_num_threads=1,
        inter_op_num_threads=1,
        det_limit_side_len=32,
        det_limit_type="min",
        rec_batch_num=REC_BATCH,
    )


REC_BATCH = 1
"""Text boxes RapidOCR's recogniser reads at once. A batch pads every box to the
widest one's width: one at a time measured ~30% less CPU on receipts, and read
fewer short boxes wrong ("PUN LU" for "PUN LV", "SULU-F" for "SULO-F")."""


def rapidocr_threads() -> dict[str, tuple[int, int]]:
    """(intra-op, inter-op) threads of each RapidOCR model session, for the tests."""
    engine = _rapidocr()
    out = {}
    for name, part in (
        ("det", engine.text_det),
        ("cls", engine.text_cls),
        ("rec", engine.text_rec),
    ):
        # the recogniser names its OrtInferSession `session`, the others `infer`
        wrapper = getattr(part, "infer", None) or part.session
        options = wrapper.session.get_session_options()
        out[name] = (int(options.intra_op_num_threads), int(options.inter_op_num_threads))
    return out


def _rows(words: list[Word]) -> list[list[Word]]:
    """Boxes on the same visual row joined left to right: RapidOCR returns the item
    name and its price as separate boxes, and the field rules read whole lines."""
    rows: list[list[Word]] = []
    for word in sorted(words, key=lambda w: (w.top + w.bottom) / 2):
        centre = (word.top + word.bottom) / 2
        if rows:
            last = rows[-1]
            top = sum(w.top for w in last) / len(last)
            bottom = sum(w.bottom for w in last) / len(last)
            if abs(centre - (top + bottom) / 2) < (bottom - top) / 2:
                last.append(word)
                continue
        rows.append([word])
    return [sorted(row, key=lambda w: w.x0) for row in rows]


TESSERACT = TesseractEngine()
ENGINES: dict[str, Engine] = {"tesseract": TESSERACT, "rapidocr": RapidOcrEngine()}
"""Every engine mailbot knows; `is_available()` says which can run here."""
