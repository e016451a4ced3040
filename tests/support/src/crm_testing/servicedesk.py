"""Shared pieces of the service-desk integration tests: the services, stubs and event reading."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
from aiokafka import AIOKafkaConsumer
from google.protobuf.message import Message

from crm.contacts.v1 import contacts_pb2 as cpb
from crm.contacts.v1 import contacts_pb2_grpc
from crm.servicedesk.v1 import events_pb2, servicedesk_pb2_grpc
from crm.servicedesk.v1 import servicedesk_pb2 as pb
from crm_contacts.bootstrap import bootstrap as contacts_bootstrap
from crm_contacts.settings import TOPIC as CONTACTS_TOPIC
from crm_contacts.settings import ContactsSettings
from crm_devstack.procs import free_ports
from crm_platform.mongo import MongoStore
from crm_platform.server import RunningService
from crm_servicedesk.bootstrap import bootstrap
from crm_servicedesk.settings import TOPIC, ServiceDeskSettings

M = TypeVar("M", bound=Message)


def metadata(tenant: str, actor: str = "alice") -> tuple[tuple[str, str], ...]:
    """Request metadata of an agent of ``tenant``."""
    return (("x-tenant-id", tenant), ("x-actor-id", actor), ("x-actor-type", "agent"))


def new_tenant() -> str:
    """A tenant of its own for one test: rules and policies of other tests do not apply."""
    return f"t{uuid.uuid4().hex[:12]}"


@dataclass
class Stubs:
    """Stubs of the service desk's four services and of contacts, on one tenant's metadata."""

    tenant: str
    tickets: servicedesk_pb2_grpc.TicketServiceAsyncStub
    config: servicedesk_pb2_grpc.ServiceDeskConfigServiceAsyncStub
    social: servicedesk_pb2_grpc.SocialListeningServiceAsyncStub
    surveys: servicedesk_pb2_grpc.SurveyServiceAsyncStub
    contacts: contacts_pb2_grpc.ContactsServiceAsyncStub

    @property
    def md(self) -> tuple[tuple[str, str], ...]:
        """This tenant's metadata."""
        return metadata(self.tenant)

    async def new_contact(self, email: str = "", tier: Any = cpb.VALUE_TIER_STANDARD) -> str:
        """A contact of this tenant; returns its id."""
        contact = cpb.Contact(given_name="Ada", family_name="Lovelace", tier=tier)
        if email:
            contact.identities.append(cpb.Identity(kind=cpb.IDENTITY_KIND_EMAIL, value=email))
        response = await self.contacts.CreateContact(
            cpb.CreateContactRequest(contact=contact), metadata=self.md
        )
        return str(response.contact.id)

    async def new_ticket(self, contact_id: str, **fields: Any) -> pb.Ticket:
        """An e-mail complaint of the contact (fields override)."""
        ticket = pb.Ticket(
            type=pb.TICKET_TYPE_COMPLAINT,
            channel=pb.CHANNEL_EMAIL,
            subject="My order never arrived",
            contact_id=contact_id,
        )
        for name, value in fields.items():
            setattr(ticket, name, value)
        response = await self.tickets.CreateTicket(
            pb.CreateTicketRequest(ticket=ticket), metadata=self.md
        )
        return response.ticket


@dataclass
class DeskUnderTest:
    """The service desk and contacts running in this process on the real database and broker."""

    channel: grpc.aio.Channel
    contacts_channel: grpc.aio.Channel
    service: RunningService
    settings: ServiceDeskSettings
    mongo: MongoStore
    kafka_bootstrap: str
    extra: dict[str, Any] = field(default_factory=dict)

    def stubs(self, tenant: str) -> Stubs:
        """Stubs for one tenant."""
        return Stubs(
            tenant,
            servicedesk_pb2_grpc.TicketServiceStub(self.channel),
            servicedesk_pb2_grpc.ServiceDeskConfigServiceStub(self.channel),
            servicedesk_pb2_grpc.SocialListeningServiceStub(self.channel),
            servicedesk_pb2_grpc.SurveyServiceStub(self.channel),
            contacts_pb2_grpc.ContactsServiceStub(self.contacts_channel),
        )


