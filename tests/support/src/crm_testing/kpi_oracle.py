"""An independent, deliberately naive batch oracle of the metrics service's KPIs.

The metrics service computes KPIs incrementally (facts, retractions, sketches). This module
computes the same KPIs from the same ``crm.servicedesk.v1`` events the slow, obvious way, so
that the service's answers can be compared with it:

1. decode every event and drop repeats of an event id;
2. group the facts per ticket, survey and mention;
3. derive each ticket's clocks from **all** of its facts, re-sorted from scratch (no state
   carried from one event to the next);
4. turn tickets, surveys and mentions into observations ``(kpi, time, dimensions, value)``;
5. answer a query by filtering the observations to the time range and adding them up: exact
   counts and sums, exact quantiles from the sorted values, rates as numerator / denominator.

It follows ``docs/kpis.md`` (the definitions as implemented) word for word, and deliberately
does not import or read the service's own KPI code. Where that page leaves a choice open, the
choice made here is written next to the code as "Reading: ..." (and listed in the module's
``READINGS``).

Quantiles: the value at rank ``floor(q * (n - 1))`` (0-based) of the ascending sorted list (the
lower of the two neighbours; no interpolation). The service's sketches are accurate to 1 %
relative, so a comparison needs that tolerance on p50/p90/p99 only.

Time: an observation belongs to ``[start, end)`` when ``start <= time < end``; a level (backlog,
awaiting first response) is the sum of all its changes with ``time < end``.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from google.protobuf.message import Message as ProtoMessage
from google.protobuf.timestamp_pb2 import Timestamp

from crm.servicedesk.v1 import events_pb2
from crm.servicedesk.v1 import servicedesk_pb2 as pb
from crm_calendar import BusinessCalendar, OpeningInterval
from crm_platform.events import Event

# --- vocabulary ----------------------------------------------------------------------------------

NEW = pb.TICKET_STATUS_NEW
OPEN = pb.TICKET_STATUS_OPEN
PENDING_CUSTOMER = pb.TICKET_STATUS_PENDING_CUSTOMER
ON_HOLD = pb.TICKET_STATUS_ON_HOLD
RESOLVED = pb.TICKET_STATUS_RESOLVED
CLOSED = pb.TICKET_STATUS_CLOSED
OPEN_STATUSES = frozenset({NEW, OPEN, PENDING_CUSTOMER, ON_HOLD})
# docs/kpis.md: pending_customer and on_hold pause the business clock for every ticket.
PAUSING_STATUSES = frozenset({PENDING_CUSTOMER, ON_HOLD})

FIRST_RESPONSE = "first_response"
NEXT_RESPONSE = "next_response"
RESOLUTION = "resolution"
SLA_TARGET_NAMES = {
    pb.SLA_TARGET_FIRST_RESPONSE: FIRST_RESPONSE,
    pb.SLA_TARGET_NEXT_RESPONSE: NEXT_RESPONSE,
    pb.SLA_TARGET_RESOLUTION: RESOLUTION,
}

HOUR = 3600.0
DEFAULT_CHANNEL_EXPECTATIONS: dict[str, timedelta] = {
    "social": timedelta(hours=2),
    "phone": timedelta(minutes=5),
    "live_chat": timedelta(minutes=5),
    "email": timedelta(hours=24),
    "web_form": timedelta(hours=24),
    "mobile": timedelta(hours=4),
    "in_person": timedelta(minutes=15),
    "partner": timedelta(hours=24),
}
SOCIAL_EXPECTATION_CAP = timedelta(hours=12)
SENTIMENT_THRESHOLD = 0.05
# Upper bounds (exclusive) of the customer-wait buckets, in seconds.
WAIT_BUCKETS: tuple[tuple[str, float], ...] = (
    ("<1h", 1 * HOUR),
    ("1-4h", 4 * HOUR),
    ("4-12h", 12 * HOUR),
    ("12-24h", 24 * HOUR),
    (">24h", math.inf),
)
DEFAULT_OWN_BRANDS: tuple[str, ...] = ("acme",)
QUANTILES = (0.5, 0.9, 0.99)

DISTRIBUTION = "distribution"
RATE = "rate"
COUNT = "count"
SCORE = "score"
SENTIMENT = "sentiment"
LEVEL = "level"

# Every KPI of docs/kpis.md: its kind and the unit of its headline value.
KPIS: dict[str, tuple[str, str]] = {
    "tickets_created": (COUNT, "1"),
    "frt_wall": (DISTRIBUTION, "s"),
    "frt_business": (DISTRIBUTION, "s"),
    "awaiting_first_response": (LEVEL, "1"),
    "unanswered_age": (COUNT, "s"),
    "nrt_wall": (DISTRIBUTION, "s"),
    "nrt_business": (DISTRIBUTION, "s"),
    "resolved_without_reply": (COUNT, "1"),
    "resolution_wall": (DISTRIBUTION, "s"),
    "first_resolution_wall": (DISTRIBUTION, "s"),
    "first_resolution_business": (DISTRIBUTION, "s"),
    "resolution_business": (DISTRIBUTION, "s"),
    "sla_first_response": (RATE, "%"),
    "sla_next_response": (RATE, "%"),
    "sla_resolution": (RATE, "%"),
    "backlog": (LEVEL, "1"),
    "backlog_age": (COUNT, "s"),
    "reopen_rate": (RATE, "%"),
    "first_contact_resolution": (RATE, "%"),
    "same_day_resolution": (RATE, "%"),
    "chasers": (COUNT, "1"),
    "tickets_handled": (COUNT, "1"),
    "csat": (SCORE, "%"),
    "nps": (SCORE, "score"),
    "effort": (SCORE, "%"),
    "purchase_intent": (SCORE, "%"),
    "loyalty": (SCORE, "%"),
    "survey_response_rate": (RATE, "%"),
    "comment_sentiment": (SENTIMENT, "1"),
    "mention_sentiment": (SENTIMENT, "1"),
    "mentions": (COUNT, "1"),
    "reach": (COUNT, "1"),
    "share_of_voice": (RATE, "%"),
    "company_frt": (DISTRIBUTION, "s"),
    "customer_wait": (DISTRIBUTION, "s"),
    "perception_gap": (DISTRIBUTION, "s"),
    "perceived_wait": (DISTRIBUTION, "s"),
    "stated_gap": (DISTRIBUTION, "s"),
    "expectation_breach": (RATE, "%"),
    "green_inside_red_outside": (RATE, "%"),
    "silence": (DISTRIBUTION, "s"),
}

# The choices made where docs/kpis.md leaves one open (also written next to the code).
READINGS: tuple[str, ...] = (
    "current ticket fields = the TicketCreated/TicketUpdated/TicketStatusChanged snapshot with "
    "the highest version; the status history = TicketStatusChanged sorted by change_time",
    "a dimension with an empty value (unassigned agent, no team, empty brand) is not carried: "
    "the observation is in no group of that dimension and fails a filter on it",
    "enum dimension values are the lower-case enum names without prefix (live_chat, complaint)",
    "first response = the earliest public agent MessageAdded by send_time (not the flag)",
    "first_resolution_wall counts every ticket with at least one transition into resolved, "
    "whether or not it is resolved now",
    "sla first response / resolution: bucketed at the due_time of the earliest SlaBreached when "
    "breached, else of the SlaTargetMet with the latest met_time; a missing due_time falls back "
    "to met_time (met) or the event time",
    "awaiting_first_response / unanswered_age: a ticket without a public human reply stays "
    "awaiting even when resolved or closed (only the first response ends it)",
    "unanswered_age / backlog_age: 'now' is the query's `now` (default: the range end); only "
    "tickets created in [start, end) and not after now",
    "customer_wait, perception_gap, expectation_breach are bucketed at the first reply's send "
    "time (not its delivery time)",
    "a delivery is only a ReceiptRecorded of kind delivered (a read receipt alone is ignored)",
    "expected_wait from a survey: the earliest answered survey of the ticket (by answer time) "
    "that has expected_wait_minutes; the social default is clamped to at most 12 h; a channel "
    "without a default: the ticket is left out of expectation_breach",
    "linked mention = a MentionReceived whose id is the ticket's source_mention_id or whose "
    "ticket_id names the ticket (interactions of kind social mention are not looked up)",
    "a ticket's events at one instant are in the service desk's order: by ticket version "
    "(MessageAdded.ticket_version, the snapshots' Ticket.version), a message before the status "
    "change of its own version; between messages without a version (0) a company message "
    "before a customer message (NRT runs, silence, chasers, the first response)",
    "silence ignores messages after the last resolve",
    "silence@2: a status change into pending_customer, on_hold or resolved ends a wait; a wait "
    "starts only with a customer message (leaving a pause starts none)",
    "share_of_voice compares brands exactly (case-sensitive) with own_brands; empty = own",
    "the business calendar is the one named by the current snapshot's TicketSla; a named "
    "calendar version that is not known counts like no calendar (wall clock minus pauses)",
    "the status at creation is TicketCreated's (else the first change's from_status); a ticket "
    "with no snapshot event at all (only messages, receipts...) is left out",
    "reopen_rate and first_contact_resolution read the current snapshot's reopen_count",
    "'SLA met' for green_inside_red_outside: at least one outcome of any target (next response "
    "included) and no SlaBreached of any target",
    "expectation_breach is over tickets with a first response (docs/kpis.md), not over answered "
    "tickets as the catalogue's description says",
    "frt@2 moves frt_business, so company_frt and the gaps computed from it follow frt_business",
    "a survey answered twice counts its earliest answer; a mention ingested twice (two event "
    "ids) counts once, by mention id",
    "net sentiment is a fraction in [-1, 1]; a level with no change before the end is no data",
)


# --- results -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KpiValue:
    """One KPI over a query range, shaped like ``crm.metrics.v1.KpiValue``.

    ``value`` is the headline: p50 of a distribution, numerator/denominator x 100 of a rate, the
    sum of a count, the headline % (or NPS) of a score, the net sentiment of a sentiment, the
    level at the range end of a level. ``None`` fields mean "no data".
    """

    kpi: str
    kind: str
    unit: str
    count: int = 0
    sum: float = 0.0
    value: float | None = None
    mean: float | None = None
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    numerator: int = 0
    denominator: int = 0


@dataclass(frozen=True, slots=True)
class Observation:
    """One contribution of one entity to one KPI at one instant."""

    kpi: str
    at: datetime
    dims: Mapping[str, str]
    value: float
    source: str  # the ticket, survey or mention id (for debugging a difference)


@dataclass(frozen=True, slots=True)
class Msg:
    """A conversation message as the oracle needs it."""

    id: str
    author: int  # pb.AuthorType
    public: bool
    send: datetime
    delivered: datetime | None
    version: int = 0  # MessageAdded.ticket_version (0: published without one)

    def order(self, at: datetime | None = None) -> tuple[datetime, int, int, str]:
        """Where the message stands at ``at`` (default its send time): by time; at one instant
        in the order the service desk made the ticket's changes (ticket version; a message
        before the status change of its own version); between messages without a version, the
        company's before the customer's."""
        return (self.send if at is None else at, self.version, int(self.is_customer), self.id)

    @property
    def is_human_reply(self) -> bool:
        """A public message by an agent (docs/kpis.md: what counts as a response)."""
        return self.author == pb.AUTHOR_TYPE_AGENT and self.public

    @property
    def is_company_public(self) -> bool:
        """A public message by an agent or a bot (ends a wait for silence; frt@2 response)."""
        return self.author in (pb.AUTHOR_TYPE_AGENT, pb.AUTHOR_TYPE_BOT) and self.public

    @property
    def is_customer(self) -> bool:
        """A public customer message."""
        return self.author == pb.AUTHOR_TYPE_CUSTOMER and self.public


@dataclass(frozen=True, slots=True)
class SlaOutcome:
    """One SlaTargetMet or SlaBreached event."""

    target: str
    met: bool
    due: datetime
    met_time: datetime | None


@dataclass(slots=True)
class TicketClocks:
    """Everything derived for one ticket (seconds for durations; ``None`` when not defined)."""

    ticket_id: str
    contact_id: str
    dims: dict[str, str]
    issue_dims: dict[str, str]
    create_time: datetime
    first_touch: datetime
    calendar: tuple[str, int] | None
    calendar_known: bool
    status: int
    first_response: Msg | None
    frt_reply_time: datetime | None  # the reply frt_wall/frt_business end at (v1 or v2)
    frt_wall: float | None
    frt_business: float | None
    customer_wait: float | None
    perception_gap: float | None
    expected_wait: float | None
    expectation_breached: bool | None
    nrt: list[tuple[datetime, float, float]]  # (reply send time, wall, business) per run
    resolved_without_reply: list[datetime]  # the resolve that ended each unanswered run
    chasers: list[datetime]
    resolved: bool
    first_resolve: datetime | None
    last_resolve: datetime | None
    resolution_wall: float | None
    first_resolution_wall: float | None
    first_resolution_business: float | None
    resolution_business: float | None
    silence: float | None
    reopen_count: int
    public_human_replies: int
    first_contact_resolution: bool | None
    same_day_resolution: bool | None
    sla_outcomes: list[SlaOutcome]
    sla_first_response: tuple[bool, datetime] | None
    sla_resolution: tuple[bool, datetime] | None
    sla_met: bool  # at least one SLA outcome and no breached target
    bad_experience: bool
    green_inside_red_outside: bool | None
    backlog_changes: list[tuple[datetime, int]]
    status_at_now: int
    awaiting_at_now: bool


@dataclass(frozen=True, slots=True)
class SurveyFacts:
    """One survey: when it was sent, and its answer if any."""

    survey_id: str
    ticket_id: str
    sent: datetime | None
    answer: pb.SurveyAnswer | None
    answered: datetime | None


@dataclass(frozen=True, slots=True)
class MentionFacts:
    """One mention as ingested."""

    mention: pb.Mention
    posted: datetime


@dataclass(frozen=True)
class OracleResult:
    """The oracle's answer: per-entity derivations, all observations, and the query asked."""

    start: datetime
    end: datetime
    now: datetime
    group_by: str | None
    filters: Mapping[str, str]
    tickets: dict[str, TicketClocks]
    surveys: dict[str, SurveyFacts]
    mentions: dict[str, MentionFacts]
    observations: tuple[Observation, ...]
    # KPI name -> value over [start, end) with the filters.
    totals: dict[str, KpiValue]
    # group value -> KPI name -> value (empty without group_by).
    groups: dict[str, dict[str, KpiValue]]

    def query(
        self,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        filters: Mapping[str, str] | None = None,
        group_by: str | None = None,
    ) -> dict[str, dict[str, KpiValue]]:
        """Aggregate again over another range / filters: ``{group value: {kpi: value}}``
        (a single group ``""`` without ``group_by``). Ages stay relative to ``self.now``."""
        return aggregate(
            self.observations,
            start=self.start if start is None else start,
            end=self.end if end is None else end,
            filters=self.filters if filters is None else filters,
            group_by=group_by,
        )

    def series(
        self, edges: Sequence[datetime], *, filters: Mapping[str, str] | None = None
    ) -> list[tuple[datetime, dict[str, KpiValue]]]:
        """One totals dict per bucket ``[edges[i], edges[i+1])`` (levels at each bucket's end)."""
        points: list[tuple[datetime, dict[str, KpiValue]]] = []
        for lo, hi in itertools.pairwise(edges):
            points.append((lo, self.query(start=lo, end=hi, filters=filters)[""]))
        return points

    def gap_histogram(self, *, filters: Mapping[str, str] | None = None) -> dict[int, int]:
        """GetPerceptionGap's histogram over the range: lower bound in hours (floor) -> tickets."""
        wanted = self.filters if filters is None else filters
        bins: Counter[int] = Counter()
        for o in self.observations:
            if o.kpi != "perception_gap" or not self.start <= o.at < self.end:
                continue
            if all(o.dims.get(k) == v for k, v in wanted.items()):
                bins[math.floor(o.value / HOUR)] += 1
        return dict(sorted(bins.items()))

    def kpi(self, name: str, group: str | None = None) -> KpiValue:
        """One KPI of the totals, or of one group."""
        return self.totals[name] if group is None else self.groups[group][name]


