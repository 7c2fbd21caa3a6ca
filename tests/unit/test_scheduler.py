"""The delivery job: a nudge while it runs makes it go round again, not skip; ticks
during a long run neither overlap it nor log a warning."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from mailbot.config import Settings
from mailbot.daemon import scheduler
from mailbot.daemon.scheduler import Jobs
from mailbot.outbound.delivery import DeliveryStats

NOW = datetime(2023, 1, 20, 10, tzinfo=UTC)


def _jobs() -> Jobs:
    return Jobs(factory=None, settings=Settings(), rules=lambda: None, clock=lambda: NOW)  # type: ignore[arg-type]


def test_a_nudge_during_delivery_sends_the_new_replies_in_the_same_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    jobs = _jobs()
    calls: list[int] = []

    def deliver_pending(*_: Any, **__: Any) -> DeliveryStats:
        calls.append(1)
        if len(calls) == 1:
            # the intake commits a batch while this delivery runs
            jobs.deliver_soon()
            return DeliveryStats(sent=3)
        return DeliveryStats(sent=2 if len(calls) == 2 else 0)

    monkeypatch.setattr(scheduler, "deliver_pending", deliver_pending)
    jobs.deliver()
    assert len(calls) == 2  # went round once more for the nudge, then stopped
    assert jobs._running is False


def test_a_full_batch_goes_on_and_a_deferral_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    jobs = _jobs()
    results = [
        DeliveryStats(sent=scheduler.DELIVER_BATCH),
        DeliveryStats(sent=1, deferred=1),
        DeliveryStats(sent=5),
    ]
    monkeypatch.setattr(scheduler, "deliver_pending", lambda *a, **k: results.pop(0))
    jobs.deliver()
    assert len(results) == 1


def test_a_long_delivery_is_not_overlapped_and_logs_no_warning_per_tick(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The daemon's delivery job ticks every second here; one delivery takes 2.6 s.
    Ticks during it neither start a second delivery nor log APScheduler's
    "maximum number of running instances" WARNING."""
    import threading
    import time
    from dataclasses import replace

    settings = Settings()
    settings = replace(settings, schedule=replace(settings.schedule, deliver_seconds=1))
    jobs = Jobs(factory=None, settings=settings, rules=lambda: None, clock=lambda: NOW)  # type: ignore[arg-type]
    lock = threading.Lock()
    running = [0]
    most = [0]
    calls = [0]

    def deliver_pending(*_: Any, **__: Any) -> DeliveryStats:
        with lock:
            running[0] += 1
            calls[0] += 1
            most[0] = max(most[0], running[0])
            first = calls[0] == 1
        time.sleep(2.6 if first else 0.01)
        with lock:
            running[0] -= 1
        return DeliveryStats()

    monkeypatch.setattr(scheduler, "deliver_pending", deliver_pending)
    quiet = SimpleNamespace(claims=0, rmas=0, errors=0)
    monkeypatch.setattr(scheduler, "run_sweeps", lambda *a, **k: quiet)
    caplog.set_level(logging.WARNING, logger="apscheduler")
    jobs.start()
    try:
        time.sleep(3.6)
    finally:
        jobs.stop()
    skipped = [r for r in caplog.records if "maximum number of running instances" in r.message]
    assert skipped == []
    assert most[0] == 1
    assert calls[0] >= 2  # the ticks after the long one still deliver
