"""Random requests to every writing RPC: the answer is OK or a client error, never UNKNOWN or
INTERNAL, and an INVALID_ARGUMENT names the field it is about.

Each test works in a tenant of its own, seeded with real ids (a contact, tickets, messages,
surveys, a calendar, a policy, agents, mention rules) that the requests use some of the time,
so that the deeper paths (routing, SLA due times, receipts, reopening...) run too.

The bugs these properties found (a request-level rule without a field, timestamps outside
years 1-9999, a calendar closed for years, a mention author the contacts service refuses) are
pinned down at the end by regression tests.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message as ProtoMessage
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2, status_pb2
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from crm.servicedesk.v1 import servicedesk_pb2 as pb
from crm_testing.servicedesk import DeskUnderTest, Stubs, new_tenant

pytestmark = pytest.mark.integration

R = TypeVar("R")
T = TypeVar("T")
Metadata = tuple[tuple[str, str], ...]

CLIENT_ERRORS = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.UNAUTHENTICATED,
    }
)
TIMEOUT = 20.0
TEAMS = ("billing", "tier2")
AGENTS = ("agent-a", "agent-b", "agent-c")
UPDATABLE = (
    "priority",
    "subject",
    "description",
    "assignee_id",
    "team_id",
    "tags",
    "category",
    "product",
    "type",
)


def _fuzz(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


def _stamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def _violation_fields(error: grpc.aio.AioRpcError) -> list[str]:
    trailers: Any = error.trailing_metadata() or ()
    for key, value in trailers:
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                    bad_request = error_details_pb2.BadRequest()
                    detail.Unpack(bad_request)
                    return [v.field for v in bad_request.field_violations]
    return []


async def _answers_cleanly(call: Awaitable[R], request: object) -> R | None:
    """The response, or None after a client error; fails on any other status."""
    try:
        response = await call
    except grpc.aio.AioRpcError as error:
        code = error.code()
        event(code.name)  # --hypothesis-show-statistics: how many examples got how far
        assert code in CLIENT_ERRORS, f"{code.name}: {error.details()!r}\nrequest: {request}"
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            fields = _violation_fields(error)
            assert any(fields), (
                f"INVALID_ARGUMENT without a field violation naming a field: {fields!r} "
                f"({error.details()!r})\nrequest: {request}"
            )
        return None
    event("OK")
    return response


# -- the seeded tenant --------------------------------------------------------------------------


@dataclass
class World:
    """A tenant with a few real things in it, for the requests to address."""

    stubs: Stubs
    email: str
    contact_id: str
    tickets: list[str]
    closed_ticket: str
    agent_message: str
    customer_message: str
    bot_message: str
    surveys: list[str]
    calendar_id: str
    policy_id: str

    @property
    def md(self) -> Metadata:
        return self.stubs.md


async def _build_world(desk: DeskUnderTest) -> World:
    stubs = desk.stubs(new_tenant())
    md = stubs.md
    for index, agent in enumerate(AGENTS):
        await stubs.config.PutAgent(
            pb.PutAgentRequest(
                agent=pb.Agent(
                    id=agent,
                    team_ids=TEAMS[: index % 2 + 1],
                    skills=["de", "refunds"][: index + 1],
                    available=index != 2,
                )
            ),
            metadata=md,
        )
    calendar = (
        await stubs.config.CreateCalendar(
            pb.CreateCalendarRequest(
                calendar=pb.BusinessCalendar(
                    name="support",
                    timezone="Europe/Berlin",
                    intervals=[
                        pb.OpeningInterval(weekday=day, start_minute=9 * 60, end_minute=17 * 60)
                        for day in range(1, 6)
                    ],
                    holiday_country="DE",
                    holiday_subdivision="BY",
                )
            ),
            metadata=md,
        )
    ).calendar
    policy = (
        await stubs.config.CreateSlaPolicy(
            pb.CreateSlaPolicyRequest(
                policy=pb.SlaPolicy(
                    name="standard",
                    enabled=True,
                    calendar_id=calendar.id,
                    targets=[
                        pb.SlaTargetSpec(
                            target=pb.SLA_TARGET_FIRST_RESPONSE,
                            clock=pb.CLOCK_KIND_BUSINESS,
                            duration=Duration(seconds=4 * 3600),
                        ),
                        pb.SlaTargetSpec(
                            target=pb.SLA_TARGET_NEXT_RESPONSE,
                            clock=pb.CLOCK_KIND_WALL,
                            duration=Duration(seconds=8 * 3600),
                        ),
                        pb.SlaTargetSpec(
                            target=pb.SLA_TARGET_RESOLUTION,
                            clock=pb.CLOCK_KIND_WALL,
                            duration=Duration(seconds=3 * 86400),
                        ),
                    ],
                )
            ),
            metadata=md,
        )
    ).policy
    for condition in (
        pb.RuleCondition(sentiment_below=-0.3),
        pb.RuleCondition(min_author_followers=10_000),
    ):
        await stubs.config.CreateRoutingRule(
            pb.CreateRoutingRuleRequest(
                rule=pb.RoutingRule(
                    name="mentions become tickets",
                    enabled=True,
                    triggers=[pb.RULE_TRIGGER_MENTION_RECEIVED],
                    condition=condition,
                    actions=[pb.RuleAction(kind=pb.RULE_ACTION_KIND_OPEN_TICKET)],
                )
            ),
            metadata=md,
        )
    email = f"{stubs.tenant}@example.com"
    contact_id = await stubs.new_contact(email=email)
    tickets = [(await stubs.new_ticket(contact_id)).id for _ in range(3)]

    async def say(ticket_id: str, author: Any, visibility: Any = pb.VISIBILITY_PUBLIC) -> str:
        message = pb.Message(author_type=author, visibility=visibility, body="hello")
        response = await stubs.tickets.AddMessage(
            pb.AddMessageRequest(ticket_id=ticket_id, message=message), metadata=md
        )
        return str(response.message.id)

    agent_message = await say(tickets[0], pb.AUTHOR_TYPE_AGENT)
    customer_message = await say(tickets[0], pb.AUTHOR_TYPE_CUSTOMER)
    bot_message = await say(tickets[0], pb.AUTHOR_TYPE_BOT, pb.VISIBILITY_INTERNAL)
    closed = (await stubs.new_ticket(contact_id)).id
    for status in (pb.TICKET_STATUS_RESOLVED, pb.TICKET_STATUS_CLOSED):
        await stubs.tickets.TransitionTicket(
            pb.TransitionTicketRequest(id=closed, status=status), metadata=md
        )
    surveys = [
        (
            await stubs.surveys.SendSurvey(pb.SendSurveyRequest(ticket_id=ticket), metadata=md)
        ).survey.id
        for ticket in (tickets[0], tickets[1], tickets[1], tickets[2], closed)
    ]
    return World(
        stubs=stubs,
        email=email,
        contact_id=contact_id,
        tickets=tickets,
        closed_ticket=closed,
        agent_message=agent_message,
        customer_message=customer_message,
        bot_message=bot_message,
        surveys=surveys,
        calendar_id=calendar.id,
        policy_id=policy.id,
    )


@pytest.fixture
async def world(desk: DeskUnderTest) -> World:
    """A fresh tenant for one test, seeded with real ids."""
    return await _build_world(desk)


@pytest.fixture(scope="module")
async def refusing_world(desk: DeskUnderTest) -> World:
    """One seeded tenant for the tests of requests that must be refused (they write nothing)."""
    return await _build_world(desk)


# -- strategies ---------------------------------------------------------------------------------
#
# A request is drawn field by field. Most fields take a plausible value (a real id, a defined enum
# number, a text within its limits, a recent time), so that most requests get past validation
# into the use cases; one or two fields of some requests take a wild value instead (unspecified or
# out-of-range enum numbers, blank or huge text, random ids, times far in the past or future,
# missing messages, broken lists).


class _Fields:
    """Draws the fields of one message: plausible values, except for the few chosen as wild."""

    def __init__(self, draw: st.DrawFn, names: Sequence[str], wild: bool | None = None) -> None:
        self._draw = draw
        self._names = frozenset(names)
        some = st.frozensets(st.sampled_from(sorted(names)), min_size=1, max_size=2)
        choice = {None: st.one_of(st.just(frozenset[str]()), some), True: some, False: None}[wild]
        self._wild: frozenset[str] = frozenset() if choice is None else draw(choice)

    def is_wild(self, name: str) -> bool:
        assert name in self._names, name
        return name in self._wild

    def __call__(self, name: str, plausible: st.SearchStrategy[T], wild: st.SearchStrategy[T]) -> T:
        return self._draw(wild if self.is_wild(name) else plausible)


_huge = st.sampled_from(
    [65, 101, 129, 201, 257, 301, 1001, 2049, 5001, 10_001, 20_001, 120_000]
).map(lambda n: "x" * n)
# Printable text: control and format characters are refused by some of the service's own checks.
_printable = st.characters(exclude_categories=("Cc", "Cf", "Cs"))
_words = st.text(_printable, min_size=1, max_size=60).filter(lambda text: bool(text.strip()))
_wild_text = st.one_of(st.just(""), st.just(" \t\n"), _huge, st.text())
_wild_id = st.one_of(st.just(""), st.text(max_size=70), _huge)
_tag = st.text(_printable, min_size=1, max_size=20).filter(lambda text: bool(text.strip()))
_wild_tags: st.SearchStrategy[list[str]] = st.one_of(
    st.just(["same", "same"]),
    st.just([""]),
    st.just(["x" * 65]),
    st.just([f"t{i}" for i in range(51)]),
)


def _defined(low: int, high: int) -> st.SearchStrategy[Any]:
    """Defined enum numbers (typed Any: the stubs type each enum as a NewType of int)."""
    return st.integers(low, high)


def _wild_enum(top: int) -> st.SearchStrategy[Any]:
    """The unspecified 0, numbers past the last defined one, and negative ones."""
    return st.one_of(st.just(0), st.integers(top + 1, top + 30), st.integers(-(2**31), -1))


def _relative(low: timedelta, high: timedelta) -> st.SearchStrategy[Timestamp]:
    """Times relative to when the example runs."""
    return st.builds(
        lambda delta: _stamp(datetime.now(UTC) + delta),
        st.timedeltas(min_value=low, max_value=high),
    )


_recent = _relative(timedelta(days=-30), timedelta(seconds=-1))
_any_time = st.datetimes(
    min_value=datetime(1, 1, 1),
    max_value=datetime(9999, 12, 31, 23, 59, 59),
    timezones=st.just(UTC),
).map(_stamp)
_edge_times = st.sampled_from(
    [
        Timestamp(seconds=-62135596800),  # 0001-01-01T00:00:00Z, the earliest valid Timestamp
        Timestamp(seconds=253402300799, nanos=999_999_999),  # the last instant of 9999
        Timestamp(),  # the epoch
        Timestamp(seconds=4102444800),  # 2100
    ]
)
_wild_time: st.SearchStrategy[Timestamp | None] = st.one_of(
    st.none(),
    _any_time,
    _edge_times,
    _relative(timedelta(minutes=6), timedelta(days=1000)),
    _relative(timedelta(days=-5000), timedelta(days=-367)),
)


def _maybe(strategy: st.SearchStrategy[Timestamp]) -> st.SearchStrategy[Timestamp | None]:
    return st.one_of(st.none(), strategy)


def _set_time(message: ProtoMessage, name: str, value: Timestamp | None) -> None:
    if value is not None:
        getattr(message, name).CopyFrom(value)


def _md(world: World) -> st.SearchStrategy[Metadata]:
    """The tenant's metadata; once in a while none at all (UNAUTHENTICATED)."""
    return st.sampled_from([world.md] * 7 + [()])


