"""Benchmark of receipt reading on a labelled corpus: accuracy, precision, time.

    python bench/extraction.py ../shared/corpus/receipts [--workers 1,2] [--limit N]
        [--sources nordic,lv] [--languages eng|campaign] [--needs-more extractor|oracle|off]
        [--fallback rapidocr|none] [--timeout 15]

Prints, per source and field: labelled, predicted, correct, accuracy, precision
(scored as ../shared/corpus/README.md says: a null label is not scored; the
retailer is right when it fuzzy-equals one of `retailer_names` after folding
case and punctuation, or when a label that is only the brand ("real") starts
the legal name read ("real GmbH"), legal forms ignored; VAT numbers compare
digits only; dates by ISO equality; products case-insensitively; the total, where
a label has one ("total": "3990.00", as bench/holdout.py writes), by amount; it is
never required, so it asks no OCR pass of its own); `exact` counts
the right answers spelled exactly as labelled (retailers within the OCR-slip
tolerance are right, "TED HENG" for "TEO HENG", but not exact). Labels a document
itself contradicts (`bench/label_errata.json`, each with the printed text that
shows it) are scored a second time, corrected, below the main table. Also the
*ceiling*: in how many documents the labelled value appears anywhere in the
text read (what any extractor can reach from that text). Then seconds per
document (median, p90, max) for images, scanned PDFs and text PDFs, and
throughput with each worker count. `--models` picks the eligible models.

Without `parsers.receipt.fields` importable, only the ceiling and times are
measured. `--needs-more oracle` decides the extra OCR passes from the labels
(a missing labelled value triggers them): for measuring what the passes and the
optional engine can gain and cost, never a production setting.
The corpus is read in place, never copied.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import statistics
import sys
import time
import unicodedata
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mailbot.core.errors import ExtractionError
from parsers.document.text import FALLBACK_ENGINES, read_document

REQUIRED = ("retailer", "purchase_date", "vat_number", "product")
"""The fields a proof of purchase must show: the only ones that decide OCR passes."""
FIELDS = (*REQUIRED, "total")
MONTHS = (
    "jan",
    "feb|fev",
    "mar|maa|mrz",
    "apr|avr",
    "mai|may|mei",
    "jun|juin",
    "jul|juil",
    "aug|aou",
    "sep",
    "okt|oct",
    "nov",
    "des|dec|dez",
)
COUNTRY_LANG = {"NO": "nor", "SE": "swe", "DK": "dan", "FI": "fin"}


def fold(text: str) -> str:
    """Lower case, no diacritics, letters and digits separated by single spaces."""
    text = unicodedata.normalize("NFKD", text.casefold().replace("ø", "o").replace("æ", "ae"))
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return " ".join(re.sub(r"[^0-9a-z]+", " ", text).split())


def retailer_equal(value: str, names: list[str], cutoff: float = 90) -> bool:
    from rapidfuzz import fuzz

    got = fold(value)
    if any(got and fuzz.ratio(got, fold(name)) >= cutoff for name in names):
        return True
    # Some sources label the brand only ("real", from a file name) where the
    # receipt prints the legal name ("real GmbH", "toom Baumarkt GmbH"): with
    # legal forms dropped on both sides, the label's words (4 letters at least)
    # must be the first words of the answer.
    core = _without_forms(got)
    for name in names:
        brand = _without_forms(fold(name))
        if len(brand.replace(" ", "")) >= 4 and (core == brand or core.startswith(brand + " ")):
            return True
    return False


def _without_forms(folded: str) -> str:
    if "forms" not in _CACHE:
        rules = _rules()
        forms = {fold(f) for f in (*rules.legal_forms, *rules.legal_forms_first)} | {"co"}
        _CACHE["forms"] = sorted(forms, key=len, reverse=True)
    text = f" {folded} "
    for form in _CACHE["forms"]:
        text = text.replace(f" {form} ", " ")
    return " ".join(text.split())


def digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def labels(meta: dict[str, Any]) -> dict[str, Any]:
    vat = meta.get("vat") or {}
    names = meta.get("retailer_names") or ([meta["retailer"]] if meta.get("retailer") else [])
    return {
        "retailer": names or None,
        "purchase_date": meta.get("purchase_date"),
        "vat_number": vat.get("number") or None,
        "product": meta.get("product"),
        "total": meta.get("total"),
    }


def _cents(text: str) -> int | None:
    """Cents of a decimal string ("3990.00"), None when it is not one."""
    m = re.fullmatch(r"\s*(\d+)(?:\.(\d{2}))?\s*", str(text))
    return None if m is None else int(m.group(1)) * 100 + int(m.group(2) or 0)


def correct(name: str, value: str, label: Any, *, exact: bool = False) -> bool:
    """Whether `value` is right; `exact`: a retailer spelled as labelled (after
    folding case and punctuation), not only within the OCR-slip tolerance."""
    if name == "retailer":
        return retailer_equal(value, label, 100 if exact else 90)
    if name == "vat_number":
        return digits(value) == digits(label)
    if name == "product":
        return value.casefold() == str(label).casefold()
    if name == "total":
        return _cents(value) is not None and _cents(value) == _cents(label)
    return bool(value == label)


def in_text(name: str, label: Any, text: str) -> bool:
    """Whether the labelled value appears in the text at all (the ceiling)."""
    if name == "retailer":
        folded = f" {fold(text)} "
        return any(fold(n) and f" {fold(n)} " in folded for n in label)
    if name == "product":
        return fold(label).replace(" ", "") in fold(text).replace(" ", "")
    if name == "vat_number":
        return digits(label) in re.sub(r"[\s.\-]", "", text)
    if name == "total":
        return _amount_in_text(label, text)
    year, month, day = (int(x) for x in str(label).split("-"))
    folded = fold(text)
    for name in MONTHS[month - 1].split("|"):
        if re.search(rf"\b0?{day}\b\D{{0,3}}\b{name}\w*\D{{0,3}}\b{year}\b", folded):
            return True
        if re.search(rf"\b{name}\w*\D{{0,3}}\b0?{day}\b\D{{0,3}}{year}\b", folded):
            return True
    for m in re.finditer(r"(\d{1,4})\s*[./\-]\s*(\d{1,2})\s*[./\-]\s*(\d{2,4})", text):
        a, b, c = (int(x) for x in m.groups())
        for y, mo, d in ((c, b, a), (a, b, c), (c, a, b)):
            if mo == month and d == day and y in (year, year % 100):
                return True
    return False


def _amount_in_text(label: Any, text: str) -> bool:
    """Whether the amount is printed, in any grouping ("3 990,00", "3.990,00",
    "3990.00", "3990,-")."""
    cents = _cents(label)
    if cents is None:
        return False
    units = str(cents // 100)
    groups = [units[max(0, i - 3) : i] for i in range(len(units), 0, -3)][::-1]
    whole = r"[ .,'\u00a0]?".join(groups)
    decimals = rf"[.,]\s?{cents % 100:02d}" + (r"|[.,]-" if cents % 100 == 0 else "")
    return re.search(rf"(?<![\d.,]){whole}(?:{decimals})(?!\d)", text) is not None


def _oracle(lab: dict[str, Any]) -> Any:
    def needs_more(text: str, doubts: Any) -> list[str]:
        return [
            k for k, v in lab.items() if k in REQUIRED and v is not None and not in_text(k, v, text)
        ]

    return needs_more


def bench_one(path: str, mode: str, languages: str, engines: tuple[str, ...]) -> dict[str, Any]:
    """Read and extract one document (runs in a worker process)."""
    meta = json.loads(Path(path).with_suffix(".json").read_text())
    lab = labels(meta)
    lang = languages
    if languages == "campaign":  # the campaign's country language, as a claim would set
        lang = "eng"
        if meta.get("country") in COUNTRY_LANG:
            lang = f"{COUNTRY_LANG[meta['country']]}+eng"
    content = Path(path).read_bytes()
    started, cpu_started = time.monotonic(), _cpu()
    predicted: dict[str, Any] = {}
    confidence: dict[str, float] = {}
    try:
        if mode == "extractor":
            from parsers.document.extraction import extract

            # Like a campaign's required_fields: OCR tries harder only for fields
            # this source's documents carry (no SROIE receipt names a campaign model).
            required = _required(path)
            result = extract(
                content,
                rules=_rules(),
                campaign_models=_models(),
                languages=lang,
                required=required,
                fallback_engines=engines,
                timeout_s=_CACHE.get("timeout", 15.0),
            )
            doc = result.document
            read = _fields(result)
            predicted = {k: (v["value"] if v else None) for k, v in read.items()}
            confidence = {k: v["confidence"] for k, v in read.items() if v}
        else:
            needs = _oracle(lab) if mode == "oracle" else None
            doc = read_document(
                content,
                "",
                languages=lang,
                needs_more=needs,
                fallback_engines=engines,
                timeout_s=_CACHE.get("timeout", 15.0),
            )
    except ExtractionError as exc:
        return {"path": path, "error": str(exc), "seconds": time.monotonic() - started}
    seconds, cpu = time.monotonic() - started, _cpu() - cpu_started
    kind = (
        "image"
        if not path.endswith(".pdf")
        else f"pdf-{'text' if doc.source == 'pdf-text' else 'scan'}"
    )
    return {
        "path": path,
        "source": Path(path).parent.name,
        "kind": kind,
        "seconds": seconds,
        "cpu": cpu,
        "labels": lab,
        "predicted": predicted,
        "confidence": confidence,
        "ceiling": {k: in_text(k, v, doc.text) for k, v in lab.items() if v is not None},
        "notes": list(doc.notes),
        "timed_out": doc.timed_out,
    }


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


_CACHE: dict[str, Any] = {}


def _required(path: str) -> tuple[str, ...]:
    """Fields the source labels at all (a per-source 'campaign' setting)."""
    source = Path(path).parent
    if source.name not in _CACHE:
        found: set[str] = set()
        for meta in source.glob("*.json"):
            meta_labels = labels(json.loads(meta.read_text()))
            found |= {k for k, v in meta_labels.items() if v and k in REQUIRED}
        _CACHE[source.name] = tuple(sorted(found))
    return tuple(_CACHE[source.name])


def _rules() -> Any:
    if "rules" not in _CACHE:
        from mailbot.ruleset.receipts import load_receipt_rules

        _CACHE["rules"] = load_receipt_rules()
    return _CACHE["rules"]


def _models() -> tuple[Any, ...]:
    """The eligible models the benchmark's "campaign" lists.

    `catalogue` (default): every model of rules/receipts/products.yaml, as a
    campaign covering the whole catalogue would list them (the corpus mixes
    brands; the shipped campaigns are Sonos-only). `campaigns`: only the models
    of the shipped campaigns, so other brands' models count as misses."""
    if "models" not in _CACHE:
        if _CACHE.get("models_from") == "campaigns":
            from mailbot.ruleset.campaigns import load_campaigns

            models = {m.name: None for c in load_campaigns().values() for m in c.models}
        else:
            models = {p.name: None for p in _rules().products}
        _CACHE["models"] = tuple(models)
    return tuple(_CACHE["models"])


