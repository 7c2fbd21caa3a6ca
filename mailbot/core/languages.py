"""The languages mailbot writes to customers in: the one list every other place reads."""

from __future__ import annotations

from typing import Literal, get_args

Language = Literal["nb", "sv", "da", "fi", "en"]
LANGUAGES: tuple[Language, ...] = get_args(Language)
