"""A simulated company: a seeded life of customers, agents and social media, played through the
gateway's public gRPC API (``crm.gateway.v1``) on the services' accelerated clock.

``make run`` starts the stack on an accelerated clock (:mod:`crm_platform.clock`: a few days in
the past, running fast until it meets real time) and lets this module play those days, then keep
a gentle live trickle. Everything goes through the gateway with bearer tokens, as a real company
would: an **admin** sets the service desk up, the **connectors** (an integration: the e-mail and
chat gateways, social listening, the survey tool) bring in what customers write, and **agents**
answer, ask, pause, resolve, each with a token of their own.

The company (deterministic for a seed):

- a business calendar (weekdays 09:00-17:00 in Europe/Berlin by default), an SLA policy on it
  (first response 4 business hours, next response 8, resolution 24) and one for live chat;
  routing rules (round robin over the agents, VIP priority, and "open a ticket from an angry
  social post"), five agents;
- ~60-150 customers with identities on e-mail, phone and X, a preferred channel, a patience;
- issues arriving over the days (more by day than at night) on e-mail, live chat, phone, social,
  web form and the app; chat and phone only reach an agent in business hours (otherwise the
  chat is abandoned in the queue, the call missed, and the ticket comes later with that first
  touch linked); social complaints are posted, picked up by listening some time later and either
  opened by the rule (angry posts) or by the social team in business hours (milder ones), so the
  customer's clock starts hours before the company's: the perception gap;
- agents answer only in business hours, after business-time delays typical of the channel;
  customers chase when they wait too long, answer questions (tickets wait on the customer),
  sometimes reopen; a survey goes out on resolve and about half answer it, with scores that
  fall as their wait grows past what they expected;
- unrelated mentions (praise, questions, competitors) for share of voice and sentiment.

Each step of an issue is an action scheduled at a simulated instant in a priority queue and run
when the clock reaches it; what a step learns (the ticket id, the assignee, when a reply was
sent) decides the next steps. Random draws come from one generator per issue (seeded by the
issue's number), so the story of every issue is the same for a seed whatever the timing of the
calls, and so are the customers and the arrivals. Calls run with bounded concurrency; a failed
call is logged and counted and ends only its own story.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import heapq
import itertools
import logging
import math
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar
from zoneinfo import ZoneInfo

import grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message as ProtoMessage
from google.protobuf.timestamp_pb2 import Timestamp

from crm.contacts.v1 import contacts_pb2 as cpb
from crm.gateway.v1 import gateway_pb2_grpc as gw
from crm.servicedesk.v1 import servicedesk_pb2 as pb
from crm_calendar import BusinessCalendar, OpeningInterval
from crm_platform.clock import Clock

if TYPE_CHECKING:
    from crm_devstack.sales_team import SalesProfile, SalesTeam

log = logging.getLogger(__name__)

R = TypeVar("R")

TokenSource = Callable[[str, str], str]
"""``(role, subject) -> bearer token`` for the company's tenant (e.g.
``lambda role, subject: stack.credentials.token(tenant, role, subject)``)."""

ADMIN = ("admin", "sim-admin")
CONNECTORS = ("integration", "sim-connectors")
SOCIAL_TEAM = "social"
SUPPORT_TEAM = "support"
NETWORK = "x"
_MINUTE = timedelta(minutes=1)
_TOKEN_REFRESH_SECONDS = 1800.0
_RETRIED = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
    }
)


# --- the company ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class OfficeHours:
    """When the company's agents work: the business calendar of its SLAs."""

    timezone: str = "Europe/Berlin"
    weekdays: tuple[int, ...] = (1, 2, 3, 4, 5)
    """ISO weekdays (1 = Monday)."""
    opens: int = 9 * 60
    """Minutes after local midnight."""
    closes: int = 17 * 60

    def calendar(self) -> BusinessCalendar:
        """The calendar as the service desk computes with it."""
        return BusinessCalendar.create(
            calendar_id="office-hours",
            version=1,
            timezone=self.timezone,
            intervals=[OpeningInterval(day - 1, self.opens, self.closes) for day in self.weekdays],
        )

    def to_proto(self, name: str) -> pb.BusinessCalendar:
        """The calendar as ``CreateCalendar`` takes it."""
        return pb.BusinessCalendar(
            name=name,
            timezone=self.timezone,
            intervals=[
                pb.OpeningInterval(weekday=day, start_minute=self.opens, end_minute=self.closes)
                for day in self.weekdays
            ],
        )


@dataclass(frozen=True)
class CompanyProfile:
    """What the simulated company looks like; the defaults are the demo's."""

    name: str = "Acme"
    brand: str = "acme"
    """The handle customers tag (``@acme``) and the own brand of mentions."""
    hours: OfficeHours = OfficeHours()
    customers: tuple[int, int] = (60, 150)
    """How many customers, at least and at most (the seed picks)."""
    agents: tuple[str, ...] = (
        "agent-amara",
        "agent-bruno",
        "agent-chiara",
        "agent-dmitri",
        "agent-elif",
    )
    issues_per_customer_day: float = 0.3
    """Tickets (and social complaints) per customer and simulated day, on average."""
    chatter_per_day: float = 16.0
    """Unrelated mentions (praise, questions, competitors) per simulated day."""
    trickle_issues_per_hour: float = 20.0
    """New issues per hour once the simulated days are over (the live trickle)."""
    answer_rate: float = 0.55
    """Share of resolved tickets whose survey is answered."""
    reopen_rate: float = 0.08
    sales: SalesProfile | None = None
    """The sales team (:mod:`crm_devstack.sales_team`); None: its defaults."""


# Channels: (channel, share of issues). Social issues are complaints posted on X.
CHANNEL_MIX: tuple[tuple[int, float], ...] = (
    (pb.CHANNEL_EMAIL, 34),
    (pb.CHANNEL_LIVE_CHAT, 18),
    (pb.CHANNEL_PHONE, 15),
    (pb.CHANNEL_SOCIAL, 20),
    (pb.CHANNEL_WEB_FORM, 7),
    (pb.CHANNEL_MOBILE, 6),
)
# Business minutes an agent takes to answer a new ticket, median per channel.
FIRST_REPLY_MINUTES: dict[int, float] = {
    pb.CHANNEL_LIVE_CHAT: 3.0,
    pb.CHANNEL_PHONE: 25.0,
    pb.CHANNEL_SOCIAL: 35.0,
    pb.CHANNEL_EMAIL: 110.0,
    pb.CHANNEL_WEB_FORM: 130.0,
    pb.CHANNEL_MOBILE: 70.0,
}
# What customers expect, minutes (KPIS.md: social 2 h), before their own patience factor.
EXPECTED_WAIT_MINUTES: dict[int, float] = {
    pb.CHANNEL_LIVE_CHAT: 10.0,
    pb.CHANNEL_PHONE: 30.0,
    pb.CHANNEL_SOCIAL: 120.0,
    pb.CHANNEL_EMAIL: 240.0,
    pb.CHANNEL_WEB_FORM: 240.0,
    pb.CHANNEL_MOBILE: 120.0,
}
# Seconds until a sent reply is delivered, median per channel (phone: spoken, no receipt).
DELIVERY_SECONDS: dict[int, float] = {
    pb.CHANNEL_LIVE_CHAT: 2.0,
    pb.CHANNEL_SOCIAL: 90.0,
    pb.CHANNEL_EMAIL: 20.0,
    pb.CHANNEL_WEB_FORM: 20.0,
    pb.CHANNEL_MOBILE: 5.0,
}
_TIERS: tuple[tuple[int, float], ...] = (
    (cpb.VALUE_TIER_STANDARD, 60),
    (cpb.VALUE_TIER_SILVER, 25),
    (cpb.VALUE_TIER_GOLD, 11),
    (cpb.VALUE_TIER_PLATINUM, 4),
)
# fmt: off
_GIVEN = (
    "Ada", "Aiko", "Amir", "Ana", "Ben", "Carla", "Chen", "Dara", "Emil", "Eva", "Farah",
    "Felix", "Greta", "Hugo", "Ines", "Ivan", "Jana", "Jonas", "Kemal", "Lea", "Luca", "Maja",
    "Malik", "Mia", "Nia", "Noah", "Olga", "Omar", "Paula", "Priya", "Rafael", "Sara", "Timo",
    "Uma", "Yara", "Zoe",
)
_FAMILY = (
    "Adler", "Berger", "Costa", "Dahl", "Engel", "Fischer", "Garcia", "Haas", "Ito", "Jansen",
    "Kaya", "Lang", "Moreau", "Nowak", "Okafor", "Petrov", "Quinn", "Rossi", "Schmidt", "Silva",
    "Tanaka", "Ueda", "Vogel", "Weber", "Xu", "Yilmaz", "Zimmer",
)
# fmt: on
_DOMAINS = ("example.com", "example.org", "example.net")


