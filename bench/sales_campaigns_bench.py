"""Campaign interaction ingestion benchmark: the ``IngestCampaignInteractions`` stream end to
end, against a bare insert loop of the same documents into the same database.

Starts its own stack (Kafka, SecantusDB, the contacts and sales services as real processes) on
free ports of 127.0.0.1 in a temporary folder, drives it over gRPC from this process, prints the
figures, and stops. Bounded in count and time.

1. ``--contacts`` contacts with e-mail consent (the consent each send is checked against) and an
   active e-mail campaign.
2. ``--interactions`` interactions (sent, delivered, opened, clicked, responded; unique
   external ids, random contacts) over ``--streams`` concurrent client streams. Measured: the
   time until the last summary came back, and until the last ``CampaignInteractionRecorded``
   was on Kafka (a consumer tails the topic from its end); interactions/s for both; CPU of the
   sales service, the contacts service and the database per interaction.
3. The same streams again: duplicates only (one read per batch, nothing written).
4. The bare insert loop: the very documents the service stored (read back from its
   collection), ``insert_many`` in batches of the service's batch size into a fresh collection
   of the same database, from this process, without transactions, events or checks. The ratio
   e2e / bare says what the service's path (validation, consent, idempotency, lead touches,
   transactions, outbox, relay) costs against the raw write.

    .venv/bin/python bench/sales_campaigns_bench.py [--interactions N] [--streams S] ...

``CRM_SECANTUS_BIN=/path/to/secantusd-rs`` (or ``CRM_SECANTUS=py``) chooses the database server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import random
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
from aiokafka import AIOKafkaConsumer
from google.protobuf.timestamp_pb2 import Timestamp

from crm.contacts.v1 import contacts_pb2 as cpb
from crm.contacts.v1 import contacts_pb2_grpc
from crm.sales.v1 import campaigns_pb2 as pb
from crm.sales.v1 import campaigns_pb2_grpc
from crm_devstack.procs import free_ports
from crm_devstack.stack import Stack, StackConfig
from crm_platform.mongo import MongoStore
from crm_sales.settings import TOPIC
from crm_sales.use_cases.campaign_interactions import BATCH_SIZE

CONTACTS, SALES = "contacts", "sales"
TENANT = "bench-campaigns"
KINDS = (
    pb.CAMPAIGN_INTERACTION_KIND_SENT,
    pb.CAMPAIGN_INTERACTION_KIND_DELIVERED,
    pb.CAMPAIGN_INTERACTION_KIND_OPENED,
    pb.CAMPAIGN_INTERACTION_KIND_CLICKED,
    pb.CAMPAIGN_INTERACTION_KIND_RESPONDED,
)


def md(tenant: str = TENANT) -> tuple[tuple[str, str], ...]:
    return (("x-tenant-id", tenant), ("x-actor-id", "bench"), ("x-actor-type", "integration"))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class InteractionTail:
    """Counts ``CampaignInteractionRecorded`` events of the bench tenant on the sales topic."""

    def __init__(self, bootstrap: str) -> None:
        self.consumer = AIOKafkaConsumer(
            TOPIC, bootstrap_servers=bootstrap, auto_offset_reset="latest", fetch_max_wait_ms=20
        )
        self.count = 0
        self.last_arrival = 0.0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.consumer.start()
        await self.consumer.seek_to_end()
        self._task = asyncio.create_task(self._tail())

    async def _tail(self) -> None:
        while True:
            batch = await self.consumer.getmany(timeout_ms=100, max_records=10_000)
            now = time.perf_counter()
            for records in batch.values():
                for record in records:
                    headers = dict(record.headers)
                    if headers.get("ce_type", b"").endswith(b".CampaignInteractionRecorded"):
                        self.count += 1
                        self.last_arrival = now

    async def wait_for(self, count: int, timeout: float) -> float | None:
        """perf_counter time the ``count``-th event arrived (None: timed out)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self.count < count:
                    await asyncio.sleep(0.05)
                return self.last_arrival
        return None

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.consumer.stop()


def stamp(base: datetime, seconds: float) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(base + timedelta(seconds=seconds))
    return value


def make_items(
    campaign_id: str, contacts: Sequence[str], count: int, rng: random.Random
) -> list[pb.CampaignInteraction]:
    base = datetime(2026, 3, 1, tzinfo=UTC)
    return [
        pb.CampaignInteraction(
            campaign_id=campaign_id,
            contact_id=rng.choice(contacts),
            kind=KINDS[n % len(KINDS)],
            external_id=f"msg-{n}",
            occur_time=stamp(base, n),
        )
        for n in range(count)
    ]


async def stream(
    stub: campaigns_pb2_grpc.CampaignServiceAsyncStub, items: Sequence[pb.CampaignInteraction]
) -> pb.IngestSummary:
    async def messages() -> AsyncIterator[pb.CampaignInteraction]:
        for one in items:
            yield one

    summary: pb.IngestSummary = await stub.IngestCampaignInteractions(
        messages(), metadata=md(), timeout=600
    )
    return summary


