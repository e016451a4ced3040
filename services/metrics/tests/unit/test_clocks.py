"""A ticket's clocks from its events: the KPIS.md worked example and the rules around it."""

from __future__ import annotations

import random
import uuid

from crm.servicedesk.v1 import events_pb2 as ev
from crm.servicedesk.v1 import servicedesk_pb2 as pb
from crm_metrics.domain.catalog import Definitions
from crm_metrics.domain.clocks import Settings, contributions, derive
from crm_metrics.domain.facts import CalendarDirectory
from crm_metrics.events import FactStore, apply
from crm_platform.events import Event
from crm_testing.ticket_events import (
    TENANT,
    at,
    calendar,
    event,
    message,
    ticket,
    ts,
    worked_example,
)


def clocks_of(events: list[Event], settings: Settings | None = None):  # type: ignore[no-untyped-def]
    settings = settings or Settings()
    calendars = CalendarDirectory()
    store = FactStore()
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
    def change(
        frm: pb.TicketStatus.ValueType,
        to: pb.TicketStatus.ValueType,
        hour: float,
        version: int,
        reopen: bool = False,
    ) -> Event:
        made: Event = event(
            ev.TicketStatusChanged(
                ticket=ticket(status=to, version=version, created=9),
                from_status=frm,
                to_status=to,
                change_time=ts(at(hour)),
                reopen=reopen,
            ),
            at(hour),
        )
        return made

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
    # To the first resolve: 9-10 and 12-13 working (10-12 paused).
    assert clocks.seconds("first_resolution_business") == 2 * 3600
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


def test_fixed_rules_are_current_versions_and_the_old_ones_stay_selectable() -> None:
    current = Definitions()
    assert current.label("silence") == "silence@2"
    assert current.label("nrt_wall") == "nrt_wall@2"
    assert current.label("nrt_business") == "nrt_business@2"
    assert current.label("frt_wall") == "frt_wall@1"  # @2 is an alternative, not a fix
    assert current.label("first_resolution_business") == "first_resolution_business@1"
    assert current.label("resolved_without_reply") == "resolved_without_reply@1"
    replay = Definitions.parse(["silence@1", "nrt_wall@1"])
    assert replay.label("silence") == "silence@1"
    assert replay.label("nrt_wall") == "nrt_wall@1"
    assert replay.label("nrt_business") == "nrt_business@2"
