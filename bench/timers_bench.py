"""Durable timers benchmark: lateness (fired time - due time) with many pending timers.

Starts its own Kafka and SecantusDB on free ports in a temporary folder, then in this process a
timer worker and an outbox relay (as a service runs them). Schedules N timers (in transactions
of ``--schedule-batch``) due over ``--window`` seconds starting ``--lead`` seconds from now,
rounded to ``--granularity`` seconds so that many are due at the same moments; every firing
emits one event. Reports lateness (time - due time) when the firing committed (the worker's
``crm.timers.lateness`` histogram, 10 ms buckets), when the firing transaction marked the timer
(its ``fired_at``) and when its event arrived on Kafka (a tailing consumer); then the same for a
burst of ``--burst`` timers all due at one moment, and the fire throughput in that burst.

    .venv/bin/python bench/timers_bench.py [--timers N] [--lead S] [--window S]
                                           [--granularity S] [--burst N] [--no-sync-on-commit]

``CRM_SECANTUS_BIN=/path/to/secantusd-rs`` chooses the database server.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar

from aiokafka import AIOKafkaConsumer
from google.protobuf import wrappers_pb2
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from pymongo.asynchronous.client_session import AsyncClientSession

from crm_devstack.procs import free_ports
from crm_devstack.secantus import secantus_executable
from crm_devstack.stack import Stack, StackConfig
from crm_platform.context import current_call
from crm_platform.events import Event
from crm_platform.mongo import MongoStore
from crm_platform.outbox import Outbox, OutboxRelay, RelayLease
from crm_platform.timers import Timer, TimerStore, TimerWorker

TOPIC = "bench.timers.v1"
HEADER = (
    "| measure | timers | p50 ms | p90 ms | p99 ms | max ms | mean ms |\n"
    "|---|---|---|---|---|---|---|"
)


@dataclass
class Lateness:
    """Lateness figures of one measure, in milliseconds."""

    name: str
    values_ms: list[float]

    def row(self) -> str:
        values = sorted(self.values_ms)
        if not values:
            return f"| {self.name} | 0 | | | | | |"

        def pct(p: float) -> float:
            return values[min(len(values) - 1, int(len(values) * p))]

        mean = sum(values) / len(values)
        return (
            f"| {self.name} | {len(values)} | {pct(0.5):.0f} | {pct(0.9):.0f} | "
            f"{pct(0.99):.0f} | {values[-1]:.0f} | {mean:.0f} |"
        )


async def fire(timer: Timer, session: AsyncClientSession) -> Sequence[Event]:
    """What an SLA breach handler emits: one event, its time the due time."""
    return [
        Event.of(
            wrappers_pb2.StringValue(value=timer.timer_id),
            source="/crm/bench",
            subject=f"tickets/{timer.payload['ticket']}",
            key=str(timer.payload["customer"]),
            call=current_call(),
            time=timer.due_at,
        )
    ]


class KafkaTail:
    """Notes when each event (by id) first arrives on the topic, and its ``ce_time``."""

    def __init__(self, bootstrap: str) -> None:
        self.consumer = AIOKafkaConsumer(
            TOPIC, bootstrap_servers=bootstrap, auto_offset_reset="earliest", fetch_max_wait_ms=5
        )
        self.arrived: dict[bytes, tuple[float, datetime]] = {}  # id -> (arrival, due)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.consumer.start()
        self._task = asyncio.create_task(self._tail())

    async def _tail(self) -> None:
        while True:
            batch = await self.consumer.getmany(timeout_ms=50, max_records=5000)
            now = time.time()
            for records in batch.values():
                for record in records:
                    headers = dict(record.headers)
                    event_id = headers["ce_id"]
                    if event_id not in self.arrived:
                        due = datetime.fromisoformat(headers["ce_time"].decode())
                        self.arrived[event_id] = (now, due)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self.consumer.stop()

    def lateness_ms(self, since: float) -> list[float]:
        return [
            (arrival - due.timestamp()) * 1000
            for arrival, due in self.arrived.values()
            if due.timestamp() >= since
        ]


async def schedule(
    store: MongoStore,
    timers: TimerStore,
    worker: TimerWorker,
    new: list[Timer],
    batch: int,
) -> float:
    """Schedule ``new`` in transactions of ``batch`` timers; returns the seconds it took."""
    started = time.perf_counter()
    for i in range(0, len(new), batch):
        chunk = new[i : i + batch]

        async def work(session: AsyncClientSession, chunk: list[Timer] = chunk) -> None:
            await timers.schedule(chunk, session)

        await store.in_transaction(work)
        worker.notify(min(timer.due_at for timer in chunk))
    return time.perf_counter() - started


def make_timers(
    prefix: str, count: int, start: datetime, window: float, granularity: float
) -> list[Timer]:
    rng = random.Random(42)
    new = []
    for i in range(count):
        offset = rng.uniform(0, window)
        if granularity > 0:
            offset = round(offset / granularity) * granularity
        new.append(
            Timer(
                f"{prefix}{i}:resolution:breach",
                f"tenant{i % 10}",
                start + timedelta(seconds=offset),
                "sla.breach",
                {"ticket": f"{prefix}{i}", "customer": f"c{i % 5000}"},
            )
        )
    return new


async def fired_lateness_ms(timers: TimerStore, prefix: str) -> list[float]:
    """``fired_at - due_at`` of the timers named ``prefix...`` (``fired_at``: when the firing
    transaction marked them, before the handlers ran and it committed)."""
    docs = await timers.collection.find(
        {"timer_id": {"$regex": f"^{prefix}"}}, {"due_at": 1, "fired_at": 1}
    ).to_list(None)
    missing = sum(1 for doc in docs if "fired_at" not in doc)
    if missing:
        raise RuntimeError(f"{missing} timers did not fire")
    return [(doc["fired_at"] - doc["due_at"]).total_seconds() * 1000 for doc in docs]


class CommitLateness:
    """The worker's own ``crm.timers.lateness`` histogram (commit time - due time), read
    through an in-memory reader with 10 ms buckets."""

    BOUNDS: ClassVar[list[float]] = [i / 100 for i in range(1, 6001)]  # 10 ms .. 60 s

    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        view = View(
            instrument_name="crm.timers.lateness",
            aggregation=ExplicitBucketHistogramAggregation(boundaries=self.BOUNDS),
        )
        metrics.set_meter_provider(MeterProvider(metric_readers=[self.reader], views=[view]))

    def counts(self) -> list[int]:
        """Cumulative count per bucket so far (the last bucket: beyond the bounds)."""
        totals = [0] * (len(self.BOUNDS) + 1)
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name != "crm.timers.lateness":
                        continue
                    for point in metric.data.data_points:
                        assert isinstance(point, HistogramDataPoint)
                        for i, n in enumerate(point.bucket_counts):
                            totals[i] += n
        return totals

    def since(self, name: str, before: list[int]) -> Lateness:
        """The lateness recorded since ``before`` (each value: its bucket's upper bound)."""
        values: list[float] = []
        for i, (now, then) in enumerate(zip(self.counts(), before, strict=True)):
            bound = self.BOUNDS[i] if i < len(self.BOUNDS) else float("inf")
            values += [bound * 1000] * (now - then)
        return Lateness(name, values)


async def measure(
    phase: str,
    prefix: str,
    new: list[Timer],
    args: argparse.Namespace,
    parts: tuple[MongoStore, TimerStore, TimerWorker, KafkaTail, CommitLateness],
) -> list[Lateness]:
    """Schedule ``new``, wait until all their events are on Kafka, return the lateness."""
    store, timers, worker, tail, commits = parts
    before = commits.counts()
    first_due = min(timer.due_at for timer in new)
    expected = len(tail.arrived) + len(new)
    took = await schedule(store, timers, worker, new, args.schedule_batch)
    print(
        f"{phase}: scheduled {len(new)} timers in {took:.1f}s ({len(new) / took:,.0f}/s)",
        flush=True,
    )
    if datetime.now(UTC) > first_due:
        print("WARNING: scheduling outlasted the lead time; the first timers start late")
    async with asyncio.timeout((max(t.due_at for t in new) - first_due).total_seconds() + 900):
        while len(tail.arrived) < expected:
            await asyncio.sleep(0.5)
    results = [
        commits.since(f"{phase}: committed - due", before),
        Lateness(f"{phase}: fired_at - due", await fired_lateness_ms(timers, prefix)),
        Lateness(f"{phase}: on Kafka - due", tail.lateness_ms(first_due.timestamp())),
    ]
    for result in results:
        print(result.row(), flush=True)
    return results


async def main(args: argparse.Namespace) -> None:
    commits = CommitLateness()
    home = Path(tempfile.mkdtemp(prefix="crm-bench-", dir=os.environ.get("CRM_HOME")))
    kafka_port, controller_port, mongo_port = free_ports(3)
    config = StackConfig(
        home=home,
        kafka_port=kafka_port,
        kafka_controller_port=controller_port,
        mongodb_port=mongo_port,
        service_ports={},
        secantus_sync_on_commit=args.sync_on_commit,
    )
    print(f"starting Kafka and SecantusDB under {home} ...", flush=True)
    results: list[Lateness] = []
    async with Stack(config, services=[]) as stack:
        await stack.kafka.ensure_topics([TOPIC])
        store = MongoStore(stack.secantus.uri, "bench_timers")
        timers = TimerStore(store.db)
        await timers.ensure_indexes()
        outbox = Outbox(store.db, TOPIC)
        relay = OutboxRelay(
            outbox,
            RelayLease(store.db, "bench-relay", ttl_seconds=15),
            bootstrap_servers=stack.kafka.bootstrap_servers,
            client_id="bench-relay",
        )
        worker = TimerWorker(
            store, timers, outbox, fire, lease_name="bench-timers", batch_size=args.batch
        )
        tail = KafkaTail(stack.kafka.bootstrap_servers)
        await tail.start()
        relay.start()
        worker.start()
        parts = (store, timers, worker, tail, commits)
        try:
            start = datetime.now(UTC) + timedelta(seconds=args.lead)
            spread = make_timers("t", args.timers, start, args.window, args.granularity)
            print(HEADER)
            results += await measure("spread", "t", spread, args, parts)
            if args.burst:
                moment = datetime.now(UTC) + timedelta(seconds=args.burst_lead)
                burst = make_timers("b", args.burst, moment, 0, 0)
                results += await measure(f"burst of {args.burst}", "b", burst, args, parts)
        finally:
            await worker.stop()
            await relay.stop()
            await tail.stop()
            await store.close()

    print()
    print(f"machine: {platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"database: {secantus_executable()} (sync on commit: {args.sync_on_commit})")
    print(
        f"{args.timers} timers due {args.lead:.0f}-{args.lead + args.window:.0f}s after the "
        f"start, due times rounded to {args.granularity}s; a burst of {args.burst} due at one "
        f"moment; worker batch {args.batch}"
    )
    print()
    print(HEADER)
    for result in results:
        print(result.row())
    if args.burst:
        burst_fired = results[-2]
        print(
            f"burst fire throughput: {args.burst / (max(burst_fired.values_ms) / 1000):,.0f} "
            "timers/s (burst size / lateness of the last fired_at)"
        )


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--timers", type=int, default=100_000)
    parser.add_argument("--lead", type=float, default=60.0, help="seconds until the first due")
    parser.add_argument("--window", type=float, default=60.0, help="seconds the dues spread over")
    parser.add_argument("--granularity", type=float, default=0.5, help="due times rounded to")
    parser.add_argument("--batch", type=int, default=200, help="the worker's batch size")
    parser.add_argument("--schedule-batch", type=int, default=1000)
    parser.add_argument("--burst", type=int, default=10_000)
    parser.add_argument("--burst-lead", type=float, default=10.0)
    parser.add_argument("--no-sync-on-commit", dest="sync_on_commit", action="store_false")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse()))
