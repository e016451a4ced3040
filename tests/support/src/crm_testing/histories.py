"""Realistic service-desk histories as ``crm.servicedesk.v1`` events, reproducible from a seed.

Used to prove the metrics service right (its KPIs against a batch oracle over the same events),
and by benchmarks. :func:`generate` returns the events of ``tickets`` tickets opened
over ``days`` days, plus standalone social mentions, exactly as the service desk would publish
them (see docs/servicedesk.md): the business calendars first (``CalendarChanged``), then per
ticket its facts in causal order, keyed by the customer's contact id. Nothing after the end of
the period is emitted, so tickets opened near the end are naturally still open or unanswered.

What a ticket can go through:

- a first touch before the ticket: a social mention the ticket is opened from (posted before,
  ``MentionReceived.ticket_id`` and ``Ticket.source_mention_id`` set), a missed call or voicemail,
  a chat abandoned in the queue, an e-mail to another address linked later
  (``InteractionLinked``);
- the customer's first message, chasers ("any update?") before the first reply, a bot's
  automatic acknowledgement, internal notes, reassignments (``TicketUpdated``);
- the first public human reply (``MessageAdded.first_response``, set as the service desk sets
  it: on the earliest public agent message), delivery and read receipts some time after sending;
- further rounds of customer messages and replies (next-response cycles), waits for the
  customer (``pending_customer``, left automatically when the customer writes) and for a third
  party (``on_hold``), resolve (sometimes at the very instant of the last reply, or with the
  customer's last messages left without a reply), reopen by a customer message, close;
- ``MessageAdded.ticket_version`` and the snapshots' ``Ticket.version`` counting the ticket's
  changes as the service desk does (a message and the status change it causes share one), so
  events at one instant have the desk's order;
- SLA outcomes per target (``SlaTargetMet`` / ``SlaBreached``) with due times as the desk's
  clocks count them: the target after the clock's start on its calendar (business or round the
  clock), the waits for the customer or a third party and the time resolved before a reopen not
  counting (the desk's default pause statuses); the desk's at-risk warning (``SlaAtRisk``, a
  change of the ticket: it takes a version) once per clock that still runs at 80 % of its
  target; a survey on the first resolve (published with the status change, attributed to the
  resolver) and sometimes its answer; some tickets have no SLA at all, some are never answered.

What it does not model (tests/integration/test_desk_history_contract.py pins each difference):
the SLA clocks in ticket snapshots stay as the ticket was opened (the desk's show each clock's
state), and ``SlaClocksChanged`` is published once, at creation.

Agents answer mostly within the business calendar's opening hours (urgent, live-chat and
platinum tickets round the clock), so business and wall clocks differ the way they do in life.

Speed matters (benchmarks generate a million tickets), so a ticket is planned as a list of
timed actions, sorted, and then executed once: one protobuf ``Ticket`` per ticket is mutated
and serialised for each snapshot, ids come from counters, times are integer milliseconds.
That makes about 100,000 events (6,500 tickets) per second of one CPU, ~16 events a ticket;
a history of a million tickets is ~7 GB as a list, so stream it with :func:`iter_events`.
"""

from __future__ import annotations

import bisect
import gc
import itertools
import math
import random
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from statistics import NormalDist
from typing import Any

from crm.servicedesk.v1 import events_pb2
from crm.servicedesk.v1 import servicedesk_pb2 as pb
from crm_calendar import BusinessCalendar, OpeningInterval
from crm_platform.context import Actor, ActorType
from crm_platform.events import Event

SOURCE = "/crm/servicedesk"
DEFAULT_TENANT = "acme"
DEFAULT_START = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
DEFAULT_DAYS = 28.0
OWN_BRAND = "acme"
COMPETITORS = ("globex", "initech", "umbrella")
BUSINESS_CALENDAR_ID = "cal-berlin-office"
ROUND_THE_CLOCK_CALENDAR_ID = "cal-24x7"
SURVEY_VALID = 7 * 86_400_000  # ms; the service desk's SURVEY_VALID_DAYS default

_MINUTE = 60_000
_HOUR = 3_600_000
_DAY = 86_400_000

# --- the mix -------------------------------------------------------------------------------------

CHANNELS: tuple[tuple[int, float], ...] = (
    (pb.CHANNEL_EMAIL, 30),
    (pb.CHANNEL_PHONE, 15),
    (pb.CHANNEL_LIVE_CHAT, 18),
    (pb.CHANNEL_SOCIAL, 12),
    (pb.CHANNEL_WEB_FORM, 15),
    (pb.CHANNEL_MOBILE, 10),
)
TYPES: tuple[tuple[int, float], ...] = (
    (pb.TICKET_TYPE_SERVICE_REQUEST, 35),
    (pb.TICKET_TYPE_INFORMATION_REQUEST, 25),
    (pb.TICKET_TYPE_COMPLAINT, 15),
    (pb.TICKET_TYPE_INCIDENT, 15),
    (pb.TICKET_TYPE_PRODUCT_RETURN, 10),
)
PRIORITIES: tuple[tuple[int, float], ...] = (
    (pb.PRIORITY_LOW, 15),
    (pb.PRIORITY_NORMAL, 55),
    (pb.PRIORITY_HIGH, 22),
    (pb.PRIORITY_URGENT, 8),
)
TEAMS: dict[str, int] = {"general": 8, "complaints": 5, "returns": 4, "tech": 6, "social": 4}
TEAM_OF_TYPE: dict[int, str] = {
    pb.TICKET_TYPE_SERVICE_REQUEST: "general",
    pb.TICKET_TYPE_INFORMATION_REQUEST: "general",
    pb.TICKET_TYPE_COMPLAINT: "complaints",
    pb.TICKET_TYPE_PRODUCT_RETURN: "returns",
    pb.TICKET_TYPE_INCIDENT: "tech",
}
CATEGORIES: dict[int, tuple[str, ...]] = {
    pb.TICKET_TYPE_SERVICE_REQUEST: ("account", "billing", "delivery"),
    pb.TICKET_TYPE_INFORMATION_REQUEST: ("billing", "product", "delivery"),
    pb.TICKET_TYPE_COMPLAINT: ("delivery", "billing", "product_quality"),
    pb.TICKET_TYPE_PRODUCT_RETURN: ("returns", "product_quality"),
    pb.TICKET_TYPE_INCIDENT: ("technical", "outage"),
}
PRODUCTS = ("router-x1", "phone-s", "tv-55", "plan-basic", "plan-premium", "earbuds")
NETWORKS = ("x", "instagram", "reddit", "facebook")
# Median first-response delay per channel, minutes (before the priority factor).
FIRST_REPLY_MEDIAN: dict[int, float] = {
    pb.CHANNEL_LIVE_CHAT: 2.0,
    pb.CHANNEL_PHONE: 30.0,
    pb.CHANNEL_SOCIAL: 90.0,
    pb.CHANNEL_EMAIL: 300.0,
    pb.CHANNEL_WEB_FORM: 360.0,
    pb.CHANNEL_MOBILE: 180.0,
}
PRIORITY_FACTOR: dict[int, float] = {
    pb.PRIORITY_URGENT: 0.3,
    pb.PRIORITY_HIGH: 0.6,
    pb.PRIORITY_NORMAL: 1.0,
    pb.PRIORITY_LOW: 1.6,
}
# SLA targets (first response, next response, resolution) per policy, in hours.
POLICIES: dict[str, tuple[float, float, float]] = {
    "sla-urgent": (1, 2, 8),
    "sla-high": (2, 4, 24),
    "sla-normal": (8, 8, 72),
    "sla-low": (24, 24, 120),
    "sla-chat": (10 / 60, 0.5, 8),
}
POLICY_OF_PRIORITY: dict[int, str] = {
    pb.PRIORITY_URGENT: "sla-urgent",
    pb.PRIORITY_HIGH: "sla-high",
    pb.PRIORITY_NORMAL: "sla-normal",
    pb.PRIORITY_LOW: "sla-low",
}
RECEIPT_CHANCE: dict[int, float] = {
    pb.CHANNEL_EMAIL: 0.8,
    pb.CHANNEL_SOCIAL: 0.6,
    pb.CHANNEL_MOBILE: 0.9,
    pb.CHANNEL_LIVE_CHAT: 0.95,
    pb.CHANNEL_PHONE: 0.5,
    pb.CHANNEL_WEB_FORM: 0.5,
}
# The customer's expectation in the generator's satisfaction model, minutes.
EXPECTATION: dict[int, int] = {
    pb.CHANNEL_SOCIAL: 120,
    pb.CHANNEL_PHONE: 5,
    pb.CHANNEL_LIVE_CHAT: 5,
    pb.CHANNEL_EMAIL: 1440,
    pb.CHANNEL_WEB_FORM: 1440,
    pb.CHANNEL_MOBILE: 240,
}
GATEWAY: dict[int, str] = {
    pb.CHANNEL_EMAIL: "email-gateway",
    pb.CHANNEL_SOCIAL: "social-gateway",
    pb.CHANNEL_MOBILE: "push-gateway",
    pb.CHANNEL_LIVE_CHAT: "chat-gateway",
    pb.CHANNEL_PHONE: "sms-gateway",
    pb.CHANNEL_WEB_FORM: "email-gateway",
}