# --- decoding ------------------------------------------------------------------------------------

_TYPES: dict[str, type[ProtoMessage]] = {
    cls.DESCRIPTOR.full_name: cls
    for cls in (
        events_pb2.TicketCreated,
        events_pb2.TicketUpdated,
        events_pb2.TicketStatusChanged,
        events_pb2.InteractionLinked,
        events_pb2.MessageAdded,
        events_pb2.ReceiptRecorded,
        events_pb2.SlaBreached,
        events_pb2.SlaTargetMet,
        events_pb2.MentionReceived,
        events_pb2.SurveySent,
        events_pb2.SurveyAnswered,
        events_pb2.CalendarChanged,
    )
}


def _time(stamp: Timestamp, fallback: datetime) -> datetime:
    """A payload timestamp as an aware UTC datetime; the fallback when it is unset (0)."""
    if stamp.seconds == 0 and stamp.nanos == 0:
        return fallback
    return stamp.ToDatetime(tzinfo=UTC)


def _label(wrapper: Any, prefix: str, number: int) -> str:
    """``CHANNEL_LIVE_CHAT`` -> ``live_chat``; unspecified or unknown -> ``""``."""
    try:
        name: str = wrapper.Name(number)
    except ValueError:
        return ""
    label = name.removeprefix(prefix).lower()
    return "" if label == "unspecified" else label


