"""Duplicate receipts: which signal tells a reused receipt from a different one of the same shop.

    python bench/duplicates.py [--count 300] [--copies 80] [--seed 1]
                               [--corpus ../shared/corpus/receipts] [--ocr 30]

Generates `--count` different receipts of ONE shop template (same header, footer, font
and width; different items, totals, dates, times, receipt and card numbers, always three
items so every receipt has the same height: the hardest case for a picture hash), each
as a phone photo (light, small turn, blur, grain, JPEG). `--corpus` adds the real corpus
images (different receipts of many layouts). Of `--copies` receipts (and a share of the
corpus images) it makes the copies a reuser would send: photographed again (new light
and grain, a small turn and perspective, brightness), cropped by 5-15 %, re-compressed
(JPEG quality 40-70), scaled down.

For each picture hash and threshold it prints the pairs of DIFFERENT receipts within
the threshold (false matches; every pair of different images counts, copies included)
and the share of true copies within it (recall), per kind of copy. `--ocr N` reads N
generated receipts and their copies with the production extraction and prints how often
the content identity (seller + receipt number + date, and the total where both reads
show one: `mailbot.core.fraud`) is read on both sides and agrees, how often the total
is read with the confidence the check relies on, and whether it ever joins two
different receipts. It also reads N "twins": other receipts of the shop with the same
number and date (two registers numbering alike), which only the total tells apart.

Everything is random but for `--seed`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import itertools
import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from PIL import Image, ImageDraw, ImageEnhance, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from holdout import degrade  # the same photo model as the holdout set

from mailbot.core.fraud import ReceiptIdentity

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"
ITEMS = (
    "Sony WH-1000XM5 svart",
    "Sony WF-1000XM4",
    "Sonos One (Gen 2)",
    "Sonos Beam",
    "HDMI-kabel 2m",
    "Bærepose",
    "Veggfeste",
    "Forlenget garanti 3 år",
    "USB-C lader 20W",
    "Høyttalerkabel 5m",
    "Batterier AA 8pk",
    "Skjermrens",
)
PRICES = (49, 99, 199, 249, 399, 499, 1490, 2490, 3990, 4490, 5990)


# --- the candidate picture hashes ----------------------------------------------------


def _grey(img: Image.Image, w: int, h: int) -> list[int]:
    return list(img.convert("L").resize((w, h), Image.Resampling.LANCZOS).tobytes())


def dhash(img: Image.Image, side: int = 8) -> int:
    """Difference hash: side x side bits, each pixel brighter than its right neighbour."""
    px = _grey(img, side + 1, side)
    bits = 0
    for row in range(side):
        for col in range(side):
            i = row * (side + 1) + col
            bits = (bits << 1) | (px[i] > px[i + 1])
    return bits


def _cos_table(n: int, k: int) -> list[list[float]]:
    return [[math.cos(math.pi * u * (2 * x + 1) / (2 * n)) for x in range(n)] for u in range(k)]


_COS: dict[tuple[int, int], list[list[float]]] = {}


def phash(img: Image.Image, side: int = 8) -> int:
    """DCT hash (as in pHash / imagehash.phash): the side x side lowest frequencies of a
    (4 side)^2 thumbnail, each above or below their median. Written over Pillow: the
    ImageHash package needs numpy, SciPy and PyWavelets for the same few lines."""
    n = side * 4
    table = _COS.setdefault((n, side), _cos_table(n, side))
    px = _grey(img, n, n)
    rows = [
        [sum(c * v for c, v in zip(cu, px[y * n : (y + 1) * n], strict=True)) for cu in table]
        for y in range(n)
    ]
    coeffs = [
        sum(table[v][y] * rows[y][u] for y in range(n)) for v in range(side) for u in range(side)
    ]
    median = sorted(coeffs)[len(coeffs) // 2]
    bits = 0
    for c in coeffs:
        bits = (bits << 1) | (c > median)
    return bits


@dataclass(frozen=True)
class Candidate:
    name: str
    bits: int
    fn: Callable[[Image.Image], int]
    thresholds: tuple[int, ...]


CANDIDATES = (
    Candidate("dhash 9x8 (today)", 64, lambda i: dhash(i, 8), (2, 4, 6, 8, 10)),
    Candidate("dhash 17x16", 256, lambda i: dhash(i, 16), (8, 16, 24, 32, 40, 48)),
    Candidate("phash 8x8", 64, lambda i: phash(i, 8), (2, 4, 6, 8, 10)),
    Candidate("phash 16x16", 256, lambda i: phash(i, 16), (8, 16, 24, 32, 40, 48)),
)


# --- the receipts and their copies ---------------------------------------------------


@dataclass(frozen=True)
class Doc:
    source: int
    """Which receipt it shows: images with the same source are copies of one receipt."""
    kind: str
    """original, rephoto, crop, recompress, scale."""
    data: bytes


def shop_lines(rng: random.Random) -> list[str]:
    """One receipt of the one shop: header and footer fixed, the rest varies."""
    day = dt.date(2022, 11, 1) + dt.timedelta(days=rng.randrange(75))
    items = [(text, rng.choice(PRICES)) for text in rng.sample(ITEMS, 3)]
    total = sum(p for _, p in items)
    return [
        "Elkjøp Norge AS",
        "Storgata 12, 0155 Oslo",
        "Tlf 22 33 44 55",
        "Org.nr 988 077 917 MVA",
        "",
        f"Kvittering nr {rng.randrange(100000, 999999)}",
        f"Dato: {day:%d.%m.%Y}  {rng.randrange(9, 21):02d}:{rng.randrange(60):02d}",
        f"Kasse {rng.randrange(1, 6)}",
        "-" * 32,
        *(f"{text:<24}{price:>7},00" for text, price in items),
        "-" * 32,
        f"{'Totalt':<24}{total:>7},00",
        f"{'herav MVA 25%':<24}{total // 5:>7},00",
        f"Bankkort ************{rng.randrange(1000, 9999)}",
        f"Åpent kjøp til {day + dt.timedelta(days=30):%d.%m.%Y}",
        "Takk for handelen!",
    ]


def render(lines: list[str]) -> Image.Image:
    font = ImageFont.truetype(FONT, 24)
    page = Image.new("L", (620, 37 * len(lines) + 120), 255)
    draw = ImageDraw.Draw(page)
    for i, line in enumerate(lines):
        x = max(10, (620 - draw.textlength(line, font=font)) / 2) if i < 4 else 40
        draw.text((x, 50 + 37 * i), line, fill=20, font=font)
    return page


def jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def open_image(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        return img.convert("L")


def rephotograph(page: Image.Image, rng: random.Random) -> bytes:
    photo = degrade(page, rng)
    w, h = photo.size
    # a phone held a little askew: each corner moved by up to 3 % of the side
    corners = [
        (x + rng.uniform(-0.03, 0.03) * w, y + rng.uniform(-0.03, 0.03) * h)
        for x, y in ((0, 0), (0, h), (w, h), (w, 0))
    ]
    photo = photo.transform(
        (w, h),
        Image.Transform.QUAD,
        [c for xy in corners for c in xy],
        Image.Resampling.BICUBIC,
        fillcolor=120,
    )
    photo = ImageEnhance.Brightness(photo).enhance(rng.uniform(0.8, 1.2))
    return jpeg(photo, rng.randrange(60, 90))


def crop(data: bytes, rng: random.Random) -> bytes:
    """5-15 % of the picture's area cut away, from edges chosen at random."""
    img = open_image(data)
    w, h = img.size
    keep = math.sqrt(1 - rng.uniform(0.05, 0.15))  # of each side
    left, top = rng.uniform(0, 1 - keep) * w, rng.uniform(0, 1 - keep) * h
    box = (round(left), round(top), round(left + keep * w), round(top + keep * h))
    return jpeg(img.crop(box), rng.randrange(70, 90))


