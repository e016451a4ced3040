"""The sales service running in this process on the real database and broker."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from crm.sales.v1 import sales_pb2_grpc
from crm_devstack.procs import free_ports
from crm_platform.mongo import MongoStore
from crm_platform.server import RunningService
from crm_sales.bootstrap import bootstrap
from crm_sales.settings import TOPIC, SalesSettings
from crm_testing.sales import SalesUnderTest


@pytest.fixture(scope="module")
async def sales(infra: Any) -> AsyncIterator[SalesUnderTest]:
    """A sales service with a database of its own (dropped afterwards)."""
    await infra.ensure_topics([TOPIC])
    (port,) = free_ports(1)
    address = f"127.0.0.1:{port}"
    settings = SalesSettings(
        grpc_listen_address=address,
        mongodb_uri=infra.mongodb_uri,
        mongodb_database=f"test_sales_{uuid.uuid4().hex[:8]}",
        kafka_bootstrap_servers=infra.kafka_bootstrap,
        shutdown_delay_seconds=0,
        outbox_poll_interval_seconds=0.2,
    )
    parts = await bootstrap(settings)
    service = RunningService(settings, parts)
    await service.start()
    mongo: MongoStore = parts.extra["mongo"]
    async with grpc.aio.insecure_channel(address) as channel:
        yield SalesUnderTest(sales_pb2_grpc.SalesServiceStub(channel), mongo, service, address)
    await mongo.client.drop_database(settings.database_name)
    await service.stop()