async def start_desk(settings: ServiceDeskSettings) -> tuple[RunningService, dict[str, Any]]:
    """A service-desk service in this process; returns it and its parts."""
    parts = await bootstrap(settings)
    service = RunningService(settings, parts)
    await service.start()
    return service, parts.extra


@contextlib.asynccontextmanager
async def running_desk(
    infra: Any, name: str, *, timer_max_idle_seconds: float
) -> AsyncIterator[DeskUnderTest]:
    """A service desk (and the contacts service it resolves requesters with) in this process,
    each with a database of its own (``test_<name>_...``), dropped afterwards."""
    await infra.ensure_topics([TOPIC, CONTACTS_TOPIC])
    contacts_port, desk_port = free_ports(2)
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
    settings = ServiceDeskSettings(
        grpc_listen_address=f"127.0.0.1:{desk_port}",
        mongodb_uri=infra.mongodb_uri,
        mongodb_database=f"test_{name}_{uuid.uuid4().hex[:8]}",
        kafka_bootstrap_servers=infra.kafka_bootstrap,
        contacts_address=f"127.0.0.1:{contacts_port}",
        shutdown_delay_seconds=0,
        outbox_poll_interval_seconds=0.2,
        timer_max_idle_seconds=timer_max_idle_seconds,
        timer_lease_ttl_seconds=2,
    )
    service, extra = await start_desk(settings)
    under_test: DeskUnderTest | None = None
    try:
        async with (
            grpc.aio.insecure_channel(settings.grpc_listen_address) as channel,
            grpc.aio.insecure_channel(contacts_settings.grpc_listen_address) as contacts_channel,
        ):
            under_test = DeskUnderTest(
                channel,
                contacts_channel,
                service,
                settings,
                extra["mongo"],
                infra.kafka_bootstrap,
                extra,
            )
            yield under_test
    finally:
        # Tests may restart the desk: stop whichever service and database it holds now.
        if under_test is not None:
            service, mongo = under_test.service, under_test.mongo
        else:
            mongo = extra["mongo"]
        await mongo.client.drop_database(settings.database_name)
        await service.stop()
        await contacts_parts.extra["mongo"].client.drop_database(contacts_settings.database_name)
        await contacts.stop()


async def read_events(
    bootstrap_servers: str,
    done: Callable[[list[tuple[dict[str, str], Message]]], bool],
    *,
    timeout: float = 30.0,
    linger: float = 0.0,
    topic: str = TOPIC,
) -> list[tuple[dict[str, str], Message]]:
    """Events of ``topic`` from the start as (headers, payload), until ``done(events)`` holds,
    then ``linger`` seconds more (to see what should *not* arrive). Fails after ``timeout``."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    events: list[tuple[dict[str, str], Message]] = []
    try:
        async with asyncio.timeout(timeout):
            while not done(events):
                await _poll(consumer, events)
        loop = asyncio.get_running_loop()
        end = loop.time() + linger
        while loop.time() < end:
            await _poll(consumer, events)
    finally:
        await consumer.stop()
    return events


async def _poll(consumer: AIOKafkaConsumer, events: list[tuple[dict[str, str], Message]]) -> None:
    batch = await consumer.getmany(timeout_ms=300)
    for records in batch.values():
        for record in records:
            headers = {k: v.decode() for k, v in record.headers}
            name = headers.get("ce_type", "").rsplit(".", 1)[-1]
            kind = getattr(events_pb2, name, None)
            if kind is None or record.value is None:
                continue
            payload = kind()
            payload.ParseFromString(record.value)
            events.append((headers, payload))


def of_type(
    events: list[tuple[dict[str, str], Message]], kind: type[M], ticket_id: str = ""
) -> list[tuple[dict[str, str], M]]:
    """The events of one payload type (about one ticket, when given)."""
    found = [(h, e) for h, e in events if isinstance(e, kind)]
    if ticket_id:
        found = [(h, e) for h, e in found if _ticket_of(e) == ticket_id]
    return found


def _ticket_of(event: Any) -> str:
    if hasattr(event, "ticket") and event.HasField("ticket"):
        return str(event.ticket.id)
    if hasattr(event, "message") and hasattr(event.message, "ticket_id"):
        return str(event.message.ticket_id)
    return str(getattr(event, "ticket_id", ""))
