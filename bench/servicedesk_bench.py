"""Service desk benchmark: tickets and messages, mention ingestion, SLA timer precision.

Starts its own stack (Kafka, SecantusDB, the contacts and service-desk services as real
processes, as ``bench/contacts_bench.py`` does) on free ports in a temporary folder, drives it
over gRPC on 127.0.0.1 from this process, prints the figures, and stops. Three scenarios, each
bounded in count and time:

``tickets``
    Closed loop: C callers create tickets (an SLA policy and a routing rule apply, so routing,
    agent assignment, clocks and timers run), then add a customer message to each, then an
    agent reply (first response met, timers cancelled). Open loop: conversations (create,
    customer message, agent reply) started at a fixed rate.
``mentions``
    Batches of short social posts of varied sentiment streamed through ``IngestMentions``
    (several concurrent streams), first with no rule, then with a rule that opens a ticket
    for very negative posts; mentions/s until the last response and until the last
    ``MentionReceived`` is on Kafka, and the services' CPU per mention. ``--profile`` runs the
    service desk in this process under cProfile instead and prints where the time goes.
``timers``
    ``--tickets`` open tickets with SLA clocks and their durable timers written straight into
    the service desk's database with the service's own code (domain ``Ticket``, ``TICKETS``
    codec, ``timer_plan``, ``TimerStore.schedule``, a transaction per ``--insert-batch``).
    ``--breaching`` of them were opened ~30 min ago and not answered: their first-response
    breaches fall due ``--lead`` to ``--lead + --window`` seconds from now, a share of them at
    a few identical instants; the others were answered (their resolution timers are pending,
    due in hours). The timer worker of the service process fires the breaches; lateness is
    read from the ``SlaBreached`` events on Kafka (``fire_time - due_time``, the record's
    timestamp, and its arrival). ``--breaching`` equal to ``--tickets`` makes it a stress
    test of the fire throughput. ``--profile`` as for mentions, during the window.

    .venv/bin/python bench/servicedesk_bench.py [all|tickets|mentions|timers] [options]

``CRM_SECANTUS_BIN=/path/to/secantusd-rs`` (or ``CRM_SECANTUS=py``) chooses the database server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import os
import platform
import pstats
import random
import shutil
import statistics
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
from aiokafka import AIOKafkaConsumer
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import PyMongoError

from crm.contacts.v1 import contacts_pb2 as cpb
from crm.contacts.v1 import contacts_pb2_grpc
from crm.servicedesk.v1 import events_pb2, servicedesk_pb2_grpc
from crm.servicedesk.v1 import servicedesk_pb2 as pb
from crm_devstack.procs import free_ports
from crm_devstack.secantus import secantus_executable
from crm_devstack.stack import Stack, StackConfig
from crm_platform.mongo import MongoStore
from crm_platform.server import RunningService
from crm_platform.timers import Timer, TimerStore
from crm_servicedesk.domain.sla_policy import SlaPolicy
from crm_servicedesk.domain.ticket import Message, Ticket
from crm_servicedesk.domain.values import (
    AuthorType,
    Channel,
    Priority,
    SlaTarget,
    TicketType,
    Visibility,
)
from crm_servicedesk.settings import TOPIC, ServiceDeskSettings
from crm_servicedesk.storage import TICKETS, ServiceDeskStore
from crm_servicedesk.use_cases.sla import timer_plan

DESK = "servicedesk"
CONTACTS = "contacts"
DB = "secantus"


# -- measuring -----------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds the named processes used between :meth:`start` and :meth:`used`."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self._before: dict[str, float] = {}

    def start(self) -> CpuMeter:
        self._before = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        return self

    def used(self) -> dict[str, float]:
        return {name: cpu_seconds(pid) - self._before[name] for name, pid in self.pids.items()}


def pct(values: Sequence[float], p: float) -> float:
    """The ``p`` quantile (0..1) of sorted ``values`` (nearest rank below)."""
    return values[min(len(values) - 1, int(len(values) * p))] if values else float("nan")


def loadavg() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


OPS_HEADER = (
    "| workload | ops | errors | throughput | p50 ms | p99 ms | mean ms | desk CPU ms/op "
    "| contacts CPU ms/op | database CPU ms/op |\n|---|---|---|---|---|---|---|---|---|---|"
)


@dataclass
class Figures:
    """Throughput and latency of one workload, and the services' CPU time per operation."""

    name: str
    count: int
    seconds: float
    latencies_ms: list[float]
    errors: Counter[str] = field(default_factory=Counter)
    cpu_s: dict[str, float] = field(default_factory=dict)

    def row(self) -> str:
        lat = sorted(self.latencies_ms)
        ok = len(lat)
        mean = statistics.fmean(lat) if lat else float("nan")
        errors = ", ".join(f"{n} {code}" for code, n in self.errors.most_common()) or "0"

        def cpu(name: str) -> str:
            return f"{self.cpu_s[name] * 1000 / self.count:.2f}" if name in self.cpu_s else ""

        return (
            f"| {self.name} | {ok} | {errors} | {ok / self.seconds:,.0f}/s | "
            f"{pct(lat, 0.5):.1f} | {pct(lat, 0.99):.1f} | {mean:.1f} | {cpu(DESK)} | "
            f"{cpu(CONTACTS)} | {cpu(DB)} |"
        )


