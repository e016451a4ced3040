"""The idempotent consumer against the real broker and database."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from google.protobuf import wrappers_pb2
from pymongo.asynchronous.client_session import AsyncClientSession

from crm_platform.consumer import (
    DeadLetterLimitExceededError,
    DeadLetterPolicy,
    IdempotentConsumer,
    ReceivedEvent,
)
from crm_platform.context import Actor, ActorType, CallContext
from crm_platform.events import Event
from crm_platform.mongo import MongoStore
from crm_testing.kafka import read_topic

CALL = CallContext("acme", Actor(ActorType.SYSTEM, "test"))


def _event(value: int, key: str = "c1") -> Event:
    return Event.of(
        wrappers_pb2.Int64Value(value=value),
        source="/t",
        subject=f"things/{key}",
        key=key,
        call=CALL,
    )


@pytest.fixture
async def producer(infra: Any) -> AsyncIterator[AIOKafkaProducer]:
    kafka = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap, acks="all")
    await kafka.start()
    yield kafka
    await kafka.stop()


async def _send(producer: AIOKafkaProducer, topic: str, event: Event) -> None:
    await producer.send_and_wait(
        topic, value=event.payload, key=event.key.encode(), headers=event.kafka_headers()
    )


class Counter:
    """A handler that adds each event's value to a total in the database."""

    def __init__(self, store: MongoStore, fail_on: int | None = None) -> None:
        self.store = store
        self.fail_on = fail_on
        self.calls = 0

    async def __call__(self, received: ReceivedEvent, session: AsyncClientSession) -> None:
        self.calls += 1
        assert isinstance(received.payload, wrappers_pb2.Int64Value)
        if received.payload.value == self.fail_on:
            raise RuntimeError("this event always fails")
        await self.store.db["totals"].update_one(
            {"_id": received.event.key},
            {"$inc": {"total": received.payload.value, "count": 1}},
            upsert=True,
            session=session,
        )

    async def total(self, key: str = "c1") -> dict[str, int]:
        doc = await self.store.db["totals"].find_one({"_id": key}) or {}
        return {"total": doc.get("total", 0), "count": doc.get("count", 0)}


@contextlib.asynccontextmanager
async def running(consumer: IdempotentConsumer) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(consumer.run())
    try:
        yield task
    finally:
        await consumer.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 15)


async def _until(condition: Any, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not await condition():
            await asyncio.sleep(0.1)


def _consumer(
    store: MongoStore, handler: Any, topic: str, infra: Any, **kw: Any
) -> IdempotentConsumer:
    return IdempotentConsumer(
        store,
        handler,
        topics=[topic],
        group_id=f"group-{topic}",
        bootstrap_servers=infra.kafka_bootstrap,
        retry_backoff_seconds=0.01,
        **kw,
    )


async def test_redelivered_event_is_applied_once(
    infra: Any, store: MongoStore, topic: str, producer: AIOKafkaProducer
) -> None:
    counter = Counter(store)
    first, second = _event(5), _event(7)
    for event in (first, first, second, first):  # the broker re-delivers `first` twice
        await _send(producer, topic, event)
    async with running(_consumer(store, counter, topic, infra)):

        async def done() -> bool:
            return (await counter.total())["count"] >= 2 and counter.calls >= 2

        await _until(done)
        await asyncio.sleep(0.5)  # give a wrong implementation time to double count
    assert await counter.total() == {"total": 12, "count": 2}


async def test_restarted_consumer_does_not_apply_committed_events_again(
    infra: Any, store: MongoStore, topic: str, producer: AIOKafkaProducer
) -> None:
    counter = Counter(store)
    await _send(producer, topic, _event(1))
    async with running(_consumer(store, counter, topic, infra)):
        await _until(lambda: _has_count(counter, 1))
    await _send(producer, topic, _event(2))
    async with running(_consumer(store, counter, topic, infra)):
        await _until(lambda: _has_count(counter, 2))
        await asyncio.sleep(0.5)
    assert await counter.total() == {"total": 3, "count": 2}


async def _has_count(counter: Counter, count: int) -> bool:
    return (await counter.total())["count"] >= count


async def test_poison_message_goes_to_the_dead_letter_topic_and_consumption_continues(
    infra: Any, store: MongoStore, topic: str, producer: AIOKafkaProducer
) -> None:
    counter = Counter(store)
    await producer.send_and_wait(topic, value=b"\x00garbage", key=b"c1")
    await _send(producer, topic, _event(3, key="c1"))
    async with running(_consumer(store, counter, topic, infra)):
        await _until(lambda: _has_count(counter, 1))
        [dead] = await read_topic(infra.kafka_bootstrap, f"{topic}.dlq", 1)
    headers = dict(dead.headers)
    assert dead.value == b"\x00garbage"
    assert headers["dlq_reason"] == b"malformed"
    assert headers["dlq_topic"] == topic.encode()
    assert await counter.total() == {"total": 3, "count": 1}


async def test_event_whose_handler_keeps_failing_is_dead_lettered_after_bounded_retries(
    infra: Any, store: MongoStore, topic: str, producer: AIOKafkaProducer
) -> None:
    counter = Counter(store, fail_on=13)
    await _send(producer, topic, _event(13))
    await _send(producer, topic, _event(1))
    async with running(_consumer(store, counter, topic, infra, max_attempts=3)):
        await _until(lambda: _has_count(counter, 1))
        [dead] = await read_topic(infra.kafka_bootstrap, f"{topic}.dlq", 1)
    assert dict(dead.headers)["dlq_reason"] == b"handler_failed"
    assert counter.calls == 3 + 1  # three attempts of the failing event, one of the good one
    assert await counter.total() == {"total": 1, "count": 1}


async def test_consumer_stops_instead_of_dead_lettering_everything(
    infra: Any, store: MongoStore, topic: str, producer: AIOKafkaProducer
) -> None:
    for n in range(5):
        await producer.send_and_wait(topic, value=f"bad {n}".encode(), key=b"c1")
    consumer = _consumer(
        store, Counter(store), topic, infra, dead_letter=DeadLetterPolicy(max_dead_letters=2)
    )
    with pytest.raises(DeadLetterLimitExceededError, match="more than 2 dead letters"):
        await asyncio.wait_for(consumer.run(), 30)
    dead = await read_topic(infra.kafka_bootstrap, f"{topic}.dlq", 2)
    assert len(dead) == 2
