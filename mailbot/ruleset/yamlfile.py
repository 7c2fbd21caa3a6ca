"""Read one YAML rules file and validate it, with errors that name file and line.

Admins edit `rules/*.yaml` by hand, so a mistake must point at the exact line.
PyYAML's composer knows the line of every node; we keep a map from the path of
each value (('campaigns', 0, 'window')) to its line, then let pydantic validate
the plain data against a schema and translate its error locations back to lines.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import TypeAdapter, ValidationError

from mailbot.core.errors import RulesError

T = TypeVar("T")

PathKey = tuple[str | int, ...]


@dataclass(frozen=True)
class YamlDoc:
    """Plain data from one file plus the line of every node in it (1-based)."""

    path: str
    data: Any
    lines: dict[PathKey, int]

    def line_of(self, loc: PathKey) -> int | None:
        """The line of the deepest node on `loc` that we know."""
        loc = tuple(loc)
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return self.lines.get((), None)

    def error(self, message: str, loc: PathKey = ()) -> RulesError:
        return RulesError(message, path=self.path, line=self.line_of(loc))


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps ISO dates as strings: the schema decides their type."""


# YAML 1.1 turns 2022-11-01 into a date and "no" into False; admins type both
# (country NO!). Strings are what we validate, so drop those implicit resolvers.
_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag not in ("tag:yaml.org,2002:timestamp",)]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _first in "yYnNoO":
    _Loader.yaml_implicit_resolvers[_first] = [
        (tag, rx)
        for tag, rx in _Loader.yaml_implicit_resolvers.get(_first, [])
        if tag != "tag:yaml.org,2002:bool"
    ]
_TRUE_FALSE = {"true": True, "false": False, "True": True, "False": False, "TRUE": True}


def _walk(node: yaml.Node, loc: PathKey, lines: dict[PathKey, int], loader: _Loader) -> Any:
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if isinstance(key, list | dict):
                raise RulesError(
                    "a key must be a plain value", path=None, line=key_node.start_mark.line + 1
                )
            if key in out:
                raise RulesError(f"duplicate key {key!r}", line=key_node.start_mark.line + 1)
            out[key] = _walk(value_node, (*loc, key), lines, loader)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(item, (*loc, i), lines, loader) for i, item in enumerate(node.value)]
    value = loader.construct_object(node, deep=True)
    plain = isinstance(node, yaml.ScalarNode) and not node.style
    if isinstance(value, str) and node.tag == "tag:yaml.org,2002:str" and plain:
        value = _TRUE_FALSE.get(value, value)
    return value


def parse_yaml(text: str, path: str) -> YamlDoc:
    """Parse YAML text; syntax errors become RulesError with the line."""
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        lines: dict[PathKey, int] = {}
        data = _walk(root, (), lines, loader) if root is not None else None
    except RulesError as exc:
        raise RulesError(str(exc).split(": ", 1)[-1], path=path, line=exc.line) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise RulesError(f"YAML syntax: {exc.problem or exc}", path=path, line=line) from None
    except yaml.YAMLError as exc:
        raise RulesError(f"YAML: {exc}", path=path) from None
    finally:
        loader.dispose()
    return YamlDoc(path=path, data=data, lines=lines)


def load_yaml(path: Path | str) -> YamlDoc:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError(f"cannot read: {exc}", path=str(p)) from None
    return parse_yaml(text, str(p))


def validate(doc: YamlDoc, schema: type[T] | Any, data: Any = None, loc: PathKey = ()) -> T:
    """Validate `data` (default: the whole file) against `schema` (a pydantic model,
    dataclass or type), raising RulesError for the first problem with its line."""
    value = doc.data if data is None else data
    try:
        result: T = TypeAdapter(schema).validate_python(value)
        return result
    except ValidationError as exc:
        first = exc.errors()[0]
        err_loc = (*loc, *first["loc"])
        field = ".".join(str(p) for p in err_loc) or "(top level)"
        raise doc.error(f"{field}: {first['msg']}", err_loc) from None


def check(doc: YamlDoc, condition: bool, message: str, loc: PathKey = ()) -> None:
    """Raise a located RulesError unless `condition` holds (for cross-field checks)."""
    if not condition:
        raise doc.error(message, loc)


Validator = Callable[[YamlDoc], Any]
