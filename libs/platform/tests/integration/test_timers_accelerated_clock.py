"""Durable timers on an accelerated clock: due times are simulated instants, and a timer fires
when the clock reaches its due time, neither at once (the wall clock is ahead) nor after the
simulated delay has passed in real time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from pymongo.asynchronous.client_session import AsyncClientSession

from crm_platform.clock import Clock
from crm_platform.events import Event
from crm_platform.mongo import MongoStore
from crm_platform.outbox import Outbox
from crm_platform.timers import Timer, TimerState, TimerStore, TimerWorker

pytestmark = pytest.mark.integration

TENANT = "acme"
RATE = 3600.0  # one simulated hour per wall second


async def _fired_at_wall(timers: TimerStore, timer_id: str, timeout: float) -> float:
    """The wall time at which the timer was seen fired."""
    async with asyncio.timeout(timeout):
        while True:
            stored = await timers.get(TENANT, timer_id)
            if stored is not None and stored.state is TimerState.FIRED:
                return time.time()
            await asyncio.sleep(0.02)


async def test_timers_fire_when_the_accelerated_clock_reaches_their_due_time(
    store: MongoStore,
) -> None:
    clock = Clock.accelerated(datetime.now(UTC) - timedelta(days=2), RATE)
    timers = TimerStore(store.db)
    await timers.ensure_indexes()
    outbox = Outbox(store.db, "test.timers.v1")
    fired: list[tuple[str, datetime]] = []

    async def handler(timer: Timer, session: AsyncClientSession) -> Sequence[Event]:
        fired.append((timer.timer_id, clock.now()))
        return []

    worker = TimerWorker(
        store,
        timers,
        outbox,
        handler,
        lease_name="timers",
        lease_ttl_seconds=4.0,
        max_idle_seconds=1.0,
        clock=clock,
    )
    started_wall = time.time()
    now = clock.now()
    # Both are due in the past of the wall clock, hours apart on the simulated one.
    soon = Timer("soon", TENANT, now + timedelta(hours=1), "sla.breach")
    later = Timer("later", TENANT, now + timedelta(hours=3), "sla.breach")

    async def schedule(session: AsyncClientSession) -> None:
        await timers.schedule([soon, later], session)

    await store.in_transaction(schedule)
    worker.start()
    try:
        worker.notify(soon.due_at)
        soon_wall = await _fired_at_wall(timers, "soon", timeout=10)
        later_wall = await _fired_at_wall(timers, "later", timeout=10)
    finally:
        await worker.stop(timeout=5.0)

    # One simulated hour is one wall second: not at once, and not hours of real time later.
    assert 0.8 <= soon_wall - started_wall < 2.5
    assert 2.8 <= later_wall - started_wall < 4.5
    for timer in (soon, later):
        stored = await timers.get(TENANT, timer.timer_id)
        assert stored is not None
        assert stored.fired_at is not None
        assert timer.due_at <= stored.fired_at < timer.due_at + timedelta(minutes=30)
    assert [timer_id for timer_id, _ in fired] == ["soon", "later"]
