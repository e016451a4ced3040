"""The service desk on an accelerated clock (``CRM_CLOCK_*``, as the dev stack's simulated
company runs it): tickets are stamped in simulated time, and SLA timers fire when the simulated
clock reaches their due time."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from crm.servicedesk.v1 import events_pb2
from crm.servicedesk.v1 import servicedesk_pb2 as pb
from crm_contacts.bootstrap import bootstrap as contacts_bootstrap
from crm_contacts.settings import TOPIC as CONTACTS_TOPIC
from crm_contacts.settings import ContactsSettings
from crm_devstack.procs import free_ports
from crm_platform.clock import CLOCK_VARS, accelerated_env
from crm_platform.server import RunningService
from crm_servicedesk.settings import TOPIC, ServiceDeskSettings
from servicedesk_harness import DeskUnderTest, new_tenant, of_type, read_events, start_desk

pytestmark = pytest.mark.integration

RATE = 3600.0  # one simulated hour per wall second


async def test_sla_breach_fires_on_the_accelerated_clock(
    infra: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    await infra.ensure_topics([TOPIC, CONTACTS_TOPIC])
    started = datetime.now(UTC) - timedelta(days=2)
    for name, value in accelerated_env(started, RATE).items():
        monkeypatch.setenv(name, value)
    contacts_port, desk_port = free_ports(2)
    contacts_settings = ContactsSettings(
        grpc_listen_address=f"127.0.0.1:{contacts_port}",
        mongodb_uri=infra.mongodb_uri,
        mongodb_database=f"test_sd_clock_contacts_{uuid.uuid4().hex[:8]}",
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
        mongodb_database=f"test_sd_clock_{uuid.uuid4().hex[:8]}",
        kafka_bootstrap_servers=infra.kafka_bootstrap,
        contacts_address=f"127.0.0.1:{contacts_port}",
        shutdown_delay_seconds=0,
        outbox_poll_interval_seconds=0.2,
        timer_max_idle_seconds=1.0,
        timer_lease_ttl_seconds=2,
    )
    service, extra = await start_desk(settings)
    # The services took their clock at start-up; the rest of this process reads real time.
    for name in CLOCK_VARS:
        monkeypatch.delenv(name)
    try:
        async with (
            grpc.aio.insecure_channel(settings.grpc_listen_address) as channel,
            grpc.aio.insecure_channel(contacts_settings.grpc_listen_address) as contacts_channel,
        ):
            desk = DeskUnderTest(
                channel,
                contacts_channel,
                service,
                settings,
                extra["mongo"],
                infra.kafka_bootstrap,
                extra,
            )
            stubs = desk.stubs(new_tenant())
            await stubs.config.CreateSlaPolicy(
                pb.CreateSlaPolicyRequest(
                    policy=pb.SlaPolicy(
                        name="two hours",
                        enabled=True,
                        targets=[
                            pb.SlaTargetSpec(
                                target=pb.SLA_TARGET_FIRST_RESPONSE,
                                clock=pb.CLOCK_KIND_WALL,
                                duration=Duration(seconds=2 * 3600),
                            )
                        ],
                        at_risk_fraction=0.5,
                    )
                ),
                metadata=stubs.md,
            )
            contact = await stubs.new_contact()
            opened_wall = time.time()
            ticket = await stubs.new_ticket(contact)
            created = ticket.create_time.ToDatetime(tzinfo=UTC)
            due = ticket.sla.clocks[0].due_time.ToDatetime(tzinfo=UTC)
            # Stamped in simulated time, two days back (plus what has run since).
            assert started <= created < started + timedelta(hours=1)
            assert due == created + timedelta(hours=2)

            def breached(events: list[Any]) -> bool:
                return bool(of_type(events, events_pb2.SlaBreached, ticket.id))

            events = await read_events(desk.kafka_bootstrap, breached, timeout=20)
            seen_wall = time.time()
            breach = of_type(events, events_pb2.SlaBreached, ticket.id)[0][1]
            at_risk = of_type(events, events_pb2.SlaAtRisk, ticket.id)
            fired = breach.fire_time.ToDatetime(tzinfo=UTC)
            # Two simulated hours are two wall seconds: not at once, not hours later.
            assert due <= fired < due + timedelta(minutes=30)
            assert 1.5 <= seen_wall - opened_wall < 15
            assert len(at_risk) == 1
    finally:
        await extra["mongo"].client.drop_database(settings.database_name)
        await service.stop()
        await contacts_parts.extra["mongo"].client.drop_database(contacts_settings.database_name)
        await contacts.stop()
