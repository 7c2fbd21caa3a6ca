"""The outbox's sender pointed at the SMTP sink, for the tests and the benchmarks: the
settings that deliver to a sink on a loopback port, and the context of an approval
reply to queue."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

from mailbot.config import Settings, SmtpSettings

BOT = "claims@brand.example"
"""The address the replies are sent from."""

APPROVED: dict[str, Any] = {
    "name": "Kari Nordmann",
    "code": "12345674",
    "amount": Decimal("500"),
    "currency": "NOK",
    "payment_days": 28,
}
"""Every key the `approved` template asks for."""


def sink_settings(port: int, /, **smtp: Any) -> Settings:
    """Settings whose SMTP server is the sink on 127.0.0.1:`port`: no TLS, from BOT, no
    Reply-To, a 10 s timeout; `smtp` sets any other SmtpSettings field (even `port`)."""
    base = SmtpSettings(
        host="127.0.0.1",
        port=port,
        tls="none",
        from_address=BOT,
        reply_to="",
        timeout_seconds=10,
    )
    return Settings(smtp=replace(base, **smtp))
