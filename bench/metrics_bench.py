"""Metrics benchmark: throughput, freshness, query latency (vs PostgreSQL), replay, memory.

Starts its own Kafka and SecantusDB on free ports in a temporary folder, runs the metrics
service as a real process, prints the figures, and stops. Each figure is compared in the same
run with its limit or peer:

``throughput``
    ``--tickets`` generated tickets (``crm_testing.histories``, ~15 events each, over
    ``--days``) are produced to a topic of their own. A bare aiokafka consumer reads them all
    and decodes each envelope and payload (the ceiling any Python consumer has); then the
    metrics service consumes the same records from the start (facts, clocks, aggregates,
    checkpoints with offsets). events/s of both and their ratio; the service's resident memory
    with every ticket in memory.
``freshness``
    With the service caught up, a second history is produced at ``--rate`` events/s for
    ``--seconds``; every 250 ms a probe ticket is created for a tenant of its own, and the time
    until ``GetKpis`` counts it is measured (produce → visible).
``query``
    ``GetKpis`` for 10 KPIs over 90 days by day, through gRPC, on a view holding
    ``--query-tickets`` tickets (the history's aggregates merged as partitions of one view,
    so counts scale while the cell structure stays that of a 90-day history), next to the same
    KPIs computed on demand with SQL over a ticket table of as many rows in PostgreSQL
    (``bench/metrics_pg.py``).
``replay``
    ``python -m crm_metrics replay`` into a new namespace from the start of the topic.

    .venv/bin/python bench/metrics_bench.py [--tickets 100000] [--skip-pg] ...
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from google.protobuf.timestamp_pb2 import Timestamp

from crm.metrics.v1 import metrics_pb2 as mpb
from crm.metrics.v1 import metrics_pb2_grpc
from crm.servicedesk.v1 import events_pb2 as ev
from crm.servicedesk.v1 import servicedesk_pb2 as pb
from crm_devstack.procs import free_ports
from crm_devstack.services import ServiceProcess, service_spec
from crm_devstack.stack import Stack, StackConfig
from crm_metrics.api.metrics import MetricsService
from crm_metrics.calendars import CalendarHub
from crm_metrics.domain.clocks import Settings
from crm_metrics.domain.cube import CubeView
from crm_metrics.engine import PartitionEngine
from crm_metrics.settings import MetricsSettings
from crm_metrics.view import KpiViews
from crm_platform.checkpointed import end_offsets
from crm_platform.context import Actor, ActorType, CallContext
from crm_platform.events import Event
from crm_platform.interceptors import ServiceInterceptor
from crm_platform.mongo import MongoStore
from crm_testing.histories import iter_events

TOPIC = "bench-metrics"
PARTITIONS = 6
QUERY_KPIS = [
    "tickets_created",
    "frt_business",
    "resolution_wall",
    "sla_first_response",
    "reopen_rate",
    "first_contact_resolution",
    "csat",
    "nps",
    "customer_wait",
    "perception_gap",
]


def pct(values: Sequence[float], p: float) -> float:
    """The ``p`` quantile (0..1) of sorted ``values`` (nearest rank below)."""
    return values[min(len(values) - 1, int(len(values) * p))] if values else float("nan")


def rss_mb(pid: int) -> float:
    """Resident memory of a process (Linux /proc), MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stamp(at: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(at)
    return out


async def produce(bootstrap: str, topic: str, events: Any, rate: float | None = None) -> int:
    """Publish events (key = contact id, CloudEvents headers); at ``rate``/s if given."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=1024 * 1024
    )
    await producer.start()
    count = 0
    started = time.monotonic()
    try:
        pending = []
        for event in events:
            pending.append(
                await producer.send(
                    topic, event.payload, key=event.key.encode(), headers=event.kafka_headers()
                )
            )
            count += 1
            if rate is not None and count % 50 == 0:
                ahead = count / rate - (time.monotonic() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return count


async def bare_consume(bootstrap: str, topic: str, total: int) -> float:
    """events/s of aiokafka getmany + envelope and payload decode over the whole topic."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=16 * 1024 * 1024,
    )
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        seen = 0
        started = time.perf_counter()
        while seen < total:
            batches = await consumer.getmany(timeout_ms=200, max_records=2000)
            for records in batches.values():
                for record in records:
                    Event.from_kafka(record.key, record.value, list(record.headers)).decode()
                    seen += 1
        return seen / (time.perf_counter() - started)
    finally:
        await consumer.stop()


