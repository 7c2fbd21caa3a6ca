"""An SMTP server (aiosmtpd) on a loopback port that keeps every mail it receives.

Used by the tests, the demo and the benchmarks in place of a real relay. It can
also be told to misbehave for the next N deliveries, so retries, permanent
failures and the ambiguous cases are tested against a real SMTP conversation:
answer with a given SMTP error (`fail_next`), drop the connection after the whole
message arrived but before the final reply (`drop_next`), or answer only after a
delay, longer than the client waits (`slow_next`). The last two may keep the mail
(the relay accepted it, only the answer was lost) or not.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from mailbot.devtools.dovecot import free_port


@dataclass(frozen=True)
class Captured:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    received_at: float

    @property
    def message(self) -> EmailMessage:
        msg = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        return msg


@dataclass(frozen=True)
class _Fault:
    reply: str | None = None
    """Answer this instead of 250 (the mail is not kept)."""
    drop: bool = False
    """Close the connection instead of answering."""
    delay: float = 0.0
    """Seconds to wait before answering."""
    keep: bool = False
    """For drop and delay: the mail is kept (accepted) although the answer is lost."""


@dataclass
class _Handler:
    sink: SmtpSink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.sink._lock:
            fault = self.sink._fail_queue.pop(0) if self.sink._fail_queue else _Fault()
            if fault.reply is not None:
                return fault.reply
            if fault.keep or not (fault.drop or fault.delay):
                content = envelope.original_content or envelope.content
                self.sink.messages.append(
                    Captured(
                        mail_from=envelope.mail_from,
                        rcpt_tos=tuple(envelope.rcpt_tos),
                        data=bytes(content),
                        received_at=time.time(),
                    )
                )
                self.sink._cond.notify_all()
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.drop:
            # the reply aiosmtpd then writes goes nowhere: the transport is closed
            server.transport.abort()
        return "250 OK"


@dataclass
class SmtpSink:
    port: int = 0
    messages: list[Captured] = field(default_factory=list)
    _controller: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _fail_queue: list[_Fault] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._cond = threading.Condition(self._lock)
        if not self.port:
            self.port = free_port()

    def start(self) -> SmtpSink:
        from aiosmtpd.controller import Controller

        self._controller = Controller(
            _Handler(self), hostname="127.0.0.1", port=self.port, ready_timeout=10
        )
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def fail_next(self, count: int, reply: str = "451 4.3.0 try again later") -> None:
        """Answer the next `count` DATA commands with `reply` instead of accepting."""
        with self._lock:
            self._fail_queue.extend([_Fault(reply=reply)] * count)

    def drop_next(self, count: int, *, keep: bool = True) -> None:
        """Receive the next `count` messages whole, then close the connection before the
        final reply. keep=True: the mail was accepted (only the 250 was lost)."""
        with self._lock:
            self._fail_queue.extend([_Fault(drop=True, keep=keep)] * count)

    def slow_next(self, count: int, seconds: float, *, keep: bool = True) -> None:
        """Answer the next `count` messages only after `seconds` (a slow relay)."""
        with self._lock:
            self._fail_queue.extend([_Fault(delay=seconds, keep=keep)] * count)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Captured]:
        """Block until at least `count` mails arrived (or timeout); return them all."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return list(self.messages)

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
