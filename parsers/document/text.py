"""Document -> text with positions: the first step of reading a proof of purchase.

Text PDFs are read through pdfplumber (exact words and boxes, ~0.1 s). PDF pages
without a text layer and images (JPEG, PNG) are prepared (EXIF orientation,
grayscale, ~2000 px long side) and OCR'd, in passes that each cost time only
when the previous one fell short:

1. tesseract `--psm 6` in the campaign's languages (never every installed
   language: 4x slower and no more accurate, measured);
2. orientation detection (`--psm 0`) only when pass 1 found (almost) nothing;
3. when `needs_more(text, doubts)` names required fields still missing or leaves
   the document kind open: RapidOCR (a standard dependency; `fallback_engines`)
   if the budget allows it (only the page's first `HEAD_ROWS` rows when the
   retailer is all that is missing; told whether the page is known upright), else
   tesseract `--psm 6` again over a flat-fielded copy (`parsers.document.imageprep.flat_field`:
   cropped to the ink, uneven light and paper grain subtracted), which read
   shaded A4 photos and scans that `--psm 11` also lost (measured).

The text of later passes is appended after the first, so an extractor reading
top-down still meets the receipt head first. One hard budget (`timeout_s`)
covers all passes: a document over budget returns what it has read so far,
never hangs. `read_many` reads in parallel, one process per core.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Literal, TypeVar

import pdfplumber
from PIL import Image

from mailbot.core.errors import ExtractionError
from parsers.document.budget import over_budget_in, pdf_budget
from parsers.document.imageprep import MAX_PIXELS, TARGET_LONG_SIDE, flat_field, open_image, prepare
from parsers.document.ocr import (
    ENGINES,
    TESSERACT,
    Doubts,
    Line,
    OcrResult,
    OcrTimeout,
    Word,
    alnum_count,
    found_little,
    good_words,
    line_doubts,
)
from parsers.mail.attachments import sniff_type

_Boxed = TypeVar("_Boxed", Line, Word)

__all__ = ["DocumentText", "Line", "Word", "is_available", "read_document", "read_many"]

Source = Literal["pdf-text", "ocr"]
NeedsMore = Callable[[str, Doubts], Collection[str]]
"""The required fields still missing from the text read so far (empty: enough);
the second argument tells which words of which lines OCR was unsure of."""


FIRST_PSM = 6  # one uniform block: receipts and invoices are mostly that
SECOND_PSM = 6  # the same, over the flat-fielded image (measured better than psm 11)
PAGE_HAS_TEXT = 10
"""Alphanumerics on a PDF page below which it is a scan and gets OCR'd."""
MAX_PDF_PAGES = 10
MAX_OCR_PAGES = 3
MAX_PDF_IMAGES = 4
"""Embedded images OCR'd per page of a text PDF (logos, a footer, a stamp)."""
PDF_IMAGE_DPI = 300
"""Proofs of purchase carry their fields on the first pages; more is only cost."""
FALLBACK_ENGINES = ("rapidocr",)
HEAD_ROWS = 12
"""Rows of text the fallback engine reads when only the retailer is missing:
the head lines the retailer rules look at (`head_lines`, 8) and the shop's
details under its name. Measured over the receipt corpus: every name RapidOCR
found stood on its first two rows; reading 12 rows instead of the page gave the
same fields on every document and took RapidOCR's median from 1.7 to 1.1 s CPU
(it is asked for the name alone on 40 of its 76 documents)."""
FALLBACK_MIN_BUDGET_S = 4.0
"""RapidOCR cannot be killed mid-run: start it only with this much budget left
(measured on one thread over the receipt corpus: median 1.2 s, p90 2.0 s, at most
3.4 s CPU per photo, plus 0.4 s to load its models once per worker)."""


@dataclass(frozen=True)
class DocumentText:
    """What a document says, as text and as positioned lines and words."""

    text: str
    source: Source
    pages: int
    seconds: float
    lines: tuple[Line, ...] = ()
    words: tuple[Word, ...] = ()
    notes: tuple[str, ...] = ()
    """What was done, for `mailbot rules test` and the logs ("tesseract psm 6 eng 0.71s")."""
    timed_out: bool = False
    """The budget ran out: the text is what the passes that finished read."""

    @property
    def doubts(self) -> Doubts:
        """Words OCR read with low confidence, per line (none for a PDF text layer)."""
        return line_doubts(self.lines)