async def progress(mongo: MongoStore, namespace: str, topic: str) -> int:
    """Records checkpointed so far by a namespace."""
    return sum(
        [
            doc["next_offset"]
            async for doc in mongo.db["metric_offsets"].find({"ns": namespace, "topic": topic})
        ]
    )


async def measure_catch_up(
    mongo: MongoStore, namespace: str, topic: str, total: int, timeout: float
) -> tuple[float, float]:
    """(events/s between 10 % and 100 % checkpointed, seconds to 100 %)."""
    started = time.monotonic()
    t10: tuple[float, int] | None = None
    while True:
        done = await progress(mongo, namespace, topic)
        now = time.monotonic()
        if t10 is None and done >= total * 0.1:
            t10 = (now, done)
        if done >= total:
            assert t10 is not None
            rate = (done - t10[1]) / max(1e-9, now - t10[0])
            return rate, now - started
        if now - started > timeout:
            raise TimeoutError(f"{namespace}: {done}/{total} after {timeout} s")
        await asyncio.sleep(0.25)


async def freshness(
    stub: Any, bootstrap: str, args: argparse.Namespace, rate: float
) -> tuple[list[float], int]:
    """Produce → visible in GetKpis, for probes sent while a stream of ``rate`` events/s flows;
    returns the latencies and how many probes were still not visible after 10 s (the service
    falls behind a load above its throughput, and then stops probing)."""
    tenant = f"probe{int(time.time())}"
    md = (("x-tenant-id", tenant), ("x-actor-id", "bench"), ("x-actor-type", "agent"))
    now = datetime.now(UTC)
    call = CallContext(tenant, Actor(ActorType.SYSTEM, "bench"))
    background = iter_events(
        int(rate),
        int(rate * args.seconds / 14) + 100,
        tenant="fresh",
        start=now - timedelta(days=1),
    )
    load = produce(
        bootstrap,
        TOPIC,
        (e for _, e in zip(range(int(rate * args.seconds)), background, strict=False)),
        rate=rate,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    latencies: list[float] = []
    missed = 0
    request = mpb.GetKpisRequest(
        kpis=["tickets_created"],
        start_time=stamp(now - timedelta(days=1)),
        end_time=stamp(now + timedelta(days=1)),
        granularity=mpb.GRANULARITY_TOTAL,
    )

    async def probe() -> None:
        nonlocal missed
        await asyncio.sleep(2)  # let the load reach its rate
        probes = int((args.seconds - 4) / 0.25)
        for n in range(1, probes + 1):
            ticket = pb.Ticket(
                id=f"probe-{n}",
                tenant_id=tenant,
                type=pb.TICKET_TYPE_INCIDENT,
                channel=pb.CHANNEL_EMAIL,
                priority=pb.PRIORITY_NORMAL,
                status=pb.TICKET_STATUS_NEW,
                subject="probe",
                contact_id=f"probe-contact-{n}",
                create_time=stamp(datetime.now(UTC)),
                version=1,
            )
            event = Event.of(
                ev.TicketCreated(ticket=ticket),
                source="bench",
                subject=ticket.id,
                key=ticket.contact_id,
                call=call,
            )
            sent = time.perf_counter()
            await producer.send_and_wait(
                TOPIC, event.payload, key=event.key.encode(), headers=event.kafka_headers()
            )
            while True:
                reply = await stub.GetKpis(request, metadata=md)
                value = reply.groups[0].totals[0].sum if reply.groups else 0
                if value >= n:
                    latencies.append(time.perf_counter() - sent)
                    break
                if time.perf_counter() - sent > 10:
                    missed = probes - n + 1
                    return
                await asyncio.sleep(0.01)
            await asyncio.sleep(max(0.0, 0.25 - (time.perf_counter() - sent)))

    try:
        await asyncio.gather(load, probe())
    finally:
        await producer.stop()
    return sorted(latencies), missed


def build_view(args: argparse.Namespace) -> tuple[CubeView, int, float]:
    """A view holding --query-tickets tickets: one history's cube merged as many partitions."""
    started = time.perf_counter()
    hub = CalendarHub()
    engine = PartitionEngine("q", 0, Settings(own_brands=frozenset({"acme"})), hub)
    start = datetime(2026, 3, 2, tzinfo=UTC)
    for offset, event in enumerate(
        iter_events(5, args.view_tickets, tenant="acme", start=start, days=90)
    ):
        engine.process(event, event.decode(), offset)
    engine.flush()
    view = CubeView("UTC")
    keys = engine.cube.take_dirty()
    copies = max(1, args.query_tickets // args.view_tickets)
    for partition in range(copies):
        view.sync_from_cube(partition, engine.cube, keys)
    return view, copies * args.view_tickets, time.perf_counter() - started


async def query_latencies(view: CubeView, repeats: int) -> dict[str, list[float]]:
    """GetKpis through gRPC on loopback, served from ``view``."""
    settings = MetricsSettings(
        mongodb_uri="mongodb://127.0.0.1:1", kafka_bootstrap_servers="127.0.0.1:1"
    )
    views = KpiViews(MongoStore("mongodb://127.0.0.1:1", "unused"), "UTC", 3600)
    views.install("live", view)
    service = MetricsService(views, views.store, CalendarHub(), settings)
    service.use_definitions("live", Settings().definitions)
    (port,) = free_ports(1)
    server = grpc.aio.server(interceptors=[ServiceInterceptor()])
    metrics_pb2_grpc.add_MetricsServiceServicer_to_server(service, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    start = datetime(2026, 3, 2, tzinfo=UTC)
    md = (("x-tenant-id", "acme"), ("x-actor-id", "bench"), ("x-actor-type", "agent"))
    requests = {
        "90 days by day, 10 KPIs": mpb.GetKpisRequest(
            kpis=QUERY_KPIS,
            start_time=stamp(start),
            end_time=stamp(start + timedelta(days=90)),
            granularity=mpb.GRANULARITY_DAY,
        ),
        "90 days, channel=email, CSAT/NPS by wait bucket": mpb.GetKpisRequest(
            kpis=["csat", "nps", "customer_wait"],
            start_time=stamp(start),
            end_time=stamp(start + timedelta(days=90)),
            granularity=mpb.GRANULARITY_TOTAL,
            filters={"channel": "email"},
            group_by="wait_bucket",
        ),
        "31 days by hour, 10 KPIs": mpb.GetKpisRequest(
            kpis=QUERY_KPIS,
            start_time=stamp(start),
            end_time=stamp(start + timedelta(days=31)),
            granularity=mpb.GRANULARITY_HOUR,
        ),
    }
    out: dict[str, list[float]] = {}
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = metrics_pb2_grpc.MetricsServiceStub(channel)
            for name, request in requests.items():
                for _ in range(3):
                    await stub.GetKpis(request, metadata=md)
                times = []
                for _ in range(repeats):
                    began = time.perf_counter()
                    await stub.GetKpis(request, metadata=md)
                    times.append((time.perf_counter() - began) * 1000)
                out[name] = sorted(times)
    finally:
        await server.stop(0)
    return out


async def main(args: argparse.Namespace) -> None:
    lines = [
        f"# metrics benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}",
    ]

    def say(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    parts = {part.strip() for part in args.only.split(",") if part.strip()}
    home = Path(tempfile.mkdtemp(prefix="crm-bench-", dir=os.environ.get("CRM_HOME")))
    kafka_port, controller_port, mongo_port, metrics_port = free_ports(4)
    config = StackConfig(
        home=home,
        kafka_port=kafka_port,
        kafka_controller_port=controller_port,
        mongodb_port=mongo_port,
        service_ports={"metrics": metrics_port},
    )
    print(f"starting Kafka and SecantusDB under {home} ...", flush=True)
    stack = Stack(config, services=[])
    if parts & {"throughput", "freshness", "replay"}:
        await service_parts(args, parts, stack, config, metrics_port, say)
    if "query" in parts:
        await query_part(args, say)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"peak memory of this process: {peak} MB")
    shutil.rmtree(config.data_dir, ignore_errors=True)
    print("\n".join(lines))


async def service_parts(
    args: argparse.Namespace,
    parts: set[str],
    stack: Stack,
    config: StackConfig,
    metrics_port: int,
    say: Callable[[str], None],
) -> None:
    """Throughput (always), then freshness and replay if asked, on a real metrics process."""
    async with stack:
        bootstrap = stack.kafka.bootstrap_servers
        await stack.kafka.ensure_topics([TOPIC, TOPIC + ".dlq"], PARTITIONS)
        history_start = datetime(2026, 3, 2, tzinfo=UTC)
        began = time.perf_counter()
        total = await produce(
            bootstrap,
            TOPIC,
            iter_events(1, args.tickets, start=history_start, days=args.days),
        )
        say(
            f"produced {total:,} events of {args.tickets:,} tickets ({args.days:.0f} days) in "
            f"{time.perf_counter() - began:.0f} s"
        )
        ceiling = await bare_consume(bootstrap, TOPIC, total)
        say(f"bare aiokafka consume + protobuf decode: {ceiling:,.0f} events/s")

        env = {
            "METRICS_TOPICS": TOPIC,
            "OWN_BRANDS": "acme",
            "VIEW_REFRESH_SECONDS": "0.2",
            "CHECKPOINT_INTERVAL_SECONDS": "0.5",
        }
        process = ServiceProcess(
            service_spec("metrics"),
            port=metrics_port,
            mongodb_uri=stack.secantus.uri,
            kafka_bootstrap_servers=bootstrap,
            log_dir=config.logs_dir,
            env=env,
        )
        mongo = MongoStore(stack.secantus.uri, "crm_metrics", app_name="bench")
        began = time.monotonic()
        await process.start(120)
        assert process.pid is not None
        cpu_before = cpu_seconds(process.pid)
        rate, seconds = await measure_catch_up(mongo, "live", TOPIC, total, args.timeout)
        cpu = cpu_seconds(process.pid) - cpu_before
        say(
            f"metrics service: {rate:,.0f} events/s sustained (10 %→100 %), all {total:,} in "
            f"{seconds:.0f} s after start; ratio to the bare loop {rate / ceiling:.2f}; "
            f"service CPU {cpu / total * 1e6:.0f} µs/event; target ≥ 50,000 events/s"
        )
        say(
            f"memory: {rss_mb(process.pid):,.0f} MB resident with {args.tickets:,} tickets' "
            f"facts and aggregates in memory "
            f"(≈ {rss_mb(process.pid) * 1024 / args.tickets:.1f} KB per ticket)"
        )

        async with grpc.aio.insecure_channel(process.address) as channel:
            stub = metrics_pb2_grpc.MetricsServiceStub(channel)
            for rate in (args.slow_rate, args.rate) if "freshness" in parts else ():
                await measure_catch_up(
                    mongo,
                    "live",
                    TOPIC,
                    sum((await end_offsets(bootstrap, [TOPIC])).values()),
                    args.timeout,
                )
                latencies, missed = await freshness(stub, bootstrap, args, rate)
                shown = (
                    f"p50 {pct(latencies, 0.5) * 1000:.0f} ms, "
                    f"p99 {pct(latencies, 0.99) * 1000:.0f} ms, "
                    f"max {latencies[-1] * 1000:.0f} ms over {len(latencies)} probes"
                    if latencies
                    else "no probe visible"
                )
                if missed:
                    shown += f"; {missed} probes not visible within 10 s (falling behind)"
                say(
                    f"freshness at {rate:,.0f} events/s: produce → visible in GetKpis {shown}; "
                    "target p99 < 1 s at 2,000 events/s"
                )
        if "replay" in parts:
            await replay_part(args, bootstrap, stack, env, say)
        await process.stop()
        await mongo.close()


async def replay_part(
    args: argparse.Namespace,
    bootstrap: str,
    stack: Stack,
    env: dict[str, str],
    say: Callable[[str], None],
) -> None:
    """``python -m crm_metrics replay`` into a new namespace; seconds next to the target."""
    ends = await end_offsets(bootstrap, [TOPIC])
    replayed_total = sum(ends.values())
    began = time.monotonic()
    replay = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "crm_metrics",
        "replay",
        "--namespace",
        "bench-replay",
        "--definitions",
        "frt_wall@2,frt_business@2",
        env={
            **os.environ,
            **env,
            "MONGODB_URI": stack.secantus.uri,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await replay.communicate()
    replay_seconds = time.monotonic() - began
    tail = output.decode().strip().splitlines()[-1:] or [""]
    per_million = replay_seconds / args.tickets * 1_000_000
    say(
        f"replay of {replayed_total:,} events ({args.tickets:,} tickets) into a new "
        f"namespace: {replay_seconds:.0f} s ({replayed_total / replay_seconds:,.0f} "
        f"events/s) → ≈ {per_million:,.0f} s for 1,000,000 tickets; target < 60 s "
        f"[{tail[0]}]"
    )


async def query_part(args: argparse.Namespace, say: Callable[[str], None]) -> None:
    """GetKpis through gRPC on a 1,000,000-ticket view, next to PostgreSQL."""
    view, tickets, build_seconds = build_view(args)
    say(
        f"query view: {tickets:,} tickets over 90 days ({args.view_tickets:,}-ticket history "
        f"merged as {tickets // args.view_tickets} partitions), built in {build_seconds:.0f} s"
    )
    results = await query_latencies(view, args.repeats)
    for name, times in results.items():
        say(
            f"GetKpis {name}: p50 {pct(times, 0.5):.1f} ms, p99 {pct(times, 0.99):.1f} ms "
            f"over {len(times)}; target p99 < 50 ms"
        )
    if not args.skip_pg:
        from metrics_pg import prepare

        def pg_run() -> dict[str, Any]:
            with prepare(tickets, 90, 7) as pg:
                return pg.result(pg.query_latencies(args.pg_repeats))

        pg = await asyncio.to_thread(pg_run)
        say(
            f"PostgreSQL {pg['system']}, the same dashboard by SQL over {tickets:,} ticket rows "
            f"({pg['statements_per_dashboard']} statements): p50 {pg['p50_ms']:,.0f} ms, p99 "
            f"{pg['p99_ms']:,.0f} ms over {pg['repeats']}; load {pg['load_s']:.0f} s, "
            f"{pg['total_bytes'] / 2**20:,.0f} MiB"
        )
        main_p99 = pct(results["90 days by day, 10 KPIs"], 0.99)
        if "p99_ms" in pg:
            say(f"ratio PostgreSQL p99 / GetKpis p99: {pg['p99_ms'] / main_p99:,.0f}x")


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--days", type=float, default=90.0)
    parser.add_argument("--rate", type=float, default=2000.0, help="freshness load, events/s")
    parser.add_argument("--slow-rate", type=float, default=500.0, help="a sustainable load")
    parser.add_argument("--seconds", type=float, default=30.0, help="freshness duration")
    parser.add_argument("--query-tickets", type=int, default=1_000_000)
    parser.add_argument("--view-tickets", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--pg-repeats", type=int, default=10)
    parser.add_argument("--skip-pg", action="store_true")
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument(
        "--only",
        default="throughput,freshness,replay,query",
        help="comma-separated parts to run (throughput always runs first when a later "
        "service part needs it)",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse(sys.argv[1:])))