def _fields(result: Any) -> dict[str, Any]:
    from parsers.document.extraction import to_json

    out = dict(to_json(result)["fields"])
    total = result.fields.get("total")
    out["total"] = (
        {"value": total.value, "confidence": total.confidence} if total is not None else None
    )
    return out


def run(
    paths: list[str], workers: int, mode: str, languages: str, engines: tuple[str, ...]
) -> tuple[list[dict[str, Any]], float]:
    started = time.monotonic()
    if workers == 1:
        rows = [bench_one(p, mode, languages, engines) for p in paths]
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            n = len(paths)
            rows = list(pool.map(bench_one, paths, [mode] * n, [languages] * n, [engines] * n))
    return rows, time.monotonic() - started


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def score(
    rows: list[dict[str, Any]], source: str, name: str, key: str = "labels"
) -> tuple[int, int, int, int, int] | None:
    """(labelled, predicted, correct, exactly right, value in the text) of one field
    of one source, against the labels in `row[key]`; None when the source does not
    label it."""
    labelled = [r for r in rows if r["source"] == source and r[key][name] is not None]
    if not labelled:
        return None
    pred = [r for r in labelled if r["predicted"].get(name)]
    good = [r for r in pred if correct(name, r["predicted"][name], r[key][name])]
    exact = [r for r in good if correct(name, r["predicted"][name], r[key][name], exact=True)]
    ceiling = sum(1 for r in labelled if r["ceiling"].get(name))
    return len(labelled), len(pred), len(good), len(exact), ceiling


