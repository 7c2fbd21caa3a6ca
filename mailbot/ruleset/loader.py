"""All admin rules as one validated, versioned `RuleSet`, reloaded when files change.

The rules directory holds campaigns (and the returns policy), receipt extraction
rules, matching rules and classification rules. The rules version is a short hash
of every file's name and bytes: it is stored with each extraction and event so a
decision can always be explained against the rules that were in force.

`RuleSetCache` keeps the daemon's rules current and says so: every reload is logged
(`rules reloaded` with the old and new version, or `rules reload failed` with
file:line while the old rules stay in force), and `status` holds the outcome of the
last one for `check`-style reports and a health endpoint.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mailbot.core.campaign import Campaign, ReturnsPolicy
from mailbot.core.errors import RulesError
from mailbot.ruleset.campaigns import load_campaigns, load_returns_policy
from mailbot.ruleset.classify_rules import ClassifyRules, load_classify_rules
from mailbot.ruleset.matching_rules import MatchingRules, load_matching_rules
from mailbot.ruleset.receipts import ReceiptRules, load_receipt_rules

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RuleSet:
    directory: Path
    version: str
    campaigns: dict[str, Campaign]
    returns: ReturnsPolicy
    receipts: ReceiptRules
    matching: MatchingRules
    classify: ClassifyRules

    def campaign(self, campaign_id: str) -> Campaign:
        try:
            return self.campaigns[campaign_id]
        except KeyError:
            known = ", ".join(sorted(self.campaigns)) or "none"
            raise RulesError(f"no campaign {campaign_id!r} (known: {known})") from None


def _files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*.yaml") if p.is_file())


def _read(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in _files(directory)}


def _version_of(files: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name, content in files.items():
        digest.update(name.encode())
        digest.update(b"\0")
        digest.update(content)
    return digest.hexdigest()[:12]


def rules_version(directory: Path) -> str:
    return _version_of(_read(directory))


_CONTENT: dict[str, dict[str, str]] = {}
"""The files behind each version loaded in this process, read with the same bytes the
version hashes, so what is stored for a version is exactly what it names."""


def rules_content(version: str) -> dict[str, str] | None:
    """Every rules file (path relative to the rules directory -> text) of a version
    loaded in this process; None for one this process has not loaded."""
    return _CONTENT.get(version)


def load_ruleset(directory: Path) -> RuleSet:
    """Load and validate every rules file; the first problem raises RulesError (file:line)."""
    if not directory.is_dir():
        raise RulesError("rules directory not found", path=str(directory))
    files = _read(directory)
    version = _version_of(files)
    _CONTENT[version] = {k: v.decode("utf-8", "replace") for k, v in files.items()}
    while len(_CONTENT) > 32:  # a long-running daemon reloads; keep the recent ones
        del _CONTENT[next(iter(_CONTENT))]
    return RuleSet(
        directory=directory,
        version=version,
        campaigns=load_campaigns(directory / "campaigns"),
        returns=load_returns_policy(directory / "campaigns" / "returns.yaml"),
        receipts=load_receipt_rules(directory / "receipts"),
        matching=load_matching_rules(directory / "matching.yaml"),
        classify=load_classify_rules(directory / "classify.yaml"),
    )


@dataclass(frozen=True)
class ReloadStatus:
    """The rules in force and how the last reload went; replaced whole on each
    reload, so another thread reading it never sees half an update."""

    version: str | None = None  # the version in force; None until the first load
    loaded_at: datetime | None = None  # when that version was loaded
    error: str | None = None  # the last reload's problem (file:line: ...); None if it worked
    path: str | None = None
    line: int | None = None
    failed_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "loaded_at": self.loaded_at.isoformat() if self.loaded_at else None,
            "error": self.error,
            "path": self.path,
            "line": self.line,
            "failed_at": self.failed_at.isoformat() if self.failed_at else None,
        }


def _utcnow() -> datetime:
    return datetime.now(UTC)


class RuleSetCache:
    """The current rules; reloaded when a file changes. A reload that fails keeps the
    last good rules (the daemon goes on) and remembers the error for `check`.

    The files are looked at (a directory walk and a stat per file) at most once per
    `check_seconds`: the pipeline asks for the rules for every mail, and at 100
    mails/s the walk cost more than deciding a text mail. An edit still applies
    within that second. `reload()` (SIGHUP) loads at once, changed or not."""

    def __init__(
        self,
        directory: Path,
        *,
        check_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.directory = directory
        self.check_seconds = check_seconds
        self.clock = clock
        self.wall_clock = wall_clock
        self._checked_at: float | None = None
        self._stamp: tuple[tuple[str, int, int], ...] | None = None
        self._rules: RuleSet | None = None
        self.last_error: RulesError | None = None
        self.status = ReloadStatus()

    def _mtimes(self) -> tuple[tuple[str, int, int], ...]:
        out = []
        for p in _files(self.directory):
            st = p.stat()
            out.append((str(p), st.st_mtime_ns, st.st_size))
        return tuple(out)

    def get(self) -> RuleSet:
        now = self.clock()
        fresh = self._checked_at is not None and now - self._checked_at < self.check_seconds
        if fresh and self._rules is not None:
            return self._rules
        self._checked_at = now
        stamp = self._mtimes()
        if self._rules is None or stamp != self._stamp:
            self._load(stamp)
        assert self._rules is not None
        return self._rules

    def reload(self) -> ReloadStatus:
        """Load the files now, changed or not; never raises (a failure is logged and
        kept in `status`; rules already in force stay, else `get()` raises it)."""
        self._checked_at = self.clock()
        self._load(self._mtimes(), forced=True)
        return self.status

    def _load(self, stamp: tuple[tuple[str, int, int], ...], *, forced: bool = False) -> None:
        old = self._rules
        try:
            rules = load_ruleset(self.directory)
        except RulesError as exc:
            self.last_error = exc
            self._stamp = stamp  # the same broken files are not parsed again every second
            self.status = replace(
                self.status,
                error=str(exc),
                path=exc.path,
                line=exc.line,
                failed_at=self.wall_clock(),
            )
            if old is None and not forced:
                raise  # nothing to fall back on: the caller must hear it
            log.warning(
                "rules reload failed",
                extra={
                    "error": str(exc),
                    "path": exc.path,
                    "line": exc.line,
                    "version_in_force": old.version if old else None,
                },
            )
            return
        self._rules, self._stamp, self.last_error = rules, stamp, None
        self.status = ReloadStatus(version=rules.version, loaded_at=self.wall_clock())
        if old is not None or forced:
            log.info(
                "rules reloaded",
                extra={
                    "version": rules.version,
                    "previous_version": old.version if old else None,
                    "changed": old is None or rules.version != old.version,
                    "forced": forced,
                },
            )
