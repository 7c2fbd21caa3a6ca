"""`mailbot web`: serve the operators' desk with uvicorn on `web.listen`; `DeskThread`
serves it from `mailbot run` instead (`web.in_daemon`).

Both bind the listening socket themselves before uvicorn starts, so a taken port or
an unknown address is a clear `ConfigError` (as for `health.listen`) instead of a
uvicorn error line and, in the daemon, an intake running on without its desk.
"""

from __future__ import annotations

import argparse
import logging
import socket
import threading
import time
from typing import Any

from mailbot.cli.app import App
from mailbot.core.errors import ConfigError

log = logging.getLogger(__name__)

STOP_S = 5.0
"""On stop, requests still running get this long, then they are cancelled."""
START_S = 10.0


def split_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"web.listen: expected host:port, got {listen!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def listen_socket(host: str, port: int) -> socket.socket:
    """A bound TCP socket for `host:port` (uvicorn listens on it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # a restarted daemon may bind again while the old connections linger in TIME_WAIT
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        raise ConfigError(f"web.listen: cannot listen on {host}:{port}: {reason}") from exc
    return sock


def _server(app: App, **options: Any) -> Any:
    import uvicorn

    from mailbot.web.app import create_app

    # proxy_headers: behind a TLS proxy the client address (rate limit) and scheme
    # come from X-Forwarded-*; only trusted from loopback (uvicorn's default).
    config = uvicorn.Config(create_app(app), log_config=None, proxy_headers=True, **options)
    return uvicorn.Server(config)


def cmd_web(args: argparse.Namespace, app: App) -> int:
    app.ensure_schema()
    host, port = split_listen(args.listen or app.settings.web.listen)
    sock = listen_socket(host, port)
    log.info("web desk listening", extra={"event": "web.listen", "host": host, "port": port})
    try:
        _server(app).run(sockets=[sock])
    finally:
        sock.close()
    return 0


class DeskThread:
    """The desk served from `mailbot run` (`web.in_daemon`), in a thread of its own.

    `start` returns once the desk accepts connections (or raises ConfigError); `stop`
    ends it within STOP_S and a little, closing the port."""

    def __init__(self, app: App) -> None:
        self.host, self.port = split_listen(app.settings.web.listen)
        self.sock = listen_socket(self.host, self.port)
        try:
            # uvicorn installs no signal handlers outside the main thread: the daemon's
            # loop owns SIGTERM and stops the desk through `stop`
            self.server = _server(app, timeout_graceful_shutdown=STOP_S)
        except BaseException:
            self.sock.close()
            raise
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, name="web-desk", daemon=True
        )

    def start(self) -> DeskThread:
        self.thread.start()
        deadline = time.monotonic() + START_S
        while not self.server.started and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not self.server.started:
            self.stop()
            where = f"{self.host}:{self.port}"
            raise ConfigError(f"web.listen: the desk did not start on {where} (see the log)")
        log.info(
            "web desk listening",
            extra={"event": "web.listen", "host": self.host, "port": self.port},
        )
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=STOP_S + 5)
        self.sock.close()
