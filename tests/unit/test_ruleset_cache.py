"""The daemon's rules: reloaded after an edit, looked at no more than once a second."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from mailbot.core.errors import RulesError
from mailbot.resources import rules_dir
from mailbot.ruleset.loader import RuleSetCache


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _edit(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text().replace(old, new, 1))
    st = path.stat()  # a new mtime even on a coarse clock
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_edits_apply_after_the_check_interval_and_bad_edits_keep_the_last_good(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "rules"
    shutil.copytree(rules_dir(), root)
    clock = Clock()
    cache = RuleSetCache(root, check_seconds=1.0, clock=clock)
    first = cache.get()
    walks: list[int] = []
    real = cache._mtimes
    monkeypatch.setattr(cache, "_mtimes", lambda: walks.append(1) or real())
    for _ in range(100):
        assert cache.get() is first
    assert walks == []  # within the second: no directory walk per call
    classify = root / "classify.yaml"
    _edit(classify, "\n", "\n# an admin's comment\n")
    assert cache.get() is first  # not looked at yet
    clock.t += 1.5
    second = cache.get()
    assert second is not first and second.version != first.version
    assert len(walks) == 1
    # a broken edit: the daemon goes on with the last good rules and says why
    _edit(classify, "\n", "\n: [unclosed\n")
    clock.t += 1.5
    assert cache.get() is second
    assert isinstance(cache.last_error, RulesError)