def calendar_from_event(message: pb.BusinessCalendar) -> BusinessCalendar:
    """A CalendarChanged payload as a business calendar (proto weekday 1 = Monday)."""
    return BusinessCalendar.create(
        calendar_id=message.id,
        version=message.version,
        timezone=message.timezone,
        intervals=[
            OpeningInterval(i.weekday - 1, i.start_minute, i.end_minute) for i in message.intervals
        ],
        holidays=[date.fromisoformat(text) for text in message.holidays],
        holiday_country=message.holiday_country or None,
        holiday_subdivision=message.holiday_subdivision or None,
    )


@dataclass(slots=True)
class _TicketFacts:
    """Every fact about one ticket, each kept once (by event id)."""

    snapshots: list[tuple[int, datetime, str, pb.Ticket]] = field(default_factory=list)
    created_status: int | None = None  # the status in TicketCreated
    status_changes: list[tuple[datetime, int, str, events_pb2.TicketStatusChanged]] = field(
        default_factory=list
    )
    messages: dict[str, tuple[int, bool, datetime, int]] = field(default_factory=dict)
    deliveries: dict[str, list[datetime]] = field(default_factory=dict)
    interactions: list[datetime] = field(default_factory=list)
    first_touches: list[datetime] = field(default_factory=list)
    sla: list[SlaOutcome] = field(default_factory=list)


@dataclass(slots=True)
class _Facts:
    tickets: dict[str, _TicketFacts] = field(default_factory=lambda: defaultdict(_TicketFacts))
    sent: dict[str, tuple[datetime, str]] = field(default_factory=dict)
    answers: dict[str, tuple[datetime, pb.Survey]] = field(default_factory=dict)
    mentions: dict[str, MentionFacts] = field(default_factory=dict)
    calendars: dict[tuple[str, int], BusinessCalendar] = field(default_factory=dict)


def dedupe(events: Iterable[Event]) -> list[Event]:
    """The events with every repeat of an event id dropped (the first copy is kept)."""
    seen: set[str] = set()
    unique: list[Event] = []
    for event in events:
        if event.id not in seen:
            seen.add(event.id)
            unique.append(event)
    return unique