def recompress(data: bytes, rng: random.Random) -> bytes:
    return jpeg(open_image(data), rng.randrange(40, 71))


def scale(data: bytes, rng: random.Random) -> bytes:
    img = open_image(data)
    f = rng.uniform(0.4, 0.8)
    return jpeg(img.resize((round(img.width * f), round(img.height * f))), rng.randrange(70, 90))


def generate(args: argparse.Namespace) -> tuple[list[Doc], list[list[str]]]:
    rng = random.Random(args.seed)
    docs: list[Doc] = []
    texts: list[list[str]] = []
    pages: list[Image.Image] = []
    for i in range(args.count):
        lines = shop_lines(rng)
        page = render(lines)
        texts.append(lines)
        pages.append(page)
        docs.append(Doc(i, "original", jpeg(degrade(page, rng), rng.randrange(60, 90))))
    for i in range(min(args.copies, args.count)):
        original = docs[i].data
        docs.append(Doc(i, "rephoto", rephotograph(pages[i], rng)))
        docs.append(Doc(i, "crop", crop(original, rng)))
        docs.append(Doc(i, "recompress", recompress(original, rng)))
        docs.append(Doc(i, "scale", scale(original, rng)))
    if args.corpus is not None:
        files = sorted(p for p in args.corpus.rglob("*") if p.suffix.lower() in (".jpg", ".png"))
        for j, path in enumerate(files):
            source = args.count + j
            data = path.read_bytes()
            docs.append(Doc(source, "corpus", data))
            if j % 4 == 0:  # a quarter of the real receipts reused
                docs.append(Doc(source, "crop", crop(data, rng)))
                docs.append(Doc(source, "recompress", recompress(data, rng)))
                docs.append(Doc(source, "scale", scale(data, rng)))
    return docs, texts