# Action kinds of a ticket's plan.
_MENTION, _CREATED, _MSG, _RECEIPT, _STATUS, _UPDATE, _LINK = range(7)
_MET, _BREACH, _SURVEY_SENT, _SURVEY_ANSWERED, _AT_RISK = range(7, 12)
AT_RISK_FRACTION = 0.8
"""The share of a target after which the desk warns (its policies' default at-risk fraction)."""

_TRANSITIONS: dict[int, set[int]] = {
    pb.TICKET_STATUS_NEW: {
        pb.TICKET_STATUS_OPEN,
        pb.TICKET_STATUS_PENDING_CUSTOMER,
        pb.TICKET_STATUS_ON_HOLD,
        pb.TICKET_STATUS_RESOLVED,
    },
    pb.TICKET_STATUS_OPEN: {
        pb.TICKET_STATUS_PENDING_CUSTOMER,
        pb.TICKET_STATUS_ON_HOLD,
        pb.TICKET_STATUS_RESOLVED,
    },
    pb.TICKET_STATUS_PENDING_CUSTOMER: {
        pb.TICKET_STATUS_OPEN,
        pb.TICKET_STATUS_ON_HOLD,
        pb.TICKET_STATUS_RESOLVED,
    },
    pb.TICKET_STATUS_ON_HOLD: {
        pb.TICKET_STATUS_OPEN,
        pb.TICKET_STATUS_PENDING_CUSTOMER,
        pb.TICKET_STATUS_RESOLVED,
    },
    pb.TICKET_STATUS_RESOLVED: {pb.TICKET_STATUS_OPEN, pb.TICKET_STATUS_CLOSED},
    pb.TICKET_STATUS_CLOSED: set(),
}

_T_CREATED = events_pb2.TicketCreated.DESCRIPTOR.full_name
_T_UPDATED = events_pb2.TicketUpdated.DESCRIPTOR.full_name
_T_STATUS = events_pb2.TicketStatusChanged.DESCRIPTOR.full_name
_T_LINKED = events_pb2.InteractionLinked.DESCRIPTOR.full_name
_T_MESSAGE = events_pb2.MessageAdded.DESCRIPTOR.full_name
_T_RECEIPT = events_pb2.ReceiptRecorded.DESCRIPTOR.full_name
_T_CLOCKS = events_pb2.SlaClocksChanged.DESCRIPTOR.full_name
_T_BREACHED = events_pb2.SlaBreached.DESCRIPTOR.full_name
_T_AT_RISK = events_pb2.SlaAtRisk.DESCRIPTOR.full_name
_T_MET = events_pb2.SlaTargetMet.DESCRIPTOR.full_name
_T_ROUTED = events_pb2.TicketRouted.DESCRIPTOR.full_name
_T_MENTION = events_pb2.MentionReceived.DESCRIPTOR.full_name
_T_SENT = events_pb2.SurveySent.DESCRIPTOR.full_name
_T_ANSWERED = events_pb2.SurveyAnswered.DESCRIPTOR.full_name
_T_CALENDAR = events_pb2.CalendarChanged.DESCRIPTOR.full_name

# One shared (never mutated) empty extensions mapping instead of a new dict per event.
_NO_EXTENSIONS: dict[str, str] = {}
_AGENT = ActorType.AGENT
_CUSTOMER = ActorType.CUSTOMER
_SLA_ACTOR = Actor(ActorType.SYSTEM, "sla-timer")
_BOT_ACTOR = Actor(ActorType.SYSTEM, "autoresponder")
_LISTENING_ACTOR = Actor(ActorType.INTEGRATION, "social-listening")
_ADMIN_ACTOR = Actor(ActorType.AGENT, "admin")
_SURVEYS_ACTOR = Actor(ActorType.SYSTEM, "surveys")
_AUTO_CLOSE_ACTOR = Actor(ActorType.SYSTEM, "auto-close")
_MENTION_RULE_ACTOR = Actor(ActorType.RULE, "r-open-from-mention")
_SUPERVISOR = "ag-supervisor"


# --- calendars -----------------------------------------------------------------------------------


def business_calendar(years: Iterable[int] = range(2024, 2031)) -> BusinessCalendar:
    """Europe/Berlin, Monday to Friday 09:00-12:00 and 13:00-17:00, closed on Berlin's public
    holidays and on 24 and 31 December."""
    return BusinessCalendar.create(
        calendar_id=BUSINESS_CALENDAR_ID,
        version=1,
        timezone="Europe/Berlin",
        intervals=[
            OpeningInterval(day, start, end)
            for day in range(5)
            for start, end in ((9 * 60, 12 * 60), (13 * 60, 17 * 60))
        ],
        holidays=[date(year, 12, day) for year in years for day in (24, 31)],
        holiday_country="DE",
        holiday_subdivision="BE",
    )


def round_the_clock_calendar() -> BusinessCalendar:
    """Open all the time (UTC), for urgent tickets and live chat."""
    return BusinessCalendar.create(
        calendar_id=ROUND_THE_CLOCK_CALENDAR_ID,
        version=1,
        timezone="UTC",
        intervals=[OpeningInterval(day, 0, 1440) for day in range(7)],
    )


def calendar_to_proto(calendar: BusinessCalendar, name: str = "") -> pb.BusinessCalendar:
    """A calendar as ``CalendarChanged`` carries it (ISO weekday 1 = Monday)."""
    return pb.BusinessCalendar(
        id=calendar.calendar_id,
        name=name or calendar.calendar_id,
        timezone=calendar.timezone,
        intervals=[
            pb.OpeningInterval(
                weekday=i.weekday + 1, start_minute=i.start_minute, end_minute=i.end_minute
            )
            for i in calendar.intervals
        ],
        holidays=sorted(day.isoformat() for day in calendar.holidays),
        holiday_country=calendar.holiday_country or "",
        holiday_subdivision=calendar.holiday_subdivision or "",
        version=calendar.version,
    )


# --- the result ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class History:
    """Generated events and what they were generated with."""

    events: list[Event]
    calendars: dict[tuple[str, int], BusinessCalendar]
    tenant: str
    start: datetime
    end: datetime
    tickets: int
    mentions: int
    own_brands: tuple[str, ...] = (OWN_BRAND,)
    seed: int = 0


def generate(
    seed: int,
    tickets: int,
    *,
    tenant: str = DEFAULT_TENANT,
    start: datetime = DEFAULT_START,
    days: float = DEFAULT_DAYS,
    calendars: Sequence[BusinessCalendar] | None = None,
    mentions_per_ticket: float = 0.3,
) -> History:
    """The events of ``tickets`` tickets opened in ``[start, start + days)`` and about
    ``mentions_per_ticket`` standalone mentions per ticket, deterministic for a seed.

    ``calendars``: the first is the business calendar most SLAs count on, the second (if any)
    the one of urgent and live-chat tickets; default :func:`business_calendar` and
    :func:`round_the_clock_calendar`.
    """
    cals = list(calendars) if calendars else [business_calendar(), round_the_clock_calendar()]
    generator = _Generator(seed, tickets, tenant, start, days, cals, mentions_per_ticket)
    # Millions of long-lived events: the cyclic collector would walk them again and again while
    # the list grows (generating makes no reference cycles), so it pauses meanwhile.
    collecting = gc.isenabled()
    gc.disable()
    try:
        events = list(generator.events())
    finally:
        if collecting:
            gc.enable()
    return History(
        events=events,
        calendars={(c.calendar_id, c.version): c for c in cals},
        tenant=tenant,
        start=start,
        end=generator.end,
        tickets=tickets,
        mentions=generator.mention_count,
        seed=seed,
    )


def iter_events(
    seed: int,
    tickets: int,
    *,
    tenant: str = DEFAULT_TENANT,
    start: datetime = DEFAULT_START,
    days: float = DEFAULT_DAYS,
    calendars: Sequence[BusinessCalendar] | None = None,
    mentions_per_ticket: float = 0.3,
) -> Iterator[Event]:
    """The same events as :func:`generate`, one at a time (for histories too big to hold)."""
    cals = list(calendars) if calendars else [business_calendar(), round_the_clock_calendar()]
    yield from _Generator(seed, tickets, tenant, start, days, cals, mentions_per_ticket).events()


def shuffled(events: Sequence[Event], seed: int) -> list[Event]:
    """The events in a random order (deterministic for a seed)."""
    copy = list(events)
    random.Random(seed).shuffle(copy)
    return copy


def with_duplicates(events: Sequence[Event], fraction: float, seed: int) -> list[Event]:
    """The events with about ``fraction`` of them sent again (the same event, same id), each
    repeat somewhat later in the stream than its original (an at-least-once redelivery)."""
    rng = random.Random(seed)
    keyed: list[tuple[float, Event]] = []
    for position, event in enumerate(events):
        keyed.append((float(position), event))
        if rng.random() < fraction:
            keyed.append((position + 0.5 + rng.random() * 1000, event))
    keyed.sort(key=lambda item: item[0])
    return [event for _, event in keyed]


