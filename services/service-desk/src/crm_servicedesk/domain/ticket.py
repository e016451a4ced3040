"""The ticket aggregate: lifecycle, conversation effects and SLA clocks.

Every operation is a pure function of the ticket and returns a new ticket; the caller persists it
and publishes the facts. The SLA rules implemented here (see docs/servicedesk.md):

* The first-response clock starts at creation and stops at the first **public** reply by a
  **human agent**; bot replies and internal notes do not stop it.
* A next-response clock starts at the first customer message after a reply (while none is
  running) and stops at the next public human reply.
* The resolution clock starts at creation and stops (MET) at each transition into RESOLVED; a
  reopen restarts it with the time spent resolved counted as a pause.
* Clocks run only while the status does not pause them (the policy's pause statuses, by default
  PENDING_CUSTOMER and ON_HOLD) and the ticket is not RESOLVED or CLOSED.
* A breached target stays breached, whatever happens later.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from crm_calendar.business_calendar import BusinessCalendar
from crm_platform.errors import FailedPrecondition, FieldViolation, InvalidArgument
from crm_servicedesk.domain.sla_clock import ClockKind, Pause, SlaClock
from crm_servicedesk.domain.sla_policy import SlaPolicy
from crm_servicedesk.domain.values import (
    AuthorType,
    Channel,
    InteractionKind,
    Priority,
    SlaTarget,
    TicketStatus,
    TicketType,
    Visibility,
)

# The lifecycle. Moving to the current status is a no-op, not an error (a retried call).
TRANSITIONS: Mapping[TicketStatus, frozenset[TicketStatus]] = {
    TicketStatus.NEW: frozenset(
        {
            TicketStatus.OPEN,
            TicketStatus.PENDING_CUSTOMER,
            TicketStatus.ON_HOLD,
            TicketStatus.RESOLVED,
        }
    ),
    TicketStatus.OPEN: frozenset(
        {TicketStatus.PENDING_CUSTOMER, TicketStatus.ON_HOLD, TicketStatus.RESOLVED}
    ),
    TicketStatus.PENDING_CUSTOMER: frozenset(
        {TicketStatus.OPEN, TicketStatus.ON_HOLD, TicketStatus.RESOLVED}
    ),
    TicketStatus.ON_HOLD: frozenset(
        {TicketStatus.OPEN, TicketStatus.PENDING_CUSTOMER, TicketStatus.RESOLVED}
    ),
    TicketStatus.RESOLVED: frozenset({TicketStatus.OPEN, TicketStatus.CLOSED}),
    TicketStatus.CLOSED: frozenset(),
}

UPDATABLE_FIELDS = frozenset(
    {
        "priority",
        "subject",
        "description",
        "assignee_id",
        "team_id",
        "tags",
        "category",
        "product",
        "type",
    }
)


class ClockState(StrEnum):
    """Where one SLA target's clock is."""

    RUNNING = "running"
    PAUSED = "paused"
    MET = "met"
    BREACHED = "breached"


