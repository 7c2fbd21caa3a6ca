"""Customers, their documents and their expected outcomes for the mailbox month bench.

`bench/month.py` runs these conversations through the daemon; this module only
makes them: who writes, on which simulated day, with which attachments, and what a
careful human clerk would do with each mail, judged on the campaign texts in
`../shared/seeds/` (cashback FAQ, Swedish promotion terms, returns policy) and the
shipped campaign rules. Documents are drawn here with Pillow and the devtools'
text-PDF writer, seeded, so one seed always gives the same month.

Only `mailbot.devtools.samples` is imported from the project: the bench must keep
working while the code base is restructured.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta

from PIL import Image, ImageDraw, ImageFilter, ImageFont

from mailbot.devtools.samples import receipt_image, text_pdf

# --- identifiers with valid check digits (the parsers check them, so must we) --------------


def no_orgnr(rng: random.Random) -> str:
    """A Norwegian organisation number (mod 11, weights 3 2 7 6 5 4 3 2)."""
    while True:
        digits = [rng.choice((8, 9))] + [rng.randint(0, 9) for _ in range(7)]
        rest = sum(d * w for d, w in zip(digits, (3, 2, 7, 6, 5, 4, 3, 2), strict=True)) % 11
        check = 0 if rest == 0 else 11 - rest
        if check != 10:
            s = "".join(map(str, [*digits, check]))
            return f"{s[:3]} {s[3:6]} {s[6:]}"


def se_orgnr(rng: random.Random) -> str:
    """A Swedish organisation number 556xxx-xxxx (Luhn over the ten digits)."""
    digits = [5, 5, 6] + [rng.randint(0, 9) for _ in range(6)]
    total = 0
    for i, d in enumerate(digits):
        x = d * (2 if i % 2 == 0 else 1)
        total += x - 9 if x > 9 else x
    check = (10 - total % 10) % 10
    s = "".join(map(str, [*digits, check]))
    return f"{s[:6]}-{s[6:]}"


def dk_cvr(rng: random.Random) -> str:
    """A Danish CVR number (weights 2 7 6 5 4 3 2 1, sum divisible by 11)."""
    while True:
        digits = [rng.randint(1, 9)] + [rng.randint(0, 9) for _ in range(6)]
        rest = sum(d * w for d, w in zip(digits, (2, 7, 6, 5, 4, 3, 2), strict=True)) % 11
        check = (11 - rest) % 11
        if check < 10:
            return "".join(map(str, [*digits, check]))


def fi_ytunnus(rng: random.Random) -> str:
    """A Finnish business id 1234567-8 (weights 7 9 10 5 8 4 2)."""
    while True:
        digits = [rng.randint(0, 9) for _ in range(7)]
        rest = sum(d * w for d, w in zip(digits, (7, 9, 10, 5, 8, 4, 2), strict=True)) % 11
        if rest == 1:
            continue
        check = 0 if rest == 0 else 11 - rest
        return "".join(map(str, digits)) + f"-{check}"


def s10_tracking(rng: random.Random, country: str = "NO") -> str:
    """A UPU S10 parcel number (Posten/Bring, PostNord) with its check digit."""
    digits = [rng.randint(0, 9) for _ in range(8)]
    total = sum(d * w for d, w in zip(digits, (8, 6, 4, 2, 3, 5, 9, 7), strict=True))
    check = 11 - total % 11
    check = 0 if check == 10 else 5 if check == 11 else check
    prefix = rng.choice(("CP", "LA", "RR", "CC"))
    return f"{prefix}{''.join(map(str, digits))}{check}{country}"


# --- shops and products ------------------------------------------------------------------


@dataclass(frozen=True)
class Shop:
    name: str
    legal: str
    domain: str
    country: str
    vat_label: str
    vat: str
    date_label: str
    total_label: str
    currency: str


def shops_for(country: str, rng: random.Random) -> list[Shop]:
    """Two or three shops per country with their own (valid) VAT numbers."""
    if country == "NO":
        return [
            Shop(
                "ELKJØP",
                "Elkjøp Norge AS",
                "elkjop.no",
                "NO",
                "Org.nr",
                f"{no_orgnr(rng)} MVA",
                "Dato:",
                "Totalt NOK",
                "NOK",
            ),
            Shop(
                "POWER",
                "POWER Norge AS",
                "power.no",
                "NO",
                "Org.nr",
                f"{no_orgnr(rng)} MVA",
                "Dato:",
                "Sum NOK",
                "NOK",
            ),
            Shop(
                "Komplett",
                "Komplett Services AS",
                "komplett.no",
                "NO",
                "Foretaksregisteret",
                f"NO {no_orgnr(rng)} MVA",
                "Dato:",
                "Totalt NOK",
                "NOK",
            ),
        ]
    if country == "SE":
        return [
            Shop(
                "Elgiganten",
                "Elgiganten AB",
                "elgiganten.se",
                "SE",
                "Org.nr",
                se_orgnr(rng),
                "Datum:",
                "Totalt SEK",
                "SEK",
            ),
            Shop(
                "NetOnNet",
                "NetOnNet AB",
                "netonnet.se",
                "SE",
                "Org.nr",
                se_orgnr(rng),
                "Datum:",
                "Att betala SEK",
                "SEK",
            ),
        ]
    if country == "DK":
        return [
            Shop(
                "POWER",
                "POWER A/S",
                "power.dk",
                "DK",
                "CVR",
                dk_cvr(rng),
                "Dato:",
                "I alt DKK",
                "DKK",
            ),
            Shop(
                "Elgiganten",
                "Elgiganten A/S",
                "elgiganten.dk",
                "DK",
                "CVR",
                dk_cvr(rng),
                "Dato:",
                "Total DKK",
                "DKK",
            ),
        ]
    if country == "FI":
        return [
            Shop(
                "POWER",
                "Power Finland Oy",
                "power.fi",
                "FI",
                "Y-tunnus",
                fi_ytunnus(rng),
                "Päivämäärä:",
                "Yhteensä EUR",
                "EUR",
            ),
        ]
    return [
        Shop(
            "Sonos Store",
            "Sonos Europe B.V.",
            "sonos.com",
            "GB",
            "VAT",
            "GB 123 4567 89",
            "Date:",
            "Total GBP",
            "GBP",
        )
    ]


CASHBACK_MODELS = (
    ("WH-1000XM5", "Sony WH-1000XM5 hodetelefoner", 3990),
    ("WF-1000XM4", "Sony WF-1000XM4 ørepropper", 2490),
    ("SRS-XG300", "Sony SRS-XG300 høyttaler", 3290),
    ("HT-A7000", "Sony HT-A7000 lydplanke", 12990),
)
PROMO_MODELS = (
    ("Sonos One", "Sonos One", {"SEK": 2490, "DKK": 1799, "EUR": 229, "NOK": 2490, "GBP": 199}),
    ("Play:5", "Sonos Play:5", {"SEK": 5990, "DKK": 3999, "EUR": 579, "NOK": 5990, "GBP": 499}),
    ("Playbar", "Sonos Playbar", {"SEK": 7990, "DKK": 5499, "EUR": 799, "NOK": 7990, "GBP": 699}),
    ("Sub", "Sonos Sub", {"SEK": 8490, "DKK": 5999, "EUR": 799, "NOK": 8490, "GBP": 699}),
)


def money(amount: float, currency: str) -> str:
    if currency in ("GBP", "EUR") and currency == "GBP":
        return f"{amount:.2f}"
    return f"{amount:,.2f}".replace(",", " ").replace(".", ",")


@dataclass(frozen=True)
class Purchase:
    shop: Shop
    day: date
    product_line: str
    price: int
    receipt_no: int
    buyer: tuple[str, str] | None = None
    """(company name, organisation number) on a B2B invoice."""


def receipt_lines(p: Purchase, *, with_vat: bool = True) -> list[str]:
    lines = [p.shop.name, p.shop.legal]
    if with_vat:
        lines.append(f"{p.shop.vat_label} {p.shop.vat}")
    lines += [
        f"Kvittering nr {p.receipt_no}" if p.shop.country == "NO" else f"Nr {p.receipt_no}",
        f"{p.shop.date_label} {p.day.strftime('%d.%m.%Y')}",
        f"{p.product_line}  {money(p.price, p.shop.currency)}",
        f"{p.shop.total_label}  {money(p.price, p.shop.currency)}",
    ]
    return lines


def invoice_pdf(p: Purchase) -> bytes:
    """The shop's PDF invoice (a text layer), with a buyer block for B2B purchases."""
    lines = [
        p.shop.legal,
        f"{p.shop.vat_label} {p.shop.vat}",
        f"www.{p.shop.domain}",
        "",
        "FAKTURA" if p.shop.country in ("NO", "DK") else "FAKTURA / INVOICE",
        f"Fakturanr {p.receipt_no}",
        f"{p.shop.date_label} {p.day.strftime('%d.%m.%Y')}",
    ]
    if p.buyer is not None:
        company, orgnr = p.buyer
        lines += ["", "Kunde / Kund:", company, f"Org.nr {orgnr}", "Att: Innkjøp"]
    lines += [
        "",
        f"1 x {p.product_line}   {money(p.price, p.shop.currency)}",
        f"{p.shop.total_label}  {money(p.price, p.shop.currency)}",
    ]
    return text_pdf(lines)


