"""A ticket's clocks, derived from its facts, and the contributions they make to the KPIs.

``derive`` is a pure function of the facts (plus the calendar and the definitions in force):
it sorts what it needs, so the order the facts arrived in never matters. Each clock names the
events that set its start and its end (``GetTicketClocks``). ``contributions`` turns the clocks
into the observations the aggregates add up; docs/kpis.md is the specification of both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from crm_calendar.business_calendar import BusinessCalendar
from crm_metrics.domain.catalog import Definitions, wait_bucket
from crm_metrics.domain.contribution import Contribution, Dims, make_dims
from crm_metrics.domain.facts import MentionFacts, MessageFact, TicketFacts, TransitionFact

OPEN_STATUSES = frozenset({"new", "open", "pending_customer", "on_hold"})
PAUSE_STATUSES = frozenset({"pending_customer", "on_hold"})
DONE_STATUSES = frozenset({"resolved", "closed"})
NEGATIVE = -0.05
POSITIVE = 0.05

# Default customer expectations per channel, in seconds (docs/kpis.md); social is capped at
# MAX_EXPECTATION.
DEFAULT_EXPECTATIONS: dict[str, float] = {
    "social": 2 * 3600.0,
    "phone": 5 * 60.0,
    "live_chat": 5 * 60.0,
    "email": 24 * 3600.0,
    "web_form": 24 * 3600.0,
    "mobile": 4 * 3600.0,
    "in_person": 15 * 60.0,
    "partner": 24 * 3600.0,
}
MAX_EXPECTATION = 12 * 3600.0
SCORE_ITEMS = ("csat", "nps", "effort", "purchase_intent", "loyalty")


@dataclass(frozen=True, slots=True)
class Settings:
    """What the derivation needs besides the facts."""

    definitions: Definitions = field(default_factory=Definitions)
    reporting_timezone: str = "UTC"
    expectations: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_EXPECTATIONS))
    own_brands: frozenset[str] = frozenset()

    def expectation(self, channel: str) -> float | None:
        """The default expected wait of a channel (seconds; social's at most 12 h), or None for
        a channel without one."""
        default = self.expectations.get(channel)
        if default is not None and channel == "social":
            return min(default, MAX_EXPECTATION)
        return default


@dataclass(frozen=True, slots=True)
class Clock:
    """One clock of a ticket: a length between two instants (``seconds`` None while open)."""

    name: str
    seconds: float | None
    start_ms: int | None
    end_ms: int | None
    start_events: tuple[str, ...]
    end_events: tuple[str, ...]
    explanation: str


@dataclass(slots=True)
class TicketClocks:
    """Everything derived about one ticket."""

    ticket_id: str
    dims: dict[str, str]
    clocks: dict[str, Clock] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)
    sla_outcomes: dict[str, str] = field(default_factory=dict)
    calendar_missing: bool = False
    # Send time of the first public human reply (where the perception KPIs are bucketed).
    reply_ms: int | None = None

    def seconds(self, name: str) -> float | None:
        """A clock's length, None if absent or still running."""
        clock = self.clocks.get(name)
        return None if clock is None else clock.seconds


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


Order = tuple[int, int, int, str]
"""Where a fact stands among a ticket's facts: (time, ticket version, rank, id)."""


def message_order(message_id: str, message: MessageFact, at_ms: int | None = None) -> Order:
    """A message's place at its send time (or ``at_ms``, e.g. its delivery). At one instant
    the service desk's order decides: the ticket version of the change that added it, and a
    message before the status change of its own version (which it caused). Between messages
    published without a version, the company's comes before the customer's (docs/kpis.md)."""
    at = message.send_ms if at_ms is None else at_ms
    return (at, message.seq, int(message.author == "customer"), message_id)


def transition_order(transition: TransitionFact) -> Order:
    """A status change's place: its change time, then its ticket version (see message_order);
    the event id only separates copies of one change, never two changes."""
    return (transition.at_ms, transition.seq, 2, transition.event_id)


class _Timeline:
    """Status intervals of a ticket and business time on its calendar."""

    def __init__(self, facts: TicketFacts, calendar: BusinessCalendar | None) -> None:
        assert facts.create_ms is not None
        self.calendar = calendar
        transitions = sorted(facts.transitions.values(), key=transition_order)
        self.transitions = transitions
        # [start, end, status) intervals from creation; the last is open-ended (end None).
        self.intervals: list[tuple[int, int | None, str]] = []
        status, since = "new", facts.create_ms
        for transition in transitions:
            at = max(transition.at_ms, facts.create_ms)
            self.intervals.append((since, at, status))
            status, since = transition.to_status, at
        self.intervals.append((since, None, status))
        self.status = status
        self.created_ms = facts.create_ms

    def business_ms(self, start: int, end: int) -> int:
        """Open time of the calendar in [start, end) (wall time without a calendar)."""
        if end <= start:
            return 0
        if self.calendar is None:
            return end - start
        delta = self.calendar.business_time(_dt(start), _dt(end))
        return delta // timedelta(milliseconds=1)

    def counted_business_ms(self, start: int, end: int, excluded: frozenset[str]) -> int:
        """Business time in [start, end) outside intervals whose status is in ``excluded``."""
        total = 0
        for lo, hi, status in self.intervals:
            if status in excluded:
                continue
            a = max(lo, start)
            b = end if hi is None else min(hi, end)
            if b > a:
                total += self.business_ms(a, b)
        return total


def _first_reply(
    messages: list[MessageFact], ids: list[str], authors: frozenset[str]
) -> tuple[str, MessageFact] | None:
    best: tuple[str, MessageFact] | None = None
    for message_id, message in zip(ids, messages, strict=True):
        if (
            message.public
            and message.author in authors
            and (best is None or message_order(message_id, message) < message_order(*best))
        ):
            best = (message_id, message)
    return best


def derive(
    facts: TicketFacts, calendar: BusinessCalendar | None, settings: Settings
) -> TicketClocks:
    """The ticket's clocks. ``calendar`` is the SLA's calendar version (None: wall clock)."""
    result = TicketClocks(facts.ticket_id, dict(facts.dims))
    if facts.create_ms is None:
        return result  # nothing is known before the ticket's creation has been seen
    create = facts.create_ms
    created_ids = (facts.created_event_id,)
    timeline = _Timeline(facts, calendar)
    definitions = settings.definitions
    ids = list(facts.messages)
    messages = list(facts.messages.values())
    human = _first_reply(messages, ids, frozenset({"agent"}))

    def add(
        name: str,
        start: int | None,
        end: int | None,
        starts: tuple[str, ...],
        ends: tuple[str, ...],
        explanation: str,
        seconds: float | None = None,
    ) -> None:
        if seconds is None and start is not None and end is not None:
            seconds = (end - start) / 1000
        result.clocks[name] = Clock(name, seconds, start, end, starts, ends, explanation)

    # First response, per definition version (v2 lets bots answer).
    for kpi in ("frt_wall", "frt_business"):
        authors = (
            frozenset({"agent", "bot"}) if definitions.version(kpi) == 2 else frozenset({"agent"})
        )
        reply = human if authors == frozenset({"agent"}) else _first_reply(messages, ids, authors)
        if reply is None:
            add(kpi, create, None, created_ids, (), "no public reply yet: the ticket is open")
            continue
        reply_ms = reply[1].send_ms
        if kpi == "frt_wall":
            add(
                kpi,
                create,
                reply_ms,
                created_ids,
                (reply[1].event_id,),
                "creation → first public reply (wall clock)",
            )
        else:
            business = timeline.counted_business_ms(create, reply_ms, PAUSE_STATUSES)
            add(
                kpi,
                create,
                reply_ms,
                created_ids,
                (reply[1].event_id,),
                "creation → first public reply, business time minus pauses",
                seconds=business / 1000,
            )

    # The customer's side: first touch → the first human reply delivered.
    touch_id, (touch_ms, touch_what) = min(
        facts.touches.items(), key=lambda item: (item[1][0], item[0]), default=("", (create, ""))
    )
    customers = sorted(
        (
            (m.send_ms, mid, m)
            for mid, m in zip(ids, messages, strict=True)
            if m.author == "customer"
        ),
        key=lambda item: message_order(item[1], item[2]),
    )
    if customers and customers[0][0] < touch_ms:
        touch_ms, touch_id, touch_what = customers[0][0], customers[0][2].event_id, "message"
    if create < touch_ms:
        touch_ms, touch_id, touch_what = create, facts.created_event_id, "creation"
    company_frt = result.seconds("frt_business")
    wait: float | None = None
    if human is not None:
        result.reply_ms = human[1].send_ms
        delivered = facts.deliveries.get(human[0])
        end_ms, end_id = delivered if delivered else (human[1].send_ms, human[1].event_id)
        add(
            "customer_wait",
            touch_ms,
            end_ms,
            (touch_id,),
            (end_id,),
            f"first touch ({touch_what}) → first human reply "
            + ("delivered" if delivered else "sent (no delivery receipt)"),
        )
        wait = result.seconds("customer_wait")
        if wait is not None and company_frt is not None:
            add(
                "perception_gap",
                touch_ms,
                end_ms,
                (touch_id,),
                (end_id,),
                "customer_wait - company_frt",
                seconds=wait - company_frt,
            )
        if wait is not None:
            result.dims["wait_bucket"] = wait_bucket(wait)
    else:
        add("customer_wait", touch_ms, None, (touch_id,), (), "still waiting for a human reply")

    # Surveys: the earliest answer that states an expectation wins over the channel default.
    answered = sorted(
        (s for s in facts.surveys.values() if s.answer_ms is not None),
        key=lambda s: (s.answer_ms or 0, s.survey_id),
    )
    expected = settings.expectation(facts.dims.get("channel", ""))
    expected_source = "channel default"
    for survey in answered:
        if "expected_wait_minutes" in survey.scores:
            expected = survey.scores["expected_wait_minutes"] * 60.0
            expected_source = "survey"
            break
    if wait is not None and human is not None and expected is not None:
        if wait > expected:
            result.flags.add("expectation_breached")
        result.clocks["expected_wait"] = Clock(
            "expected_wait", expected, None, None, (), (), f"expected wait ({expected_source})"
        )

    # Next response runs after the first response (v2: a resolve ends a run unanswered).
    human_order = message_order(*human) if human is not None else None
    if human_order is not None:
        for kpi in ("nrt_wall", "nrt_business"):
            replied, _ended = _runs(ids, messages, timeline, human_order, definitions.version(kpi))
            for run, (start_ms, start_id, end_ms, end_id) in enumerate(replied, 1):
                if kpi == "nrt_wall":
                    add(
                        f"nrt_wall#{run}",
                        start_ms,
                        end_ms,
                        (start_id,),
                        (end_id,),
                        "first unanswered customer message → next reply",
                    )
                    continue
                business = timeline.counted_business_ms(start_ms, end_ms, PAUSE_STATUSES)
                add(
                    f"nrt_business#{run}",
                    start_ms,
                    end_ms,
                    (start_id,),
                    (end_id,),
                    "the same run on the business clock",
                    seconds=business / 1000,
                )
        _replied, ended = _runs(ids, messages, timeline, human_order, 2)
        for run, (start_ms, start_id, end_ms, end_id) in enumerate(ended, 1):
            add(
                f"resolved_without_reply#{run}",
                start_ms,
                end_ms,
                (start_id,),
                (end_id,),
                "first unanswered customer message → a resolve with no reply",
            )

    # Chasers: customer follow-ups before the first response.
    chasers = [
        (send_ms, m.event_id)
        for send_ms, mid, m in customers[1:]
        if human_order is None or message_order(mid, m) < human_order
    ]
    if chasers:
        result.clocks["chasers"] = Clock(
            "chasers",
            float(len(chasers)),
            None,
            None,
            tuple(e for _, e in chasers),
            (),
            "customer messages before the first response, after the first one",
        )

    # Resolution.
    resolves = [t for t in timeline.transitions if t.to_status == "resolved"]
    reopens = [t for t in timeline.transitions if t.reopen]
    resolved_now = timeline.status in DONE_STATUSES and bool(resolves)
    if reopens:
        result.flags.add("reopened")
    if resolves:
        first = resolves[0]
        add(
            "first_resolution_wall",
            create,
            max(first.at_ms, create),
            created_ids,
            (first.event_id,),
            "creation → first resolve",
        )
        first_ms = max(first.at_ms, create)
        business = timeline.counted_business_ms(create, first_ms, PAUSE_STATUSES | DONE_STATUSES)
        add(
            "first_resolution_business",
            create,
            first_ms,
            created_ids,
            (first.event_id,),
            "business time in working statuses until the first resolve",
            seconds=business / 1000,
        )
    if resolved_now:
        last = resolves[-1]
        last_ms = max(last.at_ms, create)
        add(
            "resolution_wall",
            create,
            last_ms,
            created_ids,
            (last.event_id,),
            "creation → last resolve",
        )
        business = timeline.counted_business_ms(create, last_ms, PAUSE_STATUSES | DONE_STATUSES)
        add(
            "resolution_business",
            create,
            last_ms,
            created_ids,
            (last.event_id,),
            "business time in working statuses until the last resolve",
            seconds=business / 1000,
        )
        result.flags.add("resolved")
        agent_replies = sum(1 for m in messages if m.public and m.author == "agent")
        if agent_replies == 1 and not reopens:
            result.flags.add("first_contact_resolution")
        zone = ZoneInfo(calendar.timezone if calendar else settings.reporting_timezone)
        if _dt(create).astimezone(zone).date() == _dt(last_ms).astimezone(zone).date():
            result.flags.add("same_day_resolution")
        silence = _silence(
            touch_ms,
            touch_id,
            messages,
            facts,
            timeline if definitions.version("silence") >= 2 else None,
            last_ms,
            last.event_id,
        )
        if silence is not None:
            result.clocks["silence"] = silence

    # SLA outcomes: first response and resolution once per ticket (a breach stays a breach).
    for target in ("first_response", "resolution"):
        outcomes = [s for s in facts.sla.values() if s.target == target]
        if outcomes:
            breached = any(not s.met for s in outcomes)
            result.sla_outcomes[target] = "breached" if breached else "met"
    nr = [s for s in facts.sla.values() if s.target == "next_response"]
    if nr:
        result.sla_outcomes["next_response"] = "breached" if any(not s.met for s in nr) else "met"
    if result.sla_outcomes and "breached" not in result.sla_outcomes.values():
        result.flags.add("sla_met")
        bad_mention = any(m.sentiment < NEGATIVE for m in facts.mentions.values())
        bad_csat = any(s.scores.get("csat", 5) <= 2 for s in answered)
        if "expectation_breached" in result.flags or bad_csat or bad_mention:
            result.flags.add("green_inside_red_outside")
    if facts.calendar is not None and calendar is None:
        result.calendar_missing = True
    return result


Run = tuple[int, str, int, str]
"""A run of customer messages: (start, its event id, end, the event id that ended it)."""


def _runs(
    ids: list[str],
    messages: list[MessageFact],
    timeline: _Timeline,
    after: Order,
    version: int,
) -> tuple[list[Run], list[Run]]:
    """The runs of customer messages after ``after`` (the first response): those a public human
    reply answered, and (version 2) those a resolve ended first. Version 1 lets a run wait
    through a resolve for the first reply after a reopen; version 2 ends it at the resolve, and
    the message reopening the ticket starts a new one."""
    items: list[tuple[Order, int, str, str]] = []  # (order, time, event id, what)
    for message_id, message in zip(ids, messages, strict=True):
        if message.public and message.author in ("customer", "agent"):
            order = message_order(message_id, message)
            if order > after:
                items.append((order, message.send_ms, message.event_id, message.author))
    if version >= 2:
        for transition in timeline.transitions:
            order = transition_order(transition)
            if transition.to_status == "resolved" and order > after:
                items.append((order, transition.at_ms, transition.event_id, "resolve"))
    items.sort()
    answered: list[Run] = []
    ended: list[Run] = []
    start: tuple[int, str] | None = None
    for _order, at_ms, event_id, what in items:
        if what == "customer":
            if start is None:
                start = (at_ms, event_id)
        elif start is not None:
            (answered if what == "agent" else ended).append((*start, at_ms, event_id))
            start = None
    return answered, ended


def _silence(
    touch_ms: int,
    touch_id: str,
    messages: list[MessageFact],
    facts: TicketFacts,
    statuses: _Timeline | None,
    end_ms: int,
    end_id: str,
) -> Clock | None:
    """The longest wait with no public update, up to the last resolve.

    Version 2 (``statuses`` given): a public human reply (delivered, else sent) ends a wait, and
    so does a transition into a pausing status or into resolved; a bot's acknowledgement does
    not, nor do the customer's chasers. Version 1 (``statuses`` None): any public message from
    the company, a bot's included, ends a wait. The customer's next message starts a new one.
    """
    timeline: list[tuple[Order, int, str, bool]] = []  # (order, time, event id, an update)
    ids = list(facts.messages)
    for message_id, message in zip(ids, messages, strict=True):
        if not message.public:
            continue
        if message.author == "customer":
            at, event, company = message.send_ms, message.event_id, False
        elif statuses is not None and message.author != "agent":
            continue  # a bot's message is no update (v2)
        else:
            delivered = facts.deliveries.get(message_id)
            at, event = delivered if delivered else (message.send_ms, message.event_id)
            company = True
        if at <= end_ms:  # after the last resolve nothing counts: the resolve ended the wait
            timeline.append((message_order(message_id, message, at), at, event, company))
    if statuses is not None:
        for transition in statuses.transitions:
            at = max(transition.at_ms, statuses.created_ms)
            if transition.to_status in PAUSE_STATUSES | {"resolved"} and at <= end_ms:
                timeline.append((transition_order(transition), at, transition.event_id, True))
    timeline.sort()
    waiting: tuple[int, str] | None = (touch_ms, touch_id)
    best: tuple[int, int, str, int, str] | None = None  # (length, start, id, end, id)
    for _order, at, event_id, company in timeline:
        if company:
            if waiting is not None:
                length = max(0, at - waiting[0])
                if best is None or length > best[0]:
                    best = (length, waiting[0], waiting[1], at, event_id)
                waiting = None
        elif waiting is None:
            waiting = (at, event_id)
    if waiting is not None:
        length = max(0, end_ms - waiting[0])
        if best is None or length > best[0]:
            best = (length, waiting[0], waiting[1], end_ms, end_id)
    if best is None:
        return None
    return Clock(
        "silence",
        best[0] / 1000,
        best[1],
        best[3],
        (best[2],),
        (best[4],),
        "longest wait with no public update"
        + (" (a human reply, a pause or a resolve)" if statuses is not None else ""),
    )


def contributions(
    facts: TicketFacts, clocks: TicketClocks, settings: Settings
) -> list[Contribution]:
    """The ticket's observations for every KPI (docs/kpis.md says which, and when)."""
    if facts.create_ms is None:
        return []
    create_s = facts.create_ms // 1000
    dims: Dims = make_dims(
        {k: v for k, v in clocks.dims.items() if k not in ("category", "product")}
    )
    out: list[Contribution] = []
    append = out.append

    def at(ms: int | None) -> int:
        return (ms if ms is not None else facts.create_ms or 0) // 1000

    append(Contribution("tickets_created", create_s, make_dims(clocks.dims), 1.0))
    for name in ("frt_wall", "frt_business"):
        clock = clocks.clocks.get(name)
        if clock is None or clock.seconds is None:
            continue
        if name == "frt_business" and clocks.calendar_missing:
            continue
        append(Contribution(name, at(clock.end_ms), dims, clock.seconds))
    append(Contribution("awaiting_first_response", create_s, dims, 1.0))
    if clocks.reply_ms is not None:
        append(Contribution("awaiting_first_response", clocks.reply_ms // 1000, dims, -1.0))
    else:
        append(Contribution("unanswered_age", create_s, dims, 1.0))
    for name, clock in clocks.clocks.items():
        if name.startswith("nrt_") and clock.seconds is not None:
            kpi = name.partition("#")[0]
            if kpi == "nrt_business" and clocks.calendar_missing:
                continue
            append(Contribution(kpi, at(clock.end_ms), dims, clock.seconds))
        elif name.startswith("resolved_without_reply#"):
            append(Contribution("resolved_without_reply", at(clock.end_ms), dims, 1.0))
    chasers = clocks.clocks.get("chasers")
    if chasers is not None:
        for event_id in chasers.start_events:
            message = next(m for m in facts.messages.values() if m.event_id == event_id)
            append(Contribution("chasers", message.send_ms // 1000, dims, 1.0))

    # Backlog: +1 at creation, -1 into resolved/closed, +1 at reopen.
    append(Contribution("backlog", create_s, dims, 1.0))
    open_now = True
    for transition in sorted(facts.transitions.values(), key=transition_order):
        when = max(transition.at_ms, facts.create_ms) // 1000
        if transition.from_status in OPEN_STATUSES and transition.to_status in DONE_STATUSES:
            append(Contribution("backlog", when, dims, -1.0))
            open_now = False
        elif transition.from_status in DONE_STATUSES and transition.to_status in OPEN_STATUSES:
            append(Contribution("backlog", when, dims, 1.0))
            open_now = True
    if open_now:
        append(Contribution("backlog_age", create_s, dims, 1.0))

    first_resolution = clocks.clocks.get("first_resolution_wall")
    if first_resolution is not None and first_resolution.seconds is not None:
        append(
            Contribution(
                "first_resolution_wall", at(first_resolution.end_ms), dims, first_resolution.seconds
            )
        )
    first_business = clocks.clocks.get("first_resolution_business")
    if (
        first_business is not None
        and first_business.seconds is not None
        and not clocks.calendar_missing
    ):
        append(
            Contribution(
                "first_resolution_business",
                at(first_business.end_ms),
                dims,
                first_business.seconds,
            )
        )
    resolution = clocks.clocks.get("resolution_wall")
    if resolution is not None and resolution.seconds is not None:
        resolved_s = at(resolution.end_ms)
        append(Contribution("resolution_wall", resolved_s, dims, resolution.seconds))
        business = clocks.clocks["resolution_business"]
        if not clocks.calendar_missing and business.seconds is not None:
            append(Contribution("resolution_business", resolved_s, dims, business.seconds))
        flags = clocks.flags
        append(Contribution("reopen_rate", resolved_s, dims, float("reopened" in flags)))
        append(
            Contribution(
                "first_contact_resolution",
                resolved_s,
                dims,
                float("first_contact_resolution" in flags),
            )
        )
        append(
            Contribution(
                "same_day_resolution", resolved_s, dims, float("same_day_resolution" in flags)
            )
        )
        append(Contribution("tickets_handled", resolved_s, dims, 1.0))
        silence = clocks.clocks.get("silence")
        if silence is not None and silence.seconds is not None:
            append(Contribution("silence", resolved_s, dims, silence.seconds))

    # SLA attainment at the due time.
    for target in ("first_response", "resolution"):
        outcomes = [s for s in facts.sla.values() if s.target == target]
        if not outcomes:
            continue
        breaches = [s for s in outcomes if not s.met]
        # A breach decides at the earliest breach's due time; else the latest met outcome does.
        deciding = (
            min(breaches, key=lambda s: (s.due_ms, s.event_id))
            if breaches
            else max(outcomes, key=lambda s: (s.at_ms, s.event_id))
        )
        append(
            Contribution(f"sla_{target}", deciding.due_ms // 1000, dims, 0.0 if breaches else 1.0)
        )
    for outcome in facts.sla.values():
        if outcome.target == "next_response":
            append(
                Contribution(
                    "sla_next_response", outcome.due_ms // 1000, dims, 1.0 if outcome.met else 0.0
                )
            )

    # The perception gap.
    wait = clocks.clocks.get("customer_wait")
    if wait is not None and wait.seconds is not None and clocks.reply_ms is not None:
        reply_s = clocks.reply_ms // 1000
        append(Contribution("customer_wait", reply_s, dims, wait.seconds))
        gap = clocks.clocks.get("perception_gap")
        if gap is not None and gap.seconds is not None:
            append(Contribution("perception_gap", reply_s, dims, gap.seconds))
        if "expected_wait" in clocks.clocks:
            breached = float("expectation_breached" in clocks.flags)
            append(Contribution("expectation_breach", reply_s, dims, breached))
    if "sla_met" in clocks.flags:
        append(
            Contribution(
                "green_inside_red_outside",
                create_s,
                dims,
                float("green_inside_red_outside" in clocks.flags),
            )
        )

    # Surveys, under the ticket's dimensions.
    company_frt = None if clocks.calendar_missing else clocks.seconds("frt_business")
    for survey in facts.surveys.values():
        if survey.send_ms is not None:
            append(
                Contribution(
                    "survey_response_rate",
                    survey.send_ms // 1000,
                    dims,
                    float(survey.answer_ms is not None),
                )
            )
        if survey.answer_ms is None:
            continue
        answer_s = survey.answer_ms // 1000
        for item in SCORE_ITEMS:
            if item in survey.scores:
                append(Contribution(item, answer_s, dims, float(survey.scores[item])))
        perceived = survey.scores.get("perceived_wait_minutes")
        if perceived is not None:
            append(Contribution("perceived_wait", answer_s, dims, perceived * 60.0))
            if company_frt is not None:
                append(Contribution("stated_gap", answer_s, dims, perceived * 60.0 - company_frt))
        if survey.comment_sentiment is not None:
            append(Contribution("comment_sentiment", answer_s, dims, survey.comment_sentiment))
    return out


def mention_contributions(mention: MentionFacts, settings: Settings) -> list[Contribution]:
    """A mention's observations: count, reach, sentiment, share of voice (at the post time)."""
    dims = make_dims({"network": mention.network, "brand": mention.brand})
    at = mention.posted_ms // 1000
    own = not mention.brand or mention.brand in settings.own_brands
    return [
        Contribution("mentions", at, dims, 1.0),
        Contribution("reach", at, dims, float(mention.followers)),
        Contribution("mention_sentiment", at, dims, mention.sentiment),
        Contribution("share_of_voice", at, dims, 1.0 if own else 0.0),
    ]