@dataclass(frozen=True)
class IssueTopic:
    """What an issue is about, in the customer's words on each channel."""

    type: int
    category: str
    product: str
    subject: str
    message: str
    post: str
    """A mild public post about it (``{brand}``: the company's handle)."""
    angry_post: str
    """An angry one (strongly negative: the listening rule opens a ticket from it)."""


TOPICS: tuple[IssueTopic, ...] = (
    IssueTopic(
        pb.TICKET_TYPE_COMPLAINT,
        "delivery",
        "tv-55",
        "Order {order} never arrived",
        "My order {order} was due on Monday and still has not arrived. Where is it?",
        "@{brand} any news on order {order}? tracking has not moved since Monday",
        "@{brand} worst delivery ever. Order {order} lost and nobody answers. Terrible service!!",
    ),
    IssueTopic(
        pb.TICKET_TYPE_COMPLAINT,
        "billing",
        "plan-premium",
        "Charged twice this month",
        "I was charged twice for my plan this month. Please refund the second payment.",
        "@{brand} hi, looks like my plan was billed twice this month?",
        "@{brand} charged twice for my plan?? ridiculous, I want my money back now. Awful",
    ),
    IssueTopic(
        pb.TICKET_TYPE_INCIDENT,
        "technical",
        "router-x1",
        "Router keeps dropping the Wi-Fi",
        "Since yesterday my router X1 drops the Wi-Fi every few minutes. I restarted it twice.",
        "@{brand} my router keeps dropping the wifi since yesterday, can someone help?",
        "@{brand} router dead AGAIN. useless and broken, third time this month. Fed up!!",
    ),
    IssueTopic(
        pb.TICKET_TYPE_PRODUCT_RETURN,
        "returns",
        "earbuds",
        "Return of my earbuds",
        "The left earbud has no sound. I would like to return them, how do I get a label?",
        "@{brand} hi, does the return label cover the earbuds box too?",
        "@{brand} still no refund for my returned earbuds after 3 weeks. Awful, never again",
    ),
    IssueTopic(
        pb.TICKET_TYPE_SERVICE_REQUEST,
        "account",
        "phone-s",
        "Cannot log in to my account",
        "I cannot log in since the app update; the password reset mail never comes.",
        "@{brand} password reset mail never arrives, any idea?",
        "@{brand} app crashes every time I open my bill. useless and broken, terrible",
    ),
    IssueTopic(
        pb.TICKET_TYPE_INFORMATION_REQUEST,
        "product",
        "plan-basic",
        "Question about the basic plan",
        "Does the basic plan include roaming in Switzerland? I travel next week.",
        "@{brand} does the basic plan include roaming in Switzerland?",
        "@{brand} roaming charges on basic plan are a scam. Disgusting, cancelling today!!",
    ),
)
_CHATTER: tuple[tuple[str, str], ...] = (
    ("", "Loving my new @{brand} earbuds, great sound!"),
    ("", "Does @{brand} ship to Austria?"),
    ("", "@{brand} support sorted my router in 5 minutes, thanks!"),
    ("", "Thinking about the @{brand} premium plan, anyone tried it?"),
    ("globex", "Switched to @globex last month, so far so good"),
    ("globex", "@globex outage again today? nothing works"),
    ("initech", "The new @initech phone looks nice"),
)
_CHASERS = (
    "Any update on this?",
    "Hello? Still waiting for an answer.",
    "Is anybody looking at this? It is urgent for me.",
)
_AGENT_REPLIES = (
    "Thanks for reaching out, I am looking into it right now.",
    "Sorry for the trouble! I have checked your account and will fix this today.",
    "Thank you for your patience. Here is what we found and what happens next.",
)
_QUESTIONS = (
    "Could you send us your order number and a photo of the label?",
    "Could you tell us when this started and which device you use?",
)
_CUSTOMER_ANSWERS = (
    "Here are the details you asked for.",
    "It started on Monday, I use the X1 router.",
)
_COMMENTS_GOOD = ("Quick and friendly, thank you!", "Great help, problem solved.")
_COMMENTS_BAD = (
    "Far too slow, I waited for ages.",
    "Nobody answered for a whole day. Disappointing.",
)


@dataclass(frozen=True)
class Customer:
    """A customer of the company and how they behave."""

    number: int
    given_name: str
    family_name: str
    email: str
    phone: str
    handle: str
    """Their X handle ("" if they have none)."""
    tier: int
    channel: int
    """The channel they prefer."""
    patience: float
    """Multiplies what they expect to wait (0.5: impatient, 1.5: patient)."""

    def request_identity(self) -> pb.RequesterIdentity:
        """How the e-mail connector names them."""
        return pb.RequesterIdentity(kind="email", value=self.email)

    def to_proto(self) -> cpb.Contact:
        """The contact as ``CreateContact`` takes it."""
        identities = [cpb.Identity(kind=cpb.IDENTITY_KIND_EMAIL, value=self.email, primary=True)]
        if self.phone:
            identities.append(cpb.Identity(kind=cpb.IDENTITY_KIND_PHONE, value=self.phone))
        if self.handle:
            identities.append(
                cpb.Identity(
                    kind=cpb.IDENTITY_KIND_SOCIAL,
                    value=self.handle,
                    network=cpb.SOCIAL_NETWORK_X,
                )
            )
        return cpb.Contact(
            given_name=self.given_name,
            family_name=self.family_name,
            lifecycle_stage=cpb.LIFECYCLE_STAGE_CUSTOMER,
            tier=self.tier,  # type: ignore[arg-type]
            identities=identities,
            consent=cpb.Consent(data_processing=True, email_marketing=self.email_marketing),
        )

    @property
    def email_marketing(self) -> bool:
        """Whether they agreed to marketing e-mail (three customers in four; the others' campaign
        sends are refused)."""
        return self.number % 4 != 3


def _weighted(rng: random.Random, choices: Sequence[tuple[int, float]]) -> int:
    return rng.choices([value for value, _ in choices], [weight for _, weight in choices])[0]