@dataclass(frozen=True, slots=True)
class TargetClock:
    """One SLA target on one ticket, with the due times computed at the last change."""

    target: SlaTarget
    clock: ClockKind
    seconds: int
    started_at: datetime
    pauses: tuple[Pause, ...] = ()
    state: ClockState = ClockState.RUNNING
    stopped_at: datetime | None = None
    due_at: datetime | None = None
    at_risk_at: datetime | None = None
    at_risk_fired: bool = False

    def sla_clock(self) -> SlaClock:
        """The clock arithmetic of :mod:`sla_clock` for this target."""
        return SlaClock(
            kind=self.clock,
            started_at=self.started_at,
            target=timedelta(seconds=self.seconds),
            pauses=self.pauses,
        )

    def pause(self, at: datetime) -> TargetClock:
        """Stop counting at ``at`` (a RUNNING clock only)."""
        if self.state is not ClockState.RUNNING:
            return self
        return replace(
            self,
            state=ClockState.PAUSED,
            pauses=(*self.pauses, Pause(start=max(at, self.started_at), end=None)),
        )

    def resume(self, at: datetime) -> TargetClock:
        """Count again from ``at`` (a PAUSED clock only)."""
        if self.state is not ClockState.PAUSED:
            return self
        return replace(self, state=ClockState.RUNNING, pauses=self._closed_pauses(at))

    def stop(self, at: datetime) -> TargetClock:
        """The target was reached at ``at``: MET if that is before its due time, BREACHED if
        not (also when no timer noticed the breach yet) or if it had been breached already."""
        if self.stopped_at is not None and self.state is not ClockState.BREACHED:
            return self
        if self.state is ClockState.BREACHED:
            return replace(self, stopped_at=self.stopped_at or at)
        late = self.state is ClockState.RUNNING and self.due_at is not None and at > self.due_at
        return replace(
            self,
            state=ClockState.BREACHED if late else ClockState.MET,
            stopped_at=at,
            pauses=self._closed_pauses(at),
        )

    def restart(self, at: datetime) -> TargetClock:
        """A MET clock counts again (reopen): the time since it stopped is a pause."""
        if self.state is not ClockState.MET or self.stopped_at is None:
            return self
        return replace(
            self,
            state=ClockState.RUNNING,
            stopped_at=None,
            pauses=(*self.pauses, Pause(start=self.stopped_at, end=at)),
        )

    def refreshed(self, calendar: BusinessCalendar | None, at_risk_fraction: float) -> TargetClock:
        """Due and at-risk times recomputed from the start, the target and the pauses."""
        if self.state is ClockState.PAUSED:
            return replace(self, due_at=None, at_risk_at=None)
        if self.state is not ClockState.RUNNING:
            return self
        clock = self.sla_clock()
        try:
            due_at = clock.due_at(calendar)
            at_risk_at = clock.at_risk_at(calendar, at_risk_fraction)
        except ValueError as exc:  # the calendar has no opening time left to reach the target
            raise FailedPrecondition(
                "CALENDAR_CANNOT_REACH_TARGET", f"sla/{self.target.value}", str(exc)
            ) from None
        return replace(self, due_at=due_at, at_risk_at=at_risk_at)

    def _closed_pauses(self, at: datetime) -> tuple[Pause, ...]:
        if self.pauses and self.pauses[-1].end is None:
            last = self.pauses[-1]
            return (*self.pauses[:-1], Pause(start=last.start, end=max(at, last.start)))
        return self.pauses


@dataclass(frozen=True, slots=True)
class TicketSla:
    """The policy that applies to a ticket and one clock per target."""

    policy_id: str
    policy_version: int
    calendar_id: str
    calendar_version: int
    pause_statuses: tuple[TicketStatus, ...]
    at_risk_fraction: float
    clocks: tuple[TargetClock, ...]
    # The policy's next-response target, used when a next-response cycle starts.
    next_response: tuple[ClockKind, int] | None = None

    def clock(self, target: SlaTarget) -> TargetClock | None:
        """The clock of one target, if the policy has the target and it has started."""
        return next((clock for clock in self.clocks if clock.target is target), None)

    def with_clock(self, clock: TargetClock) -> TicketSla:
        """This SLA with ``clock`` replacing (or adding) the clock of its target."""
        others = tuple(c for c in self.clocks if c.target is not clock.target)
        ordered = sorted((*others, clock), key=lambda c: list(SlaTarget).index(c.target))
        return replace(self, clocks=tuple(ordered))

    def runs_in(self, status: TicketStatus) -> bool:
        """Whether clocks count while the ticket is in ``status``."""
        return status.is_open and status not in self.pause_statuses

    def refreshed(self, calendar: BusinessCalendar | None) -> TicketSla:
        """Every clock's due times recomputed."""
        return replace(
            self,
            clocks=tuple(c.refreshed(calendar, self.at_risk_fraction) for c in self.clocks),
        )


@dataclass(frozen=True, slots=True)
class Interaction:
    """An earlier interaction about the ticket's issue (it can set the first touch)."""

    kind: InteractionKind
    channel: Channel | None
    occurred_at: datetime
    reference: str = ""
    note: str = ""


@dataclass(frozen=True, slots=True)
class RoutingRecord:
    """An automatic decision on the ticket and the rule (id, version) that took it."""

    rule_id: str
    rule_version: int
    trigger: str
    action: Mapping[str, Any]
    assigned_agent_id: str
    decided_at: datetime


@dataclass(frozen=True, slots=True)
class Message:
    """One message of a ticket's conversation."""

    message_id: str
    ticket_id: str
    tenant_id: str
    author_type: AuthorType
    author_id: str
    visibility: Visibility
    channel: Channel
    body: str
    sent_at: datetime
    delivered_at: datetime | None = None
    read_at: datetime | None = None

    @property
    def is_human_public_reply(self) -> bool:
        """What counts as a response for FRT/NRT: a public message by a human agent."""
        return self.author_type is AuthorType.AGENT and self.visibility is Visibility.PUBLIC

    @property
    def is_customer_message(self) -> bool:
        """A message from the customer (chasers are these, before the first response)."""
        return self.author_type is AuthorType.CUSTOMER