class Recorder:
    """Latencies and error codes of one kind of call."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.latencies_ms: list[float] = []
        self.errors: Counter[str] = Counter()

    async def call(self, started: float, call: Awaitable[Any]) -> Any | None:
        """Await ``call``; its latency counts from ``started`` (perf_counter)."""
        try:
            result = await call
        except grpc.aio.AioRpcError as exc:
            self.errors[exc.code().name] += 1
            return None
        self.latencies_ms.append((time.perf_counter() - started) * 1000)
        return result

    def figures(self, seconds: float, cpu_s: dict[str, float]) -> Figures:
        count = len(self.latencies_ms) + sum(self.errors.values())
        return Figures(self.name, count, seconds, self.latencies_ms, self.errors, cpu_s)


# -- the stack -----------------------------------------------------------------------------


def md(tenant: str, actor: str = "bench", actor_type: str = "agent") -> tuple[tuple[str, str], ...]:
    return (("x-tenant-id", tenant), ("x-actor-id", actor), ("x-actor-type", actor_type))


@dataclass
class Rig:
    """The running stack, stubs onto it, and direct access to the service desk's database."""

    stack: Stack
    desk_address: str
    pids: dict[str, int]
    mongo: MongoStore
    store: ServiceDeskStore
    timers: TimerStore
    tickets: servicedesk_pb2_grpc.TicketServiceAsyncStub
    config: servicedesk_pb2_grpc.ServiceDeskConfigServiceAsyncStub
    social: servicedesk_pb2_grpc.SocialListeningServiceAsyncStub
    contacts: contacts_pb2_grpc.ContactsServiceAsyncStub
    in_process: bool = False

    @property
    def kafka(self) -> str:
        return self.stack.kafka.bootstrap_servers

    def cpu(self) -> CpuMeter:
        return CpuMeter(self.pids).start()

    async def idle_cpu(self, seconds: float = 5.0) -> str:
        """The services' CPU use while nobody calls them (relay, timer worker, health)."""
        cpu = self.cpu()
        await asyncio.sleep(seconds)
        used = cpu.used()
        return ", ".join(f"{name} {s / seconds:.1%} of a core" for name, s in used.items())

    async def outbox_drained(self, timeout: float = 180.0) -> None:
        """Wait until the relay has published everything (the next scenario starts clean)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while await self.mongo.db["outbox"].count_documents({}):
                    await asyncio.sleep(0.5)


@contextlib.asynccontextmanager
async def running_stack(desk_in_process: bool = False, cache_size: str = "") -> AsyncIterator[Rig]:
    """Kafka, SecantusDB (``--sync-on-commit``), contacts as a process, the service desk as a
    process (or in this process, for profiling)."""
    home = Path(tempfile.mkdtemp(prefix="crm-bench-", dir=os.environ.get("CRM_HOME")))
    kafka_port, controller_port, mongo_port, contacts_port, desk_port = free_ports(5)
    config = StackConfig(
        home=home,
        kafka_port=kafka_port,
        kafka_controller_port=controller_port,
        mongodb_port=mongo_port,
        service_ports={CONTACTS: contacts_port, DESK: desk_port},
    )
    names = [CONTACTS] if desk_in_process else [CONTACTS, DESK]
    print(f"starting the stack under {home} ...", flush=True)
    stack = Stack(config, services=names)
    if cache_size:
        stack.secantus.cache_size = cache_size
    async with stack:
        contacts_pid = stack.services[CONTACTS].pid
        assert contacts_pid is not None
        db_pid = stack.secantus.pid
        assert db_pid is not None
        pids = {CONTACTS: contacts_pid, DB: db_pid}
        service: RunningService | None = None
        database = "crm_servicedesk"
        if desk_in_process:
            from crm_platform.telemetry import configure_telemetry
            from crm_servicedesk.bootstrap import bootstrap

            configure_telemetry(DESK)  # as the service process does (spans made, not exported)
            await stack.kafka.ensure_topics([TOPIC])
            settings = ServiceDeskSettings(
                grpc_listen_address=f"127.0.0.1:{desk_port}",
                mongodb_uri=stack.secantus.uri,
                kafka_bootstrap_servers=stack.kafka.bootstrap_servers,
                contacts_address=stack.services[CONTACTS].address,
                shutdown_delay_seconds=0,
            )
            database = settings.database_name
            service = RunningService(settings, await bootstrap(settings))
            await service.start()
            address = settings.grpc_listen_address
            pids[DESK] = os.getpid()  # the client's CPU counts too
        else:
            address = stack.services[DESK].address
            desk_pid = stack.services[DESK].pid
            assert desk_pid is not None
            pids[DESK] = desk_pid
        mongo = MongoStore(stack.secantus.uri, database, app_name="bench")
        options = [("grpc.max_send_message_length", 64 * 1024 * 1024)]
        try:
            async with (
                grpc.aio.insecure_channel(address, options=options) as channel,
                grpc.aio.insecure_channel(stack.services[CONTACTS].address) as contacts_channel,
            ):
                yield Rig(
                    stack=stack,
                    desk_address=address,
                    pids=pids,
                    mongo=mongo,
                    store=ServiceDeskStore(mongo),
                    timers=TimerStore(mongo.db),
                    tickets=servicedesk_pb2_grpc.TicketServiceStub(channel),
                    config=servicedesk_pb2_grpc.ServiceDeskConfigServiceStub(channel),
                    social=servicedesk_pb2_grpc.SocialListeningServiceStub(channel),
                    contacts=contacts_pb2_grpc.ContactsServiceStub(contacts_channel),
                    in_process=desk_in_process,
                )
        finally:
            await mongo.close()
            if service is not None:
                await service.stop()
    shutil.rmtree(config.data_dir, ignore_errors=True)
    print(f"logs in {config.logs_dir}", flush=True)


async def create_policy(
    rig: Rig, tenant: str, targets: Iterable[tuple[Any, int]], at_risk: float = 0.8
) -> pb.SlaPolicy:
    """A wall-clock SLA policy for every ticket: (target enum, seconds) pairs."""
    specs = [
        pb.SlaTargetSpec(target=target, clock=pb.CLOCK_KIND_WALL, duration=Duration(seconds=s))
        for target, s in targets
    ]
    response = await rig.config.CreateSlaPolicy(
        pb.CreateSlaPolicyRequest(
            policy=pb.SlaPolicy(
                name="standard", enabled=True, targets=specs, at_risk_fraction=at_risk
            )
        ),
        metadata=md(tenant),
    )
    return response.policy


async def create_rule(rig: Rig, tenant: str, rule: pb.RoutingRule) -> None:
    await rig.config.CreateRoutingRule(pb.CreateRoutingRuleRequest(rule=rule), metadata=md(tenant))


async def in_parallel(count: int, concurrency: int, make: Callable[[int], Awaitable[Any]]) -> None:
    """``make(0..count-1)`` with at most ``concurrency`` at a time."""
    indexes = iter(range(count))

    async def worker() -> None:
        for i in indexes:
            await make(i)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


# -- scenario 1: tickets and messages --------------------------------------------------------

SUBJECTS = [
    "My order never arrived",
    "Charged twice for the same invoice",
    "Cannot log in after the password reset",
    "Damaged item in the parcel",
    "Where is my refund?",
    "App crashes when I open the basket",
    "Change the delivery address of order",
    "Question about the warranty",
]
CUSTOMER_TEXTS = [
    "Hello, I am still waiting for an answer about this. Could you please check? Thanks",
    "Any news? The tracking page has not changed for five days.",
    "I attached the photos of the box, the corner is crushed.",
    "This is urgent, I need it before the weekend.",
]
AGENT_TEXTS = [
    "Hi, thanks for reaching out. I checked your order and a replacement ships today.",
    "Sorry for the trouble! The refund was issued and shows within 3-5 business days.",
    "Thank you for the photos. I have opened a claim with the carrier for you.",
]
TIERS = [cpb.VALUE_TIER_STANDARD] * 6 + [cpb.VALUE_TIER_SILVER] * 3 + [cpb.VALUE_TIER_GOLD]


async def setup_tickets(rig: Rig, tenant: str, args: argparse.Namespace) -> list[str]:
    """Policy, agents, a routing rule and contacts of the tickets tenant; returns contact ids."""
    await create_policy(
        rig,
        tenant,
        [
            (pb.SLA_TARGET_FIRST_RESPONSE, 3600),
            (pb.SLA_TARGET_NEXT_RESPONSE, 4 * 3600),
            (pb.SLA_TARGET_RESOLUTION, 24 * 3600),
        ],
    )
    for i in range(args.agents):
        await rig.config.PutAgent(
            pb.PutAgentRequest(
                agent=pb.Agent(id=f"agent-{i}", team_ids=["support"], available=True)
            ),
            metadata=md(tenant),
        )
    assign = {
        "team": pb.RuleAction(kind=pb.RULE_ACTION_KIND_ASSIGN_TEAM, team_id="support"),
        "round_robin": pb.RuleAction(
            kind=pb.RULE_ACTION_KIND_ASSIGN_AGENT,
            team_id="support",
            strategy=pb.ASSIGN_STRATEGY_ROUND_ROBIN,
        ),
        "least_open": pb.RuleAction(
            kind=pb.RULE_ACTION_KIND_ASSIGN_AGENT,
            team_id="support",
            strategy=pb.ASSIGN_STRATEGY_LEAST_OPEN,
        ),
    }[args.assign]
    await create_rule(
        rig,
        tenant,
        pb.RoutingRule(
            name="e-mail tickets to support",
            enabled=True,
            triggers=[pb.RULE_TRIGGER_TICKET_CREATED],
            condition=pb.RuleCondition(channels=[pb.CHANNEL_EMAIL, pb.CHANNEL_WEB_FORM]),
            actions=[assign, pb.RuleAction(kind=pb.RULE_ACTION_KIND_ADD_TAG, tag="support")],
        ),
    )
    contact_ids: list[str] = []

    async def contact(i: int) -> None:
        response = await rig.contacts.CreateContact(
            cpb.CreateContactRequest(
                contact=cpb.Contact(
                    given_name=f"Customer{i}",
                    family_name="Bench",
                    tier=TIERS[i % len(TIERS)],
                    identities=[
                        cpb.Identity(
                            kind=cpb.IDENTITY_KIND_EMAIL, value=f"{uuid.uuid4().hex}@example.com"
                        )
                    ],
                )
            ),
            metadata=md(tenant),
        )
        contact_ids.append(response.contact.id)

    await in_parallel(args.contacts, 16, contact)
    return contact_ids


def ticket_request(i: int, contact_ids: Sequence[str]) -> pb.CreateTicketRequest:
    return pb.CreateTicketRequest(
        ticket=pb.Ticket(
            type=pb.TICKET_TYPE_COMPLAINT if i % 3 else pb.TICKET_TYPE_SERVICE_REQUEST,
            channel=pb.CHANNEL_EMAIL if i % 4 else pb.CHANNEL_WEB_FORM,
            subject=f"{SUBJECTS[i % len(SUBJECTS)]} #{i}",
            description="Ordered on the 3rd, paid by card. " * 4,
            contact_id=contact_ids[i % len(contact_ids)],
            category="orders",
        )
    )


def message_request(ticket: pb.Ticket, i: int, agent: bool) -> pb.AddMessageRequest:
    if agent:
        message = pb.Message(
            author_type=pb.AUTHOR_TYPE_AGENT,
            author_id=ticket.assignee_id or "agent-0",
            visibility=pb.VISIBILITY_PUBLIC,
            body=AGENT_TEXTS[i % len(AGENT_TEXTS)],
        )
    else:
        message = pb.Message(
            author_type=pb.AUTHOR_TYPE_CUSTOMER,
            visibility=pb.VISIBILITY_PUBLIC,
            body=CUSTOMER_TEXTS[i % len(CUSTOMER_TEXTS)],
        )
    return pb.AddMessageRequest(ticket_id=ticket.id, message=message)


async def bench_tickets(rig: Rig, args: argparse.Namespace) -> list[str]:
    tenant = f"bench-tickets-{uuid.uuid4().hex[:6]}"
    contact_ids = await setup_tickets(rig, tenant, args)
    meta = md(tenant)
    created: list[pb.Ticket] = []

    async def create(recorder: Recorder, i: int) -> pb.Ticket | None:
        started = time.perf_counter()
        reply = await recorder.call(
            started, rig.tickets.CreateTicket(ticket_request(i, contact_ids), metadata=meta)
        )
        return None if reply is None else reply.ticket

    async def say(recorder: Recorder, ticket: pb.Ticket, i: int, agent: bool) -> None:
        started = time.perf_counter()
        await recorder.call(
            started, rig.tickets.AddMessage(message_request(ticket, i, agent), metadata=meta)
        )

    warm = Recorder("warm-up")
    for i in range(20):  # connections, indexes, caches
        ticket = await create(warm, i)
        if ticket is not None:
            await say(warm, ticket, i, False)
            await say(warm, ticket, i, True)

    await rig.outbox_drained()
    idle = await rig.idle_cpu()

    async def closed_loop(
        name: str, total: int, call: Callable[[Recorder, int], Awaitable[Any]]
    ) -> Figures:
        recorder = Recorder(f"{name}, closed loop x{args.concurrency}")
        cpu = rig.cpu()
        started = time.perf_counter()
        await in_parallel(total, args.concurrency, lambda i: call(recorder, i))
        figures = recorder.figures(time.perf_counter() - started, cpu.used())
        print(figures.row(), flush=True)
        return figures

    async def create_one(recorder: Recorder, i: int) -> None:
        ticket = await create(recorder, i)
        if ticket is not None:
            created.append(ticket)

    print(OPS_HEADER, flush=True)
    results = [await closed_loop("CreateTicket", args.creates, create_one)]
    tickets = list(created)
    results.append(
        await closed_loop(
            "AddMessage (customer)",
            len(tickets),
            lambda recorder, i: say(recorder, tickets[i], i, False),
        )
    )
    results.append(
        await closed_loop(
            "AddMessage (agent reply, first response)",
            len(tickets),
            lambda recorder, i: say(recorder, tickets[i], i, True),
        )
    )
    await rig.outbox_drained()

    # Open loop: conversations started at a fixed rate, whatever the latency.
    rate = args.rate
    creates = Recorder(f"CreateTicket @ {rate:g} conversations/s")
    customers = Recorder(f"AddMessage (customer) @ {rate:g}/s")
    replies = Recorder(f"AddMessage (agent reply) @ {rate:g}/s")

    async def conversation(i: int, scheduled: float) -> None:
        reply = await creates.call(
            scheduled,
            rig.tickets.CreateTicket(ticket_request(args.creates + i, contact_ids), metadata=meta),
        )
        if reply is None:
            return
        ticket = reply.ticket
        await say(customers, ticket, i, False)
        await say(replies, ticket, i, True)

    total = int(rate * args.seconds)
    cpu = rig.cpu()
    started = time.perf_counter()
    tasks = []
    for i in range(total):
        scheduled = started + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(conversation(i, scheduled)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    used = cpu.used()
    calls = sum(len(r.latencies_ms) + sum(r.errors.values()) for r in (creates, customers, replies))
    for recorder in (creates, customers, replies):
        figures = recorder.figures(elapsed, {})
        results.append(figures)
        print(figures.row(), flush=True)
    open_cpu = ", ".join(f"{name} {s * 1000 / max(calls, 1):.2f}" for name, s in used.items())
    note = f"open loop: {calls} calls in {elapsed:.1f}s, service CPU ms per call (any kind): "
    await rig.outbox_drained()
    return [
        f"tickets: tenant with 1 SLA policy (3 wall-clock targets), routing rule "
        f"'{args.assign}' over {args.agents} agents + tag, {len(contact_ids)} contacts",
        "",
        OPS_HEADER,
        *(f.row() for f in results),
        "",
        note + open_cpu,
        f"idle CPU before the runs: {idle}",
    ]


# -- scenario 2: mention ingestion -----------------------------------------------------------

BRANDS = ["acme", "AcmeAir", "acme_support"]
PRODUCTS = ["app", "headphones", "router", "subscription", "delivery", "X200 phone", "flight"]
POSITIVE = [
    "love the new {p} from @{b}, works perfectly",
    "thanks @{b} support, fixed in minutes",
    "best customer service I've had in years, great job @{b}",
    "the {p} update is so much faster now, nice",
    "shoutout to @{b} for the quick refund, really appreciate it",
    "@{b} happy with my {p} so far :)",
]
NEUTRAL = [
    "anyone know if @{b} ships the {p} to Canada?",
    "@{b} {p} vs the other one, thoughts?",
    "just ordered the {p} from @{b}",
    "is @{b} down right now or is it me",
    "what time does @{b} support open on Sundays",
    "@{b} does the {p} come in blue",
]
NEGATIVE = [
    "still waiting for my refund from @{b}, two weeks now",
    "my {p} stopped working after two days @{b}",
    "been on hold for 40 minutes with @{b}",
    "disappointed with the {p}, not what was advertised",
    "@{b} the {p} is late again, not happy",
    "why is the @{b} {p} so slow today",
]
VERY_NEGATIVE = [
    "@{b} worst service ever!!! nobody answers and my {p} is lost. absolutely furious",
    "@{b} is a scam, terrible {p}, I hate this company",
    "DO NOT buy the {p} from @{b}. Horrible experience, total waste of money!!!",
    "@{b} you ruined my trip, awful, disgusting treatment, never again",
]
TAILS = ["", "", "", " #fail", " #help", " lol", " smh", " 🙏", " 😡", " 👍", " !!", "?", " #acme"]
NETWORKS = ["x", "instagram", "reddit", "facebook", "tiktok"]


def handle_of(n: int) -> tuple[str, str]:
    """Author number → (network, handle); the same author always posts on one network."""
    return NETWORKS[n % len(NETWORKS)], f"user{n}"


def mention_corpus(count: int, seed: int, prefix: str, authors: int) -> list[pb.Mention]:
    """``count`` short posts: ~35 % positive, 35 % neutral, 25 % negative, 5 % very negative;
    authors drawn with a long tail (a few post a lot)."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    out = []
    for i in range(count):
        roll = rng.random()
        pool = (
            POSITIVE
            if roll < 0.35
            else NEUTRAL
            if roll < 0.70
            else NEGATIVE
            if roll < 0.95
            else VERY_NEGATIVE
        )
        text = rng.choice(pool).format(b=rng.choice(BRANDS), p=rng.choice(PRODUCTS))
        if rng.random() < 0.1:
            text = text.upper()
        text += rng.choice(TAILS)
        author = min(int(rng.paretovariate(1.2)) - 1, authors - 1)
        author = author if rng.random() < 0.5 else rng.randrange(authors)
        network, handle = handle_of(author)
        posted = now - timedelta(seconds=rng.uniform(0, 3600))
        stamp = Timestamp()
        stamp.FromDatetime(posted)
        post_id = f"{prefix}{i}"
        out.append(
            pb.Mention(
                network=network,
                post_id=post_id,
                author_handle=f"@{handle}" if rng.random() < 0.5 else handle.title(),
                author_followers=int(rng.paretovariate(1.1) * 50),
                text=text,
                url=f"https://{network}.example/{handle}/status/{post_id}",
                posted_time=stamp,
                brand="acme",
            )
        )
    return out


