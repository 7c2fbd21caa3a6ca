"""Sessions, CSRF tokens, the login rate limit and the cookie-signing key."""

from __future__ import annotations

import hmac
import os
import secrets
import threading
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from pathlib import Path

from mailbot.config import Settings

KEY_FILE = "web_secret.key"
CLIENT_FACTOR = 4
"""A client address may fail this many times a user name's allowance."""


def secret_key(settings: Settings) -> str:
    """web.secret_key, else the key in data_dir/web_secret.key (created 0600 once)."""
    if settings.web.secret_key:
        return settings.web.secret_key
    path = settings.data_dir / KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use theirs
            pass
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(48))
    return Path(path).read_text().strip()


def csrf_token(session: dict[str, object]) -> str:
    token = session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def csrf_ok(session: dict[str, object], given: object) -> bool:
    token = session.get("csrf")
    return (
        isinstance(token, str)
        and isinstance(given, str)
        and hmac.compare_digest(token.encode(), given.encode())
    )


class LoginLimiter:
    """Failed logins per key (client address, user name) in a sliding window.

    In memory, per process: restarting the desk forgets the counts, and several
    desk processes each count on their own (the proxy can limit too)."""

    def __init__(self, attempts: int, window_s: float, clock: Callable[[], float]) -> None:
        self.attempts = attempts
        self.window_s = window_s
        self.clock = clock
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def _trim(self, key: str, now: float) -> deque[float]:
        q = self._failures[key]
        while q and q[0] <= now - self.window_s:
            q.popleft()
        return q

    def limit(self, key: str) -> int:
        # one office behind one address: its people share 4x a person's allowance
        return self.attempts * (CLIENT_FACTOR if key.startswith("ip:") else 1)

    def blocked(self, keys: Iterable[str]) -> bool:
        now = self.clock()
        with self._lock:
            return any(len(self._trim(k, now)) >= self.limit(k) for k in keys)

    def failed(self, keys: Iterable[str]) -> None:
        now = self.clock()
        with self._lock:
            for k in keys:
                self._trim(k, now).append(now)

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)