@st.composite
def _interaction(draw: st.DrawFn, wild: bool | None = False) -> pb.Interaction:
    f = _Fields(draw, ("kind", "channel", "occurred_time", "reference", "note"), wild)
    interaction = pb.Interaction(
        kind=f("kind", _defined(1, 6), _wild_enum(6)),
        channel=f("channel", _defined(0, 8), _wild_enum(8).filter(bool)),
        reference=f("reference", st.text(max_size=40), _huge),
        note=f("note", st.text(max_size=40), _huge),
    )
    occurred = f("occurred_time", _relative(timedelta(days=-400), timedelta(0)), _wild_time)
    _set_time(interaction, "occurred_time", occurred)
    return interaction


_TICKET_FIELDS = (
    "type",
    "channel",
    "priority",
    "subject",
    "description",
    "assignee_id",
    "team_id",
    "tags",
    "category",
    "product",
    "first_touch_time",
)


@st.composite
def _ticket(draw: st.DrawFn, world: World, wild: bool | None) -> pb.Ticket:
    f = _Fields(draw, _TICKET_FIELDS, wild)
    ticket = pb.Ticket(
        type=f("type", _defined(1, 5), _wild_enum(5)),
        channel=f("channel", _defined(1, 8), _wild_enum(8)),
        priority=f("priority", _defined(0, 4), _wild_enum(4).filter(bool)),
        subject=f("subject", _words, _wild_text),
        description=f("description", st.text(max_size=200), _huge.filter(lambda t: len(t) > 20000)),
        assignee_id=f("assignee_id", st.sampled_from(["", *AGENTS]), _wild_id),
        team_id=f("team_id", st.sampled_from(["", *TEAMS]), _wild_id),
        tags=f("tags", st.lists(_tag, max_size=4, unique=True), _wild_tags),
        category=f("category", st.text(max_size=30), _huge),
        product=f("product", st.text(max_size=30), _huge),
    )
    first_touch = f("first_touch_time", _maybe(_recent), _wild_time)
    _set_time(ticket, "first_touch_time", first_touch)
    return ticket


