"""Gateway benchmark: a read and a write through the gateway next to the same call made directly
to the service, in the same run; the JSON/HTTP read; and GetCustomer360 with all backends up.

Starts its own stack (Kafka, SecantusDB, contacts, service desk, metrics and the gateway as real
processes) on free ports in a temporary folder, drives it from this process, prints the figures
as a Markdown table, and stops.

    .venv/bin/python bench/gateway_bench.py [--calls N] [--concurrency C] [--views N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import grpc

from crm.contacts.v1 import contacts_pb2 as cpb
from crm.contacts.v1 import contacts_pb2_grpc
from crm.gateway.v1 import gateway_pb2 as gpb
from crm.gateway.v1 import gateway_pb2_grpc
from crm.servicedesk.v1 import servicedesk_pb2 as spb
from crm_devstack.procs import free_ports
from crm_devstack.stack import Stack, StackConfig

TENANT = "bench"
DIRECT = (("x-tenant-id", TENANT), ("x-actor-id", "bench"), ("x-actor-type", "integration"))
HEADER = "| workload | path | calls | calls/s | p50 ms | p99 ms |\n|---|---|---|---|---|---|"


@dataclass
class Figures:
    workload: str
    path: str
    seconds: float
    latencies_ms: list[float]

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def row(self) -> str:
        rate = len(self.latencies_ms) / self.seconds
        return (
            f"| {self.workload} | {self.path} | {len(self.latencies_ms)} | {rate:,.0f} "
            f"| {self.quantile(0.5):.2f} | {self.quantile(0.99):.2f} |"
        )


async def measure(
    workload: str, path: str, calls: int, concurrency: int, call: Callable[[int], Awaitable[Any]]
) -> Figures:
    """``calls`` calls, ``concurrency`` at a time; latency of each."""
    latencies: list[float] = []
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < calls:
            index = next_index
            next_index += 1
            began = time.perf_counter()
            await call(index)
            latencies.append((time.perf_counter() - began) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Figures(workload, path, time.perf_counter() - started, latencies)


def contact(index: int) -> cpb.CreateContactRequest:
    return cpb.CreateContactRequest(
        contact=cpb.Contact(
            given_name="Bench",
            family_name=f"Mark{index}",
            identities=[
                cpb.Identity(
                    kind=cpb.IDENTITY_KIND_EMAIL,
                    value=f"b{index}-{uuid.uuid4().hex[:8]}@example.com",
                    primary=True,
                )
            ],
        )
    )


async def main(args: argparse.Namespace) -> None:
    home = Path(tempfile.mkdtemp(prefix="crm-bench-", dir=os.environ.get("CRM_HOME")))
    ports = free_ports(9)
    config = StackConfig(
        home=home,
        kafka_port=ports[0],
        kafka_controller_port=ports[1],
        mongodb_port=ports[2],
        service_ports={
            "contacts": ports[3],
            "servicedesk": ports[4],
            "metrics": ports[5],
            "gateway": ports[6],
        },
        http_ports={"gateway": ports[7]},
    )
    print(f"starting the stack under {home} ...", flush=True)
    env = {"RATE_LIMIT": "1000000/second"}
    async with Stack(config, service_env=env) as stack:
        gateway = stack.gateway
        assert gateway is not None
        token = stack.credentials.token(TENANT, "admin", "bench")
        via_gateway = (("authorization", f"Bearer {token}"),)
        rows: list[Figures] = []
        async with (
            grpc.aio.insecure_channel(stack.services["contacts"].address) as direct_channel,
            grpc.aio.insecure_channel(gateway.address) as gateway_channel,
            aiohttp.ClientSession() as http,
        ):
            direct = contacts_pb2_grpc.ContactsServiceStub(direct_channel)
            through = gateway_pb2_grpc.ContactsServiceStub(gateway_channel)
            created = [
                (await through.CreateContact(contact(i), metadata=via_gateway)).contact.id
                for i in range(50)
            ]  # also warms both paths up
            for i in range(20):
                await direct.GetContact(cpb.GetContactRequest(id=created[i]), metadata=DIRECT)

            def read_direct(i: int) -> Awaitable[Any]:
                request = cpb.GetContactRequest(id=created[i % len(created)])
                return direct.GetContact(request, metadata=DIRECT)

            def read_gateway(i: int) -> Awaitable[Any]:
                request = cpb.GetContactRequest(id=created[i % len(created)])
                return through.GetContact(request, metadata=via_gateway)

            async def read_http(i: int) -> None:
                async with http.post(
                    f"{gateway.http_url}/v1/ContactsService/GetContact",
                    data=json.dumps({"id": created[i % len(created)]}),
                    headers={
                        "Authorization": f"Bearer {token}",
                        "Content-Type": "application/json",
                    },
                ) as response:
                    assert response.status == 200, await response.text()
                    await response.read()

            def write_direct(i: int) -> Awaitable[Any]:
                return direct.CreateContact(contact(10_000 + i), metadata=DIRECT)

            def write_gateway(i: int) -> Awaitable[Any]:
                return through.CreateContact(contact(20_000 + i), metadata=via_gateway)

            calls, conc = args.calls, args.concurrency
            rows.append(await measure("GetContact", "direct", calls, conc, read_direct))
            rows.append(await measure("GetContact", "gateway gRPC", calls, conc, read_gateway))
            rows.append(await measure("GetContact", "gateway HTTP", calls, conc, read_http))
            writes = max(100, calls // 4)
            rows.append(await measure("CreateContact", "direct", writes, conc, write_direct))
            rows.append(await measure("CreateContact", "gateway gRPC", writes, conc, write_gateway))

            # The customer view: a customer with a few tickets, all backends up.
            tickets = gateway_pb2_grpc.TicketServiceStub(gateway_channel)
            for _ in range(3):
                await tickets.CreateTicket(
                    spb.CreateTicketRequest(
                        ticket=spb.Ticket(
                            type=spb.TICKET_TYPE_INFORMATION_REQUEST,
                            channel=spb.CHANNEL_EMAIL,
                            subject="Where is my order?",
                            contact_id=created[0],
                        )
                    ),
                    metadata=via_gateway,
                )
            customers = gateway_pb2_grpc.CustomerServiceStub(gateway_channel)
            request = gpb.GetCustomer360Request(contact_id=created[0])
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # until the metrics service has the tickets
                reply = await customers.GetCustomer360(request, metadata=via_gateway)
                if all(s.status == gpb.SECTION_STATUS_OK for s in reply.sections):
                    break
                await asyncio.sleep(0.5)
            incomplete: dict[str, int] = {}

            async def view(_: int) -> None:
                reply = await customers.GetCustomer360(request, metadata=via_gateway)
                for section in reply.sections:
                    if section.status != gpb.SECTION_STATUS_OK:
                        name = gpb.SectionStatus.Name(section.status)
                        what = f"{section.name} {name} ({section.detail})"
                        incomplete[what] = incomplete.get(what, 0) + 1

            rows.append(await measure("GetCustomer360", "gateway gRPC", args.views, 4, view))

        print(f"\nmachine: {platform.node()} ({os.cpu_count()} CPUs), concurrency {conc}")
        print(HEADER)
        for figures in rows:
            print(figures.row())
        for workload in ("GetContact", "CreateContact"):
            direct_f = next(f for f in rows if f.workload == workload and f.path == "direct")
            gateway_f = next(f for f in rows if f.workload == workload and f.path == "gateway gRPC")
            ratio = (len(gateway_f.latencies_ms) / gateway_f.seconds) / (
                len(direct_f.latencies_ms) / direct_f.seconds
            )
            print(
                f"{workload}: gateway overhead p50 "
                f"{gateway_f.quantile(0.5) - direct_f.quantile(0.5):+.2f} ms, p99 "
                f"{gateway_f.quantile(0.99) - direct_f.quantile(0.99):+.2f} ms, throughput "
                f"{ratio:.2f}x of direct"
            )
        print(f"GetCustomer360 sections not OK (of {args.views} calls): {incomplete or 'none'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--views", type=int, default=300)
    asyncio.run(main(parser.parse_args()))
