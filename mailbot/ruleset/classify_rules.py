"""Load `rules/classify.yaml` (bounce and auto-reply signals, text-only intents) into
frozen `ClassifyRules`.

The word lists live in YAML so an admin can add a language's out-of-office
phrase, or a way of saying "attached", without a release; mistakes are reported
with file and line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from mailbot.resources import rules_dir
from mailbot.ruleset.yamlfile import YamlDoc, check, load_yaml, parse_yaml, validate


class _HeaderRuleSchema(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    any: bool = False
    values: list[str] | None = None
    not_values: list[str] | None = None


class _BounceSchema(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sender_localparts: list[str] = Field(min_length=1)
    subject_phrases: list[str] = Field(min_length=1)


class _AutoReplySchema(BaseModel):
    model_config = ConfigDict(extra="forbid")
    headers: list[_HeaderRuleSchema]
    subject_phrases: dict[str, list[str]]


class _TextIntentSchema(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_words: int = Field(ge=1, le=1000)
    status_needs_question_mark: bool = True
    attachment_phrases: dict[str, list[str]]
    status_phrases: dict[str, list[str]]
    person_phrases: dict[str, list[str]] = Field(default_factory=dict)


class _ClassifySchema(BaseModel):
    model_config = ConfigDict(extra="forbid")
    bounce: _BounceSchema
    auto_reply: _AutoReplySchema
    text_intent: _TextIntentSchema | None = None


@dataclass(frozen=True)
class HeaderRule:
    """A header that marks machine mail: present with any value, one of
    `values`, or none of `not_values` (all lower-case, compared trimmed)."""

    name: str
    any_value: bool = False
    values: tuple[str, ...] = ()
    not_values: tuple[str, ...] = ()

    def matches(self, value: str) -> bool:
        v = value.strip().lower()
        if self.any_value:
            return True
        if self.values:
            return v in self.values
        if self.not_values:
            return v not in self.not_values
        return False


@dataclass(frozen=True)
class TextIntentRules:
    """Phrases that say what a claim mail without usable attachments is about.

    Each phrase is lower-case with single spaces, (language, phrase) pairs, longest
    first; a phrase ending in `*` matches any word continuing it ("vedhæft*")."""

    max_words: int = 80
    """Longer new text is left to a person: it likely says more than one thing."""
    status_needs_question_mark: bool = True
    """A status phrase counts only in a sentence that ends with a question mark."""
    attachment_phrases: tuple[tuple[str, str], ...] = ()
    status_phrases: tuple[tuple[str, str], ...] = ()
    person_phrases: tuple[tuple[str, str], ...] = ()
    """Any of these (bank account, complaint, cancel ...) leaves the mail to a person."""


@dataclass(frozen=True)
class ClassifyRules:
    source: str
    bounce_sender_localparts: frozenset[str]
    bounce_subject_phrases: tuple[str, ...]
    auto_reply_headers: tuple[HeaderRule, ...]
    ooo_subject_phrases: tuple[tuple[str, str], ...]
    """(language, phrase) pairs, phrase lower-case."""
    text_intent: TextIntentRules = TextIntentRules()
    """Empty lists (no `text_intent` section): no text-only mail is answered."""

    def bounce_subject(self, subject: str) -> str | None:
        s = subject.lower()
        return next((p for p in self.bounce_subject_phrases if p in s), None)

    def ooo_subject(self, subject: str) -> tuple[str, str] | None:
        """(language, phrase) of the first out-of-office phrase starting a word."""
        s = " ".join(subject.lower().split())
        for lang, phrase in self.ooo_subject_phrases:
            if re.search(r"(?<!\w)" + re.escape(phrase), s):
                return lang, phrase
        return None


def _build(doc: YamlDoc) -> ClassifyRules:
    schema: _ClassifySchema = validate(doc, _ClassifySchema)
    rules: list[HeaderRule] = []
    for i, r in enumerate(schema.auto_reply.headers):
        kinds = sum([r.any, r.values is not None, r.not_values is not None])
        check(
            doc,
            kinds == 1,
            f"auto_reply.headers.{i}: give exactly one of any, values, not_values",
            ("auto_reply", "headers", i),
        )
        rules.append(
            HeaderRule(
                name=r.name,
                any_value=r.any,
                values=tuple(v.strip().lower() for v in r.values or ()),
                not_values=tuple(v.strip().lower() for v in r.not_values or ()),
            )
        )
    phrases: list[tuple[str, str]] = []
    for lang, words in schema.auto_reply.subject_phrases.items():
        for j, w in enumerate(words):
            check(
                doc,
                bool(w.strip()),
                "empty phrase",
                ("auto_reply", "subject_phrases", lang, j),
            )
            phrases.append((lang, " ".join(w.lower().split())))
    # Longest first, so "out of office" is reported rather than a shorter overlap.
    phrases.sort(key=lambda lp: -len(lp[1]))
    return ClassifyRules(
        source=doc.path,
        text_intent=_text_intent(doc, schema.text_intent),
        bounce_sender_localparts=frozenset(
            x.strip().lower() for x in schema.bounce.sender_localparts
        ),
        bounce_subject_phrases=tuple(x.strip().lower() for x in schema.bounce.subject_phrases),
        auto_reply_headers=tuple(rules),
        ooo_subject_phrases=tuple(phrases),
    )


def _phrases(
    doc: YamlDoc, section: str, table: dict[str, list[str]]
) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    for lang, words in table.items():
        for j, w in enumerate(words):
            phrase = " ".join(w.lower().split())
            check(
                doc,
                bool(phrase.rstrip("*")) and "*" not in phrase[:-1],
                "empty phrase, or `*` not at its end",
                ("text_intent", section, lang, j),
            )
            out.append((lang, phrase))
    out.sort(key=lambda lp: -len(lp[1]))
    return tuple(out)


def _text_intent(doc: YamlDoc, s: _TextIntentSchema | None) -> TextIntentRules:
    if s is None:
        return TextIntentRules()
    return TextIntentRules(
        max_words=s.max_words,
        status_needs_question_mark=s.status_needs_question_mark,
        attachment_phrases=_phrases(doc, "attachment_phrases", s.attachment_phrases),
        status_phrases=_phrases(doc, "status_phrases", s.status_phrases),
        person_phrases=_phrases(doc, "person_phrases", s.person_phrases),
    )


def load_classify_rules(path: Path | str | None = None) -> ClassifyRules:
    """Load and validate a classify rules file (default: the built-in one).
    Raises `RulesError` naming file and line."""
    return _build(load_yaml(path if path is not None else rules_dir() / "classify.yaml"))


def parse_classify_rules(text: str, path: str = "<string>") -> ClassifyRules:
    """The same from YAML text (tests, admin previews)."""
    return _build(parse_yaml(text, path))


@lru_cache(maxsize=1)
def default_classify_rules() -> ClassifyRules:
    """The built-in rules, read once per process."""
    return load_classify_rules()