def _jpeg(img: Image.Image, quality: int = 88, exif: Image.Exif | None = None) -> bytes:
    buf = io.BytesIO()
    if exif is not None:
        img.convert("RGB").save(buf, format="JPEG", quality=quality, exif=exif)
    else:
        img.convert("RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _open(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def on_table(paper: Image.Image, rng: random.Random, *, dark: bool = False) -> Image.Image:
    """The paper on a shaded table at a random spot: how a phone photo frames a receipt."""
    w, h = paper.size
    lo, hi = (25, 90) if dark else (60, 170)
    grid = Image.new("L", (9, 8))
    grid.putdata([rng.randint(lo, hi) for _ in range(9 * 8)])
    table = grid.resize((w + 500, h + 420), Image.Resampling.BILINEAR).convert("RGB")
    table.paste(paper.convert("RGB"), (rng.randint(0, 500), rng.randint(0, 420)))
    return table


def receipt_photo(p: Purchase, rng: random.Random, *, with_vat: bool = True) -> bytes:
    """A phone photo of the receipt: the paper slightly tilted on a table."""
    paper = _open(
        receipt_image(receipt_lines(p, with_vat=with_vat), width=rng.choice((950, 1000, 1050)))
    )
    paper = paper.convert("RGB").rotate(
        rng.uniform(-2.0, 2.0), expand=True, fillcolor=(255, 255, 255)
    )
    return _jpeg(on_table(paper, rng))


def receipt_scan(p: Purchase, layout: int) -> bytes:
    """A clean scan of one shop layout: receipts of one shop look alike but for the numbers."""
    return receipt_image(
        receipt_lines(p), width=(1000, 900)[layout % 2], font_size=(30, 28)[layout % 2]
    )


def rephotographed(original: bytes, rng: random.Random) -> bytes:
    """Somebody else's receipt photographed again: cropped, a little rotated, other light."""
    img = _open(original).convert("RGB")
    w, h = img.size
    box = (
        rng.randint(0, w // 12),
        rng.randint(0, h // 12),
        w - rng.randint(0, w // 12),
        h - rng.randint(0, h // 14),
    )
    img = img.crop(box).rotate(rng.uniform(-1.5, 1.5), expand=True, fillcolor=(200, 200, 200))
    img = Image.eval(img, lambda v: int(v * 0.9 + 12))
    return _jpeg(img, quality=82)


def cropped_screenshot(p: Purchase) -> bytes:
    """A cropped screenshot of a web shop's order page: the shop's only legible name is its
    domain in the address bar ("power.dk"); no logo text, no VAT number."""
    font = _load_font(26)
    small = _load_font(22)
    img = Image.new("RGB", (1080, 620), (245, 245, 245))
    d = ImageDraw.Draw(img)
    d.rectangle((0, 0, 1080, 70), fill=(225, 225, 230))
    d.text(
        (30, 20), f"https://www.{p.shop.domain}/ordre/{p.receipt_no}", fill=(40, 40, 40), font=small
    )
    d.rectangle((0, 70, 1080, 130), fill=(200, 16, 46))  # the shop's banner, no words legible
    rows = [
        f"Ordre {p.receipt_no}",
        f"Ordredato: {p.day.strftime('%d.%m.%Y')}",
        f"1 x {p.product_line}   {money(p.price, p.shop.currency)} kr",
        f"I alt  {money(p.price, p.shop.currency)} kr",
    ]
    for i, row in enumerate(rows):
        d.text((40, 170 + i * 60), row, fill=(20, 20, 20), font=font)
    return _png(img)


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _load_font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for path in (
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
    ):
        try:
            return ImageFont.truetype(path, size)
        except OSError:
            continue
    return ImageFont.load_default(size=size)


def unreadable_photo(p: Purchase, rng: random.Random) -> bytes:
    """A receipt nobody can read: heavily blurred and dark."""
    paper = _open(receipt_image(receipt_lines(p)))
    img = on_table(paper, rng, dark=True).filter(ImageFilter.GaussianBlur(rng.uniform(7, 10)))
    img = Image.eval(img, lambda v: int(v * 0.35))
    return _jpeg(img, quality=70)


def serial_label(model: str, serial: str) -> Image.Image:
    return _open(receipt_image([f"SONY  {model}", f"Model: {model}", f"S/N: {serial}"])).convert(
        "RGB"
    )


def serial_photo_clean(model: str, serial: str) -> bytes:
    return _jpeg(serial_label(model, serial))


def serial_photo_phone(model: str, serial: str, rng: random.Random) -> bytes:
    """The serial-number label photographed with a phone: slight rotation and perspective,
    dark surroundings, and stored sideways with an EXIF orientation tag (as phones do)."""
    label = serial_label(model, serial)
    label = label.rotate(rng.uniform(-6, 6), expand=True, fillcolor=(235, 235, 235))
    w, h = label.size
    k = rng.uniform(0.03, 0.06)
    # a mild keystone: the top edge narrower than the bottom, as when shot from below
    coeffs = _perspective_coeffs(
        [(w * k, 0), (w * (1 - k), 0), (w, h), (0, h)], [(0, 0), (w, 0), (w, h), (0, h)]
    )
    label = label.transform(
        (w, h),
        Image.Transform.PERSPECTIVE,
        coeffs,
        Image.Resampling.BICUBIC,
        fillcolor=(30, 30, 30),
    )
    photo = on_table(label, rng, dark=True)
    sideways = photo.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to display
    return _jpeg(sideways, exif=exif)


def _perspective_coeffs(
    src: list[tuple[float, float]], dst: list[tuple[float, float]]
) -> tuple[float, ...]:
    """The 8 coefficients PIL's PERSPECTIVE transform wants (output -> input mapping).
    Hand-solved with Gaussian elimination: Pillow has no helper and numpy is not a
    dependency of the bench."""
    rows: list[list[float]] = []
    rhs: list[float] = []
    for (x, y), (u, v) in zip(dst, src, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rhs.append(u)
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs.append(v)
    n = 8
    a = [[*row, b] for row, b in zip(rows, rhs, strict=True)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(a[r][col]))
        a[col], a[pivot] = a[pivot], a[col]
        for r in range(n):
            if r != col:
                f = a[r][col] / a[col][col]
                a[r] = [x - f * y for x, y in zip(a[r], a[col], strict=True)]
    return tuple(a[i][n] / a[i][i] for i in range(n))


# --- what the customers write -------------------------------------------------------------

WORDS: dict[str, dict[str, str]] = {
    "nb": {
        "hello": "Hei!",
        "receipt": "Her er kvitteringen og bilde av serienummeret.",
        "receipt_only": "Her er kvitteringen.",
        "serial": "Beklager, her kommer bildet av serienummeret.",
        "attached": "Vedlagt kvittering.",
        "status": "Når får jeg pengene? Jeg sendte kvitteringen for en stund siden.",
        "better": "Her er fakturaen fra butikken som PDF, den er tydeligere.",
        "bye": "Hilsen",
        "fwd": "Videresender ordrebekreftelsen fra butikken.",
        "ooo_subject": "Fraværende",
        "ooo": "Jeg er på ferie og leser ikke e-post før 1. mars.",
    },
    "sv": {
        "hello": "Hej!",
        "receipt": "Här är kvittot och en bild på serienumret.",
        "receipt_only": "Här är kvittot.",
        "serial": "Förlåt, här är bilden på serienumret.",
        "attached": "Bifogat kvitto.",
        "status": "När får jag pengarna? Jag skickade kvittot för ett tag sedan.",
        "better": "Här är fakturan från butiken som PDF, den är tydligare.",
        "bye": "Hälsningar",
        "fwd": "Vidarebefordrar orderbekräftelsen från butiken.",
        "ooo_subject": "Frånvarande",
        "ooo": "Jag är på semester och läser inte e-post förrän 1 maj.",
    },
    "da": {
        "hello": "Hej!",
        "receipt": "Her er kvitteringen og et billede af serienummeret.",
        "receipt_only": "Her er kvitteringen.",
        "serial": "Undskyld, her er billedet af serienummeret.",
        "attached": "Vedlagt kvittering.",
        "status": "Hvornår får jeg pengene? Jeg sendte kvitteringen for et stykke tid siden.",
        "better": "Her er fakturaen fra butikken som PDF, den er tydeligere.",
        "bye": "Venlig hilsen",
        "fwd": "Videresender ordrebekræftelsen fra butikken.",
        "ooo_subject": "Fraværende",
        "ooo": "Jeg er på ferie og læser ikke e-mail før 1. maj.",
    },
    "fi": {
        "hello": "Hei!",
        "receipt": "Tässä kuitti ja kuva sarjanumerosta.",
        "receipt_only": "Tässä kuitti.",
        "serial": "Anteeksi, tässä kuva sarjanumerosta.",
        "attached": "Kuitti liitteenä.",
        "status": "Milloin saan rahat? Lähetin kuitin jo jokin aika sitten.",
        "better": "Tässä kaupan lasku PDF-muodossa, se on selkeämpi.",
        "bye": "Terveisin",
        "fwd": "Välitän kaupan tilausvahvistuksen.",
        "ooo_subject": "Poissa",
        "ooo": "Olen lomalla enkä lue sähköpostia ennen toukokuuta.",
    },
    "en": {
        "hello": "Hi,",
        "receipt": "Here is the receipt and a photo of the serial number.",
        "receipt_only": "Here is the receipt.",
        "serial": "Sorry, here is the photo of the serial number.",
        "attached": "Receipt attached.",
        "status": "When do I get paid? I sent the receipt a while ago.",
        "better": "Here is the shop's PDF invoice, it is clearer.",
        "bye": "Regards",
        "fwd": "Forwarding the order confirmation from the shop.",
        "ooo_subject": "Automatic reply",
        "ooo": "I am on holiday and will not read mail until March.",
    },
}

# RMA notices: (language, subject, body) with {rma}, {tracking}, {dropoff} placeholders
RMA_PROPER = {
    "nb": (
        "Shipment Notification: RMA# {rma}",
        "Hei,\nSporingsnummer {tracking}\nLevert på posten {dropoff}.\n\nHilsen {name}",
    ),
    "sv": (
        "Shipment Notification: RMA# {rma}",
        "Hej,\nSpårningsnummer {tracking}\nInlämnad hos ombudet {dropoff}.\n\nHälsningar {name}",
    ),
    "da": (
        "Shipment Notification: RMA# {rma}",
        "Hej,\nTrackingnummer {tracking}\nIndleveret i pakkeshoppen {dropoff}."
        "\n\nVenlig hilsen {name}",
    ),
    "fi": (
        "Shipment Notification: RMA# {rma}",
        "Hei,\nSeurantanumero {tracking}\nJätetty postiin {dropoff}.\n\nTerveisin {name}",
    ),
    "en": (
        "Shipment Notification: RMA# {rma}",
        "Hi,\nTracking number {tracking}\nDropped off at the post office {dropoff}."
        "\n\nRegards {name}",
    ),
}
RMA_BODY_ONLY = {
    "da": (
        "Returnering af {product}",
        "Hej,\nRMA nr. {rma}\nPakken er sendt med Posten, trackingnummer {tracking}.\n"
        "Indleveret {dropoff}."
        "\n\nVenlig hilsen {name}",
    ),
    "nb": (
        "Retur av {product}",
        "Hei,\nRMA nr. {rma}\nPakken er sendt, sporingsnummer {tracking}.\n"
        "Levert på posten {dropoff}."
        "\n\nHilsen {name}",
    ),
    "sv": (
        "Retur av {product}",
        "Hej,\nRMA nr. {rma}\nPaketet är skickat, spårningsnummer {tracking}.\nInlämnat {dropoff}."
        "\n\nHälsningar {name}",
    ),
}
RMA_NO_DROPOFF = {
    "nb": (
        "Shipment Notification: RMA# {rma}",
        "Hei,\nPakken er sendt. Sporingsnummer {tracking}\n\nHilsen {name}",
    ),
    "sv": (
        "Shipment Notification: RMA# {rma}",
        "Hej,\nPaketet är skickat. Spårningsnummer {tracking}\n\nHälsningar {name}",
    ),
    "en": (
        "Shipment Notification: RMA# {rma}",
        "Hi,\nThe parcel is on its way. Tracking number {tracking}\n\nRegards {name}",
    ),
    "fi": (
        "Shipment Notification: RMA# {rma}",
        "Hei,\nPaketti on lähetetty. Seurantanumero {tracking}\n\nTerveisin {name}",
    ),
}
DROPOFF_WORDS = {
    "nb": "{d} kl. {t}",
    "sv": "{d} kl. {t}",
    "da": "{d} kl. {t}",
    "fi": "{d} klo {t}",
    "en": "on {d} at {t}",
}


# --- expectations -------------------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    """What a careful clerk does with one mail.

    `replies`: the reply kinds (template names) that are right; empty = no reply is right.
    `states`: the claim/RMA states that are right afterwards (empty: any).
    `human`: a person must look (true duplicate, fraud): parked is right, an answer
    that decides is wrong.
    """

    label: str
    replies: frozenset[str] = frozenset()
    states: frozenset[str] = frozenset()
    human: bool = False


def expect(label: str, replies: str = "", states: str = "", human: bool = False) -> Expect:
    return Expect(label, frozenset(replies.split()), frozenset(states.split()), human)


APPROVE = expect("approve and answer with acceptance", "approved", "approved")


@dataclass
class Mail:
    """One customer mail, built when its day comes (it may answer one of our replies)."""

    day: int
    expect: Expect
    build: Callable[[MailContext], MailSpec]


@dataclass
class MailSpec:
    subject: str
    body: str
    attachments: list[tuple[str, str, bytes]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    reply_to_ours: bool = True
    """In-Reply-To our newest mail to this customer (a reply in the thread)."""
    raw: bytes | None = None
    """A complete mail instead (bounces)."""


@dataclass
class MailContext:
    code: str
    rma: str
    last_subject: str
    last_message_id: str
    day: date


@dataclass
class Case:
    """One customer: a claim (registration row) or an RMA, and the mails they send."""

    persona: str
    kind: str  # claim | rma
    campaign: str
    language: str
    email: str
    name: str
    registration: dict[str, str]
    mails: list[Mail]
    rma_issue_day: int = 0
    code: str = ""
    rma: str = ""


# --- personas -----------------------------------------------------------------------------

PROMO_COUNTRY = {"sv": "SE", "da": "DK", "fi": "FI", "nb": "NO", "en": "GB"}
PROMO_SHOPS_OK = ("Elgiganten", "NetOnNet", "POWER", "Sonos Store")
FIRST_NAMES = (
    "Kari",
    "Ola",
    "Ingrid",
    "Lars",
    "Sven",
    "Anna",
    "Mette",
    "Jens",
    "Aino",
    "Mikko",
    "Emma",
    "John",
)
LAST_NAMES = (
    "Nordmann",
    "Hansen",
    "Svensson",
    "Lindqvist",
    "Jensen",
    "Nielsen",
    "Virtanen",
    "Korhonen",
    "Smith",
)


@dataclass(frozen=True)
class Persona:
    name: str
    what: str
    kind: str  # claim | rma
    campaigns: tuple[str, ...]
    weight: int
    languages: dict[str, tuple[str, ...]]
    """Languages per campaign ("returns" for RMAs)."""


CB_LANGS = ("nb", "nb", "nb", "en")  # the cashback campaign is for Norway
PROMO_LANGS = ("sv", "sv", "da", "fi", "nb", "en")
RMA_LANGS = ("nb", "nb", "sv", "da", "fi", "en")
BOTH = ("cashback-2022", "promo-20pct")
ALL_LANGS = {"cashback-2022": CB_LANGS, "promo-20pct": PROMO_LANGS}

PERSONAS: tuple[Persona, ...] = (
    Persona(
        "complete",
        "receipt photo (+ serial photo for cashback) in one reply",
        "claim",
        BOTH,
        26,
        ALL_LANGS,
    ),
    Persona(
        "shop_layout",
        "clean scans, many receipts of one shop layout (no true duplicate)",
        "claim",
        BOTH,
        8,
        ALL_LANGS,
    ),
    Persona(
        "forgot_serial",
        "receipt only; then the serial photo in reply to our question",
        "claim",
        ("cashback-2022",),
        10,
        ALL_LANGS,
    ),
    Persona(
        "phone_serial",
        "serial label shot with a phone: tilt, keystone, dark, EXIF-rotated",
        "claim",
        ("cashback-2022",),
        8,
        ALL_LANGS,
    ),
    Persona(
        "reused_receipt",
        "another customer's receipt photographed again and cropped",
        "claim",
        BOTH,
        4,
        ALL_LANGS,
    ),
    Persona(
        "nothing_attached", '"Vedlagt kvittering" with no attachment', "claim", BOTH, 5, ALL_LANGS
    ),
    Persona(
        "status_question", 'complete reply, then "when do I get paid?"', "claim", BOTH, 6, ALL_LANGS
    ),
    Persona("unreadable", "a blurred, dark receipt photo", "claim", BOTH, 5, ALL_LANGS),
    Persona(
        "domain_screenshot",
        'cropped order-page screenshot, only the domain "power.dk" names the shop',
        "claim",
        ("promo-20pct",),
        4,
        {"promo-20pct": ("da",)},
    ),
    Persona(
        "b2b_invoice",
        "PDF invoice with a buyer company and organisation number",
        "claim",
        BOTH,
        6,
        ALL_LANGS,
    ),
    Persona(
        "better_copy",
        "a poor photo, then the shop's PDF invoice of the same purchase",
        "claim",
        BOTH,
        5,
        ALL_LANGS,
    ),
    Persona(
        "forward",
        "forwards the shop's order confirmation with the PDF, no code in the subject",
        "claim",
        BOTH,
        6,
        ALL_LANGS,
    ),
    Persona(
        "out_of_office",
        "out-of-office answer to our mail, later the complete reply",
        "claim",
        BOTH,
        5,
        ALL_LANGS,
    ),
    Persona("bounce", "our confirmation bounces (mailbox gone)", "claim", BOTH, 2, ALL_LANGS),
    Persona(
        "rma_proper",
        'notice as the policy asks: "Shipment Notification: RMA# n", tracking, drop-off time',
        "rma",
        ("returns",),
        10,
        {"returns": RMA_LANGS},
    ),
    Persona(
        "rma_body_only",
        'RMA number only in the body ("RMA nr. 3836043"), subject "Returnering af Sonos Roam"',
        "rma",
        ("returns",),
        4,
        {"returns": ("da", "nb", "sv")},
    ),
    Persona(
        "rma_no_dropoff",
        "notice with the tracking number but no drop-off time",
        "rma",
        ("returns",),
        4,
        {"returns": ("nb", "sv", "en", "fi")},
    ),
    Persona(
        "rma_expired",
        "notice 20 days after the RMA was issued (valid 14 days)",
        "rma",
        ("returns",),
        2,
        {"returns": ("nb",)},
    ),
)
BY_NAME = {p.name: p for p in PERSONAS}


def allocate(total: int, personas: list[Persona], rng: random.Random) -> list[Persona]:
    """`total` cases spread over `personas` by weight (largest remainder), shuffled;
    with enough cases every persona gets at least one."""
    weight = sum(p.weight for p in personas)
    exact = [total * p.weight / weight for p in personas]
    counts = [int(x) for x in exact]
    if total >= len(personas):
        counts = [max(1, c) for c in counts]
    order = sorted(range(len(personas)), key=lambda i: exact[i] - int(exact[i]), reverse=True)
    i = 0
    while sum(counts) < total:
        counts[order[i % len(order)]] += 1
        i += 1
    while sum(counts) > total:
        j = max(range(len(counts)), key=lambda k: counts[k])
        counts[j] -= 1
    out = [p for p, c in zip(personas, counts, strict=True) for _ in range(c)]
    rng.shuffle(out)
    return out


@dataclass
class World:
    """What the cases of one run share: shops per country, earlier receipts (to reuse)."""

    rng: random.Random
    start: dict[str, date]
    """Day 0 of the simulated month per campaign (the phase it runs in)."""
    shops: dict[str, list[Shop]] = field(default_factory=dict)
    photos: dict[str, list[bytes]] = field(default_factory=dict)
    """Receipt photos already sent, per campaign. Each campaign runs in an installation
    of its own (`bench/month.py`'s phases, separate databases), so a receipt can only be
    known as reused by the installation it was first sent to."""
    receipt_no: int = 400000

    def shop(self, country: str, campaign: str) -> Shop:
        if country not in self.shops:
            self.shops[country] = shops_for(country, self.rng)
        choices = self.shops[country]
        if campaign == "promo-20pct":
            choices = [s for s in choices if s.name in PROMO_SHOPS_OK] or choices
        return self.rng.choice(choices)

    def next_receipt(self) -> int:
        self.receipt_no += self.rng.randint(3, 40)
        return self.receipt_no


def build_case(persona: Persona, campaign: str, i: int, world: World) -> Case:
    rng = world.rng
    lang = rng.choice(persona.languages[campaign])
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    name = f"{first} {last}"
    domain = rng.choice(("example.no", "example.se", "example.dk", "example.fi", "example.com"))
    email = f"{first.lower()}.{last.lower()}{i}@{domain}"
    if persona.kind == "rma":
        return _rma_case(persona, lang, name, email, world)
    w = WORDS[lang]
    start = world.start[campaign]
    if campaign == "cashback-2022":
        country = "NO"
        model, product_line, price = rng.choice(CASHBACK_MODELS)
        bought = date(2022, 11, 3) + timedelta(days=rng.randint(0, 55))
        serial = str(rng.randint(5000000, 5999999))
    else:
        country = PROMO_COUNTRY[lang]
        model, product_line, prices = rng.choice(PROMO_MODELS)
        bought = start - timedelta(days=rng.randint(3, 14))
        serial = ""
    shop = world.shop(country, campaign)
    if persona.name == "domain_screenshot":
        shop = next(
            s for s in world.shops.setdefault("DK", shops_for("DK", rng)) if s.domain == "power.dk"
        )
    if campaign == "promo-20pct":
        price = prices.get(shop.currency, prices["EUR"])
    purchase = Purchase(shop, bought, product_line, price, world.next_receipt())
    cb = campaign == "cashback-2022"
    reg = {
        "campaign": campaign,
        "email": email,
        "name": name,
        "model": model,
        "serial": serial,
        "purchase_date": bought.isoformat(),
        "country": country,
        "language": lang,
        "price": "" if cb else str(price),
        "currency": "" if cb else shop.currency,
        "first_campaign_mail_on": "" if cb else (start - timedelta(days=14)).isoformat(),
    }

    def serial_att() -> list[tuple[str, str, bytes]]:
        return [("serienummer.jpg", "image/jpeg", serial_photo_clean(model, serial))] if cb else []

    def receipt_att(photo: bytes | None = None) -> list[tuple[str, str, bytes]]:
        data = photo or receipt_photo(purchase, rng)
        return [("kvittering.jpg", "image/jpeg", data)]

    greet = f"{w['hello']}\n\n"
    sign = f"\n\n{w['bye']}\n{first}"
    d1 = rng.randint(1, 6)
    mails: list[Mail] = []
    re_ = (
        "Re: " if lang == "en" else rng.choice(("Re: ", "SV: ", "VS: " if lang == "fi" else "Re: "))
    )

    def reply(body: str, atts: list[tuple[str, str, bytes]]) -> Callable[[MailContext], MailSpec]:
        return lambda c: MailSpec(f"{re_}{c.last_subject}", greet + body + sign, atts)

    def honest(day: int) -> Mail:
        """The receipt and the serial photo, as asked: approved."""
        return Mail(
            day,
            APPROVE,
            reply(w["receipt" if cb else "receipt_only"], receipt_att() + serial_att()),
        )

    name_p = persona.name
    if name_p in ("complete", "shop_layout", "phone_serial"):
        if name_p == "shop_layout":
            atts = [("kvittering.jpg", "image/jpeg", receipt_scan(purchase, i % 2))]
        else:
            photo = receipt_photo(purchase, rng)
            world.photos.setdefault(campaign, []).append(photo)
            atts = receipt_att(photo)
        if name_p == "phone_serial":
            atts += [
                (
                    f"IMG_{rng.randint(1000, 9999):04d}.jpg",
                    "image/jpeg",
                    serial_photo_phone(model, serial, rng),
                )
            ]
        else:
            atts += serial_att()
        mails.append(Mail(d1, APPROVE, reply(w["receipt" if cb else "receipt_only"], atts)))
    elif name_p == "forgot_serial":
        mails.append(
            Mail(
                d1,
                expect("ask for the serial photo by the deadline", "missing_info", "incomplete"),
                reply(w["receipt_only"], receipt_att()),
            )
        )
        mails.append(Mail(d1 + rng.randint(2, 6), APPROVE, reply(w["serial"], serial_att())))
    elif name_p == "reused_receipt":
        earlier = world.photos.get(campaign)
        if earlier:
            stolen = rephotographed(rng.choice(earlier), rng)
            mails.append(
                Mail(
                    d1 + 8,
                    expect(
                        "hand to a person (receipt of another claim)",
                        "documents_received",
                        "review",
                        human=True,
                    ),
                    reply(
                        w["receipt" if cb else "receipt_only"],
                        [("kvittering.jpg", "image/jpeg", stolen), *serial_att()],
                    ),
                )
            )
        else:  # nothing sent to this campaign yet (tiny runs): an honest customer
            mails.append(honest(d1))
    elif name_p == "nothing_attached":
        mails.append(
            Mail(
                d1,
                expect(
                    "say nothing arrived, ask for the receipt",
                    "attachment_missing missing_info attachment_refused",
                    "incomplete awaiting_documents registered",
                ),
                reply(w["attached"], []),
            )
        )
    elif name_p == "status_question":
        mails.append(honest(d1))
        mails.append(
            Mail(
                d1 + rng.randint(4, 9),
                expect(
                    "answer the status question (approved, paid within the promised days)",
                    "claim_status approved",
                    "approved",
                ),
                lambda c: MailSpec(f"{re_}{c.last_subject}", greet + w["status"] + sign),
            )
        )
    elif name_p == "unreadable":
        mails.append(
            Mail(
                d1,
                expect(
                    "ask for a sharper photo",
                    "missing_info attachment_refused",
                    "incomplete awaiting_documents registered",
                ),
                reply(
                    w["receipt" if cb else "receipt_only"],
                    [
                        ("kvittering.jpg", "image/jpeg", unreadable_photo(purchase, rng)),
                        *serial_att(),
                    ],
                ),
            )
        )
    elif name_p == "domain_screenshot":
        mails.append(
            Mail(
                d1,
                APPROVE,
                reply(
                    w["receipt_only"],
                    [("Screenshot_ordre.png", "image/png", cropped_screenshot(purchase))],
                ),
            )
        )
    elif name_p == "b2b_invoice":
        company = rng.choice(
            ("Nordlys Lyd AS", "Fjord Media AB", "Baltic Events ApS", "Sauna Sound Oy")
        )
        b2b = Purchase(
            shop, bought, product_line, price, purchase.receipt_no, buyer=(company, no_orgnr(rng))
        )
        atts = [("faktura.pdf", "application/pdf", invoice_pdf(b2b)), *serial_att()]
        if cb:  # the cashback FAQ lets companies claim
            mails.append(Mail(d1, APPROVE, reply(w["receipt" if cb else "receipt_only"], atts)))
        else:  # "Företag får inte delta"
            mails.append(
                Mail(
                    d1,
                    expect("reject: the buyer is a company", "rejected", "rejected"),
                    reply(w["receipt_only"], atts),
                )
            )
    elif name_p == "better_copy":
        if cb:
            first_att = receipt_att(receipt_photo(purchase, rng, with_vat=False)) + serial_att()
            first_exp = expect(
                "ask for the VAT number (missing on the photo)", "missing_info", "incomplete"
            )
        else:
            first_att = [("kvittering.jpg", "image/jpeg", unreadable_photo(purchase, rng))]
            first_exp = expect(
                "ask for a sharper photo",
                "missing_info attachment_refused",
                "incomplete awaiting_documents registered",
            )
        mails.append(Mail(d1, first_exp, reply(w["receipt" if cb else "receipt_only"], first_att)))
        mails.append(
            Mail(
                d1 + rng.randint(1, 4),
                APPROVE,
                reply(w["better"], [("faktura.pdf", "application/pdf", invoice_pdf(purchase))]),
            )
        )
    elif name_p == "forward":

        def fwd(c: MailContext) -> MailSpec:
            body = (
                f"{w['fwd']}\n\n---------- Forwarded message ---------\n"
                f"From: {purchase.shop.legal} <ordre@{purchase.shop.domain}>\n"
                f"Date: {purchase.day.strftime('%d.%m.%Y')}\n"
                f"Subject: Ordrebekreftelse {purchase.receipt_no}\n\n"
                f"Takk for din bestilling!\n1 x {purchase.product_line}\n"
            )
            atts = [
                (f"Faktura_{purchase.receipt_no}.pdf", "application/pdf", invoice_pdf(purchase)),
                *serial_att(),
            ]
            return MailSpec(
                f"Fwd: Ordrebekreftelse {purchase.receipt_no}", body, atts, reply_to_ours=False
            )

        mails.append(Mail(d1, APPROVE, fwd))
    elif name_p == "out_of_office":
        mails.append(
            Mail(
                d1,
                expect("no reply (auto-reply)", "", "registered awaiting_documents"),
                lambda c: MailSpec(
                    f"{w['ooo_subject']}: {c.last_subject}",
                    w["ooo"],
                    headers={"Auto-Submitted": "auto-replied", "X-Autoreply": "yes"},
                ),
            )
        )
        mails.append(honest(d1 + rng.randint(5, 10)))
    elif name_p == "bounce":
        from mailbot.devtools.samples import bounce_for

        mails.append(
            Mail(
                d1,
                expect("no reply (bounce)", "", ""),
                lambda c: MailSpec(
                    "",
                    "",
                    raw=bounce_for(
                        c.last_message_id,
                        email,
                        to="claims@brand.example",
                        reporting="mx." + email.split("@")[1],
                    ),
                ),
            )
        )
    else:  # pragma: no cover - every persona is handled above
        raise ValueError(name_p)
    return Case(name_p, "claim", campaign, lang, email, name, reg, mails)


def _rma_case(persona: Persona, lang: str, name: str, email: str, world: World) -> Case:
    rng = world.rng
    product = rng.choice(("Sonos One", "Sonos Roam", "Sonos Move", "Sonos Beam"))
    issue_day = -20 if persona.name == "rma_expired" else rng.randint(0, 3)
    notice_day = issue_day + (20 if persona.name == "rma_expired" else rng.randint(2, 10))
    tracking = s10_tracking(rng, "NO")
    start = world.start["returns"]

    def build(c: MailContext) -> MailSpec:
        dropped = start + timedelta(days=notice_day - 1)
        dropoff = DROPOFF_WORDS[lang].format(
            d=dropped.strftime("%d.%m.%Y"),
            t=f"{rng.randint(9, 17)}:{rng.choice(('00', '15', '30', '45'))}",
        )
        table = {
            "rma_proper": RMA_PROPER,
            "rma_expired": RMA_PROPER,
            "rma_body_only": RMA_BODY_ONLY,
            "rma_no_dropoff": RMA_NO_DROPOFF,
        }[persona.name]
        subject, body = table[lang]
        fill = {
            "rma": c.rma,
            "tracking": tracking,
            "dropoff": dropoff,
            "name": name.split()[0],
            "product": product,
        }
        return MailSpec(subject.format(**fill), body.format(**fill), reply_to_ours=False)

    exp = {
        "rma_proper": expect(
            "acknowledge the tracking number", "tracking_ack", "shipment_notified"
        ),
        "rma_body_only": expect(
            "acknowledge the tracking number", "tracking_ack", "shipment_notified"
        ),
        "rma_no_dropoff": expect("ask for the drop-off time", "rma_missing_info", "issued"),
        "rma_expired": expect(
            "answer with the policy: the RMA has expired",
            "rma_policy rma_expired",
            "expired issued",
        ),
    }[persona.name]
    reg = {"email": email, "product": product, "language": lang}
    return Case(
        persona.name,
        "rma",
        "returns",
        lang,
        email,
        name,
        reg,
        [Mail(notice_day, exp, build)],
        rma_issue_day=issue_day,
    )


def build_cases(claims: int, rmas: int, seed: int, start: dict[str, date]) -> list[Case]:
    """The month's customers: `claims` claims over both campaigns and `rmas` RMAs."""
    rng = random.Random(seed)
    world = World(rng, start)
    claim_personas = [p for p in PERSONAS if p.kind == "claim"]
    cases: list[Case] = []
    chosen = allocate(claims, claim_personas, rng)
    # reused receipts need earlier photos: build them last
    chosen.sort(key=lambda p: p.name == "reused_receipt")
    for i, p in enumerate(chosen):
        if len(p.campaigns) == 1:
            campaign = p.campaigns[0]
        else:
            campaign = "cashback-2022" if rng.random() < 0.55 else "promo-20pct"
        cases.append(build_case(p, campaign, i, world))
    for j, p in enumerate(allocate(rmas, [p for p in PERSONAS if p.kind == "rma"], rng)):
        cases.append(build_case(p, "returns", claims + j, world))
    return cases
