"""``crm-dev run --demo``: show the CRM working.

By default (``make run``) a simulated company lives a few days at accelerated time through the
gateway (:mod:`crm_devstack.simulator`): :func:`plan_company_run` chooses the services' clock
(``CRM_CLOCK_*``, see :mod:`crm_platform.clock`) before the stack starts, and
:func:`run_company_demo` shows a contact's event reaching Kafka, plays the simulated days, prints
a one-screen KPI summary from the gateway's ``MetricsService.GetKpis`` once the metrics service
has caught up, and keeps a gentle live trickle until Ctrl-C.

With ``--no-simulate`` (:func:`run_demo`): create a contact through the contacts gRPC API and
show its ``ContactCreated`` event arriving on Kafka (through the service's transactional
outbox); then open a ticket for that contact at the service desk under an SLA, answer it, and
show the ticket's SLA clocks and the facts it published; finally ask the metrics service, which
consumed those facts, for the ticket's clocks (company and customer side) and the tenant's KPIs.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import grpc
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from google.protobuf import text_format
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from crm_calendar import BusinessCalendar
from crm_devstack.simulator import (
    CompanyProfile,
    SimulatedCompany,
    SimulationProgress,
    SimulationReport,
)
from crm_devstack.stack import Stack
from crm_platform.clock import Clock, catch_up_rate

DEMO_TENANT = "demo"
_METADATA = (("x-tenant-id", DEMO_TENANT), ("x-actor-id", "demo-user"), ("x-actor-type", "agent"))
_EVENT_TIMEOUT = 30.0


async def run_demo(stack: Stack) -> None:
    """Create a contact in tenant ``demo`` through the running contacts service and print
    the Kafka record of its event (headers and decoded payload). Prints why it cannot
    instead of failing when the service or its generated gRPC code is missing."""
    try:
        from crm.contacts.v1 import (  # generated code, needed only here
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
        request = _ada_lovelace()
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


# --- the simulated company ----------------------------------------------------------------------

COMPANY_TENANT_PREFIX = "acme"
STARTUP_ESTIMATE = timedelta(seconds=25)
"""How long the stack takes to start, roughly: the clock is set so that the simulated days begin
about when the services are ready."""
SUMMARY_KPIS = (
    "tickets_created",
    "backlog",
    "reopen_rate",
    "chasers",
    "sla_first_response",
    "sla_resolution",
    "frt_wall",
    "frt_business",
    "resolution_wall",
    "resolution_business",
    "csat",
    "nps",
    "survey_response_rate",
    "company_frt",
    "customer_wait",
    "perception_gap",
    "green_inside_red_outside",
    "expectation_breach",
    "mentions",
)
_PROGRESS_EVERY_SECONDS = 15.0
_LIVE_PROGRESS_EVERY = 300.0


@dataclass(frozen=True)
class CompanyRun:
    """A simulated company's run: its tenant (one per run, so that its KPIs are its own) and
    the clock its services and the simulation share."""

    tenant: str
    clock: Clock
    seed: int
    days: float

    @property
    def service_env(self) -> dict[str, str]:
        """The services' environment: the clock variables."""
        return self.clock.env()


def history_days(
    now: datetime, days: float, calendar: BusinessCalendar, business: timedelta
) -> float:
    """``days``, or more whole days until the simulated span holds ``business`` of opening
    time (a weekend would leave the agents too little time to show anything), at most 3
    more."""
    for extra in range(4):
        span = days + extra
        if calendar.business_time(now - timedelta(days=span), now) >= business:
            return span
    return days + 3


def plan_company_run(
    *,
    days: float,
    wall: timedelta,
    seed: int,
    now: float | None = None,
    startup: timedelta = STARTUP_ESTIMATE,
    profile: CompanyProfile | None = None,
    working_days: int = 2,
) -> CompanyRun:
    """A clock that reads about ``days`` before real time once the stack is up (``startup``
    from ``now``) and catches up with real time ``wall`` later; before the stack is up it
    reads earlier still (nothing happens then). The days are stretched to hold
    ``working_days`` days of the company's office hours (:func:`history_days`)."""
    now = time.time() if now is None else now
    hours = (profile or CompanyProfile()).hours
    working_day = timedelta(minutes=hours.closes - hours.opens)
    days = history_days(
        datetime.fromtimestamp(now, UTC), days, hours.calendar(), working_days * working_day
    )
    rate = catch_up_rate(timedelta(days=days), wall)
    behind = (startup + wall) * (rate - 1)
    clock = Clock.accelerated(datetime.fromtimestamp(now, UTC) - behind, rate, now)
    tenant = f"{COMPANY_TENANT_PREFIX}-{datetime.fromtimestamp(now, UTC):%Y%m%d-%H%M}"
    return CompanyRun(tenant, clock, seed, days)


