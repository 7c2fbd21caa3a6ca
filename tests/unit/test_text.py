"""parsers.document.text / parsers.document.ocr: documents rendered here, read back.

Receipts are drawn with Pillow (DejaVu when installed), PDFs written by hand
(text layer) or by Pillow (scan); nothing comes from the corpus.
"""

from __future__ import annotations

import io
import random
import time
from typing import Any

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageFilter

from mailbot.core.errors import ExtractionError
from parsers.document import ocr
from parsers.document.imageprep import flat_field, open_image, prepare
from parsers.document.ocr import ENGINES
from parsers.document.text import (
    FALLBACK_MIN_BUDGET_S,
    DocumentText,
    is_available,
    read_document,
    read_many,
)
from tests._formats import needs_tesseract
from tests.golden.make_fixtures import (
    font,
    jpeg_with_exif_rotation,
    png,
    render_receipt,
    scanned_pdf,
    text_pdf,
)

LINES = [
    "ELEKTROHUSET AS",
    "Storgata 12, 0155 Oslo",
    "Org.nr 912 345 688 MVA",
    "Dato: 21.11.2022 15:43",
    "Sonos One 2 490,00",
    "TOTAL 2 495,00",
    "Takk for handelen!",
]


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def _assert_read(doc: DocumentText) -> None:
    assert "912345688" in _digits(doc.text)
    assert "21.11.2022" in doc.text
    assert "Sonos One" in doc.text


def test_text_pdf_read_from_its_text_layer_with_positions() -> None:
    doc = read_document(text_pdf(LINES), "application/pdf")
    assert doc.source == "pdf-text"
    assert doc.pages == 1
    _assert_read(doc)
    assert doc.text.splitlines()[0] == "ELEKTROHUSET AS"
    first = doc.lines[0]
    assert first.text == "ELEKTROHUSET AS" and first.page == 0
    assert 0 < first.x0 < first.x1 and 0 < first.top < first.bottom
    # Lines run top to bottom; words carry boxes and exact text (no confidence).
    assert [ln.top for ln in doc.lines] == sorted(ln.top for ln in doc.lines)
    org = next(w for w in doc.words if w.text == "Org.nr")
    assert org.confidence is None and org.top == doc.lines[2].top
    assert doc.seconds < 5


def test_mime_is_sniffed_when_not_given() -> None:
    assert read_document(text_pdf(LINES), "").source == "pdf-text"


@needs_tesseract
def test_scanned_pdf_is_rendered_and_ocrd() -> None:
    doc = read_document(scanned_pdf(render_receipt(LINES, size=24)), "application/pdf")
    assert doc.source == "ocr"
    _assert_read(doc)
    assert any(w.confidence is not None for w in doc.words)


@needs_tesseract
def test_png_receipt_with_word_boxes() -> None:
    doc = read_document(png(render_receipt(LINES)), "image/png")
    assert doc.source == "ocr" and doc.pages == 1
    _assert_read(doc)
    assert doc.notes and doc.notes[0].startswith("tesseract psm 6 eng")
    word = next(w for w in doc.words if w.text == "Storgata")
    assert word.x1 > word.x0 and word.bottom > word.top and 0 < (word.confidence or 0) <= 1


@needs_tesseract
def test_exif_orientation_applied_before_ocr() -> None:
    content = jpeg_with_exif_rotation(render_receipt(LINES), orientation=6)
    stored = Image.open(io.BytesIO(content))
    assert stored.height > stored.width  # the pixels really are sideways
    assert open_image(content).width > open_image(content).height
    doc = read_document(content, "image/jpeg")
    _assert_read(doc)
    assert not any(n.startswith("osd") for n in doc.notes)  # EXIF sufficed


@needs_tesseract
def test_upside_down_scan_without_exif_is_turned_by_osd() -> None:
    content = png(render_receipt(LINES).rotate(180))
    doc = read_document(content, "image/png")
    assert any(n.startswith("osd: rotated 180") for n in doc.notes)
    _assert_read(doc)


def test_small_scan_upscaled_and_grayscale_without_binarization() -> None:
    small = render_receipt(LINES, size=12).convert("RGB")
    assert max(small.size) < 700
    prepared = prepare(small)
    assert prepared.mode == "L"
    assert max(prepared.size) > max(small.size) * 2
    # Anti-aliased edges keep their grey levels: no fixed threshold was applied.
    assert sum(1 for count in prepared.histogram() if count) > 2


def test_large_photo_scaled_down_to_about_2000_px() -> None:
    prepared = prepare(Image.new("RGB", (3000, 4000), "white"))
    assert max(prepared.size) == 2000 and prepared.size[0] == 1500


