"""``crm-dev run --demo``: create a contact through the contacts gRPC API and show its
``ContactCreated`` event arriving on Kafka (through the service's transactional outbox); then open
a ticket for that contact at the service desk under an SLA, answer it, and show the ticket's SLA
clocks and the facts it published; finally ask the metrics service, which consumed those facts,
for the ticket's clocks (company and customer side) and the tenant's KPIs."""

from __future__ import annotations

import asyncio
import time
import uuid

import grpc
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from google.protobuf import text_format
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from crm_devstack.stack import Stack

DEMO_TENANT = "demo"
_METADATA = (("x-tenant-id", DEMO_TENANT), ("x-actor-id", "demo-user"), ("x-actor-type", "agent"))
_EVENT_TIMEOUT = 30.0


async def run_demo(stack: Stack) -> None:
    """Create a contact in tenant ``demo`` through the running contacts service and print
    the Kafka record of its event (headers and decoded payload). Prints why it cannot
    instead of failing when the service or its generated gRPC code is missing."""
    try:
        from crm.contacts.v1 import (  # generated code, needed only here
            contacts_pb2,
            contacts_pb2_grpc,
            events_pb2,
        )
    except ImportError as exc:
        print(f"demo: skipped, the contacts API's generated code is missing ({exc}); `make proto`")
        return
    contacts = stack.services.get("contacts")
    if contacts is None or not contacts.running:
        print("demo: skipped, the contacts service is not running (started with --no-services?)")
        return
    topic = contacts.spec.topics[0]
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=stack.kafka.bootstrap_servers, auto_offset_reset="latest"
    )
    await consumer.start()
    try:
        await _positions_resolved(consumer)
        request = contacts_pb2.CreateContactRequest(
            contact=contacts_pb2.Contact(
                given_name="Ada",
                family_name="Lovelace",
                identities=[
                    contacts_pb2.Identity(
                        kind=contacts_pb2.IDENTITY_KIND_EMAIL,
                        # unique per run: an identity belongs to one contact per tenant
                        value=f"ada+{uuid.uuid4().hex[:8]}@example.com",
                        primary=True,
                    )
                ],
            ),
            request_id=str(uuid.uuid4()),
        )
        began = time.monotonic()
        async with grpc.aio.insecure_channel(contacts.address) as channel:
            services = await _reflected_services(channel)
            print(
                f"demo: services on {contacts.address} (server reflection): {', '.join(services)}"
            )
            stub = contacts_pb2_grpc.ContactsServiceStub(channel)
            try:
                reply = await stub.CreateContact(request, metadata=_METADATA, timeout=10)
            except grpc.aio.AioRpcError as exc:
                print(f"demo: CreateContact failed: {exc.code().name} {exc.details()}")
                return
        contact_id = reply.contact.id
        print(f"demo: created contact {contact_id} in tenant {DEMO_TENANT} via {contacts.address}")
        print(f"demo: waiting for its event on Kafka topic {topic} ...")
        record = await _first_with_key(consumer, contact_id.encode(), _EVENT_TIMEOUT)
        if record is None:
            print(f"demo: no event for {contact_id} within {_EVENT_TIMEOUT:.0f} s; see the logs")
            return
        print(
            f"demo: event after {time.monotonic() - began:.2f} s: {record.topic} partition "
            f"{record.partition} offset {record.offset}, key {record.key.decode()}; headers:"
        )
        for name, value in record.headers:
            print(f"    {name}: {value.decode(errors='replace')}")
        event = events_pb2.ContactCreated.FromString(record.value or b"")
        print("  payload crm.contacts.v1.ContactCreated:")
        for line in text_format.MessageToString(event).splitlines():
            print(f"    {line}")
    finally:
        await consumer.stop()
    ticket_id = await _service_desk_demo(stack, contact_id)
    if ticket_id is not None:
        await _metrics_demo(stack, ticket_id)


