"""The daemon's Prometheus metrics and the liveness facts `/healthz` and the watchdog read.

Low in the layer order (beside config and log) so the places where things happen can
update them: the ledger (final statuses), the pipeline (processing seconds),
`parsers.document.extraction` (document reading and OCR seconds), the intake loop
(polls) and the scheduler (deliveries). The metrics live in this module's own
`REGISTRY`, not prometheus_client's global one, so nothing else registers into what
`/metrics` shows. Gauges about the database (ledger and outbox by status) are
computed on scrape by `mailbot.daemon.health`, not kept here.

`beat()` tells the listeners (the systemd watchdog of `mailbot run`) that the intake
loop made progress; only the loop's own thread calls it, never a timer, so a hung
loop stops the pings.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)  # RSS, CPU seconds, open files of the daemon
PlatformCollector(registry=REGISTRY)

MESSAGES = Counter(
    "mailbot_messages",
    "Mails that reached a final ledger status in this process, by status",
    ["status"],
    registry=REGISTRY,
)
PROCESSING_SECONDS = Histogram(
    "mailbot_message_processing_seconds",
    "Time the pipeline spent deciding one mail (parse, classify, route, documents, record)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
    registry=REGISTRY,
)
DOCUMENT_SECONDS = Histogram(
    "mailbot_document_read_seconds",
    "Time to read one document's text, by source (ocr: tesseract, pdf-text: text layer)",
    ["source"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60),
    registry=REGISTRY,
)
LAST_POLL = Gauge(
    "mailbot_last_poll_timestamp_seconds",
    "Unix time of the intake's last successful pass over the mailbox",
    registry=REGISTRY,
)
LAST_DELIVERY = Gauge(
    "mailbot_last_delivery_timestamp_seconds",
    "Unix time of the last outbox delivery run that ended without error or deferral",
    registry=REGISTRY,
)


@dataclass
class Liveness:
    """When the daemon last did its work (Unix seconds; None: not yet since start)."""

    started: float
    last_poll: float | None = None
    last_progress: float | None = None
    """The last mail reaching a final status: a long pass (a burst of receipts) is
    progress even though no new poll ends meanwhile."""
    last_delivery: float | None = None


LIVENESS = Liveness(started=time.time())
_listeners: list[Callable[[], None]] = []


def reset(now: float | None = None) -> None:
    """Start the liveness facts over (a daemon starting; tests)."""
    global LIVENESS
    LIVENESS = Liveness(started=time.time() if now is None else now)


def add_beat_listener(listener: Callable[[], None]) -> None:
    _listeners.append(listener)


def remove_beat_listener(listener: Callable[[], None]) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


def beat() -> None:
    """The intake loop is alive (a pass, an IDLE wake-up, a mail finished, a wait step)."""
    for listener in list(_listeners):
        try:
            listener()
        except Exception:  # a failing watchdog ping must never cost the intake
            log.exception("heartbeat listener failed")


def message_finished(status: str) -> None:
    MESSAGES.labels(status).inc()
    LIVENESS.last_progress = time.time()
    beat()


def processing_seconds(seconds: float) -> None:
    PROCESSING_SECONDS.observe(seconds)


def document_read(source: str, seconds: float) -> None:
    DOCUMENT_SECONDS.labels(source).observe(seconds)


def poll_done() -> None:
    now = time.time()
    LIVENESS.last_poll = now
    LAST_POLL.set(now)
    beat()


def delivery_done() -> None:
    # not a beat: delivery runs in the scheduler's threads, which say nothing about the loop
    now = time.time()
    LIVENESS.last_delivery = now
    LAST_DELIVERY.set(now)