def _collect(events: Iterable[Event], tenant_id: str | None) -> _Facts:
    facts = _Facts()
    for event in dedupe(events):
        if tenant_id is not None and event.tenant_id != tenant_id:
            continue
        cls = _TYPES.get(event.type)
        if cls is None:
            continue  # configuration and routing events carry no KPI fact the oracle needs
        message = cls.FromString(event.payload)
        _apply(facts, event, message)
    return facts


def _apply(facts: _Facts, event: Event, message: ProtoMessage) -> None:
    at = event.time
    if isinstance(
        message,
        events_pb2.TicketCreated | events_pb2.TicketUpdated | events_pb2.TicketStatusChanged,
    ):
        ticket = message.ticket
        tf = facts.tickets[ticket.id]
        tf.snapshots.append((ticket.version, at, event.id, ticket))
        if isinstance(message, events_pb2.TicketCreated):
            tf.created_status = ticket.status or NEW
        if isinstance(message, events_pb2.TicketStatusChanged):
            tf.status_changes.append(
                (_time(message.change_time, at), ticket.version, event.id, message)
            )
    elif isinstance(message, events_pb2.InteractionLinked):
        tf = facts.tickets[message.ticket_id]
        tf.interactions.append(_time(message.interaction.occurred_time, at))
        if message.HasField("first_touch_time"):
            tf.first_touches.append(_time(message.first_touch_time, at))
    elif isinstance(message, events_pb2.MessageAdded):
        m = message.message
        facts.tickets[m.ticket_id].messages.setdefault(
            m.id,
            (
                m.author_type,
                m.visibility == pb.VISIBILITY_PUBLIC,
                _time(m.send_time, at),
                message.ticket_version,
            ),
        )
    elif isinstance(message, events_pb2.ReceiptRecorded):
        if message.kind == pb.RECEIPT_KIND_DELIVERED:
            tf = facts.tickets[message.ticket_id]
            tf.deliveries.setdefault(message.message_id, []).append(_time(message.time, at))
    elif isinstance(message, events_pb2.SlaTargetMet):
        if message.target in SLA_TARGET_NAMES:
            met_time = _time(message.met_time, at)
            target = SLA_TARGET_NAMES[message.target]
            due = _time(message.due_time, met_time)
            facts.tickets[message.ticket_id].sla.append(SlaOutcome(target, True, due, met_time))
    elif isinstance(message, events_pb2.SlaBreached):
        if message.target in SLA_TARGET_NAMES:
            target = SLA_TARGET_NAMES[message.target]
            due = _time(message.due_time, at)
            facts.tickets[message.ticket_id].sla.append(SlaOutcome(target, False, due, None))
    elif isinstance(message, events_pb2.MentionReceived):
        mention = message.mention
        facts.mentions.setdefault(mention.id, MentionFacts(mention, _time(mention.posted_time, at)))
    elif isinstance(message, events_pb2.SurveySent):
        survey = message.survey
        facts.sent.setdefault(survey.id, (_time(survey.send_time, at), survey.ticket_id))
    elif isinstance(message, events_pb2.SurveyAnswered):
        survey = message.survey
        answered = _time(survey.answer.answer_time, at)
        # One answer per survey: should two ever arrive, the earliest is the answer.
        earlier = facts.answers.get(survey.id)
        if earlier is None or answered < earlier[0]:
            facts.answers[survey.id] = (answered, survey)
    elif isinstance(message, events_pb2.CalendarChanged):
        calendar = calendar_from_event(message.calendar)
        facts.calendars[(calendar.calendar_id, calendar.version)] = calendar


# --- per-ticket derivation -----------------------------------------------------------------------


def _seconds(delta: timedelta) -> float:
    return delta.total_seconds()


def _segments(
    created: datetime, initial: int, changes: Sequence[tuple[datetime, int]]
) -> list[tuple[int, datetime, datetime]]:
    """The status timeline as ``(status, from, to)`` from creation on; the last one never ends."""
    far = datetime.max.replace(tzinfo=UTC)
    segments: list[tuple[int, datetime, datetime]] = []
    status, since = initial, created
    for at, to_status in changes:
        segments.append((status, since, at))
        status, since = to_status, at
    segments.append((status, since, far))
    return segments


def _counting_time(
    start: datetime,
    end: datetime,
    segments: Sequence[tuple[int, datetime, datetime]],
    excluded: frozenset[int],
    calendar: BusinessCalendar | None,
) -> float:
    """Business time (wall time without a calendar) in ``[start, end)`` outside the excluded
    statuses."""
    total = timedelta(0)
    for status, seg_start, seg_end in segments:
        if status in excluded:
            continue
        lo, hi = max(start, seg_start), min(end, seg_end)
        if hi <= lo:
            continue
        total += calendar.business_time(lo, hi) if calendar is not None else hi - lo
    return _seconds(total)


def wait_bucket(seconds: float) -> str:
    """The customer-wait bucket of a wait (lower bound inclusive)."""
    for label, upper in WAIT_BUCKETS:
        if seconds < upper:
            return label
    return WAIT_BUCKETS[-1][0]


def _silence(
    first_touch: datetime,
    messages: Sequence[Msg],
    last_resolve: datetime,
    changes: Sequence[tuple[datetime, int, str, events_pb2.TicketStatusChanged]],
    version: int,
) -> float:
    """The longest wait of the customer with no public update.

    @2: a public human reply (when delivered, else sent) ends a wait, and so does a status
    change into a pausing status or into resolved; a bot's message does not. @1: any public
    message of an agent or a bot ends a wait, nothing else does (until the last resolve). The
    customer's next message starts a new wait."""
    # (order, 0 = ends a wait, 1 = customer)
    items: list[tuple[tuple[datetime, int, int, str], int]] = []
    for m in messages:
        update = m.is_human_reply if version >= 2 else m.is_company_public
        if update:
            items.append((m.order(m.delivered or m.send), 0))
        elif m.is_customer:
            items.append((m.order(), 1))
    if version >= 2:
        for at, ticket_version, event_id, change in changes:
            if change.to_status in PAUSING_STATUSES | {RESOLVED}:
                # Reading: a status change after the messages of its own version (see Msg).
                items.append(((at, ticket_version, 2, event_id), 0))
    items.sort()
    longest = 0.0
    waiting_since: datetime | None = first_touch
    for (at, *_), who in items:
        if at > last_resolve:
            break  # Reading: the last resolve ends the last wait; later messages are ignored.
        if who == 0 and waiting_since is not None:
            longest = max(longest, _seconds(at - waiting_since))
            waiting_since = None
        elif who == 1 and waiting_since is None:
            waiting_since = at
    if waiting_since is not None:
        longest = max(longest, _seconds(last_resolve - waiting_since))
    return longest