@dataclass
class _Reading:
    """Accumulates passes of one document."""

    deadline: float
    texts: list[str] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    words: list[Word] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    timed_out: bool = False

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def add(self, result: OcrResult | None) -> None:
        if result is None or not result.text.strip():
            return
        self.texts.append(result.text)
        self.lines.extend(result.lines)
        self.words.extend(result.words)

    def text(self) -> str:
        return "\n\n".join(self.texts)


def read_document(
    content: bytes,
    mime: str,
    *,
    languages: str = "eng",
    timeout_s: float = 15,
    needs_more: NeedsMore | None = None,
    fallback_engines: Sequence[str] = FALLBACK_ENGINES,
) -> DocumentText:
    """Read a PDF, JPEG or PNG. Raises ExtractionError when the content cannot be
    decoded at all; running out of time is not an error (see `timed_out`)."""
    started = time.monotonic()
    reading = _Reading(deadline=started + timeout_s)
    kind = mime if mime in ("application/pdf", "image/jpeg", "image/png") else sniff_type(content)
    if kind == "application/pdf":
        source, pages = _read_pdf(content, reading, languages, needs_more, fallback_engines)
    elif kind is not None and kind.startswith("image/"):
        image = prepare(open_image(content))
        _read_image(image, 0, reading, languages, needs_more, fallback_engines)
        source, pages = "ocr", 1
    else:
        raise ExtractionError(f"not a PDF or image: {mime or 'unknown type'}")
    return DocumentText(
        text=reading.text(),
        source=source,
        pages=pages,
        seconds=round(time.monotonic() - started, 3),
        lines=tuple(reading.lines),
        words=tuple(reading.words),
        notes=tuple(reading.notes),
        timed_out=reading.timed_out,
    )


def _read_pdf(
    content: bytes,
    reading: _Reading,
    languages: str,
    needs_more: NeedsMore | None,
    fallback_engines: Sequence[str],
) -> tuple[Source, int]:
    source: Source = "pdf-text"
    ocr_pages = 0
    try:
        # pdfminer's parsing, inflating and layout are bounded by the same budget
        # as OCR (`parsers.document.budget`): past it the document is unreadable.
        with pdf_budget(reading.remaining()), pdfplumber.open(io.BytesIO(content)) as pdf:
            pages = len(pdf.pages)
            for number, page in enumerate(pdf.pages[:MAX_PDF_PAGES]):
                if reading.remaining() <= 0:
                    reading.timed_out = True
                    reading.notes.append(f"pages from {number + 1} not read (budget spent)")
                    break
                result = _pdf_page_text(page, number)
                if alnum_count(result.text) >= PAGE_HAS_TEXT:
                    reading.add(result)
                    continue
                # No text layer: a scan inside a PDF. Render at the resolution
                # that gives the ~2000 px long side OCR reads best.
                if ocr_pages >= MAX_OCR_PAGES:
                    reading.notes.append(f"page {number + 1} not OCR'd (page limit)")
                    continue
                source, ocr_pages = "ocr", ocr_pages + 1
                dpi = render_dpi(float(page.width), float(page.height), TARGET_LONG_SIDE)
                image = page.to_image(resolution=dpi).original
                _read_image(
                    prepare(image), number, reading, languages, needs_more, fallback_engines
                )
            if source == "pdf-text" and needs_more is not None:
                _read_pdf_images(pdf.pages[:MAX_OCR_PAGES], reading, languages, needs_more)
    except ExtractionError:
        raise
    except Exception as exc:  # pdfminer/pypdfium2 raise a zoo of types for broken files
        over = over_budget_in(exc)
        if over is not None:  # pdfplumber wraps what pdfminer raised
            raise over from exc
        raise ExtractionError(f"unreadable PDF: {type(exc).__name__}: {exc}") from exc
    if source == "pdf-text":
        reading.notes.append(f"pdf text layer, {pages} page(s)")
    return source, pages


def render_dpi(width_pt: float, height_pt: float, long_side_px: float) -> int:
    """The resolution rendering a width x height pt box at about `long_side_px`
    on its long side (at most 400 dpi), and never to more than MAX_PIXELS: a page
    or image box can claim any size, and pdfium renders what it is asked for."""
    long_side = max(width_pt, height_pt, 1.0)
    dpi = min(400.0, long_side_px * 72 / long_side)
    pixels = (width_pt * dpi / 72) * (height_pt * dpi / 72)
    if pixels > MAX_PIXELS:
        dpi *= (MAX_PIXELS / pixels) ** 0.5 * 0.99
    return max(1, int(dpi))