def _table(ok: list[dict[str, Any]], mode: str, key: str, only: set[tuple[str, str]]) -> None:
    head = ("source", "field", "lab", "pred", "corr", "acc", "prec", "exact", "in-text")
    print("{:<10} {:<14} {:>4} {:>4} {:>4} {:>5} {:>5} {:>5} {:>7}".format(*head))
    for source in sorted({r["source"] for r in ok}):
        for name in FIELDS:
            counts = score(ok, source, name, key)
            if counts is None or (only and (source, name) not in only):
                continue
            n, pred, good, exact, ceiling = counts
            acc = f"{good / n:.2f}" if mode == "extractor" else "  -"
            prec = f"{good / pred:.2f}" if pred else "  -"
            # The ceiling was measured against the labels as given.
            in_text = f"{ceiling / n:.2f}" if key == "labels" else "-"
            cells = (source, name, n, pred, good, acc, prec, exact, in_text)
            print("{:<10} {:<14} {:>4} {:>4} {:>4} {:>5} {:>5} {:>5} {:>7}".format(*cells))


def load_errata(corpus: Path) -> dict[str, dict[str, Any]]:
    """bench/label_errata.json: labels the document itself contradicts, with the
    printed text that shows it. Keyed by the document's path under the corpus;
    an entry applies only while the corpus still holds the label it corrects."""
    out: dict[str, dict[str, Any]] = {}
    for entry in json.loads(ERRATA.read_text()):
        out.setdefault(str(corpus / entry["document"]), {})[entry["field"]] = entry
    return out