@st.composite
def _create_ticket(draw: st.DrawFn, world: World) -> pb.CreateTicketRequest:
    names = ("ticket", "requester", "first_message", "interactions", "request_id")
    f = _Fields(draw, names)
    request = pb.CreateTicketRequest(
        ticket=draw(_ticket(world, f.is_wild("ticket"))),
        first_message=f("first_message", st.text(max_size=200), _huge),
        interactions=f(
            "interactions",
            st.lists(_interaction(), max_size=3),
            st.one_of(
                st.lists(_interaction(wild=True), min_size=1, max_size=2),
                st.lists(_interaction(), min_size=51, max_size=51),
            ),
        ),
        # Reused keys: the same request again returns the first ticket; another one is refused.
        request_id=f("request_id", st.sampled_from(["", "", "", "same-1"]), _huge),
    )
    # Exactly one requester: the request-level rule "ticket.requester_required" fails on its own
    # (test_request_level_violation_is_invalid_argument), and would hide everything else.
    by_identity = draw(st.booleans())
    if not by_identity:
        request.ticket.contact_id = f("requester", st.just(world.contact_id), _wild_id.filter(bool))
        return request
    identity = pb.RequesterIdentity(
        kind="email", value=draw(st.sampled_from([world.email, world.email.upper()]))
    )
    if f.is_wild("requester"):
        identity = pb.RequesterIdentity(
            kind=draw(st.sampled_from(["email", "phone", "social", "fax", ""])),
            value=draw(
                st.one_of(st.sampled_from(["+49 30 1234567", "nobody@example.com"]), _wild_text)
            ),
            network=draw(st.one_of(st.sampled_from(["", "x", "instagram"]), _wild_text)),
        )
    request.requester_identity.CopyFrom(identity)
    return request


@st.composite
def _update_ticket(draw: st.DrawFn, world: World) -> pb.UpdateTicketRequest:
    f = _Fields(draw, ("id", "ticket", "update_mask", "expected_version"))
    ticket = draw(_ticket(world, f.is_wild("ticket")))
    ticket.id = f("id", st.sampled_from([*world.tickets, world.closed_ticket]), _wild_id)
    paths = f(
        "update_mask",
        st.lists(st.sampled_from(UPDATABLE), min_size=1, max_size=4),
        st.one_of(
            st.just([]),
            st.lists(st.sampled_from(["status", "version", "sla", "tags.0", "id", ""]), min_size=1),
            st.lists(st.text(max_size=20), min_size=1, max_size=3),
        ),
    )
    return pb.UpdateTicketRequest(
        ticket=ticket,
        update_mask=FieldMask(paths=paths),
        expected_version=f(
            "expected_version",
            st.one_of(st.just(0), st.integers(1, 8)),
            st.integers(-(2**63), -1),
        ),
    )


@st.composite
def _transition(draw: st.DrawFn, world: World) -> pb.TransitionTicketRequest:
    f = _Fields(draw, ("id", "status", "reason", "expected_version"))
    return pb.TransitionTicketRequest(
        id=f("id", st.sampled_from([*world.tickets, world.closed_ticket]), _wild_id),
        status=f("status", _defined(1, 6), _wild_enum(6)),
        reason=f("reason", st.text(max_size=100), _huge.filter(lambda t: len(t) > 1000)),
        expected_version=f(
            "expected_version",
            st.one_of(st.just(0), st.integers(1, 8)),
            st.integers(-(2**63), -1),
        ),
    )


@st.composite
def _add_message(draw: st.DrawFn, world: World) -> pb.AddMessageRequest:
    names = (
        "ticket_id",
        "author_type",
        "author_id",
        "visibility",
        "channel",
        "body",
        "send_time",
        "request_id",
    )
    f = _Fields(draw, names)
    message = pb.Message(
        author_type=f("author_type", _defined(1, 3), _wild_enum(3)),
        author_id=f("author_id", st.text(max_size=30), _huge.filter(lambda t: len(t) > 128)),
        visibility=f("visibility", _defined(1, 2), _wild_enum(2)),
        channel=f("channel", _defined(0, 8), _wild_enum(8).filter(bool)),
        body=f("body", _words, st.one_of(st.just(""), _huge.filter(lambda t: len(t) > 20000))),
    )
    plausible_time = _maybe(_relative(timedelta(days=-10), timedelta(days=1)))
    _set_time(message, "send_time", f("send_time", plausible_time, _wild_time))
    return pb.AddMessageRequest(
        ticket_id=f("ticket_id", st.sampled_from([*world.tickets, world.closed_ticket]), _wild_id),
        message=message,
        request_id=f(
            "request_id",
            st.sampled_from(["", "", "m-1", "m-2"]),
            _huge.filter(lambda t: len(t) > 256),
        ),
    )


@st.composite
def _receipt(draw: st.DrawFn, world: World) -> pb.RecordReceiptRequest:
    f = _Fields(draw, ("ticket_id", "message_id", "kind", "time"))
    messages = [world.agent_message, world.customer_message, world.bot_message]
    request = pb.RecordReceiptRequest(
        ticket_id=f(
            "ticket_id", st.just(world.tickets[0]), st.one_of(st.just(world.tickets[1]), _wild_id)
        ),
        message_id=f("message_id", st.sampled_from(messages), _wild_id),
        kind=f("kind", _defined(1, 2), _wild_enum(2)),
    )
    plausible_time = _relative(timedelta(minutes=-2), timedelta(minutes=1))
    _set_time(request, "time", f("time", plausible_time, _wild_time))
    return request


