"""Structured logging without personal data.

One JSON object per line (or key=value text), with the event's fields passed via
`extra=`. Email addresses are masked everywhere (`k***@example.no`), and long digit
runs that look like bank accounts or card numbers are cut, so logs can be shipped
to a log system without leaking customers' data.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")
# 11+ digits (optionally grouped) look like bank accounts (NO: 11) or card numbers.
_LONG_DIGITS = re.compile(r"\b\d(?:[ .-]?\d){10,}\b")

# uvicorn adds `color_message`, the message again with ANSI colour codes: noise in a log system.
_STANDARD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime", "color_message"}


def mask_email(address: str | None) -> str:
    """`kari.nordmann@example.no` -> `k***@example.no`; anything else unchanged."""
    if not address:
        return ""
    return _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", address)


def scrub(text: str) -> str:
    """Mask addresses and long digit runs in free text (exception messages, reasons)."""
    return _LONG_DIGITS.sub("[number]", mask_email(text))


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in vars(record).items():
        if key in _STANDARD or key.startswith("_"):
            continue
        out[key] = scrub(value) if isinstance(value, str) else value
    return out


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": scrub(record.getMessage()),
        }
        payload.update(_fields(record))
        if record.exc_info:
            payload["exc"] = scrub(self.formatException(record.exc_info))
        return json.dumps(payload, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extra = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        line = f"{record.levelname.lower():7} {record.name}: {scrub(record.getMessage())}"
        if extra:
            line += " " + extra
        if record.exc_info:
            line += "\n" + scrub(self.formatException(record.exc_info))
        return line


def setup_logging(level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Library chatter at INFO would log mail headers (imapclient logs commands).
    for noisy in ("imapclient", "imaplib", "mail-parser", "mailparser", "apscheduler", "alembic"):
        lib = logging.getLogger(noisy)
        # only ever quieter: the parsers set some of these to ERROR on purpose
        lib.setLevel(max(lib.getEffectiveLevel(), logging.WARNING))


def set_level(level: str) -> bool:
    """Change the root level at run time (the daemon's SIGHUP); True if it changed.

    The libraries quietened by setup_logging stay at WARNING or above."""
    root = logging.getLogger()
    new = logging.getLevelName(level.upper())
    if not isinstance(new, int):
        raise ValueError(f"not a log level: {level!r}")
    if root.level == new:
        return False
    root.setLevel(new)
    return True
