"""Durable timers without I/O: due times and the worker's configuration."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from crm_platform.mongo import MongoStore
from crm_platform.outbox import Outbox
from crm_platform.timers import Timer, TimerEvents, TimerStore, TimerWorker


def test_due_time_is_kept_in_utc_rounded_up_to_the_millisecond() -> None:
    paris = timezone(timedelta(hours=1))
    timer = Timer("t", "acme", datetime(2026, 3, 1, 10, 0, 0, 123001, tzinfo=paris), "k")
    assert timer.due_at == datetime(2026, 3, 1, 9, 0, 0, 124000, tzinfo=UTC)
    assert timer.due_at.tzinfo is UTC
    exact = datetime(2026, 3, 1, 9, 0, 0, 124000, tzinfo=UTC)
    assert Timer("t", "acme", exact, "k").due_at == exact


def test_naive_due_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Timer("t", "acme", datetime(2026, 3, 1, 10, 0), "k")


async def test_idle_limit_must_leave_the_worker_time_to_renew_its_lease() -> None:
    store = MongoStore("mongodb://127.0.0.1:1", "unused")  # never connected

    async def fire(timer: Timer, session: object) -> TimerEvents:
        return TimerEvents()

    try:
        with pytest.raises(ValueError, match="half of lease_ttl_seconds"):
            TimerWorker(
                store,
                TimerStore(store.db),
                Outbox(store.db, "t.v1"),
                fire,
                lease_name="timers",
                lease_ttl_seconds=4,
                max_idle_seconds=3,
            )
    finally:
        await store.close()