ERRATA = Path(__file__).with_name("label_errata.json")


def apply_errata(
    rows: list[dict[str, Any]], errata: dict[str, dict[str, Any]]
) -> set[tuple[str, str]]:
    """Give each row `fixed` labels; returns the (source, field) pairs that changed."""
    changed: set[tuple[str, str]] = set()
    for row in rows:
        row["fixed"] = dict(row.get("labels", {}))
        for name, entry in errata.get(row["path"], {}).items():
            if row["fixed"].get(name) == entry["label"]:
                row["fixed"][name] = entry["value"]
                changed.add((row["source"], name))
    return changed


RELIED_ON = 0.8
"""The shipped campaigns' min_confidence: a rejection rests only on a value read with
at least this confidence, and the duplicate check uses a total only above it."""


def _relied_on(ok: list[dict[str, Any]]) -> None:
    """Per field, the values read with the confidence decisions rely on; below it a
    value sends a claim to review or a question, never to a rejection."""
    fields = sorted({k for r in ok for k, v in r["labels"].items() if v is not None})
    print(f"read with confidence >= {RELIED_ON} (what rejections and the duplicate check use):")
    for name in fields:
        labelled = [r for r in ok if r["labels"].get(name) is not None]
        sure = [
            r
            for r in labelled
            if r["predicted"].get(name) is not None
            and r.get("confidence", {}).get(name, 0) >= RELIED_ON
        ]
        good = [r for r in sure if correct(name, r["predicted"][name], r["labels"][name])]
        prec = f"{len(good) / len(sure):.2f}" if sure else "-"
        print(f"  {name:<14} {len(sure)}/{len(labelled)} read, {len(good)} right, precision {prec}")