def _nrt_runs(
    messages: Sequence[Msg],
    first_response: Msg,
    resolves: Sequence[tuple[datetime, int, str]],
    version: int,
) -> tuple[list[tuple[datetime, datetime]], list[tuple[datetime, datetime]]]:
    """``(first customer message of the run, the reply)`` for each answered run after the first
    response (a run still unanswered is not returned), and ``(first message, the resolve)`` for
    each run a resolve ended without a reply. ``resolves``: ``(change time, ticket version,
    event id)`` of every transition into resolved. @1: a resolve does not end a run (it waits
    for the first reply after a reopen); @2 it does, and the reopening message starts a new
    one."""
    # Reading: at equal instants the desk's order (ticket version; a message before the status
    # change of its own version); messages without a version: the reply before a customer's.
    timeline: list[tuple[tuple[datetime, int, int, str], str, datetime]] = [
        (m.order(), "customer" if m.is_customer else "reply", m.send)
        for m in messages
        if m.is_customer or m.is_human_reply
    ]
    if version >= 2:
        timeline += [((at, v, 2, event_id), "resolve", at) for at, v, event_id in resolves]
    timeline.sort()
    after = first_response.order()
    runs: list[tuple[datetime, datetime]] = []
    ended: list[tuple[datetime, datetime]] = []
    run_start: datetime | None = None
    for order, what, at in timeline:
        if order <= after:
            continue  # the first response and what came before it
        if what == "customer":
            if run_start is None:
                run_start = at
        elif run_start is not None:
            (runs if what == "reply" else ended).append((run_start, at))
            run_start = None
    return runs, ended


def _first_touch(
    created: datetime,
    snapshots: Sequence[pb.Ticket],
    tf: _TicketFacts,
    customer_messages: Sequence[Msg],
    linked: Sequence[MentionFacts],
) -> datetime:
    """The earliest of everything docs/kpis.md lists as a first touch."""
    touches = [created]
    for snapshot in snapshots:
        if snapshot.HasField("first_touch_time"):
            touches.append(_time(snapshot.first_touch_time, created))
        touches.extend(_time(i.occurred_time, created) for i in snapshot.interactions)
    touches.extend(tf.interactions)  # InteractionLinked
    touches.extend(tf.first_touches)  # InteractionLinked.first_touch_time
    touches.extend(m.send for m in customer_messages[:1])
    touches.extend(m.posted for m in linked)
    return min(touches)


def _expected_wait(
    channel: str,
    answers: Sequence[tuple[datetime, pb.SurveyAnswer]],
    expectations: Mapping[str, timedelta],
) -> float | None:
    """The survey's expected wait (Reading: the earliest answer that gives one), else the
    channel's default; ``None`` for a channel without a default."""
    for _, answer in sorted(answers, key=lambda item: item[0]):
        if answer.HasField("expected_wait_minutes"):
            return answer.expected_wait_minutes * 60.0
    default = expectations.get(channel)
    return _seconds(default) if default is not None else None


def _sla_once(outcomes: Sequence[SlaOutcome], target: str) -> tuple[bool, datetime] | None:
    """A first-response or resolution target's one outcome per ticket: ``(met, due time)``.

    Breached if any breach exists (Reading: at the earliest breach's due time), else met
    (Reading: at the due time of the met outcome with the latest met time)."""
    breaches = [o for o in outcomes if o.target == target and not o.met]
    if breaches:
        return False, min(o.due for o in breaches)
    mets = [o for o in outcomes if o.target == target and o.met]
    if not mets:
        return None
    last = max(mets, key=lambda o: (o.met_time or o.due, o.due))
    return True, last.due