_ZONES = sorted(zoneinfo.available_timezones())
_ODD_ZONES = [
    "Mars/Olympus",
    "../../etc/passwd",
    "Europe",
    "Europe/",
    "/UTC",
    "zone.tab",
    "tzdata.zi",
    "posixrules",
    "Factory",
    "UTC\x00",
    "utc",
    "x" * 65,
]
_interval = st.tuples(st.integers(1, 7), st.integers(0, 1439), st.integers(1, 720)).map(
    lambda t: pb.OpeningInterval(weekday=t[0], start_minute=t[1], end_minute=min(1440, t[1] + t[2]))
)


@st.composite
def _opening_hours(draw: st.DrawFn) -> list[pb.OpeningInterval]:
    """Intervals that do not overlap (some adjacent: split shifts), on a few weekdays."""
    intervals = []
    for day in draw(st.sets(st.integers(1, 7), min_size=1, max_size=7)):
        cuts = sorted(draw(st.sets(st.integers(0, 1440), min_size=2, max_size=6)))
        shared = draw(st.booleans())  # adjacent intervals share their boundary
        step = 1 if shared else 2
        for start, end in zip(cuts[::step], cuts[1::step], strict=False):
            intervals.append(pb.OpeningInterval(weekday=day, start_minute=start, end_minute=end))
    return intervals


_wild_interval = st.builds(
    pb.OpeningInterval,
    weekday=st.integers(-1, 8),
    start_minute=st.integers(-2, 1442),
    end_minute=st.integers(-2, 1442),
)


@st.composite
def _calendar(draw: st.DrawFn) -> pb.BusinessCalendar:
    f = _Fields(draw, ("name", "timezone", "intervals", "holidays", "holiday_rule"))
    country, subdivision = f(
        "holiday_rule",
        st.sampled_from(
            [
                ("", ""),
                ("DE", ""),
                ("DE", "BY"),
                ("de", " by"),
                ("US", "CA"),
                ("GB", ""),
                ("JP", ""),
            ]
        ),
        st.one_of(
            st.sampled_from(
                [("", "BY"), ("XX", ""), ("DE", "ZZ"), ("de", "by"), ("DEU", "Bayern")]
            ),
            st.tuples(st.text(max_size=10), st.text(max_size=18)),
        ),
    )
    return pb.BusinessCalendar(
        name=f("name", _words, _wild_text),
        timezone=f(
            "timezone", st.sampled_from(_ZONES), st.one_of(st.sampled_from(_ODD_ZONES), st.text())
        ),
        intervals=f(
            "intervals",
            st.one_of(_opening_hours(), st.lists(_interval, min_size=1, max_size=4)),
            st.one_of(
                st.just([]),
                st.lists(_wild_interval, min_size=1, max_size=4),
                st.lists(_interval, min_size=101, max_size=101),
            ),
        ),
        holidays=f(
            "holidays",
            st.lists(
                st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31)).map(
                    date.isoformat
                ),
                max_size=4,
            ),
            st.lists(
                st.one_of(
                    st.sampled_from(["2026-02-30", "0000-01-01", "2026-13-01", "26-1-1"]),
                    st.from_regex(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}\Z"),
                    st.text(max_size=12),
                ),
                min_size=1,
                max_size=3,
            ),
        ),
        holiday_country=country,
        holiday_subdivision=subdivision,
    )


_target_spec = st.builds(
    pb.SlaTargetSpec,
    target=_defined(1, 3),
    clock=_defined(1, 2),
    duration=st.builds(
        Duration,
        seconds=st.one_of(
            st.sampled_from([1, 60, 3600, 86400, 31536000]), st.integers(1, 31536000)
        ),
    ),
)
_wild_target_spec = st.builds(
    pb.SlaTargetSpec,
    target=st.one_of(_defined(1, 3), _wild_enum(3)),
    clock=st.one_of(_defined(1, 2), _wild_enum(2)),
    duration=st.builds(
        Duration,
        seconds=st.one_of(st.sampled_from([-5, 0, 31536001]), st.integers(-(2**40), 2**40)),
        nanos=st.sampled_from([0, 1, -1, 999_999_999]),
    ),
)


@st.composite
def _policy(draw: st.DrawFn, world: World) -> pb.SlaPolicy:
    names = (
        "name",
        "position",
        "priorities",
        "types",
        "channels",
        "customer_tiers",
        "calendar_id",
        "targets",
        "pause_statuses",
        "at_risk_fraction",
    )
    f = _Fields(draw, names)
    tiers = ["standard", "silver", "gold", "platinum"]
    return pb.SlaPolicy(
        name=f("name", _words, _wild_text),
        position=f("position", st.integers(0, 100), st.integers(-(2**31), -1)),
        priorities=f(
            "priorities",
            st.lists(_defined(1, 4), max_size=2, unique=True),
            st.lists(_wild_enum(4), min_size=1, max_size=2),
        ),
        types=f(
            "types",
            st.lists(_defined(1, 5), max_size=2, unique=True),
            st.lists(_wild_enum(5), min_size=1, max_size=2),
        ),
        channels=f(
            "channels",
            st.lists(_defined(1, 8), max_size=2, unique=True),
            st.lists(_wild_enum(8), min_size=1, max_size=2),
        ),
        customer_tiers=f(
            "customer_tiers",
            st.lists(st.sampled_from(tiers), max_size=2, unique=True),
            st.lists(st.one_of(st.just("GOLD"), st.text(max_size=10)), min_size=1, max_size=2),
        ),
        calendar_id=f(
            "calendar_id", st.sampled_from([world.calendar_id, ""]), _wild_id.filter(bool)
        ),
        targets=f(
            "targets",
            st.lists(_target_spec, min_size=1, max_size=3, unique_by=lambda spec: spec.target),
            st.one_of(
                st.just([]),
                st.lists(_wild_target_spec, min_size=1, max_size=4),
                st.lists(_target_spec, min_size=2, max_size=3),
            ),
        ),
        pause_statuses=f(
            "pause_statuses",
            _PAUSING,
            st.lists(st.integers(-1, 9), min_size=1, max_size=3),
        ),
        at_risk_fraction=f(
            "at_risk_fraction",
            st.one_of(st.just(0.0), st.floats(0.0, 0.99)),
            st.one_of(
                st.sampled_from([float("nan"), float("inf"), -0.1, 1.0]), st.floats(min_value=1.0)
            ),
        ),
        enabled=draw(st.booleans()),
    )


_PAUSING: st.SearchStrategy[Any] = st.sampled_from([[], [3], [4], [3, 4]])
_CONDITION_FIELDS = (
    "types",
    "channels",
    "priorities",
    "statuses",
    "customer_tiers",
    "tags_any",
    "categories",
    "products",
    "team_ids",
    "sentiment",
    "min_author_followers",
    "sla_targets",
    "time_window",
    "weekdays",
    "timezone",
    "text_contains_any",
    "escalated",
)