def plan_customers(seed: int, profile: CompanyProfile) -> list[Customer]:
    """The company's customers, the same for a seed."""
    rng = random.Random(f"{seed}:customers")
    count = rng.randint(*profile.customers)
    customers = []
    for number in range(count):
        given, family = rng.choice(_GIVEN), rng.choice(_FAMILY)
        channel = _weighted(rng, CHANNEL_MIX)
        has_handle = channel == pb.CHANNEL_SOCIAL or rng.random() < 0.5
        customers.append(
            Customer(
                number=number,
                given_name=given,
                family_name=family,
                email=f"{given}.{family}.{number}@{rng.choice(_DOMAINS)}".lower(),
                phone=f"+49301{number:03d}{rng.randrange(1000):03d}" if rng.random() < 0.8 else "",
                handle=f"{given[:6]}_{family[:5]}{number}".lower() if has_handle else "",
                tier=_weighted(rng, _TIERS),
                channel=channel,
                patience=round(rng.uniform(0.5, 1.5), 2),
            )
        )
    return customers


# --- when things happen --------------------------------------------------------------------------


def activity(at: datetime, timezone: str) -> float:
    """How likely customers are to write at ``at`` (local time), relative to a weekday
    afternoon: quiet at night, a little quieter at weekends."""
    local = at.astimezone(ZoneInfo(timezone))
    hour = local.hour
    weight = (
        0.08 if hour < 6 else 0.35 if hour < 8 else 1.0 if hour < 18 else 0.7 if hour < 22 else 0.25
    )
    return weight * (0.6 if local.isoweekday() >= 6 else 1.0)


@dataclass(frozen=True, order=True)
class Arrival:
    """A customer about to get in touch about a new issue."""

    at: datetime
    number: int
    """The issue's number (seeds its story)."""
    customer: int


def plan_arrivals(
    seed: int,
    start: datetime,
    end: datetime,
    customers: int,
    profile: CompanyProfile,
) -> list[Arrival]:
    """The issues that arise in ``[start, end)``, in time order, the same for a seed and
    window: ``customers * issues_per_customer_day`` a day, spread by :func:`activity`."""
    rng = random.Random(f"{seed}:arrivals")
    days = max(0.0, (end - start).total_seconds() / 86_400)
    count = round(customers * profile.issues_per_customer_day * days)
    span = (end - start).total_seconds()
    times: list[datetime] = []
    while len(times) < count:
        at = start + timedelta(seconds=rng.random() * span)
        if rng.random() < activity(at, profile.hours.timezone):
            times.append(at)
    times.sort()
    return [
        Arrival(at, number, rng.randrange(customers)) for number, at in enumerate(times, start=1)
    ]


def live_arrivals(
    seed: int, start: datetime, customers: int, profile: CompanyProfile, first_number: int
) -> Iterator[Arrival]:
    """Endless arrivals after ``start`` at ``trickle_issues_per_hour`` (thinned by
    :func:`activity`), numbered from ``first_number``."""
    rng = random.Random(f"{seed}:live")
    rate = profile.trickle_issues_per_hour / 3600.0
    at = start
    for number in itertools.count(first_number):
        while True:
            at += timedelta(seconds=rng.expovariate(rate))
            if rng.random() < activity(at, profile.hours.timezone):
                break
        yield Arrival(at, number, rng.randrange(customers))


def lognormal_minutes(rng: random.Random, median: float, sigma: float = 0.8) -> timedelta:
    """A log-normal delay with the given median (minutes), at least a few seconds."""
    return timedelta(minutes=max(0.05, median * math.exp(rng.gauss(0.0, sigma))))


def agent_time(
    rng: random.Random, calendar: BusinessCalendar, after: datetime, median_minutes: float
) -> datetime:
    """When an agent gets something done that takes ``median_minutes`` of their (business)
    time, starting at ``after``: never outside the calendar's opening hours."""
    work = lognormal_minutes(rng, median_minutes)
    return calendar.add_business_time(after, work)


def customer_time(
    rng: random.Random, after: datetime, median_minutes: float, timezone: str
) -> datetime:
    """When a customer does something about ``median_minutes`` after ``after``; most people
    sleep at night (then it waits for the morning)."""
    at = after + lognormal_minutes(rng, median_minutes, 1.0)
    local = at.astimezone(ZoneInfo(timezone))
    if (local.hour >= 23 or local.hour < 7) and rng.random() < 0.85:
        morning = local.replace(hour=7, minute=0, second=0, microsecond=0)
        if local.hour >= 23:
            morning += timedelta(days=1)
        at = morning.astimezone(UTC) + timedelta(minutes=rng.uniform(0, 120))
    return at


@dataclass(frozen=True)
class Experience:
    """How an issue went for the customer."""

    channel: int
    waited: timedelta
    """First touch to the first human reply delivered."""
    patience: float
    reopened: bool = False
    chasers: int = 0

    @property
    def expected(self) -> timedelta:
        """What this customer expected to wait on this channel."""
        return timedelta(minutes=EXPECTED_WAIT_MINUTES[self.channel] * self.patience)


def survey_answer(rng: random.Random, experience: Experience) -> pb.SurveyAnswer:
    """The customer's answer: the longer they waited past what they expected, the worse."""
    ratio = experience.waited / max(experience.expected, _MINUTE)
    base = (
        4.8
        if ratio <= 0.5
        else 4.5
        if ratio <= 1
        else 3.8
        if ratio <= 2
        else 3.0
        if ratio <= 4
        else 2.3
        if ratio <= 8
        else 1.7
    )
    base -= 0.8 if experience.reopened else 0.0
    base -= 0.2 * min(experience.chasers, 2)
    csat = max(1, min(5, round(base + rng.gauss(0.0, 0.6))))
    nps = max(0, min(10, round(2.3 * csat - 1.5 + rng.gauss(0.0, 1.2))))
    perceived = experience.waited * rng.uniform(1.0, 1.3 + 0.25 * max(0.0, ratio - 1))
    answer = pb.SurveyAnswer(
        csat=csat,
        nps=nps,
        effort=max(1, min(7, round(csat * 1.3 + rng.gauss(0.0, 0.8)))),
        perceived_wait_minutes=min(525_600, round(perceived / _MINUTE)),
        expected_wait_minutes=round(experience.expected / _MINUTE),
    )
    if rng.random() < 0.4:
        answer.comment = rng.choice(_COMMENTS_GOOD if csat >= 4 else _COMMENTS_BAD)
    return answer


# --- the report ----------------------------------------------------------------------------------


@dataclass
class SimulationReport:
    """What the simulation did so far."""

    contacts: int = 0
    tickets: int = 0
    messages: int = 0
    mentions: int = 0
    receipts: int = 0
    transitions: int = 0
    surveys_answered: int = 0
    calls: int = 0
    errors: int = 0
    errors_by_call: Counter[str] = field(default_factory=Counter)
    """``"<method> <status code>"`` → how many."""
    leads: int = 0
    deals_won: int = 0
    quotes_sent: int = 0

    def summary(self) -> str:
        """One line."""
        text = (
            f"{self.contacts} customers, {self.tickets} tickets, {self.messages} messages, "
            f"{self.mentions} mentions, {self.surveys_answered} surveys answered, "
            f"{self.leads} leads, {self.quotes_sent} quotes sent, {self.deals_won} deals won, "
            f"{self.calls} calls, {self.errors} failed"
        )
        if self.errors_by_call:
            worst = ", ".join(f"{name} x{n}" for name, n in self.errors_by_call.most_common(3))
            text += f" ({worst})"
        return text


