"""Product: the campaign's models on item lines, OCR-tolerant, without false positives."""

from __future__ import annotations

import pytest

from parsers.receipt.ocrtext import split_lines
from parsers.receipt.product import find_product
from tests.unit._receipt_helpers import rules

MODELS = ("Sonos One", "Play:1", "Play:3", "Playbar", "Sub", "Connect", "Connect:Amp", "WH-1000XM5")


def product(text: str, models: tuple[str, ...] = MODELS) -> str | None:
    found = find_product(split_lines(text), rules(), models)
    return None if found is None else found.value


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("SONOS PLAY:1 VIT 1 990,00", "Play:1"),
        ("Sonos PIay 1 svart 1 990,00", "Play:1"),  # I read for l
        ("Sony WH-1000XMS sort 3 990,00", "WH-1000XM5"),  # S read for 5
        ("Sony WH1000XM5 3 990,00", "WH-1000XM5"),
        ("Sonos One (Gen 2) svart 2 490,00", "Sonos One"),
        ("Sonos Playbar 7 490,00", "Playbar"),
        ("Sonos Connect:Amp 4 990,00", "Connect:Amp"),  # longest name wins
        ("Sonos Sub Gen 3 8 990,00", "Sub"),
    ],
)
def test_models_found(line: str, expected: str) -> None:
    assert product(f"Butikk\n{line}\nTotalt 9 999,00") == expected


@pytest.mark.parametrize(
    "line",
    [
        "SUB TOTAL 1 990,00",  # a short name without its brand
        "Sony WH-1000XM4 3 490,00",  # another digit is another model
        "Sony WF-1000XM5 2 990,00",  # another known model, exactly: not a slip of WH-
        "Sonos Play:5 5 990,00",
        "Display 1 stk 99,00",
        "One size T-skjorte 199,00",
    ],
)
def test_no_false_positives(line: str) -> None:
    assert product(f"Butikk\n{line}\nTotalt 9 999,00") is None


def test_only_campaign_models_when_given() -> None:
    assert product("Sonos Play:1 1 990,00", ("Playbar",)) is None
    assert product("Sonos Play:1 1 990,00", ()) == "Play:1"  # the whole catalogue