@needs_tesseract
def test_small_scan_is_read() -> None:
    doc = read_document(png(render_receipt(LINES, size=12)), "image/png")
    _assert_read(doc)


@needs_tesseract
def test_languages_come_from_the_caller() -> None:
    doc = read_document(png(render_receipt(LINES)), "image/png", languages="nor+eng")
    assert "nor+eng" in doc.notes[0]
    assert "Takk for handelen" in doc.text


@needs_tesseract
def test_second_pass_only_when_fields_missing() -> None:
    content = png(render_receipt(LINES))
    asked: list[str] = []

    def satisfied(text: str, doubts: object) -> tuple[str, ...]:
        asked.append(text)
        return ()

    once = read_document(content, "image/png", needs_more=satisfied)
    assert len(asked) == 1 and "Sonos One" in asked[0]
    assert not any(n.startswith("flat-field") for n in once.notes)

    twice = read_document(
        content, "image/png", needs_more=lambda t, d: ("vat_number",), fallback_engines=()
    )
    assert any(n.startswith("flat-field") for n in twice.notes)
    # Later passes are appended: the first pass's head of the receipt still leads.
    assert twice.text.startswith(once.text)
    assert len(twice.words) > len(once.words)


@needs_tesseract
def test_time_budget_is_honoured_and_partial_result_returned() -> None:
    noise = Image.effect_noise((2000, 2600), 120).filter(ImageFilter.GaussianBlur(1))
    started = time.monotonic()
    doc = read_document(
        png(noise), "image/png", timeout_s=0.5, needs_more=lambda t, d: ("vat_number",)
    )
    # Generous: the CPU is shared; unbounded, this noise keeps tesseract busy far longer.
    assert time.monotonic() - started < 20
    assert doc.timed_out
    assert any("killed" in n or "skipped" in n for n in doc.notes)

    # Without time for the optional engine, it is skipped and the text read so far kept.
    started = time.monotonic()
    content = png(render_receipt(LINES))
    doc = read_document(
        content,
        "image/png",
        timeout_s=FALLBACK_MIN_BUDGET_S - 0.5,
        needs_more=lambda t, d: ("vat_number",),
    )
    assert time.monotonic() - started < 30
    if ENGINES["rapidocr"].is_available():
        assert any(n.startswith("rapidocr skipped") for n in doc.notes)
    if not any("killed" in n for n in doc.notes):  # the host was not too busy for psm 6
        assert "Sonos One" in doc.text