@st.composite
def _condition(draw: st.DrawFn, triggers: Sequence[int], wild: bool) -> pb.RuleCondition:
    f = _Fields(draw, _CONDITION_FIELDS, wild)
    # Only a few conditions are set, so that rules match now and then; SLA targets only on rules
    # of SLA triggers.
    settable: tuple[str, ...] = _CONDITION_FIELDS
    if not triggers or not set(triggers) <= {
        pb.RULE_TRIGGER_SLA_AT_RISK,
        pb.RULE_TRIGGER_SLA_BREACHED,
    }:
        settable = tuple(name for name in _CONDITION_FIELDS if name != "sla_targets")
    chosen = draw(st.frozensets(st.sampled_from(settable), max_size=3))

    def field(
        name: str, plausible: st.SearchStrategy[T], empty: T, wild: st.SearchStrategy[T]
    ) -> T:
        if f.is_wild(name):
            return draw(wild)
        return draw(plausible) if name in chosen else empty

    def values(plausible: st.SearchStrategy[str]) -> st.SearchStrategy[list[str]]:
        return st.lists(plausible, min_size=1, max_size=3)

    wild_values = st.one_of(
        st.just([""]), st.just(["x" * 201]), st.lists(st.text(max_size=5), min_size=51, max_size=51)
    )
    condition = pb.RuleCondition(
        types=field(
            "types",
            st.lists(_defined(1, 5), min_size=1, max_size=2),
            [],
            st.lists(_wild_enum(5), min_size=1),
        ),
        channels=field(
            "channels",
            st.lists(_defined(1, 8), min_size=1, max_size=2),
            [],
            st.lists(_wild_enum(8), min_size=1),
        ),
        priorities=field(
            "priorities",
            st.lists(_defined(1, 4), min_size=1, max_size=2),
            [],
            st.lists(_wild_enum(4), min_size=1),
        ),
        statuses=field(
            "statuses",
            st.lists(_defined(1, 6), min_size=1, max_size=2),
            [],
            st.lists(_wild_enum(6), min_size=1),
        ),
        customer_tiers=field(
            "customer_tiers", values(st.sampled_from(["standard", "gold"])), [], wild_values
        ),
        tags_any=field("tags_any", values(st.sampled_from(["vip", "billing"])), [], wild_values),
        categories=field("categories", values(_words), [], wild_values),
        products=field("products", values(_words), [], wild_values),
        team_ids=field("team_ids", values(st.sampled_from(TEAMS)), [], wild_values),
        sla_targets=field(
            "sla_targets",
            st.lists(_defined(1, 3), min_size=1, max_size=2),
            [],
            st.lists(_wild_enum(3), min_size=1),
        ),
        weekdays=field(
            "weekdays",
            st.lists(st.integers(1, 7), min_size=1, max_size=3),
            [],
            st.lists(st.integers(-3, 12), min_size=1),
        ),
        timezone=field(
            "timezone",
            st.sampled_from(["UTC", "Asia/Kathmandu", "Pacific/Kiritimati"]),
            "",
            st.one_of(st.sampled_from(_ODD_ZONES), st.text()),
        ),
        text_contains_any=field(
            "text_contains_any",
            values(st.sampled_from(["order", "ORDER", "airline"])),
            [],
            wild_values,
        ),
    )
    below, above = field(
        "sentiment",
        st.tuples(st.floats(-1.0, 1.0), st.none() | st.floats(-1.0, 1.0)),
        (None, None),
        st.tuples(st.floats(allow_nan=True), st.floats(allow_nan=True)),
    )
    window = field(
        "time_window",
        st.tuples(st.integers(0, 1439), st.integers(0, 1440)),
        (None, None),
        st.tuples(st.none() | st.integers(-5, 1445), st.none() | st.integers(-5, 1445)),
    )
    optional: dict[str, Any] = {
        "sentiment_below": below,
        "sentiment_above": above,
        "min_author_followers": field(
            "min_author_followers", st.integers(0, 20_000), None, st.integers(-(2**63), -1)
        ),
        "local_time_from_minute": window[0],
        "local_time_to_minute": window[1],
        "escalated": field("escalated", st.booleans(), None, st.booleans()),
    }
    for name, value in optional.items():
        if value is not None:
            setattr(condition, name, value)
    return condition


_ACTION_KINDS = (
    pb.RULE_ACTION_KIND_ASSIGN_TEAM,
    pb.RULE_ACTION_KIND_ASSIGN_AGENT,
    pb.RULE_ACTION_KIND_SET_PRIORITY,
    pb.RULE_ACTION_KIND_ADD_TAG,
    pb.RULE_ACTION_KIND_ESCALATE,
)
_ONLY_ON_MENTIONS = [pb.RULE_TRIGGER_MENTION_RECEIVED]


@st.composite
def _plausible_actions(draw: st.DrawFn, triggers: Sequence[int]) -> list[pb.RuleAction]:
    """Actions a rule on ``triggers`` may take together: one per effect, one team."""
    if list(triggers) == _ONLY_ON_MENTIONS and draw(st.booleans()):
        return [
            pb.RuleAction(kind=pb.RULE_ACTION_KIND_OPEN_TICKET, ticket_type=draw(_defined(0, 5)))
        ]
    kinds = draw(st.lists(st.sampled_from(_ACTION_KINDS), min_size=1, max_size=3, unique=True))
    if pb.RULE_ACTION_KIND_ASSIGN_TEAM in kinds and pb.RULE_ACTION_KIND_ASSIGN_AGENT in kinds:
        kinds.remove(pb.RULE_ACTION_KIND_ASSIGN_TEAM)
    team = draw(st.sampled_from(TEAMS))
    actions = []
    for kind in kinds:
        action = pb.RuleAction(kind=kind)
        if kind == pb.RULE_ACTION_KIND_ASSIGN_TEAM:
            action.team_id = team
        elif kind == pb.RULE_ACTION_KIND_ASSIGN_AGENT:
            action.team_id = team
            action.strategy = draw(_defined(1, 3))
            if action.strategy == pb.ASSIGN_STRATEGY_SKILL_MATCH:
                skills = st.lists(st.sampled_from(["de", "refunds", "fr"]), min_size=1, unique=True)
                action.required_skills.extend(draw(skills))
        elif kind == pb.RULE_ACTION_KIND_SET_PRIORITY:
            action.priority = draw(_defined(1, 4))
        elif kind == pb.RULE_ACTION_KIND_ADD_TAG:
            action.tag = draw(_tag)
        elif draw(st.booleans()):  # ESCALATE, to the team or in place
            action.team_id = team
        actions.append(action)
    return actions


