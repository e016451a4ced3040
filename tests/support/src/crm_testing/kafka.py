"""Kafka helpers for the runtime's integration tests."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, ConsumerRecord


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