def _read_pdf_images(
    pages: Sequence[pdfplumber.page.Page], reading: _Reading, languages: str, needs_more: NeedsMore
) -> None:
    """A text PDF can still carry a field only as a picture (the seller's footer
    with its VAT number pasted in as an image): when required fields are
    missing from the text layer, OCR the larger embedded images, each rendered
    at about 300 dpi of its own size (never the whole page: that costs seconds)."""
    if not needs_more(reading.text(), {}):
        return
    for number, page in enumerate(pages):
        for found in page.images[:MAX_PDF_IMAGES]:
            box = (
                float(found["x0"]),
                float(found["top"]),
                float(found["x1"]),
                float(found["bottom"]),
            )
            width_pt, height_pt = box[2] - box[0], box[3] - box[1]
            if width_pt < 100 or height_pt < 20 or reading.remaining() <= 0:
                continue  # icons and rules are no text worth the time
            clipped = page.crop(box, strict=False)
            dpi = render_dpi(width_pt, height_pt, PDF_IMAGE_DPI * max(width_pt, height_pt) / 72)
            image = clipped.to_image(resolution=dpi).original
            result = _tesseract(prepare(image), number, reading, languages, FIRST_PSM)
            reading.add(result)
            reading.notes.append(f"embedded image on page {number + 1} OCR'd")
            if not needs_more(reading.text(), {}):
                return


def _pdf_page_text(page: pdfplumber.page.Page, number: int) -> OcrResult:
    lines = tuple(
        _boxed(Line, raw, number)
        for raw in page.extract_text_lines(layout=False, strip=True, return_chars=False)
    )
    words = tuple(_boxed(Word, raw, number) for raw in page.extract_words())
    return OcrResult(text="\n".join(line.text for line in lines), lines=lines, words=words)


def _boxed(kind: type[_Boxed], raw: dict[str, Any], number: int) -> _Boxed:
    """A pdfplumber line or word (its text and box in PDF points) as ours."""
    return kind(
        text=str(raw["text"]),
        page=number,
        x0=float(raw["x0"]),
        top=float(raw["top"]),
        x1=float(raw["x1"]),
        bottom=float(raw["bottom"]),
    )


def _read_image(
    image: Image.Image,
    page: int,
    reading: _Reading,
    languages: str,
    needs_more: NeedsMore | None,
    fallback_engines: Sequence[str],
) -> None:
    """The OCR passes for one prepared image (or rendered PDF page)."""
    first = _tesseract(image, page, reading, languages, FIRST_PSM)
    if first is None:
        return
    # Tesseract reads an upright page as plenty of good words and a turned one as
    # almost none (`found_little`), so a page it read, or that OSD turned, stands upright.
    upright = not found_little(first)
    if not upright and reading.remaining() > 0:
        # Nothing readable: maybe a sideways photo without EXIF. OSD is cheap
        # only relative to a wasted pass, so it runs only in this case.
        try:
            angle = TESSERACT.rotation(image, timeout_s=reading.remaining())
        except OcrTimeout:
            reading.timed_out = True
            reading.notes.append("osd killed (budget)")
            angle = -1
        if not angle:
            reading.notes.append("osd: no rotation found")
        elif angle > 0:
            reading.notes.append(f"osd: rotated {angle} degrees")
            turned_image = image.rotate(angle, expand=True, fillcolor=255)
            turned = _tesseract(turned_image, page, reading, languages, FIRST_PSM)
            if turned is not None and good_words(turned) > good_words(first):
                first, image, upright = turned, turned_image, True
    reading.add(first)
    missing = needs_more(reading.text(), line_doubts(reading.lines)) if needs_more else ()
    if not missing:
        return
    # Measured on phone photos: RapidOCR's text alone finds everything tesseract
    # psm 6 + psm 11 find and more, so with an optional engine installed (and
    # time for it) the second tesseract pass is skipped.
    for name in fallback_engines:
        engine = ENGINES.get(name)
        if engine is None or engine.is_available() is None:
            continue
        if reading.remaining() < FALLBACK_MIN_BUDGET_S:
            reading.notes.append(f"{name} skipped: {reading.remaining():.1f} s of budget left")
            continue
        started = time.monotonic()
        # A shop's name stands at the head of the page: where it is all that is
        # missing, the engine reads only the first rows.
        head = HEAD_ROWS if tuple(missing) == ("retailer",) else None
        result = engine.to_text(
            image,
            languages=languages,
            psm=0,
            timeout_s=reading.remaining(),
            upright=upright,
            head_rows=head,
        )
        what = f" (first {head} rows)" if head else ""
        reading.notes.append(f"{name} {time.monotonic() - started:.2f}s{what}")
        reading.add(result)
        return
    # Without one: tesseract psm 6 again over the flat-fielded image (crop to the
    # ink, background subtracted; see `flat_field`). Measured on nordic, lv and
    # sroie (bench/extraction.py, 1 worker): it replaced a psm 11 pass over the
    # same image and took nordic from 0.80-0.85 to 1.00 on retailer, date and
    # VAT (A4 photos and scans of small print on shaded, grainy paper that psm 6
    # and psm 11 both read as debris), lv unchanged, sroie date 0.86 -> 0.84 (psm
    # 11 found 2 more there), for +0.3 s median per image (2.1 s against 1.8 s).
    # Running psm 11 after it as well: +1 right field overall, +0.7 s median: not kept.
    # A cheaper flat field (ink located on a 400 px copy, background blurred at
    # quarter size) saved 0.1 s per pass but cost sroie 6 dates: not kept.
    if reading.remaining() <= 0:
        reading.timed_out = True
        reading.notes.append("flat-field skipped: budget spent")
        return
    started = time.monotonic()
    # Reading only the page head when only the shop's name is missing was
    # measured and dropped: tesseract's start-up dominates a small image (0.4 s
    # against 0.5 s for the page) and sroie lost 3 names and a date it had.
    cleaned = flat_field(image)
    reading.notes.append(f"flat-field {time.monotonic() - started:.2f}s")
    reading.add(_tesseract(cleaned, page, reading, languages, SECOND_PSM))


