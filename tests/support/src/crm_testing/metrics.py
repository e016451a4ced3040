"""Shared pieces of the metrics integration tests: topics of their own, producing events, and
waiting until the service has checkpointed (and its view has read) everything produced."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime
from typing import Any, cast

import grpc
from aiokafka import AIOKafkaProducer
from google.protobuf.timestamp_pb2 import Timestamp

from crm.metrics.v1 import metrics_pb2 as mpb
from crm.metrics.v1 import metrics_pb2_grpc
from crm_devstack.pytest_plugin import Infra
from crm_devstack.services import ServiceProcess
from crm_metrics.checkpoint import ensure_indexes
from crm_platform.checkpointed import end_offsets
from crm_platform.events import Event
from crm_platform.mongo import MongoStore

PARTITIONS = 6


@contextlib.asynccontextmanager
async def scratch_database(infra: Infra, name: str) -> AsyncIterator[MongoStore]:
    """A metrics database of its own with the service's indexes, dropped afterwards."""
    mongo = MongoStore(infra.mongodb_uri, f"crm_metrics_{name}_{uuid.uuid4().hex[:8]}")
    await ensure_indexes(mongo)
    try:
        yield mongo
    finally:
        await mongo.client.drop_database(mongo.db.name)
        await mongo.close()


def metadata(tenant: str) -> tuple[tuple[str, str], ...]:
    """Request metadata of an analyst of ``tenant``."""
    return (("x-tenant-id", tenant), ("x-actor-id", "ann"), ("x-actor-type", "agent"))


def timestamp(at: datetime) -> Timestamp:
    """A protobuf timestamp."""
    out = Timestamp()
    out.FromDatetime(at)
    return out


def new_topic(prefix: str = "metrics-test") -> str:
    """A topic of the test's own (its events are all the service sees)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def produce(bootstrap: str, topic: str, events: Iterable[Event]) -> int:
    """Publish events as the outbox relay does (key = contact id, CloudEvents headers)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=True,
        acks="all",
        linger_ms=20,
        max_batch_size=512 * 1024,
    )
    await producer.start()
    count = 0
    try:
        pending = []
        for event in events:
            pending.append(
                await producer.send(
                    topic, event.payload, key=event.key.encode(), headers=event.kafka_headers()
                )
            )
            count += 1
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return count


async def partition_ends(bootstrap: str, topic: str) -> dict[int, int]:
    """The topic's end offset per partition."""
    return {tp.partition: offset for tp, offset in (await end_offsets(bootstrap, [topic])).items()}


async def wait_caught_up(
    mongo: MongoStore, bootstrap: str, topic: str, namespace: str = "live", timeout: float = 120.0
) -> float:
    """Wait until every partition's checkpoint reached the topic's end; returns the seconds."""
    targets = await partition_ends(bootstrap, topic)
    started = time.monotonic()
    deadline = started + timeout
    while True:
        done = {
            doc["p"]: doc["next_offset"]
            async for doc in mongo.db["metric_offsets"].find({"ns": namespace, "topic": topic})
        }
        if all(target == 0 or done.get(p, 0) >= target for p, target in targets.items()):
            # The views poll every 0.2 s in the tests; give them two rounds.
            await asyncio.sleep(0.5)
            return time.monotonic() - started
        if time.monotonic() > deadline:
            raise TimeoutError(f"not caught up with {topic}: {done} < {targets}")
        await asyncio.sleep(0.1)


async def start_metrics(
    infra: Infra, topic: str, *, namespace: str = "live", env: dict[str, str] | None = None
) -> ServiceProcess:
    """The metrics service as a real process, consuming ``topic`` only."""
    await infra.ensure_topics([topic, topic + ".dlq"], PARTITIONS)
    settings = {
        "METRICS_TOPICS": topic,
        "CONSUMER_GROUP": f"g-{topic}",
        "NAMESPACE": namespace,
        "MONGODB_DATABASE": f"crm_metrics_{topic.replace('-', '_')}",
        "VIEW_REFRESH_SECONDS": "0.2",
        "CHECKPOINT_INTERVAL_SECONDS": "0.2",
    }
    return await infra.start_service("metrics", env={**settings, **(env or {})}, timeout=90)


async def wait_visible(
    process: ServiceProcess, tenant: str, start: datetime, end: datetime, count: int
) -> None:
    """Wait until the service's view counts ``count`` tickets created in the range (the view
    refreshes from the checkpoints a moment after they are written)."""
    request = kpi_request(["tickets_created"], start, end)
    async with asyncio.timeout(30):
        while True:
            response = await stub(process).GetKpis(request, metadata=metadata(tenant))
            if totals(response)["tickets_created"].sum >= count:
                return
            await asyncio.sleep(0.1)


_CHANNELS: dict[int, grpc.aio.Channel] = {}


def stub(process: ServiceProcess) -> metrics_pb2_grpc.MetricsServiceAsyncStub:
    """A stub on the process's port (one channel per port, kept open: a channel nobody holds
    is closed by the garbage collector, possibly while a call is being set up)."""
    channel = _CHANNELS.get(process.port)
    if channel is None:
        channel = _CHANNELS[process.port] = grpc.aio.insecure_channel(f"127.0.0.1:{process.port}")
    made: Any = metrics_pb2_grpc.MetricsServiceStub(channel)  # the async stub at run time
    return cast("metrics_pb2_grpc.MetricsServiceAsyncStub", made)


def kpi_request(
    kpis: Sequence[str],
    start: datetime,
    end: datetime,
    *,
    granularity: Any = mpb.GRANULARITY_TOTAL,
    group_by: str = "",
    filters: dict[str, str] | None = None,
    namespace: str = "",
) -> mpb.GetKpisRequest:
    """A GetKpis request."""
    return mpb.GetKpisRequest(
        kpis=list(kpis),
        start_time=timestamp(start),
        end_time=timestamp(end),
        granularity=granularity,
        group_by=group_by,
        filters=filters or {},
        namespace=namespace,
    )


def totals(response: mpb.GetKpisResponse, group: str = "") -> dict[str, mpb.KpiValue]:
    """The totals of one group by KPI name (without the version)."""
    for item in response.groups:
        if item.value == group:
            return {value.kpi.partition("@")[0]: value for value in item.totals}
    return {}