_wild_action = st.builds(
    pb.RuleAction,
    kind=st.one_of(_defined(1, 6), _wild_enum(6)),
    team_id=st.one_of(st.sampled_from(TEAMS), _wild_id),
    strategy=st.one_of(_defined(0, 3), _wild_enum(3)),
    required_skills=st.lists(st.text(max_size=5), max_size=2),
    priority=st.one_of(_defined(0, 4), _wild_enum(4)),
    tag=st.one_of(st.just(""), _tag, _huge),
    ticket_type=st.one_of(_defined(0, 5), _wild_enum(5)),
)


@st.composite
def _rule(draw: st.DrawFn) -> pb.RoutingRule:
    f = _Fields(draw, ("name", "position", "triggers", "condition", "actions"))
    triggers = f(
        "triggers",
        st.one_of(
            st.just(_ONLY_ON_MENTIONS),
            st.lists(_defined(1, 5), min_size=1, max_size=2, unique=True),
        ),
        st.one_of(
            st.just([]),
            st.lists(_wild_enum(5), min_size=1, max_size=2),
            st.lists(_defined(1, 5), min_size=6, max_size=6),
        ),
    )
    return pb.RoutingRule(
        name=f("name", _words, _wild_text),
        position=f("position", st.integers(0, 100), st.integers(-(2**31), -1)),
        enabled=draw(st.booleans()),
        triggers=triggers,
        condition=draw(_condition(triggers, f.is_wild("condition"))),
        actions=f(
            "actions",
            _plausible_actions(triggers),
            st.one_of(
                st.just([]),
                st.lists(_wild_action, min_size=1, max_size=3),
                st.lists(_plausible_actions(triggers), min_size=4, max_size=4).map(
                    lambda lists: [action for actions in lists for action in actions]
                ),
            ),
        ),
        stop_processing=draw(st.booleans()),
    )


_MENTION_FIELDS = (
    "network",
    "post_id",
    "author_handle",
    "author_followers",
    "text",
    "url",
    "posted_time",
    "in_reply_to",
    "brand",
)


@st.composite
def _mention(draw: st.DrawFn, wild: bool | None = None) -> pb.Mention:
    f = _Fields(draw, _MENTION_FIELDS, wild)
    mention = pb.Mention(
        network=f(
            "network",
            st.sampled_from(["x", "instagram", "reddit"]),
            # "mastodon": see test_refused_mention_author_is_blamed_on_a_field_of_the_request
            st.one_of(st.sampled_from(["", "X", "bad net", "x" * 33, "mastodon"]), st.text()),
        ),
        post_id=f(
            "post_id",
            st.one_of(st.sampled_from(["1", "2", "3"]), _words),
            st.one_of(st.sampled_from(["", " ", "\t"]), _huge.filter(lambda t: len(t) > 128)),
        ),
        author_handle=f(
            "author_handle",
            st.one_of(
                st.sampled_from(["@Traveller42", "bob", "@Anna_K"]),
                st.from_regex(r"\A@?[A-Za-z0-9_]{1,15}\Z"),
            ),
            st.one_of(st.sampled_from(["", "@", "  "]), _huge, st.text()),
        ),
        author_followers=f("author_followers", st.integers(0, 100_000), st.integers(-(2**63), -1)),
        text=f(
            "text",
            st.one_of(
                st.sampled_from(["Worst airline ever!!! :(", "love it", "", "meh @acme"]),
                st.text(max_size=280),
            ),
            _huge.filter(lambda t: len(t) > 10_000),
        ),
        url=f("url", st.sampled_from(["", "https://x.com/a/status/1"]), _huge),
        in_reply_to=f("in_reply_to", st.sampled_from(["", "1"]), _huge),
        brand=f("brand", st.sampled_from(["", "acme", "  rival "]), _huge),
    )
    _set_time(mention, "posted_time", f("posted_time", _recent, _wild_time))
    return mention


_SCORES = {
    "csat": (1, 5),
    "nps": (0, 10),
    "effort": (1, 7),
    "perceived_wait_minutes": (0, 525600),
    "expected_wait_minutes": (0, 525600),
    "purchase_intent": (0, 10),
    "loyalty": (0, 10),
}


@st.composite
def _answer(draw: st.DrawFn, wild: bool) -> pb.SurveyAnswer:
    f = _Fields(draw, (*_SCORES, "comment", "empty"), wild)
    answer = pb.SurveyAnswer()
    if f.is_wild("empty"):
        return answer
    answered = draw(st.frozensets(st.sampled_from(sorted(_SCORES)), min_size=1, max_size=4))
    for name, (low, high) in _SCORES.items():
        out_of_range = st.one_of(st.integers(high + 1, 2**31 - 1), st.integers(-(2**31), low - 1))
        if f.is_wild(name):
            setattr(answer, name, draw(out_of_range))
        elif name in answered:
            setattr(answer, name, draw(st.integers(low, high)))
    answer.comment = f(
        "comment",
        st.one_of(
            st.just(""), st.sampled_from(["Took forever!!", "great :)"]), st.text(max_size=200)
        ),
        _huge.filter(lambda t: len(t) > 5000),
    )
    return answer


# -- the properties -----------------------------------------------------------------------------


@_fuzz(22)
@given(data=st.data())
async def test_create_ticket(world: World, data: st.DataObject) -> None:
    request = data.draw(_create_ticket(world), label="request")
    md = data.draw(_md(world), label="metadata")
    created = await _answers_cleanly(
        world.stubs.tickets.CreateTicket(request, metadata=md, timeout=TIMEOUT), request
    )
    if created is not None:
        got = await world.stubs.tickets.GetTicket(
            pb.GetTicketRequest(id=created.ticket.id), metadata=world.md, timeout=TIMEOUT
        )
        assert got.ticket == created.ticket


@_fuzz(15)
@given(data=st.data())
async def test_update_ticket(world: World, data: st.DataObject) -> None:
    request = data.draw(_update_ticket(world), label="request")
    await _answers_cleanly(
        world.stubs.tickets.UpdateTicket(request, metadata=world.md, timeout=TIMEOUT), request
    )


@_fuzz(12)
@given(data=st.data())
async def test_transition_ticket(world: World, data: st.DataObject) -> None:
    request = data.draw(_transition(world), label="request")
    await _answers_cleanly(
        world.stubs.tickets.TransitionTicket(request, metadata=world.md, timeout=TIMEOUT), request
    )