def batches(mentions: Sequence[pb.Mention], size: int) -> list[pb.IngestMentionsRequest]:
    return [
        pb.IngestMentionsRequest(mentions=mentions[i : i + size])
        for i in range(0, len(mentions), size)
    ]


class MentionTail:
    """Counts ``MentionReceived`` events per tenant on the service desk's topic."""

    def __init__(self, bootstrap: str) -> None:
        self.consumer = AIOKafkaConsumer(
            TOPIC, bootstrap_servers=bootstrap, auto_offset_reset="latest", fetch_max_wait_ms=20
        )
        self.counts: Counter[str] = Counter()
        self.last_arrival: dict[str, float] = {}
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
                    if headers.get("ce_type", b"").endswith(b".MentionReceived"):
                        tenant = headers["ce_tenantid"].decode()
                        self.counts[tenant] += 1
                        self.last_arrival[tenant] = now

    async def wait_for(self, tenant: str, count: int, timeout: float) -> float | None:
        """perf_counter time the ``count``-th event of ``tenant`` arrived (None: timed out)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self.counts[tenant] < count:
                    await asyncio.sleep(0.05)
                return self.last_arrival[tenant]
        return None

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.consumer.stop()


MENTION_HEADER = (
    "| workload | mentions | tickets opened | until last response | mentions/s | "
    "until all on Kafka | mentions/s e2e | desk CPU µs/mention (ingest / incl. relay) | "
    "contacts CPU µs/mention | database CPU µs/mention |\n|---|---|---|---|---|---|---|---|---|---|"
)


@dataclass
class IngestRun:
    name: str
    mentions: int
    accepted: int
    opened: int
    seconds: float
    kafka_seconds: float | None
    cpu_ingest: dict[str, float]
    cpu_total: dict[str, float]

    def row(self) -> str:
        kafka = "timed out" if self.kafka_seconds is None else f"{self.kafka_seconds:.1f} s"
        e2e = "" if self.kafka_seconds is None else f"{self.accepted / self.kafka_seconds:,.0f}"
        per = 1e6 / max(self.accepted, 1)
        desk = f"{self.cpu_ingest.get(DESK, 0) * per:.0f} / {self.cpu_total.get(DESK, 0) * per:.0f}"
        return (
            f"| {self.name} | {self.accepted} of {self.mentions} | {self.opened} | "
            f"{self.seconds:.1f} s | {self.accepted / self.seconds:,.0f} | {kafka} | {e2e} | "
            f"{desk} | {self.cpu_total.get(CONTACTS, 0) * per:.0f} | "
            f"{self.cpu_total.get(DB, 0) * per:.0f} |"
        )


async def ingest(
    rig: Rig,
    tail: MentionTail,
    tenant: str,
    name: str,
    requests: Sequence[pb.IngestMentionsRequest],
    streams: int,
    profile: cProfile.Profile | None = None,
) -> IngestRun:
    """Stream ``requests`` over ``streams`` concurrent ``IngestMentions`` calls."""
    meta = md(tenant, "social-connector", "integration")
    before = tail.counts[tenant]
    mentions = sum(len(r.mentions) for r in requests)

    async def stream(mine: Sequence[pb.IngestMentionsRequest]) -> pb.IngestMentionsResponse:
        async def gen() -> AsyncIterator[pb.IngestMentionsRequest]:
            for request in mine:
                yield request

        response: pb.IngestMentionsResponse = await rig.social.IngestMentions(gen(), metadata=meta)
        return response

    cpu = rig.cpu()
    if profile is not None:
        profile.enable()
    started = time.perf_counter()
    responses = await asyncio.gather(*(stream(requests[k::streams]) for k in range(streams)))
    done = time.perf_counter()
    if profile is not None:
        profile.disable()
    cpu_ingest = cpu.used()
    accepted = sum(r.accepted for r in responses)
    opened = sum(r.tickets_opened for r in responses)
    arrived = await tail.wait_for(tenant, before + accepted, timeout=180)
    cpu_total = cpu.used()
    return IngestRun(
        name,
        mentions,
        accepted,
        opened,
        done - started,
        None if arrived is None else arrived - started,
        cpu_ingest,
        cpu_total,
    )


async def known_authors(rig: Rig, tenant: str, count: int) -> None:
    """The first ``count`` authors (the most active ones) are contacts with their handle."""

    async def one(n: int) -> None:
        network, handle = handle_of(n)
        await rig.contacts.CreateContact(
            cpb.CreateContactRequest(
                contact=cpb.Contact(
                    display_name=f"@{handle}",
                    identities=[
                        cpb.Identity(
                            kind=cpb.IDENTITY_KIND_SOCIAL,
                            value=handle,
                            network=cpb.SocialNetwork.Value(f"SOCIAL_NETWORK_{network.upper()}"),
                        )
                    ],
                )
            ),
            metadata=md(tenant),
        )

    await in_parallel(count, 16, one)


def sentiment_shares(mentions: Sequence[pb.Mention], below: float) -> str:
    """Shares of the corpus by VADER class (the service's own scorer), on a sample."""
    from crm_servicedesk.domain.sentiment import classify, polarity

    sample = [m.text for m in mentions[:3000]]
    scores = [polarity(text) for text in sample]
    classes = Counter(classify(score).value for score in scores)
    share = {name: n / len(scores) for name, n in classes.items()}
    very = sum(score < below for score in scores) / len(scores)
    return (
        f"sentiment of the corpus (VADER, sample {len(scores)}): "
        f"{share.get('positive', 0):.0%} positive, {share.get('neutral', 0):.0%} neutral, "
        f"{share.get('negative', 0):.0%} negative; {very:.1%} below {below}"
    )


async def bench_mentions(rig: Rig, args: argparse.Namespace) -> list[str]:
    run = uuid.uuid4().hex[:6]
    plain, ruled = f"bench-mentions-{run}", f"bench-mentions-rule-{run}"
    for tenant in (plain, ruled, f"warm-{run}"):
        await known_authors(rig, tenant, args.known_authors)
    await create_policy(
        rig, ruled, [(pb.SLA_TARGET_FIRST_RESPONSE, 3600), (pb.SLA_TARGET_RESOLUTION, 86400)]
    )
    await create_rule(
        rig,
        ruled,
        pb.RoutingRule(
            name="very negative posts become complaints",
            enabled=True,
            triggers=[pb.RULE_TRIGGER_MENTION_RECEIVED],
            condition=pb.RuleCondition(sentiment_below=args.open_below),
            actions=[pb.RuleAction(kind=pb.RULE_ACTION_KIND_OPEN_TICKET)],
        ),
    )
    print("building the corpus ...", flush=True)
    corpus = mention_corpus(args.mentions, 1, f"p{run}-", args.authors)
    rule_corpus = mention_corpus(args.rule_mentions, 2, f"r{run}-", args.authors)
    warm = mention_corpus(4 * args.batch, 3, f"w{run}-", args.authors)
    shares = sentiment_shares(corpus, args.open_below)
    print(shares, flush=True)
    tail = MentionTail(rig.kafka)
    await tail.start()
    profile = cProfile.Profile() if rig.in_process else None
    try:
        await ingest(rig, tail, f"warm-{run}", "warm-up", batches(warm, args.batch), args.streams)
        await rig.outbox_drained()
        print(MENTION_HEADER, flush=True)
        runs = []
        first = await ingest(
            rig,
            tail,
            plain,
            f"no rule, {args.streams} streams x batches of {args.batch}",
            batches(corpus, args.batch),
            args.streams,
            profile,
        )
        runs.append(first)
        print(first.row(), flush=True)
        await rig.outbox_drained()
        if args.rule_mentions and profile is None:
            second = await ingest(
                rig,
                tail,
                ruled,
                f"rule: open a ticket below {args.open_below}",
                batches(rule_corpus, args.batch),
                args.streams,
            )
            runs.append(second)
            print(second.row(), flush=True)
            await rig.outbox_drained()
    finally:
        await tail.stop()
    lines = [
        f"mentions: {args.authors} authors ({args.known_authors} known contacts), "
        f"{args.streams} concurrent IngestMentions streams, batches of {args.batch}",
        shares,
        "",
        MENTION_HEADER,
        *(r.row() for r in runs),
    ]
    if profile is not None:
        lines += ["", *profile_report(profile, first.accepted, "mention", MENTION_STEPS)]
    return lines


# -- profiling (mentions --profile) -----------------------------------------------------------

PROFILE_OUT = os.environ.get("BENCH_PROFILE_OUT", "")
"""Where to save the raw cProfile statistics too (for ``python -m pstats``), if set."""

PROFILE_GROUPS = [
    ("vaderSentiment", "VADER sentiment"),
    ("protovalidate", "protovalidate (request validation)"),
    ("pydantic", "pydantic (document codecs)"),
    ("bson", "BSON encode/decode"),
    ("pymongo", "PyMongo driver"),
    ("opentelemetry", "OpenTelemetry"),
    ("grpc", "gRPC (Python side)"),
    ("google/protobuf", "protobuf"),
    ("well_known_types", "protobuf"),
    ("aiokafka", "aiokafka (relay)"),
    ("socket", "socket send/recv"),
    ("select.epoll", "waiting (epoll)"),
    ("asyncio", "asyncio event loop"),
    ("crm_servicedesk/domain", "service desk domain"),
    ("crm_servicedesk", "service desk use cases/storage/contract/api"),
    ("crm_platform", "crm_platform (outbox, events, timers, interceptors)"),
    ("servicedesk_bench", "benchmark client"),
]

# (label, file substring, function): inclusive time of the service's steps. For coroutines
# cProfile counts each resumption as a call and their time excludes the time spent awaiting.
MENTION_STEPS = [
    ("IngestMentions handler (everything below)", "api/social.py", "IngestMentions"),
    ("  request validation (protovalidate)", "interceptors.py", "_validate"),
    ("  SocialListening.ingest_mentions", "use_cases/social.py", "ingest_mentions"),
    ("    Mention.ingest (checks + sentiment)", "domain/mention.py", "ingest"),
    ("      VADER polarity", "domain/sentiment.py", "polarity"),
    ("    existing_mentions (2 finds, decode)", "storage.py", "existing_mentions"),
    ("    contacts lookup_authors (gRPC call)", "contacts_directory.py", "lookup_authors"),
    ("    routing rules: evaluate", "domain/routing.py", "evaluate"),
    ("    insert_mentions (codec + insert_many)", "storage.py", "insert_mentions"),
    ("      MENTIONS.to_document (pydantic + _bson)", "storage.py", "to_document"),
    ("    MentionReceived protos (mention_to_proto)", "contract.py", "mention_to_proto"),
    ("    Event.of (serialise, id, headers)", "crm_platform/events.py", "of"),
    ("    Outbox.add (documents + insert_many)", "crm_platform/outbox.py", "add"),
    ("    commit", "client_session.py", "commit_transaction"),
    ("relay: publish_once (read, send, delete)", "crm_platform/outbox.py", "publish_once"),
    ("  aiokafka producer.send", "aiokafka/producer/producer.py", "send"),
    ("  Outbox.pending (find + decode + sort)", "crm_platform/outbox.py", "pending"),
]
TIMER_STEPS = [
    ("TimerWorker.fire_due (everything below)", "crm_platform/timers.py", "fire_due"),
    ("  TimerStore.due (find due timers)", "crm_platform/timers.py", "due"),
    ("  TimerStore.mark_fired (find + update_many)", "crm_platform/timers.py", "mark_fired"),
    ("  SlaTimers.fire", "use_cases/sla_timers.py", "fire"),
    ("    read the ticket (find + TICKETS decode)", "storage.py", "ticket"),
    ("      Codec.from_document (pydantic)", "storage.py", "from_document"),
    ("    routing (Router.route: list rules, evaluate)", "use_cases/routing.py", "route"),
    ("    apply_policy (list policies, select)", "use_cases/sla.py", "apply_policy"),
    ("    TicketChanges.write (save ticket, timers, events)", "use_cases/changes.py", "write"),
    ("      save_ticket (to_document + replace)", "storage.py", "save_ticket"),
    ("      Codec.to_document (pydantic + _bson)", "storage.py", "to_document"),
    ("      sla_to_proto (SlaClocksChanged)", "contract.py", "sla_to_proto"),
    ("      Outbox.add", "crm_platform/outbox.py", "add"),
    ("  commit", "client_session.py", "commit_transaction"),
    ("TimerWorker._until_next_due", "crm_platform/timers.py", "_until_next_due"),
    ("relay: publish_once (read, send, delete)", "crm_platform/outbox.py", "publish_once"),
    ("  aiokafka producer.send", "aiokafka/producer/producer.py", "send"),
]


def profile_report(
    profile: cProfile.Profile,
    count: int,
    unit: str,
    steps: Sequence[tuple[str, str, str]],
) -> list[str]:
    """Inclusive time of the service's steps and own time per library, per ``unit``."""
    stats = pstats.Stats(profile)
    if PROFILE_OUT:
        stats.dump_stats(PROFILE_OUT)
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, Any]]
    raw = stats.stats  # type: ignore[attr-defined]
    groups: dict[str, float] = {}
    total = 0.0
    for (filename, _, function), (_, _, tottime, _, _) in raw.items():
        total += tottime
        where = function if filename == "~" else filename
        name = next((label for key, label in PROFILE_GROUPS if key in where), "other")
        if filename == "~" and name == "other":
            name = "built-ins (isinstance, str, dict...)"
        groups[name] = groups.get(name, 0.0) + tottime
    per = 1e6 / max(count, 1)
    lines = [
        f"cProfile of the in-process service desk (+ client, + its own overhead): {total:.2f} s "
        f"for {count} x {unit} ({total * per:.0f} µs/{unit})",
        "",
        f"| step (inclusive) | µs/{unit} | share |",
        "|---|---|---|",
    ]
    for label, file_part, function in steps:
        seconds = sum(
            cumtime
            for (filename, _, name), (_, _, _, cumtime, _) in raw.items()
            if file_part in filename and name == function
        )
        lines.append(f"| {label} | {seconds * per:.0f} | {seconds / total:.0%} |")
    lines += ["", f"| library (own time) | µs/{unit} | share |", "|---|---|---|"]
    for name, seconds in sorted(groups.items(), key=lambda item: -item[1]):
        lines.append(f"| {name} | {seconds * per:.0f} | {seconds / total:.0%} |")
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(20)
    lines += ["", "top functions by own time:", out.getvalue()]
    return lines


