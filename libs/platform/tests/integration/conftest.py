"""Fixtures for the runtime's integration tests: a fresh database and topics per test."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from crm_platform.mongo import MongoStore


@pytest.fixture
async def store(infra: Any) -> AsyncIterator[MongoStore]:
    """A MongoStore on a database of its own (dropped afterwards)."""
    mongo = MongoStore(infra.mongodb_uri, f"test_{uuid.uuid4().hex[:12]}")
    yield mongo
    await mongo.client.drop_database(mongo.db.name)
    await mongo.close()


async def create_topics(bootstrap: str, *names: str, partitions: int = 3) -> None:
    """Create topics (the local broker does not auto-create them)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1) for name in names]
        )
    finally:
        await admin.close()


@pytest.fixture
async def topic(infra: Any) -> str:
    """A fresh topic and its dead-letter topic."""
    name = f"test.{uuid.uuid4().hex[:10]}.v1"
    await create_topics(infra.kafka_bootstrap, name, f"{name}.dlq")
    return name


async def read_topic(
    bootstrap: str, topic: str, count: int, timeout: float = 30.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Read from the start of ``topic`` until ``count`` distinct events (by ``ce_id``) arrived.

    Records without an event id count individually. Fails after ``timeout`` seconds.
    """
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    distinct: set[bytes] = set()
    try:
        async with asyncio.timeout(timeout):
            while len(distinct) < count:
                batch = await consumer.getmany(timeout_ms=500)
                for part in batch.values():
                    for record in part:
                        records.append(record)
                        ids = [v for k, v in record.headers if k == "ce_id"]
                        distinct.add(
                            ids[0] if ids else f"{record.partition}:{record.offset}".encode()
                        )
    finally:
        await consumer.stop()
    return records
