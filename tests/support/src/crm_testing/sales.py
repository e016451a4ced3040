"""Shared pieces of the sales integration tests: the service under test, builders of pipelines,
opportunities, products and quotes, reading its topic, and the error details of refused calls."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from aiokafka import AIOKafkaConsumer
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from crm.contacts.v1 import contacts_pb2_grpc
from crm.sales.v1 import sales_pb2 as pb
from crm.sales.v1 import sales_pb2_grpc
from crm_contacts.bootstrap import bootstrap as contacts_bootstrap
from crm_contacts.settings import TOPIC as CONTACTS_TOPIC
from crm_contacts.settings import ContactsSettings
from crm_devstack.procs import free_ports
from crm_platform.events import Event
from crm_platform.mongo import MongoStore
from crm_platform.server import RunningService
from crm_sales.bootstrap import bootstrap
from crm_sales.settings import TOPIC, SalesSettings

TENANT = "acme"
OTHER_TENANT = "globex"


def metadata(tenant: str = TENANT, actor: str = "alice") -> tuple[tuple[str, str], ...]:
    """Request metadata of an authenticated agent of ``tenant``."""
    return (("x-tenant-id", tenant), ("x-actor-id", actor), ("x-actor-type", "agent"))


@dataclass
class SalesUnderTest:
    """A running sales service, a stub to call it, and its database; and the contacts service
    it converts leads with, its stub and its database."""

    stub: sales_pb2_grpc.SalesServiceAsyncStub
    mongo: MongoStore
    service: RunningService
    address: str
    contacts: contacts_pb2_grpc.ContactsServiceAsyncStub
    contacts_mongo: MongoStore


@asynccontextmanager
async def running_sales(infra: Any, name: str) -> AsyncIterator[SalesUnderTest]:
    """A sales service and the contacts service it calls, in this process on the session's
    ``infra``, each with a database of its own (``test_<name>_...``), dropped afterwards."""
    await infra.ensure_topics([TOPIC, CONTACTS_TOPIC])
    contacts_port, sales_port = free_ports(2)
    contacts_settings = ContactsSettings(
        grpc_listen_address=f"127.0.0.1:{contacts_port}",
        mongodb_uri=infra.mongodb_uri,
        mongodb_database=f"test_{name}_contacts_{uuid.uuid4().hex[:8]}",
        kafka_bootstrap_servers=infra.kafka_bootstrap,
        shutdown_delay_seconds=0,
        outbox_poll_interval_seconds=0.2,
    )
    contacts_parts = await contacts_bootstrap(contacts_settings)
    contacts = RunningService(contacts_settings, contacts_parts)
    await contacts.start()
    settings = SalesSettings(
        grpc_listen_address=f"127.0.0.1:{sales_port}",
        mongodb_uri=infra.mongodb_uri,
        mongodb_database=f"test_{name}_{uuid.uuid4().hex[:8]}",
        kafka_bootstrap_servers=infra.kafka_bootstrap,
        contacts_address=contacts_settings.grpc_listen_address,
        shutdown_delay_seconds=0,
        outbox_poll_interval_seconds=0.2,
    )
    parts = await bootstrap(settings)
    service = RunningService(settings, parts)
    await service.start()
    mongo: MongoStore = parts.extra["mongo"]
    contacts_mongo: MongoStore = contacts_parts.extra["mongo"]
    try:
        async with (
            grpc.aio.insecure_channel(settings.grpc_listen_address) as channel,
            grpc.aio.insecure_channel(contacts_settings.grpc_listen_address) as contacts_channel,
        ):
            yield SalesUnderTest(
                sales_pb2_grpc.SalesServiceStub(channel),
                mongo,
                service,
                settings.grpc_listen_address,
                contacts_pb2_grpc.ContactsServiceStub(contacts_channel),
                contacts_mongo,
            )
    finally:
        await mongo.client.drop_database(settings.database_name)
        await service.stop()
        await contacts_mongo.client.drop_database(contacts_settings.database_name)
        await contacts.stop()


def stages() -> list[pb.Stage]:
    """A small pipeline: two open stages, then won and lost."""
    return [
        pb.Stage(id="qualify", name="Qualify", win_probability_percent=10, kind=pb.STAGE_KIND_OPEN),
        pb.Stage(
            id="proposal", name="Proposal", win_probability_percent=60, kind=pb.STAGE_KIND_OPEN
        ),
        pb.Stage(id="won", name="Won", win_probability_percent=100, kind=pb.STAGE_KIND_WON),
        pb.Stage(id="lost", name="Lost", win_probability_percent=0, kind=pb.STAGE_KIND_LOST),
    ]


async def create_pipeline(sales: SalesUnderTest, tenant: str = TENANT) -> pb.Pipeline:
    """A new pipeline with :func:`stages`."""
    reply = await sales.stub.CreatePipeline(
        pb.CreatePipelineRequest(pipeline=pb.Pipeline(name="Direct sales", stages=stages())),
        metadata=metadata(tenant),
    )
    pipeline: pb.Pipeline = reply.pipeline
    return pipeline


def unique_id(prefix: str) -> str:
    """An id no other test uses (events on the shared topic are told apart by key)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def create_opportunity(
    sales: SalesUnderTest, pipeline_id: str, *, tenant: str = TENANT, **fields: object
) -> pb.Opportunity:
    """A new EUR opportunity of ``pipeline_id`` with a fresh primary contact."""
    values: dict[str, object] = {
        "name": "200 seats",
        "account_id": unique_id("org"),
        "primary_contact_id": unique_id("contact"),
        "amount_minor": 1_250_000,
        "currency": "EUR",
        "pipeline_id": pipeline_id,
    }
    values.update(fields)
    reply = await sales.stub.CreateOpportunity(
        pb.CreateOpportunityRequest(opportunity=pb.Opportunity(**values)),  # type: ignore[arg-type]
        metadata=metadata(tenant),
    )
    opportunity: pb.Opportunity = reply.opportunity
    return opportunity


