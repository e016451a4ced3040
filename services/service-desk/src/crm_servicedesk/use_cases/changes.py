"""The step every ticket change shares: read the ticket, apply a domain change, write the new
version with its new messages and surveys, derive the SLA facts and timers from the difference,
and publish the events — in one unit of work (:mod:`crm_platform.unit_of_work`).

The use cases of each area (tickets, conversation, SLA timers, routing, social) describe *what*
changes in a :class:`TicketChange`; :class:`TicketChanges` records it.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TypeVar

from google.protobuf.message import Message as ProtoMessage

from crm_calendar.business_calendar import BusinessCalendar
from crm_platform.clock import Clock, process_clock
from crm_platform.context import Actor, current_call
from crm_platform.errors import StaleVersion
from crm_platform.events import Event
from crm_platform.unit_of_work import (
    NO_RETRIES,
    DuplicateKeyHandler,
    Retries,
    Transaction,
    UnitOfWork,
    UseCase,
)
from crm_servicedesk import events
from crm_servicedesk.domain.survey import Survey
from crm_servicedesk.domain.ticket import Message, Ticket
from crm_servicedesk.events import Fact
from crm_servicedesk.storage import ServiceDeskStore, Session
from crm_servicedesk.use_cases.sla import ServiceLevels, sla_facts

R = TypeVar("R")
# A ticket changed concurrently (a timer firing while an agent replies) is read again.
CONFLICT_RETRIES = 5
# Round-robin turns taken by one operation, kept across its transaction's reruns.
_TURNS: ContextVar[dict[str, int] | None] = ContextVar("crm_servicedesk_turns", default=None)


def new_id() -> str:
    """A server-assigned id."""
    return uuid.uuid4().hex


def utc_now(clock: Clock | None = None) -> datetime:
    """Now on ``clock`` (default: the process clock, the wall clock unless ``CRM_CLOCK_*``
    accelerate it, see :mod:`crm_platform.clock`), at the millisecond precision the database
    keeps."""
    now = (clock if clock is not None else process_clock()).now()
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def turns_taken() -> dict[str, int] | None:
    """The round-robin turns this operation took so far, by team (None outside a commit)."""
    return _TURNS.get()


@dataclass(slots=True)
class TicketChange:
    """What one ticket change publishes, besides the SLA facts derived from the difference."""

    facts: list[Fact] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    surveys: list[Survey] = field(default_factory=list)

    def add(self, payload: ProtoMessage, at: datetime, actor: Actor | None = None) -> None:
        """Publish ``payload`` (what happened at ``at``, by ``actor`` or the caller)."""
        self.facts.append((payload, at, actor))


TicketEdit = Callable[
    [Ticket, BusinessCalendar | None, Transaction, TicketChange], Awaitable[Ticket]
]
"""A change of a ticket: the ticket as read, its calendar, the transaction and the change's
facts → the ticket after it (the same ticket for no change)."""


class TicketChanges:
    """Commits use cases and records ticket changes."""

    def __init__(
        self,
        store: ServiceDeskStore,
        uow: UnitOfWork,
        sla: ServiceLevels,
        now: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.uow = uow
        self.sla = sla
        self.now = now
        # Wakes the timer worker when a commit armed a timer earlier than it sleeps for.
        self.timer_armed: Callable[[datetime], None] = lambda due_at: None

    async def commit(
        self,
        use_case: UseCase[R],
        *,
        retries: Retries = NO_RETRIES,
        on_duplicate_key: DuplicateKeyHandler | None = None,
    ) -> R:
        """Run a use case in one unit of work (events to the outbox, relay and timer worker
        woken after the commit)."""
        token = _TURNS.set({})
        try:
            return await self.uow.run(use_case, retries=retries, on_duplicate_key=on_duplicate_key)
        finally:
            _TURNS.reset(token)

    async def change(self, ticket_id: str, edit: TicketEdit, expected_version: int) -> Ticket:
        """Change a ticket of the caller's tenant (``expected_version`` 0: whatever version);
        read again when a concurrent change won."""
        tenant_id = current_call().tenant_id

        async def work(tx: Transaction) -> Ticket:
            before = await self.store.ticket(tenant_id, ticket_id, tx.session)
            if expected_version and before.version != expected_version:
                raise StaleVersion(f"ticket/{ticket_id}", expected_version, before.version)
            calendar = await self.store.ticket_calendar(before, tx.session)
            change = TicketChange()
            after = await edit(before, calendar, tx, change)
            if after == before and not change.facts:
                return before
            after = replace(after, version=before.version + 1)
            await self.record(tx, before, after, change)
            return after

        return await self.commit(work, retries=Retries(concurrent_updates=CONFLICT_RETRIES - 1))

    async def record(
        self, tx: Transaction, before: Ticket | None, after: Ticket, change: TicketChange
    ) -> None:
        """Write a ticket change in ``tx``: publish its events, wake the timer worker for the
        timers it armed once it commits."""
        published, armed = await self.write(before, after, change, tx.session)
        tx.publish(published, sequence=after.version)
        for due_at in armed:
            tx.after_commit(functools.partial(self.timer_armed, due_at))

    async def write(
        self,
        before: Ticket | None,
        after: Ticket,
        change: TicketChange,
        session: Session,
        *,
        skip_timer: str = "",
    ) -> tuple[list[Event], list[datetime]]:
        """Write the ticket, its new messages and surveys, the SLA timers; the events to
        publish (the SLA facts included) and the due times of the timers armed."""
        await self.store.save_ticket(before, after, session)
        await self.store.insert_messages(change.messages, session)
        await self.store.insert_surveys(change.surveys, session)
        now = self.now()
        if before is None or before.sla != after.sla:
            breaches, later = sla_facts(before, after, now)
            change.facts[:0] = breaches  # a breach happened before what noticed it
            change.facts += later
        armed = await self.sla.arm_timers(before, after, session, skip_timer)
        return events.ticket_events(after, change.facts), armed