@dataclass(frozen=True)
class SimulationProgress:
    """A snapshot for progress reports."""

    phase: str
    """``setup``, ``history`` (the simulated days), ``live`` (the trickle) or ``stopped``."""
    simulated_now: datetime
    history_start: datetime | None
    history_end: datetime | None
    report: SimulationReport


ProgressCallback = Callable[[SimulationProgress], None]


# --- the simulation ------------------------------------------------------------------------------


@dataclass
class Issue:
    """One customer issue on its way through the company."""

    number: int
    customer: Customer
    contact_id: str
    channel: int
    topic: IssueTopic
    key: str
    """Seeds the issue's random streams (the seed and the issue's number)."""
    first_touch: datetime
    ticket_id: str = ""
    agent: str = ""
    replied_at: datetime | None = None
    """When the first human reply reached the customer."""
    rounds: int = 0
    """Further back-and-forths before the issue is solved."""
    chasers: int = 0
    resolved: bool = False
    reopened: bool = False
    order: str = ""
    draws: Counter[str] = field(default_factory=Counter)

    def stream(self, step: str) -> random.Random:
        """A random generator for the next step of this kind: each step draws from its own
        stream, so the story does not depend on the order in which concurrent steps run."""
        self.draws[step] += 1
        return random.Random(f"{self.key}:{step}:{self.draws[step]}")

    def text(self, template: str, brand: str) -> str:
        """A template of the topic filled in."""
        return template.format(order=self.order, brand=brand)


class _Credential:
    """A bearer token for one role and subject, minted again before it gets old."""

    def __init__(self, tokens: TokenSource, role: str, subject: str) -> None:
        self.tokens = tokens
        self.role = role
        self.subject = subject
        self._metadata: tuple[tuple[str, str], ...] = ()
        self._minted = -math.inf

    def metadata(self) -> tuple[tuple[str, str], ...]:
        if time.monotonic() - self._minted > _TOKEN_REFRESH_SECONDS:
            token = self.tokens(self.role, self.subject)
            self._metadata = (("authorization", f"Bearer {token}"),)
            self._minted = time.monotonic()
        return self._metadata


_Action = Callable[[], Awaitable[None]]


