"""What a durable SLA timer does when it fires: the at-risk warning or the breach, once, then
the escalation rules of that trigger (:class:`crm_platform.timers.TimerWorker` calls
:meth:`SlaTimers.fire` inside its firing transaction)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from crm_platform.timers import Timer, TimerEvents
from crm_servicedesk import events
from crm_servicedesk.domain.routing import Trigger
from crm_servicedesk.domain.values import SlaTarget
from crm_servicedesk.events import SLA_ACTOR
from crm_servicedesk.storage import ServiceDeskStore, Session
from crm_servicedesk.use_cases.changes import TicketChange, TicketChanges
from crm_servicedesk.use_cases.routing import Router
from crm_servicedesk.use_cases.sla import TIMER_BREACH, ServiceLevels


class SlaTimers:
    """The fire handler of the service desk's SLA timers."""

    def __init__(
        self,
        store: ServiceDeskStore,
        changes: TicketChanges,
        router: Router,
        sla: ServiceLevels,
        now: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.changes = changes
        self.router = router
        self.sla = sla
        self.now = now

    async def fire(self, timer: Timer, session: Session) -> TimerEvents:
        """A timer fired: warn or breach (nothing if the clock moved on), then route."""
        ticket_id = str(timer.payload["ticket_id"])
        target = SlaTarget(str(timer.payload["target"]))
        before = await self.store.ticket(timer.tenant_id, ticket_id, session)
        now = self.now()
        fired = (
            before.breach(target, now)
            if timer.kind == TIMER_BREACH
            else (before.warn_at_risk(target, now))
        )
        if fired is None:
            return TimerEvents()
        clock = before.sla.clock(target) if before.sla else None
        assert clock is not None
        assert clock.due_at is not None
        change = TicketChange()
        if timer.kind == TIMER_BREACH:
            trigger = Trigger.SLA_BREACHED  # the SlaBreached event comes from the SLA difference
        else:
            assert clock.at_risk_at is not None
            at_risk = events.sla_at_risk(before, target, clock.due_at, clock.at_risk_at, now)
            change.add(at_risk, clock.at_risk_at, SLA_ACTOR)
            trigger = Trigger.SLA_AT_RISK
        routed = await self.router.route(fired, trigger, now, session, change, sla_target=target)
        if routed.priority != fired.priority:
            routed = await self.sla.apply_policy(routed, session, now)
        after = replace(routed, version=before.version + 1)
        # Timers this firing re-armed are found by the worker's next look-up (it loops).
        published, _ = await self.changes.write(
            before, after, change, session, skip_timer=timer.timer_id
        )
        return TimerEvents(published, sequence=after.version)
