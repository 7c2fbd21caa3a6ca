"""Load `rules/receipts/*.yaml` into one frozen `ReceiptRules` for `parsers.receipt.fields`.

The files are admin-editable data: VAT labels per country (`vat.yaml`), month
names and date context words (`dates.yaml`), the default retailer list
(`retailers.yaml`), the product catalogue (`products.yaml`), document-kind
signals, receipt-number and total labels (`document.yaml`) and confidence
thresholds (`thresholds.yaml`). Every
file is validated on load (pydantic schema, unknown keys rejected, regular
expressions compiled) and every error names the file and line. `version` is a
short sha256 of the files' bytes, stored with every extraction. `RulesCache`
reloads when a file's mtime changes.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mailbot.core.campaign import NamedItem
from mailbot.core.errors import RulesError
from mailbot.resources import rules_dir
from mailbot.ruleset.yamlfile import YamlDoc, check, load_yaml, validate

Retailer = NamedItem
"""A retailer is a canonical name plus aliases, as in a campaign's retailer list."""

FILES = ("vat", "dates", "retailers", "products", "document", "thresholds")
VALIDATORS = (
    "no.orgnr",
    "se.orgnr",
    "dk.cvr",
    "fi.ytunnus",
    "lv.pvn",
    "gb.vat",
    "eu.vat",
    "de.vat",
    "nl.btw",
    "fr.tva",
)
FIELD_NAMES = (
    "retailer",
    "purchase_date",
    "product",
    "vat_number",
    "serial_number",
    "receipt_number",
    "buyer_company",
    "total",
)


@dataclass(frozen=True)
class VatCountry:
    country: str
    """ISO code, or "EU" for any prefixed EU VAT number."""
    validator: str
    """python-stdnum module path below `stdnum`, e.g. "no.orgnr"."""
    prefix: str | None
    labels: tuple[re.Pattern[str], ...]


@dataclass(frozen=True)
class Product:
    name: str
    brand: str | None
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReceiptRules:
    version: str
    vat: tuple[VatCountry, ...]
    not_vat: tuple[re.Pattern[str], ...]
    months: tuple[tuple[str, int], ...]
    """(spelling, month number), longest spelling first."""
    purchase: tuple[re.Pattern[str], ...]
    strong_purchase: tuple[re.Pattern[str], ...]
    not_purchase: tuple[re.Pattern[str], ...]
    year_first_words: tuple[re.Pattern[str], ...]
    """A page with these reads dash-separated two-digit-year dates year-first."""
    retailers: tuple[Retailer, ...]
    legal_forms: tuple[str, ...]
    """Printed after the name (Elkjøp Nordic AS)."""
    legal_forms_first: tuple[str, ...]
    """Printed before the name (SIA "Name")."""
    head_lines: int
    products: tuple[Product, ...]
    brand_required_below: int
    receipt_signals: tuple[re.Pattern[str], ...]
    serial_labels: tuple[re.Pattern[str], ...]
    receipt_number_labels: tuple[re.Pattern[str], ...]
    document_titles: tuple[re.Pattern[str], ...]
    """A document's title word ("Factuur."), never part of the retailer's name before it."""
    min_confidence: tuple[tuple[str, float], ...]
    fuzzy_retailer: float
    fuzzy_product: float
    retailer_domains: tuple[tuple[str, str], ...] = ()
    """(web domain, retailer name) from the default list: "power.dk" names Power."""
    model_labels: tuple[re.Pattern[str], ...] = ()
    """Printed before a model name on a product label ("MODEL:"): a serial-label signal."""
    order_date: tuple[re.Pattern[str], ...] = ()
    """Labels of a web-shop order date: the purchase date when no other date is left."""
    after_purchase: tuple[re.Pattern[str], ...] = ()
    """Labels of dates never before the purchase (due, return-by, warranty, print)."""
    buyer_labels: tuple[re.Pattern[str], ...] = ()
    """Labels opening an invoice's buyer block ("Kunde:", "Bill to"), at a line's start."""
    buyer_block_lines: int = 4
    """Lines under a buyer label that belong to the buyer block."""
    total_labels: tuple[re.Pattern[str], ...] = ()
    """Labels of the receipt's total ("Totalt", "Summa", "I alt"), as whole words."""
    total_due_labels: tuple[re.Pattern[str], ...] = ()
    """Labels of the amount to pay ("Å betale", "Att betala"): outrank `total_labels`."""
    total_including: tuple[re.Pattern[str], ...] = ()
    """Phrases saying tax is included ("inkl. mva"), read past before `not_total_labels`."""
    not_total_labels: tuple[re.Pattern[str], ...] = ()
    """Words of a line that is never the total: subtotal, tax, change, cash, discount."""

    def threshold(self, field: str) -> float:
        return dict(self.min_confidence).get(field, 0.6)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _VatCountry(_Strict):
    validator: str
    prefix: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    labels: list[str] = Field(min_length=1)