def _timestamp(at: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(at)
    return stamp


def _when(stamp: Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


class SimulatedCompany:
    """The company's life, played through the gateway on ``clock``.

    :meth:`run` sets the company up, plays the history (from the clock's reading when set up
    until ``days`` later or until an accelerated clock meets real time, whichever is first;
    ``days=None``: until it meets real time), sets :attr:`history_done`, then either returns
    (``trickle=False``) or keeps a live trickle of new issues until ``stop`` is set.
    """

    def __init__(
        self,
        channel: grpc.aio.Channel,
        tokens: TokenSource,
        clock: Clock,
        *,
        seed: int = 7,
        days: float | None = None,
        trickle: bool = True,
        profile: CompanyProfile | None = None,
        concurrency: int = 8,
        call_timeout: float = 15.0,
    ) -> None:
        self.clock = clock
        self.tokens = tokens
        self.seed = seed
        self.days = days
        self.trickle = trickle
        self.profile = profile or CompanyProfile()
        self.calendar = self.profile.hours.calendar()
        self.call_timeout = call_timeout
        self.report = SimulationReport()
        self.history_done = asyncio.Event()
        """Set once every action of the simulated days has run."""
        self.history_start: datetime | None = None
        self.history_end: datetime | None = None
        self.customers = plan_customers(seed, self.profile)
        self.contact_ids: dict[int, str] = {}
        self.phase = "setup"
        self.run_key = f"sim{seed}-{int(clock.now().timestamp())}"
        self._contacts = gw.ContactsServiceStub(channel)
        self._tickets = gw.TicketServiceStub(channel)
        self._config = gw.ServiceDeskConfigServiceStub(channel)
        self._social = gw.SocialListeningServiceStub(channel)
        self._surveys = gw.SurveyServiceStub(channel)
        self._admin = _Credential(tokens, *ADMIN)
        self._connectors = _Credential(tokens, *CONNECTORS)
        self._agents = {agent: _Credential(tokens, "agent", agent) for agent in self.profile.agents}
        self._agenda: list[tuple[datetime, int, str, _Action, bool]] = []
        self._sequence = itertools.count()
        self._history_pending = 0
        self._slots = asyncio.Semaphore(concurrency)
        self._running: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()
        self._live: Iterator[Arrival] | None = None
        from crm_devstack.sales_team import SalesProfile, SalesTeam  # it builds on this module

        self.sales: SalesTeam = SalesTeam(self, channel, self.profile.sales or SalesProfile())

    # -- the run ------------------------------------------------------------------------------

    async def run(
        self, stop: asyncio.Event, on_progress: ProgressCallback | None = None
    ) -> SimulationReport:
        """Play the company's life until the history is done (``trickle=False``) or ``stop``."""
        self._progress(on_progress)
        await self._setup()
        start = self.clock.now()
        end = self.clock.now() if self.days is None else start + timedelta(days=self.days)
        acceleration = self.clock.acceleration
        caught_up = acceleration.caught_up_at() if acceleration is not None else None
        if caught_up is not None:
            present = self.clock.at_wall(caught_up)
            end = present if self.days is None else min(end, present)
        self.history_start, self.history_end = start, max(start, end)
        self.phase = "history"
        self._progress(on_progress)
        arrivals = plan_arrivals(self.seed, start, end, len(self.customers), self.profile)
        for arrival in arrivals:
            self._schedule(arrival.at, f"issue {arrival.number}", self._arrive_later(arrival))
        self._plan_chatter(start, end)
        self.sales.plan(start, end)
        if self.trickle:
            self._live = live_arrivals(
                self.seed, end, len(self.customers), self.profile, len(arrivals) + 1
            )
            self._schedule_next_live()
        try:
            await self._drive(stop, on_progress)
        finally:
            await self._settle()
            self.phase = "stopped"
            self._progress(on_progress)
        return self.report

    def _progress(self, on_progress: ProgressCallback | None) -> None:
        sales = self.sales.report
        self.report.leads, self.report.deals_won = sales.leads, sales.won
        self.report.quotes_sent = sales.quotes_sent
        if on_progress is None:
            return
        snapshot = replace(self.report, errors_by_call=Counter(self.report.errors_by_call))
        on_progress(
            SimulationProgress(
                self.phase, self.clock.now(), self.history_start, self.history_end, snapshot
            )
        )

    async def _drive(self, stop: asyncio.Event, on_progress: ProgressCallback | None) -> None:
        """Run each action when the clock reaches it, at most ``concurrency`` at a time."""
        reported = time.monotonic()
        while not stop.is_set():
            if time.monotonic() - reported >= 5.0:
                reported = time.monotonic()
                self._progress(on_progress)
            if not self.history_done.is_set() and self._history_over():
                self.history_done.set()
                self.phase = "live" if self.trickle else "stopped"
                self._progress(on_progress)
                if not self.trickle:
                    return
            if not self._agenda:
                await self._sleep(stop, 1.0)
                continue
            at = self._agenda[0][0]
            if not self.trickle and self.history_end is not None and at > self.history_end:
                self._drop_next()
                continue
            delay = self.clock.wall_seconds_until(at)
            if delay > 0:
                await self._sleep(stop, min(delay, 1.0))
                continue
            await self._slots.acquire()
            _, _, label, action, in_history = heapq.heappop(self._agenda)
            task = asyncio.create_task(self._perform(label, action, in_history))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    def _history_over(self) -> bool:
        return (
            self.history_end is not None
            and self.clock.now() >= self.history_end
            and self._history_pending == 0
        )

    async def _sleep(self, stop: asyncio.Event, seconds: float) -> None:
        """Until ``seconds`` pass, something is scheduled, or ``stop``."""
        self._changed.clear()
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._changed.wait())]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    def _drop_next(self) -> None:
        _, _, _, _, in_history = heapq.heappop(self._agenda)
        if in_history:
            self._history_pending -= 1

    async def _perform(self, label: str, action: _Action, in_history: bool) -> None:
        try:
            await action()
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug in a story must not end the company's life
            self.report.errors += 1
            self.report.errors_by_call[f"{label.split()[0]} crashed"] += 1
            log.exception("simulation: %s failed", label)
        finally:
            if in_history:
                self._history_pending -= 1
            self._slots.release()

    async def _settle(self, timeout: float = 10.0) -> None:
        """Let the actions in flight finish (cancel them after ``timeout``)."""
        running = list(self._running)
        if not running:
            return
        _, pending = await asyncio.wait(running, timeout=timeout)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _schedule(self, at: datetime, label: str, action: _Action) -> None:
        """Run ``action`` when the clock reads ``at``."""
        in_history = self.history_end is None or at <= self.history_end
        if in_history and not self.history_done.is_set():
            self._history_pending += 1
        else:
            in_history = False
        heapq.heappush(self._agenda, (at, next(self._sequence), label, action, in_history))
        self._changed.set()

    # -- calls --------------------------------------------------------------------------------

    async def _call(
        self, name: str, rpc: Callable[..., Awaitable[R]], request: ProtoMessage, who: _Credential
    ) -> R | None:
        """One call through the gateway; transient failures are retried, others logged and
        counted (None is returned)."""
        self.report.calls += 1
        for attempt in range(4):
            try:
                return await rpc(request, metadata=who.metadata(), timeout=self.call_timeout)
            except grpc.aio.AioRpcError as exc:
                code = exc.code()
                if code in _RETRIED and attempt < 3:
                    await asyncio.sleep(_retry_after(exc, attempt))
                    continue
                self.report.errors += 1
                self.report.errors_by_call[f"{name} {code.name}"] += 1
                log.warning(
                    "simulation: %s as %s failed: %s %s",
                    name,
                    who.subject,
                    code.name,
                    exc.details(),
                )
                return None
        return None  # pragma: no cover - the loop returns

    def _agent(self, issue: Issue) -> _Credential:
        if issue.agent not in self._agents:
            issue.agent = issue.stream("agent").choice(self.profile.agents)
        return self._agents[issue.agent]

    # -- setting the company up ---------------------------------------------------------------

    async def _setup(self) -> None:
        """The calendar, SLA policies, rules and agents (once per tenant), then the customers."""
        calendar_id = await self._ensure_calendar()
        if calendar_id:
            await self._ensure_policies(calendar_id)
        await self._ensure_rules()
        for index, agent in enumerate(self.profile.agents):
            teams = [SUPPORT_TEAM, SOCIAL_TEAM] if index < 2 else [SUPPORT_TEAM]
            request = pb.PutAgentRequest(
                agent=pb.Agent(
                    id=agent,
                    display_name=agent.removeprefix("agent-").title(),
                    team_ids=teams,
                    skills=["billing", "technical"] if index % 2 else ["delivery", "returns"],
                    available=True,
                )
            )
            await self._call("PutAgent", self._config.PutAgent, request, self._admin)
        await asyncio.gather(*(self._add_customer(c) for c in self.customers))
        await self.sales.setup()

    async def _ensure_calendar(self) -> str:
        name = f"{self.profile.name} office hours"
        listed = await self._call(
            "ListCalendars", self._config.ListCalendars, pb.ListCalendarsRequest(), self._admin
        )
        if listed is None:
            return ""
        for calendar in listed.calendars:
            if calendar.name == name:
                return str(calendar.id)
        created = await self._call(
            "CreateCalendar",
            self._config.CreateCalendar,
            pb.CreateCalendarRequest(calendar=self.profile.hours.to_proto(name)),
            self._admin,
        )
        return str(created.calendar.id) if created is not None else ""

    async def _ensure_policies(self, calendar_id: str) -> None:
        listed = await self._call(
            "ListSlaPolicies",
            self._config.ListSlaPolicies,
            pb.ListSlaPoliciesRequest(),
            self._admin,
        )
        if listed is None or listed.policies:
            return  # set up by an earlier run (or unreadable: leave it)

        def targets(first: float, following: float, resolution: float) -> list[pb.SlaTargetSpec]:
            return [
                pb.SlaTargetSpec(
                    target=target,
                    clock=pb.CLOCK_KIND_BUSINESS,
                    duration=Duration(seconds=int(minutes * 60)),
                )
                for target, minutes in (
                    (pb.SLA_TARGET_FIRST_RESPONSE, first),
                    (pb.SLA_TARGET_NEXT_RESPONSE, following),
                    (pb.SLA_TARGET_RESOLUTION, resolution),
                )
            ]

        for policy in (
            pb.SlaPolicy(
                name="Live chat",
                position=0,
                channels=[pb.CHANNEL_LIVE_CHAT],
                calendar_id=calendar_id,
                targets=targets(15, 30, 8 * 60),
                at_risk_fraction=0.8,
                enabled=True,
            ),
            pb.SlaPolicy(
                name="Standard",
                position=10,
                calendar_id=calendar_id,
                targets=targets(4 * 60, 8 * 60, 24 * 60),
                at_risk_fraction=0.8,
                enabled=True,
            ),
        ):
            await self._call(
                "CreateSlaPolicy",
                self._config.CreateSlaPolicy,
                pb.CreateSlaPolicyRequest(policy=policy),
                self._admin,
            )

    async def _ensure_rules(self) -> None:
        listed = await self._call(
            "ListRoutingRules",
            self._config.ListRoutingRules,
            pb.ListRoutingRulesRequest(),
            self._admin,
        )
        if listed is None or listed.rules:
            return
        brand = self.profile.brand
        for rule in (
            pb.RoutingRule(
                name="Open a complaint from an angry post",
                position=0,
                enabled=True,
                triggers=[pb.RULE_TRIGGER_MENTION_RECEIVED],
                condition=pb.RuleCondition(sentiment_below=-0.4, text_contains_any=[f"@{brand}"]),
                actions=[
                    pb.RuleAction(
                        kind=pb.RULE_ACTION_KIND_OPEN_TICKET, ticket_type=pb.TICKET_TYPE_COMPLAINT
                    )
                ],
            ),
            pb.RoutingRule(
                name="VIP customers first",
                position=10,
                enabled=True,
                triggers=[pb.RULE_TRIGGER_TICKET_CREATED],
                condition=pb.RuleCondition(customer_tiers=["gold", "platinum"]),
                actions=[
                    pb.RuleAction(kind=pb.RULE_ACTION_KIND_SET_PRIORITY, priority=pb.PRIORITY_HIGH)
                ],
            ),
            pb.RoutingRule(
                name="Round robin over the support team",
                position=20,
                enabled=True,
                triggers=[pb.RULE_TRIGGER_TICKET_CREATED],
                actions=[
                    pb.RuleAction(
                        kind=pb.RULE_ACTION_KIND_ASSIGN_AGENT,
                        team_id=SUPPORT_TEAM,
                        strategy=pb.ASSIGN_STRATEGY_ROUND_ROBIN,
                    )
                ],
            ),
        ):
            await self._call(
                "CreateRoutingRule",
                self._config.CreateRoutingRule,
                pb.CreateRoutingRuleRequest(rule=rule),
                self._admin,
            )

    async def _add_customer(self, customer: Customer) -> None:
        async with self._slots:
            request = cpb.CreateContactRequest(
                contact=customer.to_proto(),
                request_id=f"{self.run_key}-customer-{customer.number}",
            )
            created = await self._call(
                "CreateContact", self._contacts.CreateContact, request, self._connectors
            )
            if created is not None:
                self.contact_ids[customer.number] = str(created.contact.id)
                self.report.contacts += 1
                return
            # Known from an earlier run of the same tenant: find them by e-mail.
            lookup = cpb.LookupContactByIdentityRequest(
                identity=cpb.Identity(kind=cpb.IDENTITY_KIND_EMAIL, value=customer.email)
            )
            found = await self._call(
                "LookupContactByIdentity",
                self._contacts.LookupContactByIdentity,
                lookup,
                self._connectors,
            )
            if found is not None:
                self.contact_ids[customer.number] = str(found.contact.id)

    def _plan_chatter(self, start: datetime, end: datetime) -> None:
        rng = random.Random(f"{self.seed}:chatter")
        days = (end - start).total_seconds() / 86_400
        for number in range(round(self.profile.chatter_per_day * days)):
            at = start + (end - start) * rng.random()
            brand, text = rng.choice(_CHATTER)
            mention = pb.Mention(
                network=NETWORK,
                post_id=f"{self.run_key}-chatter-{number}",
                author_handle=f"fan{rng.randrange(100_000)}",
                author_followers=int(math.exp(rng.gauss(5.0, 1.8))),
                text=text.format(brand=self.profile.brand),
                brand=brand,
                posted_time=_timestamp(at),
            )
            self._schedule(
                at + lognormal_minutes(rng, 10.0),
                "chatter",
                functools.partial(self._ingest_chatter, mention),
            )

    async def _ingest_chatter(self, mention: pb.Mention) -> None:
        done = await self._call(
            "IngestMention",
            self._social.IngestMention,
            pb.IngestMentionRequest(mention=mention),
            self._connectors,
        )
        if done is not None:
            self.report.mentions += 1

    # -- an issue's story ---------------------------------------------------------------------

    def _schedule_next_live(self) -> None:
        assert self._live is not None
        arrival = next(self._live)
        self._schedule(arrival.at, f"issue {arrival.number}", self._arrive_live(arrival))

    def _arrive_live(self, arrival: Arrival) -> _Action:
        async def action() -> None:
            self._schedule_next_live()
            await self._arrive(arrival)

        return action

    def _arrive_later(self, arrival: Arrival) -> _Action:
        return lambda: self._arrive(arrival)

    async def _arrive(self, arrival: Arrival) -> None:
        """A customer gets in touch about a new issue, on their channel."""
        customer = self.customers[arrival.customer]
        contact_id = self.contact_ids.get(customer.number)
        if contact_id is None:
            return  # never created (its failure is counted)
        key = f"{self.seed}:issue:{arrival.number}"
        rng = random.Random(key)
        channel = customer.channel if rng.random() < 0.7 else _weighted(rng, CHANNEL_MIX)
        if channel == pb.CHANNEL_SOCIAL and not customer.handle:
            channel = pb.CHANNEL_EMAIL
        issue = Issue(
            number=arrival.number,
            customer=customer,
            contact_id=contact_id,
            channel=channel,
            topic=rng.choice(TOPICS),
            key=key,
            first_touch=arrival.at,
            order=f"{rng.randrange(10_000, 99_999)}",
        )
        issue.rounds = 0 if rng.random() < 0.55 else 1 if rng.random() < 0.7 else 2
        open_now = self.calendar.is_open(issue.first_touch)
        if channel == pb.CHANNEL_SOCIAL:
            await self._post(issue)
        elif channel == pb.CHANNEL_LIVE_CHAT and not open_now:
            # Nobody in the chat queue: abandoned; the customer e-mails a little later.
            interaction = pb.Interaction(
                kind=pb.INTERACTION_KIND_CHAT_ABANDONED,
                channel=pb.CHANNEL_LIVE_CHAT,
                occurred_time=_timestamp(issue.first_touch),
                reference=f"chat-{self.run_key}-{issue.number}",
            )
            issue.channel = pb.CHANNEL_EMAIL
            later = customer_time(rng, issue.first_touch, 20.0, self.profile.hours.timezone)
            self._schedule(
                later, f"email {issue.number}", lambda: self._write_in(issue, [interaction])
            )
        elif channel == pb.CHANNEL_PHONE:
            await self._phone(issue, open_now)
        else:
            await self._write_in(issue, [])

    async def _write_in(self, issue: Issue, interactions: list[pb.Interaction]) -> None:
        """An e-mail, web form, app or chat message: the connector opens the ticket."""
        topic = issue.topic
        request = pb.CreateTicketRequest(
            ticket=pb.Ticket(
                type=topic.type,  # type: ignore[arg-type]
                channel=issue.channel,  # type: ignore[arg-type]
                subject=issue.text(topic.subject, self.profile.brand),
                category=topic.category,
                product=topic.product,
            ),
            requester_identity=issue.customer.request_identity(),
            first_message=issue.text(topic.message, self.profile.brand),
            interactions=interactions,
            request_id=f"{self.run_key}-ticket-{issue.number}",
        )
        created = await self._call(
            "CreateTicket", self._tickets.CreateTicket, request, self._connectors
        )
        if created is None:
            return
        self._opened(issue, created.ticket)
        rng = issue.stream("write-in")
        if issue.channel in (pb.CHANNEL_EMAIL, pb.CHANNEL_WEB_FORM) and rng.random() < 0.7:
            self._schedule(
                self.clock.now() + timedelta(seconds=rng.uniform(5, 60)),
                f"ack {issue.number}",
                lambda: self._acknowledge(issue),
            )
        if issue.channel == pb.CHANNEL_EMAIL and rng.random() < 0.1:
            # An earlier mail to another address, found by the agent and linked.
            occurred = issue.first_touch - timedelta(hours=rng.uniform(2, 30))
            self._schedule(
                agent_time(rng, self.calendar, self.clock.now(), 20.0),
                f"link {issue.number}",
                lambda: self._link_earlier_mail(issue, occurred),
            )
        self._plan_first_reply(issue)

    async def _phone(self, issue: Issue, open_now: bool) -> None:
        """A call: answered in business hours (most of the time), else missed, with a
        voicemail, and called back when the office opens."""
        rng = issue.stream("phone")
        if open_now and rng.random() < 0.75:
            await self._agent_opens(issue, [], first_message=True)
            return
        interactions = [
            pb.Interaction(
                kind=pb.INTERACTION_KIND_MISSED_CALL,
                channel=pb.CHANNEL_PHONE,
                occurred_time=_timestamp(issue.first_touch),
                reference=f"call-{self.run_key}-{issue.number}",
            )
        ]
        if rng.random() < 0.6:
            interactions.append(
                pb.Interaction(
                    kind=pb.INTERACTION_KIND_VOICEMAIL,
                    channel=pb.CHANNEL_PHONE,
                    occurred_time=_timestamp(issue.first_touch + _MINUTE),
                    reference=f"voicemail-{self.run_key}-{issue.number}",
                )
            )
        callback = agent_time(rng, self.calendar, issue.first_touch, 45.0)
        self._schedule(
            callback,
            f"callback {issue.number}",
            lambda: self._agent_opens(issue, interactions, first_message=False),
        )

    async def _post(self, issue: Issue) -> None:
        """A public complaint on X; social listening picks it up a while later."""
        rng = issue.stream("post")
        angry = rng.random() < 0.4
        template = issue.topic.angry_post if angry else issue.topic.post
        mention = pb.Mention(
            network=NETWORK,
            post_id=f"{self.run_key}-post-{issue.number}",
            author_handle=issue.customer.handle,
            author_followers=int(math.exp(rng.gauss(5.5, 1.8))),
            text=issue.text(template, self.profile.brand),
            url=f"https://x.com/{issue.customer.handle}/status/{issue.number}",
            posted_time=_timestamp(issue.first_touch),
        )
        lag = min(lognormal_minutes(rng, 40.0, 1.0), timedelta(hours=8))
        self._schedule(
            issue.first_touch + lag,
            f"listening {issue.number}",
            lambda: self._listen(issue, mention),
        )

    async def _listen(self, issue: Issue, mention: pb.Mention) -> None:
        """Social listening ingests the post; an angry one opens a ticket by rule, a milder
        one is picked up by the social team in business hours."""
        ingested = await self._call(
            "IngestMention",
            self._social.IngestMention,
            pb.IngestMentionRequest(mention=mention),
            self._connectors,
        )
        if ingested is None:
            return
        self.report.mentions += 1
        stored = ingested.mention
        if stored.ticket_id:
            got = await self._call(
                "GetTicket",
                self._tickets.GetTicket,
                pb.GetTicketRequest(id=stored.ticket_id),
                self._connectors,
            )
            if got is None:
                return
            self._opened(issue, got.ticket)
            self._plan_first_reply(issue)
            return
        interaction = pb.Interaction(
            kind=pb.INTERACTION_KIND_SOCIAL_MENTION,
            channel=pb.CHANNEL_SOCIAL,
            occurred_time=stored.posted_time,
            reference=stored.id,
            note=stored.url,
        )
        self._schedule(
            agent_time(issue.stream("listen"), self.calendar, self.clock.now(), 60.0),
            f"social {issue.number}",
            lambda: self._agent_opens(issue, [interaction], first_message=False),
        )

    async def _agent_opens(
        self, issue: Issue, interactions: list[pb.Interaction], *, first_message: bool
    ) -> None:
        """An agent opens the ticket (a call, a call back, a post) and answers at once."""
        topic = issue.topic
        rng = issue.stream("open")
        opener = self._agents[rng.choice(self.profile.agents)]
        request = pb.CreateTicketRequest(
            ticket=pb.Ticket(
                type=topic.type,  # type: ignore[arg-type]
                channel=issue.channel,  # type: ignore[arg-type]
                subject=issue.text(topic.subject, self.profile.brand),
                description=issue.text(topic.message, self.profile.brand),
                contact_id=issue.contact_id,
                category=topic.category,
                product=topic.product,
                tags=["social"] if issue.channel == pb.CHANNEL_SOCIAL else [],
            ),
            first_message=issue.text(topic.message, self.profile.brand) if first_message else "",
            interactions=interactions,
            request_id=f"{self.run_key}-ticket-{issue.number}",
        )
        created = await self._call("CreateTicket", self._tickets.CreateTicket, request, opener)
        if created is None:
            return
        self._opened(issue, created.ticket)
        talk = timedelta(minutes=rng.uniform(2, 10))
        self._schedule(self.clock.now() + talk, f"reply {issue.number}", lambda: self._reply(issue))

    def _opened(self, issue: Issue, ticket: pb.Ticket) -> None:
        if not issue.ticket_id:
            self.report.tickets += 1
        issue.ticket_id = str(ticket.id)
        issue.agent = str(ticket.assignee_id)
        if ticket.HasField("first_touch_time"):
            issue.first_touch = min(issue.first_touch, _when(ticket.first_touch_time))

    def _plan_first_reply(self, issue: Issue) -> None:
        rng = issue.stream("first-reply")
        now = self.clock.now()
        reply_at = agent_time(rng, self.calendar, now, FIRST_REPLY_MINUTES[issue.channel])
        self._schedule(reply_at, f"reply {issue.number}", lambda: self._reply(issue))
        # Some customers chase (once or twice) when the wait outgrows their patience.
        expected = timedelta(minutes=EXPECTED_WAIT_MINUTES[issue.channel] * issue.customer.patience)
        chasers = 0 if rng.random() < 0.4 else 1 if rng.random() < 0.7 else 2
        first, second = rng.uniform(1.2, 2.0), rng.uniform(1.0, 2.0)
        chase_at = issue.first_touch + expected * first
        for _ in range(chasers):
            if chase_at >= reply_at:
                break
            self._schedule(
                max(chase_at, now + _MINUTE), f"chase {issue.number}", lambda: self._chase(issue)
            )
            chase_at += expected * second

    async def _acknowledge(self, issue: Issue) -> None:
        message = pb.Message(
            author_type=pb.AUTHOR_TYPE_BOT,
            author_id="autoresponder",
            visibility=pb.VISIBILITY_PUBLIC,
            body="We received your message and will get back to you soon.",
        )
        await self._add_message(issue, message, self._connectors, "ack")

    async def _link_earlier_mail(self, issue: Issue, occurred: datetime) -> None:
        request = pb.LinkInteractionRequest(
            ticket_id=issue.ticket_id,
            interaction=pb.Interaction(
                kind=pb.INTERACTION_KIND_EMAIL_OTHER_ADDRESS,
                channel=pb.CHANNEL_EMAIL,
                occurred_time=_timestamp(occurred),
                reference=f"mail-{self.run_key}-{issue.number}",
            ),
        )
        linked = await self._call(
            "LinkInteraction", self._tickets.LinkInteraction, request, self._agent(issue)
        )
        if linked is not None:
            issue.first_touch = min(issue.first_touch, occurred)

    async def _chase(self, issue: Issue) -> None:
        if issue.replied_at is not None or issue.resolved:
            return
        issue.chasers += 1
        await self._customer_writes(issue, issue.stream("chase").choice(_CHASERS), "chase")

    async def _customer_writes(self, issue: Issue, body: str, purpose: str) -> bool:
        message = pb.Message(
            author_type=pb.AUTHOR_TYPE_CUSTOMER,
            author_id=issue.contact_id,
            visibility=pb.VISIBILITY_PUBLIC,
            body=body,
        )
        return await self._add_message(issue, message, self._connectors, purpose) is not None

    async def _add_message(
        self, issue: Issue, message: pb.Message, who: _Credential, purpose: str
    ) -> pb.Message | None:
        request = pb.AddMessageRequest(
            ticket_id=issue.ticket_id,
            message=message,
            request_id=f"{self.run_key}-{issue.number}-{purpose}-{next(self._sequence)}",
        )
        added = await self._call("AddMessage", self._tickets.AddMessage, request, who)
        if added is None:
            return None
        self.report.messages += 1
        return added.message

    async def _reply(self, issue: Issue) -> None:
        """A public agent reply; then another round, or the work towards resolving it."""
        rng = issue.stream("reply")
        asking = issue.rounds > 0
        body = rng.choice(_QUESTIONS if asking else _AGENT_REPLIES)
        who = self._agent(issue)
        message = pb.Message(
            author_type=pb.AUTHOR_TYPE_AGENT,
            author_id=issue.agent,
            visibility=pb.VISIBILITY_PUBLIC,
            body=body,
        )
        sent = await self._add_message(issue, message, who, "reply")
        if sent is None:
            return
        sent_at = _when(sent.send_time) if sent.HasField("send_time") else self.clock.now()
        delivered = sent_at
        median = DELIVERY_SECONDS.get(issue.channel)
        if median is not None:
            delivered = sent_at + timedelta(seconds=median * math.exp(rng.gauss(0.0, 1.0)))
            self._schedule(
                delivered,
                f"receipt {issue.number}",
                lambda: self._receipt(issue, str(sent.id), pb.RECEIPT_KIND_DELIVERED, delivered),
            )
            if rng.random() < 0.4:
                read = delivered + lognormal_minutes(rng, 30.0)
                self._schedule(
                    read,
                    f"receipt {issue.number}",
                    lambda: self._receipt(issue, str(sent.id), pb.RECEIPT_KIND_READ, read),
                )
        if issue.replied_at is None:
            issue.replied_at = delivered
        if asking:
            issue.rounds -= 1
            if rng.random() < 0.6:
                self._schedule(
                    sent_at + timedelta(minutes=rng.uniform(1, 5)),
                    f"pending {issue.number}",
                    lambda: self._wait_on_customer(issue),
                )
            answer_at = customer_time(rng, sent_at, 150.0, self.profile.hours.timezone)
            self._schedule(answer_at, f"answer {issue.number}", lambda: self._answers(issue))
            return
        resolve_at = agent_time(rng, self.calendar, sent_at, 50.0)
        self._schedule(resolve_at, f"resolve {issue.number}", lambda: self._resolve(issue))

    async def _wait_on_customer(self, issue: Issue) -> None:
        """The agent sets the ticket aside until the customer answers (pauses the SLA)."""
        await self._transition(issue, pb.TICKET_STATUS_PENDING_CUSTOMER, "waiting for details")

    async def _answers(self, issue: Issue) -> None:
        """The customer answers the agent's question; the agent picks it up again."""
        rng = issue.stream("answer")
        if not await self._customer_writes(issue, rng.choice(_CUSTOMER_ANSWERS), "answer"):
            return
        reply_at = agent_time(
            rng, self.calendar, self.clock.now(), FIRST_REPLY_MINUTES[issue.channel] * 0.7
        )
        self._schedule(reply_at, f"reply {issue.number}", lambda: self._reply(issue))

    async def _receipt(self, issue: Issue, message_id: str, kind: int, at: datetime) -> None:
        request = pb.RecordReceiptRequest(
            ticket_id=issue.ticket_id,
            message_id=message_id,
            kind=kind,  # type: ignore[arg-type]
            time=_timestamp(min(at, self.clock.now())),
        )
        done = await self._call(
            "RecordReceipt", self._tickets.RecordReceipt, request, self._connectors
        )
        if done is not None:
            self.report.receipts += 1

    async def _transition(self, issue: Issue, status: int, reason: str) -> bool:
        request = pb.TransitionTicketRequest(
            id=issue.ticket_id,
            status=status,  # type: ignore[arg-type]
            reason=reason,
        )
        moved = await self._call(
            "TransitionTicket", self._tickets.TransitionTicket, request, self._agent(issue)
        )
        if moved is None:
            return False
        self.report.transitions += 1
        return True

    async def _resolve(self, issue: Issue) -> None:
        """Resolved (the service desk sends the survey); maybe answered, maybe reopened."""
        if not await self._transition(issue, pb.TICKET_STATUS_RESOLVED, "solved"):
            return
        resolved_at = self.clock.now()
        first_time = not issue.resolved
        issue.resolved = True
        rng = issue.stream("resolve")
        tz = self.profile.hours.timezone
        if first_time and rng.random() < self.profile.reopen_rate:
            issue.reopened = True
            again = customer_time(rng, resolved_at, 12 * 60.0, tz)
            self._schedule(again, f"reopen {issue.number}", lambda: self._reopen(issue))
        if first_time and rng.random() < self.profile.answer_rate:
            answer_at = customer_time(rng, resolved_at, 90.0, tz)
            if issue.reopened:
                answer_at += timedelta(days=1)  # after the second round
            self._schedule(answer_at, f"survey {issue.number}", lambda: self._answer_survey(issue))

    async def _reopen(self, issue: Issue) -> None:
        if not await self._customer_writes(issue, "Sorry, the problem is back.", "reopen"):
            return
        reply_at = agent_time(
            issue.stream("reopen"),
            self.calendar,
            self.clock.now(),
            FIRST_REPLY_MINUTES[issue.channel],
        )
        self._schedule(reply_at, f"reply {issue.number}", lambda: self._reply(issue))

    async def _answer_survey(self, issue: Issue) -> None:
        listed = await self._call(
            "ListSurveys",
            self._surveys.ListSurveys,
            pb.ListSurveysRequest(ticket_id=issue.ticket_id),
            self._connectors,
        )
        if listed is None:
            return
        open_surveys = [s for s in listed.surveys if s.status == pb.SURVEY_STATUS_SENT]
        if not open_surveys:
            return
        waited = (issue.replied_at or self.clock.now()) - issue.first_touch
        experience = Experience(
            channel=issue.channel,
            waited=waited,
            patience=issue.customer.patience,
            reopened=issue.reopened,
            chasers=issue.chasers,
        )
        request = pb.AnswerSurveyRequest(
            survey_id=open_surveys[0].id, answer=survey_answer(issue.stream("survey"), experience)
        )
        answered = await self._call(
            "AnswerSurvey", self._surveys.AnswerSurvey, request, self._connectors
        )
        if answered is not None:
            self.report.surveys_answered += 1


