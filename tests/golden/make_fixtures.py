"""Generate the golden documents (and the helpers the unit tests render with).

    python tests/golden/make_fixtures.py        # rewrites tests/golden/docs/*

Every document is made here from text we wrote (fictional shops; VAT and
organisation numbers chosen so their checksums are valid), so the fixtures are
reproducible and owe nothing to the corpus. Beside each document sits its
expected JSON: the values printed on it, i.e. the truth, not a recording of
what the extractor happened to return. Keep the set small (< 200 KB).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from mailbot.devtools.samples import text_pdf

HERE = Path(__file__).resolve().parent
DOCS = HERE / "docs"
_FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans Mono when installed (looks like a receipt printer), else Pillow's own."""
    path = _FONT_DIR / "DejaVuSansMono.ttf"
    if path.exists():
        return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size=size)


def render_receipt(lines: list[str], *, size: int = 28, margin: int = 30) -> Image.Image:
    """A white thermal-receipt-like grayscale image with the lines printed on it."""
    face = font(size)
    step = int(size * 1.6)
    width = max(int(face.getlength(line)) for line in lines) + 2 * margin
    image = Image.new("L", (width, 2 * margin + step * len(lines)), 255)
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((margin, margin + i * step), line, font=face, fill=0)
    return image


def jpeg_with_exif_rotation(image: Image.Image, orientation: int = 6) -> bytes:
    """Store the image the way a phone does: pixels sideways, EXIF tag saying how
    to turn them (6 = rotate 90 degrees clockwise to view)."""
    turned = {6: image.rotate(90, expand=True), 8: image.rotate(270, expand=True)}[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    turned.convert("RGB").save(out, "JPEG", quality=80, exif=exif.tobytes())
    return out.getvalue()


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG", optimize=True)
    return out.getvalue()


def scanned_pdf(image: Image.Image, dpi: int = 150) -> bytes:
    """A PDF whose only content is a picture of the page (no text layer)."""
    out = io.BytesIO()
    image.convert("L").save(out, "PDF", resolution=float(dpi))
    return out.getvalue()


@dataclass(frozen=True)
class Fixture:
    name: str
    content: bytes
    expected: dict[str, Any]
    languages: str = "eng"


def _field(value: str, country: str | None = None) -> dict[str, Any]:
    return {"value": value, "country": country} if country else {"value": value}


def fixtures() -> list[Fixture]:
    no_receipt = [
        "LYDHUSET",
        "Lydhuset AS",
        "Storgata 12, 0155 Oslo",
        "Tlf 22 33 44 55",
        "Org.nr 912 345 688 MVA",
        "Kvittering nr 40127",
        "Dato: 21.11.2022 15:43",
        "------------------------------",
        "Sonos One (Gen 2)     2 490,00",
        "Bærepose                  5,00",
        "------------------------------",
        "TOTALT                2 495,00",
        "Åpent kjøp til 21.12.2022",
        "Takk for handelen!",
    ]
    se_invoice = [
        "Ljudbutiken AB",
        "Drottninggatan 5, 111 51 Stockholm",
        "Momsreg.nr SE559123456101",
        "",
        "FAKTURA 2023-118",
        "Fakturadatum: 2022-12-03",
        "Förfallodatum: 2023-01-02",
        "",
        "Artikel                     Antal      Belopp",
        "Sonos Play:1 vit                1    1 990,00",
        "Frakt                           1       49,00",
        "Att betala                           2 039,00",
    ]
    dk_receipt = [
        "HIFI-KÆLDEREN",
        "HiFi-Kælderen ApS",
        "Vestergade 3, 8000 Aarhus",
        "CVR: 31415926",
        "Bon nr 88231",
        "Dato: 13-01-2023 10:50",
        "------------------------------",
        "SONOS PLAY:5           4 995,00",
        "------------------------------",
        "I ALT                  4 995,00",
    ]
    fi_receipt = [
        "ÄÄNITALO OY",
        "Mannerheimintie 8, Helsinki",
        "Y-tunnus 2718280-1",
        "Kuitti 5531",
        "Pvm 02.12.2022 19:49",
        "------------------------------",
        "Sonos Boost             99,00",
        "------------------------------",
        "YHTEENSÄ                99,00",
    ]
    serial = ["SONOS", "Model: S18", "S/N: 5C-AA-FD-12-34-56:7", "Made in China"]
    receipt = {"document_kind": "receipt", "source": "ocr"}
    return [
        Fixture(
            "receipt-no.png",
            png(render_receipt(no_receipt)),
            {
                **receipt,
                "fields": {
                    "retailer": _field("Lydhuset AS"),
                    "purchase_date": _field("2022-11-21"),
                    "product": _field("Sonos One"),
                    "vat_number": _field("912345688", "NO"),
                },
            },
            "nor+eng",
        ),
        Fixture(
            "invoice-se.pdf",
            text_pdf(se_invoice),
            {
                "document_kind": "receipt",
                "source": "pdf-text",
                "fields": {
                    "retailer": _field("Ljudbutiken AB"),
                    "purchase_date": _field("2022-12-03"),
                    "product": _field("Play:1"),
                    "vat_number": _field("5591234561", "SE"),
                },
            },
            "swe+eng",
        ),
        Fixture(
            "receipt-dk-scan.pdf",
            scanned_pdf(render_receipt(dk_receipt, size=24)),
            {
                **receipt,
                "fields": {
                    "retailer": _field("HiFi-Kælderen ApS"),
                    "purchase_date": _field("2023-01-13"),
                    "product": _field("Play:5"),
                    "vat_number": _field("31415926", "DK"),
                },
            },
            "dan+eng",
        ),
        Fixture(
            "receipt-fi-exif.jpg",
            jpeg_with_exif_rotation(render_receipt(fi_receipt, size=26)),
            {
                **receipt,
                "fields": {
                    "retailer": _field("Äänitalo Oy"),
                    "purchase_date": _field("2022-12-02"),
                    "product": _field("Boost"),
                    "vat_number": _field("27182801", "FI"),
                },
            },
            "fin+eng",
        ),
        Fixture(
            "serial-label.png",
            png(render_receipt(serial, size=30)),
            {"document_kind": "serial_photo", "source": "ocr"},
        ),
    ]


def main() -> None:
    DOCS.mkdir(exist_ok=True)
    total = 0
    for fixture in fixtures():
        (DOCS / fixture.name).write_bytes(fixture.content)
        expected = {"languages": fixture.languages, **fixture.expected}
        (DOCS / f"{fixture.name}.json").write_text(
            json.dumps(expected, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        total += len(fixture.content)
        print(f"{fixture.name}: {len(fixture.content)} bytes")
    print(f"total {total} bytes")


if __name__ == "__main__":
    main()