def cpu_breakdown(args: argparse.Namespace) -> list[str]:
    """Per-mention cost of the pure-CPU steps of an ingest, timed one by one in this process
    with the service's own functions (no database, no network)."""
    import protovalidate

    from crm.servicedesk.v1 import events_pb2 as epb
    from crm_platform.context import Actor, ActorType, CallContext
    from crm_platform.events import Event
    from crm_servicedesk import contract
    from crm_servicedesk.api.social import mention_draft
    from crm_servicedesk.domain.mention import Mention
    from crm_servicedesk.domain.routing import Trigger, evaluate
    from crm_servicedesk.domain.sentiment import polarity
    from crm_servicedesk.storage import MENTIONS, scoped_id
    from crm_servicedesk.use_cases.routing import mention_facts

    corpus = mention_corpus(args.batch * 4, 7, "b-", args.authors)
    requests = batches(corpus, args.batch)
    wire = [r.SerializeToString() for r in requests]
    now = datetime.now(UTC)
    call = CallContext("t", Actor(ActorType.INTEGRATION, "social-listening"))
    drafts = [mention_draft(m) for m in corpus]
    mentions = [
        Mention.ingest(
            tenant_id="t",
            network=d.network,
            post_id=d.post_id,
            author_handle=d.author_handle,
            author_followers=d.author_followers,
            text=d.text,
            url=d.url,
            posted_at=d.posted_at,
            in_reply_to=d.in_reply_to,
            brand=d.brand,
            at=now,
        )
        for d in drafts
    ]

    def parse() -> None:
        for data in wire:
            pb.IngestMentionsRequest.FromString(data)

    def validate() -> None:
        for request in requests:
            protovalidate.validate(request)

    def drafts_() -> None:
        for m in corpus:
            mention_draft(m)

    def score() -> None:
        for d in drafts:
            polarity(d.text)

    def ingest_() -> None:
        for d in drafts:
            Mention.ingest(
                tenant_id="t",
                network=d.network,
                post_id=d.post_id,
                author_handle=d.author_handle,
                author_followers=d.author_followers,
                text=d.text,
                url=d.url,
                posted_at=d.posted_at,
                in_reply_to=d.in_reply_to,
                brand=d.brand,
                at=now,
            )

    def rules() -> None:
        for m in mentions:
            evaluate([], Trigger.MENTION_RECEIVED, mention_facts(m, now))

    def documents() -> None:
        for m in mentions:
            MENTIONS.to_document(m, doc_id=scoped_id(m.tenant_id, m.mention_id))

    def events() -> None:
        for m in mentions:
            Event.of(
                epb.MentionReceived(mention=contract.mention_to_proto(m)),
                source="/crm/servicedesk",
                subject=f"mentions/{m.mention_id}",
                key=m.author_key,
                call=call,
                time=m.posted_at,
            )

    steps: list[tuple[str, Callable[[], None]]] = [
        ("parse the request (protobuf)", parse),
        ("protovalidate the request", validate),
        ("proto → MentionDraft", drafts_),
        ("VADER polarity alone", score),
        ("Mention.ingest (validation + VADER)", ingest_),
        ("routing rules (none) on mention facts", rules),
        ("MENTIONS.to_document (pydantic)", documents),
        ("MentionReceived event (proto + Event.of)", events),
    ]
    lines = [
        f"pure-CPU steps per mention ({len(corpus)} mentions, best of 3, this process):",
        "",
        "| step | µs/mention |",
        "|---|---|",
    ]
    for name, step in steps:
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            step()
            best = min(best, time.perf_counter() - started)
        lines.append(f"| {name} | {best * 1e6 / len(corpus):.1f} |")
    return lines


