"""What the campaign integration tests share: a stub of CampaignService on the service under
test, contacts with consent, stream items, and every event of the topic once the outbox is
drained."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import grpc
from aiokafka import AIOKafkaConsumer, TopicPartition
from google.protobuf.timestamp_pb2 import Timestamp

from crm.contacts.v1 import contacts_pb2 as cpb
from crm.sales.v1 import (
    campaigns_events_pb2,  # noqa: F401  (registers the payload types)
    campaigns_pb2_grpc,
)
from crm.sales.v1 import campaigns_pb2 as cpg
from crm_platform.events import Event
from crm_sales.settings import TOPIC
from crm_testing.sales import TENANT, SalesUnderTest, metadata


@asynccontextmanager
async def campaign_stub(
    sales: SalesUnderTest,
) -> AsyncIterator[campaigns_pb2_grpc.CampaignServiceAsyncStub]:
    """A CampaignService stub on the running sales service."""
    async with grpc.aio.insecure_channel(sales.address) as channel:
        yield campaigns_pb2_grpc.CampaignServiceStub(channel)


async def create_contact(
    sales: SalesUnderTest,
    *,
    tenant: str = TENANT,
    email: bool = False,
    phone: bool = False,
    data_processing: bool = False,
) -> str:
    """A new contact of ``tenant`` with the given consent; its id."""
    reply = await sales.contacts.CreateContact(
        cpb.CreateContactRequest(
            contact=cpb.Contact(
                display_name=f"Person {uuid.uuid4().hex[:6]}",
                consent=cpb.Consent(
                    email_marketing=email,
                    phone_marketing=phone,
                    data_processing=data_processing,
                ),
            )
        ),
        metadata=metadata(tenant),
    )
    contact_id: str = reply.contact.id
    return contact_id


async def create_campaign(
    stub: campaigns_pb2_grpc.CampaignServiceAsyncStub,
    *,
    tenant: str = TENANT,
    channel: int = cpg.CAMPAIGN_CHANNEL_EMAIL,
    active: bool = True,
    currency: str = "EUR",
) -> cpg.Campaign:
    """A new campaign (activated unless ``active`` is false)."""
    reply = await stub.CreateCampaign(
        cpg.CreateCampaignRequest(
            campaign=cpg.Campaign(
                name="Spring launch",
                channel=channel,  # type: ignore[arg-type]
                budget_minor=5_000_00,
                currency=currency,
                target_segment="newsletter",
            )
        ),
        metadata=metadata(tenant),
    )
    campaign: cpg.Campaign = reply.campaign
    if active:
        activated = await stub.ActivateCampaign(
            cpg.ActivateCampaignRequest(id=campaign.id), metadata=metadata(tenant)
        )
        campaign = activated.campaign
    return campaign


def stamp(minutes: float = 0.0) -> Timestamp:
    """A time ``minutes`` after a fixed past instant."""
    value = Timestamp()
    value.FromDatetime(datetime(2026, 3, 1, 9, 0, tzinfo=UTC) + timedelta(minutes=minutes))
    return value


def item(
    campaign_id: str,
    contact_id: str,
    kind: int,
    external_id: str,
    minutes: float = 0.0,
) -> cpg.CampaignInteraction:
    """One stream item."""
    return cpg.CampaignInteraction(
        campaign_id=campaign_id,
        contact_id=contact_id,
        kind=kind,  # type: ignore[arg-type]
        external_id=external_id,
        occur_time=stamp(minutes),
    )


async def ingest(
    stub: campaigns_pb2_grpc.CampaignServiceAsyncStub,
    items: Sequence[cpg.CampaignInteraction],
    tenant: str = TENANT,
) -> cpg.IngestSummary:
    """Stream ``items``; the summary."""

    async def messages() -> AsyncIterator[cpg.CampaignInteraction]:
        for one in items:
            yield one

    summary: cpg.IngestSummary = await stub.IngestCampaignInteractions(
        messages(), metadata=metadata(tenant), timeout=120
    )
    return summary


def by_reason(summary: cpg.IngestSummary) -> dict[str, int]:
    """The refused counts by reason name."""
    return {cpg.IngestRefusal.Name(r.reason): r.count for r in summary.refused_by_reason}


async def drained(sales: SalesUnderTest) -> None:
    """Until the relay published every committed event (the outbox is empty)."""
    outbox = sales.mongo.db["outbox"]
    async with asyncio.timeout(60):
        while await outbox.count_documents({}):
            await asyncio.sleep(0.1)


async def all_events(bootstrap: str) -> list[Event]:
    """Every event on the topic, from its start to its end as it is when the partitions are
    assigned."""
    consumer = AIOKafkaConsumer(
        TOPIC, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    found: list[Event] = []
    try:
        async with asyncio.timeout(60):
            batch = await consumer.getmany(timeout_ms=1000)
            while not consumer.assignment():
                batch = await consumer.getmany(timeout_ms=500)
            partitions = list(consumer.assignment())
            ends = await consumer.end_offsets(partitions)
            while True:
                for part, records in batch.items():
                    found.extend(
                        Event.from_kafka(r.key, r.value, list(r.headers))
                        for r in records
                        if r.offset < ends[part]
                    )
                if all([await _at(consumer, p, ends[p]) for p in partitions]):
                    return found
                batch = await consumer.getmany(timeout_ms=500)
    finally:
        await consumer.stop()


async def _at(consumer: AIOKafkaConsumer, partition: TopicPartition, end: int) -> bool:
    position: int = await consumer.position(partition)
    return position >= end
