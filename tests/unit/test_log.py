"""Logs carry no personal data: addresses masked, account/card numbers cut."""

from __future__ import annotations

import json
import logging

from mailbot.log import JsonFormatter, mask_email, scrub


def test_mask_email() -> None:
    assert mask_email("kari.nordmann@example.no") == "k***@example.no"
    assert mask_email("Kari <kari@example.no>") == "Kari <k***@example.no>"


def test_scrub_removes_account_numbers() -> None:
    assert "1234" not in scrub("konto 1234 56 78903 tilhører ola@x.no")
    assert "o***@x.no" in scrub("konto 1234 56 78903 tilhører ola@x.no")


def _formatted(msg: str, *args: object, **extra: object) -> tuple[str, dict[str, object]]:
    """A record of logger `t` at INFO, as the JSON formatter writes it: line and object."""
    record = logging.makeLogRecord(
        {"msg": msg, "args": args, "levelname": "INFO", "name": "t", **extra}
    )
    line = JsonFormatter().format(record)
    return line, json.loads(line)


def test_json_formatter_masks_message_and_extra_fields() -> None:
    line, data = _formatted("reply to %s", "per@example.se", sender="anna@example.fi", uid=7)
    assert data["event"] == "reply to p***@example.se"
    assert data["sender"] == "a***@example.fi"
    assert data["uid"] == 7
    assert "per@" not in line and "anna@" not in line


def test_json_formatter_drops_uvicorns_coloured_copy_of_the_message() -> None:
    _, data = _formatted(
        "Uvicorn running on %s",
        "http://127.0.0.1:8080",
        color_message="Uvicorn running on \x1b[1m%s\x1b[0m",
    )
    assert data["event"] == "Uvicorn running on http://127.0.0.1:8080"
    assert "color_message" not in data