# -- scenario 3: SLA timer precision ----------------------------------------------------------


@dataclass
class Breach:
    due: float
    fire: float
    kafka: float
    arrival: float


class BreachTail:
    """``SlaBreached`` events of one tenant: due time, fire time, record time, arrival."""

    def __init__(self, bootstrap: str, tenant: str) -> None:
        self.consumer = AIOKafkaConsumer(
            TOPIC,
            bootstrap_servers=bootstrap,
            auto_offset_reset="latest",
            fetch_max_wait_ms=20,
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )
        self.tenant = tenant.encode()
        self.breaches: dict[str, Breach] = {}
        self.duplicates = 0
        self.events = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.consumer.start()
        await self.consumer.seek_to_end()
        self._task = asyncio.create_task(self._tail())

    async def _tail(self) -> None:
        while True:
            batch = await self.consumer.getmany(timeout_ms=100, max_records=20_000)
            now = time.time()
            for records in batch.values():
                for record in records:
                    headers = dict(record.headers)
                    if headers.get("ce_tenantid") != self.tenant:
                        continue
                    self.events += 1
                    if not headers.get("ce_type", b"").endswith(b".SlaBreached"):
                        continue
                    assert record.value is not None
                    event = events_pb2.SlaBreached.FromString(record.value)
                    key = f"{event.ticket_id}:{event.target}"
                    if key in self.breaches:
                        self.duplicates += 1
                        continue
                    self.breaches[key] = Breach(
                        due=event.due_time.ToNanoseconds() / 1e9,
                        fire=event.fire_time.ToNanoseconds() / 1e9,
                        kafka=record.timestamp / 1000,
                        arrival=now,
                    )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.consumer.stop()


