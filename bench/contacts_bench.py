"""Contacts service benchmark: gRPC create/get throughput and latency, and outbox relay lag.

Starts its own stack (Kafka, SecantusDB, the contacts service as a real process) on free ports
in a temporary folder, drives it over gRPC from this process, prints the figures, and stops.

    .venv/bin/python bench/contacts_bench.py [--creates N] [--gets N] [--concurrency C]
                                             [--rate R] [--seconds S]

``CRM_SECANTUS_BIN=/path/to/secantusd-rs`` runs the same benchmark on the Rust server.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
from aiokafka import AIOKafkaConsumer

from crm.contacts.v1 import contacts_pb2 as pb
from crm.contacts.v1 import contacts_pb2_grpc
from crm_devstack.procs import free_ports
from crm_devstack.secantus import secantus_executable
from crm_devstack.stack import Stack, StackConfig

HEADER = (
    "| workload | calls | throughput | p50 ms | p99 ms | mean ms | service CPU ms/call |\n"
    "|---|---|---|---|---|---|---|"
)
METADATA = (("x-tenant-id", "bench"), ("x-actor-id", "bench"), ("x-actor-type", "integration"))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Figures:
    """Throughput and latency of one workload, and the service's CPU time per call."""

    name: str
    count: int
    seconds: float
    latencies_ms: list[float]
    service_cpu_ms: float | None = None

    def row(self) -> str:
        lat = sorted(self.latencies_ms)
        p50 = lat[len(lat) // 2]
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        rate = self.count / self.seconds
        cpu = "" if self.service_cpu_ms is None else f"{self.service_cpu_ms:.2f}"
        return (
            f"| {self.name} | {self.count} | {rate:,.0f}/s | {p50:.1f} | {p99:.1f} | "
            f"{statistics.fmean(lat):.1f} | {cpu} |"
        )


def _contact(i: int) -> pb.CreateContactRequest:
    return pb.CreateContactRequest(
        contact=pb.Contact(
            given_name=f"Bench{i}",
            family_name="Load",
            segments=["bench"],
            tier=pb.VALUE_TIER_SILVER,
            identities=[
                pb.Identity(kind=pb.IDENTITY_KIND_EMAIL, value=f"{uuid.uuid4().hex}@ex.com")
            ],
            custom_attributes={"source": "bench"},
        )
    )


async def closed_loop(
    name: str, total: int, concurrency: int, call: Callable[[int], Awaitable[object]]
) -> Figures:
    """``concurrency`` callers issue ``total`` calls back to back."""
    latencies: list[float] = []
    counter = iter(range(total))

    async def worker() -> None:
        for i in counter:
            started = time.perf_counter()
            await call(i)
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Figures(name, total, time.perf_counter() - started, latencies)


async def open_loop(
    name: str, rate: float, seconds: float, call: Callable[[int], Awaitable[object]]
) -> Figures:
    """Calls started at a fixed rate whatever the latency (no coordinated omission)."""
    latencies: list[float] = []
    tasks = []

    async def one(i: int, scheduled: float) -> None:
        await call(i)
        latencies.append((time.perf_counter() - scheduled) * 1000)

    started = time.perf_counter()
    total = int(rate * seconds)
    for i in range(total):
        scheduled = started + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, scheduled)))
    await asyncio.gather(*tasks)
    return Figures(name, total, time.perf_counter() - started, latencies)


