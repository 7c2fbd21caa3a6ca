"""`mailbot web`: serve the operators' desk with uvicorn on `web.listen`."""

from __future__ import annotations

import argparse
import logging

from mailbot.cli.app import App
from mailbot.core.errors import ConfigError

log = logging.getLogger(__name__)


def split_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"web.listen: expected host:port, got {listen!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def cmd_web(args: argparse.Namespace, app: App) -> int:
    import uvicorn

    from mailbot.web.app import create_app

    app.ensure_schema()
    host, port = split_listen(args.listen or app.settings.web.listen)
    log.info("web desk listening", extra={"event": "web.listen", "host": host, "port": port})
    # proxy_headers: behind a TLS proxy the client address (rate limit) and scheme
    # come from X-Forwarded-*; only trusted from loopback (uvicorn's default).
    uvicorn.run(create_app(app), host=host, port=port, log_config=None, proxy_headers=True)
    return 0


class DeskThread:
    """The desk served from `mailbot run` (`web.in_daemon`), in a thread of its own."""

    def __init__(self, app: App) -> None:
        import threading

        import uvicorn

        from mailbot.web.app import create_app

        host, port = split_listen(app.settings.web.listen)
        config = uvicorn.Config(
            create_app(app), host=host, port=port, log_config=None, proxy_headers=True
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="web-desk", daemon=True)

    def start(self) -> DeskThread:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
