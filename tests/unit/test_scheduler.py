"""The delivery job: a nudge while it runs makes it go round again, not skip."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from mailbot import scheduler
from mailbot.config import Settings
from mailbot.delivery import DeliveryStats
from mailbot.scheduler import Jobs

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