async def run_company_demo(stack: Stack, run: CompanyRun) -> None:
    """Play the simulated company through the gateway (see the module); returns only if the
    gateway is missing, otherwise runs until cancelled."""
    gateway = stack.gateway
    if gateway is None or not gateway.running:
        print("demo: the gateway is not running; no simulated company")
        return

    def tokens(role: str, subject: str) -> str:
        return stack.credentials.token(run.tenant, role, subject)

    profile = CompanyProfile()
    stop = asyncio.Event()
    async with grpc.aio.insecure_channel(gateway.address) as channel:
        company = SimulatedCompany(
            channel, tokens, run.clock, seed=run.seed, days=None, trickle=True, profile=profile
        )
        printer = _ProgressPrinter(profile.hours.timezone)
        print(
            f"company: {profile.name} (tenant {run.tenant}) lives {run.days:g} simulated days "
            f"through the gateway at {gateway.address}, {run.clock.acceleration.rate:.0f}x "
            "real time until it meets the present"
            if run.clock.acceleration is not None
            else f"company: {profile.name} (tenant {run.tenant}) through {gateway.address}"
        )
        life = asyncio.create_task(company.run(stop, printer), name="simulated-company")
        try:
            await _contact_through_gateway(stack, channel, tokens("integration", "crm-demo"))
            history = asyncio.create_task(company.history_done.wait())
            await asyncio.wait({life, history}, return_when=asyncio.FIRST_COMPLETED)
            history.cancel()
            if life.done():
                life.result()  # the simulation ended early: show why
                return
            await _print_kpi_summary(channel, tokens("analyst", "crm-demo"), company)
            print(
                f"company: the simulated days are over; {profile.name} lives on in real time "
                f"(about {profile.trickle_issues_per_hour:g} new issues an hour). "
                "Press Ctrl-C to stop."
            )
            await life
        finally:
            stop.set()
            _, pending = await asyncio.wait({life}, timeout=10)
            for task in pending:
                task.cancel()


class _ProgressPrinter:
    """Prints the simulation's progress: phase changes, and every few seconds meanwhile."""

    def __init__(self, timezone: str) -> None:
        self.zone = ZoneInfo(timezone)
        self.phase = ""
        self.printed = 0.0

    def __call__(self, progress: SimulationProgress) -> None:
        now = time.monotonic()
        changed = progress.phase != self.phase
        self.phase = progress.phase
        every = _PROGRESS_EVERY_SECONDS if progress.phase == "history" else _LIVE_PROGRESS_EVERY
        if changed:
            self.printed = now
            if progress.phase == "history" and progress.history_start is not None:
                end = progress.history_end or progress.history_start
                print(
                    f"company: set up ({progress.report.contacts} customers); playing "
                    f"{_local(progress.history_start, self.zone)} → {_local(end, self.zone)}"
                )
            elif progress.phase in ("live", "stopped"):
                print(f"company: {progress.phase} - {progress.report.summary()}")
        elif now - self.printed >= every:
            self.printed = now
            print(
                f"company: {_local(progress.simulated_now, self.zone)}: {progress.report.summary()}"
            )


def _local(at: datetime, zone: ZoneInfo) -> str:
    return at.astimezone(zone).strftime("%a %d %b %H:%M %Z")