def _derive_ticket(
    ticket_id: str,
    tf: _TicketFacts,
    *,
    calendars: Mapping[tuple[str, int], BusinessCalendar],
    mentions: Mapping[str, MentionFacts],
    mentions_naming: Mapping[str, Sequence[MentionFacts]],
    answers: Sequence[tuple[datetime, pb.SurveyAnswer]],
    reporting_timezone: str,
    expectations: Mapping[str, timedelta],
    frt_version: int,
    nrt_version: int,
    silence_version: int,
    now: datetime,
) -> TicketClocks | None:
    """Every clock and flag of one ticket, from all of its facts sorted afresh."""
    if not tf.snapshots:
        return None  # no snapshot of the ticket arrived: nothing to attribute its facts to
    ordered = sorted(tf.snapshots, key=lambda s: (s[0], s[1], s[2]))
    snapshots = [snapshot for _, _, _, snapshot in ordered]
    current = snapshots[-1]  # Reading: the current fields are the highest version's
    created = _time(current.create_time, ordered[0][1])

    dims = {
        "channel": _label(pb.Channel, "CHANNEL_", current.channel),
        "type": _label(pb.TicketType, "TICKET_TYPE_", current.type),
        "priority": _label(pb.Priority, "PRIORITY_", current.priority),
        "team": current.team_id,
        "agent": current.assignee_id,
        "tier": current.customer_tier,
    }

    # The calendar named by the ticket's (current) SLA; unknown counts like none.
    calendar_key = (
        (current.sla.calendar_id, current.sla.calendar_version)
        if current.HasField("sla") and current.sla.calendar_id
        else None
    )
    calendar = calendars.get(calendar_key) if calendar_key is not None else None

    # The status history: the status at creation, then every change by its change time.
    changes = sorted(tf.status_changes, key=lambda c: (c[0], c[1], c[2]))
    if tf.created_status is not None:
        initial = tf.created_status
    elif changes:
        initial = changes[0][3].from_status
    else:
        initial = NEW
    segments = _segments(created, initial, [(at, c.to_status) for at, _, _, c in changes])
    final_status = changes[-1][3].to_status if changes else initial
    resolves = [at for at, _, _, c in changes if c.to_status == RESOLVED]

    # Messages, each with its earliest delivery receipt.
    messages = sorted(
        (
            Msg(mid, author, public, send, min(tf.deliveries.get(mid, []), default=None), version)
            for mid, (author, public, send, version) in tf.messages.items()
        ),
        key=Msg.order,
    )
    human_replies = [m for m in messages if m.is_human_reply]
    customer_messages = [m for m in messages if m.is_customer]
    first = human_replies[0] if human_replies else None

    # FRT: @1 ends at the first human reply, @2 at the first public agent or bot message.
    responses = human_replies if frt_version == 1 else [m for m in messages if m.is_company_public]
    frt_reply = responses[0] if responses else None
    frt_wall = frt_business = None
    if frt_reply is not None:
        frt_wall = _seconds(frt_reply.send - created)
        frt_business = _counting_time(created, frt_reply.send, segments, PAUSING_STATUSES, calendar)

    # The perception gap (company_frt is frt_business under another name).
    linked = list(mentions_naming.get(ticket_id, []))
    source = mentions.get(current.source_mention_id)
    if source is not None and source not in linked:
        linked.append(source)
    first_touch = _first_touch(created, snapshots, tf, customer_messages, linked)
    customer_wait = perception_gap = None
    if first is not None:
        assert frt_business is not None  # a human reply is a response under either version
        customer_wait = _seconds((first.delivered or first.send) - first_touch)
        perception_gap = customer_wait - frt_business
        dims["wait_bucket"] = wait_bucket(customer_wait)
    expected_wait = _expected_wait(dims["channel"], answers, expectations)
    expectation_breached = (
        customer_wait > expected_wait
        if customer_wait is not None and expected_wait is not None
        else None
    )

    # NRT: one value per answered run of customer messages after the first response; the runs
    # a resolve ended without a reply (always by @2's rule) counted apart.
    nrt: list[tuple[datetime, float, float]] = []
    resolved_without_reply: list[datetime] = []
    if first is not None:
        resolve_changes = [(at, v, eid) for at, v, eid, c in changes if c.to_status == RESOLVED]
        answered, _ = _nrt_runs(messages, first, resolve_changes, nrt_version)
        for run_start, reply in answered:
            business = _counting_time(run_start, reply, segments, PAUSING_STATUSES, calendar)
            nrt.append((reply, _seconds(reply - run_start), business))
        _, ended = _nrt_runs(messages, first, resolve_changes, 2)
        resolved_without_reply = [resolve for _, resolve in ended]

    # Chasers: customer messages before the first response, except the earliest one.
    before = [m for m in customer_messages if first is None or m.order() < first.order()]
    chasers = [m.send for m in before[1:]]

    # Resolution ("resolved": resolved or closed now, and resolved at least once).
    resolved = final_status in (RESOLVED, CLOSED) and bool(resolves)
    first_resolve = resolves[0] if resolves else None
    last_resolve = resolves[-1] if resolves else None
    first_resolution_wall = _seconds(first_resolve - created) if first_resolve else None
    # Business time to the first resolve: nothing was resolved before it, so only the pauses
    # are left out.
    first_resolution_business = (
        _counting_time(created, first_resolve, segments, PAUSING_STATUSES, calendar)
        if first_resolve
        else None
    )
    resolution_wall = resolution_business = silence = None
    fcr = same_day = None
    if resolved and last_resolve is not None:
        resolution_wall = _seconds(last_resolve - created)
        not_counting = PAUSING_STATUSES | {RESOLVED}  # resolved before a reopen does not count
        resolution_business = _counting_time(
            created, last_resolve, segments, not_counting, calendar
        )
        silence = _silence(first_touch, messages, last_resolve, changes, silence_version)
        fcr = len(human_replies) == 1 and current.reopen_count == 0
        zone = ZoneInfo(calendar.timezone if calendar is not None else reporting_timezone)
        same_day = created.astimezone(zone).date() == last_resolve.astimezone(zone).date()

    # SLA, and green inside / red outside.
    outcomes = sorted(tf.sla, key=lambda o: (o.due, o.met_time or o.due))
    sla_met = bool(outcomes) and all(o.met for o in outcomes)
    csat_low = any(a.HasField("csat") and a.csat <= 2 for _, a in answers)
    negative_mention = any(m.mention.sentiment < -SENTIMENT_THRESHOLD for m in linked)
    bad = bool(expectation_breached) or csat_low or negative_mention

    # The backlog level's changes, and the status at `now` (for the ages).
    backlog_changes: list[tuple[datetime, int]] = [(created, +1)]
    for at, _, _, c in changes:
        if c.to_status in (RESOLVED, CLOSED) and c.from_status in OPEN_STATUSES:
            backlog_changes.append((at, -1))
        if c.reopen:
            backlog_changes.append((at, +1))
    status_at_now = initial
    for at, _, _, c in changes:
        if at <= now:
            status_at_now = c.to_status

    return TicketClocks(
        ticket_id=ticket_id,
        contact_id=current.contact_id,
        dims={k: v for k, v in dims.items() if v},
        issue_dims={
            k: v
            for k, v in {**dims, "category": current.category, "product": current.product}.items()
            if v
        },
        create_time=created,
        first_touch=first_touch,
        calendar=calendar_key,
        calendar_known=calendar is not None,
        status=final_status,
        first_response=first,
        frt_reply_time=frt_reply.send if frt_reply is not None else None,
        frt_wall=frt_wall,
        frt_business=frt_business,
        customer_wait=customer_wait,
        perception_gap=perception_gap,
        expected_wait=expected_wait,
        expectation_breached=expectation_breached,
        nrt=nrt,
        resolved_without_reply=resolved_without_reply,
        chasers=chasers,
        resolved=resolved,
        first_resolve=first_resolve,
        last_resolve=last_resolve,
        resolution_wall=resolution_wall,
        first_resolution_wall=first_resolution_wall,
        first_resolution_business=first_resolution_business,
        resolution_business=resolution_business,
        silence=silence,
        reopen_count=current.reopen_count,
        public_human_replies=len(human_replies),
        first_contact_resolution=fcr,
        same_day_resolution=same_day,
        sla_outcomes=outcomes,
        sla_first_response=_sla_once(outcomes, FIRST_RESPONSE),
        sla_resolution=_sla_once(outcomes, RESOLUTION),
        sla_met=sla_met,
        bad_experience=bad,
        green_inside_red_outside=bad if sla_met else None,
        backlog_changes=backlog_changes,
        status_at_now=status_at_now,
        awaiting_at_now=first is None or first.send > now,
    )


# --- observations --------------------------------------------------------------------------------


