"""Where the built-in rules, templates and example config live.

In a source checkout they sit at the top of the repository (`rules/`,
`templates/`, `config/`); in an installed wheel they are shipped inside the
package as `mailbot/_data/...`. Either way callers get a real directory path.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _find(name: str) -> Path:
    shipped = _PACKAGE / "_data" / name
    if shipped.exists():
        return shipped
    checkout = _PACKAGE.parent / name
    if checkout.exists():
        return checkout
    raise FileNotFoundError(f"built-in {name!r} not found in {shipped} or {checkout}")


def rules_dir() -> Path:
    return _find("rules")


def templates_dir() -> Path:
    return _find("templates")


def example_config() -> Path:
    return _find("config") / "mailbot.example.toml"
