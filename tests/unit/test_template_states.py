"""The claim states in words: one table per language (`states` in `_words.j2`), read by
the claim_status mail and the claimant status page, and checked by `mailbot check`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mailbot import resources
from mailbot.core.claim_state import ClaimState
from mailbot.core.languages import LANGUAGES
from mailbot.templating.render import SAMPLE_CONTEXT, Templates, check_templates
from mailbot.web.status import TEMPLATES_DIR as STATUS_TEMPLATES

T = Templates()


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_state_has_words_and_the_mail_says_them(lang: str) -> None:
    states = T.words(lang)["states"]
    assert set(states) == {s.value for s in ClaimState}
    for state, words in states.items():
        mail = T.render("claim_status", lang, SAMPLE_CONTEXT["claim_status"] | {"state": state})
        assert f": {words}." in mail.text
        assert mail.html is not None and words in mail.html


def test_no_other_template_keeps_its_own_state_words() -> None:
    for root in (resources.templates_dir(), STATUS_TEMPLATES):
        for path in root.rglob("*.j2"):
            if path.name != "_words.j2":
                assert "set states" not in path.read_text("utf-8"), path


def _builtin_copy(tmp_path: Path) -> Path:
    builtin = tmp_path / "builtin"
    shutil.copytree(resources.templates_dir(), builtin)
    return builtin


def test_check_reports_a_state_without_words_in_any_language(tmp_path: Path) -> None:
    builtin = _builtin_copy(tmp_path)
    for lang, state in (("fi", "void"), ("en", "awaiting_documents")):
        words = builtin / lang / "_words.j2"
        text = words.read_text("utf-8")
        assert f'    "{state}":' in text
        words.write_text(text.replace(f'    "{state}":', f'    "x_{state}":'), "utf-8")
    problems = check_templates(builtin_dir=builtin)
    assert "fi/_words.j2: states has no words for 'void'" in problems
    # English is the reference for the other tables, not for the states: it is checked too
    assert "en/_words.j2: states has no words for 'awaiting_documents'" in problems


def test_check_reports_a_site_words_file_without_states(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "nb").mkdir(parents=True)
    text = (resources.templates_dir() / "nb" / "_words.j2").read_text("utf-8")
    start = text.index("{% set states")
    end = text.index("} %}", start) + len("} %}\n")
    (site / "nb" / "_words.j2").write_text(text[:start] + text[end:], "utf-8")
    problems = check_templates(site)
    assert any(p.startswith("nb/_words.j2:") and "states" in p for p in problems), problems
