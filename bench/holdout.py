"""Receipts the field rules were never tuned on: a generated, labelled corpus folder.

    python bench/holdout.py OUT [--count 80] [--seed 1]
    python bench/extraction.py OUT --workers 1

`../shared/corpus/receipts` is what the rules were measured on, so its figures
flatter them. This writes `OUT/holdout/<stem>.<ext>` with `<stem>.json` beside
each, in the corpus's label format, from layouts and wordings of our own that no
rule was written against: Norwegian, Swedish, Danish and Finnish receipts and
invoices, half from shops outside the retailer list (only the legal-form and
head-of-receipt rules can find those), the purchase date in a dozen forms next
to a due date, a return-by date, a warranty date and a print time, the seller's
number beside phone, card, bank-account, giro and EAN numbers, models printed
with colours, brands and catalogue aliases, the total above a VAT line; rendered as
thermal and A4 photos (turned a little, blurred, grainy, JPEG-compressed) and as text
PDFs. The labels hold the total as printed ("total": "3990.00") besides the corpus's
fields.

Everything is random but for `--seed`: the same seed writes the same files.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mailbot.devtools.samples import text_pdf

FONTS = Path("/usr/share/fonts/truetype/dejavu")
FONT_FILES = ("DejaVuSansMono.ttf", "DejaVuSans.ttf", "DejaVuSerif.ttf", "DejaVuSansMono-Bold.ttf")


@dataclass(frozen=True)
class Words:
    """One country's receipt vocabulary."""

    lang: str
    receipt: str
    invoice: str
    date: tuple[str, ...]
    months: tuple[str, ...]
    total: str
    vat: str
    open_purchase: str
    warranty: str
    due: str
    printed: str
    phone: str
    thanks: str
    items: tuple[str, ...]
    colours: tuple[str, ...]
    order: str = "Ordredato:"
    delivery: str = "Leveringsdato:"
    customer: str = "Kundenr"


WORDS = {
    "NO": Words(
        "nb",
        "Kvittering",
        "Faktura",
        ("Dato:", "Kjøpsdato:", "Dato"),
        (
            "januar",
            "februar",
            "mars",
            "april",
            "mai",
            "juni",
            "juli",
            "august",
            "september",
            "oktober",
            "november",
            "desember",
        ),
        "Totalt",
        "herav MVA 25%",
        "Åpent kjøp til {d}",
        "Garanti til {d}",
        "Forfallsdato: {d}",
        "Utskrevet {d}",
        "Tlf",
        "Takk for handelen!",
        ("HDMI-kabel 2m", "Bærepose", "Veggfeste", "Forlenget garanti 3 år"),
        ("svart", "hvit", "sort"),
    ),
    "SE": Words(
        "sv",
        "Kvitto",
        "Faktura",
        ("Datum:", "Köpdatum:", "Datum"),
        (
            "januari",
            "februari",
            "mars",
            "april",
            "maj",
            "juni",
            "juli",
            "augusti",
            "september",
            "oktober",
            "november",
            "december",
        ),
        "Totalt",
        "varav moms 25%",
        "Öppet köp t.o.m. {d}",
        "Garanti gäller till {d}",
        "Förfallodatum: {d}",
        "Utskrivet {d}",
        "Tel",
        "Tack för ditt köp!",
        ("USB-C laddare 20W", "Bärkasse", "Väggfäste", "Trygghetsförsäkring"),
        ("svart", "vit"),
        "Orderdatum:",
        "Leveransdatum:",
        "Kundnr",
    ),
    "DK": Words(
        "da",
        "Kvittering",
        "Faktura",
        ("Dato:", "Købsdato:", "Dato"),
        (
            "januar",
            "februar",
            "marts",
            "april",
            "maj",
            "juni",
            "juli",
            "august",
            "september",
            "oktober",
            "november",
            "december",
        ),
        "I alt",
        "heraf moms 25%",
        "Bytteret til {d}",
        "Garanti udløber {d}",
        "Forfaldsdato: {d}",
        "Udskrevet {d}",
        "Tlf.",
        "Tak for handlen!",
        ("Højttalerkabel 5m", "Pose", "Vægbeslag", "Udvidet garanti"),
        ("sort", "hvid"),
    ),
    "FI": Words(
        "fi",
        "Kuitti",
        "Lasku",
        ("Päivämäärä:", "Pvm:", "Ostopäivä:"),
        (
            "tammikuuta",
            "helmikuuta",
            "maaliskuuta",
            "huhtikuuta",
            "toukokuuta",
            "kesäkuuta",
            "heinäkuuta",
            "elokuuta",
            "syyskuuta",
            "lokakuuta",
            "marraskuuta",
            "joulukuuta",
        ),
        "Yhteensä",
        "ALV 24%",
        "Palautusoikeus {d} asti",
        "Takuu voimassa {d} asti",
        "Eräpäivä: {d}",
        "Tulostettu {d}",
        "Puh.",
        "Kiitos käynnistä!",
        ("HDMI-kaapeli 2m", "Muovikassi", "Seinäteline", "Lisäturva 3v"),
        ("musta", "valkoinen"),
        "Tilauspäivä:",
        "Toimituspäivä:",
        "Asiakasnro",
    ),
}

