"""SLA: which policy a ticket runs on, the facts a change of its clocks publishes, and the
durable timers that watch them.

A ticket's timers are named ``<ticket>:<target>:<kind>`` (kind ``at_risk`` or ``breach``); every
change arms the ones whose due time moved and cancels the ones that must no longer fire. What a
timer does when it fires is :mod:`crm_servicedesk.use_cases.sla_timers`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from crm_calendar.business_calendar import BusinessCalendar
from crm_platform.timers import Timer, TimerStore
from crm_servicedesk import events
from crm_servicedesk.domain.sla_policy import SlaPolicy, select_policy
from crm_servicedesk.domain.ticket import ClockState, TargetClock, Ticket
from crm_servicedesk.events import SLA_ACTOR, Fact
from crm_servicedesk.storage import ServiceDeskStore, Session

TIMER_AT_RISK = "at_risk"
TIMER_BREACH = "breach"


def timer_plan(ticket: Ticket) -> dict[str, datetime | None]:
    """The SLA timers a ticket needs: ``<ticket>:<target>:<kind>`` → due time, or None for a
    timer that must not fire (paused, stopped, breached, warned already)."""
    plan: dict[str, datetime | None] = {}
    clocks: Sequence[TargetClock] = ticket.sla.clocks if ticket.sla else ()
    for clock in clocks:
        base = f"{ticket.ticket_id}:{clock.target.value}"
        running = clock.state is ClockState.RUNNING
        plan[f"{base}:{TIMER_BREACH}"] = clock.due_at if running else None
        plan[f"{base}:{TIMER_AT_RISK}"] = (
            clock.at_risk_at if running and not clock.at_risk_fired else None
        )
    return plan


def sla_facts(before: Ticket | None, after: Ticket, now: datetime) -> tuple[list[Fact], list[Fact]]:
    """What the SLA difference of a change says: the breaches (they happened before what
    noticed them, so they go first) and the targets met and the new clocks (they go last)."""
    if after.sla is None:
        return [], []
    breaches: list[Fact] = []
    later: list[Fact] = []
    for clock in after.sla.clocks:
        old = before.sla.clock(clock.target) if before and before.sla else None
        if old is not None and old.started_at != clock.started_at:
            old = None  # a new next-response cycle
        if (
            clock.state is ClockState.BREACHED
            and (old is None or old.state is not ClockState.BREACHED)
            and clock.due_at is not None
        ):
            # From the timer, or from a reply that came after the due time before the
            # timer noticed (a service that was down): a breach is published either way.
            breach = events.sla_breached(after, clock.target, clock.due_at, now)
            breaches.append((breach, clock.due_at, SLA_ACTOR))
        newly_met = clock.state is ClockState.MET and (
            old is None or old.state is not ClockState.MET or old.stopped_at != clock.stopped_at
        )
        if newly_met and clock.stopped_at is not None:
            met = events.sla_target_met(after, clock.target, clock.due_at, clock.stopped_at)
            later.append((met, clock.stopped_at, None))
    later.append((events.sla_clocks_changed(after, after.sla), now, None))
    return breaches, later


class ServiceLevels:
    """SLA policies applied to tickets, and the timers of their clocks."""

    def __init__(self, store: ServiceDeskStore, timers: TimerStore) -> None:
        self.store = store
        self.timers = timers

    async def apply_policy(
        self, ticket: Ticket, session: Session, at: datetime | None = None
    ) -> Ticket:
        """The ticket on the policy that matches it now (unchanged if it is on it already)."""
        policies = await self.store.sla_policies(ticket.tenant_id, session)
        policy = select_policy(
            policies,
            priority=ticket.priority,
            type_=ticket.type,
            channel=ticket.channel,
            customer_tier=ticket.customer_tier,
        )
        if (
            policy is not None
            and ticket.sla is not None
            and (
                ticket.sla.policy_id,
                ticket.sla.policy_version,
            )
            == (policy.policy_id, policy.version)
        ):
            return ticket
        calendar = await self._policy_calendar(policy, session)
        return ticket.with_policy(policy, calendar, at)

    async def _policy_calendar(
        self, policy: SlaPolicy | None, session: Session
    ) -> BusinessCalendar | None:
        if policy is None or not policy.calendar_id:
            return None
        record = await self.store.calendar(policy.tenant_id, policy.calendar_id, session)
        return record.calendar

    async def arm_timers(
        self, before: Ticket | None, after: Ticket, session: Session, skip: str = ""
    ) -> list[datetime]:
        """Schedule the timers whose due time the change moved, cancel the ones it stopped
        (``skip``: the timer firing now); the due times of the timers armed."""
        old = timer_plan(before) if before else {}
        new = timer_plan(after)
        schedule = [
            Timer(
                timer_id=timer_id,
                tenant_id=after.tenant_id,
                due_at=due_at,
                kind=timer_id.rsplit(":", 1)[1],
                payload={"ticket_id": after.ticket_id, "target": timer_id.split(":")[1]},
            )
            for timer_id, due_at in new.items()
            if due_at is not None and old.get(timer_id) != due_at and timer_id != skip
        ]
        cancel = [
            timer_id
            for timer_id, due_at in new.items()
            if due_at is None and old.get(timer_id) is not None and timer_id != skip
        ]
        if schedule:
            await self.timers.schedule(schedule, session)
        if cancel:
            await self.timers.cancel(after.tenant_id, cancel, session)
        return [timer.due_at for timer in schedule]