def _ticket_observations(t: TicketClocks, now: datetime) -> list[Observation]:
    out: list[Observation] = []
    tid = t.ticket_id

    def add(kpi: str, at: datetime, value: float, dims: Mapping[str, str] | None = None) -> None:
        out.append(Observation(kpi, at, t.dims if dims is None else dims, value, tid))

    add("tickets_created", t.create_time, 1.0, t.issue_dims)
    add("awaiting_first_response", t.create_time, +1.0)
    if t.first_response is not None:
        reply_at = t.first_response.send
        add("awaiting_first_response", reply_at, -1.0)
        assert t.customer_wait is not None
        assert t.perception_gap is not None
        add("customer_wait", reply_at, t.customer_wait)
        add("perception_gap", reply_at, t.perception_gap)
        if t.expectation_breached is not None:
            add("expectation_breach", reply_at, 1.0 if t.expectation_breached else 0.0)
    if t.frt_reply_time is not None:
        assert t.frt_wall is not None
        assert t.frt_business is not None
        reply = t.frt_reply_time
        add("frt_wall", reply, t.frt_wall)
        add("frt_business", reply, t.frt_business)
        add("company_frt", reply, t.frt_business)
    if t.create_time <= now and t.awaiting_at_now:
        add("unanswered_age", t.create_time, _seconds(now - t.create_time))
    if t.create_time <= now and t.status_at_now in OPEN_STATUSES:
        add("backlog_age", t.create_time, _seconds(now - t.create_time))
    for reply, wall, business in t.nrt:
        add("nrt_wall", reply, wall)
        add("nrt_business", reply, business)
    for resolve in t.resolved_without_reply:
        add("resolved_without_reply", resolve, 1.0)
    for at in t.chasers:
        add("chasers", at, 1.0)
    for at, change in t.backlog_changes:
        add("backlog", at, float(change))
    if t.first_resolve is not None and t.first_resolution_wall is not None:
        add("first_resolution_wall", t.first_resolve, t.first_resolution_wall)
        assert t.first_resolution_business is not None
        add("first_resolution_business", t.first_resolve, t.first_resolution_business)
    if t.resolved and t.last_resolve is not None:
        at = t.last_resolve
        assert t.resolution_wall is not None
        assert t.resolution_business is not None
        assert t.silence is not None
        add("resolution_wall", at, t.resolution_wall)
        add("resolution_business", at, t.resolution_business)
        add("silence", at, t.silence)
        add("reopen_rate", at, 1.0 if t.reopen_count >= 1 else 0.0)
        add("first_contact_resolution", at, 1.0 if t.first_contact_resolution else 0.0)
        add("same_day_resolution", at, 1.0 if t.same_day_resolution else 0.0)
        add("tickets_handled", at, 1.0)
    if t.sla_first_response is not None:
        met, due = t.sla_first_response
        add("sla_first_response", due, 1.0 if met else 0.0)
    if t.sla_resolution is not None:
        met, due = t.sla_resolution
        add("sla_resolution", due, 1.0 if met else 0.0)
    for outcome in t.sla_outcomes:
        if outcome.target == NEXT_RESPONSE:
            add("sla_next_response", outcome.due, 1.0 if outcome.met else 0.0)
    if t.green_inside_red_outside is not None:
        add("green_inside_red_outside", t.create_time, 1.0 if t.green_inside_red_outside else 0.0)
    return out


ScoreItem = Literal["csat", "nps", "effort", "purchase_intent", "loyalty"]
SCORE_ITEMS: tuple[ScoreItem, ...] = ("csat", "nps", "effort", "purchase_intent", "loyalty")


def _survey_observations(s: SurveyFacts, ticket: TicketClocks | None) -> list[Observation]:
    dims: Mapping[str, str] = ticket.dims if ticket is not None else {}
    out: list[Observation] = []
    if s.sent is not None:
        out.append(
            Observation(
                "survey_response_rate",
                s.sent,
                dims,
                1.0 if s.answer is not None else 0.0,
                s.survey_id,
            )
        )
    a, at = s.answer, s.answered
    if a is None or at is None:
        return out
    for item in SCORE_ITEMS:
        if a.HasField(item):
            out.append(Observation(item, at, dims, float(getattr(a, item)), s.survey_id))
    if a.HasField("comment_sentiment"):
        out.append(Observation("comment_sentiment", at, dims, a.comment_sentiment, s.survey_id))
    if a.HasField("perceived_wait_minutes"):
        perceived = a.perceived_wait_minutes * 60.0
        out.append(Observation("perceived_wait", at, dims, perceived, s.survey_id))
        if ticket is not None and ticket.first_response is not None:
            assert ticket.frt_business is not None
            stated_gap = perceived - ticket.frt_business  # company_frt = frt_business
            out.append(Observation("stated_gap", at, dims, stated_gap, s.survey_id))
    return out


def _mention_observations(m: MentionFacts, own_brands: Sequence[str]) -> list[Observation]:
    mention = m.mention
    dims = {k: v for k, v in {"network": mention.network, "brand": mention.brand}.items() if v}
    own = not mention.brand or mention.brand in own_brands
    return [
        Observation("mentions", m.posted, dims, 1.0, mention.id),
        Observation("reach", m.posted, dims, float(mention.author_followers), mention.id),
        Observation("mention_sentiment", m.posted, dims, mention.sentiment, mention.id),
        Observation("share_of_voice", m.posted, dims, 1.0 if own else 0.0, mention.id),
    ]


# --- aggregation ---------------------------------------------------------------------------------


def exact_quantile(ordered: Sequence[float], q: float) -> float:
    """The value at rank ``floor(q * (n - 1))`` of an ascending list."""
    return ordered[math.floor(q * (len(ordered) - 1))]


def _score_headline(kpi: str, scores: Sequence[float]) -> float:
    n = len(scores)
    if kpi == "csat":
        return 100.0 * sum(1 for s in scores if s >= 4) / n
    if kpi == "nps":
        promoters = sum(1 for s in scores if s >= 9)
        detractors = sum(1 for s in scores if s <= 6)
        return 100.0 * promoters / n - 100.0 * detractors / n
    if kpi == "effort":
        return 100.0 * sum(1 for s in scores if s >= 5) / n
    return 100.0 * sum(1 for s in scores if s >= 9) / n  # purchase intent, loyalty: top-2-box


def summarize(kpi: str, values: Sequence[float]) -> KpiValue:
    """One KPI's value from its observations' values (already filtered to the range)."""
    kind, unit = KPIS[kpi]
    n = len(values)
    total = math.fsum(values)  # exactly rounded: the same sum in any order
    if kind == LEVEL:
        if n == 0:
            return KpiValue(kpi, kind, unit)
        return KpiValue(kpi, kind, unit, count=round(total), sum=total, value=total)
    if n == 0:
        return KpiValue(kpi, kind, unit)
    mean = total / n
    if kind == DISTRIBUTION or (kind == COUNT and unit == "s"):
        ordered = sorted(values)
        p50, p90, p99 = (exact_quantile(ordered, q) for q in QUANTILES)
        headline = p50 if kind == DISTRIBUTION else total
        return KpiValue(kpi, kind, unit, n, total, headline, mean, p50, p90, p99)
    if kind == COUNT:
        return KpiValue(kpi, kind, unit, n, total, total, mean)
    if kind == RATE:
        numerator = round(total)
        return KpiValue(
            kpi,
            kind,
            unit,
            n,
            total,
            100.0 * numerator / n,
            mean,
            numerator=numerator,
            denominator=n,
        )
    if kind == SCORE:
        return KpiValue(kpi, kind, unit, n, total, _score_headline(kpi, values), mean)
    # SENTIMENT: net = (positive - negative) / all.
    positive = sum(1 for v in values if v > SENTIMENT_THRESHOLD)
    negative = sum(1 for v in values if v < -SENTIMENT_THRESHOLD)
    return KpiValue(kpi, kind, unit, n, total, (positive - negative) / n, mean)


