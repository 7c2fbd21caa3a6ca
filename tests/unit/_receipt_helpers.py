"""Shared bits of the receipt extraction unit tests: the default rules, loaded once."""

from __future__ import annotations

from functools import cache

from mailbot.ruleset.receipts import ReceiptRules, load_receipt_rules


@cache
def rules() -> ReceiptRules:
    return load_receipt_rules()
