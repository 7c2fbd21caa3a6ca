"""What a claim mail without usable attachments asks for, when its text says so clearly.

Two intents are recognised from the sender's new text (`InboundEmail.new_text`,
quoted history and signature already removed), with the phrase lists of
`rules/classify.yaml` (`text_intent`):

* `attachment_missing`: the text says something is attached ("Vedlagt kvittering",
  "Receipt attached") and nothing usable came with it;
* `status_question`: a question about the claim's progress or payment ("Når får jeg
  pengene?", "When do I get paid?").

Precision comes first, because a wrong automatic answer is worse than a hand-over:
text longer than `max_words`, text naming both intents, and text with a phrase a
person must handle (bank details, complaints, cancelling) give no intent, and the
mail stays with a person unanswered. Matching is a plain phrase scan over lower-
cased words; the phrases are data an admin tunes, so no language model is needed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from mailbot.ruleset.classify_rules import TextIntentRules

IntentKind = Literal["attachment_missing", "status_question"]

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class TextIntent:
    """The outcome of reading a text-only claim mail."""

    kind: IntentKind | None
    """None: no clear intent; a person reads the mail."""
    reason: str
    """Why, for the event: the intent, or what kept the mail for a person."""
    phrase: str | None = None
    language: str | None = None
    """The language whose phrase matched (the reply uses the claim's language)."""


@lru_cache(maxsize=512)
def _pattern(phrase: str) -> re.Pattern[str]:
    prefix = phrase.endswith("*")
    body = re.escape(phrase.rstrip("*")).replace(r"\ ", r"\s+")
    return re.compile(r"(?<!\w)" + body + (r"\w*" if prefix else r"(?!\w)"))


def _find(text: str, phrases: tuple[tuple[str, str], ...]) -> tuple[str, str] | None:
    for lang, phrase in phrases:
        if _pattern(phrase).search(text):
            return lang, phrase
    return None


def _find_in_questions(text: str, phrases: tuple[tuple[str, str], ...]) -> tuple[str, str] | None:
    for sentence in _SENTENCE_END.split(text):
        if sentence.rstrip().endswith("?"):
            hit = _find(sentence, phrases)
            if hit is not None:
                return hit
    return None


def text_intent(new_text: str, rules: TextIntentRules) -> TextIntent:
    """The intent of a claim mail's new text, or none (see the module docstring)."""
    text = new_text.lower()
    words = len(_WORD.findall(text))
    if words == 0:
        return TextIntent(None, "empty_text")
    if words > rules.max_words:
        return TextIntent(None, "text_too_long")
    person = _find(text, rules.person_phrases)
    if person is not None:
        return TextIntent(None, "needs_person", person[1], person[0])
    attached = _find(text, rules.attachment_phrases)
    if rules.status_needs_question_mark:
        status = _find_in_questions(text, rules.status_phrases)
    else:
        status = _find(text, rules.status_phrases)
    if attached is not None and status is not None:
        return TextIntent(None, "ambiguous_intent", f"{attached[1]} | {status[1]}")
    if attached is not None:
        return TextIntent("attachment_missing", "attachment_missing", attached[1], attached[0])
    if status is not None:
        return TextIntent("status_question", "status_question", status[1], status[0])
    return TextIntent(None, "no_clear_intent")