# --- the generator -------------------------------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _ticket_field(ticket_bytes: bytes) -> bytes:
    """Field 1 (the ticket) of TicketCreated / TicketUpdated / TicketStatusChanged, encoded.

    Deterministic serialisation writes fields in number order, so field 1 followed by the
    other fields' encoding is the message's encoding, without copying the ticket."""
    return b"\x0a" + _varint(len(ticket_bytes)) + ticket_bytes


def _set_time(stamp: Any, ms: int) -> None:
    stamp.seconds = ms // 1000
    stamp.nanos = (ms % 1000) * 1_000_000


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _ms(at: datetime) -> int:
    return (at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


class _Choice:
    """A weighted choice by one uniform draw and a binary search."""

    def __init__(self, weighted: Sequence[tuple[int, float]]) -> None:
        self.values = [value for value, _ in weighted]
        total = sum(weight for _, weight in weighted)
        self.bounds = list(itertools.accumulate(weight / total for _, weight in weighted))

    def pick(self, u: float) -> int:
        return self.values[min(bisect.bisect_right(self.bounds, u), len(self.values) - 1)]


class _Hours:
    """A calendar's opening spans over the generated period as sorted millisecond lists, so
    that "is it open / when does it open / when is N business hours later" are a binary
    search (the calendar itself answers outside the period)."""

    def __init__(self, calendar: BusinessCalendar, start_ms: int, end_ms: int) -> None:
        self.calendar = calendar
        self.starts: list[int] = []
        self.ends: list[int] = []
        # opened[i]: the opening time before span i (so opened[-1] is all of it).
        self.opened: list[int] = [0]
        for lo, hi in calendar.open_spans(_dt(start_ms), _dt(end_ms)):
            self.starts.append(_ms(lo))
            self.ends.append(_ms(hi))
            self.opened.append(self.opened[-1] + self.ends[-1] - self.starts[-1])

    def next_open(self, ms: int) -> int:
        """``ms`` when open then, else the next opening (``ms`` past the known spans)."""
        i = bisect.bisect_right(self.ends, ms)  # the first span ending after ms
        if i == len(self.starts):
            return ms
        return max(ms, self.starts[i])

    def between(self, start: int, end: int) -> int:
        """Opening time (ms) in ``[start, end)``."""
        if end <= start:
            return 0
        if not self.starts or start < self.starts[0] or end > self.ends[-1]:
            return self.calendar.business_time(_dt(start), _dt(end)) // timedelta(milliseconds=1)
        return self._opened_before(end) - self._opened_before(start)

    def _opened_before(self, ms: int) -> int:
        i = bisect.bisect_right(self.ends, ms)  # the first span ending after ms
        if i == len(self.starts):
            return self.opened[-1]
        return self.opened[i] + max(0, ms - self.starts[i])

    def add(self, ms: int, amount: int) -> int:
        """The instant ``amount`` ms of opening time after ``ms``."""
        i = bisect.bisect_right(self.ends, ms)  # the first span ending after ms
        if i < len(self.starts):
            # The opening time from the first span's start to the answer, then the span it
            # ends in: the first whose cumulative opening time reaches it.
            goal = self.opened[i] + max(ms - self.starts[i], 0) + amount
            j = bisect.bisect_left(self.opened, goal) - 1
            if j < len(self.starts):
                return self.starts[j] + goal - self.opened[j]
        later = self.calendar.add_business_time(_dt(ms), timedelta(milliseconds=amount))
        return _ms(later)


_Action = tuple[int, int, int, tuple[Any, ...]]  # (time ms, sequence, kind, data)

# Standard normal quantiles at the midpoints of 4096 equal-probability cells: one uniform draw
# and an index give a normal draw (tails cut at about 3.5 sigma), far cheaper than gauss().
_NORMAL_SIZE = 4096
_NORMAL = [NormalDist().inv_cdf((i + 0.5) / _NORMAL_SIZE) for i in range(_NORMAL_SIZE)]


class _Generator:
    def __init__(
        self,
        seed: int,
        tickets: int,
        tenant: str,
        start: datetime,
        days: float,
        calendars: list[BusinessCalendar],
        mentions_per_ticket: float,
    ) -> None:
        self.seed = seed
        self.tickets = tickets
        self.tenant = tenant
        self.start_ms = _ms(start)
        self.end_ms = self.start_ms + int(days * _DAY)
        self.end = _dt(self.end_ms)
        self.calendars = calendars
        self.business = calendars[0]
        self.round_the_clock = calendars[1] if len(calendars) > 1 else calendars[0]
        # Opening hours from a week before the period to three months after it.
        self.hours = {
            c.calendar_id: _Hours(c, self.start_ms - 7 * _DAY, self.end_ms + 90 * _DAY)
            for c in calendars
        }
        self.business_hours = self.hours[self.business.calendar_id]
        self.rng = random.Random(seed)
        self.mention_count = int(tickets * mentions_per_ticket)
        self.contacts = max(1, tickets * 2 // 3)
        self.event_prefix = f"ev-{seed}-"
        self.event_counter = itertools.count(1)
        self.channels = _Choice(CHANNELS)
        self.types = _Choice(TYPES)
        self.priorities = _Choice(PRIORITIES)
        self.agents = {
            team: [f"ag-{team}-{n}" for n in range(1, size + 1)] for team, size in TEAMS.items()
        }
        self.actors: dict[str, Actor] = {}
        self.last_ms = self.start_ms
        self.last_time = _dt(self.start_ms)
        self.rules = {
            f"r-assign-{team}": Actor(ActorType.RULE, f"r-assign-{team}") for team in TEAMS
        }
        self.gateways = {
            channel: Actor(ActorType.INTEGRATION, name) for channel, name in GATEWAY.items()
        }
        self.policy_protos: dict[tuple[str, str], pb.TicketSla] = {}

    # -- helpers -------------------------------------------------------------------------------

    def _agent(self, ident: str) -> Actor:
        """Agents (and rules, gateways) are few: one Actor each."""
        actor = self.actors.get(ident)
        if actor is None:
            actor = self.actors[ident] = Actor(_AGENT, ident)
        return actor

    def _event(
        self, type_: str, payload: bytes, ms: int, actor: Actor, key: str, subject: str
    ) -> Event:
        # Events of one change share their instant: reuse the datetime of the previous event.
        if ms != self.last_ms:
            self.last_ms, self.last_time = ms, _dt(ms)
        # Positional arguments: this runs once per event and keywords cost a third more.
        return Event(
            f"{self.event_prefix}{next(self.event_counter):x}",
            type_,
            SOURCE,
            subject,
            self.last_time,
            self.tenant,
            actor,
            key,
            payload,
            _NO_EXTENSIONS,
        )

    def _business_hours(self, ms: int, chance: float = 0.8) -> int:
        """Agents mostly work in business hours: move ``ms`` to the next opening (plus a few
        minutes) with probability ``chance`` when the business calendar is closed then."""
        rng = self.rng
        if rng.random() >= chance:
            return ms
        opening = self.business_hours.next_open(ms)
        if opening == ms:
            return ms
        return opening + int(rng.random() * 40 * _MINUTE) + 1000

    def _lognormal_ms(self, median_minutes: float, sigma: float = 1.0) -> int:
        """A log-normal delay (at least a second); the normal draw is a table look-up."""
        z = _NORMAL[int(self.rng.random() * _NORMAL_SIZE)]
        return max(1000, int(median_minutes * math.exp(sigma * z) * _MINUTE))

    def _creation_times(self) -> list[int]:
        rng = self.rng
        span = self.end_ms - self.start_ms
        times = []
        for _ in range(self.tickets):
            ms = self.start_ms + int(rng.random() * span)
            hour = (ms // _HOUR + 1) % 24  # roughly Berlin local time
            if (hour < 8 or hour >= 20) and rng.random() < 0.6:
                ms = self.start_ms + int(rng.random() * span)  # the night is quieter: try again
            times.append(ms)
        times.sort()
        return times

    def _sla(
        self, sla: pb.TicketSla, policy: str, calendar: BusinessCalendar, created: int
    ) -> None:
        """Fill a ticket's SLA: the policy's clocks, started at creation."""
        wall = calendar.calendar_id == ROUND_THE_CLOCK_CALENDAR_ID
        self._sla_of(sla, policy, POLICIES[policy], calendar, created, wall=wall)

    def _sla_of(
        self,
        sla: pb.TicketSla,
        policy: str,
        targets: tuple[float, float, float],
        calendar: BusinessCalendar,
        created: int,
        *,
        wall: bool,
    ) -> None:
        """Fill a ticket's SLA: the clocks of a policy of ``targets`` (first response, next
        response, resolution; hours) on the wall clock or the calendar's, started at creation."""
        key = (policy, calendar.calendar_id)
        template = self.policy_protos.get(key)
        if template is None:
            kind = pb.CLOCK_KIND_WALL if wall else pb.CLOCK_KIND_BUSINESS
            template = pb.TicketSla(
                policy_id=policy,
                policy_version=1,
                calendar_id=calendar.calendar_id,
                calendar_version=calendar.version,
            )
            for target, hours in zip(
                (
                    pb.SLA_TARGET_FIRST_RESPONSE,
                    pb.SLA_TARGET_NEXT_RESPONSE,
                    pb.SLA_TARGET_RESOLUTION,
                ),
                targets,
                strict=True,
            ):
                clock = template.clocks.add(
                    target=target, clock=kind, state=pb.SLA_CLOCK_STATE_RUNNING
                )
                clock.target_duration.seconds = round(hours * 3600)
            self.policy_protos[key] = template
        sla.CopyFrom(template)
        for clock in sla.clocks:
            if clock.target == pb.SLA_TARGET_NEXT_RESPONSE:
                continue  # starts with the first customer message after a reply
            _set_time(clock.start_time, created)
            due = self._due_ms(calendar, created, clock.target_duration.seconds * 1000, wall=wall)
            _set_time(clock.due_time, due)

    def _due(self, calendar: BusinessCalendar, start: int, hours: float) -> int:
        """When a target of ``hours`` started at ``start`` falls due, without pauses."""
        return self._due_ms(calendar, start, int(hours * _HOUR))

    def _due_paused(
        self,
        calendar: BusinessCalendar,
        start: int,
        amount: int,
        pauses: Iterable[tuple[int, int]],
        *,
        wall: bool = False,
    ) -> int:
        """When a target of ``amount`` ms started at ``start`` falls due, the clock stopped
        during ``pauses`` ((start, end) ms) as the desk's: the target counted over the runs
        between them, on the wall clock or on the calendar's open time."""
        wall = wall or calendar.calendar_id == ROUND_THE_CLOCK_CALENDAR_ID
        hours = self.hours[calendar.calendar_id]
        remaining, cursor = amount, start
        for paused, resumed in sorted(pauses):
            if resumed <= cursor:
                continue
            if paused > cursor:
                available = paused - cursor if wall else hours.between(cursor, paused)
                if available >= remaining:
                    break
                remaining -= available
            cursor = max(cursor, resumed)
        return self._due_ms(calendar, cursor, remaining, wall=wall)

    def _due_ms(
        self, calendar: BusinessCalendar, start: int, amount: int, *, wall: bool = False
    ) -> int:
        """When a target of ``amount`` ms started at ``start`` falls due, without pauses,
        on the wall clock or on the calendar's open time."""
        if wall or calendar.calendar_id == ROUND_THE_CLOCK_CALENDAR_ID:
            return start + amount
        return self.hours[calendar.calendar_id].add(start, amount)

    # -- the stream ----------------------------------------------------------------------------

    def events(self) -> Iterator[Event]:
        yield from self._calendar_events()
        rng = self.rng
        creations = self._creation_times()
        span = self.end_ms - self.start_ms
        mention_times = sorted(
            self.start_ms + int(rng.random() * span) for _ in range(self.mention_count)
        )
        mi = 0
        for index, created in enumerate(creations):
            while mi < len(mention_times) and mention_times[mi] <= created:
                yield self._standalone_mention(mi, mention_times[mi])
                mi += 1
            yield from self._ticket(index, created)
        while mi < len(mention_times):
            yield self._standalone_mention(mi, mention_times[mi])
            mi += 1

    def _calendar_events(self) -> Iterator[Event]:
        at = self.start_ms - _DAY
        for calendar in self.calendars:
            yield self._calendar_event(calendar, at)

    def _calendar_event(self, calendar: BusinessCalendar, at: int, name: str = "") -> Event:
        message = pb.BusinessCalendar()
        message.CopyFrom(calendar_to_proto(calendar, name))
        _set_time(message.update_time, at)
        payload = events_pb2.CalendarChanged(calendar=message).SerializeToString(deterministic=True)
        return self._event(
            _T_CALENDAR,
            payload,
            at,
            _ADMIN_ACTOR,
            calendar.calendar_id,
            f"calendars/{calendar.calendar_id}",
        )

    def _standalone_mention(self, index: int, posted: int) -> Event:
        rng = self.rng
        network = NETWORKS[int(rng.random() * len(NETWORKS))]
        u = rng.random()
        brand = (
            ""
            if u < 0.15
            else OWN_BRAND
            if u < 0.55
            else COMPETITORS[int(rng.random() * len(COMPETITORS))]
        )
        contact = f"c-{int(rng.random() * self.contacts):07d}" if rng.random() < 0.3 else ""
        handle = f"user{int(rng.random() * 10 * self.contacts)}"
        sentiment = round(max(-1.0, min(1.0, rng.gauss(0.05, 0.45))), 4)
        if rng.random() < 0.2:
            sentiment = 0.0
        mention = pb.Mention(
            id=f"{network}:p{self.seed}m{index}",
            network=network,
            post_id=f"p{self.seed}m{index}",
            author_handle=handle,
            author_followers=int(math.exp(rng.gauss(5.0, 2.0))),
            text="Thoughts on @acme?" if not brand or brand == OWN_BRAND else f"Trying {brand}",
            brand=brand,
            sentiment=sentiment,
            author_contact_id=contact,
        )
        _set_time(mention.posted_time, posted)
        _set_time(mention.ingest_time, posted + 30_000)
        return self._mention_event(mention)

    def _mention_event(self, mention: pb.Mention) -> Event:
        """A standalone mention's event: at its post time, keyed by its author's contact (or
        ``network:handle`` when the author is not a known contact)."""
        payload = events_pb2.MentionReceived(mention=mention).SerializeToString(deterministic=True)
        return self._event(
            _T_MENTION,
            payload,
            _ms_of(mention.posted_time),
            _LISTENING_ACTOR,
            mention.author_contact_id or f"{mention.network}:{mention.author_handle}",
            f"mentions/{mention.id}",
        )

    # -- one ticket ----------------------------------------------------------------------------

    def _ticket(self, index: int, t0: int) -> Iterator[Event]:
        rng = self.rng
        r = rng.random
        ticket_id = f"tk-{self.seed}-{index:07d}"
        contact_number = int(r() * self.contacts)
        contact = f"c-{contact_number:07d}"
        tier_roll = (contact_number * 2654435761) % 100  # a contact keeps its tier
        tier = (
            "standard"
            if tier_roll < 60
            else "silver"
            if tier_roll < 85
            else "gold"
            if tier_roll < 96
            else "platinum"
        )
        channel = self.channels.pick(r())
        type_ = self.types.pick(r())
        priority = self.priorities.pick(r())
        team = "social" if channel == pb.CHANNEL_SOCIAL else TEAM_OF_TYPE[type_]
        agents = self.agents[team]
        agent = agents[int(r() * len(agents))]
        unassigned = r() < 0.05
        categories = CATEGORIES[type_]

        plan: list[_Action] = []
        seq = itertools.count()

        def act(ms: int, kind: int, *data: Any) -> None:
            plan.append((ms, next(seq), kind, data))

        # The SLA: most tickets have one, on the business calendar or round the clock.
        policy = ""
        targets: tuple[float, float, float] | None = None
        calendar = self.business
        if r() < 0.88:
            policy = "sla-chat" if channel == pb.CHANNEL_LIVE_CHAT else POLICY_OF_PRIORITY[priority]
            calendar = (
                self.round_the_clock
                if priority == pb.PRIORITY_URGENT
                or channel == pb.CHANNEL_LIVE_CHAT
                or tier == "platinum"
                else self.business
            )
            targets = POLICIES[policy]

        ticket = pb.Ticket(
            id=ticket_id,
            tenant_id=self.tenant,
            type=type_,  # type: ignore[arg-type]
            channel=channel,  # type: ignore[arg-type]
            priority=priority,  # type: ignore[arg-type]
            status=pb.TICKET_STATUS_NEW,
            subject="Order problem" if type_ == pb.TICKET_TYPE_COMPLAINT else "Question",
            contact_id=contact,
            customer_tier=tier,
            assignee_id="" if unassigned else agent,
            team_id=team,
            category=categories[int(r() * len(categories))],
            product=PRODUCTS[int(r() * len(PRODUCTS))],
            version=1,
        )
        _set_time(ticket.create_time, t0)
        if targets is not None:
            self._sla(ticket.sla, policy, calendar, t0)

        # First touch before the ticket.
        first_touch = t0
        creator = Actor(_CUSTOMER, contact)
        first_message = True
        if channel == pb.CHANNEL_SOCIAL and r() < 0.5:
            posted = t0 - self._lognormal_ms(120.0)
            mention_id = f"x:p{self.seed}t{index}"
            mention = pb.Mention(
                id=mention_id,
                network="x",
                post_id=f"p{self.seed}t{index}",
                author_handle=f"cust{contact_number}",
                author_followers=int(math.exp(rng.gauss(5.5, 2.0))),
                text="@acme my order never arrived!!",
                brand=OWN_BRAND if r() < 0.7 else "",
                sentiment=round(-0.1 - r() * 0.85, 4) if r() < 0.8 else round(r() * 0.4, 4),
                author_contact_id=contact,
                ticket_id=ticket_id,
            )
            _set_time(mention.posted_time, posted)
            _set_time(mention.ingest_time, t0)
            act(posted, _MENTION, mention)
            ticket.source_mention_id = mention_id
            interaction = ticket.interactions.add(
                kind=pb.INTERACTION_KIND_SOCIAL_MENTION,
                channel=pb.CHANNEL_SOCIAL,
                reference=mention_id,
            )
            _set_time(interaction.occurred_time, posted)
            first_touch = posted
            creator = _MENTION_RULE_ACTOR
            first_message = False
        elif channel == pb.CHANNEL_PHONE:
            creator = self._agent(agent)
            first_message = r() < 0.3
            if r() < 0.4:
                for kind in (pb.INTERACTION_KIND_MISSED_CALL, pb.INTERACTION_KIND_VOICEMAIL):
                    if r() < 0.6:
                        occurred = t0 - 5 * _MINUTE - int(r() * 3 * _HOUR)
                        interaction = ticket.interactions.add(
                            kind=kind, channel=pb.CHANNEL_PHONE, reference=f"call-{index}-{kind}"
                        )
                        _set_time(interaction.occurred_time, occurred)
                        first_touch = min(first_touch, occurred)
        elif channel == pb.CHANNEL_LIVE_CHAT and r() < 0.25:
            occurred = t0 - 2 * _MINUTE - int(r() * _HOUR)
            interaction = ticket.interactions.add(
                kind=pb.INTERACTION_KIND_CHAT_ABANDONED,
                channel=pb.CHANNEL_LIVE_CHAT,
                reference=f"chat-{index}",
            )
            _set_time(interaction.occurred_time, occurred)
            first_touch = occurred
        _set_time(ticket.first_touch_time, first_touch)
        routed = not unassigned and channel != pb.CHANNEL_PHONE and r() < 0.7
        if routed:
            decision = ticket.routing_decisions.add(
                rule_id=f"r-assign-{team}",
                rule_version=1,
                assigned_agent_id=agent,
                trigger=pb.RULE_TRIGGER_TICKET_CREATED,
            )
            decision.action.kind = pb.RULE_ACTION_KIND_ASSIGN_AGENT
            decision.action.team_id = team
            decision.action.strategy = pb.ASSIGN_STRATEGY_ROUND_ROBIN
            _set_time(decision.decide_time, t0)
        act(t0, _CREATED, creator, routed)

        message_number = itertools.count(1)

        def message(
            ms: int, author: int, author_id: str, public: bool = True, opening: bool = False
        ) -> str:
            """``opening``: the customer's first message, added by the change opening it."""
            message_id = f"m-{self.seed}-{index}-{next(message_number)}"
            act(ms, _MSG, message_id, author, author_id, public, opening)
            return message_id

        def receipts(ms: int, message_id: str, long_delay: bool = False) -> int:
            """Maybe a delivery (and a read) receipt; returns the delivery time (or send)."""
            if r() >= RECEIPT_CHANCE[channel]:
                return ms
            delay = self._lognormal_ms(3 * 60.0 if long_delay else 2.0)
            act(ms + delay, _RECEIPT, message_id, pb.RECEIPT_KIND_DELIVERED)
            if r() < 0.3:
                act(
                    ms + delay + self._lognormal_ms(30.0),
                    _RECEIPT,
                    message_id,
                    pb.RECEIPT_KIND_READ,
                )
            return ms + delay

        if first_message:
            message(t0, pb.AUTHOR_TYPE_CUSTOMER, contact, opening=True)
        if channel in (pb.CHANNEL_EMAIL, pb.CHANNEL_WEB_FORM, pb.CHANNEL_MOBILE) and r() < 0.7:
            ack_at = t0 + 2000 + int(r() * 58_000)
            ack = message(ack_at, pb.AUTHOR_TYPE_BOT, "autoresponder")
            if r() < 0.8:
                act(ack_at + 1000 + int(r() * 29_000), _RECEIPT, ack, pb.RECEIPT_KIND_DELIVERED)
        fr_target, nr_target, res_target = targets if targets is not None else (0.0, 0.0, 0.0)
        # Stretches in which the ticket's clocks stand still (as the desk's policies pause
        # them): waits for the customer or a third party, and resolved until reopened.
        pauses: list[tuple[int, int]] = []
        last_agent = agent

        hours_of: dict[int, float] = {
            pb.SLA_TARGET_FIRST_RESPONSE: fr_target,
            pb.SLA_TARGET_NEXT_RESPONSE: nr_target,
            pb.SLA_TARGET_RESOLUTION: res_target,
        }
        warned: set[int] = set()  # targets whose clock has had its at-risk warning

        def due_of(target: int, start: int, share: float = 1.0) -> int:
            """When ``share`` of a target started at ``start`` has elapsed, pauses so far
            not counting."""
            amount = round(hours_of[target] * share * _HOUR)
            return self._due_paused(calendar, start, amount, pauses)

        def warn(target: int, start: int, due: int, until: int | None) -> None:
            """The desk's at-risk warning (a change of the ticket) when the clock started at
            ``start`` still runs at AT_RISK_FRACTION of its target: once per clock."""
            if targets is None or target in warned:
                return
            risk = due_of(target, start, AT_RISK_FRACTION)
            if until is None or until > risk:
                warned.add(target)
                act(risk, _AT_RISK, target, due, risk)

        def outcome(target: int, start: int, done: int | None) -> None:
            """SLA met at ``done`` if not later than its due time, else breached then; the
            at-risk warning before, if the clock (started at ``start``) ran that long."""
            if targets is None:
                return
            due = due_of(target, start)
            warn(target, start, due, done)
            if done is not None and done <= due:
                act(done, _MET, target, due, last_agent)
            else:
                act(due, _BREACH, target, due)

        # Some tickets are closed as spam / duplicates without any reply.
        if r() < 0.02:
            done = t0 + 10 * _MINUTE + int(r() * _DAY)
            act(done, _STATUS, pb.TICKET_STATUS_RESOLVED, "duplicate", agent)
            act(done + _DAY, _STATUS, pb.TICKET_STATUS_CLOSED, "auto close", "")
            if targets is not None:
                fr_due = due_of(pb.SLA_TARGET_FIRST_RESPONSE, t0)
                warn(pb.SLA_TARGET_FIRST_RESPONSE, t0, fr_due, done)
                if fr_due < done:
                    act(fr_due, _BREACH, pb.SLA_TARGET_FIRST_RESPONSE, fr_due)
            outcome(pb.SLA_TARGET_RESOLUTION, t0, done)
            return self._execute(ticket, plan, contact, channel)

        # The first reply, and the customer's chasers while waiting for it.
        median = FIRST_REPLY_MEDIAN[channel] * PRIORITY_FACTOR[priority]
        # Office hours for most; urgent, chat and platinum tickets are served round the clock.
        office = 0.8 if calendar is self.business else 0.1
        fr = self._business_hours(t0 + self._lognormal_ms(median, 1.1), office)
        never_answered = r() < 0.05
        wait_end = self.end_ms if never_answered else fr
        chance = min(0.9, (wait_end - t0) / (12 * _HOUR))
        chaser_at = t0
        while r() < chance and chaser_at < wait_end:
            chaser_at += 10 * _MINUTE + int(r() * (wait_end - t0) / 2)
            if chaser_at < wait_end - _MINUTE:
                message(chaser_at, pb.AUTHOR_TYPE_CUSTOMER, contact)
            chance /= 2
        if r() < 0.25:
            note_at = t0 + int(r() * max(1, min(fr, self.end_ms) - t0))
            message(note_at, pb.AUTHOR_TYPE_AGENT, agent, public=False)
        if channel == pb.CHANNEL_EMAIL and r() < 0.08:
            # An earlier e-mail to another address, found and linked within the first hours.
            interaction = pb.Interaction(
                kind=pb.INTERACTION_KIND_EMAIL_OTHER_ADDRESS,
                channel=pb.CHANNEL_EMAIL,
                reference=f"mail-{index}",
            )
            _set_time(interaction.occurred_time, first_touch - _HOUR - int(r() * 2 * _DAY))
            act(t0 + 10 * _MINUTE + int(r() * 3 * _HOUR), _LINK, interaction, agent)
        if unassigned or r() < 0.1:
            # Assigned later (or reassigned) before the first reply; sometimes escalated.
            new_team = team if r() < 0.6 else ("tech" if team != "tech" else "complaints")
            pool = self.agents[new_team]
            agent = pool[int(r() * len(pool))]
            last_agent = agent
            window = max(0, min(fr, self.end_ms) - t0 - 2000)
            act(t0 + 1000 + int(r() * window), _UPDATE, agent, new_team)
        if never_answered:
            outcome(pb.SLA_TARGET_FIRST_RESPONSE, t0, None)
            outcome(pb.SLA_TARGET_RESOLUTION, t0, None)
            return self._execute(ticket, plan, contact, channel)

        reply = message(fr, pb.AUTHOR_TYPE_AGENT, agent)
        outcome(pb.SLA_TARGET_FIRST_RESPONSE, t0, fr)
        delivered = receipts(fr, reply, long_delay=channel == pb.CHANNEL_SOCIAL and r() < 0.2)
        customer_wait = delivered - first_touch
        happy = customer_wait <= EXPECTATION[channel] * _MINUTE

        # Further rounds: the customer writes, the agent answers.
        t = fr
        rounds = 0 if r() < 0.45 else 1 if r() < 0.55 else 2 if r() < 0.68 else 3
        for _ in range(rounds):
            waiting = 0
            if r() < 0.3:
                t += _MINUTE + int(r() * 10 * _MINUTE)
                act(t, _STATUS, pb.TICKET_STATUS_PENDING_CUSTOMER, "waiting for details", agent)
                waiting = t
            t += self._lognormal_ms(180.0)
            run_start = t
            if waiting:
                pauses.append((waiting, t))  # until the customer writes
            message(t, pb.AUTHOR_TYPE_CUSTOMER, contact)
            if r() < 0.3:
                t += _MINUTE + int(r() * 30 * _MINUTE)
                message(t, pb.AUTHOR_TYPE_CUSTOMER, contact)
            if r() < 0.08:
                t += 5 * _MINUTE + int(r() * _HOUR)
                act(t, _STATUS, pb.TICKET_STATUS_ON_HOLD, "waiting for the carrier", agent)
                held = t
                t += self._lognormal_ms(24 * 60.0, 0.7)
                act(t, _STATUS, pb.TICKET_STATUS_OPEN, "carrier answered", agent)
                pauses.append((held, t))
            if r() < 0.05:
                outcome(pb.SLA_TARGET_NEXT_RESPONSE, run_start, None)  # left unanswered
                outcome(pb.SLA_TARGET_RESOLUTION, t0, None)
                return self._execute(ticket, plan, contact, channel)
            if r() < 0.05:
                # Resolved without a reply to the customer's last messages (settled on the
                # phone, say): the next-response target is not met.
                outcome(pb.SLA_TARGET_NEXT_RESPONSE, run_start, None)
                break
            t = self._business_hours(t + self._lognormal_ms(median * 0.7, 1.0), office)
            if r() < 0.15:
                last_agent = agents[int(r() * len(agents))]  # a colleague answers
            answer = message(t, pb.AUTHOR_TYPE_AGENT, last_agent)
            outcome(pb.SLA_TARGET_NEXT_RESPONSE, run_start, t)
            warned.discard(pb.SLA_TARGET_NEXT_RESPONSE)  # the next cycle is a clock of its own
            receipts(t, answer)

        if r() >= 0.85:
            outcome(pb.SLA_TARGET_RESOLUTION, t0, None)  # still being worked on
            return self._execute(ticket, plan, contact, channel)

        # Resolve, survey, maybe reopen, close. Sometimes in the same instant as the last
        # message ("reply and resolve" in one action): the desk makes the resolve after it.
        resolved = t if r() < 0.12 else t + self._lognormal_ms(120.0)
        act(resolved, _STATUS, pb.TICKET_STATUS_RESOLVED, "solved", last_agent)
        # The desk publishes the survey with the status change, then the SLA outcome.
        survey_id = f"sv-{self.seed}-{index}"
        act(resolved, _SURVEY_SENT, survey_id, resolved, last_agent)  # by the resolver
        res_due = due_of(pb.SLA_TARGET_RESOLUTION, t0) if targets is not None else 0
        outcome(pb.SLA_TARGET_RESOLUTION, t0, resolved)
        reopened = r() < 0.08
        if r() < 0.35:
            answered = resolved + min(SURVEY_VALID - _MINUTE, self._lognormal_ms(240.0, 1.2))
            answer_proto = self._answer(channel, customer_wait, happy and not reopened)
            _set_time(answer_proto.answer_time, answered)
            act(answered, _SURVEY_ANSWERED, survey_id, resolved, answer_proto)
        final = resolved
        if reopened:
            again = resolved + self._lognormal_ms(24 * 60.0, 0.8)
            message(again, pb.AUTHOR_TYPE_CUSTOMER, contact)  # reopens the resolved ticket
            t = self._business_hours(again + self._lognormal_ms(median, 1.0), office)
            answer = message(t, pb.AUTHOR_TYPE_AGENT, last_agent)
            outcome(pb.SLA_TARGET_NEXT_RESPONSE, again, t)
            receipts(t, answer)
            final = t + self._lognormal_ms(60.0)
            act(final, _STATUS, pb.TICKET_STATUS_RESOLVED, "solved again", last_agent)
            if targets is not None and resolved <= res_due:
                # The resolution clock restarts (the same clock: no second at-risk warning);
                # the time spent resolved is a pause, moving its due time.
                pauses.append((resolved, again))
                outcome(pb.SLA_TARGET_RESOLUTION, t0, final)
        if r() < 0.6:
            act(
                final + 2 * _DAY + int(r() * 3 * _DAY),
                _STATUS,
                pb.TICKET_STATUS_CLOSED,
                "auto close",
                "",
            )
        if r() < 0.02:
            act(final + _HOUR, _SURVEY_SENT, f"{survey_id}-b", final + _HOUR)  # sent on demand
        return self._execute(ticket, plan, contact, channel)

    def _answer(self, channel: int, customer_wait: int, happy: bool) -> pb.SurveyAnswer:
        rng = self.rng
        r = rng.random
        answer = pb.SurveyAnswer()
        if r() < 0.92:
            answer.csat = rng.choice((5, 5, 4, 4, 4, 3) if happy else (1, 2, 2, 3, 3, 4))
        if r() < 0.7:
            answer.nps = rng.choice((10, 9, 9, 8, 8, 7) if happy else (0, 2, 4, 5, 6, 7, 8))
        if r() < 0.6:
            answer.effort = rng.choice((7, 6, 6, 5, 5, 4) if happy else (1, 2, 3, 3, 4, 5))
        if r() < 0.5:
            answer.perceived_wait_minutes = int(customer_wait / _MINUTE * (0.8 + 1.2 * r()))
        if r() < 0.5:
            answer.expected_wait_minutes = int(EXPECTATION[channel] * (0.3 + 1.7 * r()))
        if r() < 0.4:
            answer.purchase_intent = int(r() * 11)
        if r() < 0.4:
            answer.loyalty = int(r() * 11)
        if r() < 0.4:
            answer.comment = "Thanks, quick and helpful" if happy else "Took far too long"
            answer.comment_sentiment = round(0.2 + 0.7 * r() if happy else -0.1 - 0.8 * r(), 4)
        if not answer.HasField("csat") and not answer.comment:
            answer.csat = 4 if happy else 2  # at least one item is required
        return answer

    def _execute(
        self, ticket: pb.Ticket, plan: list[_Action], contact: str, channel: int
    ) -> Iterator[Event]:
        """Play a ticket's plan in time order, as the service desk would publish it."""
        plan.sort()
        ticket_id = ticket.id
        subject = f"tickets/{ticket_id}"
        end_ms = self.end_ms
        customer = Actor(_CUSTOMER, contact)
        gateway = self.gateways[channel]
        status: int = pb.TICKET_STATUS_NEW
        version = 1
        answered = False
        ev = self._event
        added = events_pb2.MessageAdded(contact_id=contact)
        m = added.message
        m.ticket_id = ticket_id
        m.channel = channel  # type: ignore[assignment]
        for ms, _, kind, data in plan:
            if ms >= end_ms:
                break  # the history stops at its end: later facts have not happened yet
            if status == pb.TICKET_STATUS_CLOSED and kind in (_MSG, _UPDATE, _LINK, _STATUS):
                raise AssertionError(f"{ticket_id}: planned a change of a closed ticket")
            if kind == _MSG:
                message_id, author, author_id, public, opening = data
                if not opening:
                    version += 1  # a change of its own (the opening message is the creation's)
                first = author == pb.AUTHOR_TYPE_AGENT and public and not answered
                # One MessageAdded per ticket, refilled: every field is set on every message.
                added.first_response = first
                added.ticket_version = version  # the version of this change, as the desk sets it
                m.id = message_id
                m.author_type = author
                m.author_id = author_id
                m.visibility = pb.VISIBILITY_PUBLIC if public else pb.VISIBILITY_INTERNAL
                m.body = _BODIES[author][public]
                _set_time(m.send_time, ms)
                actor = (
                    customer
                    if author == pb.AUTHOR_TYPE_CUSTOMER
                    else _BOT_ACTOR
                    if author == pb.AUTHOR_TYPE_BOT
                    else self._agent(author_id)
                )
                yield ev(_T_MESSAGE, added.SerializeToString(), ms, actor, contact, subject)
                if first:
                    answered = True
                    _set_time(ticket.first_response_time, ms)
                change: tuple[int, str] | None = None
                if author == pb.AUTHOR_TYPE_AGENT and public:
                    if status == pb.TICKET_STATUS_NEW:
                        change = (pb.TICKET_STATUS_OPEN, "agent reply")
                elif author == pb.AUTHOR_TYPE_CUSTOMER and status in (
                    pb.TICKET_STATUS_PENDING_CUSTOMER,
                    pb.TICKET_STATUS_RESOLVED,
                ):
                    change = (pb.TICKET_STATUS_OPEN, "customer replied")
                if change is not None:
                    status = yield from self._status(
                        ticket, status, change[0], change[1], ms, version, actor, contact, subject
                    )
                else:
                    _set_time(ticket.update_time, ms)
            elif kind == _STATUS:
                to, reason, agent_id = data
                if to == status:
                    continue
                if to not in _TRANSITIONS[status]:
                    raise AssertionError(f"{ticket_id}: planned {status} -> {to}")
                version += 1
                actor = self._agent(agent_id) if agent_id else _AUTO_CLOSE_ACTOR
                status = yield from self._status(
                    ticket, status, to, reason, ms, version, actor, contact, subject
                )
            elif kind == _RECEIPT:
                message_id, receipt_kind = data
                receipt = events_pb2.ReceiptRecorded(
                    ticket_id=ticket_id,
                    contact_id=contact,
                    message_id=message_id,
                    kind=receipt_kind,
                )
                _set_time(receipt.time, ms)
                yield ev(_T_RECEIPT, receipt.SerializeToString(), ms, gateway, contact, subject)
            elif kind == _MET:
                target, due, agent_id = data
                met = events_pb2.SlaTargetMet(
                    ticket_id=ticket_id, contact_id=contact, target=target
                )
                _set_time(met.due_time, due)
                _set_time(met.met_time, ms)
                actor = self._agent(agent_id)
                yield ev(_T_MET, met.SerializeToString(), ms, actor, contact, subject)
            elif kind == _BREACH:
                target, due, *fired = data
                version += 1
                breach = events_pb2.SlaBreached(
                    ticket_id=ticket_id, contact_id=contact, target=target
                )
                _set_time(breach.due_time, due)
                # When the timer ran: a story gives it, a generated history makes one up.
                _set_time(breach.fire_time, fired[0] if fired else due + 5 + (due % 997))
                yield ev(_T_BREACHED, breach.SerializeToString(), ms, _SLA_ACTOR, contact, subject)
            elif kind == _AT_RISK:
                target, due, risk, *fired = data
                version += 1
                warning = events_pb2.SlaAtRisk(
                    ticket_id=ticket_id, contact_id=contact, target=target
                )
                _set_time(warning.due_time, due)
                _set_time(warning.at_risk_time, risk)
                _set_time(warning.fire_time, fired[0] if fired else risk + 5 + (risk % 997))
                yield ev(_T_AT_RISK, warning.SerializeToString(), ms, _SLA_ACTOR, contact, subject)
            elif kind == _CREATED:
                creator, routed = data
                _set_time(ticket.update_time, ms)
                payload = _ticket_field(ticket.SerializeToString(deterministic=True))
                yield ev(_T_CREATED, payload, ms, creator, contact, subject)
                if routed:
                    decision = ticket.routing_decisions[0]
                    routing = events_pb2.TicketRouted(
                        ticket_id=ticket_id, contact_id=contact, decisions=[decision]
                    )
                    actor = self.rules[decision.rule_id]
                    yield ev(_T_ROUTED, routing.SerializeToString(), ms, actor, contact, subject)
                if ticket.HasField("sla"):
                    clocks = events_pb2.SlaClocksChanged(
                        ticket_id=ticket_id, contact_id=contact, sla=ticket.sla
                    )
                    yield ev(_T_CLOCKS, clocks.SerializeToString(), ms, creator, contact, subject)
            elif kind == _UPDATE:
                assignee, team = data
                previous = version
                version += 1
                fields = ["assignee_id"] if team == ticket.team_id else ["assignee_id", "team_id"]
                ticket.assignee_id = assignee
                ticket.team_id = team
                ticket.version = version
                _set_time(ticket.update_time, ms)
                rest = events_pb2.TicketUpdated(previous_version=previous)
                rest.changed_fields.paths.extend(fields)
                payload = _ticket_field(ticket.SerializeToString(deterministic=True))
                payload += rest.SerializeToString(deterministic=True)
                actor = self._agent(_SUPERVISOR)
                yield ev(_T_UPDATED, payload, ms, actor, contact, subject)
            elif kind == _LINK:
                interaction, agent_id = data
                version += 1
                ticket.interactions.append(interaction)
                if _ms_of(interaction.occurred_time) < _ms_of(ticket.first_touch_time):
                    ticket.first_touch_time.CopyFrom(interaction.occurred_time)
                linked = events_pb2.InteractionLinked(
                    ticket_id=ticket_id,
                    contact_id=contact,
                    interaction=interaction,
                    first_touch_time=ticket.first_touch_time,
                )
                actor = self._agent(agent_id)
                yield ev(_T_LINKED, linked.SerializeToString(), ms, actor, contact, subject)
            elif kind == _SURVEY_SENT:
                survey_id, sent, *resolver = data
                survey = pb.Survey(
                    id=survey_id,
                    ticket_id=ticket_id,
                    contact_id=contact,
                    channel=channel,  # type: ignore[arg-type]
                    status=pb.SURVEY_STATUS_SENT,
                )
                _set_time(survey.send_time, sent)
                _set_time(survey.expire_time, sent + SURVEY_VALID)
                payload = events_pb2.SurveySent(survey=survey).SerializeToString()
                # Sent by resolving the ticket (the resolver's change) or on demand.
                actor = self._agent(resolver[0]) if resolver else _SURVEYS_ACTOR
                yield ev(_T_SENT, payload, ms, actor, contact, f"surveys/{survey_id}")
            elif kind == _SURVEY_ANSWERED:
                survey_id, sent, answer = data
                survey = pb.Survey(
                    id=survey_id,
                    ticket_id=ticket_id,
                    contact_id=contact,
                    channel=channel,  # type: ignore[arg-type]
                    status=pb.SURVEY_STATUS_ANSWERED,
                    answer=answer,
                )
                _set_time(survey.send_time, sent)
                _set_time(survey.expire_time, sent + SURVEY_VALID)
                payload = events_pb2.SurveyAnswered(survey=survey).SerializeToString()
                yield ev(_T_ANSWERED, payload, ms, customer, contact, f"surveys/{survey_id}")
            elif kind == _MENTION:
                (mention,) = data
                payload = events_pb2.MentionReceived(mention=mention).SerializeToString()
                yield ev(
                    _T_MENTION, payload, ms, _LISTENING_ACTOR, contact, f"mentions/{mention.id}"
                )

    def _status(
        self,
        ticket: pb.Ticket,
        before: int,
        to: int,
        reason: str,
        ms: int,
        version: int,
        actor: Actor,
        contact: str,
        subject: str,
    ) -> Generator[Event, None, int]:
        """Emit a TicketStatusChanged (updating the snapshot); returns the new status."""
        reopen = before == pb.TICKET_STATUS_RESOLVED and to == pb.TICKET_STATUS_OPEN
        ticket.status = to  # type: ignore[assignment]
        ticket.version = version
        _set_time(ticket.update_time, ms)
        if to == pb.TICKET_STATUS_RESOLVED:
            _set_time(ticket.resolve_time, ms)
        if reopen:
            ticket.reopen_count += 1
            ticket.ClearField("resolve_time")
        rest = events_pb2.TicketStatusChanged(
            from_status=before,  # type: ignore[arg-type]
            to_status=to,  # type: ignore[arg-type]
            reason=reason,
            reopen=reopen,
        )
        _set_time(rest.change_time, ms)
        payload = _ticket_field(ticket.SerializeToString(deterministic=True))
        payload += rest.SerializeToString(deterministic=True)
        yield self._event(_T_STATUS, payload, ms, actor, contact, subject)
        return to


def _ms_of(stamp: Any) -> int:
    return int(stamp.seconds) * 1000 + int(stamp.nanos) // 1_000_000


_BODIES: dict[int, dict[bool, str]] = {
    pb.AUTHOR_TYPE_CUSTOMER: {True: "Any update on this?", False: "(customer note)"},
    pb.AUTHOR_TYPE_AGENT: {True: "Thanks for waiting, here is what we found.", False: "Checked"},
    pb.AUTHOR_TYPE_BOT: {True: "We received your message and will answer soon.", False: "bot"},
}


# --- stories: one ticket's history given step by step -------------------------------------------
#
# A story is what generate() plans for a ticket, written out instead of drawn: the opening facts
# and the steps that follow, each at its instant. play() turns it into events by the same rules
# as generate() (versions, first responses, the status changes messages cause, snapshots, SLA
# outcomes, actors, subjects, keys, order), so a story played through the real service desk can
# be compared with what this module generates (tests/integration/test_desk_history_contract.py).


@dataclass(frozen=True, slots=True)
class Opening:
    """How a ticket is opened: what the requester and the desk's configuration give it."""

    ticket_id: str
    contact_id: str
    customer_tier: str
    channel: int
    type: int
    priority: int
    subject: str
    assignee_id: str
    team_id: str
    category: str
    product: str
    at: datetime
    creator: Actor
    first_message_id: str = ""
    """The customer's first message, added by the creation ("": none)."""
    policy_id: str = ""
    """The SLA policy that applies ("": none)."""
    targets: tuple[timedelta, timedelta, timedelta] | None = None
    """Its first-response, next-response and resolution targets."""
    wall_clock: bool = True
    """Its targets count wall time (else the calendar's open time)."""
    calendar: BusinessCalendar | None = None


@dataclass(frozen=True, slots=True)
class Said:
    """A message on the conversation (``author``: ``pb.AUTHOR_TYPE_*``)."""

    at: datetime
    message_id: str
    author: int
    author_id: str
    public: bool = True


@dataclass(frozen=True, slots=True)
class Receipt:
    """A delivery or read receipt (``kind``: ``pb.RECEIPT_KIND_*``) of an outbound message."""

    at: datetime
    message_id: str
    kind: int


@dataclass(frozen=True, slots=True)
class StatusChange:
    """An agent moves the ticket to ``to`` (``agent_id`` "": the auto-close job does)."""

    at: datetime
    to: int
    reason: str
    agent_id: str


@dataclass(frozen=True, slots=True)
class Reassigned:
    """The supervisor assigns the ticket to ``assignee`` of ``team``."""

    at: datetime
    assignee: str
    team: str


@dataclass(frozen=True, slots=True)
class Linked:
    """An agent links an earlier interaction."""

    at: datetime
    interaction: pb.Interaction
    agent_id: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """An SLA target's outcome: met at ``done`` if not later than its due time (the target
    after ``start``, the story's waits and resolved stretches before ``done`` not counting),
    else breached at its due time (the timer ran at ``fired``; None: made up as in generated
    histories). ``agent_id``: who met it."""

    target: int
    start: datetime
    done: datetime | None
    agent_id: str = ""
    fired: datetime | None = None


@dataclass(frozen=True, slots=True)
class SurveySent:
    """A survey about the ticket, sent at ``at``: by resolving it (``agent_id``, the resolver)
    or on demand (``agent_id`` "")."""

    at: datetime
    survey_id: str
    agent_id: str = ""


@dataclass(frozen=True, slots=True)
class SurveyAnswered:
    """The customer answers the survey sent at ``sent``."""

    at: datetime
    survey_id: str
    sent: datetime
    answer: pb.SurveyAnswer


Step = Said | Receipt | StatusChange | Reassigned | Linked | Outcome | SurveySent | SurveyAnswered


def play(
    opening: Opening, steps: Sequence[Step], *, tenant: str = DEFAULT_TENANT, seed: int = 0
) -> list[Event]:
    """The events of one ticket's story, as :func:`generate` would emit them for it."""
    calendar = opening.calendar or round_the_clock_calendar()
    start = opening.at - timedelta(days=1)
    last = max([opening.at, *(_step_time(step) for step in steps)])
    days = (last - start) / timedelta(days=1) + 1
    generator = _Generator(seed, 0, tenant, start, days, [calendar], 0.0)
    t0 = _ms(opening.at)
    ticket = pb.Ticket(
        id=opening.ticket_id,
        tenant_id=tenant,
        type=opening.type,  # type: ignore[arg-type]
        channel=opening.channel,  # type: ignore[arg-type]
        priority=opening.priority,  # type: ignore[arg-type]
        status=pb.TICKET_STATUS_NEW,
        subject=opening.subject,
        contact_id=opening.contact_id,
        customer_tier=opening.customer_tier,
        assignee_id=opening.assignee_id,
        team_id=opening.team_id,
        category=opening.category,
        product=opening.product,
        version=1,
    )
    _set_time(ticket.create_time, t0)
    _set_time(ticket.first_touch_time, t0)
    hours: tuple[float, float, float] | None = None
    if opening.targets is not None:
        hours = (
            opening.targets[0] / timedelta(hours=1),
            opening.targets[1] / timedelta(hours=1),
            opening.targets[2] / timedelta(hours=1),
        )
        generator._sla_of(
            ticket.sla, opening.policy_id, hours, calendar, t0, wall=opening.wall_clock
        )
    plan: list[_Action] = []
    seq = itertools.count()
    warned: set[tuple[int, int]] = set()

    def act(ms: int, kind: int, *data: Any) -> None:
        plan.append((ms, next(seq), kind, data))

    act(t0, _CREATED, opening.creator, False)
    if opening.first_message_id:
        act(
            t0,
            _MSG,
            opening.first_message_id,
            pb.AUTHOR_TYPE_CUSTOMER,
            opening.contact_id,
            True,
            True,
        )
    pauses = _pauses(steps)
    for step in steps:
        if isinstance(step, Said):
            act(
                _ms(step.at), _MSG, step.message_id, step.author, step.author_id, step.public, False
            )
        elif isinstance(step, Receipt):
            act(_ms(step.at), _RECEIPT, step.message_id, step.kind)
        elif isinstance(step, StatusChange):
            act(_ms(step.at), _STATUS, step.to, step.reason, step.agent_id)
        elif isinstance(step, Reassigned):
            act(_ms(step.at), _UPDATE, step.assignee, step.team)
        elif isinstance(step, Linked):
            act(_ms(step.at), _LINK, step.interaction, step.agent_id)
        elif isinstance(step, Outcome):
            if hours is None:
                continue  # no SLA, no outcomes
            target_hours = hours[
                (
                    pb.SLA_TARGET_FIRST_RESPONSE,
                    pb.SLA_TARGET_NEXT_RESPONSE,
                    pb.SLA_TARGET_RESOLUTION,
                ).index(step.target)
            ]
            amount = round(target_hours * 3600) * 1000
            began = _ms(step.start)
            done = None if step.done is None else _ms(step.done)
            # The pauses the clock had had by then (the desk knows no later ones).
            known = [(a, b) for a, b in pauses if done is None or a < done]
            wall = opening.wall_clock
            due = generator._due_paused(calendar, began, amount, known, wall=wall)
            risk = generator._due_paused(
                calendar, began, round(amount * AT_RISK_FRACTION), known, wall=wall
            )
            if (done is None or done > risk) and (step.target, began) not in warned:
                warned.add((step.target, began))  # once per clock (a reopen keeps the clock)
                act(risk, _AT_RISK, step.target, due, risk)
            if done is not None and done <= due:
                act(done, _MET, step.target, due, step.agent_id)
            elif step.fired is not None:
                act(due, _BREACH, step.target, due, _ms(step.fired))
            else:
                act(due, _BREACH, step.target, due)
        elif isinstance(step, SurveySent):
            by = (step.agent_id,) if step.agent_id else ()
            act(_ms(step.at), _SURVEY_SENT, step.survey_id, _ms(step.at), *by)
        elif isinstance(step, SurveyAnswered):
            answer = pb.SurveyAnswer()
            answer.CopyFrom(step.answer)
            _set_time(answer.answer_time, _ms(step.at))
            act(_ms(step.at), _SURVEY_ANSWERED, step.survey_id, _ms(step.sent), answer)
    return list(generator._execute(ticket, plan, opening.contact_id, opening.channel))


def calendar_changed(
    calendar: BusinessCalendar, at: datetime, *, tenant: str = DEFAULT_TENANT, name: str = ""
) -> Event:
    """The ``CalendarChanged`` event of a calendar saved at ``at``, as histories emit them."""
    return _Generator(0, 0, tenant, at, 1.0, [calendar], 0.0)._calendar_event(
        calendar, _ms(at), name
    )


def mention_received(mention: pb.Mention, *, tenant: str = DEFAULT_TENANT) -> Event:
    """The ``MentionReceived`` event of a standalone mention, as histories emit them."""
    at = datetime.fromtimestamp(mention.posted_time.seconds, UTC)
    calendar = round_the_clock_calendar()
    return _Generator(0, 0, tenant, at, 1.0, [calendar], 0.0)._mention_event(mention)


def _pauses(steps: Sequence[Step]) -> list[tuple[int, int]]:
    """The stretches (ms) in which a story's SLA clocks stand still: waiting for the customer
    (until the customer writes or an agent moves it on), on hold, resolved until reopened."""
    pauses: list[tuple[int, int]] = []
    status: int = pb.TICKET_STATUS_NEW
    since = 0
    waits = (pb.TICKET_STATUS_PENDING_CUSTOMER, pb.TICKET_STATUS_ON_HOLD)
    for step in steps:
        if isinstance(step, StatusChange):
            to = step.to
        elif isinstance(step, Said) and step.author == pb.AUTHOR_TYPE_CUSTOMER:
            to = (
                pb.TICKET_STATUS_OPEN
                if status in (pb.TICKET_STATUS_PENDING_CUSTOMER, pb.TICKET_STATUS_RESOLVED)
                else status
            )
        else:
            continue
        at = _ms(step.at)
        stands = status in waits or status == pb.TICKET_STATUS_RESOLVED
        if stands and to not in waits and to != pb.TICKET_STATUS_RESOLVED:
            pauses.append((since, at))
        elif not stands and (to in waits or to == pb.TICKET_STATUS_RESOLVED):
            since = at
        elif stands and to != status:
            pauses.append((since, at))  # from one standing status to another
            since = at
        status = to
    return pauses


def _step_time(step: Step) -> datetime:
    if isinstance(step, Outcome):
        return max(step.start, step.done or step.start, step.fired or step.start) + timedelta(
            days=1
        )
    return step.at