LISTED = {  # shops on rules/receipts/retailers.yaml: (brand, legal name) per country
    "NO": (
        ("Elkjøp", "Elkjøp Norge AS"),
        ("Power", "POWER Norge AS"),
        ("Komplett", "Komplett AS"),
        ("Clas Ohlson", "Clas Ohlson AS"),
        ("Lefdal", "Lefdal AS"),
    ),
    "SE": (
        ("Elgiganten", "Elgiganten AB"),
        ("NetOnNet", "NetOnNet AB"),
        ("Inet", "Inet AB"),
        ("Webhallen", "Webhallen Sverige AB"),
        ("Clas Ohlson", "Clas Ohlson AB"),
    ),
    "DK": (
        ("Elgiganten", "Elgiganten A/S"),
        ("Power", "Power A/S"),
        ("Proshop", "Proshop A/S"),
        ("Bilka", "Bilka A/S"),
    ),
    "FI": (
        ("Gigantti", "Gigantti Oy"),
        ("Verkkokauppa.com", "Verkkokauppa.com Oyj"),
        ("Power", "Power Finland Oy"),
    ),
}
# Shops no list knows: made-up names with the country's legal form.
INVENTED = {
    "NO": (
        ("Fjordlyd", "Fjordlyd AS"),
        ("Nordlys Hifi", "Nordlys Hifi AS"),
        ("Bergen Bilde og Lyd", "Bergen Bilde og Lyd AS"),
    ),
    "SE": (
        ("Ljudmästarna", "Ljudmästarna AB"),
        ("Hemmabio Väst", "Hemmabio Väst AB"),
        ("Norrlands Radio", "Norrlands Radio AB"),
    ),
    "DK": (("Lydhuset Aarhus", "Lydhuset Aarhus ApS"), ("Fyns Hifi", "Fyns Hifi A/S")),
    "FI": (("Äänitalo", "Äänitalo Oy"), ("Kotiteatteri Pohjola", "Kotiteatteri Pohjola Oy")),
}
# (label, as printed) for eligible models; aliases from rules/receipts/products.yaml.
MODELS = (
    ("Sonos One", "Sonos One (Gen 2)"),
    ("Sonos One", "SONOS ONE SL"),
    ("Play:1", "Sonos Play:1"),
    ("Play:5", "Sonos PLAY:5"),
    ("Playbar", "Sonos Playbar"),
    ("Sub", "Sonos Sub Gen 3"),
    ("Boost", "Sonos Boost"),
    ("Beam", "Sonos Beam"),
    ("WH-1000XM5", "Sony WH-1000XM5"),
    ("WF-1000XM4", "Sony WF-1000XM4 ørepropper"),
    ("HT-A5000", "Sony HT-A5000 soundbar"),
    ("ILCE-7M4", "Sony Alpha 7 IV"),
    ("KD-65X85L", 'Sony KD-65X85L 65"'),
    ("SRS-XB43", "Sony SRS-XB43"),
)


