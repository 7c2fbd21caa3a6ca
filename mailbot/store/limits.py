"""How long a text may be in the column that stores it, read from the models.

The models' `String(n)` lengths are the only list of limits. PostgreSQL refuses a
longer value (`DataError`, and the whole transaction with it) and refuses NUL
characters in any text; SQLite stores anything. So both databases behave the same:

- values that come from mail (filenames, content types, refusal texts) are made to
  fit with `fit`: cut to the column's length, NULs removed; a mail is never lost
  because a header was long;
- values an operator types (CLI, CSV import) are checked with `problem`, which
  says what is wrong (the field and the limit) so the caller can refuse them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import InstrumentedAttribute


def column_length(attr: InstrumentedAttribute[Any]) -> int | None:
    """The `String(n)` length of a mapped column (`m.Document.content_type`); None
    when the column has no length (Text, JSON, numbers)."""
    length = getattr(attr.property.columns[0].type, "length", None)
    return length if isinstance(length, int) else None


def fit(attr: InstrumentedAttribute[Any], value: str | None) -> str | None:
    """`value` made storable in `attr`'s column on every engine (for text from mail)."""
    if value is None:
        return None
    # PostgreSQL text cannot hold U+0000 at all; it carries nothing a person reads
    value = value.replace("\x00", "")
    limit = column_length(attr)
    if limit is not None and len(value) > limit:
        # both engines count characters (code points), not bytes, so a cut here
        # never splits a UTF-8 sequence
        value = value[:limit]
    return value


def problem(attr: InstrumentedAttribute[Any], value: str | None, field: str) -> str | None:
    """Why an operator's `value` cannot be stored in `attr`'s column, or None."""
    if value is None:
        return None
    if "\x00" in value:
        return f"{field}: contains a NUL character"
    limit = column_length(attr)
    if limit is not None and len(value) > limit:
        return f"{field}: at most {limit} characters, got {len(value)}"
    return None