class _VatFile(_Strict):
    countries: dict[str, _VatCountry] = Field(min_length=1)
    not_vat: list[str] = Field(default_factory=list)


class _DatesFile(_Strict):
    months: dict[str, list[list[str]]] = Field(min_length=1)
    purchase: list[str] = Field(default_factory=list)
    strong_purchase: list[str] = Field(default_factory=list)
    not_purchase: list[str] = Field(default_factory=list)
    order_date: list[str] = Field(default_factory=list)
    after_purchase: list[str] = Field(default_factory=list)
    year_first_words: list[str] = Field(default_factory=list)


class _Named(_Strict):
    name: str = Field(min_length=1)
    aliases: list[str] = Field(default_factory=list)


class _RetailerEntry(_Named):
    domains: list[str] = Field(default_factory=list)


# A bare host name as printed in an address bar or a footer: labels of letters,
# digits and hyphens, a letter TLD; no scheme, no path, lower case.
_DOMAIN = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")


class _RetailersFile(_Strict):
    retailers: list[_RetailerEntry] = Field(default_factory=list)
    legal_forms: list[str] = Field(default_factory=list)
    legal_forms_first: list[str] = Field(default_factory=list)
    head_lines: int = Field(default=8, ge=1, le=50)


class _Product(_Strict):
    name: str = Field(min_length=1)
    brand: str | None = None
    aliases: list[str] = Field(default_factory=list)


class _ProductsFile(_Strict):
    products: list[_Product] = Field(default_factory=list)
    brand_required_below: int = Field(default=6, ge=0, le=40)


class _DocumentFile(_Strict):
    receipt_signals: list[str] = Field(min_length=1)
    serial_labels: list[str] = Field(min_length=1)
    model_labels: list[str] = Field(default_factory=list)
    receipt_number_labels: list[str] = Field(default_factory=list)
    document_titles: list[str] = Field(default_factory=list)
    buyer_labels: list[str] = Field(default_factory=list)
    buyer_block_lines: int = Field(default=4, ge=1, le=12)
    total_labels: list[str] = Field(default_factory=list)
    total_due_labels: list[str] = Field(default_factory=list)
    total_including: list[str] = Field(default_factory=list)
    not_total_labels: list[str] = Field(default_factory=list)


class _Fuzzy(_Strict):
    retailer: float = Field(default=88, ge=50, le=100)
    product: float = Field(default=90, ge=50, le=100)


class _ThresholdsFile(_Strict):
    min_confidence: dict[str, float] = Field(default_factory=dict)
    fuzzy: _Fuzzy = Field(default_factory=_Fuzzy)


def _patterns(
    doc: YamlDoc, items: list[str], loc: tuple[str | int, ...]
) -> tuple[re.Pattern[str], ...]:
    out = []
    for i, text in enumerate(items):
        try:
            out.append(re.compile(text, re.IGNORECASE))
        except re.error as exc:
            raise doc.error(
                f"{'.'.join(map(str, (*loc, i)))}: bad regular expression: {exc}", (*loc, i)
            ) from None
    return tuple(out)


def _load(directory: Path, name: str) -> YamlDoc:
    path = directory / f"{name}.yaml"
    if not path.exists():
        raise RulesError("missing rules file", path=str(path))
    return load_yaml(path)