async def _service_desk_demo(stack: Stack, contact_id: str) -> str | None:
    """Open a ticket for the contact under a 4-hour first-response SLA, reply as an agent, and
    print the clocks and the ticket's events on Kafka."""
    desk = stack.services.get("servicedesk")
    if desk is None or not desk.running:
        print("demo: the service desk is not running; skipping the ticket")
        return None
    from google.protobuf.duration_pb2 import Duration

    from crm.servicedesk.v1 import events_pb2 as desk_events
    from crm.servicedesk.v1 import servicedesk_pb2 as pb
    from crm.servicedesk.v1 import servicedesk_pb2_grpc as desk_grpc

    consumer = AIOKafkaConsumer(
        desk.spec.topics[0],
        bootstrap_servers=stack.kafka.bootstrap_servers,
        auto_offset_reset="latest",
    )
    await consumer.start()
    try:
        await _positions_resolved(consumer)
        async with grpc.aio.insecure_channel(desk.address) as channel:
            config = desk_grpc.ServiceDeskConfigServiceStub(channel)
            tickets = desk_grpc.TicketServiceStub(channel)
            policies = await config.ListSlaPolicies(
                pb.ListSlaPoliciesRequest(), metadata=_METADATA, timeout=10
            )
            if not policies.policies:
                targets = [
                    pb.SlaTargetSpec(
                        target=pb.SLA_TARGET_FIRST_RESPONSE,
                        clock=pb.CLOCK_KIND_WALL,
                        duration=Duration(seconds=4 * 3600),
                    ),
                    pb.SlaTargetSpec(
                        target=pb.SLA_TARGET_RESOLUTION,
                        clock=pb.CLOCK_KIND_WALL,
                        duration=Duration(seconds=24 * 3600),
                    ),
                ]
                await config.CreateSlaPolicy(
                    pb.CreateSlaPolicyRequest(
                        policy=pb.SlaPolicy(name="standard", enabled=True, targets=targets)
                    ),
                    metadata=_METADATA,
                    timeout=10,
                )
            created = await tickets.CreateTicket(
                pb.CreateTicketRequest(
                    ticket=pb.Ticket(
                        type=pb.TICKET_TYPE_COMPLAINT,
                        channel=pb.CHANNEL_EMAIL,
                        subject="My parcel never arrived",
                        contact_id=contact_id,
                    ),
                    first_message="Ordered two weeks ago, still nothing. Any update?",
                ),
                metadata=_METADATA,
                timeout=10,
            )
            ticket = created.ticket
            reply = await tickets.AddMessage(
                pb.AddMessageRequest(
                    ticket_id=ticket.id,
                    message=pb.Message(
                        author_type=pb.AUTHOR_TYPE_AGENT,
                        author_id="demo-agent",
                        visibility=pb.VISIBILITY_PUBLIC,
                        body="Sorry! A replacement ships today.",
                    ),
                ),
                metadata=_METADATA,
                timeout=10,
            )
    except grpc.aio.AioRpcError as exc:
        print(f"demo: service desk call failed: {exc.code().name} {exc.details()}")
        await consumer.stop()
        return None
    try:
        print(f"demo: opened ticket {ticket.id} at {desk.address}; SLA clocks after the reply:")
        for clock in reply.ticket.sla.clocks:
            due = clock.due_time.ToJsonString() if clock.HasField("due_time") else "-"
            print(
                f"    {pb.SlaTarget.Name(clock.target)}: {pb.SlaClockState.Name(clock.state)}"
                f" (due {due})"
            )
        seen: list[str] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _EVENT_TIMEOUT
        while loop.time() < deadline and "SlaTargetMet" not in seen:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    if record.key == contact_id.encode():
                        kind = dict(record.headers).get("ce_type", b"").decode()
                        seen.append(kind.rsplit(".", 1)[-1])
        print(f"demo: its events on {desk.spec.topics[0]} (key = the contact): {', '.join(seen)}")
        if "SlaTargetMet" in seen:
            met = desk_events.SlaTargetMet
            print(f"demo: the first response met its SLA ({met.DESCRIPTOR.full_name})")
    finally:
        await consumer.stop()
    return str(ticket.id)


