"""One file -> the four fields of a proof of purchase, as `mailbot extract` prints them.

Glue between `parsers.document.text` (document -> text) and `parsers.receipt.fields` (text ->
fields): the field rules also decide whether OCR should try harder (`needs_more`),
so a second pass or engine only runs when a required field is still missing.

`extract_file` returns the JSON object scripts depend on:

    {"file": "...", "document_kind": "receipt",
     "fields": {"retailer": {"value": ..., "confidence": 0.9, "evidence": "..."} | null,
                "purchase_date": {...}, "product": {...},
                "vat_number": {"value": ..., "country": "NO", ...} | null},
     "source": "pdf-text" | "ocr", "seconds": 0.8, "rules_version": "..."}

`read_files` is what `mailbot extract` and `mailbot rules test` read: a file goes
through the same attachment check as a mail's (`parsers.mail.filecheck.judge_file`)
first, so a HEIC photo is read as the JPEG it is converted to, a `winmail.dat`
(TNEF) as the files inside it, a PDF holding only a picture by OCR, and a file the
mail path refuses is refused with its reason. `extract_files` gives each document's
object as above plus `other_fields`, the fields read besides the four (serial_number,
receipt_number, buyer_company with its "country", total with its "currency"; null
when not read), and `converted_from` for a converted photo. `render` shows the same
for a person: the text read, each field, the rule that fired.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mailbot import metrics
from mailbot.core.errors import ExtractionError
from mailbot.core.receipt_fields import RECEIPT_FIELDS, DocumentKind, FieldValue, ReceiptFields
from parsers.document.ocr import Doubts
from parsers.document.text import FALLBACK_ENGINES, DocumentText, read_document
from parsers.mail.attachments import sniff_type

__all__ = [
    "OTHER_FIELDS",
    "Extraction",
    "ReadDocument",
    "document_json",
    "documents_in",
    "extract",
    "extract_file",
    "extract_files",
    "format_rules_test",
    "read_files",
    "render",
    "to_json",
]

OTHER_FIELDS = ("serial_number", "receipt_number", "buyer_company", "total")
"""Fields read besides the four of `RECEIPT_FIELDS`; none is required."""


@dataclass(frozen=True)
class Extraction:
    """Everything one run produced, before it is shaped for JSON or for a person."""

    name: str
    document: DocumentText
    fields: ReceiptFields
    seconds: float
    rules_version: str | None


def _load(path_or_bytes: str | Path | bytes, name: str | None) -> tuple[bytes, str]:
    if isinstance(path_or_bytes, bytes):
        return path_or_bytes, name or "-"
    path = Path(path_or_bytes)
    try:
        return path.read_bytes(), name or str(path_or_bytes)
    except OSError as exc:
        raise ExtractionError(f"cannot read {path}: {exc.strerror}") from exc


def extract(
    path_or_bytes: str | Path | bytes,
    *,
    rules: Any,
    campaign_models: Sequence[str] = (),
    retailers: Sequence[Any] = (),
    languages: str = "eng",
    serial: str | None = None,
    timeout_s: float = 15,
    name: str | None = None,
    required: Sequence[str] = RECEIPT_FIELDS,
    fallback_engines: Sequence[str] = FALLBACK_ENGINES,
    now: dt.date | None = None,
) -> Extraction:
    """Read one document and extract its fields. Raises ExtractionError when the
    file cannot be read at all (not a PDF/JPEG/PNG, broken) or reading its text
    layer would exceed the budget (`parsers.document.budget.DocumentOverBudget`: the time
    `timeout_s`, or the size of what it inflates to). `required` is the
    campaign's `required_fields`: OCR tries harder only while one of them is missing.
    A purchase date after `now` (default: tomorrow, for time zones) is an OCR slip
    (`2018` read as `2098`) and is never reported."""
    # Imported here: parsers.receipt.fields is the field rules' module and the heavier
    # import; `mailbot check` and `read_document` users need not pay for it.
    from parsers.receipt.fields import extract_fields

    started = time.monotonic()
    latest = now or dt.date.today() + dt.timedelta(days=1)
    content, label = _load(path_or_bytes, name)
    mime = sniff_type(content) or ""

    def fields_of(text: str, doubts: Doubts) -> ReceiptFields:
        return extract_fields(
            text,
            rules,
            models=campaign_models,
            retailers=retailers,
            serial=serial,
            now=latest,
            doubts=doubts,
        )

    def needs_more(text: str, doubts: Doubts) -> tuple[str, ...]:
        if time.monotonic() - started > timeout_s:
            return ()  # the budget is spent: no further pass, so no need to ask
        found = fields_of(text, doubts)
        missing = found.missing(tuple(required))
        # A serial-number label is not a receipt: more OCR will not make it one.
        # But a dated page with a VAT number is a receipt whatever else it shows
        # (receipts print serials and "S/N" of cash registers too).
        looks_like_serial = found.document_kind == DocumentKind.SERIAL_PHOTO and not (
            found.vat_number or found.purchase_date
        )
        if looks_like_serial:
            # A label without a serial read, or with one that is not the one
            # registered, may be misread: another engine gets a look first.
            label = found.serial_number
            misread = label is None or (serial is not None and label.value != serial)
            return ("serial_number",) if misread else ()
        if found.document_kind == DocumentKind.OTHER:
            # Neither receipt nor label yet: the kind is open, which is worth
            # another engine even when no receipt field is required.
            return (*missing, "document_kind")
        return tuple(missing)

    document = read_document(
        content,
        mime,
        languages=languages,
        timeout_s=timeout_s,
        needs_more=needs_more,
        fallback_engines=fallback_engines,
    )
    metrics.document_read(document.source, document.seconds)
    fields = fields_of(document.text, document.doubts)
    return Extraction(
        name=label,
        document=document,
        fields=fields,
        seconds=round(time.monotonic() - started, 3),
        rules_version=getattr(rules, "version", None),
    )


def _field_json(
    value: FieldValue | None, *, with_country: bool, with_currency: bool = False
) -> dict[str, Any] | None:
    if value is None:
        return None
    out: dict[str, Any] = {"value": value.value}
    if with_country:
        out["country"] = value.country
    if with_currency:
        out["currency"] = value.currency
    out["confidence"] = round(float(value.confidence), 3)
    out["evidence"] = value.evidence
    return out


def to_json(result: Extraction) -> dict[str, Any]:
    """The stable JSON shape of `mailbot extract --json` (one object per file)."""
    return {
        "file": result.name,
        "document_kind": str(result.fields.document_kind),
        "fields": {
            name: _field_json(result.fields.get(name), with_country=name == "vat_number")
            for name in RECEIPT_FIELDS
        },
        "source": result.document.source,
        "seconds": result.seconds,
        "rules_version": result.rules_version,
    }


@dataclass(frozen=True)
class Judged:
    """One document of a file as the mail path would take it."""

    name: str
    content: bytes | None
    """What the reader gets (a HEIC photo converted to JPEG); None when refused."""
    refusal: str | None = None
    converted_from: str | None = None


CLI_MAX_BYTES = 64 * 1024 * 1024
"""The size limit of `mailbot extract`: the mail path's 5 MB is the campaign's
rule for uploads, not a limit of reading, so a bigger file an admin has at hand
is still read (the pixel, page and nesting limits stay those of the mail path)."""


def documents_in(path_or_bytes: str | Path | bytes, name: str | None = None) -> list[Judged]:
    """The documents in one file, judged by the mail path's attachment check:
    a TNEF container gives the files inside it (named `container[inner]`)."""
    from parsers.mail.filecheck import DEFAULT_LIMITS, judge_file

    content, label = _load(path_or_bytes, name)
    limits = replace(DEFAULT_LIMITS, max_bytes=CLI_MAX_BYTES)
    judged = judge_file(Path(label).name, "application/octet-stream", content, limits=limits)
    container = sniff_type(content) == "application/ms-tnef"
    out: list[Judged] = []
    for att in judged:
        shown = f"{label}[{att.filename}]" if container and not att.ignored else label
        if att.ignored:
            out.append(Judged(shown, None, f"{Path(label).name}: holds no document to read"))
        elif not att.accepted:
            out.append(Judged(shown, None, att.refusal or "not accepted"))
        else:
            out.append(Judged(shown, att.content, None, att.converted_from))
    return out


@dataclass(frozen=True)
class ReadDocument:
    """One document of a file, read as the mail path reads it, or why not."""

    name: str
    result: Extraction | None
    error: str | None = None
    """The refusal or the reading error; None when `result` is set."""
    converted_from: str | None = None


def read_files(path_or_bytes: str | Path | bytes, **options: Any) -> list[ReadDocument]:
    """Each document in the file (`documents_in`), read by `extract` (same keyword
    options); one that is refused or cannot be read carries its reason instead."""
    label = options.pop("name", None)
    try:
        documents = documents_in(path_or_bytes, label)
    except ExtractionError as exc:
        return [ReadDocument(label or str(path_or_bytes), None, str(exc))]
    out: list[ReadDocument] = []
    for doc in documents:
        if doc.content is None:
            out.append(ReadDocument(doc.name, None, doc.refusal or "not accepted"))
            continue
        try:
            result = extract(doc.content, name=doc.name, **options)
        except ExtractionError as exc:
            out.append(ReadDocument(doc.name, None, str(exc)))
            continue
        out.append(ReadDocument(doc.name, result, None, doc.converted_from))
    return out


def document_json(doc: ReadDocument) -> dict[str, Any]:
    """The object `mailbot extract --json` prints for one document: `to_json` with
    `other_fields` and `converted_from`, or `{"file": ..., "error": ...}`."""
    if doc.result is None:
        return {"file": doc.name, "error": doc.error}
    obj = to_json(doc.result)
    obj["other_fields"] = {
        name: _field_json(
            doc.result.fields.get(name),
            with_country=name == "buyer_company",
            with_currency=name == "total",
        )
        for name in OTHER_FIELDS
    }
    if doc.converted_from:
        obj["converted_from"] = doc.converted_from
    return obj


def extract_files(path_or_bytes: str | Path | bytes, **options: Any) -> list[dict[str, Any]]:
    """`mailbot extract`: one JSON object (`document_json`) per document in the file."""
    return [document_json(doc) for doc in read_files(path_or_bytes, **options)]


def extract_file(path_or_bytes: str | Path | bytes, **options: Any) -> dict[str, Any]:
    """`extract` (same keyword options) shaped as the JSON object `mailbot extract --json`
    prints."""
    return to_json(extract(path_or_bytes, **options))


def format_rules_test(path_or_bytes: str | Path | bytes, **options: Any) -> str:
    """A person's view of each document in the file (`mailbot rules test FILE`), read
    as `read_files` reads it; options as `extract`."""
    return "\n".join(render_document(d) for d in read_files(path_or_bytes, **options))


def render_document(doc: ReadDocument) -> str:
    """`render` of one read document, or the reason it was not read."""
    if doc.result is None:
        return f"cannot read {doc.name}: {doc.error}\n"
    return render(doc.result, converted_from=doc.converted_from)


def render(result: Extraction, *, converted_from: str | None = None) -> str:
    doc, fields = result.document, result.fields
    converted = f" (converted from {converted_from})" if converted_from else ""
    out = [
        f"file:      {result.name}",
        f"read as:   {doc.source}, {doc.pages} page(s), {doc.seconds:.2f} s{converted}"
        + (" (time budget ran out: partial text)" if doc.timed_out else ""),
        f"passes:    {'; '.join(doc.notes) or '-'}",
        f"rules:     {result.rules_version or '-'}",
        "",
        "--- text read " + "-" * 50,
        doc.text.rstrip() or "(no text)",
        "-" * 64,
        "",
        f"document kind: {fields.document_kind}",
    ]
    names = (*RECEIPT_FIELDS, *OTHER_FIELDS)
    width = max(len(n) for n in names)
    for name in names:
        value = fields.get(name)
        if value is None:
            if name in RECEIPT_FIELDS:
                out.append(f"{name:<{width}}  MISSING (no rule matched with enough confidence)")
            continue
        shown = f"{value.country} {value.value}" if value.country else value.value
        if value.currency:
            shown = f"{shown} {value.currency}"
        out.append(f"{name:<{width}}  {shown}  (confidence {value.confidence:.2f})")
        out.append(f"{'':<{width}}    rule:     {value.rule}")
        out.append(f"{'':<{width}}    evidence: {value.evidence!r}")
    missing = fields.missing()
    out.append("")
    out.append("missing: " + (", ".join(missing) if missing else "none"))
    return "\n".join(out) + "\n"
