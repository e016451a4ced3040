"""Durable timers against the real database and broker: fire once, on time, whatever happens."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.protobuf import wrappers_pb2
from pymongo.asynchronous.client_session import AsyncClientSession

from crm_platform.context import current_call
from crm_platform.errors import FailedPrecondition
from crm_platform.events import Event
from crm_platform.mongo import MongoStore
from crm_platform.outbox import Outbox, OutboxRelay, RelayLease
from crm_platform.timers import Timer, TimerState, TimerStore, TimerWorker
from crm_testing.kafka import read_topic

TENANT = "acme"


class Effects:
    """A fire handler that counts its committed effects per timer in the database (through the
    firing transaction, so an aborted firing leaves no count) and emits one event per firing."""

    def __init__(self, store: MongoStore, name: str = "worker") -> None:
        self.store = store
        self.name = name
        self.calls: list[str] = []  # every call, committed or not
        self.fail: Callable[[Timer], None] = lambda timer: None
        self.block: set[str] = set()  # timer ids whose firing never finishes

    async def __call__(self, timer: Timer, session: AsyncClientSession) -> Sequence[Event]:
        self.calls.append(timer.timer_id)
        if timer.timer_id in self.block:
            await asyncio.Event().wait()
        self.fail(timer)
        await self.store.db["effects"].update_one(
            {"_id": timer.timer_id},
            {"$inc": {"count": 1}, "$push": {"by": self.name, "payload": dict(timer.payload)}},
            upsert=True,
            session=session,
        )
        event = Event.of(
            wrappers_pb2.StringValue(value=timer.timer_id),
            source="/crm/test",
            subject=f"timers/{timer.timer_id}",
            key=str(timer.payload.get("customer", "c1")),
            call=current_call(),
            time=timer.due_at,
        )
        return [event]

    async def counts(self) -> dict[str, int]:
        docs = await self.store.db["effects"].find({}).to_list(None)
        return {doc["_id"]: doc["count"] for doc in docs}


@pytest.fixture
async def timers(store: MongoStore) -> TimerStore:
    timer_store = TimerStore(store.db)
    await timer_store.ensure_indexes()
    return timer_store


@contextlib.asynccontextmanager
async def running(*workers: TimerWorker | OutboxRelay) -> AsyncIterator[None]:
    for work in workers:
        work.start()
    try:
        yield
    finally:
        for work in workers:
            await work.stop(timeout=5.0)


def _worker(
    store: MongoStore,
    timers: TimerStore,
    outbox: Outbox,
    handler: Effects,
    *,
    lease_name: str = "timers",
    **options: Any,
) -> TimerWorker:
    options = {"lease_ttl_seconds": 4.0, "max_idle_seconds": 0.5, **options}
    return TimerWorker(store, timers, outbox, handler, lease_name=lease_name, **options)


def _relay(outbox: Outbox, store: MongoStore, bootstrap: str) -> OutboxRelay:
    return OutboxRelay(
        outbox,
        RelayLease(store.db, "relay", ttl_seconds=10),
        bootstrap_servers=bootstrap,
        client_id="test-relay",
        poll_interval=0.2,
    )


def _timer(timer_id: str, in_seconds: float, **payload: Any) -> Timer:
    due = datetime.now(UTC) + timedelta(seconds=in_seconds)
    return Timer(timer_id, TENANT, due, "sla.breach", payload)


async def _schedule(
    store: MongoStore, timers: TimerStore, new: Sequence[Timer], *workers: TimerWorker
) -> None:
    """Schedule in a transaction of its own, then wake the workers, as a service would."""

    async def work(session: AsyncClientSession) -> None:
        await timers.schedule(new, session)

    await store.in_transaction(work)
    for worker in workers:
        worker.notify(min(timer.due_at for timer in new))


async def _until_fired(timers: TimerStore, timer_ids: Sequence[str], timeout: float = 30) -> None:
    async with asyncio.timeout(timeout):
        for timer_id in timer_ids:
            while True:
                stored = await timers.get(TENANT, timer_id)
                if stored is not None and stored.state is TimerState.FIRED:
                    break
                await asyncio.sleep(0.05)


async def _assert_fired_on_or_after_due(timers: TimerStore, timer_id: str) -> None:
    stored = await timers.get(TENANT, timer_id)
    assert stored is not None
    assert stored.state is TimerState.FIRED
    assert stored.fired_at is not None
    assert stored.fired_at >= stored.timer.due_at


async def test_timer_fires_at_its_due_time_and_its_event_reaches_kafka(
    infra: Any, store: MongoStore, timers: TimerStore, topic: str
) -> None:
    outbox = Outbox(store.db, topic)
    handler = Effects(store)
    worker = _worker(store, timers, outbox, handler)
    relay = _relay(outbox, store, infra.kafka_bootstrap)
    async with running(worker, relay):
        await _schedule(store, timers, [_timer("t-1", 1.0, customer="c42")], worker)
        [record] = await read_topic(infra.kafka_bootstrap, topic, 1)
    event = Event.from_kafka(record.key, record.value, list(record.headers))
    assert event.key == "c42"
    assert event.subject == "timers/t-1"
    assert event.tenant_id == TENANT
    assert str(event.actor) == "system:timers"
    await _assert_fired_on_or_after_due(timers, "t-1")
    assert await handler.counts() == {"t-1": 1}
    assert await outbox.count_pending() == 0


async def test_timer_already_due_when_scheduled_fires_at_once(
    store: MongoStore, timers: TimerStore, topic: str
) -> None:
    handler = Effects(store)
    # A long idle limit: only the notify of the scheduling commit makes it fire soon.
    worker = _worker(
        store,
        timers,
        Outbox(store.db, topic),
        handler,
        max_idle_seconds=4.0,
        lease_ttl_seconds=10.0,
    )
    async with running(worker):
        await asyncio.sleep(0.3)  # the worker is asleep
        await _schedule(store, timers, [_timer("late", -3600)], worker)
        await _until_fired(timers, ["late"])
    await _assert_fired_on_or_after_due(timers, "late")
    assert await handler.counts() == {"late": 1}


async def test_rearming_before_due_moves_the_firing_and_the_old_arming_never_fires(
    store: MongoStore, timers: TimerStore, topic: str
) -> None:
    handler = Effects(store)
    worker = _worker(store, timers, Outbox(store.db, topic), handler)
    async with running(worker):
        await _schedule(store, timers, [_timer("t", 0.8, version=1)], worker)
        await _schedule(store, timers, [_timer("t", 2.0, version=2)], worker)
        await _until_fired(timers, ["t"])
    stored = await timers.get(TENANT, "t")
    assert stored is not None
    assert stored.generation == 2
    assert stored.fired_at is not None
    assert stored.fired_at >= stored.timer.due_at
    effects = await store.db["effects"].find_one({"_id": "t"})
    assert effects is not None
    assert effects["count"] == 1
    assert effects["payload"] == [{"version": 2}]


async def test_a_firing_that_read_the_timer_before_it_was_rearmed_fires_nothing(
    store: MongoStore, timers: TimerStore
) -> None:
    await timers.schedule([_timer("t", -1)], None)
    [stale] = await timers.due(datetime.now(UTC), 10)
    await timers.schedule([_timer("t", 3600)], None)  # re-armed after the worker read it

    async def fire(session: AsyncClientSession) -> list[Any]:
        return await timers.mark_fired([stale], datetime.now(UTC), session)

    assert await store.in_transaction(fire) == []
    stored = await timers.get(TENANT, "t")
    assert stored is not None
    assert stored.state is TimerState.PENDING
    assert stored.generation == 2


async def test_cancelled_timer_never_fires(
    store: MongoStore, timers: TimerStore, topic: str
) -> None:
    handler = Effects(store)
    worker = _worker(store, timers, Outbox(store.db, topic), handler)
    async with running(worker):
        await _schedule(store, timers, [_timer("kept", 1.0), _timer("cancelled", 1.0)], worker)

        async def cancel(session: AsyncClientSession) -> int:
            return await timers.cancel(TENANT, ["cancelled", "unknown"], session)

        assert await store.in_transaction(cancel) == 1
        await _until_fired(timers, ["kept"])  # both were due at the same moment
        await asyncio.sleep(0.5)
    stored = await timers.get(TENANT, "cancelled")
    assert stored is not None
    assert stored.state is TimerState.CANCELLED
    assert await handler.counts() == {"kept": 1}
    assert "cancelled" not in handler.calls


async def test_timers_fire_exactly_once_across_a_worker_crash(
    infra: Any, store: MongoStore, timers: TimerStore, topic: str
) -> None:
    outbox = Outbox(store.db, topic)
    first, second = Effects(store, "first"), Effects(store, "second")
    first.block = {"in-flight"}  # the first worker "crashes" while firing this one
    crashing = _worker(store, timers, outbox, first)
    crashing.start()
    try:
        await _schedule(store, timers, [_timer("done", 0.2)], crashing)
        await _until_fired(timers, ["done"])
        await _schedule(store, timers, [_timer("in-flight", 0.2)], crashing)
        async with asyncio.timeout(30):
            while "in-flight" not in first.calls:
                await asyncio.sleep(0.05)
    finally:
        await crashing.stop(timeout=0.5)  # cancels the firing transaction: it never commits
    stored = await timers.get(TENANT, "in-flight")
    assert stored is not None
    assert stored.state is TimerState.PENDING

    restarted = _worker(store, timers, outbox, second)
    relay = _relay(outbox, store, infra.kafka_bootstrap)
    async with running(restarted, relay):
        await _schedule(store, timers, [_timer("after", 0.2)], restarted)
        await _until_fired(timers, ["in-flight", "after"])
        records = await read_topic(infra.kafka_bootstrap, topic, 3)
    assert await Effects(store).counts() == {"done": 1, "in-flight": 1, "after": 1}
    assert sorted(second.calls) == ["after", "in-flight"]  # "done" did not fire again
    subjects = {
        event.id: event.subject
        for event in (Event.from_kafka(r.key, r.value, list(r.headers)) for r in records)
    }
    assert sorted(subjects.values()) == ["timers/after", "timers/done", "timers/in-flight"]


@pytest.mark.parametrize("shared_lease", [True, False], ids=["one-lease", "no-shared-lease"])
async def test_two_workers_fire_each_timer_exactly_once(
    store: MongoStore, timers: TimerStore, topic: str, shared_lease: bool
) -> None:
    """With one lease only its holder fires; without (a paused holder whose lease expired
    overlaps its successor) the firing transactions still let each timer fire once."""
    outbox = Outbox(store.db, topic)
    left, right = Effects(store, "left"), Effects(store, "right")
    workers = [
        _worker(store, timers, outbox, left, lease_name="timers", batch_size=7),
        _worker(
            store,
            timers,
            outbox,
            right,
            lease_name="timers" if shared_lease else "other",
            batch_size=7,
        ),
    ]
    ids = [f"t{i}" for i in range(40)]
    # Many due at the same moments, some a little apart.
    new = [_timer(timer_id, 1.0 + (i % 4) * 0.2) for i, timer_id in enumerate(ids)]
    async with running(*workers):
        await _schedule(store, timers, new, *workers)
        await _until_fired(timers, ids)
        await asyncio.sleep(0.5)
    assert await Effects(store).counts() == dict.fromkeys(ids, 1)
    firing_workers = {
        by for doc in await store.db["effects"].find({}).to_list(None) for by in doc["by"]
    }
    if shared_lease:
        assert len(firing_workers) == 1
    assert await outbox.count_pending() == len(ids)


async def test_standby_takes_over_when_the_lease_holder_stops(
    store: MongoStore, timers: TimerStore, topic: str
) -> None:
    outbox = Outbox(store.db, topic)
    leader_effects, standby_effects = Effects(store, "leader"), Effects(store, "standby")
    leader = _worker(store, timers, outbox, leader_effects)
    standby = _worker(store, timers, outbox, standby_effects)
    async with running(standby):
        leader.start()
        try:
            await _schedule(store, timers, [_timer("before", 0.5)], leader, standby)
            await _until_fired(timers, ["before"])
        finally:
            await leader.stop()
        await _schedule(store, timers, [_timer("after", 0.5)], standby)
        await _until_fired(timers, ["after"])
    by = {doc["_id"]: doc["by"] for doc in await store.db["effects"].find({}).to_list(None)}
    assert by["after"] == ["standby"]
    assert by["before"] in (["leader"], ["standby"])  # whichever took the lease first


async def test_failing_handler_is_retried_later_and_does_not_block_other_timers(
    store: MongoStore, timers: TimerStore, topic: str
) -> None:
    handler = Effects(store)
    failures: list[Exception] = [
        RuntimeError("a bug"),
        FailedPrecondition("NOT_READY", "bad", "ticket is locked"),
    ]
    broken = [f"broken{i}" for i in range(4)]  # more than a batch retries without them

    def fail(timer: Timer) -> None:
        if timer.timer_id == "bad" and failures:
            raise failures.pop(0)
        if timer.timer_id in broken:
            raise FailedPrecondition("NOT_READY", timer.timer_id, "never works")

    handler.fail = fail
    worker = _worker(store, timers, Outbox(store.db, topic), handler, retry_initial_seconds=0.3)
    good = [f"good{i}" for i in range(5)]
    async with running(worker):
        await _schedule(store, timers, [_timer(t, 0.5) for t in ["bad", *broken, *good]], worker)
        await _until_fired(timers, [*good, "bad"])
    assert await handler.counts() == dict.fromkeys(["bad", *good], 1)
    assert handler.calls.count("bad") == 3
    stored = await timers.get(TENANT, "bad")
    assert stored is not None
    assert stored.attempts == 2
    assert stored.last_error == "FailedPrecondition: bad: ticket is locked"
    await _assert_fired_on_or_after_due(timers, "bad")
    for timer_id in broken:
        stored = await timers.get(TENANT, timer_id)
        assert stored is not None
        assert stored.state is TimerState.PENDING
        assert stored.attempts >= 1
        assert stored.fire_at is not None
        assert stored.fire_at > stored.timer.due_at  # backed off
        assert stored.last_error == f"FailedPrecondition: {timer_id}: never works"