# --- measuring -----------------------------------------------------------------------

Pair = tuple[ReceiptIdentity, ReceiptIdentity]


def measure(docs: list[Doc], cand: Candidate, count: int) -> None:
    started = time.perf_counter()
    hashes = [cand.fn(open_image(d.data)) for d in docs]
    per_image = (time.perf_counter() - started) / len(docs) * 1000
    different: list[int] = []
    same_shop: list[int] = []
    same: dict[str, list[int]] = {}
    for (a, ha), (b, hb) in itertools.combinations(zip(docs, hashes, strict=True), 2):
        d = (ha ^ hb).bit_count()
        if a.source != b.source:
            different.append(d)
            if a.source < count and b.source < count:
                same_shop.append(d)
        elif a.kind in ("original", "corpus"):  # a copy against what it copies
            same.setdefault(b.kind, []).append(d)
    all_same = [d for ds in same.values() for d in ds]
    kinds = sorted(same)
    print(
        f"\n{cand.name} ({cand.bits} bits, {per_image:.1f} ms/image): "
        f"{len(different)} pairs of different images ({len(same_shop)} of the one shop), "
        f"{len(all_same)} copies"
    )
    print(
        f"  min distance between different receipts: one shop {min(same_shop)}, "
        f"all {min(different)}; max distance of a copy: "
        + ", ".join(f"{k} {max(same[k])}" for k in kinds)
    )
    head = f"  {'<=':>4} {'false(shop)':>11} {'false(all)':>10} {'recall':>6} "
    print(head + " ".join(f"{k:>10}" for k in kinds))
    for t in cand.thresholds:
        shop = sum(1 for d in same_shop if d <= t)
        false = sum(1 for d in different if d <= t)
        recall = sum(1 for d in all_same if d <= t) / len(all_same)
        per = " ".join(f"{sum(1 for d in same[k] if d <= t) / len(same[k]):>10.2f}" for k in kinds)
        print(f"  {t:>4} {shop:>11} {false:>10} {recall:6.2f} {per}")
    best = min(same_shop) - 1
    if best >= 0:
        recall = sum(1 for d in all_same if d <= best) / len(all_same)
        print(
            f"  largest threshold with 0 false pairs in the one shop: {best}, recall {recall:.2f}"
        )
    else:
        print("  no threshold keeps two different receipts of the one shop apart")


def twins(texts: list[list[str]], n: int, seed: int) -> list[Doc]:
    """For each of the first n receipts, another receipt of the shop with its number
    and date (other items, so another total), photographed the same way."""
    rng = random.Random(seed + 1)
    out = []
    for i in range(min(n, len(texts))):
        lines = shop_lines(rng)
        lines[5:7] = texts[i][5:7]  # "Kvittering nr ...", "Dato: ..."
        out.append(Doc(i, "twin", jpeg(degrade(render(lines), rng), rng.randrange(60, 90))))
    return out


