"""`/healthz` and `/metrics` of `mailbot run`: a small HTTP server in a daemon thread.

`assess` is the health verdict, a function of the liveness facts (`mailbot.metrics`),
the database check and `now`: healthy when the last successful poll (or a mail
finished, during a long pass) and the last successful outbox delivery run are recent
and the database answers; otherwise 503 with the reasons. A failed reload of rules,
templates or config is reported (the previous ones stay in force) but is not
unhealthy; `in_force` names the rules and templates versions the daemon works with
(what `mailbot check` prints on its `daemon` line).

/metrics is prometheus-client's own WSGI exposition (content negotiation, gzip,
OpenMetrics); only the two-route dispatch and a request handler that does not write
access lines to stderr (which would break the JSON logs) are ours. The ledger and
outbox gauges are read from the database on scrape, at most once per CACHE_SECONDS
whatever the scrape rate, and a slow database never holds up a scrape that can be
answered from the previous reading.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from mailbot import metrics
from mailbot.config import Settings
from mailbot.core.errors import ConfigError
from mailbot.store.db import transaction
from mailbot.store.models import Message, Outbox
from mailbot.templating.render import templates_version

log = logging.getLogger(__name__)

CACHE_SECONDS = 10.0
LEDGER_STATUSES = ("pending", "processed", "ignored", "quarantined", "failed", "duplicate")
OUTBOX_PENDING = ("queued", "held", "claimed", "sending")
OUTBOX_FLAGGED = ("failed", "unconfirmed")
"""Outbox rows an admin has to look at (mailbot.outbound.delivery)."""


@dataclass(frozen=True)
class Limits:
    """How old the last successful poll and delivery may be, in seconds."""

    poll: float
    delivery: float


def limits_for(settings: Settings) -> Limits:
    # The loop passes at least every poll_seconds (IDLE waits are capped by it too):
    # three missed passes are a problem, not a slow server. Delivery runs every
    # deliver_seconds; a run that defers (relay down) does not count.
    return Limits(
        poll=max(3.0 * settings.imap.poll_seconds, 10.0) + settings.imap.timeout_seconds,
        delivery=max(10.0 * settings.schedule.deliver_seconds, 60.0),
    )


@dataclass(frozen=True)
class StoreReading:
    """One look at the database: reachable, and its rows by status."""

    ok: bool
    at: float
    error: str | None = None
    ledger: dict[str, int] = field(default_factory=dict)
    outbox: dict[str, int] = field(default_factory=dict)


def read_store(factory: sessionmaker[Session], now: float) -> StoreReading:
    try:
        with transaction(factory) as s:
            by_status = select(Message.status, func.count()).group_by(Message.status)
            ledger = {str(k): int(v) for k, v in s.execute(by_status)}
            # `sent` is most of the table and never an alert: not counted on every scrape
            unsent = Outbox.status.in_(OUTBOX_PENDING + OUTBOX_FLAGGED)
            outbox_q = select(Outbox.status, func.count()).where(unsent).group_by(Outbox.status)
            outbox = {str(k): int(v) for k, v in s.execute(outbox_q)}
    except Exception as exc:  # any failure means: the database does not answer
        return StoreReading(False, now, f"{exc.__class__.__name__}: {str(exc)[:200]}")
    return StoreReading(True, now, None, ledger, outbox)


@dataclass(frozen=True)
class Health:
    ok: bool
    body: dict[str, Any]


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds") if ts else None


def _age(now: float, ts: float | None) -> float | None:
    return round(now - ts, 1) if ts is not None else None


def in_force(reload: dict[str, Any] | None, templates: str | None) -> dict[str, str | None]:
    """The rules and templates versions in force, from the reload state: a failed rules
    reload keeps the version in force in its status; a templates status names the
    files it checked, which are in force only when they all rendered, else `templates`
    (the last version known good) stays."""
    state = reload or {}
    rules = state.get("rules") or {}
    checked = state.get("templates") or {}
    if state.get("templates_in_force"):  # the reloader keeps the last good version
        templates = state["templates_in_force"]
    elif checked.get("version") and not checked.get("error"):
        templates = checked["version"]
    return {"rules": rules.get("version"), "templates": templates}


def assess(
    now: float,
    live: metrics.Liveness,
    limits: Limits,
    store: StoreReading,
    reload: dict[str, Any] | None = None,
    versions: dict[str, str | None] | None = None,
) -> Health:
    """The verdict and the JSON body of /healthz (pure: `now` is given); `versions`
    are the ones in force (`in_force`)."""
    reasons: list[str] = []
    active = max((t for t in (live.last_poll, live.last_progress) if t is not None), default=None)
    if active is None:
        reasons.append("no successful poll yet")
    elif now - active > limits.poll:
        reasons.append(f"last successful poll {now - active:.0f} s ago (limit {limits.poll:.0f} s)")
    if live.last_delivery is None:
        reasons.append("no successful outbox delivery yet")
    elif now - live.last_delivery > limits.delivery:
        age = now - live.last_delivery
        reasons.append(
            f"last successful outbox delivery {age:.0f} s ago (limit {limits.delivery:.0f} s)"
        )
    if not store.ok:
        reasons.append(f"database unreachable: {store.error}")
    warnings: list[str] = []
    if reload:
        for part in ("rules", "templates"):
            error = (reload.get(part) or {}).get("error")
            if error:
                warnings.append(f"{part} reload failed, previous {part} in force: {error}")
        if reload.get("config_error"):
            warnings.append(f"config reload failed: {reload['config_error']}")
        if reload.get("restart_needed"):
            warnings.append("restart needed for: " + ", ".join(reload["restart_needed"]))
    body: dict[str, Any] = {
        "status": "ok" if not reasons else "unhealthy",
        "reasons": reasons,
        "warnings": warnings,
        "now": _iso(now),
        "started_at": _iso(live.started),
        "last_poll": {
            "at": _iso(live.last_poll),
            "age_seconds": _age(now, live.last_poll),
            "limit_seconds": limits.poll,
        },
        "last_progress": {
            "at": _iso(live.last_progress),
            "age_seconds": _age(now, live.last_progress),
        },
        "last_delivery": {
            "at": _iso(live.last_delivery),
            "age_seconds": _age(now, live.last_delivery),
            "limit_seconds": limits.delivery,
        },
        "database": {"ok": store.ok, "error": store.error, "checked_at": _iso(store.at)},
        "queues": {
            "ledger_pending": store.ledger.get("pending", 0),
            "outbox_pending": sum(store.outbox.get(s, 0) for s in OUTBOX_PENDING),
            "outbox_flagged": sum(store.outbox.get(s, 0) for s in OUTBOX_FLAGGED),
        }
        if store.ok
        else None,
        "reload": reload,
        "in_force": versions if versions is not None else in_force(reload, None),
    }
    return Health(not reasons, body)


class StoreCache:
    """The latest StoreReading, refreshed at most every `seconds`; while one thread
    refreshes, the others answer from the previous reading (if there is one)."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        seconds: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.factory = factory
        self.seconds = seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._reading: StoreReading | None = None

    def get(self) -> StoreReading:
        current = self._reading
        if current is not None and self.clock() - current.at < self.seconds:
            return current
        if not self._lock.acquire(blocking=current is None):
            assert current is not None
            return current
        try:
            current = self._reading
            if current is None or self.clock() - current.at >= self.seconds:
                current = self._reading = read_store(self.factory, self.clock())
            return current
        finally:
            self._lock.release()