@dataclass(frozen=True, slots=True)
class StatusChange:
    """A status change an operation caused (directly or automatically)."""

    from_status: TicketStatus
    to_status: TicketStatus
    at: datetime
    reason: str

    @property
    def reopen(self) -> bool:
        """Resolved → open."""
        return self.from_status is TicketStatus.RESOLVED and self.to_status is TicketStatus.OPEN


@dataclass(frozen=True, slots=True)
class Ticket:
    """A customer's issue from any channel, with its lifecycle and SLA clocks."""

    ticket_id: str
    tenant_id: str
    type: TicketType
    channel: Channel
    priority: Priority
    status: TicketStatus
    subject: str
    description: str
    contact_id: str
    customer_tier: str
    assignee_id: str
    team_id: str
    tags: tuple[str, ...]
    category: str
    product: str
    first_touch_at: datetime
    created_at: datetime
    updated_at: datetime
    version: int = 1
    interactions: tuple[Interaction, ...] = ()
    source_mention_id: str = ""
    sla: TicketSla | None = None
    routing: tuple[RoutingRecord, ...] = ()
    reopen_count: int = 0
    first_response_at: datetime | None = None
    resolved_at: datetime | None = None
    awaiting_reply_since: datetime | None = None
    status_history: tuple[StatusChange, ...] = field(default=())

    @classmethod
    def open(
        cls,
        *,
        ticket_id: str,
        tenant_id: str,
        type_: TicketType,
        channel: Channel,
        priority: Priority | None,
        subject: str,
        description: str,
        contact_id: str,
        customer_tier: str,
        assignee_id: str,
        team_id: str,
        tags: Sequence[str],
        category: str,
        product: str,
        first_touch_at: datetime | None,
        interactions: Sequence[Interaction],
        source_mention_id: str,
        at: datetime,
    ) -> Ticket:
        """A NEW ticket. The first touch is the earliest of the given first touch, the linked
        interactions and the creation itself."""
        if not subject.strip():
            raise InvalidArgument.single("ticket.subject", "must not be blank")
        touches = [at, *(i.occurred_at for i in interactions)]
        if first_touch_at is not None:
            if first_touch_at > at:
                raise InvalidArgument.single(
                    "ticket.first_touch_time", "must not be after the ticket's creation"
                )
            touches.append(first_touch_at)
        for index, interaction in enumerate(interactions):
            if interaction.occurred_at > at:
                raise InvalidArgument.single(
                    f"interactions[{index}].occurred_time", "must not be in the future"
                )
        return cls(
            ticket_id=ticket_id,
            tenant_id=tenant_id,
            type=type_,
            channel=channel,
            priority=priority or Priority.NORMAL,
            status=TicketStatus.NEW,
            subject=subject.strip(),
            description=description,
            contact_id=contact_id,
            customer_tier=customer_tier,
            assignee_id=assignee_id,
            team_id=team_id,
            tags=tuple(dict.fromkeys(tags)),
            category=category,
            product=product,
            first_touch_at=min(touches),
            created_at=at,
            updated_at=at,
            interactions=tuple(interactions),
            source_mention_id=source_mention_id,
        )

    # -- SLA -------------------------------------------------------------------------------

    def with_policy(
        self,
        policy: SlaPolicy | None,
        calendar: BusinessCalendar | None,
        at: datetime | None = None,
    ) -> Ticket:
        """The ticket under ``policy`` from ``at`` (default: its last change): existing clocks
        keep their start, pauses and state (a breached target stays breached) and take the
        policy's durations; new targets start at creation; the new policy's pause statuses
        apply from ``at``. No policy means no SLA."""
        if policy is None:
            return replace(self, sla=None)
        old = self.sla
        next_spec = policy.target(SlaTarget.NEXT_RESPONSE)
        sla = TicketSla(
            policy_id=policy.policy_id,
            policy_version=policy.version,
            calendar_id=calendar.calendar_id if calendar else "",
            calendar_version=calendar.version if calendar else 0,
            pause_statuses=policy.pause_statuses,
            at_risk_fraction=policy.at_risk_fraction,
            clocks=(),
            next_response=(next_spec.clock, next_spec.seconds) if next_spec else None,
        )
        clocks: list[TargetClock] = []
        for spec in policy.targets:
            existing = old.clock(spec.target) if old else None
            if existing is not None:
                clocks.append(replace(existing, clock=spec.clock, seconds=spec.seconds))
            elif spec.target is not SlaTarget.NEXT_RESPONSE:
                # (a next-response clock starts with the first unanswered customer message
                # after a reply)
                clocks.append(self._new_clock(spec.target, spec.clock, spec.seconds, sla))
        now = at or self.updated_at
        runs = sla.runs_in(self.status)
        aligned = tuple(c.resume(now) if runs else c.pause(now) for c in clocks)
        return replace(self, sla=replace(sla, clocks=aligned).refreshed(calendar))

    def _new_clock(
        self, target: SlaTarget, kind: ClockKind, seconds: int, sla: TicketSla
    ) -> TargetClock:
        clock = TargetClock(target=target, clock=kind, seconds=seconds, started_at=self.created_at)
        # The ticket's history so far applies to a clock added later (a policy change).
        if target is SlaTarget.FIRST_RESPONSE and self.first_response_at is not None:
            return clock.stop(self.first_response_at)
        for change in self.status_history:
            clock = _follow_status(clock, change, sla)
        return clock

    def breach(self, target: SlaTarget, at: datetime) -> Ticket | None:
        """The target's due time has passed (a timer fired): BREACHED, for good. None when the
        clock is not running or not yet due (a stale timer)."""
        clock = self.sla.clock(target) if self.sla else None
        if (
            clock is None
            or clock.state is not ClockState.RUNNING
            or clock.due_at is None
            or clock.due_at > at
            or self.sla is None
        ):
            return None
        return self._changed(at, sla=self.sla.with_clock(replace(clock, state=ClockState.BREACHED)))

    def warn_at_risk(self, target: SlaTarget, at: datetime) -> Ticket | None:
        """The target's at-risk point has passed: the warning is recorded (once)."""
        clock = self.sla.clock(target) if self.sla else None
        if (
            clock is None
            or self.sla is None
            or clock.state is not ClockState.RUNNING
            or clock.at_risk_fired
            or clock.at_risk_at is None
            or clock.at_risk_at > at
        ):
            return None
        return self._changed(at, sla=self.sla.with_clock(replace(clock, at_risk_fired=True)))

    # -- lifecycle -------------------------------------------------------------------------

    def transition(
        self,
        to: TicketStatus,
        at: datetime,
        calendar: BusinessCalendar | None,
        reason: str = "",
    ) -> tuple[Ticket, StatusChange | None]:
        """Move along the lifecycle; FAILED_PRECONDITION for a move it does not allow."""
        if to is self.status:
            return self, None
        if to not in TRANSITIONS[self.status]:
            raise FailedPrecondition(
                "ILLEGAL_TRANSITION",
                "ticket",
                f"a {self.status.value} ticket cannot move to {to.value}",
            )
        change = StatusChange(from_status=self.status, to_status=to, at=at, reason=reason)
        sla = self.sla
        if sla is not None:
            clocks = tuple(_follow_status(clock, change, sla) for clock in sla.clocks)
            sla = replace(sla, clocks=clocks).refreshed(calendar)
        ticket = self._changed(
            at,
            status=to,
            sla=sla,
            status_history=(*self.status_history, change),
            reopen_count=self.reopen_count + (1 if change.reopen else 0),
            resolved_at=at
            if to is TicketStatus.RESOLVED
            else (None if change.reopen else self.resolved_at),
        )
        return ticket, change

    def add_message(
        self, message: Message, calendar: BusinessCalendar | None
    ) -> tuple[Ticket, StatusChange | None, bool]:
        """The ticket after ``message``: (ticket, automatic status change, first response?).

        A public human reply stops the response clocks and opens a NEW ticket; a customer
        message starts a next-response clock after a reply, takes a ticket out of
        PENDING_CUSTOMER and reopens a RESOLVED one."""
        if self.status is TicketStatus.CLOSED:
            raise FailedPrecondition(
                "TICKET_CLOSED",
                "ticket",
                "a closed ticket takes no messages; open a follow-up ticket",
            )
        if message.sent_at < self.created_at - timedelta(days=366):
            raise InvalidArgument.single("message.send_time", "is too far before the ticket")
        at = message.sent_at
        ticket = self
        change: StatusChange | None = None
        first_response = False
        if message.is_human_public_reply:
            first_response = self.first_response_at is None
            ticket = ticket._stop_response_clocks(at)
            ticket = replace(
                ticket,
                first_response_at=self.first_response_at or at,
                awaiting_reply_since=None,
            )
            if ticket.status is TicketStatus.NEW:
                ticket, change = ticket.transition(TicketStatus.OPEN, at, calendar, "agent reply")
        elif message.is_customer_message and message.visibility is Visibility.PUBLIC:
            if ticket.first_response_at is not None and ticket.awaiting_reply_since is None:
                ticket = ticket._start_next_response(at)
            if ticket.status in (TicketStatus.PENDING_CUSTOMER, TicketStatus.RESOLVED):
                reason = "customer replied"
                ticket, change = ticket.transition(TicketStatus.OPEN, at, calendar, reason)
        if ticket.sla is not None:
            ticket = replace(ticket, sla=ticket.sla.refreshed(calendar))
        return ticket._changed(at), change, first_response

    def _stop_response_clocks(self, at: datetime) -> Ticket:
        if self.sla is None:
            return self
        sla = self.sla
        for target in (SlaTarget.FIRST_RESPONSE, SlaTarget.NEXT_RESPONSE):
            clock = sla.clock(target)
            if clock is not None and clock.stopped_at is None:
                sla = sla.with_clock(clock.stop(at))
        return replace(self, sla=sla)

    def _start_next_response(self, at: datetime) -> Ticket:
        ticket = replace(self, awaiting_reply_since=at)
        if self.sla is None:
            return ticket
        if self.sla.next_response is None:
            return ticket
        kind, seconds = self.sla.next_response
        clock = TargetClock(
            target=SlaTarget.NEXT_RESPONSE, clock=kind, seconds=seconds, started_at=at
        )
        if not self.sla.runs_in(self.status):
            clock = clock.pause(at)
        return replace(ticket, sla=self.sla.with_clock(clock))

    def link_interaction(self, interaction: Interaction, at: datetime) -> Ticket:
        """An earlier interaction about the same issue; it can only move the first touch
        earlier."""
        if interaction.occurred_at > at:
            raise InvalidArgument.single("interaction.occurred_time", "must not be in the future")
        if self.status is TicketStatus.CLOSED:
            raise FailedPrecondition("TICKET_CLOSED", "ticket", "a closed ticket cannot change")
        return self._changed(
            at,
            interactions=(*self.interactions, interaction),
            first_touch_at=min(self.first_touch_at, interaction.occurred_at),
        )

    def update(self, changes: Mapping[str, Any], at: datetime) -> tuple[Ticket, list[str]]:
        """Set the named fields; returns the ticket and the fields whose value changed."""
        unknown = sorted(set(changes) - UPDATABLE_FIELDS)
        if unknown:
            raise InvalidArgument(
                [FieldViolation(f"update_mask.{name}", "cannot be updated") for name in unknown]
            )
        if self.status is TicketStatus.CLOSED:
            raise FailedPrecondition("TICKET_CLOSED", "ticket", "a closed ticket cannot change")
        if "subject" in changes and not str(changes["subject"]).strip():
            raise InvalidArgument.single("ticket.subject", "must not be blank")
        normalised = dict(changes)
        if "tags" in normalised:
            normalised["tags"] = tuple(dict.fromkeys(normalised["tags"]))
        if "subject" in normalised:
            normalised["subject"] = str(normalised["subject"]).strip()
        changed = [name for name, value in normalised.items() if getattr(self, name) != value]
        if not changed:
            return self, []
        values = {name: normalised[name] for name in changed}
        return self._changed(at, **values), sorted(changed)

    def record_routing(self, records: Sequence[RoutingRecord], at: datetime) -> Ticket:
        """Append automatic decisions (the audit trail of routing and escalation)."""
        if not records:
            return self
        return self._changed(at, routing=(*self.routing, *records))

    def _changed(self, at: datetime, **changes: Any) -> Ticket:
        return replace(self, **changes, updated_at=max(at, self.updated_at))

    @property
    def counts_as_open_for(self) -> str:
        """The agent whose open-ticket count includes this ticket ("" for none)."""
        return self.assignee_id if self.status.is_open else ""


def _follow_status(clock: TargetClock, change: StatusChange, sla: TicketSla) -> TargetClock:
    """One clock after a status change: pause/resume, stop at resolve, restart at reopen."""
    if clock.target is SlaTarget.RESOLUTION:
        if change.to_status is TicketStatus.RESOLVED:
            return clock.stop(change.at)
        if change.reopen:
            clock = clock.restart(change.at)
    if sla.runs_in(change.to_status):
        return clock.resume(change.at)
    return clock.pause(change.at)