@_fuzz(15)
@given(data=st.data())
async def test_add_message(world: World, data: st.DataObject) -> None:
    request = data.draw(_add_message(world), label="request")
    md = data.draw(_md(world), label="metadata")
    added = await _answers_cleanly(
        world.stubs.tickets.AddMessage(request, metadata=md, timeout=TIMEOUT), request
    )
    if added is not None:
        listed = await world.stubs.tickets.ListMessages(
            pb.ListMessagesRequest(ticket_id=request.ticket_id, include_internal=True),
            metadata=world.md,
            timeout=TIMEOUT,
        )
        assert added.message.id in {m.id for m in listed.messages}


@_fuzz(12)
@given(data=st.data())
async def test_record_receipt(world: World, data: st.DataObject) -> None:
    request = data.draw(_receipt(world), label="request")
    await _answers_cleanly(
        world.stubs.tickets.RecordReceipt(request, metadata=world.md, timeout=TIMEOUT), request
    )


@_fuzz(18)
@given(data=st.data())
async def test_create_calendar(world: World, data: st.DataObject) -> None:
    request = pb.CreateCalendarRequest(calendar=data.draw(_calendar(), label="calendar"))
    config, md = world.stubs.config, world.md
    created = await _answers_cleanly(
        config.CreateCalendar(request, metadata=md, timeout=TIMEOUT), request
    )
    if created is None:
        return
    got = await config.GetCalendar(
        pb.GetCalendarRequest(id=created.calendar.id), metadata=md, timeout=TIMEOUT
    )
    assert got.calendar == created.calendar
    # Business time on the new calendar: the tenant's policy moves to it, a ticket is opened.
    policy = pb.SlaPolicy(
        id=world.policy_id,
        name="on the random calendar",
        enabled=True,
        calendar_id=created.calendar.id,
        targets=[
            pb.SlaTargetSpec(
                target=pb.SLA_TARGET_FIRST_RESPONSE,
                clock=pb.CLOCK_KIND_BUSINESS,
                duration=Duration(seconds=3600),
            )
        ],
    )
    update = pb.UpdateSlaPolicyRequest(policy=policy)
    moved = await _answers_cleanly(
        config.UpdateSlaPolicy(update, metadata=md, timeout=TIMEOUT), update
    )
    if moved is None:  # e.g. a calendar open too little to reach an hour of business time
        return
    opened = await world.stubs.tickets.CreateTicket(
        pb.CreateTicketRequest(
            ticket=pb.Ticket(
                type=pb.TICKET_TYPE_INCIDENT,
                channel=pb.CHANNEL_EMAIL,
                subject="x",
                contact_id=world.contact_id,
            )
        ),
        metadata=md,
        timeout=TIMEOUT,
    )
    assert opened.ticket.sla.calendar_id == created.calendar.id


@_fuzz(15)
@given(data=st.data())
async def test_create_sla_policy(world: World, data: st.DataObject) -> None:
    request = pb.CreateSlaPolicyRequest(policy=data.draw(_policy(world), label="policy"))
    created = await _answers_cleanly(
        world.stubs.config.CreateSlaPolicy(request, metadata=world.md, timeout=TIMEOUT), request
    )
    if created is None:
        return
    # Tickets open under whatever policy was accepted.
    ticket = pb.Ticket(
        type=data.draw(_defined(1, 5)),
        channel=data.draw(_defined(1, 8)),
        priority=data.draw(_defined(0, 4)),
        subject="x",
        contact_id=world.contact_id,
    )
    await world.stubs.tickets.CreateTicket(
        pb.CreateTicketRequest(ticket=ticket), metadata=world.md, timeout=TIMEOUT
    )


@_fuzz(15)
@given(data=st.data())
async def test_create_routing_rule(world: World, data: st.DataObject) -> None:
    request = pb.CreateRoutingRuleRequest(rule=data.draw(_rule(), label="rule"))
    created = await _answers_cleanly(
        world.stubs.config.CreateRoutingRule(request, metadata=world.md, timeout=TIMEOUT), request
    )
    if created is None:
        return
    # The rules accepted so far run on a new ticket, on an update of it and on a new mention.
    ticket = pb.Ticket(
        type=data.draw(_defined(1, 5)),
        channel=data.draw(_defined(1, 8)),
        priority=data.draw(_defined(0, 4)),
        subject=data.draw(st.sampled_from(["my order", "airline lost my bag", "x"])),
        contact_id=world.contact_id,
        tags=data.draw(st.lists(st.sampled_from(["vip", "billing"]), unique=True)),
    )
    opened = await world.stubs.tickets.CreateTicket(
        pb.CreateTicketRequest(ticket=ticket), metadata=world.md, timeout=TIMEOUT
    )
    opened.ticket.priority = pb.PRIORITY_URGENT
    await world.stubs.tickets.UpdateTicket(
        pb.UpdateTicketRequest(ticket=opened.ticket, update_mask=FieldMask(paths=["priority"])),
        metadata=world.md,
        timeout=TIMEOUT,
    )
    mention = data.draw(_mention(wild=False), label="mention")
    mention.post_id = f"rule-{created.rule.id}"
    await world.stubs.social.IngestMention(
        pb.IngestMentionRequest(mention=mention), metadata=world.md, timeout=TIMEOUT
    )


@_fuzz(15)
@given(data=st.data())
async def test_ingest_mention(world: World, data: st.DataObject) -> None:
    request = pb.IngestMentionRequest(mention=data.draw(_mention(), label="mention"))
    ingested = await _answers_cleanly(
        world.stubs.social.IngestMention(request, metadata=world.md, timeout=TIMEOUT), request
    )
    if ingested is not None and ingested.mention.ticket_id:
        await world.stubs.tickets.GetTicket(
            pb.GetTicketRequest(id=ingested.mention.ticket_id), metadata=world.md, timeout=TIMEOUT
        )


@_fuzz(10)
@given(data=st.data())
async def test_ingest_mentions_stream(world: World, data: st.DataObject) -> None:
    wild = data.draw(st.sampled_from([False, False, None]), label="wild")
    batches = data.draw(
        st.lists(
            st.builds(
                pb.IngestMentionsRequest,
                mentions=st.lists(_mention(wild), min_size=wild is not False, max_size=3),
            ),
            max_size=3,
        ),
        label="batches",
    )
    await _answers_cleanly(
        world.stubs.social.IngestMentions(iter(batches), metadata=world.md, timeout=TIMEOUT),
        batches,
    )


