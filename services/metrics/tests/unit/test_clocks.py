"""A ticket's clocks from its events: the KPIS.md worked example and the rules around it."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from crm.servicedesk.v1 import events_pb2 as ev
from crm.servicedesk.v1 import servicedesk_pb2 as pb
from crm_metrics.domain.catalog import Definitions
from crm_metrics.domain.clocks import Settings, contributions, derive
from crm_metrics.domain.facts import CalendarDirectory
from crm_metrics.events import FactStore, apply, calendar_from_proto
from crm_platform.context import Actor, ActorType, CallContext
from crm_platform.events import Event

TENANT = "t1"
DAY = datetime(2026, 11, 18, tzinfo=UTC)  # a Wednesday
CALL = CallContext(TENANT, Actor(ActorType.SYSTEM, "test"))


def ts(at: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(at)
    return out


def at(hour: float) -> datetime:
    return DAY + timedelta(hours=hour)


def event(payload: Message, when: datetime, key: str = "c1") -> Event:
    return Event.of(payload, source="test", subject="s", key=key, call=CALL, time=when)


def calendar(open_from: int = 8, open_to: int = 20) -> pb.BusinessCalendar:
    return pb.BusinessCalendar(
        id="cal",
        name="Office",
        timezone="UTC",
        version=1,
        intervals=[
            pb.OpeningInterval(weekday=d, start_minute=open_from * 60, end_minute=open_to * 60)
            for d in range(1, 6)
        ],
    )


def ticket(
    status: int = pb.TICKET_STATUS_NEW,
    version: int = 1,
    channel: int = pb.CHANNEL_SOCIAL,
    created: float = 17,
    **extra: object,
) -> pb.Ticket:
    return pb.Ticket(
        id="T1",
        tenant_id=TENANT,
        type=pb.TICKET_TYPE_COMPLAINT,
        channel=channel,
        priority=pb.PRIORITY_NORMAL,
        status=status,
        subject="missed connection",
        contact_id="c1",
        assignee_id="alice",
        team_id="care",
        create_time=ts(at(created)),
        version=version,
        sla=pb.TicketSla(policy_id="p", policy_version=1, calendar_id="cal", calendar_version=1),
        **extra,  # type: ignore[arg-type]
    )


def message(mid: str, author: int, hour: float, public: bool = True) -> ev.MessageAdded:
    return ev.MessageAdded(
        message=pb.Message(
            id=mid,
            ticket_id="T1",
            author_type=author,
            visibility=pb.VISIBILITY_PUBLIC if public else pb.VISIBILITY_INTERNAL,
            body="x",
            send_time=ts(at(hour)),
        ),
        contact_id="c1",
    )


def worked_example() -> list[Event]:
    """KPIS.md: mention 09:00, ticket 17:00, human reply 19:00 delivered 19:00, SLA 4 h met."""
    mention = pb.Mention(
        id="m1",
        network="x",
        post_id="p1",
        author_handle="@ann",
        posted_time=ts(at(9)),
        sentiment=-0.6,
        ticket_id="T1",
        author_contact_id="c1",
    )
    return [
        event(ev.CalendarChanged(calendar=calendar()), at(0), key="cal"),
        event(ev.MentionReceived(mention=mention), at(9)),
        event(ev.TicketCreated(ticket=ticket(source_mention_id="m1")), at(17)),
        event(message("bot", pb.AUTHOR_TYPE_BOT, 17.01), at(17.01)),
        event(message("note", pb.AUTHOR_TYPE_AGENT, 18, public=False), at(18)),
        event(message("r1", pb.AUTHOR_TYPE_AGENT, 19), at(19)),
        event(
            ev.ReceiptRecorded(
                ticket_id="T1",
                contact_id="c1",
                message_id="r1",
                kind=pb.RECEIPT_KIND_DELIVERED,
                time=ts(at(19)),
            ),
            at(19),
        ),
        event(
            ev.SlaTargetMet(
                ticket_id="T1",
                contact_id="c1",
                target=pb.SLA_TARGET_FIRST_RESPONSE,
                due_time=ts(at(21)),
                met_time=ts(at(19)),
            ),
            at(19),
        ),
    ]


def clocks_of(events: list[Event], settings: Settings | None = None):  # type: ignore[no-untyped-def]
    settings = settings or Settings()
    calendars = CalendarDirectory()
    store = FactStore(calendars)
    for item in events:
        changes = apply(store, item, item.decode(), lambda _key: None)
        if changes.calendar is not None:
            calendars.put(item.tenant_id, changes.calendar)
    facts = store.tickets[(TENANT, "T1")]
    cal = calendars.get(TENANT, "cal", 1)
    return facts, derive(facts, cal, settings)


def test_worked_example_gives_an_eight_hour_perception_gap() -> None:
    _facts, clocks = clocks_of(worked_example())
    assert clocks.seconds("frt_business") == 2 * 3600
    assert clocks.seconds("customer_wait") == 10 * 3600
    assert clocks.seconds("perception_gap") == 8 * 3600
    assert clocks.sla_outcomes == {"first_response": "met"}
    assert {"sla_met", "expectation_breached", "green_inside_red_outside"} <= clocks.flags
    assert clocks.dims["wait_bucket"] == "4-12h"


def test_worked_example_names_the_events_behind_each_clock() -> None:
    events = worked_example()
    _facts, clocks = clocks_of(events)
    wait = clocks.clocks["customer_wait"]
    assert wait.start_events == (events[1].id,)  # the mention
    assert wait.end_events == (events[6].id,)  # the delivery receipt
    assert clocks.clocks["frt_business"].end_events == (events[5].id,)


def test_bot_replies_and_internal_notes_are_not_a_first_response_but_v2_counts_bots() -> None:
    _facts, clocks = clocks_of(worked_example()[:5])
    assert clocks.seconds("frt_wall") is None
    v2 = Settings(definitions=Definitions.parse(["frt_wall@2"]))
    _facts, clocks = clocks_of(worked_example()[:5], v2)
    assert clocks.seconds("frt_wall") == 0.01 * 3600


def test_events_in_any_order_and_duplicated_give_the_same_contributions() -> None:
    events = worked_example()
    facts, clocks = clocks_of(events)
    expected = sorted(contributions(facts, clocks, Settings()), key=repr)
    rng = random.Random(7)
    for _ in range(20):
        shuffled = events + rng.sample(events, 3)
        rng.shuffle(shuffled)
        facts, clocks = clocks_of(shuffled)
        assert sorted(contributions(facts, clocks, Settings()), key=repr) == expected


def test_pauses_are_not_business_time_and_reopen_counts() -> None:
    def change(frm: int, to: int, hour: float, version: int, reopen: bool = False) -> Event:
        return event(
            ev.TicketStatusChanged(
                ticket=ticket(status=to, version=version, created=9),
                from_status=frm,
                to_status=to,
                change_time=ts(at(hour)),
                reopen=reopen,
            ),
            at(hour),
        )

    events = [
        event(ev.CalendarChanged(calendar=calendar()), at(0), key="cal"),
        event(ev.TicketCreated(ticket=ticket(created=9)), at(9)),
        change(pb.TICKET_STATUS_NEW, pb.TICKET_STATUS_PENDING_CUSTOMER, 10, 2),
        change(pb.TICKET_STATUS_PENDING_CUSTOMER, pb.TICKET_STATUS_OPEN, 12, 3),
        change(pb.TICKET_STATUS_OPEN, pb.TICKET_STATUS_RESOLVED, 13, 4),
        change(pb.TICKET_STATUS_RESOLVED, pb.TICKET_STATUS_OPEN, 14, 5, reopen=True),
        change(pb.TICKET_STATUS_OPEN, pb.TICKET_STATUS_RESOLVED, 15, 6),
    ]
    _facts, clocks = clocks_of(events)
    assert clocks.seconds("resolution_wall") == 6 * 3600
    assert clocks.seconds("first_resolution_wall") == 4 * 3600
    # 9-10 working, 10-12 paused, 12-13 working, 13-14 resolved, 14-15 working.
    assert clocks.seconds("resolution_business") == 3 * 3600
    assert "reopened" in clocks.flags
    assert "first_contact_resolution" not in clocks.flags


def test_chasers_are_follow_ups_before_the_first_response() -> None:
    events = [
        event(ev.TicketCreated(ticket=ticket(created=9)), at(9)),
        event(message("c1", pb.AUTHOR_TYPE_CUSTOMER, 9), at(9)),
        event(message("c2", pb.AUTHOR_TYPE_CUSTOMER, 10), at(10)),
        event(message("c3", pb.AUTHOR_TYPE_CUSTOMER, 11), at(11)),
        event(message("r1", pb.AUTHOR_TYPE_AGENT, 12), at(12)),
        event(message("c4", pb.AUTHOR_TYPE_CUSTOMER, 13), at(13)),
        event(message("c5", pb.AUTHOR_TYPE_CUSTOMER, 14), at(14)),
        event(message("r2", pb.AUTHOR_TYPE_AGENT, 16), at(16)),
    ]
    _facts, clocks = clocks_of(events)
    assert clocks.seconds("chasers") == 2
    assert clocks.seconds("nrt_wall#1") == 3 * 3600  # from c4, the first of the run


def test_a_missing_calendar_holds_back_business_clocks_only() -> None:
    events = [e for e in worked_example() if e.type != "crm.servicedesk.v1.CalendarChanged"]
    facts, clocks = clocks_of(events)
    assert clocks.calendar_missing
    names = {c.kpi for c in contributions(facts, clocks, Settings())}
    assert "frt_wall" in names
    assert "frt_business" not in names


def test_event_ids_are_unique_per_event() -> None:
    assert len({e.id for e in worked_example()}) == len(worked_example())
    assert uuid.UUID(worked_example()[0].id)