async def _metrics_demo(stack: Stack, ticket_id: str) -> None:
    """Ask the metrics service for the ticket's clocks (once its events are consumed) and for
    today's KPIs of the demo tenant."""
    metrics = stack.services.get("metrics")
    if metrics is None or not metrics.running:
        print("demo: the metrics service is not running; skipping the KPIs")
        return
    from datetime import UTC, datetime, timedelta

    from google.protobuf.timestamp_pb2 import Timestamp

    from crm.metrics.v1 import metrics_pb2 as mpb
    from crm.metrics.v1 import metrics_pb2_grpc

    async with grpc.aio.insecure_channel(metrics.address) as channel:
        stub = metrics_pb2_grpc.MetricsServiceStub(channel)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _EVENT_TIMEOUT
        clocks = None
        while clocks is None and loop.time() < deadline:
            try:
                reply = await stub.GetTicketClocks(
                    mpb.GetTicketClocksRequest(ticket_id=ticket_id), metadata=_METADATA, timeout=5
                )
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.NOT_FOUND:
                    print(f"demo: GetTicketClocks failed: {exc.code().name} {exc.details()}")
                    return
                await asyncio.sleep(0.5)
                continue
            answered = [c for c in reply.clocks.clocks if c.name == "customer_wait"]
            if answered and answered[0].HasField("seconds"):
                clocks = reply.clocks
            else:
                await asyncio.sleep(0.5)
        if clocks is None:
            print(f"demo: the metrics service did not report ticket {ticket_id} within 30 s")
            return
        print(f"demo: metrics service at {metrics.address}, ticket {ticket_id}'s clocks:")
        for clock in clocks.clocks:
            if clock.HasField("seconds"):
                print(f"    {clock.name}: {clock.seconds:.1f} s  ({clock.explanation})")
        now = datetime.now(UTC)
        start, end = Timestamp(), Timestamp()
        start.FromDatetime(now - timedelta(days=1))
        end.FromDatetime(now + timedelta(hours=1))
        kpis = await stub.GetKpis(
            mpb.GetKpisRequest(
                kpis=["tickets_created", "frt_business", "customer_wait", "perception_gap"],
                start_time=start,
                end_time=end,
                granularity=mpb.GRANULARITY_TOTAL,
            ),
            metadata=_METADATA,
            timeout=10,
        )
        print(f"demo: GetKpis for tenant {DEMO_TENANT!r}, the last 24 hours:")
        for value in kpis.groups[0].totals if kpis.groups else []:
            shown = f"{value.value:.1f} {value.unit}" if value.HasField("value") else "no data"
            print(f"    {value.kpi}: {shown} (count {value.count})")


async def _reflected_services(channel: grpc.aio.Channel) -> list[str]:
    """The service names the server lists through gRPC server reflection (as `grpcurl list`)."""
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    names: list[str] = []
    async for response in stub.ServerReflectionInfo(iter([request]), timeout=10):
        names.extend(s.name for s in response.list_services_response.service)
    return sorted(names)


async def _positions_resolved(consumer: AIOKafkaConsumer) -> None:
    """Wait until the (group-less) consumer has its partitions and their end offsets, so that
    it sees every record written from now on and none from before."""
    for _ in range(200):
        if consumer.assignment():
            break
        await asyncio.sleep(0.05)
    for partition in consumer.assignment():
        await consumer.position(partition)


async def _first_with_key(
    consumer: AIOKafkaConsumer, key: bytes, timeout: float
) -> ConsumerRecord[bytes, bytes] | None:
    """The first record with ``key``, or None after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        batches = await consumer.getmany(timeout_ms=500)
        for records in batches.values():
            for record in records:
                if record.key == key:
                    return record
    return None