@st.composite
def _answer_survey(draw: st.DrawFn, world: World) -> pb.AnswerSurveyRequest:
    f = _Fields(draw, ("survey_id", "answer"))
    return pb.AnswerSurveyRequest(
        survey_id=f("survey_id", st.sampled_from(world.surveys), _wild_id),
        answer=draw(_answer(f.is_wild("answer"))),
    )


@_fuzz(12)
@given(data=st.data())
async def test_answer_survey(world: World, data: st.DataObject) -> None:
    request = data.draw(_answer_survey(world), label="request")
    await _answers_cleanly(
        world.stubs.surveys.AnswerSurvey(request, metadata=world.md, timeout=TIMEOUT), request
    )


# -- bugs the properties found, pinned down -----------------------------------------------------


@pytest.mark.parametrize("requester", ["neither", "both"])
async def test_request_level_violation_is_invalid_argument(
    refusing_world: World, requester: str
) -> None:
    world = refusing_world
    request = pb.CreateTicketRequest(
        ticket=pb.Ticket(type=pb.TICKET_TYPE_INCIDENT, channel=pb.CHANNEL_EMAIL, subject="x")
    )
    if requester == "both":
        request.ticket.contact_id = world.contact_id
        request.requester_identity.CopyFrom(pb.RequesterIdentity(kind="email", value=world.email))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await world.stubs.tickets.CreateTicket(request, metadata=world.md, timeout=TIMEOUT)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.value.details()
    assert any(_violation_fields(refused.value))


# Timestamps outside 0001-01-01..9999-12-31, or with nanos outside 0..999,999,999, are not valid
# google.protobuf.Timestamp values; the wire format carries them all the same.
_INVALID_STAMPS = {
    "seconds-after-9999": Timestamp(seconds=253402300800),
    "seconds-before-0001": Timestamp(seconds=-62135596801),
    "negative-nanos": Timestamp(seconds=1_700_000_000, nanos=-1),
    "nanos-over-a-second": Timestamp(seconds=1_700_000_000, nanos=1_000_000_000),
}


@pytest.mark.parametrize("stamp", list(_INVALID_STAMPS), ids=list(_INVALID_STAMPS))
@pytest.mark.parametrize(
    "rpc", ["IngestMention", "CreateTicket", "AddMessage", "RecordReceipt", "LinkInteraction"]
)
async def test_invalid_timestamp_is_invalid_argument(
    refusing_world: World, rpc: str, stamp: str
) -> None:
    world = refusing_world
    time = _INVALID_STAMPS[stamp]
    tickets, md = world.stubs.tickets, world.md
    call: Awaitable[object]
    if rpc == "IngestMention":
        mention = pb.Mention(network="x", post_id="p", author_handle="a", posted_time=time)
        call = world.stubs.social.IngestMention(
            pb.IngestMentionRequest(mention=mention), metadata=md
        )
    elif rpc == "CreateTicket":
        ticket = pb.Ticket(
            type=pb.TICKET_TYPE_INCIDENT,
            channel=pb.CHANNEL_EMAIL,
            subject="x",
            contact_id=world.contact_id,
            first_touch_time=time,
        )
        call = tickets.CreateTicket(pb.CreateTicketRequest(ticket=ticket), metadata=md)
    elif rpc == "AddMessage":
        message = pb.Message(
            author_type=pb.AUTHOR_TYPE_AGENT,
            visibility=pb.VISIBILITY_PUBLIC,
            body="hi",
            send_time=time,
        )
        call = tickets.AddMessage(
            pb.AddMessageRequest(ticket_id=world.tickets[1], message=message), metadata=md
        )
    elif rpc == "RecordReceipt":
        call = tickets.RecordReceipt(
            pb.RecordReceiptRequest(
                ticket_id=world.tickets[0],
                message_id=world.agent_message,
                kind=pb.RECEIPT_KIND_DELIVERED,
                time=time,
            ),
            metadata=md,
        )
    else:
        interaction = pb.Interaction(kind=pb.INTERACTION_KIND_MISSED_CALL, occurred_time=time)
        call = tickets.LinkInteraction(
            pb.LinkInteractionRequest(ticket_id=world.tickets[1], interaction=interaction),
            metadata=md,
        )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.value.details()
    assert any(_violation_fields(refused.value))


async def test_refused_mention_author_is_blamed_on_a_field_of_the_request(
    refusing_world: World,
) -> None:
    mention = pb.Mention(
        network="mastodon",
        post_id=f"toot-{refusing_world.stubs.tenant}",
        author_handle="@Traveller42",
        text="Worst airline ever!!! :(",
        posted_time=_stamp(datetime.now(UTC) - timedelta(minutes=1)),
    )
    try:
        await refusing_world.stubs.social.IngestMention(
            pb.IngestMentionRequest(mention=mention), metadata=refusing_world.md, timeout=TIMEOUT
        )
    except grpc.aio.AioRpcError as error:
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
        fields = _violation_fields(error)
        assert fields, error.details()
        assert all(field.startswith("mention") for field in fields), fields


async def test_ticket_on_a_calendar_closed_for_years_is_not_internal(desk: DeskUnderTest) -> None:
    stubs = desk.stubs(new_tenant())
    today = datetime.now(UTC).date()
    next_monday = today + timedelta(days=7 - today.weekday())
    mondays = [(next_monday + timedelta(weeks=week)).isoformat() for week in range(170)]
    calendar = pb.BusinessCalendar(
        name="mondays, but never",
        timezone="UTC",
        intervals=[pb.OpeningInterval(weekday=1, start_minute=9 * 60, end_minute=17 * 60)],
        holidays=mondays,
    )

    async def step(name: str, call: Awaitable[R]) -> R | None:
        try:
            return await call
        except grpc.aio.AioRpcError as error:
            assert error.code() in CLIENT_ERRORS, (name, error.code(), error.details())
            return None

    created = await step(
        "CreateCalendar",
        stubs.config.CreateCalendar(pb.CreateCalendarRequest(calendar=calendar), metadata=stubs.md),
    )
    if created is None:
        return  # refusing such a calendar is one way to fix it
    policy = pb.SlaPolicy(
        name="business hours",
        enabled=True,
        calendar_id=created.calendar.id,
        targets=[
            pb.SlaTargetSpec(
                target=pb.SLA_TARGET_FIRST_RESPONSE,
                clock=pb.CLOCK_KIND_BUSINESS,
                duration=Duration(seconds=3600),
            )
        ],
    )
    if await step(
        "CreateSlaPolicy",
        stubs.config.CreateSlaPolicy(pb.CreateSlaPolicyRequest(policy=policy), metadata=stubs.md),
    ):
        await step("CreateTicket", stubs.new_ticket(await stubs.new_contact()))
