"""The embedded infrastructure works for real: Kafka round trip, SecantusDB transactions,
a broker restart that keeps the messages, a service started as a process."""

from __future__ import annotations

import signal
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pymongo import AsyncMongoClient

from crm_devstack.errors import LaunchError
from crm_devstack.kafka import kafka_ready
from crm_devstack.pytest_plugin import Infra
from crm_devstack.services import grpc_health


async def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, key=b"contact-1")
    finally:
        await producer.stop()


async def _consume(bootstrap: str, topic: str, count: int, group: str) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        for _ in range(60):
            batches = await consumer.getmany(timeout_ms=500)
            values += [r.value for records in batches.values() for r in records]
            if len(values) >= count:
                break
        await consumer.commit()
    finally:
        await consumer.stop()
    return values


async def test_kafka_round_trip_with_a_consumer_group(infra: Infra) -> None:
    topic = f"devstack.roundtrip.{uuid.uuid4().hex[:8]}"
    await infra.ensure_topics([topic])
    await infra.ensure_topics([topic])  # idempotent
    values = [f"event-{i}".encode() for i in range(5)]
    await _produce(infra.kafka_bootstrap, topic, values)
    assert await _consume(infra.kafka_bootstrap, topic, 5, "devstack-test") == values


async def test_existing_topic_with_another_partition_count_is_an_error(infra: Infra) -> None:
    topic = f"devstack.partitions.{uuid.uuid4().hex[:8]}"
    await infra.ensure_topics([topic], partitions=2)
    with pytest.raises(LaunchError, match="another partition count"):
        await infra.ensure_topics([topic], partitions=6)


async def test_secantus_transactions_commit_and_abort(infra: Infra) -> None:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(infra.mongodb_uri)
    database = client[f"devstack_{uuid.uuid4().hex[:8]}"]
    try:
        await database.create_collection("contacts")
        await database.create_collection("outbox")
        async with client.start_session() as session:
            async with await session.start_transaction():
                await database.contacts.insert_one({"_id": "c1", "name": "Ada"}, session=session)
                await database.outbox.insert_one({"_id": "e1", "key": "c1"}, session=session)
            await session.start_transaction()
            await database.contacts.insert_one({"_id": "c2"}, session=session)
            await session.abort_transaction()
        assert await database.contacts.distinct("_id") == ["c1"]
        assert await database.outbox.count_documents({}) == 1
    finally:
        await client.drop_database(database.name)
        await client.close()


async def test_broker_restart_and_crash_keep_the_messages(infra: Infra) -> None:
    topic = f"devstack.restart.{uuid.uuid4().hex[:8]}"
    await infra.ensure_topics([topic], partitions=1)
    await _produce(infra.kafka_bootstrap, topic, [b"before-stop"])
    async with infra.kafka_down() as broker:
        assert not broker.running
        assert not await kafka_ready(infra.kafka_bootstrap)
    assert await kafka_ready(infra.kafka_bootstrap)
    await _produce(infra.kafka_bootstrap, topic, [b"before-crash"])
    async with infra.kafka_down(crash=True) as broker:
        assert broker.returncode == -signal.SIGKILL
    await _produce(infra.kafka_bootstrap, topic, [b"after"])
    assert await _consume(infra.kafka_bootstrap, topic, 3, "devstack-restart") == [
        b"before-stop",
        b"before-crash",
        b"after",
    ]


async def test_service_process_is_ready_and_drains_on_sigterm(infra: Infra) -> None:
    service = await infra.start_service(
        "contacts", env={"MONGODB_DATABASE": f"devstack_{uuid.uuid4().hex[:8]}"}
    )
    assert await grpc_health(service.address) == "SERVING"
    service.send_signal(signal.SIGTERM)
    assert await service.wait_exit(30.0) == 0
    assert await grpc_health(service.address) == "UNREACHABLE"
