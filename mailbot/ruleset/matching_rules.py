"""Load `rules/matching.yaml` into frozen `MatchingRules`.

What an admin may tune without a release: the format of the RMA numbers we
accept, the subject prefixes and phrases of shipment notifications, the carriers'
tracking-number patterns (with the name of the check-digit algorithm, which
lives in code: `parsers.returns.tracking`), and the word lists per language that point
at a tracking number, a drop-off time, or an order/phone number that must not be
taken for a registration code. Mistakes are reported with file and line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from mailbot.resources import rules_dir
from mailbot.ruleset.yamlfile import YamlDoc, check, load_yaml, parse_yaml, validate

CheckName = Literal["ups", "s10", "gs1", "mod7", "fedex", "damm", "none"]
CHECK_NAMES: tuple[str, ...] = get_args(CheckName)


class _CarrierSchema(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1)
    carrier: str = Field(min_length=1)
    pattern: str = Field(min_length=1)
    check: CheckName
    names: list[str] = Field(default_factory=list)
    require_name: bool = False
    needs_context: bool = False


class _RmaSchema(BaseModel):
    model_config = ConfigDict(extra="forbid")
    number_pattern: str = Field(min_length=1)
    check: Literal["damm", "none"]
    label: str = Field(min_length=1)
    subject_phrases: list[str] = Field(min_length=1)
    body_words: list[str] = Field(default_factory=lambda: ["rma"])


class _MatchingSchema(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rma: _RmaSchema
    subject_prefixes: list[str] = Field(min_length=1)
    carriers: list[_CarrierSchema] = Field(min_length=1)
    tracking_keywords: dict[str, list[str]]
    dropoff_keywords: dict[str, list[str]]
    code_ignore_words: dict[str, list[str]]
    phone_words: list[str] = Field(default_factory=list)


@dataclass(frozen=True)
class CarrierPattern:
    """One tracking-number format. `pattern` must match the whole number written
    without spaces, upper case. `check` names an algorithm in `parsers.returns.tracking`.
    `names` are words that name the carrier in a mail ("bring", "postnord"); with
    `require_name` the pattern is only believed when one of them appears (for
    formats without a check digit that look like any other number). With
    `needs_context` a tracking word just before the number also suffices (for
    all-digit formats whose check digit passes by chance too often: 1 in 7 or 10)."""

    id: str
    carrier: str
    pattern: str
    check: str
    names: tuple[str, ...] = ()
    require_name: bool = False
    needs_context: bool = False


@dataclass(frozen=True)
class MatchingRules:
    source: str
    rma_number_pattern: str
    """Regex for the bare RMA number (no label), matched whole."""
    rma_check: str
    """'damm' (our numbers) or 'none'."""
    rma_label: str
    """Regex for the label before the number: 'RMA#', 'RMA -', 'RMA nr.' ..."""
    shipment_subject_phrases: tuple[str, ...]
    """Lower case; spaces and hyphens inside are matched loosely."""
    subject_prefixes: tuple[str, ...]
    """Reply/forward prefixes (lower case, without the colon): re, sv, aw, fwd ..."""
    carriers: tuple[CarrierPattern, ...]
    """In priority order: when one number fits several, the earlier wins unless a
    later carrier is named in the mail."""
    tracking_keywords: tuple[tuple[str, tuple[str, ...]], ...]
    """(language, words) pairs, lower case."""
    dropoff_keywords: tuple[tuple[str, tuple[str, ...]], ...]
    code_ignore_words: tuple[tuple[str, tuple[str, ...]], ...]
    """Words that, before an 8-digit number, say it is an order/receipt/phone number."""
    phone_words: tuple[str, ...] = ()
    rma_body_words: tuple[str, ...] = ("rma",)
    """Lower case words that, just before a number in a body, label it an RMA number."""

    @staticmethod
    def _flat(pairs: tuple[tuple[str, tuple[str, ...]], ...]) -> tuple[str, ...]:
        out: list[str] = []
        for _lang, words in pairs:
            out.extend(w for w in words if w not in out)
        return tuple(out)

    def all_tracking_keywords(self) -> tuple[str, ...]:
        return self._flat(self.tracking_keywords)

    def all_dropoff_keywords(self) -> tuple[str, ...]:
        return self._flat(self.dropoff_keywords)

    def all_code_ignore_words(self) -> tuple[str, ...]:
        return self._flat(self.code_ignore_words)


def _words(mapping: dict[str, list[str]]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return tuple(
        (lang, tuple(w.strip().lower() for w in words if w.strip()))
        for lang, words in mapping.items()
    )


def _regex_ok(doc: YamlDoc, pattern: str, loc: tuple[str | int, ...]) -> None:
    try:
        re.compile(pattern)
    except re.error as exc:
        where = ".".join(map(str, loc))
        raise doc.error(f"{where}: invalid regular expression: {exc}", loc) from None


def rules_from_doc(doc: YamlDoc) -> MatchingRules:
    """Validate a parsed file; every error names the file and the line."""
    schema: _MatchingSchema = validate(doc, _MatchingSchema)
    _regex_ok(doc, schema.rma.number_pattern, ("rma", "number_pattern"))
    _regex_ok(doc, schema.rma.label, ("rma", "label"))
    for i, w in enumerate(schema.rma.body_words):
        check(
            doc,
            bool(re.search(r"\w", w)),
            f"rma.body_words.{i}: a word needs a letter or digit",
            ("rma", "body_words", i),
        )
    seen: set[str] = set()
    for i, c in enumerate(schema.carriers):
        _regex_ok(doc, c.pattern, ("carriers", i, "pattern"))
        check(doc, c.id not in seen, f"carriers.{i}.id: duplicate id {c.id!r}", ("carriers", i))
        check(
            doc,
            not c.require_name or bool(c.names),
            f"carriers.{i}: require_name needs at least one name",
            ("carriers", i),
        )
        seen.add(c.id)
    return MatchingRules(
        source=doc.path,
        rma_number_pattern=schema.rma.number_pattern,
        rma_check=schema.rma.check,
        rma_label=schema.rma.label,
        shipment_subject_phrases=tuple(p.strip().lower() for p in schema.rma.subject_phrases),
        subject_prefixes=tuple(p.strip().lower().rstrip(":") for p in schema.subject_prefixes),
        carriers=tuple(
            CarrierPattern(
                id=c.id,
                carrier=c.carrier,
                pattern=c.pattern,
                check=c.check,
                names=tuple(n.lower() for n in c.names),
                require_name=c.require_name,
                needs_context=c.needs_context,
            )
            for c in schema.carriers
        ),
        tracking_keywords=_words(schema.tracking_keywords),
        dropoff_keywords=_words(schema.dropoff_keywords),
        code_ignore_words=_words(schema.code_ignore_words),
        phone_words=tuple(w.lower() for w in schema.phone_words),
        rma_body_words=tuple(dict.fromkeys(w.strip().lower() for w in schema.rma.body_words)),
    )


def parse_matching_rules(text: str, path: str = "<string>") -> MatchingRules:
    return rules_from_doc(parse_yaml(text, path))


@lru_cache(maxsize=8)
def _load_cached(path: str, stamp: tuple[int, int]) -> MatchingRules:
    return rules_from_doc(load_yaml(path))


def load_matching_rules(path: Path | None = None) -> MatchingRules:
    """The rules in `path`, default the built-in `rules/matching.yaml` (cached per path
    and file version: the daemon's reload must see an edit)."""
    p = path if path is not None else rules_dir() / "matching.yaml"
    try:
        st = p.stat()
        stamp = (st.st_mtime_ns, st.st_size)
    except OSError:
        stamp = (0, 0)  # load_yaml names the missing file
    return _load_cached(str(p), stamp)