def valid_number(rng: random.Random, country: str) -> str:
    """A random organisation number that passes its country's checksum."""
    from stdnum.dk import cvr
    from stdnum.fi import ytunnus
    from stdnum.no import orgnr
    from stdnum.se import orgnr as se_orgnr

    check, length, first = {
        "NO": (orgnr.is_valid, 9, "89"),
        "SE": (se_orgnr.is_valid, 10, "5"),
        "DK": (cvr.is_valid, 8, "123456789"),
        "FI": (ytunnus.is_valid, 8, "0123"),
    }[country]
    while True:
        digits = rng.choice(first) + "".join(rng.choice("0123456789") for _ in range(length - 1))
        if check(digits):
            return digits


def vat_line(rng: random.Random, country: str, number: str) -> str:
    forms = {
        "NO": (
            f"Org.nr {number[:3]} {number[3:6]} {number[6:]} MVA",
            f"Foretaksregisteret NO {number} MVA",
            f"Org. nr.: NO{number}MVA",
        ),
        "SE": (
            f"Org.nr {number[:6]}-{number[6:]}",
            f"Momsreg.nr SE{number}01",
            f"Org nr: {number[:6]}-{number[6:]}",
        ),
        "DK": (
            f"CVR-nr. {number}",
            f"CVR: DK {number[:2]} {number[2:4]} {number[4:6]} {number[6:]}",
            f"CVR nr.: {number}",
        ),
        "FI": (
            f"Y-tunnus {number[:7]}-{number[7]}",
            f"ALV-rek. FI{number}",
            f"Y-tunnus: {number[:7]}-{number[7]}",
        ),
    }[country]
    return rng.choice(forms)


def date_text(rng: random.Random, day: dt.date, words: Words, numeric_only: bool = False) -> str:
    numeric = (
        f"{day:%d.%m.%Y}",
        f"{day.day}.{day.month}.{day.year}",
        f"{day:%Y-%m-%d}",
        f"{day:%d.%m.%y}",
        f"{day:%d/%m/%Y}",
    )
    if numeric_only:
        return rng.choice(numeric)
    month = words.months[day.month - 1]
    spelled: tuple[str, ...] = (
        f"{day.day}. {month} {day.year}",
        f"{day.day} {month[:3]}. {day.year}",
    )
    if words.lang == "sv":
        spelled = (f"{day.day} {month} {day.year}", f"{day.day} {month[:3]} {day.year}")
    elif words.lang == "fi":  # Finnish abbreviates months by their stem, not 3 letters
        spelled = (f"{day.day}. {month} {day.year}",)
    return rng.choice(numeric + spelled)


def phone(rng: random.Random, country: str) -> str:
    n = "".join(rng.choice("0123456789") for _ in range(8))
    return {
        "NO": f"{n[:2]} {n[2:4]} {n[4:6]} {n[6:]}",
        "SE": f"08-{n[:3]} {n[3:5]} {n[5:7]}",
        "DK": f"+45 {n[:2]} {n[2:4]} {n[4:6]} {n[6:]}",
        "FI": f"09 {n[:4]} {n[4:]}",
    }[country]


def amount(value: int) -> str:
    return f"{value:,}".replace(",", " ") + ",00"


def money(rng: random.Random) -> tuple[str, int]:
    value = rng.choice((199, 249, 399, 499, 1490, 2490, 3990, 5990, 7490, 12990))
    return amount(value), value


