"""Uploads -> the grayscale images the OCR engines read best (`parsers.document.ocr`).

Decoding with EXIF orientation and a decompression-bomb guard, scaling the long
side towards 2000 px, and the flat-field copy the second tesseract pass reads
(`parsers.document.text` decides when). Pillow only.
"""

from __future__ import annotations

import io
from typing import Any

from PIL import Image, ImageChops, ImageFilter, ImageOps, UnidentifiedImageError

from mailbot.core.errors import ExtractionError

__all__ = [
    "MAX_PIXELS",
    "TARGET_LONG_SIDE",
    "check_pixels",
    "draft_for",
    "flat_field",
    "open_image",
    "prepare",
]

TARGET_LONG_SIDE = 2000
"""Measured: phone photos at ~2000 px on the long side read 2.8x faster than
full size and slightly more accurately; small scans need upscaling to get there."""
MAX_UPSCALE = 3.0
"""Beyond this an upscaled thumbnail only adds noise for tesseract to chew on."""
MAX_PIXELS = 60_000_000
"""The one pixel limit of uploads, checked from the header before anything is
decoded: by the attachment check (`parsers.mail.filecheck`) and by the reader here."""
DRAFT_LONG_SIDE = 3000
"""A JPEG at least twice this long is decoded at a reduced scale (libjpeg's draft
mode: 1/2, 1/4 or 1/8) to no less than this, then scaled down as before: a 60 MP
photo costs ~30-60 MB instead of ~180 MB. Phone photos of 12 MP (4000 px) and less
decode exactly as before, so OCR reads the same pixels as when it was measured."""


def check_pixels(image: Image.Image) -> None:
    """Raise ExtractionError when the (not yet decoded) image has too many pixels."""
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise ExtractionError(f"image too large to read: {width}x{height}")


def draft_for(image: Image.Image, long_side: int) -> None:
    """Let a JPEG decode at the smallest DCT scale that keeps `long_side` pixels
    on its long side (no-op for other formats and smaller images)."""
    width, height = image.size
    if image.format != "JPEG" or max(width, height) <= long_side:
        return
    factor = long_side / max(width, height)
    image.draft(image.mode, (max(1, int(width * factor)), max(1, int(height * factor))))


def open_image(content: bytes) -> Image.Image:
    """Decode an upload, apply its EXIF orientation (phones store photos sideways)."""
    try:
        image = Image.open(io.BytesIO(content))
        check_pixels(image)
        draft_for(image, DRAFT_LONG_SIDE)
        image.load()
        return ImageOps.exif_transpose(image)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ExtractionError(f"unreadable image: {exc}") from exc


def prepare(image: Image.Image) -> Image.Image:
    """Grayscale, long side scaled towards 2000 px. No binarization: a fixed
    threshold measurably lowered date recall (22/40 against 34/40); tesseract's
    own Otsu does better on uneven phone lighting."""
    gray = image.convert("L") if image.mode != "L" else image
    return _to_long_side(gray, upscale=Image.Resampling.BICUBIC)


def _to_long_side(gray: Image.Image, *, upscale: Image.Resampling) -> Image.Image:
    """`gray` with its long side scaled towards TARGET_LONG_SIDE (upscaled at most
    MAX_UPSCALE times, with `upscale`; shrunk with LANCZOS); as it is within 5%."""
    long_side = max(gray.size)
    if long_side == 0:
        raise ExtractionError("empty image")
    factor = min(TARGET_LONG_SIDE / long_side, MAX_UPSCALE)
    if abs(factor - 1.0) <= 0.05:
        return gray
    size = (max(1, round(gray.width * factor)), max(1, round(gray.height * factor)))
    return gray.resize(size, Image.Resampling.LANCZOS if factor < 1 else upscale)


INK_THRESHOLD = 25
"""Grey levels darker than the local background for a pixel to count as ink (crop)."""
MIN_INK_RANGE = 20
"""Least darkness (grey levels under the local background) stretched to black."""
INK_MARGIN = 20
"""Pixels of the 800 px thumbnail kept around the ink when cropping."""