def _vat(doc: YamlDoc) -> tuple[tuple[VatCountry, ...], tuple[re.Pattern[str], ...]]:
    data: _VatFile = validate(doc, _VatFile)
    countries = []
    for code, item in data.countries.items():
        check(
            doc,
            code == "EU" or bool(re.fullmatch(r"[A-Z]{2}", code)),
            f"countries.{code}: not a country code",
            ("countries", code),
        )
        check(
            doc,
            item.validator in VALIDATORS,
            f"countries.{code}.validator: one of {', '.join(VALIDATORS)}",
            ("countries", code, "validator"),
        )
        labels = _patterns(doc, item.labels, ("countries", code, "labels"))
        countries.append(VatCountry(code, item.validator, item.prefix, labels))
    return tuple(countries), _patterns(doc, data.not_vat, ("not_vat",))


def _months(doc: YamlDoc, data: _DatesFile) -> tuple[tuple[str, int], ...]:
    spellings: dict[str, int] = {}
    for lang, months in data.months.items():
        check(
            doc,
            len(months) == 12,
            f"months.{lang}: needs 12 months, has {len(months)}",
            ("months", lang),
        )
        for number, names in enumerate(months, start=1):
            check(
                doc,
                bool(names),
                f"months.{lang}.{number - 1}: no spelling",
                ("months", lang, number - 1),
            )
            for name in names:
                key = str(name).casefold()
                # One spelling meaning two months (e.g. "mar" en/fr) would be a silent guess.
                check(
                    doc,
                    spellings.get(key, number) == number,
                    f"months.{lang}: {key!r} is month {spellings.get(key)} elsewhere",
                    ("months", lang, number - 1),
                )
                spellings[key] = number
    return tuple(sorted(spellings.items(), key=lambda kv: -len(kv[0])))


def _hash(directory: Path) -> str:
    digest = hashlib.sha256()
    for name in FILES:
        digest.update(name.encode())
        digest.update((directory / f"{name}.yaml").read_bytes())
    return digest.hexdigest()[:12]


def load_receipt_rules(directory: Path | None = None) -> ReceiptRules:
    """Read and validate every receipt rules file; raise RulesError naming file:line."""
    d = Path(directory) if directory is not None else rules_dir() / "receipts"
    docs = {name: _load(d, name) for name in FILES}
    vat, not_vat = _vat(docs["vat"])
    dates: _DatesFile = validate(docs["dates"], _DatesFile)
    rdoc = docs["retailers"]
    retailers: _RetailersFile = validate(rdoc, _RetailersFile)
    products: _ProductsFile = validate(docs["products"], _ProductsFile)
    ddoc = docs["document"]
    document: _DocumentFile = validate(ddoc, _DocumentFile)
    tdoc = docs["thresholds"]
    thresholds: _ThresholdsFile = validate(tdoc, _ThresholdsFile)
    for key, value in thresholds.min_confidence.items():
        check(
            tdoc,
            key in FIELD_NAMES,
            f"min_confidence.{key}: unknown field",
            ("min_confidence", key),
        )
        check(
            tdoc,
            0.0 <= value <= 1.0,
            f"min_confidence.{key}: must be 0..1",
            ("min_confidence", key),
        )
    ddoc_dates = docs["dates"]
    return ReceiptRules(
        version=_hash(d),
        vat=vat,
        not_vat=not_vat,
        months=_months(ddoc_dates, dates),
        purchase=_patterns(ddoc_dates, dates.purchase, ("purchase",)),
        strong_purchase=_patterns(ddoc_dates, dates.strong_purchase, ("strong_purchase",)),
        not_purchase=_patterns(ddoc_dates, dates.not_purchase, ("not_purchase",)),
        year_first_words=_patterns(ddoc_dates, dates.year_first_words, ("year_first_words",)),
        order_date=_patterns(ddoc_dates, dates.order_date, ("order_date",)),
        after_purchase=_patterns(ddoc_dates, dates.after_purchase, ("after_purchase",)),
        retailers=tuple(NamedItem(r.name, tuple(r.aliases)) for r in retailers.retailers),
        legal_forms=tuple(retailers.legal_forms),
        legal_forms_first=tuple(retailers.legal_forms_first),
        head_lines=retailers.head_lines,
        products=tuple(Product(p.name, p.brand, tuple(p.aliases)) for p in products.products),
        brand_required_below=products.brand_required_below,
        receipt_signals=_patterns(ddoc, document.receipt_signals, ("receipt_signals",)),
        serial_labels=_patterns(ddoc, document.serial_labels, ("serial_labels",)),
        model_labels=_patterns(ddoc, document.model_labels, ("model_labels",)),
        receipt_number_labels=_patterns(
            ddoc, document.receipt_number_labels, ("receipt_number_labels",)
        ),
        document_titles=_patterns(ddoc, document.document_titles, ("document_titles",)),
        buyer_labels=_buyer_labels(ddoc, document.buyer_labels),
        buyer_block_lines=document.buyer_block_lines,
        total_labels=_words(ddoc, document.total_labels, "total_labels"),
        total_due_labels=_words(ddoc, document.total_due_labels, "total_due_labels"),
        total_including=_words(ddoc, document.total_including, "total_including"),
        not_total_labels=_words(ddoc, document.not_total_labels, "not_total_labels"),
        min_confidence=tuple(sorted(thresholds.min_confidence.items())),
        fuzzy_retailer=thresholds.fuzzy.retailer,
        fuzzy_product=thresholds.fuzzy.product,
        retailer_domains=_retailer_domains(rdoc, retailers),
    )