LATENESS_HEADER = (
    "| lateness | breaches | p50 ms | p90 ms | p99 ms | max ms | mean ms |\n"
    "|---|---|---|---|---|---|---|"
)


def lateness_row(name: str, values_s: Iterable[float], unfired_s: Sequence[float] = ()) -> str:
    """Quantiles over every breach that was due; those that had not fired when the benchmark
    stopped count with their lower bound (shown as ``>=``)."""
    values = sorted([(v * 1000, False) for v in values_s] + [(v * 1000, True) for v in unfired_s])
    if not values:
        return f"| {name} | 0 | | | | | |"

    # Exact while below every lower bound; from there on only a lower bound itself.
    bound = min((v * 1000 for v in unfired_s), default=float("inf"))

    def cell(p: float) -> str:
        value, _ = values[min(len(values) - 1, int(len(values) * p))]
        return f"{'>=' if value >= bound else ''}{value:.0f}"

    fired = [v for v, censored in values if not censored]
    mean = f"{statistics.fmean(fired):.0f}" if fired and not unfired_s else ""
    return (
        f"| {name} | {len(fired)} | {cell(0.5)} | {cell(0.9)} | {cell(0.99)} | "
        f"{cell(1.0)} | {mean} |"
    )


@dataclass(frozen=True)
class Planned:
    """One open ticket of the timers scenario: breaching in the window at ``due``, or opened
    at ``opened`` and answered already (only its resolution clock runs, due hours later)."""

    breaching: bool
    due: float = 0.0
    opened: float = 0.0


def ticket_plan(args: argparse.Namespace, start: float) -> tuple[list[Planned], list[float]]:
    """``--breaching`` tickets whose first response falls due in the window (``--bunched``
    of them at ``--bunches`` whole seconds, the rest uniform, whole ms), the other open
    tickets answered and opened 1 to 6 h ago; shuffled. Also returns the bunch instants."""
    rng = random.Random(11)
    breaching = min(args.breaching, args.tickets)
    bunched = int(breaching * args.bunched)
    first, last = start + args.lead, start + args.lead + args.window
    instants = [
        float(int(first + (k + 0.5) * args.window / args.bunches)) for k in range(args.bunches)
    ]
    plan = [Planned(True, due=instants[i % len(instants)]) for i in range(bunched)]
    plan += [
        Planned(True, due=round(rng.uniform(first, last), 3)) for _ in range(breaching - bunched)
    ]
    plan += [
        Planned(False, opened=round(start - rng.uniform(3600, 6 * 3600), 3))
        for _ in range(args.tickets - breaching)
    ]
    rng.shuffle(plan)
    return plan, instants


