"""Properties of the ticket aggregate under random sequences of operations (wall-clock policy).

Each example applies transitions to random statuses, messages by random authors and visibility,
and breach / at-risk timer firings, at non-decreasing times, and checks after every step the SLA
invariants the service desk's KPIs rely on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from crm_platform.errors import FailedPrecondition
from crm_servicedesk.domain.sla_clock import ClockKind
from crm_servicedesk.domain.sla_policy import SlaPolicy, TargetSpec
from crm_servicedesk.domain.ticket import (
    TRANSITIONS,
    ClockState,
    Message,
    StatusChange,
    TargetClock,
    Ticket,
)
from crm_servicedesk.domain.values import (
    AuthorType,
    Channel,
    Priority,
    SlaTarget,
    TicketStatus,
    TicketType,
    Visibility,
)

T0 = datetime(2026, 1, 12, 8, 0, tzinfo=UTC)
AT_RISK_FRACTION = 0.8

POLICY = SlaPolicy.create(
    policy_id="policy-a",
    tenant_id="tenant-1",
    name="wall",
    position=0,
    priorities=(),
    types=(),
    channels=(),
    customer_tiers=(),
    calendar_id="",
    targets=[
        TargetSpec(SlaTarget.FIRST_RESPONSE, ClockKind.WALL, 3600),
        TargetSpec(SlaTarget.NEXT_RESPONSE, ClockKind.WALL, 2 * 3600),
        TargetSpec(SlaTarget.RESOLUTION, ClockKind.WALL, 8 * 3600),
    ],
    pause_statuses=(),
    at_risk_fraction=AT_RISK_FRACTION,
    enabled=True,
    version=1,
    updated_at=T0,
)


@dataclass(frozen=True)
class Transition:
    to: TicketStatus


@dataclass(frozen=True)
class Send:
    author: AuthorType
    visibility: Visibility


@dataclass(frozen=True)
class Breach:
    target: SlaTarget


@dataclass(frozen=True)
class Warn:
    target: SlaTarget


Operation = Transition | Send | Breach | Warn


def weighted(weights: dict[Operation, int]) -> list[Operation]:
    return [operation for operation, weight in weights.items() for _ in range(weight)]


C, A, B = AuthorType.CUSTOMER, AuthorType.AGENT, AuthorType.BOT
PUBLIC, INTERNAL = Visibility.PUBLIC, Visibility.INTERNAL
# Every operation, weighted towards what moves the clocks (customer messages and public agent
# replies make next-response cycles; resolve and reopen restart the resolution clock) and away
# from closing, which ends the interesting part of a run.
OPERATIONS = weighted(
    {
        Send(A, PUBLIC): 4,
        Send(C, PUBLIC): 4,
        Send(A, INTERNAL): 1,
        Send(B, PUBLIC): 1,
        Send(B, INTERNAL): 1,
        Send(C, INTERNAL): 1,
        Transition(TicketStatus.OPEN): 2,
        Transition(TicketStatus.RESOLVED): 2,
        Transition(TicketStatus.PENDING_CUSTOMER): 2,
        Transition(TicketStatus.ON_HOLD): 2,
        Transition(TicketStatus.NEW): 1,
        Transition(TicketStatus.CLOSED): 1,
        Breach(SlaTarget.FIRST_RESPONSE): 1,
        Breach(SlaTarget.NEXT_RESPONSE): 2,
        Breach(SlaTarget.RESOLUTION): 1,
        Warn(SlaTarget.FIRST_RESPONSE): 1,
        Warn(SlaTarget.NEXT_RESPONSE): 1,
        Warn(SlaTarget.RESOLUTION): 1,
    }
)
# (minutes since the previous step, operation): steps of up to 3 h against targets of 1-8 h, so
# clocks come due, get breached, warned, paused and met in the same example.
steps = st.lists(
    st.tuples(st.integers(0, 180), st.sampled_from(OPERATIONS)), min_size=10, max_size=40
)


def open_ticket() -> Ticket:
    return Ticket.open(
        ticket_id="ticket-1",
        tenant_id="tenant-1",
        type_=TicketType.INCIDENT,
        channel=Channel.EMAIL,
        priority=Priority.NORMAL,
        subject="Printer on fire",
        description="",
        contact_id="contact-1",
        customer_tier="gold",
        assignee_id="agent-1",
        team_id="team-1",
        tags=(),
        category="",
        product="",
        first_touch_at=None,
        interactions=(),
        source_mention_id="",
        at=T0,
    ).with_policy(POLICY, None)


def expected_wall_time(clock: TargetClock, fraction: float = 1.0) -> datetime:
    """When a wall clock with closed pauses reaches ``fraction`` of its target: the start plus
    the target plus every pause that began before that point."""
    remaining = timedelta(seconds=clock.seconds) * fraction
    cursor = clock.started_at
    for pause in sorted(clock.pauses, key=lambda p: p.start):
        assert pause.end is not None, "a running clock has an open pause"
        if pause.start - cursor >= remaining:
            break
        remaining -= max(pause.start - cursor, timedelta(0))
        cursor = max(cursor, pause.end)
    return cursor + remaining


class Run:
    """The ticket under test and what the test itself observed so far (the oracle)."""

    def __init__(self) -> None:
        self.ticket = open_ticket()
        self.now = T0
        self.first_agent_reply: datetime | None = None
        self.reopens = 0
        # (target, started_at) of every clock seen BREACHED; a next-response clock is
        # identified by its start (each run of customer messages is its own cycle).
        self.breached: set[tuple[SlaTarget, datetime]] = set()

    def apply(self, operation: Operation) -> None:
        before = self.ticket
        change: StatusChange | None = None
        if isinstance(operation, Transition):
            allowed = operation.to is before.status or operation.to in TRANSITIONS[before.status]
            try:
                self.ticket, change = before.transition(operation.to, self.now, None)
            except FailedPrecondition as error:
                assert error.violation_type == "ILLEGAL_TRANSITION"
                assert not allowed
            else:
                assert allowed
        elif isinstance(operation, Send):
            self._send(operation)
            return
        else:
            clock = before.sla.clock(operation.target) if before.sla else None
            if isinstance(operation, Breach):
                fired = before.breach(operation.target, self.now)
                due = (
                    clock is not None
                    and clock.state is ClockState.RUNNING
                    and clock.due_at is not None
                    and clock.due_at <= self.now
                )
            else:
                fired = before.warn_at_risk(operation.target, self.now)
                due = (
                    clock is not None
                    and clock.state is ClockState.RUNNING
                    and not clock.at_risk_fired
                    and clock.at_risk_at is not None
                    and clock.at_risk_at <= self.now
                )
            assert (fired is not None) is due
            if fired is not None:
                self.ticket = fired
                after = self._clock(operation.target)
                if isinstance(operation, Breach):
                    assert after.state is ClockState.BREACHED
                else:
                    assert after.at_risk_fired
        self._count(change)

    def _send(self, operation: Send) -> None:
        message = Message(
            message_id=f"m-{self.now.isoformat()}",
            ticket_id="ticket-1",
            tenant_id="tenant-1",
            author_type=operation.author,
            author_id="someone",
            visibility=operation.visibility,
            channel=Channel.EMAIL,
            body="...",
            sent_at=self.now,
        )
        try:
            self.ticket, change, first = self.ticket.add_message(message, None)
        except FailedPrecondition as error:
            assert error.violation_type == "TICKET_CLOSED"
            assert self.ticket.status is TicketStatus.CLOSED
            return
        is_reply = operation.author is AuthorType.AGENT and operation.visibility is (
            Visibility.PUBLIC
        )
        assert first is (is_reply and self.first_agent_reply is None)
        if is_reply and self.first_agent_reply is None:
            self.first_agent_reply = self.now
        self._count(change)

    def _count(self, change: StatusChange | None) -> None:
        if change is not None and change.reopen:
            self.reopens += 1

    def _clock(self, target: SlaTarget) -> TargetClock:
        assert self.ticket.sla is not None
        clock = self.ticket.sla.clock(target)
        assert clock is not None
        return clock

    def check(self, previous: Ticket) -> None:
        ticket = self.ticket
        sla = ticket.sla
        assert sla is not None
        assert ticket.version >= previous.version
        assert ticket.updated_at >= previous.updated_at
        assert ticket.first_response_at == self.first_agent_reply
        if previous.first_response_at is not None:
            assert ticket.first_response_at == previous.first_response_at
        assert ticket.reopen_count == self.reopens
        assert ticket.reopen_count == sum(c.reopen for c in ticket.status_history)
        # First response and resolution clocks live as long as the ticket, from its creation.
        for target in (SlaTarget.FIRST_RESPONSE, SlaTarget.RESOLUTION):
            assert self._clock(target).started_at == T0
        keys = {(c.target, c.started_at): c for c in sla.clocks}
        for key in self.breached:
            if key in keys:
                assert keys[key].state is ClockState.BREACHED, f"{key} left BREACHED"
            else:
                # Only a finished next-response cycle may be replaced (by the next cycle).
                assert key[0] is SlaTarget.NEXT_RESPONSE
        for clock in sla.clocks:
            if clock.state is ClockState.BREACHED:
                self.breached.add((clock.target, clock.started_at))
            elif clock.state is ClockState.RUNNING:
                assert sla.runs_in(ticket.status)
                assert clock.due_at == expected_wall_time(clock)
                assert clock.at_risk_at == expected_wall_time(clock, AT_RISK_FRACTION)
            elif clock.state is ClockState.PAUSED:
                assert not sla.runs_in(ticket.status)
                assert clock.due_at is None
                assert clock.at_risk_at is None
                assert clock.pauses[-1].end is None
            else:
                assert clock.stopped_at is not None
        if ticket.first_response_at is not None:
            assert self._clock(SlaTarget.FIRST_RESPONSE).state in (
                ClockState.MET,
                ClockState.BREACHED,
            )
        if ticket.status is TicketStatus.RESOLVED:
            assert self._clock(SlaTarget.RESOLUTION).state in (ClockState.MET, ClockState.BREACHED)
            assert ticket.resolved_at is not None
        elif ticket.status is not TicketStatus.CLOSED:
            assert ticket.resolved_at is None


@settings(max_examples=150, deadline=None)
@given(steps)
def test_sla_invariants_hold_after_every_operation(
    script: list[tuple[int, Operation]],
) -> None:
    run = Run()
    run.check(run.ticket)
    for minutes, operation in script:
        run.now += timedelta(minutes=minutes)
        previous = run.ticket
        run.apply(operation)
        run.check(previous)


@settings(max_examples=100, deadline=None)
@given(steps)
def test_status_history_replays_to_the_current_status(
    script: list[tuple[int, Operation]],
) -> None:
    run = Run()
    for minutes, operation in script:
        run.now += timedelta(minutes=minutes)
        run.apply(operation)
    status = TicketStatus.NEW
    for change in run.ticket.status_history:
        assert change.from_status is status
        assert change.to_status in TRANSITIONS[status]
        status = change.to_status
    assert status is run.ticket.status
    times = [change.at for change in run.ticket.status_history]
    assert times == sorted(times)
