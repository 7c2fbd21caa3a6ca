"""systemd's notify protocol for `mailbot run` (Type=notify): READY, WATCHDOG, STOPPING.

Hand-written rather than the `sdnotify` package (last released in 2017, and it hides
every error): the protocol is one datagram of "KEY=value" lines to the unix socket
named in $NOTIFY_SOCKET ("@..." is the abstract namespace), which is all of this
module. Not under systemd ($NOTIFY_SOCKET unset) every call does nothing.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.address = env.get("NOTIFY_SOCKET") or None
        usec, pid = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
        # WATCHDOG_PID names the process systemd watches; a child inherits the variables
        mine = not pid or pid == str(os.getpid())
        self.watchdog_seconds = int(usec) / 1e6 if usec.isdigit() and int(usec) and mine else None
        self.ready_sent = False
        self._warned = False

    def send(self, text: str) -> bool:
        if self.address is None:
            return False
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(target)
                sock.sendall(text.encode())
        except OSError as exc:
            if not self._warned:  # once: a ping every few seconds must not flood the log
                self._warned = True
                log.warning("systemd notify failed", extra={"error": str(exc)})
            return False
        return True

    def ready(self) -> None:
        """READY=1, once: the first time the intake reached the mailbox."""
        if not self.ready_sent:
            self.ready_sent = self.send("READY=1\nSTATUS=serving")

    def stopping(self) -> None:
        self.send("STOPPING=1")


class Watchdog:
    """WATCHDOG=1 at most every third of WatchdogSec, when the intake loop beats.

    Called from the loop's own thread only (after a pass, an IDLE wake-up, each mail
    finished, each second of a deliberate wait), so a loop stuck inside a pass stops
    pinging and systemd restarts the daemon.
    """

    def __init__(self, notifier: Notifier, clock: Callable[[], float] = time.monotonic) -> None:
        self.notifier = notifier
        self.clock = clock
        seconds = notifier.watchdog_seconds
        self.every = seconds / 3 if seconds else None
        self.last: float | None = None

    def __call__(self) -> None:
        if self.every is None:
            return
        now = self.clock()
        if self.last is None or now - self.last >= self.every:
            self.last = now
            self.notifier.send("WATCHDOG=1")
