"""Frozen core snapshots (claims, RMAs) to JSON and back, driven by their type hints.

The core's snapshots carry nested dataclasses, enums, dates, Decimals and tuples.
Storing each field in its own column would couple the schema to every change in
the state machine; instead the whole snapshot is kept as JSON beside the columns
the database needs to query (code, state, email, deadlines). No library does this
for stdlib dataclasses without a schema of its own (pydantic would need one per
class), and the rules are few, so it is written here.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

T = TypeVar("T")


def to_json(value: Any) -> Any:
    """A JSON-ready structure: dataclasses as dicts, tuples as lists, dates as ISO text."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    return value


def _decode(tp: Any, data: Any) -> Any:
    if data is None:
        return None
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        return _decode(args[0], data) if len(args) == 1 else data
    if origin is typing.Literal:
        return data
    if tp is Any:
        return data
    if origin is tuple:
        items = get_args(tp)
        if len(items) == 2 and items[1] is Ellipsis:
            return tuple(_decode(items[0], v) for v in data)
        return tuple(_decode(a, v) for a, v in zip(items, data, strict=True))
    if origin is list:
        (arg,) = get_args(tp) or (Any,)
        return [_decode(arg, v) for v in data]
    if origin in (dict, typing.Mapping) or tp is dict:
        kv = get_args(tp)
        return {k: _decode(kv[1], v) for k, v in data.items()} if kv else dict(data)
    if isinstance(tp, type):
        if dataclasses.is_dataclass(tp):
            return from_json(tp, data)
        if issubclass(tp, Enum):
            return tp(data)
        if tp is datetime:
            return datetime.fromisoformat(data)
        if tp is date:
            return date.fromisoformat(data)
        if tp is Decimal:
            return Decimal(data)
        if tp is bytes:
            return bytes.fromhex(data)
        if tp in (int, float, str, bool):
            return tp(data)
    return data


def from_json(cls: type[T], data: dict[str, Any]) -> T:
    """Rebuild a dataclass from `to_json` output; unknown keys (older code) are ignored,
    missing ones take the field's default."""
    hints = get_type_hints(cls)
    kwargs = {
        f.name: _decode(hints[f.name], data[f.name])
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        if f.name in data
    }
    return cls(**kwargs)
