"""Receipt rules: the shipped files load; mistakes name file and line; version; reload."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from mailbot.core.errors import RulesError
from mailbot.resources import rules_dir
from mailbot.ruleset.receipts import RulesCache, load_receipt_rules


@pytest.fixture
def rules_copy(tmp_path: Path) -> Path:
    target = tmp_path / "receipts"
    shutil.copytree(rules_dir() / "receipts", target)
    return target


def test_shipped_rules_load() -> None:
    rules = load_receipt_rules()
    assert len(rules.version) == 12
    assert {c.country for c in rules.vat} >= {"NO", "SE", "DK", "FI", "EU"}
    assert any(r.name == "Elkjøp" for r in rules.retailers)
    assert rules.threshold("vat_number") > 0


def _append(path: Path, text: str) -> int:
    """Append `text`; return the 1-based line number its first line lands on."""
    before = path.read_text(encoding="utf-8")
    if not before.endswith("\n"):
        before += "\n"
    path.write_text(before + text, encoding="utf-8")
    return before.count("\n") + 1


@pytest.mark.parametrize(
    ("name", "appended"),
    [
        # a bad regex, under a key that is now duplicated: the loader says where
        ("document.yaml", "receipt_number_labels:\n  - 'kvittering(nr'\n"),
        ("thresholds.yaml", "colour: blue\n"),  # an unknown key
    ],
    ids=["bad_regex", "unknown_key"],
)
def test_mistake_names_file_and_line(rules_copy: Path, name: str, appended: str) -> None:
    line = _append(rules_copy / name, appended)
    with pytest.raises(RulesError) as err:
        load_receipt_rules(rules_copy)
    assert f"{name}:{line}" in str(err.value)


def test_bad_regex_in_list(rules_copy: Path) -> None:
    path = rules_copy / "dates.yaml"
    text = path.read_text(encoding="utf-8").replace("  - 'dato'\n", "  - 'dato('\n")
    path.write_text(text, encoding="utf-8")
    line = text.splitlines().index("  - 'dato('") + 1
    with pytest.raises(RulesError) as err:
        load_receipt_rules(rules_copy)
    assert f"dates.yaml:{line}" in str(err.value)
    assert "regular expression" in str(err.value)


def test_unknown_validator_and_bad_threshold(rules_copy: Path) -> None:
    vat = rules_copy / "vat.yaml"
    vat.write_text(
        vat.read_text(encoding="utf-8").replace("no.orgnr", "no.nothing"), encoding="utf-8"
    )
    with pytest.raises(RulesError, match=r"vat.yaml:\d+: countries.NO.validator"):
        load_receipt_rules(rules_copy)


def test_yaml_syntax_error(rules_copy: Path) -> None:
    path = rules_copy / "products.yaml"
    line = _append(path, "products: [unclosed\n")
    with pytest.raises(RulesError) as err:
        load_receipt_rules(rules_copy)
    assert "products.yaml:" in str(err.value)
    assert err.value.line is not None and err.value.line >= line


def test_version_changes_with_content_and_cache_reloads(rules_copy: Path) -> None:
    cache = RulesCache(rules_copy)
    first = cache.get()
    assert cache.get() is first  # unchanged files: same object
    path = rules_copy / "thresholds.yaml"
    path.write_text(
        path.read_text(encoding="utf-8").replace("retailer: 0.6", "retailer: 0.7"), encoding="utf-8"
    )
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    second = cache.get()
    assert second.version != first.version
    assert second.threshold("retailer") == 0.7
