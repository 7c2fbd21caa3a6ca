"""Claim and RMA snapshots to plain JSON-safe dicts and back, for the store.

The database keeps a few fields as columns (state, deadline_at, ...) for queries and
the whole snapshot in the JSON `facts` column; `to_plain` gives that JSON (dates
and datetimes ISO 8601, Decimals as strings so no cent is lost, enums by value,
tuples as lists) and `claim_from_plain` / `rma_from_plain` rebuild the frozen
snapshot exactly (`from_plain(to_plain(x)) == x`). Decoding is driven by the
dataclasses' own type hints, so a new field needs no change here.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any, TypeVar, cast

from mailbot.core.claim_state import Claim
from mailbot.core.rma_machine import Rma

T = TypeVar("T")


def to_plain(value: Any) -> Any:
    """JSON-safe form of a snapshot (or any value inside one)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime in a snapshot")
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, tuple | list):
        return [to_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    return value


def _decode(tp: Any, raw: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if raw is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _decode(inner[0], raw)
    if origin is typing.Literal:
        return raw
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], v) for v in raw)
        return tuple(_decode(a, v) for a, v in zip(args, raw, strict=True))
    if isinstance(tp, type):
        if dataclasses.is_dataclass(tp):
            return _from_plain(tp, raw)
        if issubclass(tp, Enum):
            return tp(raw)
        if tp is datetime:
            return datetime.fromisoformat(raw)
        if tp is date:
            return date.fromisoformat(raw)
        if tp is Decimal:
            return Decimal(raw)
    return raw


@functools.cache
def _field_types(cls: type) -> tuple[tuple[str, Any], ...]:
    """(name, resolved type) per field. Cached: resolving string annotations
    (`from __future__ import annotations`) costs more than decoding a snapshot, and
    every mail loads one."""
    hints = typing.get_type_hints(cls)
    return tuple((f.name, hints[f.name]) for f in dataclasses.fields(cls))


def _from_plain(cls: type[T], data: dict[str, Any]) -> T:
    kwargs = {
        name: _decode(tp, data[name]) for name, tp in _field_types(cast(type, cls)) if name in data
    }
    return cls(**kwargs)


def claim_from_plain(data: dict[str, Any]) -> Claim:
    return _from_plain(Claim, data)


def rma_from_plain(data: dict[str, Any]) -> Rma:
    return _from_plain(Rma, data)
