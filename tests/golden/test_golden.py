"""Golden files: each document in docs/ beside its expected JSON (made by make_fixtures.py).

Two levels: the text layer (parsers.document.text reads the values printed on each
document, always run) and the whole extraction (`extract_file` output fields
equal the expected JSON; needs parsers.receipt.fields and the receipt rules). Seconds,
confidences and evidence are not compared: they vary with the machine and the
OCR build; the values, countries, kinds and sources must not.
"""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from rapidfuzz import fuzz

from parsers.document.ocr import TESSERACT
from parsers.document.text import read_document
from tests.golden.make_fixtures import DOCS, fixtures

pytestmark = pytest.mark.skipif(TESSERACT.is_available() is None, reason="tesseract missing")

CASES = sorted(p for p in DOCS.iterdir() if p.suffix != ".json")


def _expected(doc: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(doc.with_name(doc.name + ".json").read_text("utf-8"))
    return data


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.casefold().replace("æ", "ae").replace("ø", "o"))
    return re.sub(r"[^0-9a-z]+", "", "".join(c for c in text if not unicodedata.combining(c)))


def test_fixtures_are_current() -> None:
    """The committed expectations are the ones the generator writes (regenerate if not)."""
    for fixture in fixtures():
        expected = _expected(DOCS / fixture.name)
        assert expected == {"languages": fixture.languages, **fixture.expected}


def test_fixtures_stay_small() -> None:
    assert sum(p.stat().st_size for p in DOCS.iterdir()) < 200_000


@pytest.mark.parametrize("doc", CASES, ids=lambda p: p.name)
def test_text_layer_reads_printed_values(doc: Path) -> None:
    expected = _expected(doc)
    text = read_document(doc.read_bytes(), "", languages=expected["languages"], fallback_engines=())
    assert text.source == expected["source"]
    assert not text.timed_out
    fields = expected.get("fields", {})
    if "vat_number" in fields:
        assert fields["vat_number"]["value"] in re.sub(r"\D", "", text.text)
    if "purchase_date" in fields:
        year, month, day = fields["purchase_date"]["value"].split("-")
        assert re.search(
            rf"{day}\s*[.\-/]\s*{month}\s*[.\-/]\s*{year}|{year}-{month}-{day}", text.text
        )
    if "product" in fields:
        assert _fold(fields["product"]["value"]) in _fold(text.text)


@pytest.mark.parametrize("doc", CASES, ids=lambda p: p.name)
def test_extract_file_matches_golden(doc: Path) -> None:
    receipt = pytest.importorskip("parsers.receipt.fields")
    ruleset = pytest.importorskip("mailbot.ruleset.receipts")
    from mailbot.ruleset.campaigns import load_campaigns
    from parsers.document.extraction import extract_file

    assert receipt.extract_fields
    expected = _expected(doc)
    models = tuple({m.name: None for c in load_campaigns().values() for m in c.models})
    got = extract_file(
        doc,
        rules=ruleset.load_receipt_rules(),
        campaign_models=models,
        languages=expected["languages"],
        name=doc.name,
    )
    assert got["file"] == doc.name
    assert got["document_kind"] == expected["document_kind"]
    assert got["source"] == expected["source"]
    assert set(got["fields"]) == {"retailer", "purchase_date", "product", "vat_number"}
    assert isinstance(got["seconds"], float)
    for name, want in expected.get("fields", {}).items():
        field = got["fields"][name]
        assert field is not None, f"{name} missing"
        assert set(field) >= {"value", "confidence", "evidence"}
        if name == "retailer":  # canonical spelling is the rules' choice; OCR may drop Æ
            assert fuzz.ratio(_fold(field["value"]), _fold(want["value"])) >= 85, field
        else:
            assert field["value"] == want["value"]
        if "country" in want:
            assert field["country"] == want["country"]


def test_json_shape_and_rules_test_view() -> None:
    """The exact key layout scripts depend on, and the person's view of the same run."""
    ruleset = pytest.importorskip("mailbot.ruleset.receipts")
    pytest.importorskip("parsers.receipt.fields")
    from parsers.document.extraction import extract_file, format_rules_test

    doc = DOCS / "invoice-se.pdf"
    rules = ruleset.load_receipt_rules()
    got = extract_file(doc.read_bytes(), rules=rules, campaign_models=("Play:1",), name="x.pdf")
    assert list(got) == ["file", "document_kind", "fields", "source", "seconds", "rules_version"]
    assert got["file"] == "x.pdf" and got["rules_version"] == rules.version
    assert list(got["fields"]["vat_number"]) == ["value", "country", "confidence", "evidence"]
    assert list(got["fields"]["purchase_date"]) == ["value", "confidence", "evidence"]
    assert got["fields"]["vat_number"]["evidence"] == "Momsreg.nr SE559123456101"
    shown = format_rules_test(doc, rules=rules, campaign_models=("Play:1",))
    assert "Momsreg.nr SE559123456101" in shown  # the text read
    assert "rule:" in shown and "vat_number" in shown and "missing: none" in shown