class StoreCollector(Collector):
    """Gauges read from the database on scrape (through the cache)."""

    def __init__(
        self, cache: StoreCache, reload: Callable[[], dict[str, Any] | None] | None = None
    ) -> None:
        self.cache = cache
        self.reload = reload

    def describe(self) -> Iterable[Metric]:
        return []  # registering must not query the database

    def collect(self) -> Iterable[Metric]:
        reading = self.cache.get()
        yield GaugeMetricFamily(
            "mailbot_database_up", "1 when the database answered the last check", int(reading.ok)
        )
        if reading.ok:
            ledger = GaugeMetricFamily(
                "mailbot_ledger_messages", "Ledger rows by status", labels=["status"]
            )
            for status in LEDGER_STATUSES:
                ledger.add_metric([status], reading.ledger.get(status, 0))
            yield ledger
            outbox = GaugeMetricFamily(
                "mailbot_outbox_messages", "Unsent outbox rows by status", labels=["status"]
            )
            for status in OUTBOX_PENDING + OUTBOX_FLAGGED:
                outbox.add_metric([status], reading.outbox.get(status, 0))
            yield outbox
            pending = sum(reading.outbox.get(s, 0) for s in OUTBOX_PENDING)
            flagged = sum(reading.outbox.get(s, 0) for s in OUTBOX_FLAGGED)
            yield GaugeMetricFamily(
                "mailbot_outbox_pending", "Replies waiting to be sent (queued, held, in flight)",
                pending,
            )  # fmt: skip
            yield GaugeMetricFamily(
                "mailbot_outbox_flagged", "Replies flagged for an admin (failed, unconfirmed)",
                flagged,
            )  # fmt: skip
        reload = self.reload() if self.reload is not None else None
        if reload:
            ok = GaugeMetricFamily(
                "mailbot_reload_ok",
                "0 when the last reload of that part failed (the previous one stays in force)",
                labels=["part"],
            )
            ok.add_metric(["rules"], int(not (reload.get("rules") or {}).get("error")))
            ok.add_metric(["templates"], int(not (reload.get("templates") or {}).get("error")))
            ok.add_metric(["config"], int(not reload.get("config_error")))
            yield ok