def _buyer_labels(doc: YamlDoc, items: list[str]) -> tuple[re.Pattern[str], ...]:
    """Each label, compiled to match a whole word at a line's start; one that matches
    an empty string would open a buyer block on every line."""
    loose = _patterns(doc, items, ("buyer_labels",))
    for i, pattern in enumerate(loose):
        check(
            doc,
            pattern.fullmatch("") is None,
            f"buyer_labels.{i}: matches an empty line",
            ("buyer_labels", i),
        )
    return tuple(re.compile(rf"\s*(?:{p.pattern})(?!\w)", re.IGNORECASE) for p in loose)


def _words(doc: YamlDoc, items: list[str], key: str) -> tuple[re.Pattern[str], ...]:
    """Each pattern compiled to match whole words only ("sum" is not in "Consumer");
    one that matches an empty string would match every line."""
    loose = _patterns(doc, items, (key,))
    for i, pattern in enumerate(loose):
        check(doc, pattern.fullmatch("") is None, f"{key}.{i}: matches an empty line", (key, i))
    return tuple(re.compile(rf"(?<!\w)(?:{p.pattern})(?!\w)", re.IGNORECASE) for p in loose)


def _retailer_domains(doc: YamlDoc, file: _RetailersFile) -> tuple[tuple[str, str], ...]:
    """Each listed domain, checked: a bare lower-case host name naming one retailer."""
    owner: dict[str, str] = {}
    for i, r in enumerate(file.retailers):
        for j, domain in enumerate(r.domains):
            loc = ("retailers", i, "domains", j)
            check(
                doc,
                _DOMAIN.fullmatch(domain) is not None,
                f"retailers.{i}.domains.{j}: {domain!r} is not a bare lower-case domain"
                " (like power.dk: no scheme, no www., no path)",
                loc,
            )
            check(
                doc,
                not domain.startswith("www."),
                f"retailers.{i}.domains.{j}: leave out www. (it is matched anyway)",
                loc,
            )
            check(
                doc,
                owner.get(domain, r.name) == r.name,
                f"retailers.{i}.domains.{j}: {domain} is already {owner.get(domain)}'s",
                loc,
            )
            owner[domain] = r.name
    return tuple(owner.items())


class RulesCache:
    """The current `ReceiptRules`, reloaded when a file in the directory changes
    (admins edit rules while the daemon runs). A reload that fails keeps the
    rules that were good and raises, so a typo never leaves the daemon without rules."""

    def __init__(self, directory: Path | None = None) -> None:
        self._dir = Path(directory) if directory is not None else rules_dir() / "receipts"
        self._stamp: tuple[Any, ...] | None = None
        self._rules: ReceiptRules | None = None

    def _mtimes(self) -> tuple[Any, ...]:
        return tuple(
            (p.name, p.stat().st_mtime_ns, p.stat().st_size)
            for p in sorted(self._dir.glob("*.yaml"))
        )

    def get(self) -> ReceiptRules:
        stamp = self._mtimes()
        if self._rules is None or stamp != self._stamp:
            self._rules = load_receipt_rules(self._dir)
            self._stamp = stamp
        return self._rules