def open_ticket(
    policy: SlaPolicy, tenant: str, contact: str, planned: Planned, i: int, now: datetime
) -> tuple[Ticket, list[Timer]]:
    """An open ticket as the service would have stored it by ``now`` (with the domain's own
    operations: opened under ``policy``, answered by an agent if not breaching, at-risk
    warnings that fell due recorded), and the timers it would have armed."""
    seconds = next(t.seconds for t in policy.targets if t.target is SlaTarget.FIRST_RESPONSE)
    due = datetime.fromtimestamp(planned.due, UTC)
    opened = (
        due - timedelta(seconds=seconds)
        if planned.breaching
        else datetime.fromtimestamp(planned.opened, UTC)
    )
    ticket = Ticket.open(
        ticket_id=uuid.uuid4().hex,
        tenant_id=tenant,
        type_=TicketType.COMPLAINT,
        channel=Channel.EMAIL,
        priority=Priority.NORMAL,
        subject=f"{SUBJECTS[i % len(SUBJECTS)]} #{i}",
        description="Ordered on the 3rd, paid by card.",
        contact_id=contact,
        customer_tier="standard",
        assignee_id="",
        team_id="support",
        tags=("support",),
        category="orders",
        product="",
        first_touch_at=None,
        interactions=(),
        source_mention_id="",
        at=opened,
    ).with_policy(policy, None)
    changes = 1
    if not planned.breaching:
        reply = Message(
            message_id=uuid.uuid4().hex,
            ticket_id=ticket.ticket_id,
            tenant_id=tenant,
            author_type=AuthorType.AGENT,
            author_id="agent-1",
            visibility=Visibility.PUBLIC,
            channel=Channel.EMAIL,
            body=AGENT_TEXTS[i % len(AGENT_TEXTS)],
            sent_at=opened + timedelta(seconds=seconds / 2),
        )
        ticket, _, _ = ticket.add_message(reply, None)
        changes += 1
    assert ticket.sla is not None
    for clock in ticket.sla.clocks:
        if clock.at_risk_at is not None and clock.at_risk_at <= now:
            warned = ticket.warn_at_risk(clock.target, clock.at_risk_at)
            if warned is not None:
                ticket, changes = warned, changes + 1
    if planned.breaching:
        assert ticket.sla is not None
        first_response = ticket.sla.clock(SlaTarget.FIRST_RESPONSE)
        assert first_response is not None
        assert first_response.due_at == due
    ticket = replace(ticket, version=changes)
    # As ServiceLevels.arm_timers schedules them.
    timers = [
        Timer(
            timer_id=timer_id,
            tenant_id=tenant,
            due_at=due_at,
            kind=timer_id.rsplit(":", 1)[1],
            payload={"ticket_id": ticket.ticket_id, "target": timer_id.split(":")[1]},
        )
        for timer_id, due_at in timer_plan(ticket).items()
        if due_at is not None
    ]
    return ticket, timers


