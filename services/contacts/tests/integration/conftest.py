"""The contacts service running in this process on the real database and broker."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from crm.contacts.v1 import contacts_pb2_grpc
from crm_contacts.bootstrap import bootstrap
from crm_contacts.settings import TOPIC, ContactsSettings
from crm_devstack.procs import free_ports
from crm_platform.mongo import MongoStore
from crm_platform.server import RunningService
from crm_platform.telemetry import configure_telemetry
from crm_testing.contacts import ContactsUnderTest


@pytest.fixture(scope="session")
def spans() -> InMemorySpanExporter:
    """Telemetry switched on for the test process, finished spans kept in memory."""
    provider = configure_telemetry("contacts-test")
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture(scope="module")
async def contacts(infra: Any, spans: InMemorySpanExporter) -> AsyncIterator[ContactsUnderTest]:
    """A contacts service with a database of its own (dropped afterwards)."""
    await infra.ensure_topics([TOPIC])
    (port,) = free_ports(1)
    address = f"127.0.0.1:{port}"
    settings = ContactsSettings(
        grpc_listen_address=address,
        mongodb_uri=infra.mongodb_uri,
        mongodb_database=f"test_contacts_{uuid.uuid4().hex[:8]}",
        kafka_bootstrap_servers=infra.kafka_bootstrap,
        default_phone_region="US",
        shutdown_delay_seconds=0,
        outbox_poll_interval_seconds=0.2,
    )
    parts = await bootstrap(settings)
    service = RunningService(settings, parts)
    await service.start()
    mongo: MongoStore = parts.extra["mongo"]
    async with grpc.aio.insecure_channel(address) as channel:
        yield ContactsUnderTest(
            contacts_pb2_grpc.ContactsServiceStub(channel), mongo, service, address
        )
    await mongo.client.drop_database(settings.database_name)
    await service.stop()