@pytest.mark.parametrize(
    ("content", "mime"),
    [
        (b"this is not a document", "text/plain"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "image/png"),
        (b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF", "application/pdf"),
        (b"", ""),
    ],
)
def test_unreadable_input_raises_extraction_error(content: bytes, mime: str) -> None:
    with pytest.raises(ExtractionError):
        read_document(content, mime)


@needs_tesseract
def test_read_many_keeps_order_and_isolates_failures() -> None:
    items = [
        (text_pdf(["first Org.nr 912 345 688"]), "application/pdf"),
        (b"garbage", ""),
        (png(render_receipt(["SECOND RECEIPT 2022"])), "image/png"),
    ]
    results = read_many(items, workers=2)
    assert isinstance(results[0], DocumentText) and "first" in results[0].text
    assert isinstance(results[1], ExtractionError)
    assert isinstance(results[2], DocumentText) and "SECOND" in results[2].text


def test_is_available_reports_versions() -> None:
    report = is_available()
    assert {"tesseract", "tesseract_languages", "pdfplumber", "rapidocr"} <= set(report)
    assert report["pdfplumber"]
    if report["tesseract"]:
        assert "eng" in (report["tesseract_languages"] or "").split("+")


@needs_tesseract
@pytest.mark.slow
def test_optional_engine_runs_only_when_fields_missing() -> None:
    # a standard dependency: missing, it is a failure, not a skip
    assert ENGINES["rapidocr"].is_available() is not None
    content = png(render_receipt(LINES))
    doc = read_document(
        content, "image/png", needs_more=lambda t, d: ("product",) if "Sonos One" not in t else ()
    )
    assert not any(n.startswith("rapidocr") for n in doc.notes)
    doc = read_document(content, "image/png", timeout_s=60, needs_more=lambda t, d: ("vat_number",))
    assert any(n.startswith("rapidocr ") for n in doc.notes)
    assert not any(n.startswith("flat-field") for n in doc.notes)  # it replaces that pass
    rapid_lines = [ln.text for ln in doc.lines[len(doc.lines) // 2 :]]
    # Boxes on one row are joined: the item and its price make one line.
    assert any("Sonos" in ln and "490" in ln for ln in rapid_lines)


def _shaded_a4(seed: int = 0) -> Image.Image:
    """An A4 photo of small, faint print under uneven light: the page darkens from
    the top-left corner (grey 245) to the bottom-right (grey 10), with blurred
    paper grain (deterministic), and the receipt printed 50 grey levels darker
    than the paper in the light corner."""
    width, height = 1400, 1980
    across = Image.linear_gradient("L").rotate(90).resize((width, height))
    down = Image.linear_gradient("L").resize((width, height))
    shade = ImageChops.add(across, down, scale=2.0).point(lambda v: 245 - v * 235 // 255)
    grain = Image.frombytes("L", (width, height), random.Random(seed).randbytes(width * height))
    grain = grain.point(lambda v: 128 + (v - 128) // 16).filter(ImageFilter.GaussianBlur(1))
    page = ImageChops.add(shade, grain, offset=-128)
    ink = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(ink)
    for i, line in enumerate(LINES):
        draw.text((80, 120 + i * 28), line, font=font(18), fill=50)
    return ImageChops.subtract(page, ink)


def test_flat_field_evens_the_light_and_crops_to_the_ink() -> None:
    page = prepare(_shaded_a4())
    # The shadow: the paper is far darker at the bottom right than at the top left.
    assert page.getpixel((40, 40)) - page.getpixel((page.width - 40, page.height - 40)) > 150
    flat = flat_field(page)
    assert flat.mode == "L" and abs(max(flat.size) - 2000) <= 100
    corners = [(5, 5), (flat.width - 5, 5), (5, flat.height - 5), (flat.width - 5, flat.height - 5)]
    assert all(flat.getpixel(xy) >= 200 for xy in corners)  # paper white everywhere
    assert flat.getextrema()[0] == 0  # the ink is black

    # Little ink on a white page: the crop keeps the ink and scales it up (at
    # most 3x, like `prepare`).
    small = Image.new("L", (1400, 1980), 255)
    ImageDraw.Draw(small).text((600, 900), "Org.nr 912 345 688", font=font(20), fill=0)
    cropped = flat_field(small)
    assert cropped.width < 1400 and max(cropped.size) <= 3 * 400
    assert cropped.getextrema()[0] == 0


@needs_tesseract
def test_flat_field_pass_reads_what_the_first_pass_misses() -> None:
    content = png(_shaded_a4())
    first = read_document(content, "image/png")
    assert "912345688" not in _digits(first.text)  # Otsu over the shadow loses the print

    doc = read_document(
        content,
        "image/png",
        needs_more=lambda t, d: ("vat_number",) if "912345688" not in _digits(t) else (),
        fallback_engines=(),
    )
    assert any(n.startswith("flat-field") for n in doc.notes)
    _assert_read(doc)


def test_split_lines_numbers_rows_within_each_blank_line_block() -> None:
    from parsers.receipt.ocrtext import split_lines

    lines = split_lines("HEAD ONE\nbody\n\n\nHEAD TWO\n|\nbody two")
    assert [(ln.text, ln.block, ln.row) for ln in lines] == [
        ("HEAD ONE", 0, 0),
        ("body", 0, 1),
        ("HEAD TWO", 1, 0),
        ("body two", 1, 1),
    ]


@needs_tesseract
def test_text_pdf_field_only_in_an_embedded_image_is_read_when_missing() -> None:
    from mailbot.devtools.samples import receipt_image

    footer = Image.open(io.BytesIO(receipt_image(["Org.nr 912 345 688 MVA"], width=1400)))
    body = [line for line in LINES if not line.startswith("Org.nr")]
    content = text_pdf(body, footer=footer)
    plain = read_document(content, "application/pdf")
    assert "912345688" not in _digits(plain.text)  # not in the text layer
    asked = read_document(
        content,
        "application/pdf",
        needs_more=lambda t, d: ("vat_number",) if "912345688" not in _digits(t) else (),
    )
    assert "912345688" in _digits(asked.text)
    assert asked.source == "pdf-text"
    assert any("embedded image" in n for n in asked.notes)
    # Nothing missing: the image is not read (text PDFs stay fast).
    done = read_document(content, "application/pdf", needs_more=lambda t, d: ())
    assert not any("embedded image" in n for n in done.notes)


@needs_tesseract
def test_a_shop_name_printed_white_on_black_is_read() -> None:
    # Receipts print the shop's name in an inverted banner. Tesseract reads it only
    # with its inverted-text pass (tessedit_do_invert, on by default): turning that
    # off saves ~16% CPU per image and loses such names (measured), so it stays on.
    image = Image.new("L", (760, 420), 255)
    draw = ImageDraw.Draw(image)
    draw.rectangle((20, 20, 740, 90), fill=0)
    draw.text((50, 32), "LYDHUSET BERGEN AS", fill=255, font=font(40))
    for i, line in enumerate(LINES[1:5]):
        draw.text((40, 120 + i * 50), line, fill=0, font=font(28))
    doc = read_document(png(image), "image/png")
    assert "LYDHUSET BERGEN AS" in doc.text
    _assert_read(doc)


# --- RapidOCR: what it reads of the page, and how cheaply ----------------------


def _tall_receipt() -> Image.Image:
    """A receipt whose prepared image is ~2000 px long: over DET_LONG_SIDE."""
    lines = [*LINES, *(f"Vare {n} {n}9,00" for n in range(10, 24))]
    return prepare(render_receipt(lines, size=40))


def test_rapidocr_finds_boxes_on_a_smaller_copy_and_reads_them_in_full(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = ocr._rapidocr()
    seen: dict[str, list[tuple[int, ...]]] = {"det": [], "crop": [], "cls": []}
    detect, crop, classify = engine.auto_text_det, engine.get_crop_img_list, engine.text_cls

    def spy_det(img: Any) -> Any:
        seen["det"].append(img.shape)
        return detect(img)

    def spy_crop(img: Any, boxes: Any) -> Any:
        seen["crop"].append(img.shape)
        return crop(img, boxes)

    def spy_cls(crops: Any) -> Any:
        seen["cls"].append((len(crops),))
        return classify(crops)

    monkeypatch.setattr(engine, "auto_text_det", spy_det)
    monkeypatch.setattr(engine, "get_crop_img_list", spy_crop)
    monkeypatch.setattr(engine, "text_cls", spy_cls)
    image = _tall_receipt()
    assert max(image.size) > ocr.DET_LONG_SIDE
    read = ENGINES["rapidocr"].to_text(image, languages="eng", psm=0, timeout_s=30, upright=True)
    assert max(seen["det"][0][:2]) <= ocr.DET_LONG_SIDE
    assert seen["crop"][0][:2] == (image.height, image.width)  # boxes read from the full image
    assert not seen["cls"]  # an upright page: no angle classifier
    assert "912345688" in _digits(read.text) and "ELEKTROHUSET AS" in read.text
    # Boxes are in the full image's pixels: the last line lies below DET_LONG_SIDE.
    assert max(w.bottom for w in read.words) > ocr.DET_LONG_SIDE
    assert max(w.bottom for w in read.words) <= image.height

    # Only the head: the first rows are read, the rest not even recognised.
    head = ENGINES["rapidocr"].to_text(
        image, languages="eng", psm=0, timeout_s=30, upright=False, head_rows=2
    )
    assert seen["cls"] == [(2,)]  # not known upright: classified, two rows of one box each
    assert "ELEKTROHUSET" in head.text and "Storgata" in head.text
    assert "Sonos" not in head.text and len(head.lines) == 2


def test_rapidocr_full_width_punctuation_read_as_ascii(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = ocr._rapidocr()

    def chinese_forms(crops: Any, word_box: bool) -> Any:
        return [("Date：9/3/2018（JOHOR）", 0.99) for _ in crops], 0.0

    monkeypatch.setattr(engine, "text_rec", chinese_forms)
    image = prepare(render_receipt(LINES[:1], size=40))
    read = ENGINES["rapidocr"].to_text(image, languages="eng", psm=0, timeout_s=30, upright=True)
    assert read.words and all(w.text == "Date:9/3/2018(JOHOR)" for w in read.words)


@needs_tesseract
def test_only_the_retailer_missing_reads_the_head_with_rapidocr() -> None:
    content = png(_tall_receipt())
    doc = read_document(content, "image/png", timeout_s=60, needs_more=lambda t, d: ("retailer",))
    assert any(n.startswith("rapidocr ") and "(first 12 rows)" in n for n in doc.notes)
    rapid = doc.text.split("\n\n")[-1]
    assert "ELEKTROHUSET" in rapid and "Vare 23" not in rapid
    doc = read_document(content, "image/png", timeout_s=60, needs_more=lambda t, d: ("product",))
    rapid = doc.text.split("\n\n")[-1]
    assert not any("first" in n for n in doc.notes) and "Vare 23" in rapid