def _retry_after(exc: grpc.aio.AioRpcError, attempt: int) -> float:
    """Seconds to wait before retrying: the gateway's ``retry-after`` when it sends one."""
    trailers: Any = exc.trailing_metadata()  # grpc.aio.Metadata: (key, value) pairs
    for key, value in trailers or ():
        if key == "retry-after":
            with contextlib.suppress(ValueError):
                return min(5.0, float(str(value)))
    return 0.2 * 2.0**attempt


async def simulate(
    channel: grpc.aio.Channel,
    tokens: TokenSource,
    clock: Clock,
    *,
    seed: int,
    days: float | None,
    trickle: bool,
    stop: asyncio.Event,
    on_progress: ProgressCallback | None = None,
    profile: CompanyProfile | None = None,
    concurrency: int = 8,
) -> SimulationReport:
    """Play a simulated company's life through the gateway on ``channel`` (see the module):
    ``days`` simulated days (fewer if ``clock`` meets real time first; None: until it does),
    then, with ``trickle``, live issues until ``stop`` is set. Returns what was done."""
    company = SimulatedCompany(
        channel,
        tokens,
        clock,
        seed=seed,
        days=days,
        trickle=trickle,
        profile=profile,
        concurrency=concurrency,
    )
    return await company.run(stop, on_progress)