def identity_bench(docs: list[Doc], n: int, count: int, texts: list[list[str]], seed: int) -> None:
    """Content identity as the pipeline reads it, on the first n receipts, their copies
    and their twins."""
    from mailbot.core.fraud import receipt_identity, same_receipt
    from mailbot.ruleset.loader import load_ruleset
    from parsers.document.extraction import extract

    rules = load_ruleset(Path(__file__).resolve().parents[1] / "rules")
    campaign = rules.campaign("cashback-2022")
    ids: dict[tuple[int, str], ReceiptIdentity | None] = {}
    started = time.perf_counter()
    chosen = [d for d in docs if d.source < n and d.kind != "corpus"]
    twin_docs = twins(texts, n, seed)
    for d in (*chosen, *twin_docs):
        result = extract(
            d.data,
            rules=rules.receipts,
            campaign_models=[m.name for m in campaign.models],
            retailers=campaign.retailers,
            languages="nor",
            timeout_s=30,
        )
        ids[(d.source, d.kind)] = receipt_identity(result.fields, campaign.min_confidence)
    seconds = time.perf_counter() - started
    twin_ids = {s: ids.pop((s, k)) for s, k in list(ids) if k == "twin"}
    originals = [ids[(i, "original")] for i in range(n)]
    read = sum(1 for x in ids.values() if x is not None)
    print(
        f"\ncontent identity, {len(chosen)} images read ({seconds / len(chosen):.1f} s each): "
        f"identity read on {read} ({read / len(chosen):.2f})"
    )
    for kind in ("rephoto", "crop", "recompress", "scale"):
        pairs = [(originals[s], x) for (s, k), x in ids.items() if k == kind]
        if not pairs:
            continue
        both = [(a, b) for a, b in pairs if a is not None and b is not None]
        hit = sum(1 for a, b in both if same_receipt(a, b))
        print(f"  {kind:>10}: {hit}/{len(pairs)} copies caught ({len(both)} with both read)")
    values = [x for x in ids.values() if x is not None]
    keys = [(s, x) for (s, _), x in ids.items() if x is not None]
    false = sum(
        1 for (sa, a), (sb, b) in itertools.combinations(keys, 2) if sa != sb and same_receipt(a, b)
    )
    print(f"  false matches among different receipts: {false} pairs of {len(values)} read")
    totals = sum(1 for x in values if x.total is not None)
    print(f"  total read with the campaign's confidence on {totals} of {len(values)} identities")

    def blind(a: ReceiptIdentity, b: ReceiptIdentity) -> bool:
        return same_receipt(replace(a, total=None), replace(b, total=None))

    copies = _both([(originals[s], x) for (s, k), x in ids.items() if k != "original"])
    lost = sum(1 for a, b in copies if blind(a, b) and not same_receipt(a, b))
    print(f"  copies the totals kept apart (an OCR slip read with confidence): {lost}")
    twin_pairs = _both([(originals[s], t) for s, t in twin_ids.items()])
    joined = sum(1 for a, b in twin_pairs if same_receipt(a, b))
    print(
        f"  twins (same shop, number and date, other items): {len(twin_pairs)}/{len(twin_ids)} "
        f"with both identities read; joined {sum(1 for a, b in twin_pairs if blind(a, b))} "
        f"without the total, {joined} with it"
    )


def _both(pairs: list[tuple[ReceiptIdentity | None, ReceiptIdentity | None]]) -> list[Pair]:
    """The pairs with both identities read."""
    out = []
    for a, b in pairs:
        if a is not None and b is not None:
            out.append((a, b))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--count", type=int, default=300, help="different receipts of the one shop")
    ap.add_argument("--copies", type=int, default=80, help="receipts copied four ways each")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--corpus", type=Path, default=None, help="e.g. ../shared/corpus/receipts")
    ap.add_argument("--ocr", type=int, default=0, help="read this many receipts + copies")
    ap.add_argument("--only", default="", help="candidate names containing this")
    args = ap.parse_args(argv)
    docs, texts = generate(args)
    kinds = {k: sum(1 for d in docs if d.kind == k) for k in dict.fromkeys(d.kind for d in docs)}
    print(f"{len(docs)} images: " + ", ".join(f"{v} {k}" for k, v in kinds.items()))
    for cand in CANDIDATES:
        if args.only in cand.name:
            measure(docs, cand, args.count)
    if args.ocr:
        identity_bench(docs, args.ocr, args.count, texts, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
