"""The daemon's rules: reloaded after an edit, looked at no more than once a second."""

from __future__ import annotations

import logging
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


def _cache_of_a_copy(tmp_path: Path) -> tuple[Path, Clock, RuleSetCache]:
    """A copy of the shipped rules to edit, and a cache over it on a clock the test moves."""
    root = tmp_path / "rules"
    shutil.copytree(rules_dir(), root)
    clock = Clock()
    return root, clock, RuleSetCache(root, check_seconds=1.0, clock=clock)


def test_edits_apply_after_the_check_interval_and_bad_edits_keep_the_last_good(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, clock, cache = _cache_of_a_copy(tmp_path)
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


def test_reloads_are_logged_and_their_outcome_kept_in_status(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root, clock, cache = _cache_of_a_copy(tmp_path)
    first = cache.get()
    assert cache.status.version == first.version and cache.status.error is None
    assert cache.status.loaded_at is not None
    caplog.set_level(logging.INFO, logger="mailbot.ruleset.loader")

    classify = root / "classify.yaml"
    _edit(classify, "\n", "\n# an admin's comment\n")
    clock.t += 1.5
    second = cache.get()
    [ok] = [r for r in caplog.records if r.getMessage() == "rules reloaded"]
    assert (ok.version, ok.previous_version) == (second.version, first.version)

    caplog.clear()
    _edit(classify, "\n", "\n: [unclosed\n")
    clock.t += 1.5
    assert cache.get() is second
    [bad] = [r for r in caplog.records if r.getMessage() == "rules reload failed"]
    assert bad.levelno == logging.WARNING
    assert bad.path == str(classify) and isinstance(bad.line, int) and bad.line >= 1
    assert f"{classify}:{bad.line}:" in bad.error
    assert bad.version_in_force == second.version
    status = cache.status
    assert status.version == second.version  # the old rules stay in force
    assert status.error == bad.error and status.line == bad.line and status.failed_at
    assert status.as_dict()["version"] == second.version

    caplog.clear()
    for _ in range(5):  # the same broken files: not parsed, not logged again each second
        clock.t += 1.5
        cache.get()
    assert not caplog.records


def test_forced_reload_loads_unchanged_files_and_never_raises_once_running(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root, _, cache = _cache_of_a_copy(tmp_path)
    first = cache.get()
    caplog.set_level(logging.INFO, logger="mailbot.ruleset.loader")
    status = cache.reload()  # SIGHUP with nothing changed
    assert status.version == first.version and status.error is None
    [ok] = [r for r in caplog.records if r.getMessage() == "rules reloaded"]
    assert ok.forced is True and ok.changed is False
    # every file is read again, matching.yaml too (it had a per-path cache of its own)
    _edit(root / "matching.yaml", "antw, rv,", "antw, svar, rv,")
    second = cache.reload()
    assert "svar" in cache.get().matching.subject_prefixes and second.version != first.version
    (root / "matching.yaml").write_text("rma_number: [\n")
    status = cache.reload()
    assert status.version == second.version and status.path == str(root / "matching.yaml")
    assert cache.get().version == second.version