async def main(args: argparse.Namespace) -> None:
    home = Path(tempfile.mkdtemp(prefix="crm-bench-", dir=os.environ.get("CRM_HOME")))
    kafka_port, controller_port, mongo_port, contacts_port = free_ports(4)
    config = StackConfig(
        home=home,
        kafka_port=kafka_port,
        kafka_controller_port=controller_port,
        mongodb_port=mongo_port,
        service_ports={"contacts": contacts_port},
    )
    print(f"starting the stack under {home} ...", flush=True)
    async with Stack(config, services=["contacts"]) as stack:
        address = stack.services["contacts"].address
        async with grpc.aio.insecure_channel(address) as channel:
            stub = contacts_pb2_grpc.ContactsServiceStub(channel)
            for i in range(50):  # warm up connections, indexes, JIT-less caches
                await stub.CreateContact(_contact(i), metadata=METADATA)
            ids: list[str] = []

            async def create(i: int) -> None:
                reply = await stub.CreateContact(_contact(i), metadata=METADATA)
                ids.append(reply.contact.id)

            async def get(i: int) -> None:
                await stub.GetContact(pb.GetContactRequest(id=ids[i % len(ids)]), metadata=METADATA)

            pid = stack.services["contacts"].pid
            assert pid is not None

            async def measured(run: Awaitable[Figures]) -> Figures:
                before = cpu_seconds(pid)
                figures = await run
                figures.service_cpu_ms = (cpu_seconds(pid) - before) * 1000 / figures.count
                print(figures.row(), flush=True)
                return figures

            print(HEADER)
            results = [
                await measured(closed_loop("create", args.creates, args.concurrency, create))
            ]
            results.append(await measured(closed_loop("get", args.gets, args.concurrency, get)))
            results.append(
                await measured(open_loop(f"get @ {args.rate:.0f}/s", args.rate, args.seconds, get))
            )
            for rate in sorted({args.relay_rate, args.rate}):
                before = cpu_seconds(pid)
                created, lags = await paced_creates_with_relay_lag(
                    stub, stack.kafka.bootstrap_servers, rate, args.seconds
                )
                created.service_cpu_ms = (cpu_seconds(pid) - before) * 1000 / created.count
                results += [created, lags]
                print(created.row(), flush=True)
                print(lags.row(), flush=True)

    print()
    print(f"machine: {platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"database: {secantus_executable()}")
    print(
        f"concurrency {args.concurrency} (closed loop), open loop {args.rate}/s for {args.seconds}s"
    )
    print()
    print(HEADER)
    for figures in results:
        print(figures.row())


async def paced_creates_with_relay_lag(
    stub: contacts_pb2_grpc.ContactsServiceAsyncStub, bootstrap: str, rate: float, seconds: float
) -> tuple[Figures, Figures]:
    """Creates at a fixed rate; relay lag = the event's arrival on Kafka (seen by a tailing
    consumer) minus the moment the create's response arrived (the commit)."""
    committed: dict[str, float] = {}
    arrived: dict[str, float] = {}
    consumer = AIOKafkaConsumer(
        "crm.contacts.v1",
        bootstrap_servers=bootstrap,
        auto_offset_reset="latest",
        fetch_max_wait_ms=5,
    )
    await consumer.start()
    await consumer.seek_to_end()

    async def tail() -> None:
        while True:
            batch = await consumer.getmany(timeout_ms=50)
            now = time.perf_counter()
            for records in batch.values():
                for record in records:
                    if record.key is not None:
                        arrived.setdefault(record.key.decode(), now)

    tailer = asyncio.create_task(tail())

    async def create(i: int) -> None:
        reply = await stub.CreateContact(_contact(i), metadata=METADATA)
        committed[reply.contact.id] = time.perf_counter()

    try:
        created = await open_loop(f"create @ {rate:.0f}/s", rate, seconds, create)
        async with asyncio.timeout(120):
            while not set(committed) <= set(arrived):
                await asyncio.sleep(0.05)
    finally:
        tailer.cancel()
        await consumer.stop()
    lags = [max(0.0, arrived[k] - committed[k]) * 1000 for k in committed]
    return created, Figures(f"relay lag @ {rate:.0f}/s creates", len(lags), seconds, lags)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--creates", type=int, default=3000)
    parser.add_argument("--gets", type=int, default=6000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--relay-rate", type=float, default=100.0)
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse()))