def report(rows: list[dict[str, Any]], mode: str, errata: dict[str, dict[str, Any]]) -> None:
    ok = [r for r in rows if "error" not in r]
    for r in rows:
        if "error" in r:
            print(f"ERROR {r['path']}: {r['error']}")
    print()
    _table(ok, mode, "labels", set())
    _relied_on(ok)
    changed = apply_errata(ok, errata)
    if changed:
        print(f"\nwith the label errata of {ERRATA.name} (labels the document contradicts):")
        _table(ok, mode, "fixed", changed)
    print("\nseconds per document (wall; cpu = own + tesseract children, robust to a busy host)")
    print(
        "{:<10} {:>4} {:>7} {:>6} {:>6} {:>8} {:>7} {:>7}".format(
            "kind", "docs", "median", "p90", "max", "cpu-med", "cpu-p90", "cpu-max"
        )
    )
    for kind in ("image", "pdf-scan", "pdf-text"):
        mine = [r for r in ok if r["kind"] == kind]
        if mine:
            secs = [r["seconds"] for r in mine]
            cpu = [r["cpu"] for r in mine]
            times = (kind, len(secs), statistics.median(secs), pct(secs, 0.9), max(secs))
            print("{:<10} {:>4} {:>7.2f} {:>6.2f} {:>6.2f}".format(*times), end="")
            print(f" {statistics.median(cpu):>8.2f} {pct(cpu, 0.9):>7.2f} {max(cpu):>7.2f}")
    second = [r for r in ok if any("psm 11" in n or n.startswith("flat-field") for n in r["notes"])]
    osd = [r for r in ok if any(n.startswith("osd: rotated") for n in r["notes"])]
    rapid = [
        float(n.split()[1].rstrip("s"))
        for r in ok
        for n in r["notes"]
        if n.startswith("rapidocr ") and "skipped" not in n
    ]
    osd_runs = sum(1 for r in ok if any(n.startswith("osd") for n in r["notes"]))
    print(f"second tesseract pass: {len(second)}/{len(ok)} docs", end="")
    print(f"; osd runs {osd_runs}, rotations {len(osd)}")
    if rapid:
        print(
            f"rapidocr runs: {len(rapid)}/{len(ok)} docs, {statistics.mean(rapid):.2f} s each, "
            f"{sum(rapid) / len(ok):.2f} s per document on average"
        )
    skipped = sum(1 for r in ok for n in r["notes"] if n.startswith("rapidocr skipped"))
    if skipped:
        print(f"rapidocr skipped for lack of budget: {skipped}")
    print(f"timed out (budget): {sum(1 for r in ok if r['timed_out'])}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--limit", type=int, default=0, help="documents per source (0: all)")
    ap.add_argument("--sources", default="", help="comma-separated folders (default: all)")
    ap.add_argument("--languages", default="eng", help="tesseract languages, or 'campaign'")
    ap.add_argument("--needs-more", default="auto", choices=("auto", "extractor", "oracle", "off"))
    ap.add_argument(
        "--fallback",
        default=",".join(FALLBACK_ENGINES),
        help="engines after tesseract, as the daemon reads (rapidocr); 'none': tesseract alone",
    )
    ap.add_argument(
        "--models",
        default="catalogue",
        choices=("catalogue", "campaigns"),
        help="eligible models: the whole product catalogue, or the shipped campaigns'",
    )
    ap.add_argument("--json", type=Path, help="also write every row here")
    ap.add_argument(
        "--timeout",
        type=float,
        default=15.0,
        help="reading budget per document in wall seconds (the daemon's default: 15); "
        "raise it on a busy host so the budget does not cut passes an idle core would run",
    )
    args = ap.parse_args(argv)
    if not args.corpus.is_dir():
        print(f"corpus not found: {args.corpus}", file=sys.stderr)
        return 2
    _CACHE["models_from"] = args.models
    _CACHE["timeout"] = args.timeout
    mode = args.needs_more
    if mode == "auto":
        try:
            import mailbot.ruleset.receipts  # noqa: F401
            import parsers.receipt.fields  # noqa: F401

            mode = "extractor"
        except ImportError:
            mode = "off"
            print("parsers.receipt.fields not available: measuring the text ceiling and times only")
    wanted = [s for s in args.sources.split(",") if s]
    paths: list[str] = []
    for folder in sorted(p for p in args.corpus.iterdir() if p.is_dir()):
        if wanted and folder.name not in wanted:
            continue
        docs = sorted(
            p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".pdf")
        )
        paths.extend(str(p) for p in (docs[: args.limit] if args.limit else docs))
    throughput: dict[int, float] = {}
    errata = load_errata(args.corpus)
    for workers in (int(w) for w in args.workers.split(",")):
        engines = tuple(e for e in args.fallback.split(",") if e and e != "none")
        rows, wall = run(paths, workers, mode, args.languages, engines)
        throughput[workers] = len(paths) / wall
        print(f"\n=== {workers} worker(s): {len(paths)} documents in {wall:.1f} s", end="")
        print(f", mode {mode}, languages {args.languages}, fallback {args.fallback or '-'}")
        report(rows, mode, errata)
        if args.json:
            args.json.with_suffix(f".w{workers}.json").write_text(json.dumps(rows, indent=1))
    print(
        "\nthroughput (documents/s): "
        + ", ".join(f"{w} worker(s) {t:.2f}" for w, t in throughput.items())
    )
    if 1 in throughput and len(throughput) > 1:
        best = max(throughput)
        print(f"speed-up with {best} workers: {throughput[best] / throughput[1]:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