def _ada_lovelace() -> Any:
    """The demo's contact request (a CreateContactRequest)."""
    from crm.contacts.v1 import contacts_pb2

    return contacts_pb2.CreateContactRequest(
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


async def _contact_through_gateway(stack: Stack, channel: grpc.aio.Channel, token: str) -> None:
    """Create a contact through the gateway and show its event on Kafka (quick)."""
    from crm.contacts.v1 import events_pb2
    from crm.gateway.v1 import gateway_pb2_grpc

    contacts = stack.services.get("contacts")
    if contacts is None:
        return
    topic = contacts.spec.topics[0]
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=stack.kafka.bootstrap_servers, auto_offset_reset="latest"
    )
    await consumer.start()
    try:
        await _positions_resolved(consumer)
        stub = gateway_pb2_grpc.ContactsServiceStub(channel)
        request = _ada_lovelace()
        try:
            reply = await stub.CreateContact(
                request, metadata=(("authorization", f"Bearer {token}"),), timeout=10
            )
        except grpc.aio.AioRpcError as exc:
            print(
                f"demo: CreateContact through the gateway failed: {exc.code().name} {exc.details()}"
            )
            return
        contact_id = reply.contact.id
        record = await _first_with_key(consumer, contact_id.encode(), _EVENT_TIMEOUT)
        if record is None:
            print(f"demo: no event for contact {contact_id} within {_EVENT_TIMEOUT:.0f} s")
            return
        headers = {name: value.decode(errors="replace") for name, value in record.headers}
        event = events_pb2.ContactCreated.FromString(record.value or b"")
        print(
            f"demo: contact {contact_id} created through the gateway reached Kafka: "
            f"{record.topic}[{record.partition}]@{record.offset}, {headers.get('ce_type')}, "
            f"by {headers.get('ce_actor')}, ce_time {headers.get('ce_time')} (the simulated "
            f"clock), {len(event.contact.identities)} identity"
        )
    finally:
        await consumer.stop()


async def _print_kpi_summary(
    channel: grpc.aio.Channel, token: str, company: SimulatedCompany
) -> None:
    """Once the metrics service has caught up, one screen of KPIs from the gateway."""
    from crm.gateway.v1 import gateway_pb2_grpc

    stub = gateway_pb2_grpc.MetricsServiceStub(channel)
    metadata = (("authorization", f"Bearer {token}"),)
    start = (company.history_start or company.clock.now()) - timedelta(days=1)
    end = company.clock.now() + timedelta(hours=1)
    try:
        await _metrics_settled(stub, metadata, start, end)
        totals = await stub.GetKpis(
            kpi_request(SUMMARY_KPIS, start, end), metadata=metadata, timeout=15
        )
        by_wait = await stub.GetKpis(
            kpi_request(("csat", "nps"), start, end, group_by="wait_bucket"),
            metadata=metadata,
            timeout=15,
        )
    except grpc.aio.AioRpcError as exc:
        print(f"demo: GetKpis through the gateway failed: {exc.code().name} {exc.details()}")
        return
    sales_lines = await sales_block(channel, token, company)
    values = {
        value.kpi.partition("@")[0]: value for group in totals.groups[:1] for value in group.totals
    }
    buckets = {
        group.value: {value.kpi.partition("@")[0]: value for value in group.totals}
        for group in by_wait.groups
    }
    for line in format_kpi_summary(
        company.profile.name,
        company.history_start,
        company.history_end,
        values,
        buckets,
        company.report,
        sales_lines,
    ):
        print(line)


async def sales_block(
    channel: grpc.aio.Channel, token: str, company: SimulatedCompany
) -> list[str]:
    """The summary's sales block, from the gateway's SalesService (a line saying why, if the
    sales service did not answer)."""
    from crm_devstack.sales_team import format_sales_summary, read_sales_summary

    try:
        summary = await read_sales_summary(channel, token)
    except grpc.aio.AioRpcError as exc:
        return [
            f"  sales        the SalesService did not answer: {exc.code().name} {exc.details()}"
        ]
    return format_sales_summary(summary, company.sales.report)


def kpi_request(kpis: Sequence[str], start: datetime, end: datetime, *, group_by: str = "") -> Any:
    """A ``GetKpisRequest`` for totals of ``kpis`` over ``[start, end)``."""
    from crm.metrics.v1 import metrics_pb2 as mpb

    start_time, end_time = Timestamp(), Timestamp()
    start_time.FromDatetime(start)
    end_time.FromDatetime(end)
    return mpb.GetKpisRequest(
        kpis=list(kpis),
        start_time=start_time,
        end_time=end_time,
        granularity=mpb.GRANULARITY_TOTAL,
        group_by=group_by,
    )


