"""Serial-number labels: phone photos of them read as `serial_photo` with the serial.

The photos are drawn here (Pillow): a white label with SONY / MODEL:WH-1000XM5 /
S/N:4599631 on a dark background, turned 5-8 degrees, with a slight perspective,
stored sideways with an EXIF orientation tag as a phone stores it. Tesseract
alone reads some of them as a word or two (`document_kind: other`); RapidOCR or
the one-slip match of the registered serial read them.
"""

from __future__ import annotations

import io
import random
import socket
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from mailbot.core.errors import RulesError
from mailbot.core.receipt_fields import DocumentKind
from mailbot.resources import rules_dir
from mailbot.ruleset.receipts import load_receipt_rules
from parsers.document import ocr
from parsers.document.extraction import extract
from parsers.document.ocr import ENGINES, TESSERACT
from parsers.receipt.fields import extract_fields
from tests.unit._receipt_helpers import rules

LABEL = ("SONY", "MODEL:WH-1000XM5", "S/N:4599631")
SERIAL = "4599631"
MODELS = ("WH-1000XM5",)

# RapidOCR is a standard dependency: without it these tests fail, they do not skip.
needs_engines = pytest.mark.skipif(TESSERACT.is_available() is None, reason="no tesseract")


def _bold(size: int) -> Any:
    for path in (
        "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
        "/usr/share/fonts/TTF/DejaVuSans-Bold.ttf",
    ):
        if Path(path).exists():
            return ImageFont.truetype(path, size)
    return ImageFont.load_default(size=size)


def label_photo(angle: float, *, seed: int = 0, lines: tuple[str, ...] = LABEL) -> bytes:
    """A 3000x4000 phone photo of a product label, JPEG, EXIF orientation 6."""
    dark = (35, 33, 30)
    face = _bold(70)
    width = max(int(face.getlength(t)) for t in lines) + 120
    height = 120 + 110 * len(lines)
    label = Image.new("RGB", (width, height), (245, 245, 240))
    draw = ImageDraw.Draw(label)
    for i, text in enumerate(lines):
        draw.text((60, 60 + i * 110), text, font=_bold(90) if i == 0 else face, fill=(20, 20, 20))
    label = label.resize((width * 2, height * 2))
    # A slight perspective: the bottom edge a little wider than the top.
    w, h = label.size
    k = 0.06
    quad = (0, 0, -w * k / 2, h, w * (1 + k / 2), h, w, 0)
    bicubic = Image.Resampling.BICUBIC
    label = label.transform((w, h), Image.Transform.QUAD, quad, bicubic, fillcolor=dark)
    mask = Image.new("L", (w, h), 255).transform(
        (w, h), Image.Transform.QUAD, quad, bicubic, fillcolor=0
    )
    label = label.rotate(angle, expand=True, resample=bicubic, fillcolor=dark)
    mask = mask.rotate(angle, expand=True, resample=bicubic, fillcolor=0)
    size = (3000, 4000)
    random.seed(seed)
    photo = Image.blend(
        Image.new("RGB", size, dark), Image.effect_noise(size, 18).convert("RGB"), 0.15
    )
    photo.paste(label, ((size[0] - label.width) // 2, (size[1] - label.height) // 2), mask)
    photo = photo.filter(ImageFilter.GaussianBlur(1.2))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view: the pixels lie sideways
    out = io.BytesIO()
    photo.rotate(90, expand=True).save(out, "JPEG", quality=85, exif=exif.tobytes())
    return out.getvalue()


# --- phone photos, read end to end ---------------------------------------------


@needs_engines
@pytest.mark.parametrize("angle", [6.5, -6.0])
def test_label_photo_read_by_rapidocr_where_tesseract_falls_short(angle: float) -> None:
    content = label_photo(angle)
    result = extract(content, rules=rules(), campaign_models=MODELS, timeout_s=30, name="label.jpg")
    notes = result.document.notes
    assert result.fields.document_kind is DocumentKind.SERIAL_PHOTO, (result.document.text, notes)
    assert result.fields.serial_number is not None
    assert result.fields.serial_number.value == SERIAL
    assert result.fields.product is not None and result.fields.product.value == "WH-1000XM5"


@needs_engines
def test_label_photo_without_rapidocr_reads_as_other() -> None:
    """What the test above guards against: tesseract alone on the 6.5 degree photo."""
    result = extract(
        label_photo(6.5), rules=rules(), campaign_models=MODELS, fallback_engines=(), timeout_s=30
    )
    assert result.fields.document_kind is DocumentKind.OTHER
    assert result.fields.serial_number is None


@needs_engines
def test_label_photo_with_the_registered_serial() -> None:
    result = extract(
        label_photo(8.0), rules=rules(), campaign_models=MODELS, serial=SERIAL, timeout_s=30
    )
    assert result.fields.document_kind is DocumentKind.SERIAL_PHOTO, result.document.text
    assert result.fields.serial_number is not None
    assert result.fields.serial_number.value == SERIAL
    assert result.fields.serial_number.rule.startswith("serial:claim")


# --- the rules over text -------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "S/N: 4599631",
        "SN: 4599631",
        "Serial No. 4599631",
        "Serienr: 4599631",
        "Serienummer 4599631",
        "5 /N:4599631",
    ],
)
def test_serial_labels_in_the_rules(line: str) -> None:
    fields = extract_fields(f"SONY\n{line}\nMade in Malaysia\n", rules())
    assert fields.document_kind is DocumentKind.SERIAL_PHOTO
    assert fields.serial_number is not None and fields.serial_number.value == SERIAL