def receipt_lines(
    rng: random.Random, country: str, hard: bool = False
) -> tuple[list[str], list[str], dict[str, Any]]:
    """(head lines, body lines, labels) of one proof of purchase. `hard` adds what
    real ones also do: the legal name and number only in the footer under a brand
    logo, order and delivery dates, the time before the date, a customer number."""
    words = WORDS[country]
    brand, legal = rng.choice(LISTED[country] if rng.random() < 0.5 else INVENTED[country])
    number = valid_number(rng, country)
    bought = dt.date(2022, 11, 1) + dt.timedelta(days=rng.randrange(0, 75))
    hour, minute = rng.randrange(9, 21), rng.randrange(60)
    model, printed = rng.choice(MODELS)
    if rng.random() < 0.4:
        printed = f"{printed} {rng.choice(words.colours)}"
    street = rng.choice(("Storgata", "Kungsgatan", "Vestergade", "Mannerheimintie", "Torget"))
    footer_name = hard and brand != legal and rng.random() < 0.5
    head = (
        [brand.upper() if footer_name else brand] if brand != legal and rng.random() < 0.6 else []
    )
    if footer_name and not head:
        head = [brand.upper()]
    head += [] if footer_name else [legal]
    head += [f"{street} {rng.randrange(1, 120)}, {rng.randrange(1000, 9999)}"]
    head += [f"{words.phone} {phone(rng, country)}"]
    head += [] if footer_name else [vat_line(rng, country, number)]
    when = date_text(rng, bought, words)
    label = rng.choice(words.date)
    clock = f"{hour:02d}:{minute:02d}"
    dated = f"{label} {when}" + (f"  {clock}" if rng.random() < 0.7 else "")
    if hard and rng.random() < 0.3:
        dated = f"{clock} {when}"
    body = [
        f"{words.receipt} nr {rng.randrange(100000, 999999)}",
        dated,
        f"{'Kassa' if country in ('SE', 'FI') else 'Kasse'} {rng.randrange(1, 12)}",
        "-" * 32,
    ]
    lines_total = 0
    items = [(printed, *money(rng))] + [(x, *money(rng)) for x in rng.sample(words.items, 2)]
    rng.shuffle(items)
    for text, shown, value in items:
        body.append(f"{text}  {shown}")
        if rng.random() < 0.3:
            body.append(f"  EAN {rng.randrange(10**12, 10**13)}")
        lines_total += value
    body += [
        "-" * 32,
        f"{words.total}  {amount(lines_total)}",
        f"{words.vat}  {amount(lines_total // 5)}",
        rng.choice(("Bankkort", "Visa", "Mastercard"))
        + f" ************{rng.randrange(1000, 9999)}",
    ]
    later = bought + dt.timedelta(days=rng.choice((30, 60, 100)))
    distractors = [
        words.open_purchase.format(d=date_text(rng, later, words)),
        words.warranty.format(d=date_text(rng, bought.replace(year=bought.year + 2), words)),
        words.printed.format(
            d=f"{bought + dt.timedelta(days=rng.randrange(1, 9)):%Y-%m-%d} 10:1{rng.randrange(10)}"
        ),
    ]
    body += rng.sample(distractors, rng.randrange(1, 3))
    if hard:
        ordered = bought - dt.timedelta(days=rng.randrange(1, 6))
        delivered = bought + dt.timedelta(days=rng.randrange(1, 6))
        extra = [
            f"{words.order} {date_text(rng, ordered, words)}",
            f"{words.delivery} {date_text(rng, delivered, words)}",
            f"{words.customer} {rng.randrange(10**5, 10**9)}",
        ]
        body[1:1] = rng.sample(extra, rng.randrange(1, 4))
    body.append(words.thanks)
    if footer_name:
        body += [legal, vat_line(rng, country, number)]
    labels = {
        "source": "holdout",
        "retailer": brand,
        "retailer_names": sorted({brand, legal}),
        "purchase_date": bought.isoformat(),
        "vat": {"country": country, "number": number},
        "product": model,
        "country": country,
        "total": f"{lines_total}.00",
    }
    return head, body, labels


def invoice_extra(rng: random.Random, country: str, bought: dt.date) -> list[str]:
    """What an A4 invoice adds: its title, a due date, the seller's bank details."""
    words = WORDS[country]
    due = date_text(rng, bought + dt.timedelta(days=14), words, numeric_only=True)

    def n(length: int) -> str:
        return "".join(rng.choice("0123456789") for _ in range(length))

    bank = {
        "NO": f"Kontonr {n(4)}.{n(2)}.{n(5)}",
        "SE": f"Bankgiro {n(3)}-{n(4)}",
        "DK": f"Reg.nr {n(4)} Konto {n(10)}",
        "FI": f"IBAN FI{n(2)} {n(4)} {n(4)} {n(4)} {n(2)}",
    }[country]
    return [f"{words.invoice} {rng.randrange(10000, 99999)}", words.due.format(d=due), bank]


