"""The contacts and service-desk services running in this process on the real infrastructure."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from crm_contacts.bootstrap import bootstrap as contacts_bootstrap
from crm_contacts.settings import TOPIC as CONTACTS_TOPIC
from crm_contacts.settings import ContactsSettings
from crm_devstack.procs import free_ports
from crm_platform.server import RunningService
from crm_servicedesk.settings import TOPIC, ServiceDeskSettings
from servicedesk_harness import DeskUnderTest, start_desk


@pytest.fixture(scope="module")
async def desk(infra: Any) -> AsyncIterator[DeskUnderTest]:
    """A service desk (and the contacts service it resolves requesters with), each with a
    database of its own, dropped afterwards."""
    await infra.ensure_topics([TOPIC, CONTACTS_TOPIC])
    contacts_port, desk_port = free_ports(2)
    contacts_settings = ContactsSettings(
        grpc_listen_address=f"127.0.0.1:{contacts_port}",
        mongodb_uri=infra.mongodb_uri,
        mongodb_database=f"test_sd_contacts_{uuid.uuid4().hex[:8]}",
        kafka_bootstrap_servers=infra.kafka_bootstrap,
        shutdown_delay_seconds=0,
        outbox_poll_interval_seconds=0.2,
    )
    contacts_parts = await contacts_bootstrap(contacts_settings)
    contacts = RunningService(contacts_settings, contacts_parts)
    await contacts.start()
    settings = ServiceDeskSettings(
        grpc_listen_address=f"127.0.0.1:{desk_port}",
        mongodb_uri=infra.mongodb_uri,
        mongodb_database=f"test_servicedesk_{uuid.uuid4().hex[:8]}",
        kafka_bootstrap_servers=infra.kafka_bootstrap,
        contacts_address=f"127.0.0.1:{contacts_port}",
        shutdown_delay_seconds=0,
        outbox_poll_interval_seconds=0.2,
        timer_max_idle_seconds=0.5,
        timer_lease_ttl_seconds=2,
    )
    service, extra = await start_desk(settings)
    mongo = extra["mongo"]
    async with (
        grpc.aio.insecure_channel(settings.grpc_listen_address) as channel,
        grpc.aio.insecure_channel(contacts_settings.grpc_listen_address) as contacts_channel,
    ):
        under_test = DeskUnderTest(
            channel, contacts_channel, service, settings, mongo, infra.kafka_bootstrap, extra
        )
        yield under_test
    await under_test.mongo.client.drop_database(settings.database_name)
    await under_test.service.stop()
    await contacts_parts.extra["mongo"].client.drop_database(contacts_settings.database_name)
    await contacts.stop()