def test_registered_serial_within_one_ocr_slip() -> None:
    for text in ("SONY\n459963?\n", "SONY\n45799631\n", "SONY\n4599E31\n"):
        fields = extract_fields(text, rules(), serial=SERIAL)
        assert fields.document_kind is DocumentKind.SERIAL_PHOTO, text
        assert fields.serial_number is not None
        assert (fields.serial_number.value, fields.serial_number.rule) == (
            SERIAL,
            "serial:claim-fuzzy",
        )
    # Two slips are another number; a short serial must be read exactly.
    assert extract_fields("SONY\n45?96?1\n", rules(), serial=SERIAL).serial_number is None
    assert extract_fields("SONY\nAB124\n", rules(), serial="AB123").serial_number is None


def test_campaign_model_on_a_label() -> None:
    text = "SONY\nMODEL: WH-1000XM5\nMade in Malaysia\n"
    fields = extract_fields(text, rules(), models=MODELS)
    assert fields.document_kind is DocumentKind.SERIAL_PHOTO
    assert fields.product is not None and fields.product.value == "WH-1000XM5"
    # The model in an item line of a receipt is no label.
    assert (
        extract_fields("SONY\nWH-1000XM5 3 990,00\n", rules(), models=MODELS).document_kind
        is not DocumentKind.SERIAL_PHOTO
    )


def test_receipt_naming_model_and_serial_stays_a_receipt() -> None:
    text = (
        "Elkjøp Norge AS\nOrg.nr 988 077 917 MVA\nDato: 12.12.2022\n"
        "Model: WH-1000XM5\nS/N: 4599631\nTotalt 3 990,00\n"
    )
    fields = extract_fields(text, rules(), models=MODELS, serial=SERIAL)
    assert fields.document_kind is DocumentKind.RECEIPT


def test_model_labels_validated_with_file_and_line(tmp_path: Path) -> None:
    source = rules_dir() / "receipts"
    for path in source.glob("*.yaml"):
        (tmp_path / path.name).write_bytes(path.read_bytes())
    document = tmp_path / "document.yaml"
    document.write_text(
        document.read_text(encoding="utf-8").replace(
            "model_labels:\n", "model_labels:\n  - 'model(:'\n", 1
        ),
        encoding="utf-8",
    )
    with pytest.raises(RulesError) as exc:
        load_receipt_rules(tmp_path)
    assert "document.yaml" in str(exc.value) and "model_labels.0" in str(exc.value)


# --- the engine: one thread, nothing downloaded --------------------------------


def test_rapidocr_one_thread_and_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("RapidOCR tried to reach the network")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    ocr._rapidocr.cache_clear()  # load the models afresh, with the network cut
    try:
        assert ocr.rapidocr_threads() == {"det": (1, 1), "cls": (1, 1), "rec": (1, 1)}
        image = Image.new("L", (600, 120), 255)
        ImageDraw.Draw(image).text((20, 30), "S/N:4599631", font=_bold(48), fill=0)
        read = ENGINES["rapidocr"].to_text(image, languages="eng", psm=0, timeout_s=30)
        assert "4599631" in read.text
    finally:
        ocr._rapidocr.cache_clear()