def _tesseract(
    image: Image.Image, page: int, reading: _Reading, languages: str, psm: int
) -> OcrResult | None:
    """One tesseract pass within the remaining budget; None when time ran out."""
    remaining = reading.remaining()
    if remaining <= 0:
        reading.timed_out = True
        reading.notes.append(f"tesseract psm {psm} skipped: budget spent")
        return None
    started = time.monotonic()
    try:
        result = TESSERACT.to_text(
            image, languages=languages, psm=psm, timeout_s=remaining, page=page
        )
    except OcrTimeout:
        reading.timed_out = True
        reading.notes.append(f"tesseract psm {psm} killed after {remaining:.1f} s (budget)")
        return None
    reading.notes.append(f"tesseract psm {psm} {languages} {time.monotonic() - started:.2f}s")
    return result


def _read_one(
    item: tuple[bytes, str],
    languages: str,
    timeout_s: float,
    needs_more: NeedsMore | None,
) -> DocumentText | ExtractionError:
    try:
        return read_document(
            item[0], item[1], languages=languages, timeout_s=timeout_s, needs_more=needs_more
        )
    except ExtractionError as exc:  # returned, not raised: one bad file must not sink the batch
        return exc


def read_many(
    items: Iterable[tuple[bytes, str]],
    *,
    workers: int | None = None,
    languages: str = "eng",
    timeout_s: float = 15,
    needs_more: NeedsMore | None = None,
) -> list[DocumentText | ExtractionError]:
    """Read (content, mime) pairs in parallel, results in input order. One process
    per core, each running one single-threaded tesseract: scales better than
    tesseract's own threads. `needs_more` must be picklable (a module-level
    function or a functools.partial of one)."""
    batch = list(items)
    count = workers or os.cpu_count() or 1
    if count <= 1 or len(batch) <= 1:
        return [_read_one(item, languages, timeout_s, needs_more) for item in batch]
    with ProcessPoolExecutor(max_workers=min(count, len(batch))) as pool:
        futures = [pool.submit(_read_one, item, languages, timeout_s, needs_more) for item in batch]
        return [future.result() for future in futures]


def is_available() -> dict[str, str | None]:
    """Versions of what reading needs, for `mailbot check`: None means missing."""
    report: dict[str, str | None] = {}
    for name, engine in ENGINES.items():
        report[name] = engine.is_available()
    installed = TESSERACT.languages() if report["tesseract"] else []
    report["tesseract_languages"] = "+".join(installed) or None
    report["osd"] = "yes" if report["tesseract"] and _has_osd() else None
    try:
        report["pdfplumber"] = metadata.version("pdfplumber")
    except metadata.PackageNotFoundError:
        report["pdfplumber"] = None
    return report


def _has_osd() -> bool:
    import pytesseract

    try:
        return "osd" in pytesseract.get_languages(config="")
    except (pytesseract.TesseractError, OSError):
        return False
