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


def test_json_formatter_masks_message_and_extra_fields() -> None:
    record = logging.makeLogRecord(
        {
            "msg": "reply to %s",
            "args": ("per@example.se",),
            "levelname": "INFO",
            "name": "t",
            "sender": "anna@example.fi",
            "uid": 7,
        }
    )
    line = JsonFormatter().format(record)
    data = json.loads(line)
    assert data["event"] == "reply to p***@example.se"
    assert data["sender"] == "a***@example.fi"
    assert data["uid"] == 7
    assert "per@" not in line and "anna@" not in line


def test_json_formatter_drops_uvicorns_coloured_copy_of_the_message() -> None:
    record = logging.makeLogRecord(
        {
            "msg": "Uvicorn running on %s",
            "args": ("http://127.0.0.1:8080",),
            "levelname": "INFO",
            "name": "uvicorn.error",
            "color_message": "Uvicorn running on \x1b[1m%s\x1b[0m",
        }
    )
    data = json.loads(JsonFormatter().format(record))
    assert data["event"] == "Uvicorn running on http://127.0.0.1:8080"
    assert "color_message" not in data