async def create_product(
    sales: SalesUnderTest,
    *,
    tenant: str = TENANT,
    active: bool = True,
    prices: dict[str, int] | None = None,
) -> pb.Product:
    """A new product with a fresh SKU, priced 12.50 EUR and 1,800 JPY unless ``prices``."""
    book = {"EUR": 1250, "JPY": 1800} if prices is None else prices
    reply = await sales.stub.CreateProduct(
        pb.CreateProductRequest(
            product=pb.Product(
                sku=unique_id("SKU"),
                name="Support seat",
                active=active,
                prices=[pb.Price(currency=c, unit_price_minor=p) for c, p in book.items()],
            )
        ),
        metadata=metadata(tenant),
    )
    product: pb.Product = reply.product
    return product


def valid_until(days: float = 30, now: datetime | None = None) -> Timestamp:
    """A quote's ``valid_until``, ``days`` from ``now`` (default: the wall clock)."""
    stamp = Timestamp()
    stamp.FromDatetime((now or datetime.now(UTC)) + timedelta(days=days))
    return stamp


def quote_request(
    opportunity_id: str,
    lines: Sequence[pb.QuoteLine],
    *,
    currency: str = "EUR",
    until: Timestamp | None = None,
    request_id: str = "",
) -> pb.CreateQuoteRequest:
    """A CreateQuote request."""
    return pb.CreateQuoteRequest(
        quote=pb.Quote(
            opportunity_id=opportunity_id,
            currency=currency,
            lines=lines,
            valid_until=until or valid_until(),
        ),
        request_id=request_id,
    )


async def events_for(bootstrap: str, key: str, count: int) -> list[Event]:
    """Read ``crm.sales.v1`` from the start until ``count`` events with record key ``key``
    arrived (in partition order, which is the order per key)."""
    consumer = AIOKafkaConsumer(
        TOPIC, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    found: list[Event] = []
    try:
        async with asyncio.timeout(30):
            while len(found) < count:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    for record in records:
                        if record.key == key.encode():
                            found.append(
                                Event.from_kafka(record.key, record.value, list(record.headers))
                            )
    finally:
        await consumer.stop()
    return found


def violations(error: grpc.aio.AioRpcError) -> dict[str, str]:
    """The field violations of an INVALID_ARGUMENT answer."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, "no rich status details"
    for detail in status.details:
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):
            return {v.field: v.description for v in bad_request.field_violations}
    raise AssertionError("no BadRequest detail")


def precondition_types(error: grpc.aio.AioRpcError) -> set[str]:
    """The violation types of a FAILED_PRECONDITION answer's PreconditionFailure."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, "no rich status details"
    for detail in status.details:
        failure = error_details_pb2.PreconditionFailure()
        if detail.Unpack(failure):
            return {v.type for v in failure.violations}
    raise AssertionError("no PreconditionFailure detail")


async def refused(call: object, code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    """The error ``call`` fails with, which must have status ``code``."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    assert info.value.code() == code, info.value.details()
    return info.value