def aggregate(
    observations: Iterable[Observation],
    *,
    start: datetime,
    end: datetime,
    filters: Mapping[str, str] | None = None,
    group_by: str | None = None,
) -> dict[str, dict[str, KpiValue]]:
    """``{group value: {kpi: value}}`` over ``[start, end)``; one group ``""`` without
    ``group_by``. Every KPI is present in every group (with no data when nothing matched)."""
    wanted = dict(filters or {})
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for o in observations:
        in_range = o.at < end if KPIS[o.kpi][0] == LEVEL else start <= o.at < end
        if not in_range:
            continue
        if any(o.dims.get(k) != v for k, v in wanted.items()):
            continue
        if group_by is None:
            group = ""
        elif group_by in o.dims:
            group = o.dims[group_by]
        else:
            continue
        values[group][o.kpi].append(o.value)
    groups = sorted(values) if group_by is not None else [""]
    return {g: {kpi: summarize(kpi, values[g][kpi]) for kpi in KPIS} for g in groups}


# --- the entry point -----------------------------------------------------------------------------


def compute(
    events: Iterable[Event],
    *,
    calendars: Mapping[tuple[str, int], BusinessCalendar] | Iterable[BusinessCalendar] = (),
    start: datetime | None = None,
    end: datetime | None = None,
    now: datetime | None = None,
    group_by: str | None = None,
    filters: Mapping[str, str] | None = None,
    reporting_timezone: str = "UTC",
    own_brands: Sequence[str] = DEFAULT_OWN_BRANDS,
    channel_expectations: Mapping[str, timedelta] | None = None,
    tenant_id: str | None = None,
    frt_version: int = 1,
    nrt_version: int = 2,
    silence_version: int = 2,
) -> OracleResult:
    """Compute every KPI of docs/kpis.md from ``events`` (any order, duplicates allowed).

    ``calendars`` adds to the calendars published by ``CalendarChanged`` events (and wins on
    the same id and version). The range ``[start, end)`` defaults to the whole history; ``now``
    (the instant of the ages, default ``end``) fixes ``unanswered_age`` and ``backlog_age``.
    ``channel_expectations`` overrides channel defaults (the social one is capped at 12 h).
    ``frt_version`` 2 counts a bot's public reply as the first response for frt_wall and
    frt_business (company_frt reads frt_business). ``nrt_version`` 1 lets a run of customer
    messages wait through a resolve (the definition before @2); ``silence_version`` 1 lets
    any public company message (a bot's too) end a wait, and only those.
    """
    event_list = list(events)
    facts = _collect(event_list, tenant_id)
    known = dict(facts.calendars)
    if isinstance(calendars, Mapping):
        known.update(calendars)
    else:
        known.update({(c.calendar_id, c.version): c for c in calendars})

    times = [e.time for e in event_list]
    if start is None:
        start = min(times) if times else datetime(1970, 1, 1, tzinfo=UTC)
    if end is None:
        end = (max(times) if times else start) + timedelta(seconds=1)
    if now is None:
        now = end

    expectations = dict(DEFAULT_CHANNEL_EXPECTATIONS)
    expectations.update(channel_expectations or {})
    if "social" in expectations:
        expectations["social"] = min(expectations["social"], SOCIAL_EXPECTATION_CAP)

    surveys: dict[str, SurveyFacts] = {}
    for survey_id in sorted(set(facts.sent) | set(facts.answers)):
        sent = facts.sent.get(survey_id)
        answer = facts.answers.get(survey_id)
        surveys[survey_id] = SurveyFacts(
            survey_id=survey_id,
            ticket_id=sent[1] if sent else (answer[1].ticket_id if answer else ""),
            sent=sent[0] if sent else None,
            answer=answer[1].answer if answer else None,
            answered=answer[0] if answer else None,
        )
    answers_by_ticket: dict[str, list[tuple[datetime, pb.SurveyAnswer]]] = defaultdict(list)
    for s in surveys.values():
        if s.answer is not None and s.answered is not None:
            answers_by_ticket[s.ticket_id].append((s.answered, s.answer))

    # A mention is linked to a ticket by the ticket's source_mention_id or by naming it.
    mentions_naming: dict[str, list[MentionFacts]] = defaultdict(list)
    for m in facts.mentions.values():
        if m.mention.ticket_id:
            mentions_naming[m.mention.ticket_id].append(m)

    tickets: dict[str, TicketClocks] = {}
    for ticket_id in sorted(facts.tickets):
        clocks = _derive_ticket(
            ticket_id,
            facts.tickets[ticket_id],
            calendars=known,
            mentions=facts.mentions,
            mentions_naming=mentions_naming,
            answers=answers_by_ticket.get(ticket_id, []),
            reporting_timezone=reporting_timezone,
            expectations=expectations,
            frt_version=frt_version,
            nrt_version=nrt_version,
            silence_version=silence_version,
            now=now,
        )
        if clocks is not None:
            tickets[ticket_id] = clocks

    observations: list[Observation] = []
    for t in tickets.values():
        observations.extend(_ticket_observations(t, now))
    for s in surveys.values():
        observations.extend(_survey_observations(s, tickets.get(s.ticket_id)))
    for m in facts.mentions.values():
        observations.extend(_mention_observations(m, own_brands))

    wanted = dict(filters or {})
    totals = aggregate(observations, start=start, end=end, filters=wanted)[""]
    groups = (
        aggregate(observations, start=start, end=end, filters=wanted, group_by=group_by)
        if group_by is not None
        else {}
    )
    return OracleResult(
        start=start,
        end=end,
        now=now,
        group_by=group_by,
        filters=wanted,
        tickets=tickets,
        surveys=surveys,
        mentions=dict(facts.mentions),
        observations=tuple(observations),
        totals=totals,
        groups=groups,
    )


def hour_edges(start: datetime, end: datetime) -> list[datetime]:
    """UTC hour boundaries from ``start`` (floored to the hour) to ``end`` (ceiled)."""
    edge = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    edges = [edge]
    while edges[-1] < end:
        edges.append(edges[-1] + timedelta(hours=1))
    return edges


def day_edges(first: date, last: date, timezone: str = "UTC") -> list[datetime]:
    """Local midnights of ``first`` .. ``last + 1 day`` in ``timezone``, as UTC instants."""
    zone = ZoneInfo(timezone)
    days = (last - first).days + 2
    return [
        datetime.combine(first + timedelta(days=i), datetime.min.time(), zone).astimezone(UTC)
        for i in range(days)
    ]