async def _metrics_settled(
    stub: Any, metadata: Any, start: datetime, end: datetime, timeout: float = 90.0
) -> None:
    """Wait until the metrics view's ticket count stops changing (three equal readings a
    second apart), at most ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    readings: list[float] = []
    while loop.time() < deadline:
        reply = await stub.GetKpis(
            kpi_request(("tickets_created",), start, end), metadata=metadata, timeout=10
        )
        totals = reply.groups[0].totals if reply.groups else []
        readings.append(totals[0].sum if totals else 0.0)
        if len(readings) >= 3 and readings[-1] > 0 and len(set(readings[-3:])) == 1:
            return
        await asyncio.sleep(1.0)
    print(f"demo: the metrics service was still catching up after {timeout:.0f} s")


def format_kpi_summary(
    company: str,
    start: datetime | None,
    end: datetime | None,
    values: Mapping[str, Any],
    by_wait: Mapping[str, Mapping[str, Any]],
    report: SimulationReport,
    sales_lines: Sequence[str] = (),
) -> list[str]:
    """The KPI summary as lines (``values``: ``crm.metrics.v1.KpiValue`` by KPI name;
    ``by_wait``: those of CSAT and NPS by customer-wait bucket; ``sales_lines``: the sales
    block, :func:`crm_devstack.sales_team.format_sales_summary`)."""
    span = ""
    if start is not None and end is not None:
        span = f" ({start:%a %d %b %H:%M} → {end:%a %d %b %H:%M} UTC)"
    rule = "─" * 96
    lines = [
        rule,
        f"{company} after the simulated days{span}, from the gateway's MetricsService.GetKpis",
        f"  simulator    {report.summary()}",
        f"  tickets      {_count(values, 'tickets_created')} created · "
        f"{_count(values, 'backlog')} in backlog · reopen rate {_rate(values, 'reopen_rate')} · "
        f"{_count(values, 'chasers')} chasers",
        f"  SLA met      first response {_rate(values, 'sla_first_response')} · "
        f"resolution {_rate(values, 'sla_resolution')}",
        f"  {'':<40}{'p50':>10}{'p90':>10}",
    ]
    for label, name in (
        ("first response, wall clock", "frt_wall"),
        ("first response, business clock", "frt_business"),
        ("resolution, wall clock", "resolution_wall"),
        ("resolution, business clock", "resolution_business"),
        ("company_frt (what the company sees)", "company_frt"),
        ("customer_wait (what the customer felt)", "customer_wait"),
        ("perception_gap", "perception_gap"),
    ):
        value = values.get(name)
        p50 = _duration(value.p50) if value is not None and value.HasField("p50") else "-"
        p90 = _duration(value.p90) if value is not None and value.HasField("p90") else "-"
        lines.append(f"  {label:<40}{p50:>10}{p90:>10}")
    csat = values.get("csat")
    answers = csat.count if csat is not None else 0
    lines += [
        f"  customers    CSAT {_rate(values, 'csat')} ({answers} answers) · "
        f"NPS {_score(values, 'nps')} · survey response {_rate(values, 'survey_response_rate')}",
        f"  green inside, red outside: {_rate(values, 'green_inside_red_outside')} of the tickets "
        f"that met their SLA · expectation breached {_rate(values, 'expectation_breach')} · "
        f"{_count(values, 'mentions')} mentions",
    ]
    cells = []
    for label in ("<1h", "1-4h", "4-12h", "12-24h", ">24h"):
        bucket = by_wait.get(label, {})
        csat_value = bucket.get("csat")
        if csat_value is None or not csat_value.HasField("value"):
            cells.append(f"{label} -")
        else:
            cells.append(f"{label} {csat_value.value:.0f} % ({csat_value.count})")
    lines += [f"  CSAT by customer wait   {' · '.join(cells)}", *sales_lines, rule]
    return lines


def _count(values: Mapping[str, Any], name: str) -> str:
    value = values.get(name)
    if value is None or not value.HasField("value"):
        return "-"
    return f"{value.value:.0f}"


def _rate(values: Mapping[str, Any], name: str) -> str:
    value = values.get(name)
    if value is None or not value.HasField("value"):
        return "-"
    return f"{value.value:.0f} %"


def _score(values: Mapping[str, Any], name: str) -> str:
    value = values.get(name)
    if value is None or not value.HasField("value"):
        return "-"
    return f"{value.value:+.0f}"


def _duration(seconds: float) -> str:
    """A duration for people: 45 s, 48 min, 3.2 h, 2.1 d (signed for gaps)."""
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    if seconds < 90:
        return f"{sign}{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{sign}{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{sign}{seconds / 3600:.1f} h"
    return f"{sign}{seconds / 86400:.1f} d"