def render(lines: list[str], rng: random.Random, *, thermal: bool) -> Image.Image:
    font_file = rng.choice(FONT_FILES)
    size = rng.randrange(22, 30) if thermal else rng.randrange(18, 24)
    font = ImageFont.truetype(str(FONTS / font_file), size)
    width = rng.randrange(560, 680) if thermal else 1240
    height = int(size * 1.55) * len(lines) + 120
    page = Image.new("L", (width, max(height, 400 if thermal else 1754)), 255)
    draw = ImageDraw.Draw(page)
    y = 50
    for i, line in enumerate(lines):
        if thermal and i < 5:
            x = max(10, (width - draw.textlength(line, font=font)) / 2)
        else:
            x = 40 if thermal else 100
        draw.text((x, y), line, fill=rng.randrange(0, 60), font=font)
        y += int(size * 1.55)
    return page


def degrade(page: Image.Image, rng: random.Random, hard: bool = False) -> Image.Image:
    """A photo or scan of the page: uneven light, a small turn, blur, grain; `hard`:
    taken from further away (fewer pixels) and less sharp."""
    if hard:
        factor = rng.uniform(0.55, 0.85)
        page = page.resize((round(page.width * factor), round(page.height * factor)))
    w, h = page.size
    gradient = Image.linear_gradient("L").rotate(rng.choice((0, 90, 180, 270)))
    light = gradient.resize((w, h)).point(lambda v: 200 + v * 55 // 255)
    shaded = ImageChops.multiply(page, light)
    canvas = Image.new("L", (w + 80, h + 80), rng.randrange(90, 170))
    canvas.paste(shaded, (40, 40))
    turned = canvas.rotate(rng.uniform(-2.5, 2.5), resample=Image.Resampling.BICUBIC, fillcolor=120)
    blurred = turned.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.6 if hard else 1.2)))
    return Image.blend(blurred, grain(blurred.size, rng.uniform(8, 22), rng), 0.08)


def grain(size: tuple[int, int], sigma: float, rng: random.Random) -> Image.Image:
    """Gaussian noise around mid-grey from `rng` (Pillow's effect_noise cannot be
    seeded), drawn as one 128 px tile repeated over the page."""
    side = 128
    values = bytes(max(0, min(255, round(rng.gauss(128, sigma)))) for _ in range(side * side))
    tile = Image.frombytes("L", (side, side), values)
    out = Image.new("L", size)
    for x in range(0, size[0], side):
        for y in range(0, size[1], side):
            out.paste(tile, (x, y))
    return out


def write(out: Path, stem: str, rng: random.Random, hard: bool = False) -> None:
    country = rng.choice(tuple(WORDS))
    head, body, labels = receipt_lines(rng, country, hard)
    kind = rng.choice(("thermal-jpg", "thermal-png", "a4-jpg", "a4-pdf-text"))
    if kind.startswith("a4"):
        bought = dt.date.fromisoformat(labels["purchase_date"])
        head = head + invoice_extra(rng, country, bought)
    labels["kind"] = kind
    lines = [*head, "", *body]
    if kind == "a4-pdf-text":
        (out / f"{stem}.pdf").write_bytes(text_pdf(lines))
    else:
        photo = degrade(render(lines, rng, thermal=kind.startswith("thermal")), rng, hard)
        buffer = io.BytesIO()
        if kind.endswith("png"):
            photo.save(buffer, format="PNG")
        else:
            photo.convert("RGB").save(buffer, format="JPEG", quality=rng.randrange(45, 90))
        (out / f"{stem}.{kind.rsplit('-', 1)[1]}").write_bytes(buffer.getvalue())
    (out / f"{stem}.json").write_text(json.dumps(labels, ensure_ascii=False, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("out", type=Path, help="a folder; the documents go into OUT/holdout/")
    ap.add_argument("--count", type=int, default=80)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--hard", action="store_true", help="footer names, more dates, worse photos")
    args = ap.parse_args(argv)
    out = args.out / "holdout"
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    for i in range(args.count):
        write(out, f"holdout-{args.seed}-{i:03d}", rng, args.hard)
    print(f"{args.count} labelled documents in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