async def streams(
    stub: campaigns_pb2_grpc.CampaignServiceAsyncStub,
    items: Sequence[pb.CampaignInteraction],
    count: int,
) -> list[pb.IngestSummary]:
    size = -(-len(items) // count)
    return list(
        await asyncio.gather(
            *(stream(stub, items[i : i + size]) for i in range(0, len(items), size))
        )
    )


async def run(args: argparse.Namespace) -> None:
    home = Path(tempfile.mkdtemp(prefix="crm-bench-", dir=os.environ.get("CRM_HOME")))
    kafka_port, controller_port, mongo_port, contacts_port, sales_port = free_ports(5)
    config = StackConfig(
        home=home,
        kafka_port=kafka_port,
        kafka_controller_port=controller_port,
        mongodb_port=mongo_port,
        service_ports={CONTACTS: contacts_port, SALES: sales_port},
    )
    print(f"starting the stack under {home} ...", flush=True)
    stack = Stack(config, services=[CONTACTS, SALES])
    async with stack:
        pids = {
            SALES: stack.services[SALES].pid,
            CONTACTS: stack.services[CONTACTS].pid,
            "database": stack.secantus.pid,
        }
        mongo = MongoStore(stack.secantus.uri, "crm_sales", app_name="bench")
        try:
            async with (
                grpc.aio.insecure_channel(stack.services[SALES].address) as channel,
                grpc.aio.insecure_channel(stack.services[CONTACTS].address) as contacts_channel,
            ):
                await measure(
                    args,
                    campaigns_pb2_grpc.CampaignServiceStub(channel),
                    contacts_pb2_grpc.ContactsServiceStub(contacts_channel),
                    mongo,
                    stack.kafka.bootstrap_servers,
                    {name: pid for name, pid in pids.items() if pid is not None},
                )
        finally:
            await mongo.close()
    shutil.rmtree(config.data_dir, ignore_errors=True)


async def measure(
    args: argparse.Namespace,
    stub: campaigns_pb2_grpc.CampaignServiceAsyncStub,
    contacts: contacts_pb2_grpc.ContactsServiceAsyncStub,
    mongo: MongoStore,
    bootstrap: str,
    pids: dict[str, int],
) -> None:
    rng = random.Random(13)
    limit = asyncio.Semaphore(16)

    async def contact(n: int) -> str:
        async with limit:
            reply = await contacts.CreateContact(
                cpb.CreateContactRequest(
                    contact=cpb.Contact(
                        display_name=f"Bench {n}", consent=cpb.Consent(email_marketing=True)
                    )
                ),
                metadata=md(),
            )
            contact_id: str = reply.contact.id
            return contact_id

    contact_ids = list(await asyncio.gather(*(contact(n) for n in range(args.contacts))))
    created = await stub.CreateCampaign(
        pb.CreateCampaignRequest(
            campaign=pb.Campaign(
                name="Bench", channel=pb.CAMPAIGN_CHANNEL_EMAIL, budget_minor=1, currency="EUR"
            )
        ),
        metadata=md(),
    )
    campaign_id = created.campaign.id
    await stub.ActivateCampaign(pb.ActivateCampaignRequest(id=campaign_id), metadata=md())
    items = make_items(campaign_id, contact_ids, args.interactions, rng)

    tail = InteractionTail(bootstrap)
    await tail.start()
    try:
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        started = time.perf_counter()
        summaries = await streams(stub, items, args.streams)
        answered = time.perf_counter()
        arrived = await tail.wait_for(args.interactions, timeout=args.timeout)
        cpu = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
    finally:
        await tail.stop()
    accepted = sum(s.accepted for s in summaries)
    if accepted != args.interactions:
        raise SystemExit(f"expected {args.interactions} accepted, got {accepted}: {summaries[0]}")

    resend_started = time.perf_counter()
    resent = await streams(stub, items, args.streams)
    resend_seconds = time.perf_counter() - resend_started
    duplicates = sum(s.duplicates for s in resent)

    # The bare loop: the documents the service stored, into a fresh collection.
    stored = (
        await mongo.db["campaign_interactions"]
        .find({"tenant_id": TENANT, "campaign_id": campaign_id})
        .to_list(None)
    )
    bare = mongo.db[f"bench_bare_{uuid.uuid4().hex[:8]}"]
    bare_started = time.perf_counter()
    for i in range(0, len(stored), BATCH_SIZE):
        await bare.insert_many(stored[i : i + BATCH_SIZE])
    bare_seconds = time.perf_counter() - bare_started
    await bare.drop()

    n = args.interactions
    answer_seconds = answered - started
    e2e_seconds = (arrived - started) if arrived is not None else float("nan")
    e2e_rate = n / e2e_seconds
    bare_rate = len(stored) / bare_seconds
    print()
    print(f"date {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} vCPU, "
          f"{platform.python_implementation()} {platform.python_version()}, "
          f"load {' '.join(f'{x:.2f}' for x in os.getloadavg())}")  # fmt: skip
    print(
        f"{n} interactions, {args.contacts} contacts (consent checked per contact), "
        f"{args.streams} streams, batches of {BATCH_SIZE}"
    )
    print()
    print("| measure | value |\n|---|---|")
    print(f"| until the last summary | {answer_seconds:.2f} s ({n / answer_seconds:,.0f}/s) |")
    if arrived is None:
        print(f"| until all on Kafka | timed out ({tail.count} of {n} arrived) |")
    else:
        print(
            f"| until all on Kafka (end to end) | {e2e_seconds:.2f} s ({e2e_rate:,.0f} events/s) |"
        )
    print(
        f"| resend (duplicates only: {duplicates}) | {resend_seconds:.2f} s "
        f"({n / resend_seconds:,.0f}/s) |"
    )
    print(
        f"| bare insert_many loop, same {len(stored)} documents, same database | "
        f"{bare_seconds:.2f} s ({bare_rate:,.0f} docs/s) |"
    )
    print(f"| ratio end to end / bare | {e2e_rate / bare_rate:.3f} |")
    for name, seconds in cpu.items():
        print(f"| {name} CPU per interaction (ingest + relay) | {seconds / n * 1e6:,.0f} µs |")


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interactions", type=int, default=20_000)
    parser.add_argument("--contacts", type=int, default=500)
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for Kafka")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(run(parse()))
