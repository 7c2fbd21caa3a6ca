"""Composition root shared by the subcommands: settings, database, rules, clock.

Everything is created lazily so `mailbot --help` or `mailbot extract` never opens
a database or connects anywhere it doesn't need to.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from mailbot import resources
from mailbot.config import Settings
from mailbot.ruleset.loader import RuleSet, RuleSetCache
from mailbot.store import db


def utcnow() -> datetime:
    """The clock adapter: the only place the daemon asks for the time."""
    return datetime.now(UTC)


@dataclass
class App:
    settings: Settings
    out: TextIO = field(default_factory=lambda: sys.stdout)
    clock: Callable[[], datetime] = utcnow

    @property
    def rules_dir(self) -> Path:
        return (
            Path(self.settings.paths.rules_dir)
            if self.settings.paths.rules_dir
            else (resources.rules_dir())
        )

    @property
    def override_templates_dir(self) -> Path | None:
        tdir = self.settings.paths.templates_dir
        return Path(tdir) if tdir else None

    @cached_property
    def rules_cache(self) -> RuleSetCache:
        return RuleSetCache(self.rules_dir)

    @property
    def rules(self) -> RuleSet:
        """The current rules (reloaded when a file changed; the last good ones on error)."""
        return self.rules_cache.get()

    def now(self) -> datetime:
        return self.clock()

    @cached_property
    def engine(self) -> Engine:
        return db.make_engine(self.settings.database_url)

    @cached_property
    def factory(self) -> sessionmaker[Session]:
        return db.session_factory(self.engine)

    def ensure_schema(self) -> None:
        """Create/upgrade the schema: on SQLite a fresh install just works."""
        db.upgrade(self.engine)


def print_json(obj: Any, out: TextIO) -> None:
    out.write(json.dumps(obj, ensure_ascii=False, default=str, sort_keys=False) + "\n")


def print_table(rows: Sequence[dict[str, Any]], columns: Iterable[str], out: TextIO) -> None:
    """A plain aligned table for people; `--json` is for scripts."""
    cols = list(columns)
    cells = [[("" if r.get(c) is None else str(r.get(c))) for c in cols] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(cols)]
    out.write("  ".join(c.upper().ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip())
    out.write("\n")
    for row in cells:
        out.write("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() + "\n")
    if not rows:
        out.write("(none)\n")


EVENT_COLUMNS = ("at", "kind", "from", "to", "reasons")


def print_record(
    record: dict[str, Any],
    fields: Sequence[str],
    sections: Iterable[tuple[str, Sequence[str]]],
    out: TextIO,
) -> None:
    """One record for people: a `field value` line per field (names padded past the
    longest), then a titled table per section (a list of rows in the record)."""
    width = max(len(f) for f in fields) + 1
    for key in fields:
        out.write(f"{key:{width}} {record.get(key)}\n")
    for name, columns in sections:
        out.write(f"\n{name}:\n")
        print_table(record[name], columns, out)