def flat_field(image: Image.Image) -> Image.Image:
    """The image cleaned for a second tesseract pass: A4 photos and scans of small
    print on a noisy gradient background (shadows, paper texture) that psm 6 reads
    as debris. Crop to where the ink is, scale the crop to ~2000 px, subtract a
    median-filtered copy from a heavily blurred one (the blur estimates the
    uneven background, the median drops speckle), invert and stretch the contrast:
    dark text on an even white page. Pillow only. Takes the `prepare`d image
    (the prototype cropped the full-size original; from the prepared image the
    nordic corpus still reads 1.00 on retailer, date and VAT)."""
    gray = image.convert("L") if image.mode != "L" else image
    cropped = _to_long_side(gray.crop(_ink_box(gray)), upscale=Image.Resampling.LANCZOS)
    background = cropped.filter(ImageFilter.GaussianBlur(20))
    ink = ImageChops.subtract(background, cropped.filter(ImageFilter.MedianFilter(3)))
    # Stretch so the darkest 1% of ink turns black (ImageOps.invert + autocontrast
    # with cutoff=1 does the same) but never by more than 255/MIN_INK_RANGE: on a
    # page with hardly any ink the darkest 1% is paper grain, and autocontrast
    # stretched it 25-60x into a field of black speckle (rendered test pages).
    # Measured: two hard corpus photos reach 26 and 35 (unchanged by the cap),
    # clean pages 115-139. Grainier rendered pages still keep tesseract busy past
    # 15 s here; the caller's time budget bounds that.
    top = max(_level_above(ink, 0.01), MIN_INK_RANGE)
    return ink.point(lambda v: 255 - min(255, v * 255 // top))


def _level_above(image: Image.Image, share: float) -> int:
    """The grey level that `share` of the pixels reach or exceed."""
    histogram = image.histogram()
    wanted, running = share * sum(histogram), 0
    for level in range(255, -1, -1):
        running += histogram[level]
        if running >= wanted:
            return level
    return 0


def _ink_box(gray: Image.Image) -> tuple[int, int, int, int]:
    """The box (in `gray`'s pixels) holding the ink: pixels clearly darker than
    their blurred surroundings, from the 0.5th to the 99.5th percentile along each
    axis (so stray specks do not widen it), plus a margin. The whole image when
    there is too little ink to tell."""
    small = gray.copy()
    small.thumbnail((800, 800))
    darker = ImageChops.subtract(
        small.filter(ImageFilter.GaussianBlur(25)), small.filter(ImageFilter.MedianFilter(5))
    )
    mask = darker.point(lambda v: 255 if v > INK_THRESHOLD else 0).convert("F")
    # Column and row means of the 0/255 mask: how much ink each column/row holds.
    across = mask.resize((small.width, 1), Image.Resampling.BOX)
    down = mask.resize((1, small.height), Image.Resampling.BOX)
    columns = [_float(across.getpixel((x, 0))) for x in range(small.width)]
    rows = [_float(down.getpixel((0, y))) for y in range(small.height)]
    if sum(columns) * small.height / 255 < 50:  # fewer than ~50 ink pixels
        return (0, 0, gray.width, gray.height)
    x0, x1 = _percentiles(columns)
    y0, y1 = _percentiles(rows)
    sx, sy = gray.width / small.width, gray.height / small.height
    return (
        max(0, int((x0 - INK_MARGIN) * sx)),
        max(0, int((y0 - INK_MARGIN) * sy)),
        min(gray.width, int((x1 + INK_MARGIN) * sx)),
        min(gray.height, int((y1 + INK_MARGIN) * sy)),
    )


def _float(pixel: Any) -> float:
    return float(pixel)


def _percentiles(profile: list[float]) -> tuple[int, int]:
    """Positions of the 0.5th and 99.5th percentile of the mass in `profile`."""
    total = sum(profile)
    low = high = None
    running = 0.0
    for i, value in enumerate(profile):
        running += value
        if low is None and running >= 0.005 * total:
            low = i
        if high is None and running >= 0.995 * total:
            high = i
            break
    return (low or 0, high if high is not None else len(profile) - 1)
