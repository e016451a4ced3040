"""SLA clocks on a ticket: first/next response and resolution, pauses, business time, breach,
at-risk warnings and policy changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from crm_calendar.business_calendar import BusinessCalendar, OpeningInterval
from crm_servicedesk.domain.sla_clock import ClockKind, Pause
from crm_servicedesk.domain.sla_policy import SlaPolicy, TargetSpec
from crm_servicedesk.domain.ticket import ClockState, Message, TargetClock, Ticket
from crm_servicedesk.domain.values import (
    AuthorType,
    Channel,
    Priority,
    SlaTarget,
    TicketStatus,
    TicketType,
    Visibility,
)

BERLIN = ZoneInfo("Europe/Berlin")
T0 = datetime(2026, 1, 12, 8, 0, tzinfo=UTC)  # a Monday
FR = SlaTarget.FIRST_RESPONSE
NR = SlaTarget.NEXT_RESPONSE
RES = SlaTarget.RESOLUTION
S = TicketStatus
HOUR = 3600

OFFICE = BusinessCalendar.create(
    calendar_id="office",
    version=3,
    timezone="Europe/Berlin",
    intervals=[OpeningInterval(day, 9 * 60, 17 * 60) for day in range(5)],
)


def minutes(value: float) -> timedelta:
    return timedelta(minutes=value)


def hours(value: float) -> timedelta:
    return timedelta(hours=value)


def berlin(day: int, hour: int, minute: int = 0) -> datetime:
    """A Berlin wall-clock time in January 2026 (12 = Monday, 16 = Friday, 19 = Monday)."""
    return datetime(2026, 1, day, hour, minute, tzinfo=BERLIN)


def spec(target: SlaTarget, seconds: int, clock: ClockKind = ClockKind.WALL) -> TargetSpec:
    return TargetSpec(target=target, clock=clock, seconds=seconds)


def make_policy(
    *targets: TargetSpec,
    policy_id: str = "policy-a",
    pause_statuses: tuple[TicketStatus, ...] = (),
    calendar_id: str = "",
    version: int = 1,
) -> SlaPolicy:
    return SlaPolicy.create(
        policy_id=policy_id,
        tenant_id="tenant-1",
        name=policy_id,
        position=0,
        priorities=(),
        types=(),
        channels=(),
        customer_tiers=(),
        calendar_id=calendar_id,
        targets=targets,
        pause_statuses=pause_statuses,
        at_risk_fraction=0.8,
        enabled=True,
        version=version,
        updated_at=T0,
    )


# First response in 1 h, next response in 2 h, resolution in 8 h, all on the wall clock.
WALL_POLICY = make_policy(spec(FR, HOUR), spec(NR, 2 * HOUR), spec(RES, 8 * HOUR))


def new_ticket(at: datetime = T0, **overrides: Any) -> Ticket:
    args: dict[str, Any] = {
        "ticket_id": "ticket-1",
        "tenant_id": "tenant-1",
        "type_": TicketType.INCIDENT,
        "channel": Channel.EMAIL,
        "priority": Priority.HIGH,
        "subject": "Printer on fire",
        "description": "",
        "contact_id": "contact-1",
        "customer_tier": "gold",
        "assignee_id": "agent-1",
        "team_id": "team-1",
        "tags": (),
        "category": "",
        "product": "",
        "first_touch_at": None,
        "interactions": (),
        "source_mention_id": "",
        "at": at,
    }
    args.update(overrides)
    return Ticket.open(**args)


def wall_ticket() -> Ticket:
    return new_ticket().with_policy(WALL_POLICY, None)


def message(
    author: AuthorType, at: datetime, visibility: Visibility = Visibility.PUBLIC
) -> Message:
    return Message(
        message_id=f"m-{at.isoformat()}",
        ticket_id="ticket-1",
        tenant_id="tenant-1",
        author_type=author,
        author_id=f"{author.value}-1",
        visibility=visibility,
        channel=Channel.EMAIL,
        body="Hello",
        sent_at=at,
    )


def send(
    ticket: Ticket,
    author: AuthorType,
    at: datetime,
    visibility: Visibility = Visibility.PUBLIC,
    calendar: BusinessCalendar | None = None,
) -> Ticket:
    after, _, _ = ticket.add_message(message(author, at, visibility), calendar)
    return after


def move(
    ticket: Ticket, to: TicketStatus, at: datetime, calendar: BusinessCalendar | None = None
) -> Ticket:
    after, _ = ticket.transition(to, at, calendar)
    return after


def clock(ticket: Ticket, target: SlaTarget) -> TargetClock:
    assert ticket.sla is not None
    found = ticket.sla.clock(target)
    assert found is not None, f"no {target} clock"
    return found


def breached(ticket: Ticket, target: SlaTarget, at: datetime) -> Ticket:
    after = ticket.breach(target, at)
    assert after is not None
    return after


# --- policy and clocks at creation --------------------------------------------------------------


def test_policy_starts_first_response_and_resolution_clocks_at_creation() -> None:
    ticket = wall_ticket()
    assert ticket.sla is not None
    assert ticket.sla.policy_id == "policy-a"
    assert ticket.sla.policy_version == 1
    assert ticket.sla.pause_statuses == (S.PENDING_CUSTOMER, S.ON_HOLD)
    assert ticket.sla.next_response == (ClockKind.WALL, 2 * HOUR)
    assert [c.target for c in ticket.sla.clocks] == [FR, RES]
    first = clock(ticket, FR)
    assert (first.state, first.started_at, first.seconds) == (ClockState.RUNNING, T0, HOUR)
    assert first.due_at == T0 + hours(1)
    assert first.at_risk_at == T0 + minutes(48)
    assert clock(ticket, RES).due_at == T0 + hours(8)
    assert ticket.sla.clock(NR) is None


def test_no_policy_means_no_sla() -> None:
    ticket = wall_ticket().with_policy(None, None)
    assert ticket.sla is None
    assert ticket.breach(FR, T0 + hours(10)) is None
    assert ticket.warn_at_risk(FR, T0 + hours(10)) is None


def test_applying_the_same_policy_again_changes_nothing() -> None:
    ticket = move(wall_ticket(), S.ON_HOLD, T0 + minutes(10))
    assert ticket.with_policy(WALL_POLICY, None) == ticket


def test_business_policy_records_the_calendar() -> None:
    policy = make_policy(spec(FR, 4 * HOUR, ClockKind.BUSINESS), calendar_id="office")
    ticket = new_ticket().with_policy(policy, OFFICE)
    assert ticket.sla is not None
    assert (ticket.sla.calendar_id, ticket.sla.calendar_version) == ("office", 3)


# --- first response -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("author", "visibility"),
    [
        (AuthorType.BOT, Visibility.PUBLIC),
        (AuthorType.AGENT, Visibility.INTERNAL),
        (AuthorType.CUSTOMER, Visibility.PUBLIC),
    ],
)
def test_bot_replies_internal_notes_and_chasers_do_not_stop_the_first_response_clock(
    author: AuthorType, visibility: Visibility
) -> None:
    ticket = send(wall_ticket(), author, T0 + minutes(5), visibility)
    first = clock(ticket, FR)
    assert first.state is ClockState.RUNNING
    assert first.stopped_at is None
    assert first.due_at == T0 + hours(1)
    assert ticket.first_response_at is None
    assert ticket.status is S.NEW


def test_first_public_agent_reply_meets_the_first_response_target() -> None:
    ticket = send(wall_ticket(), AuthorType.AGENT, T0 + minutes(20))
    first = clock(ticket, FR)
    assert first.state is ClockState.MET
    assert first.stopped_at == T0 + minutes(20)
    assert ticket.first_response_at == T0 + minutes(20)
    assert ticket.status is S.OPEN
    assert clock(ticket, RES).state is ClockState.RUNNING


def test_chaser_before_the_first_response_starts_no_next_response_clock() -> None:
    ticket = send(wall_ticket(), AuthorType.CUSTOMER, T0 + minutes(5))
    assert ticket.awaiting_reply_since is None
    assert ticket.sla is not None
    assert ticket.sla.clock(NR) is None


# --- next response ------------------------------------------------------------------------------


def replied() -> Ticket:
    """A ticket answered at T0 + 10 min."""
    return send(wall_ticket(), AuthorType.AGENT, T0 + minutes(10))


def test_customer_message_after_a_reply_starts_a_next_response_clock_at_its_time() -> None:
    ticket = send(replied(), AuthorType.CUSTOMER, T0 + minutes(30))
    following = clock(ticket, NR)
    assert following.state is ClockState.RUNNING
    assert following.started_at == T0 + minutes(30)
    assert following.due_at == T0 + minutes(30) + hours(2)
    assert ticket.awaiting_reply_since == T0 + minutes(30)


def test_only_the_first_unanswered_customer_message_starts_the_next_response_clock() -> None:
    ticket = send(replied(), AuthorType.CUSTOMER, T0 + minutes(30))
    ticket = send(ticket, AuthorType.CUSTOMER, T0 + minutes(50))
    assert clock(ticket, NR).started_at == T0 + minutes(30)
    assert ticket.awaiting_reply_since == T0 + minutes(30)


def test_next_public_agent_reply_meets_the_next_response_target() -> None:
    ticket = send(replied(), AuthorType.CUSTOMER, T0 + minutes(30))
    ticket = send(ticket, AuthorType.BOT, T0 + minutes(31))
    ticket = send(ticket, AuthorType.AGENT, T0 + minutes(35), Visibility.INTERNAL)
    assert clock(ticket, NR).state is ClockState.RUNNING
    ticket = send(ticket, AuthorType.AGENT, T0 + minutes(40))
    following = clock(ticket, NR)
    assert following.state is ClockState.MET
    assert following.stopped_at == T0 + minutes(40)
    assert ticket.awaiting_reply_since is None
    assert ticket.first_response_at == T0 + minutes(10)


def test_a_new_run_of_customer_messages_starts_a_new_next_response_cycle() -> None:
    ticket = send(replied(), AuthorType.CUSTOMER, T0 + minutes(30))
    ticket = send(ticket, AuthorType.AGENT, T0 + minutes(40))
    ticket = send(ticket, AuthorType.CUSTOMER, T0 + minutes(90))
    following = clock(ticket, NR)
    assert (following.state, following.started_at) == (ClockState.RUNNING, T0 + minutes(90))


def test_customer_message_on_pending_customer_reopens_work_and_resumes_the_clocks() -> None:
    ticket = move(replied(), S.PENDING_CUSTOMER, T0 + minutes(20))
    assert clock(ticket, RES).state is ClockState.PAUSED
    ticket = send(ticket, AuthorType.CUSTOMER, T0 + minutes(80))
    assert ticket.status is S.OPEN
    resolution = clock(ticket, RES)
    assert resolution.state is ClockState.RUNNING
    assert resolution.due_at == T0 + hours(8) + minutes(60)
    following = clock(ticket, NR)
    assert following.state is ClockState.RUNNING
    assert following.due_at == T0 + minutes(80) + hours(2)


def test_customer_message_on_a_resolved_ticket_reopens_it() -> None:
    ticket = move(replied(), S.RESOLVED, T0 + minutes(20))
    ticket = send(ticket, AuthorType.CUSTOMER, T0 + minutes(80))
    assert ticket.status is S.OPEN
    assert ticket.reopen_count == 1
    assert clock(ticket, RES).state is ClockState.RUNNING
    assert clock(ticket, NR).state is ClockState.RUNNING


def test_customer_message_while_on_hold_starts_a_paused_next_response_clock() -> None:
    ticket = move(replied(), S.ON_HOLD, T0 + minutes(20))
    ticket = send(ticket, AuthorType.CUSTOMER, T0 + minutes(30))
    following = clock(ticket, NR)
    assert following.state is ClockState.PAUSED
    assert following.due_at is None
    ticket = move(ticket, S.OPEN, T0 + minutes(70))
    assert clock(ticket, NR).due_at == T0 + minutes(70) + hours(2)


# --- pauses -------------------------------------------------------------------------------------


@pytest.mark.parametrize("pause_status", [S.PENDING_CUSTOMER, S.ON_HOLD])
def test_pause_status_pauses_every_running_clock_and_unsets_due_times(
    pause_status: TicketStatus,
) -> None:
    ticket = move(wall_ticket(), pause_status, T0 + minutes(10))
    for target in (FR, RES):
        paused = clock(ticket, target)
        assert paused.state is ClockState.PAUSED
        assert paused.due_at is None
        assert paused.at_risk_at is None
        assert paused.pauses == (Pause(start=T0 + minutes(10)),)


@pytest.mark.parametrize("pause_status", [S.PENDING_CUSTOMER, S.ON_HOLD])
def test_resuming_moves_wall_due_times_by_exactly_the_paused_time(
    pause_status: TicketStatus,
) -> None:
    ticket = move(wall_ticket(), pause_status, T0 + minutes(10))
    ticket = move(ticket, S.OPEN, T0 + minutes(47))
    assert clock(ticket, FR).due_at == T0 + hours(1) + minutes(37)
    assert clock(ticket, FR).at_risk_at == T0 + minutes(48) + minutes(37)
    assert clock(ticket, RES).due_at == T0 + hours(8) + minutes(37)
    assert clock(ticket, RES).pauses == (Pause(T0 + minutes(10), T0 + minutes(47)),)


def test_pauses_add_up() -> None:
    ticket = move(wall_ticket(), S.ON_HOLD, T0 + minutes(10))
    ticket = move(ticket, S.PENDING_CUSTOMER, T0 + minutes(20))
    ticket = move(ticket, S.OPEN, T0 + minutes(30))
    ticket = move(ticket, S.ON_HOLD, T0 + minutes(40))
    ticket = move(ticket, S.OPEN, T0 + minutes(45))
    assert clock(ticket, FR).due_at == T0 + hours(1) + minutes(25)
    assert len(clock(ticket, FR).pauses) == 2


def test_pause_does_not_touch_a_met_clock() -> None:
    ticket = move(replied(), S.ON_HOLD, T0 + minutes(20))
    first = clock(ticket, FR)
    assert first.state is ClockState.MET
    assert first.pauses == ()


def test_status_outside_the_policys_pause_statuses_does_not_pause() -> None:
    policy = make_policy(spec(FR, HOUR), spec(RES, 8 * HOUR), pause_statuses=(S.ON_HOLD,))
    ticket = move(new_ticket().with_policy(policy, None), S.PENDING_CUSTOMER, T0 + minutes(10))
    assert clock(ticket, FR).state is ClockState.RUNNING
    assert clock(ticket, FR).due_at == T0 + hours(1)


def test_resolving_an_unanswered_ticket_pauses_its_first_response_clock() -> None:
    ticket = move(wall_ticket(), S.RESOLVED, T0 + minutes(10))
    assert clock(ticket, FR).state is ClockState.PAUSED
    ticket = move(ticket, S.OPEN, T0 + minutes(40))
    assert clock(ticket, FR).due_at == T0 + hours(1) + minutes(30)


# --- business clock -----------------------------------------------------------------------------


def test_business_first_response_of_a_friday_evening_ticket_is_due_monday() -> None:
    policy = make_policy(spec(FR, 4 * HOUR, ClockKind.BUSINESS), calendar_id="office")
    ticket = new_ticket(at=berlin(16, 18)).with_policy(policy, OFFICE)
    assert clock(ticket, FR).due_at == berlin(19, 13)
    assert clock(ticket, FR).at_risk_at == berlin(19, 12, 12)


def business_ticket() -> Ticket:
    """Opened Monday 10:00 Berlin; first response in 8 business hours (due Tuesday 10:00)."""
    policy = make_policy(spec(FR, 8 * HOUR, ClockKind.BUSINESS), calendar_id="office")
    ticket = new_ticket(at=berlin(12, 10)).with_policy(policy, OFFICE)
    assert clock(ticket, FR).due_at == berlin(13, 10)
    return ticket


def test_pause_outside_business_hours_does_not_move_a_business_due_time() -> None:
    ticket = move(business_ticket(), S.PENDING_CUSTOMER, berlin(12, 18), OFFICE)
    assert clock(ticket, FR).due_at is None
    ticket = move(ticket, S.OPEN, berlin(13, 8), OFFICE)
    assert clock(ticket, FR).due_at == berlin(13, 10)


def test_pause_inside_business_hours_moves_a_business_due_time_by_the_business_time() -> None:
    # Paused 16:00 Monday to 10:00 Tuesday: one business hour on Monday, one on Tuesday.
    ticket = move(business_ticket(), S.ON_HOLD, berlin(12, 16), OFFICE)
    ticket = move(ticket, S.OPEN, berlin(13, 10), OFFICE)
    assert clock(ticket, FR).due_at == berlin(13, 12)


# --- breach -------------------------------------------------------------------------------------


def test_breach_before_the_due_time_is_a_stale_timer() -> None:
    assert wall_ticket().breach(FR, T0 + minutes(59)) is None


def test_breach_at_the_due_time_breaches_the_target() -> None:
    ticket = breached(wall_ticket(), FR, T0 + hours(1))
    assert clock(ticket, FR).state is ClockState.BREACHED
    assert clock(ticket, RES).state is ClockState.RUNNING
    assert ticket.updated_at == T0 + hours(1)


def test_breach_of_a_paused_clock_is_a_stale_timer() -> None:
    ticket = move(wall_ticket(), S.ON_HOLD, T0 + minutes(10))
    assert ticket.breach(FR, T0 + hours(5)) is None


def test_breach_of_a_met_clock_is_a_stale_timer() -> None:
    assert replied().breach(FR, T0 + hours(5)) is None


def test_breach_of_a_target_without_a_clock_is_a_stale_timer() -> None:
    assert replied().breach(NR, T0 + hours(5)) is None


def test_breach_twice_is_a_stale_timer_the_second_time() -> None:
    ticket = breached(wall_ticket(), FR, T0 + hours(1))
    assert ticket.breach(FR, T0 + hours(2)) is None


def test_breached_first_response_stays_breached_after_the_reply() -> None:
    ticket = breached(wall_ticket(), FR, T0 + hours(1))
    ticket = send(ticket, AuthorType.AGENT, T0 + hours(2))
    first = clock(ticket, FR)
    assert first.state is ClockState.BREACHED
    assert first.stopped_at == T0 + hours(2)
    assert ticket.first_response_at == T0 + hours(2)
    ticket = send(ticket, AuthorType.AGENT, T0 + hours(3))
    assert clock(ticket, FR).stopped_at == T0 + hours(2)


def test_breached_next_response_stays_breached_after_the_reply() -> None:
    ticket = send(replied(), AuthorType.CUSTOMER, T0 + minutes(30))
    ticket = breached(ticket, NR, T0 + minutes(150))
    ticket = send(ticket, AuthorType.AGENT, T0 + hours(4))
    following = clock(ticket, NR)
    assert (following.state, following.stopped_at) == (ClockState.BREACHED, T0 + hours(4))


def test_breached_resolution_stays_breached_through_resolve_and_reopen() -> None:
    ticket = breached(wall_ticket(), RES, T0 + hours(8))
    ticket = move(ticket, S.RESOLVED, T0 + hours(9))
    assert clock(ticket, RES).state is ClockState.BREACHED
    assert clock(ticket, RES).stopped_at == T0 + hours(9)
    ticket = move(ticket, S.OPEN, T0 + hours(10))
    assert clock(ticket, RES).state is ClockState.BREACHED
    ticket = move(ticket, S.RESOLVED, T0 + hours(11))
    assert clock(ticket, RES).state is ClockState.BREACHED


def test_breached_clock_is_not_paused() -> None:
    ticket = breached(wall_ticket(), FR, T0 + hours(1))
    ticket = move(ticket, S.ON_HOLD, T0 + hours(2))
    assert clock(ticket, FR).state is ClockState.BREACHED


def test_reply_after_the_due_time_counts_as_breached_even_before_the_timer_fired() -> None:
    ticket = send(wall_ticket(), AuthorType.AGENT, T0 + hours(3))
    assert clock(ticket, FR).state is ClockState.BREACHED


# --- at risk ------------------------------------------------------------------------------------


def test_at_risk_warning_fires_once_after_the_at_risk_point() -> None:
    ticket = wall_ticket()
    assert ticket.warn_at_risk(FR, T0 + minutes(47)) is None
    warned = ticket.warn_at_risk(FR, T0 + minutes(48))
    assert warned is not None
    assert clock(warned, FR).at_risk_fired
    assert clock(warned, FR).state is ClockState.RUNNING
    assert warned.warn_at_risk(FR, T0 + minutes(50)) is None


def test_at_risk_warning_does_not_fire_for_paused_or_stopped_clocks() -> None:
    paused = move(wall_ticket(), S.ON_HOLD, T0 + minutes(10))
    assert paused.warn_at_risk(FR, T0 + hours(2)) is None
    assert replied().warn_at_risk(FR, T0 + hours(2)) is None


def test_at_risk_warning_survives_a_pause() -> None:
    warned = wall_ticket().warn_at_risk(FR, T0 + minutes(50))
    assert warned is not None
    ticket = move(warned, S.ON_HOLD, T0 + minutes(52))
    ticket = move(ticket, S.OPEN, T0 + minutes(60))
    assert clock(ticket, FR).at_risk_fired
    assert ticket.warn_at_risk(FR, T0 + minutes(60)) is None


# --- resolution ---------------------------------------------------------------------------------


def test_resolving_meets_the_resolution_target() -> None:
    ticket = move(replied(), S.RESOLVED, T0 + hours(2))
    resolution = clock(ticket, RES)
    assert (resolution.state, resolution.stopped_at) == (ClockState.MET, T0 + hours(2))


def test_resolving_while_paused_closes_the_pause() -> None:
    ticket = move(replied(), S.PENDING_CUSTOMER, T0 + hours(1))
    ticket = move(ticket, S.RESOLVED, T0 + hours(2))
    assert clock(ticket, RES).pauses == (Pause(T0 + hours(1), T0 + hours(2)),)


def test_reopen_restarts_the_resolution_clock_with_the_resolved_time_as_a_pause() -> None:
    ticket = move(replied(), S.RESOLVED, T0 + hours(2))
    ticket = move(ticket, S.OPEN, T0 + hours(5))
    resolution = clock(ticket, RES)
    assert resolution.state is ClockState.RUNNING
    assert resolution.stopped_at is None
    assert resolution.started_at == T0
    assert resolution.pauses == (Pause(T0 + hours(2), T0 + hours(5)),)
    assert resolution.due_at == T0 + hours(8) + hours(3)


def test_closing_keeps_the_met_resolution_clock() -> None:
    ticket = move(move(replied(), S.RESOLVED, T0 + hours(2)), S.CLOSED, T0 + hours(30))
    assert clock(ticket, RES).state is ClockState.MET
    assert clock(ticket, RES).stopped_at == T0 + hours(2)


# --- policy change ------------------------------------------------------------------------------


def test_policy_change_keeps_start_pauses_and_breaches_and_takes_the_new_targets() -> None:
    ticket = move(wall_ticket(), S.ON_HOLD, T0 + minutes(10))
    ticket = move(ticket, S.OPEN, T0 + minutes(40))
    ticket = breached(ticket, FR, T0 + minutes(90))
    other = make_policy(spec(FR, 2 * HOUR), spec(RES, 24 * HOUR), policy_id="policy-b", version=4)
    changed = ticket.with_policy(other, None)
    assert changed.sla is not None
    assert (changed.sla.policy_id, changed.sla.policy_version) == ("policy-b", 4)
    assert changed.sla.next_response is None
    first = clock(changed, FR)
    assert (first.state, first.seconds) == (ClockState.BREACHED, 2 * HOUR)
    resolution = clock(changed, RES)
    assert resolution.started_at == T0
    assert resolution.pauses == (Pause(T0 + minutes(10), T0 + minutes(40)),)
    assert resolution.due_at == T0 + hours(24) + minutes(30)


def test_policy_change_to_the_business_clock_recomputes_due_times_on_the_calendar() -> None:
    ticket = new_ticket(at=berlin(16, 18)).with_policy(WALL_POLICY, None)
    business = make_policy(
        spec(FR, 4 * HOUR, ClockKind.BUSINESS), spec(RES, 8 * HOUR), calendar_id="office"
    )
    changed = ticket.with_policy(business, OFFICE)
    assert clock(changed, FR).clock is ClockKind.BUSINESS
    assert clock(changed, FR).due_at == berlin(19, 13)


def test_target_added_by_a_policy_change_counts_the_history_so_far() -> None:
    only_first = make_policy(spec(FR, HOUR))
    ticket = new_ticket().with_policy(only_first, None)
    ticket = move(ticket, S.ON_HOLD, T0 + minutes(10))
    ticket = move(ticket, S.OPEN, T0 + minutes(40))
    ticket = send(ticket, AuthorType.AGENT, T0 + minutes(50))
    changed = ticket.with_policy(WALL_POLICY, None)
    resolution = clock(changed, RES)
    assert resolution.started_at == T0
    assert resolution.pauses == (Pause(T0 + minutes(10), T0 + minutes(40)),)
    assert resolution.due_at == T0 + hours(8) + minutes(30)
    assert changed.sla is not None
    assert changed.sla.clock(NR) is None


def test_first_response_target_added_after_the_reply_is_met_at_the_reply() -> None:
    only_resolution = make_policy(spec(RES, 8 * HOUR))
    ticket = send(new_ticket().with_policy(only_resolution, None), AuthorType.AGENT, T0 + hours(2))
    first = clock(ticket.with_policy(WALL_POLICY, None), FR)
    assert (first.state, first.stopped_at) == (ClockState.MET, T0 + hours(2))


def test_policy_change_resumes_clocks_the_new_policy_does_not_pause_in_this_status() -> None:
    pauses_on_hold = make_policy(spec(FR, HOUR), pause_statuses=(S.ON_HOLD,))
    ticket = move(new_ticket().with_policy(pauses_on_hold, None), S.ON_HOLD, T0 + minutes(10))
    assert clock(ticket, FR).state is ClockState.PAUSED
    pauses_pending_only = make_policy(
        spec(FR, HOUR), policy_id="policy-b", pause_statuses=(S.PENDING_CUSTOMER,)
    )
    changed = ticket.with_policy(pauses_pending_only, None)
    assert changed.sla is not None
    assert changed.sla.runs_in(S.ON_HOLD)
    assert clock(changed, FR).state is ClockState.RUNNING
    assert clock(changed, FR).due_at is not None
