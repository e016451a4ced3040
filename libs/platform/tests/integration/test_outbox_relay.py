"""The transactional outbox and its relay against the real broker and database."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from google.protobuf import wrappers_pb2
from pymongo.asynchronous.client_session import AsyncClientSession

from crm_platform.context import Actor, ActorType, CallContext
from crm_platform.events import Event
from crm_platform.mongo import MongoStore
from crm_platform.outbox import Outbox, OutboxRelay, RelayLease
from crm_testing.kafka import read_topic

CALL = CallContext("acme", Actor(ActorType.AGENT, "alice"))


def _relay(outbox: Outbox, store: MongoStore, bootstrap: str) -> OutboxRelay:
    return OutboxRelay(
        outbox,
        RelayLease(store.db, "relay", ttl_seconds=10),
        bootstrap_servers=bootstrap,
        client_id="test-relay",
        poll_interval=0.2,
        request_timeout_ms=3000,
    )


async def _write(store: MongoStore, outbox: Outbox, key: str, seq: int) -> None:
    """One state change and its event in one transaction."""

    async def work(session: AsyncClientSession) -> None:
        await store.db["things"].update_one(
            {"_id": key}, {"$set": {"seq": seq}}, upsert=True, session=session
        )
        event = Event.of(
            wrappers_pb2.Int64Value(value=seq),
            source="/crm/test",
            subject=f"things/{key}",
            key=key,
            call=CALL,
        )
        await outbox.add([event], session)

    await store.in_transaction(work)
    outbox.notify_committed()


async def test_committed_event_is_published_with_its_key(
    infra: Any, store: MongoStore, topic: str
) -> None:
    outbox = Outbox(store.db, topic)
    relay = _relay(outbox, store, infra.kafka_bootstrap)
    relay.start()
    try:
        await _write(store, outbox, "c1", 1)
        [record] = await read_topic(infra.kafka_bootstrap, topic, 1)
    finally:
        await relay.stop()
    assert record.key == b"c1"
    event = Event.from_kafka(record.key, record.value, list(record.headers))
    assert event.decode() == wrappers_pb2.Int64Value(value=1)
    assert await outbox.count_pending() == 0


async def test_a_malformed_record_is_set_aside_and_does_not_block_later_events(
    infra: Any, store: MongoStore, topic: str
) -> None:
    outbox = Outbox(store.db, topic)
    # E.g. left behind by an older relay that marked records sent instead of deleting them.
    await outbox.collection.insert_one(
        {"topic": topic, "key": "m1", "seq": 0, "status": "sent", "created_at": None}
    )
    relay = _relay(outbox, store, infra.kafka_bootstrap)
    relay.start()
    try:
        await _write(store, outbox, "m2", 1)
        [record] = await read_topic(infra.kafka_bootstrap, topic, 1)
    finally:
        await relay.stop()
    assert record.key == b"m2"
    assert await outbox.count_pending() == 0
    assert await store.db["outbox_malformed"].count_documents({"key": "m1"}) == 1


async def test_aborted_transaction_publishes_nothing(store: MongoStore, topic: str) -> None:
    outbox = Outbox(store.db, topic)

    async def work(session: AsyncClientSession) -> None:
        event = Event.of(
            wrappers_pb2.Int64Value(value=1), source="/t", subject="s", key="k", call=CALL
        )
        await outbox.add([event], session)
        raise RuntimeError("the state change failed")

    with pytest.raises(RuntimeError):
        await store.in_transaction(work)
    assert await outbox.count_pending() == 0


async def test_writes_succeed_while_kafka_is_down_and_arrive_in_order_per_key_when_it_is_back(
    infra: Any, store: MongoStore, topic: str
) -> None:
    if infra.kafka is None:
        pytest.skip("needs control of the broker (CRM_TEST_INFRA=local)")
    outbox = Outbox(store.db, topic)
    relay = _relay(outbox, store, infra.kafka_bootstrap)
    relay.start()
    keys = ["alice", "bob", "carol"]
    per_key = 20
    try:
        await _write(store, outbox, "warm-up", 0)
        await read_topic(infra.kafka_bootstrap, topic, 1)
        await infra.kafka.stop()
        for seq in range(1, per_key + 1):
            for key in keys:
                await _write(store, outbox, key, seq)
        assert await outbox.count_pending() == len(keys) * per_key
        async with asyncio.timeout(30):  # the relay notices once its sends time out
            while relay.producer_connected:
                await asyncio.sleep(0.1)
        assert await outbox.count_pending() == len(keys) * per_key
        await infra.kafka.start()
        records = await read_topic(infra.kafka_bootstrap, topic, 1 + len(keys) * per_key, 90)
    finally:
        if not infra.kafka.running:
            await infra.kafka.start()
        await relay.stop()
    seen: dict[str, list[int]] = {key: [] for key in keys}
    ids = set()
    for record in records:
        event = Event.from_kafka(record.key, record.value, list(record.headers))
        ids.add(event.id)
        if event.key in seen:
            value = event.decode()
            assert isinstance(value, wrappers_pb2.Int64Value)
            seen[event.key].append(value.value)
    for key in keys:
        # At least once: a resend after the outage may repeat an event, never reorder them.
        deduped = list(dict.fromkeys(seen[key]))
        assert deduped == list(range(1, per_key + 1)), key
    assert len(ids) == 1 + len(keys) * per_key
    assert await outbox.count_pending() == 0


async def test_each_keys_events_are_published_in_sequence_order(
    infra: Any, store: MongoStore, topic: str
) -> None:
    """Writers in different processes get ObjectIds that do not sort in commit order; the
    sequence (the aggregate version) decides the order of one key's events."""
    outbox = Outbox(store.db, topic)
    for seq in (3, 1, 2):  # stored in this _id order, as if from three processes

        async def work(session: AsyncClientSession, seq: int = seq) -> None:
            event = Event.of(
                wrappers_pb2.Int64Value(value=seq), source="/t", subject="s", key="k", call=CALL
            )
            await outbox.add([event], session, sequence=seq)

        await store.in_transaction(work)
    relay = _relay(outbox, store, infra.kafka_bootstrap)
    relay.batch_size = 2  # the batch cut must not split a key's history out of order
    relay.start()
    try:
        records = await read_topic(infra.kafka_bootstrap, topic, 3)
    finally:
        await relay.stop()
    values = []
    for record in records:
        payload = Event.from_kafka(record.key, record.value, list(record.headers)).decode()
        assert isinstance(payload, wrappers_pb2.Int64Value)
        values.append(payload.value)
    assert list(dict.fromkeys(values)) == [1, 2, 3]


async def test_standby_relay_reports_kafka_reachable_without_the_lease(
    infra: Any, store: MongoStore, topic: str
) -> None:
    outbox = Outbox(store.db, topic)
    leader, standby = (
        _relay(outbox, store, infra.kafka_bootstrap),
        _relay(outbox, store, infra.kafka_bootstrap),
    )
    leader.start()
    await asyncio.sleep(0.5)
    standby.start()
    try:
        async with asyncio.timeout(15):
            while not standby.producer_connected:
                await asyncio.sleep(0.1)
        assert not await standby.lease.acquire()  # the leader still holds it
    finally:
        await standby.stop()
        await leader.stop()