def parse_listen(value: str) -> tuple[str, int]:
    """ "host:port" or "[v6]:port" -> (host, port); ConfigError naming the key otherwise."""
    host, sep, port = value.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"health.listen: expected host:port, e.g. 127.0.0.1:9187, got {value!r}")
    return host, int(port)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # wsgiref writes access lines to stderr, in the middle of the JSON logs


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class HealthServer:
    def __init__(
        self,
        listen: str,
        factory: sessionmaker[Session],
        settings: Settings,
        *,
        reload: Callable[[], dict[str, Any] | None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.host, self.port = parse_listen(listen)
        self.limits = limits_for(settings)
        self.clock = clock
        self.reload = reload
        self.cache = StoreCache(factory, clock=clock)
        # the templates the daemon starts with; a reload that renders them all replaces it
        self.templates: str | None = templates_version(settings.paths.templates_dir or None)
        self.collector = StoreCollector(self.cache, reload)
        self._metrics_app = make_wsgi_app(metrics.REGISTRY)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def health(self) -> Health:
        reload = None
        if self.reload is not None:
            try:
                reload = self.reload()
            except Exception:  # the health answer must not depend on it
                log.exception("reload status failed")
        versions = in_force(reload, self.templates)
        self.templates = versions["templates"]
        return assess(
            self.clock(), metrics.LIVENESS, self.limits, self.cache.get(), reload, versions
        )

    def app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            start_response("405 Method Not Allowed", [("Allow", "GET, HEAD")])
            return iter([b""])
        if path == "/metrics":
            return iter(self._metrics_app(environ, start_response))
        if path == "/healthz":
            verdict = self.health()
            data = json.dumps(verdict.body, indent=1).encode() + b"\n"
            status = "200 OK" if verdict.ok else "503 Service Unavailable"
            headers = [("Content-Type", "application/json"), ("Cache-Control", "no-store")]
            start_response(status, [*headers, ("Content-Length", str(len(data)))])
            return iter([data])
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return iter([b"not found: try /healthz or /metrics\n"])

    def start(self) -> HealthServer:
        cls = _Server6 if ":" in self.host else _Server
        try:
            self._server = make_server(
                self.host, self.port, self.app, server_class=cls, handler_class=_QuietHandler
            )
        except OSError as exc:  # taken port, unknown address: a clear error, not a traceback
            where = f"{self.host}:{self.port}"
            raise ConfigError(f"health.listen: cannot listen on {where}: {exc.strerror}") from exc
        self.port = self._server.server_address[1]
        metrics.REGISTRY.register(self.collector)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="health-http", daemon=True
        )
        self._thread.start()
        log.info("health endpoint listening", extra={"host": self.host, "port": self.port})
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        metrics.REGISTRY.unregister(self.collector)
        self._server = None