async def bench_timers(rig: Rig, args: argparse.Namespace) -> list[str]:
    tenant = f"bench-timers-{uuid.uuid4().hex[:6]}"
    meta = md(tenant)
    targets = [(pb.SLA_TARGET_FIRST_RESPONSE, args.first_response)]
    if args.resolution:
        targets.append((pb.SLA_TARGET_RESOLUTION, 8 * 3600))
    await create_policy(rig, tenant, targets)
    if args.escalate:
        await create_rule(
            rig,
            tenant,
            pb.RoutingRule(
                name="escalate breached first responses",
                enabled=True,
                triggers=[pb.RULE_TRIGGER_SLA_BREACHED],
                condition=pb.RuleCondition(sla_targets=[pb.SLA_TARGET_FIRST_RESPONSE]),
                actions=[pb.RuleAction(kind=pb.RULE_ACTION_KIND_ESCALATE)],
            ),
        )
    contacts: list[str] = []
    for i in range(20):
        response = await rig.contacts.CreateContact(
            cpb.CreateContactRequest(contact=cpb.Contact(given_name=f"C{i}", family_name="T")),
            metadata=meta,
        )
        contacts.append(response.contact.id)
    (policy,) = await rig.store.sla_policies(tenant)
    tail = BreachTail(rig.kafka, tenant)
    await tail.start()
    start = time.time()
    plan, instants = ticket_plan(args, start)
    now = datetime.now(UTC)
    print(
        f"inserting {args.tickets} open tickets with their timers ({args.breaching} "
        f"first-response breaches due {args.lead:.0f}-{args.lead + args.window:.0f}s from now, "
        f"{args.bunched:.0%} of them at {args.bunches} instants) ...",
        flush=True,
    )
    due_of: dict[str, float] = {}
    timer_count = 0
    insert_failures: list[str] = []

    async def insert(k: int) -> None:
        """One batch of tickets and their timers in one transaction, as the service writes a
        ticket and its timers together."""
        nonlocal timer_count
        chunk = range(k * args.insert_batch, min(len(plan), (k + 1) * args.insert_batch))
        docs, timers = [], []
        for i in chunk:
            planned = plan[i]
            contact = contacts[i % len(contacts)]
            ticket, armed = open_ticket(policy, tenant, contact, planned, i, now)
            docs.append(TICKETS.to_document(ticket))
            timers += armed
            if planned.breaching:
                due_of[f"{ticket.ticket_id}:{pb.SLA_TARGET_FIRST_RESPONSE}"] = planned.due

        async def work(session: AsyncClientSession) -> None:
            await rig.store.tickets.insert_many(docs, session=session)
            await rig.timers.schedule(timers, session)

        for attempt in range(3):
            try:
                await rig.mongo.in_transaction(work)
                break
            except PyMongoError as exc:  # the database wedged (seen once: 60 s, then aborted)
                insert_failures.append(f"{type(exc).__name__}: {str(exc)[:120]}")
                if attempt == 2:
                    raise
        timer_count += len(timers)

    batches_ = -(-len(plan) // args.insert_batch)
    await in_parallel(batches_, args.insert_concurrency, insert)
    took = time.time() - start
    pending = await rig.timers.count_pending()
    print(
        f"inserted {len(plan)} tickets and {timer_count} timers in {took:.1f}s "
        f"({len(plan) / took:,.0f} tickets/s); {pending} timers pending",
        flush=True,
    )
    late_start = took > args.lead
    if late_start:
        print("WARNING: inserting outlasted --lead; the first breaches were due before the end")
    window_start = start + args.lead
    idle = (
        await rig.idle_cpu()
        if window_start - time.time() > 8
        else "not measured (no time left before the window)"
    )
    await asyncio.sleep(max(0.0, window_start - time.time() - 2))
    cpu = rig.cpu()
    profile = cProfile.Profile() if rig.in_process else None
    if profile is not None:
        profile.enable()
    deadline = start + args.lead + args.window + args.drain
    while len(tail.breaches) < len(due_of) and time.time() < deadline:
        await asyncio.sleep(0.5)
    stopped = time.time()
    if profile is not None:
        profile.disable()
    used = cpu.used()
    await asyncio.sleep(2)  # late duplicates, if any
    await tail.stop()

    found = list(tail.breaches.values())
    unfired_due = [(stopped - due, due) for key, due in due_of.items() if key not in tail.breaches]
    unfired = [late for late, _ in unfired_due]
    bunch_set = set(instants)
    fire_late = [b.fire - b.due for b in found]
    kafka_late = [b.kafka - b.due for b in found]
    arrival_late = [b.arrival - b.due for b in found]
    per_instant = Counter(p.due for p in plan if p.breaching and p.due in bunch_set)
    bunch_rows = []
    for instant in instants:
        group = [b for b in found if b.due == instant]
        if not group:
            continue
        last = max(b.fire for b in group) - instant
        bunch_rows.append(
            f"bunch of {per_instant[instant]} due at +{instant - start:.0f}s: "
            f"{len(group)} fired, the last {last:.2f}s after due"
        )
    per_second = Counter(int(b.fire) for b in found)
    span = (max(b.fire for b in found) - min(b.due for b in found)) if found else 0.0
    desk_cpu, db_cpu = used.get(DESK, 0.0), used.get(DB, 0.0)
    lines = [
        f"timers: {args.tickets} open tickets under one SLA policy (first response "
        f"{args.first_response}s{', resolution 8h' if args.resolution else ''}, wall clock): "
        f"{len(due_of)} not answered, first response due in the window (at-risk warning "
        f"fired already), the rest answered (resolution running, due in hours); {pending} "
        f"timers pending; escalation rule on breach: {args.escalate}",
        f"inserted in {took:.1f}s ({args.insert_batch} tickets + their timers per transaction, "
        f"{args.insert_concurrency} at a time); first-response breaches due "
        f"{args.lead:.0f}-{args.lead + args.window:.0f}s after the start, {args.bunched:.0%} "
        f"of them at {args.bunches} instants; measured until all fired or "
        f"{args.drain:.0f}s after the window"
        + (" (WARNING: inserting outlasted the lead)" if late_start else "")
        + (
            f"; {len(insert_failures)} insert transactions failed and were retried: "
            f"{insert_failures[0]}"
            if insert_failures
            else ""
        ),
        "",
        LATENESS_HEADER,
        lateness_row("fire_time - due_time (firing transaction)", fire_late, unfired),
        lateness_row(
            "  of which due at a bunch instant",
            [b.fire - b.due for b in found if b.due in bunch_set],
            [late for late, due in unfired_due if due in bunch_set],
        ),
        lateness_row(
            "  of which spread",
            [b.fire - b.due for b in found if b.due not in bunch_set],
            [late for late, due in unfired_due if due not in bunch_set],
        ),
        lateness_row("Kafka record timestamp - due_time (relay sent)", kafka_late, unfired),
        lateness_row("arrival at a consumer - due_time", arrival_late, unfired),
        "",
        f"breaches fired: {len(found)} of {len(due_of)} ({len(unfired)} not yet when the "
        f"benchmark stopped), duplicates: {tail.duplicates}, events of the tenant on Kafka: "
        f"{tail.events}",
        f"fired {len(found) / max(span, 1e-3):,.0f} breaches/s on average over {span:.1f}s "
        f"(first due to last fire; the due rate unless the worker falls behind), peak "
        f"{max(per_second.values(), default=0):,} in one second",
        *bunch_rows,
        f"service desk CPU from the window's start: {desk_cpu:.1f}s in "
        f"{stopped - window_start:.0f}s"
        f" ({desk_cpu * 1000 / max(len(found), 1):.2f} ms per breach fired), database "
        f"{db_cpu:.1f}s ({db_cpu * 1000 / max(len(found), 1):.2f} ms per breach)",
        f"idle before the window: {idle}",
    ]
    if profile is not None:
        lines += ["", *profile_report(profile, len(found), "breach", TIMER_STEPS)]
    await rig.outbox_drained(60)
    return lines


# -- main ------------------------------------------------------------------------------------


def header(args: argparse.Namespace) -> list[str]:
    return [
        f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"machine: {platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"grpcio {grpc.__version__}",
        f"database: {secantus_executable()} (--sync-on-commit, --cache-size "
        f"{args.cache_size or 'as crm_devstack starts it'})",
        "service desk: "
        + (
            "in this process, under cProfile (the client's CPU counts too)"
            if args.profile
            else "separate process (python -m crm_servicedesk), contacts likewise"
        ),
        f"load average at the start: {loadavg()}",
    ]


async def main(args: argparse.Namespace) -> None:
    head = header(args)
    print("\n".join(head), flush=True)
    if args.scenario == "mentions" and args.breakdown:
        print("\n".join(cpu_breakdown(args)), flush=True)
    scenarios: list[tuple[str, Callable[[Rig, argparse.Namespace], Awaitable[list[str]]]]] = []
    if args.scenario in ("all", "tickets"):
        scenarios.append(("tickets", bench_tickets))
    if args.scenario in ("all", "mentions"):
        scenarios.append(("mentions", bench_mentions))
    if args.scenario in ("all", "timers"):
        scenarios.append(("timers", bench_timers))
    reports: list[list[str]] = []
    async with running_stack(desk_in_process=args.profile, cache_size=args.cache_size) as rig:
        for name, scenario in scenarios:
            print(f"\n== {name} (load average {loadavg()}) ==", flush=True)
            started = time.perf_counter()
            lines = await scenario(rig, args)
            lines.append(f"({name}: {time.perf_counter() - started:.0f}s, load {loadavg()})")
            reports.append(lines)
    print("\n" + "\n".join(head))
    print(f"load average at the end: {loadavg()}")
    for lines in reports:
        print()
        print("\n".join(lines))


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "scenario", nargs="?", default="all", choices=["all", "tickets", "mentions", "timers"]
    )
    parser.add_argument(
        "--cache-size", default="", help="SecantusDB --cache-size (default: crm_devstack's)"
    )
    tickets = parser.add_argument_group("tickets")
    tickets.add_argument("--creates", type=int, default=2000)
    tickets.add_argument("--concurrency", type=int, default=32)
    tickets.add_argument("--contacts", type=int, default=200)
    tickets.add_argument("--agents", type=int, default=8)
    tickets.add_argument(
        "--assign", choices=["round_robin", "least_open", "team"], default="round_robin"
    )
    tickets.add_argument("--rate", type=float, default=10.0, help="open loop conversations/s")
    tickets.add_argument("--seconds", type=float, default=20.0, help="open loop duration")
    mentions = parser.add_argument_group("mentions")
    mentions.add_argument("--mentions", type=int, default=50_000)
    mentions.add_argument("--rule-mentions", type=int, default=20_000)
    mentions.add_argument("--batch", type=int, default=500)
    mentions.add_argument("--streams", type=int, default=4)
    mentions.add_argument("--authors", type=int, default=20_000)
    mentions.add_argument("--known-authors", type=int, default=300)
    mentions.add_argument("--open-below", type=float, default=-0.75)
    mentions.add_argument(
        "--profile",
        action="store_true",
        help="mentions, timers: the service desk in this process, under cProfile",
    )
    mentions.add_argument(
        "--breakdown", action="store_true", help="time the pure-CPU steps per mention"
    )
    timers = parser.add_argument_group("timers")
    timers.add_argument("--tickets", type=int, default=100_000, help="open tickets with SLAs")
    timers.add_argument(
        "--breaching", type=int, default=3000, help="of them, first responses due in the window"
    )
    timers.add_argument("--lead", type=float, default=120.0, help="seconds to the first due")
    timers.add_argument("--window", type=float, default=60.0, help="seconds the dues spread over")
    timers.add_argument("--bunched", type=float, default=0.2, help="share due at equal instants")
    timers.add_argument("--bunches", type=int, default=4)
    timers.add_argument("--first-response", type=int, default=1800, help="the SLA target, s")
    timers.add_argument("--no-resolution", dest="resolution", action="store_false")
    timers.add_argument("--no-escalate", dest="escalate", action="store_false")
    timers.add_argument("--insert-batch", type=int, default=100)
    timers.add_argument("--insert-concurrency", type=int, default=3)
    timers.add_argument("--drain", type=float, default=120.0, help="wait after the window, s")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse()))
