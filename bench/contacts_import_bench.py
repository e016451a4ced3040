"""Contacts import benchmark: rows/s through ``ContactImportService.ImportContacts`` vs a bare
insert loop of the same documents on the same database, in the same run.

Starts its own stack (Kafka, SecantusDB, the contacts service as a process), imports
``CRM_IMPORT_ROWS`` CSV contact rows (default 100,000) in one stream, then inserts as many
contact documents with ``insert_many`` (batches of 1,000) into a scratch collection.

    CRM_IMPORT_ROWS=20000 .venv/bin/python bench/contacts_import_bench.py
"""

from __future__ import annotations

import asyncio
import os
import platform
import tempfile
import time
import uuid
from pathlib import Path

import grpc
from pymongo import AsyncMongoClient

from crm.contacts.v1 import imports_pb2 as pb
from crm.contacts.v1 import imports_pb2_grpc
from crm_devstack.procs import free_ports
from crm_devstack.stack import Stack, StackConfig

METADATA = (("x-tenant-id", "bench"), ("x-actor-id", "bench"), ("x-actor-type", "integration"))
HEADER = "external_id,given_name,family_name,emails,tier"


def _rows(n: int, tag: str) -> list[pb.ImportContactsRequest]:
    items = [
        pb.ImportContactsRequest(
            header=pb.ImportHeader(
                format=pb.IMPORT_FORMAT_CSV, kind=pb.IMPORT_RECORD_KIND_CONTACT, csv_header=HEADER
            )
        )
    ]
    items += [
        pb.ImportContactsRequest(
            row=pb.ImportRow(line=i + 2, text=f"{tag}-{i},Given{i},Family,{tag}{i}@x.io,gold")
        )
        for i in range(n)
    ]
    return items


async def main() -> None:
    """Run the import and the bare insert loop; print the figures."""
    n = int(os.environ.get("CRM_IMPORT_ROWS", "100000"))
    home = Path(tempfile.mkdtemp(prefix="crm-bench-", dir=os.environ.get("CRM_HOME")))
    kafka_port, controller_port, mongo_port, contacts_port = free_ports(4)
    config = StackConfig(
        home=home,
        kafka_port=kafka_port,
        kafka_controller_port=controller_port,
        mongodb_port=mongo_port,
        service_ports={"contacts": contacts_port},
    )
    async with Stack(config, services=["contacts"]) as stack:
        address = stack.services["contacts"].address
        options = [("grpc.max_receive_message_length", -1)]
        async with grpc.aio.insecure_channel(address, options=options) as channel:
            stub = imports_pb2_grpc.ContactImportServiceStub(channel)
            await stub.ImportContacts(iter(_rows(20, "warm")), metadata=METADATA)
            tag = uuid.uuid4().hex[:6]
            started = time.perf_counter()
            reply = await stub.ImportContacts(iter(_rows(n, tag)), metadata=METADATA)
            rpc_seconds = time.perf_counter() - started
        assert reply.totals.created == n, reply.totals
        client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(stack.secantus.uri)
        scratch = client["bench_import"]["contacts"]
        docs: list[dict[str, object]] = [
            {
                "_id": f"{tag}-{i}",
                "tenant_id": "bench",
                "given_name": f"Given{i}",
                "family_name": "Family",
                "identity_keys": [f"bench|EMAIL::{tag}{i}@x.io"],
            }
            for i in range(n)
        ]
        started = time.perf_counter()
        for offset in range(0, n, 1000):
            await scratch.insert_many(docs[offset : offset + 1000])
        bare_seconds = time.perf_counter() - started
        await client.close()
    rpc_rate, bare_rate = n / rpc_seconds, n / bare_seconds
    print(f"machine: {platform.machine()} {os.cpu_count()} cpus, {platform.python_version()}")
    print(f"rows: {n}")
    print(f"ImportContacts: {rpc_seconds:.1f} s, {rpc_rate:,.0f} rows/s")
    print(f"bare insert_many: {bare_seconds:.2f} s, {bare_rate:,.0f} docs/s")
    print(f"ratio import / bare: {rpc_rate / bare_rate:.3f}")


if __name__ == "__main__":
    asyncio.run(main())
