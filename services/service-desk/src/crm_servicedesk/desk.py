"""The service desk's use cases: each one a transaction over the domain, the store and the outbox.

The API handlers translate protobuf to the arguments here and back; the durable timers call
:meth:`ServiceDesk.fire_timer`. Every change of a ticket runs through :meth:`_change_ticket`, which
reads the ticket, applies a pure domain function, writes the new version, derives the SLA facts
(clock changes, targets met) and the timers from the difference, and publishes the events, all
in one transaction.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message as ProtoMessage
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from crm.servicedesk.v1 import events_pb2
from crm_calendar.business_calendar import BusinessCalendar
from crm_platform.clock import Clock, process_clock
from crm_platform.context import Actor, ActorType, CallContext, current_call
from crm_platform.errors import FailedPrecondition, InvalidArgument, NotFound, StaleVersion
from crm_platform.events import Event
from crm_platform.mongo import replace_version
from crm_platform.outbox import Outbox
from crm_platform.timers import Timer, TimerEvents, TimerStore
from crm_servicedesk import contract
from crm_servicedesk.domain.configuration import Agent, CalendarRecord
from crm_servicedesk.domain.mention import Mention
from crm_servicedesk.domain.routing import (
    ActionKind,
    AgentLoad,
    AssignStrategy,
    Decision,
    RoutingRule,
    TicketFacts,
    Trigger,
    action_to_document,
    choose_agent,
    evaluate,
)
from crm_servicedesk.domain.sla_policy import SlaPolicy, select_policy
from crm_servicedesk.domain.survey import Survey, SurveyAnswer
from crm_servicedesk.domain.ticket import (
    ClockState,
    Interaction,
    Message,
    RoutingRecord,
    StatusChange,
    TargetClock,
    Ticket,
)
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
from crm_servicedesk.storage import (
    AGENTS,
    MENTIONS,
    MESSAGES,
    POLICIES,
    RULES,
    SURVEYS,
    ServiceDeskStore,
    scoped_id,
)

R = TypeVar("R")
_TURNS: ContextVar[dict[str, int] | None] = ContextVar("crm_servicedesk_turns", default=None)
SOURCE = "/crm/servicedesk"
log = logging.getLogger(__name__)
TIMER_AT_RISK = "at_risk"
# How an escalated ticket is marked (rules can test it: "escalate once").
ESCALATED_TAG = "escalated"
# The actor of SLA facts nobody caused directly (at-risk warnings, breaches).
SLA_ACTOR = Actor(ActorType.SYSTEM, "sla-timer")
TIMER_BREACH = "breach"
# A ticket changed concurrently (a timer firing while an agent replies) is read again.
CONFLICT_RETRIES = 5


def new_id() -> str:
    """A server-assigned id."""
    return uuid.uuid4().hex


def utc_now(clock: Clock | None = None) -> datetime:
    """Now on ``clock`` (default: the process clock, the wall clock unless ``CRM_CLOCK_*``
    accelerate it, see :mod:`crm_platform.clock`), at the millisecond precision the database
    keeps."""
    now = (clock if clock is not None else process_clock()).now()
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


@dataclass(frozen=True, slots=True)
class ContactRef:
    """A contact as the service desk needs it."""

    contact_id: str
    tier: str


@dataclass(frozen=True, slots=True)
class SocialAuthor:
    """A mention's author, to look up or create as a contact."""

    network: str
    handle: str


class ContactDirectory(Protocol):
    """The contacts service, as the service desk uses it."""

    async def get(self, contact_id: str) -> ContactRef:
        """The contact; NotFound when the tenant has no such contact."""
        ...

    async def lookup(self, kind: str, value: str, network: str) -> ContactRef:
        """The contact owning an identity; NotFound when nobody does."""
        ...

    async def lookup_authors(
        self, authors: Sequence[SocialAuthor]
    ) -> dict[SocialAuthor, ContactRef]:
        """The contacts owning social handles (unknown authors are left out)."""
        ...

    async def create_for_author(self, author: SocialAuthor, request_id: str) -> ContactRef:
        """A new contact for a social author (idempotent by ``request_id``)."""
        ...


@dataclass(frozen=True, slots=True)
class TicketDraft:
    """What a caller gives to open a ticket."""

    type: TicketType
    channel: Channel
    priority: Priority | None
    subject: str
    description: str
    assignee_id: str
    team_id: str
    tags: tuple[str, ...]
    category: str
    product: str
    first_touch_at: datetime | None
    interactions: tuple[Interaction, ...]
    first_message: str = ""


@dataclass(frozen=True, slots=True)
class MessageDraft:
    """What a caller gives to add a message."""

    author_type: AuthorType
    author_id: str
    visibility: Visibility
    channel: Channel | None
    body: str
    sent_at: datetime | None


@dataclass(frozen=True, slots=True)
class MentionDraft:
    """One mention as ingested (validated into a :class:`Mention`)."""

    network: str
    post_id: str
    author_handle: str
    author_followers: int
    text: str
    url: str
    posted_at: datetime
    in_reply_to: str
    brand: str


@dataclass(frozen=True, slots=True)
class IngestResult:
    """The outcome of one batch of mentions."""

    mentions: tuple[Mention, ...]
    duplicates: frozenset[str]
    tickets_opened: int


@dataclass(slots=True)
class _Facts:
    """What one ticket change publishes, besides the SLA facts derived from the difference."""

    payloads: list[tuple[ProtoMessage, datetime, Actor | None]] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    surveys: list[Survey] = field(default_factory=list)

    def add(self, payload: ProtoMessage, at: datetime, actor: Actor | None = None) -> None:
        self.payloads.append((payload, at, actor))


TicketChange = Callable[
    [Ticket, BusinessCalendar | None, AsyncClientSession, _Facts], Awaitable[Ticket]
]


class ServiceDesk:
    """Tickets, conversations, configuration, mentions and surveys of every tenant."""

    def __init__(
        self,
        store: ServiceDeskStore,
        outbox: Outbox,
        timers: TimerStore,
        contacts: ContactDirectory,
        *,
        survey_valid_for: timedelta = timedelta(days=7),
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self.store = store
        self.outbox = outbox
        self.timers = timers
        self.contacts = contacts
        self.survey_valid_for = survey_valid_for
        self.now = now
        # Wakes the timer worker when a commit armed a timer earlier than it sleeps for.
        self.timer_armed: Callable[[datetime], None] = lambda due_at: None
        self._config: dict[str, tuple[Any, Any]] = {
            "policy": (store.policies, POLICIES),
            "rule": (store.rules, RULES),
            "agent": (store.agents, AGENTS),
        }

    # -- tickets ---------------------------------------------------------------------------

    async def create_ticket(
        self,
        draft: TicketDraft,
        requester: ContactRef,
        *,
        request_id: str = "",
        fingerprint: str = "",
        source_mention_id: str = "",
    ) -> Ticket:
        """Open a ticket: routing rules, the SLA policy and its timers, the first message."""
        call = current_call()
        at = self.now()

        async def work(session: AsyncClientSession) -> tuple[Ticket, list[datetime]]:
            earlier = await self.store.earlier_result(
                call.tenant_id, "ticket", request_id, fingerprint, session
            )
            if earlier is not None:
                return await self.store.ticket(call.tenant_id, earlier, session), []
            facts = _Facts()
            ticket = await self._open_ticket(
                draft, requester, at, source_mention_id, session, facts
            )
            await self.store.remember(
                call.tenant_id, "ticket", request_id, fingerprint, ticket.ticket_id, at, session
            )
            return ticket, await self._publish(None, ticket, facts, session)

        return await self._commit(work)

    async def _open_ticket(
        self,
        draft: TicketDraft,
        requester: ContactRef,
        at: datetime,
        source_mention_id: str,
        session: AsyncClientSession,
        facts: _Facts,
    ) -> Ticket:
        tenant_id = current_call().tenant_id
        ticket = Ticket.open(
            ticket_id=new_id(),
            tenant_id=tenant_id,
            type_=draft.type,
            channel=draft.channel,
            priority=draft.priority,
            subject=draft.subject,
            description=draft.description,
            contact_id=requester.contact_id,
            customer_tier=requester.tier,
            assignee_id=draft.assignee_id,
            team_id=draft.team_id,
            tags=draft.tags,
            category=draft.category,
            product=draft.product,
            first_touch_at=draft.first_touch_at,
            interactions=draft.interactions,
            source_mention_id=source_mention_id,
            at=at,
        )
        if ticket.assignee_id:
            await self._require_agent(tenant_id, ticket.assignee_id, session)
        ticket = await self._route(ticket, Trigger.TICKET_CREATED, at, session, facts)
        ticket = await self._apply_policy(ticket, session)
        # First on the topic: the routing decisions taken while opening it follow it.
        facts.payloads.insert(
            0, (events_pb2.TicketCreated(ticket=contract.ticket_to_proto(ticket)), at, None)
        )
        if draft.first_message.strip():
            message = Message(
                message_id=new_id(),
                ticket_id=ticket.ticket_id,
                tenant_id=tenant_id,
                author_type=AuthorType.CUSTOMER,
                author_id=requester.contact_id,
                visibility=Visibility.PUBLIC,
                channel=ticket.channel,
                body=draft.first_message,
                sent_at=at,
            )
            facts.messages.append(message)
            facts.add(
                events_pb2.MessageAdded(
                    message=contract.message_to_proto(message),
                    contact_id=ticket.contact_id,
                    ticket_version=ticket.version,
                ),
                at,
            )
        return ticket

    async def get_ticket(self, ticket_id: str) -> Ticket:
        """A ticket of the caller's tenant."""
        return await self.store.ticket(current_call().tenant_id, ticket_id)

    async def update_ticket(
        self, ticket_id: str, changes: Mapping[str, Any], expected_version: int
    ) -> Ticket:
        """Change ticket fields; TICKET_UPDATED rules run, a new priority re-selects the SLA."""

        async def change(
            ticket: Ticket,
            calendar: BusinessCalendar | None,
            session: AsyncClientSession,
            facts: _Facts,
        ) -> Ticket:
            at = self.now()
            if changes.get("assignee_id"):
                await self._require_agent(ticket.tenant_id, str(changes["assignee_id"]), session)
            updated, changed = ticket.update(changes, at)
            if not changed:
                return ticket
            updated = await self._route(updated, Trigger.TICKET_UPDATED, at, session, facts)
            if {"priority", "type"} & set(changed) or updated.priority != ticket.priority:
                updated = await self._apply_policy(updated, session, at)
            paths = sorted(set(changed) | _routed_fields(ticket, updated))
            facts.add(
                events_pb2.TicketUpdated(
                    ticket=contract.ticket_to_proto(replace(updated, version=ticket.version + 1)),
                    changed_fields=FieldMask(paths=paths),
                    previous_version=ticket.version,
                ),
                at,
            )
            return updated

        return await self._change_ticket(ticket_id, change, expected_version)

    async def transition(
        self, ticket_id: str, status: TicketStatus, reason: str, expected_version: int
    ) -> Ticket:
        """Move a ticket along its lifecycle; resolving it sends the survey."""

        async def change(
            ticket: Ticket,
            calendar: BusinessCalendar | None,
            session: AsyncClientSession,
            facts: _Facts,
        ) -> Ticket:
            at = self.now()
            moved, status_change = ticket.transition(status, at, calendar, reason)
            if status_change is not None:
                await self._status_changed(ticket, moved, status_change, session, facts)
            return moved

        return await self._change_ticket(ticket_id, change, expected_version)

    async def link_interaction(self, ticket_id: str, interaction: Interaction) -> Ticket:
        """Link an earlier interaction; the first touch can only move earlier."""

        async def change(
            ticket: Ticket,
            calendar: BusinessCalendar | None,
            session: AsyncClientSession,
            facts: _Facts,
        ) -> Ticket:
            at = self.now()
            linked = ticket.link_interaction(interaction, at)
            facts.add(
                events_pb2.InteractionLinked(
                    ticket_id=ticket.ticket_id,
                    contact_id=ticket.contact_id,
                    interaction=contract.interaction_to_proto(interaction),
                    first_touch_time=contract.timestamp(linked.first_touch_at),
                ),
                at,
            )
            return linked

        return await self._change_ticket(ticket_id, change, 0)

    async def add_message(
        self, ticket_id: str, draft: MessageDraft, *, request_id: str = "", fingerprint: str = ""
    ) -> tuple[Message, Ticket]:
        """Add a message; a public agent reply stops the response clocks, a customer message
        may start a next-response clock or reopen the ticket."""
        call = current_call()
        created: list[Message] = []

        async def change(
            ticket: Ticket,
            calendar: BusinessCalendar | None,
            session: AsyncClientSession,
            facts: _Facts,
        ) -> Ticket:
            created.clear()
            earlier = await self.store.earlier_result(
                call.tenant_id, "message", request_id, fingerprint, session
            )
            if earlier is not None:
                created.append(
                    await self.store.message(call.tenant_id, ticket_id, earlier, session)
                )
                return ticket
            now = self.now()
            message = Message(
                message_id=new_id(),
                ticket_id=ticket.ticket_id,
                tenant_id=ticket.tenant_id,
                author_type=draft.author_type,
                author_id=draft.author_id
                or (ticket.contact_id if draft.author_type is AuthorType.CUSTOMER else ""),
                visibility=draft.visibility,
                channel=draft.channel or ticket.channel,
                body=draft.body,
                sent_at=min(draft.sent_at or now, now),
            )
            after, status_change, first_response = ticket.add_message(message, calendar)
            created.append(message)
            facts.messages.append(message)
            facts.add(
                events_pb2.MessageAdded(
                    message=contract.message_to_proto(message),
                    contact_id=ticket.contact_id,
                    first_response=first_response,
                    # The version this change gives the ticket (see _change_ticket).
                    ticket_version=ticket.version + 1,
                ),
                message.sent_at,
            )
            if status_change is not None:
                await self._status_changed(ticket, after, status_change, session, facts)
            await self.store.remember(
                call.tenant_id,
                "message",
                request_id,
                fingerprint,
                message.message_id,
                now,
                session,
            )
            return after

        ticket = await self._change_ticket(ticket_id, change, 0)
        return created[0], ticket

    async def list_messages(self, ticket_id: str, include_internal: bool) -> list[Message]:
        """A ticket's conversation (NOT_FOUND for another tenant's ticket)."""
        tenant_id = current_call().tenant_id
        await self.store.ticket(tenant_id, ticket_id)
        return await self.store.ticket_messages(tenant_id, ticket_id, include_internal)

    async def record_receipt(
        self, ticket_id: str, message_id: str, kind: str, at: datetime
    ) -> Message:
        """Record a delivery or read receipt of an outbound message (the earliest one wins)."""
        call = current_call()
        if at > self.now() + timedelta(minutes=5):
            raise InvalidArgument.single("time", "must not be in the future")

        async def work(session: AsyncClientSession) -> tuple[Message, list[datetime]]:
            ticket = await self.store.ticket(call.tenant_id, ticket_id, session)
            message = await self.store.message(call.tenant_id, ticket_id, message_id, session)
            if message.author_type is AuthorType.CUSTOMER:
                raise FailedPrecondition(
                    "NOT_OUTBOUND", f"message/{message_id}", "receipts are for outbound messages"
                )
            if at < message.sent_at:
                raise InvalidArgument.single("time", "must not be before the message was sent")
            current = message.delivered_at if kind == "delivered" else message.read_at
            if current is not None and current <= at:
                return message, []
            updated = (
                replace(message, delivered_at=at)
                if kind == "delivered"
                else replace(message, read_at=at, delivered_at=message.delivered_at or at)
            )
            await self.store.messages.replace_one(
                {"_id": message.message_id, "tenant_id": call.tenant_id},
                MESSAGES.to_document(updated) | {"tenant_id": call.tenant_id},
                session=session,
            )
            event = events_pb2.ReceiptRecorded(
                ticket_id=ticket_id,
                contact_id=ticket.contact_id,
                message_id=message_id,
                kind=contract.RECEIPT_KINDS[kind],
                time=contract.timestamp(at),
            )
            await self.outbox.add(
                [self._event(event, ticket.contact_id, f"tickets/{ticket_id}", at)],
                session,
                sequence=ticket.version,
            )
            return updated, []

        return await self._commit(work)

    # -- the change pipeline ---------------------------------------------------------------

    async def _change_ticket(
        self, ticket_id: str, change: TicketChange, expected_version: int
    ) -> Ticket:
        tenant_id = current_call().tenant_id

        async def work(session: AsyncClientSession) -> tuple[Ticket, list[datetime]]:
            before = await self.store.ticket(tenant_id, ticket_id, session)
            if expected_version and before.version != expected_version:
                raise StaleVersion(f"ticket/{ticket_id}", expected_version, before.version)
            calendar = await self._calendar_of(before, session)
            facts = _Facts()
            after = await change(before, calendar, session, facts)
            if after == before and not facts.payloads:
                return before, []
            after = replace(after, version=before.version + 1)
            return after, await self._publish(before, after, facts, session)

        for attempt in range(CONFLICT_RETRIES):
            try:
                return await self._commit(work)
            except FailedPrecondition as exc:
                if exc.violation_type != "CONCURRENT_UPDATE" or attempt == CONFLICT_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _commit(
        self, work: Callable[[AsyncClientSession], Awaitable[tuple[R, list[datetime]]]]
    ) -> R:
        """Run a write transaction; then wake the relay and the timer worker."""
        # Round-robin turns taken by this operation, kept across the transaction's retries.
        token = _TURNS.set({})
        try:
            result, armed = await self.store.store.in_transaction(work)
        finally:
            _TURNS.reset(token)
        self.outbox.notify_committed()
        for due_at in armed:
            self.timer_armed(due_at)
        return result

    async def _publish(
        self,
        before: Ticket | None,
        after: Ticket,
        facts: _Facts,
        session: AsyncClientSession,
        *,
        skip_timer: str = "",
    ) -> list[datetime]:
        """Write the ticket, its new messages and surveys, the SLA facts and timers, and the
        events. Returns the due times of the timers armed."""
        await self.store.save_ticket(before, after, session)
        tenant_id = after.tenant_id
        if facts.messages:
            await self.store.messages.insert_many(
                [MESSAGES.to_document(m) | {"tenant_id": tenant_id} for m in facts.messages],
                session=session,
            )
        if facts.surveys:
            await self.store.surveys.insert_many(
                [SURVEYS.to_document(s) | {"tenant_id": tenant_id} for s in facts.surveys],
                session=session,
            )
        now = self.now()
        if before is None or before.sla != after.sla:
            self._sla_facts(before, after, now, facts)
        armed = await self._arm_timers(before, after, session, skip_timer)
        subject = f"tickets/{after.ticket_id}"
        events = [
            self._event(payload, after.contact_id, subject, at, actor)
            for payload, at, actor in facts.payloads
        ]
        await self.outbox.add(events, session, sequence=after.version)
        return armed

    def _sla_facts(
        self, before: Ticket | None, after: Ticket, now: datetime, facts: _Facts
    ) -> None:
        if after.sla is None:
            return
        breaches: list[tuple[ProtoMessage, datetime, Actor | None]] = []
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
                breach = events_pb2.SlaBreached(
                    ticket_id=after.ticket_id,
                    contact_id=after.contact_id,
                    target=contract.SLA_TARGETS[clock.target],
                    due_time=contract.timestamp(clock.due_at),
                    fire_time=contract.timestamp(now),
                )
                breaches.append((breach, clock.due_at, SLA_ACTOR))
            newly_met = clock.state is ClockState.MET and (
                old is None or old.state is not ClockState.MET or old.stopped_at != clock.stopped_at
            )
            if newly_met and clock.stopped_at is not None:
                facts.add(
                    events_pb2.SlaTargetMet(
                        ticket_id=after.ticket_id,
                        contact_id=after.contact_id,
                        target=contract.SLA_TARGETS[clock.target],
                        due_time=contract.timestamp(clock.due_at),
                        met_time=contract.timestamp(clock.stopped_at),
                    ),
                    clock.stopped_at,
                )
        facts.payloads[:0] = breaches  # a breach happened before what noticed it
        facts.add(
            events_pb2.SlaClocksChanged(
                ticket_id=after.ticket_id,
                contact_id=after.contact_id,
                sla=contract.sla_to_proto(after.sla),
            ),
            now,
        )

    async def _arm_timers(
        self, before: Ticket | None, after: Ticket, session: AsyncClientSession, skip: str
    ) -> list[datetime]:
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

    def _event(
        self,
        payload: ProtoMessage,
        key: str,
        subject: str,
        at: datetime,
        actor: Actor | None = None,
    ) -> Event:
        call = current_call()
        if actor is not None:
            call = CallContext(tenant_id=call.tenant_id, actor=actor)
        return Event.of(payload, source=SOURCE, subject=subject, key=key, call=call, time=at)

    async def _status_changed(
        self,
        before: Ticket,
        after: Ticket,
        change: StatusChange,
        session: AsyncClientSession,
        facts: _Facts,
    ) -> None:
        facts.add(
            events_pb2.TicketStatusChanged(
                ticket=contract.ticket_to_proto(replace(after, version=before.version + 1)),
                from_status=contract.TICKET_STATUSES[change.from_status],
                to_status=contract.TICKET_STATUSES[change.to_status],
                reason=change.reason,
                change_time=contract.timestamp(change.at),
                reopen=change.reopen,
            ),
            change.at,
        )
        if change.to_status is TicketStatus.RESOLVED:
            sent = await self.store.survey_for_ticket(
                after.tenant_id, after.ticket_id, "resolved", session
            )
            if sent is None:
                survey = self._new_survey(after, change.at, "resolved")
                facts.surveys.append(survey)
                facts.add(
                    events_pb2.SurveySent(survey=contract.survey_to_proto(survey, change.at)),
                    change.at,
                )

    # -- SLA -------------------------------------------------------------------------------

    async def _calendar_of(
        self, ticket: Ticket, session: AsyncClientSession | None
    ) -> BusinessCalendar | None:
        if ticket.sla is None or not ticket.sla.calendar_id:
            return None
        return await self.store.calendar_version(
            ticket.tenant_id, ticket.sla.calendar_id, ticket.sla.calendar_version, session
        )

    async def _apply_policy(
        self, ticket: Ticket, session: AsyncClientSession, at: datetime | None = None
    ) -> Ticket:
        policies = await self.store.list_all(
            self.store.policies, POLICIES, ticket.tenant_id, session
        )
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
        self, policy: SlaPolicy | None, session: AsyncClientSession
    ) -> BusinessCalendar | None:
        if policy is None or not policy.calendar_id:
            return None
        record = await self.store.calendar(policy.tenant_id, policy.calendar_id, session)
        return record.calendar

    async def fire_timer(self, timer: Timer, session: AsyncClientSession) -> TimerEvents:
        """A durable SLA timer fired: the at-risk warning or the breach, once, then the
        escalation rules of that trigger."""
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
        facts = _Facts()
        if timer.kind == TIMER_BREACH:
            trigger = Trigger.SLA_BREACHED  # the SlaBreached event comes from the SLA difference
        else:
            assert clock.at_risk_at is not None
            facts.add(
                events_pb2.SlaAtRisk(
                    ticket_id=ticket_id,
                    contact_id=before.contact_id,
                    target=contract.SLA_TARGETS[target],
                    due_time=contract.timestamp(clock.due_at),
                    at_risk_time=contract.timestamp(clock.at_risk_at),
                    fire_time=contract.timestamp(now),
                ),
                clock.at_risk_at,
                SLA_ACTOR,
            )
            trigger = Trigger.SLA_AT_RISK
        routed = await self._route(fired, trigger, now, session, facts, sla_target=target)
        if routed.priority != fired.priority:
            routed = await self._apply_policy(routed, session, now)
        after = replace(routed, version=before.version + 1)
        # Timers this firing re-armed are found by the worker's next look-up (it loops).
        await self._publish(before, after, facts, session, skip_timer=timer.timer_id)
        return TimerEvents()

    # -- routing ---------------------------------------------------------------------------

    async def _route(
        self,
        ticket: Ticket,
        trigger: Trigger,
        at: datetime,
        session: AsyncClientSession,
        facts: _Facts,
        *,
        sla_target: SlaTarget | None = None,
    ) -> Ticket:
        rules = await self.store.list_all(self.store.rules, RULES, ticket.tenant_id, session)
        if not rules:
            return ticket
        decisions = evaluate(rules, trigger, ticket_facts(ticket, at, sla_target=sla_target))
        if not decisions:
            return ticket
        routed, records = await self._apply_decisions(ticket, decisions, trigger, at, session)
        if records:
            routed = routed.record_routing(records, at)
            for record in records:
                facts.add(
                    events_pb2.TicketRouted(
                        ticket_id=ticket.ticket_id,
                        contact_id=ticket.contact_id,
                        decisions=[contract.routing_record_to_proto(record)],
                    ),
                    at,
                    Actor(ActorType.RULE, record.rule_id),
                )
        return routed

    async def _apply_decisions(
        self,
        ticket: Ticket,
        decisions: Sequence[Decision],
        trigger: Trigger,
        at: datetime,
        session: AsyncClientSession,
    ) -> tuple[Ticket, list[RoutingRecord]]:
        records: list[RoutingRecord] = []
        for decision in decisions:
            action = decision.action
            agent_id = ""
            if action.kind is ActionKind.ASSIGN_TEAM:
                ticket = _moved_to_team(ticket, action.team_id)
            elif action.kind is ActionKind.ASSIGN_AGENT:
                team_id = action.team_id or ticket.team_id
                loads = [
                    a.load()
                    for a in await self.store.team_agents(ticket.tenant_id, team_id, session)
                ]
                assert action.strategy is not None
                cursor = None
                if action.strategy is AssignStrategy.ROUND_ROBIN:
                    cursor = await self._round_robin_cursor(ticket.tenant_id, team_id, loads)
                chosen = choose_agent(
                    action.strategy, team_id, loads, action.required_skills, cursor
                )
                if chosen is None:
                    continue
                agent_id = chosen
                ticket = replace(ticket, team_id=team_id, assignee_id=chosen)
            elif action.kind is ActionKind.SET_PRIORITY:
                assert action.priority is not None
                ticket = replace(ticket, priority=Priority(action.priority))
            elif action.kind is ActionKind.ADD_TAG:
                ticket = replace(ticket, tags=tuple(dict.fromkeys((*ticket.tags, action.tag))))
            elif action.kind is ActionKind.ESCALATE:
                ticket = replace(
                    _moved_to_team(ticket, action.team_id or ticket.team_id),
                    priority=ticket.priority.raised(),
                    tags=tuple(dict.fromkeys((*ticket.tags, ESCALATED_TAG))),
                )
            else:
                continue  # OPEN_TICKET is the mention flow's decision
            records.append(
                RoutingRecord(
                    rule_id=decision.rule_id,
                    rule_version=decision.rule_version,
                    trigger=trigger.value,
                    action=action_to_document(action),
                    assigned_agent_id=agent_id,
                    decided_at=at,
                )
            )
        return ticket, records

    async def _round_robin_cursor(
        self, tenant_id: str, team_id: str, loads: Sequence[AgentLoad]
    ) -> str | None:
        """The agent whose turn was last, from the team's turn counter. The counter is taken
        outside the ticket's transaction: concurrent tickets for one team would otherwise all
        conflict on it (an aborted ticket just skips a turn)."""
        members = sorted(a.agent_id for a in loads if a.available and team_id in a.team_ids)
        if not members:
            return None
        taken = _TURNS.get()
        turn = taken.get(team_id) if taken is not None else None
        if turn is None:
            turn = await self.store.next_turn(tenant_id, team_id)
            if taken is not None:
                taken[team_id] = turn
        return members[(turn - 1) % len(members)] if turn else None

    async def _require_agent(
        self, tenant_id: str, agent_id: str, session: AsyncClientSession | None
    ) -> None:
        found = await self.store.agents.find_one(
            {"_id": scoped_id(tenant_id, agent_id)}, {"_id": 1}, session=session
        )
        if found is None:
            raise NotFound("agent", agent_id)

    # -- surveys ---------------------------------------------------------------------------

    def _new_survey(self, ticket: Ticket, at: datetime, reason: str) -> Survey:
        return Survey.send(
            survey_id=new_id(),
            tenant_id=ticket.tenant_id,
            ticket_id=ticket.ticket_id,
            contact_id=ticket.contact_id,
            channel=ticket.channel,
            at=at,
            valid_for=self.survey_valid_for,
            reason=reason,
        )

    async def send_survey(self, ticket_id: str) -> Survey:
        """Send a survey about a ticket now."""
        tenant_id = current_call().tenant_id

        async def work(session: AsyncClientSession) -> tuple[Survey, list[datetime]]:
            ticket = await self.store.ticket(tenant_id, ticket_id, session)
            at = self.now()
            survey = self._new_survey(ticket, at, "on_demand")
            await self.store.surveys.insert_one(
                SURVEYS.to_document(survey) | {"tenant_id": tenant_id}, session=session
            )
            event = events_pb2.SurveySent(survey=contract.survey_to_proto(survey, at))
            await self.outbox.add(
                [self._event(event, ticket.contact_id, f"surveys/{survey.survey_id}", at)],
                session,
                sequence=ticket.version,
            )
            return survey, []

        return await self._commit(work)

    async def answer_survey(self, survey_id: str, answer: SurveyAnswer) -> Survey:
        """Record the answer; a second answer or a late one is refused."""
        tenant_id = current_call().tenant_id

        async def work(session: AsyncClientSession) -> tuple[Survey, list[datetime]]:
            survey = await self.store.find(
                self.store.surveys, SURVEYS, "survey", tenant_id, survey_id, session
            )
            at = self.now()
            answered = survey.answer_with(answer, at)
            result = await self.store.surveys.replace_one(
                {"_id": survey_id, "tenant_id": tenant_id, "answered": False},
                SURVEYS.to_document(answered) | {"tenant_id": tenant_id},
                session=session,
            )
            if result.matched_count != 1:
                raise FailedPrecondition(
                    "SURVEY_ANSWERED", f"survey/{survey_id}", "the survey was already answered"
                )
            event = events_pb2.SurveyAnswered(survey=contract.survey_to_proto(answered, at))
            await self.outbox.add(
                [
                    self._event(
                        event,
                        survey.contact_id,
                        f"surveys/{survey_id}",
                        at,
                        Actor(ActorType.CUSTOMER, survey.contact_id),
                    )
                ],
                session,
            )
            return answered, []

        return await self._commit(work)

    async def get_survey(self, survey_id: str) -> Survey:
        """A survey of the caller's tenant."""
        return await self.store.find(
            self.store.surveys, SURVEYS, "survey", current_call().tenant_id, survey_id
        )

    # -- configuration ---------------------------------------------------------------------

    async def save_config(
        self,
        kind: str,
        aggregate: CalendarRecord | SlaPolicy | RoutingRule | Agent,
        event: ProtoMessage,
        doc_id: str,
        version: int,
    ) -> None:
        """Store a configuration item (a new version of it) and publish its change."""
        tenant_id = current_call().tenant_id
        at = self.now()

        async def work(session: AsyncClientSession) -> tuple[None, list[datetime]]:
            if isinstance(aggregate, CalendarRecord):
                await self.store.save_calendar(aggregate, tenant_id, session)
            else:
                collection, codec = self._config[kind]
                doc = codec.to_document(aggregate, doc_id=doc_id) | {"tenant_id": tenant_id}
                if version <= 1 and kind != "agent":
                    await collection.insert_one(doc, session=session)
                elif kind == "agent":
                    await collection.replace_one({"_id": doc_id}, doc, upsert=True, session=session)
                else:
                    await replace_version(collection, kind, version - 1, doc, session)
            await self.outbox.add([self._event(event, doc_id, f"{kind}s/{doc_id}", at)], session)
            return None, []

        try:
            await self._commit(work)
        except DuplicateKeyError:
            raise FailedPrecondition(
                "CONCURRENT_UPDATE", f"{kind}/{doc_id}", "changed meanwhile; read it again"
            ) from None

    # -- social listening ------------------------------------------------------------------

    async def ingest_mentions(self, drafts: Sequence[MentionDraft]) -> IngestResult:
        """Store a batch of mentions once each, scored, linked to their authors; rules may open
        a ticket from a mention (at most one per mention)."""
        call = current_call()
        at = self.now()
        batch: dict[str, Mention] = {}
        for index, draft in enumerate(drafts):
            mention = Mention.ingest(
                tenant_id=call.tenant_id,
                network=draft.network,
                post_id=draft.post_id,
                author_handle=draft.author_handle,
                author_followers=draft.author_followers,
                text=draft.text,
                url=draft.url,
                posted_at=draft.posted_at,
                in_reply_to=draft.in_reply_to,
                brand=draft.brand,
                at=at,
                field_prefix=f"mentions[{index}]",
            )
            batch.setdefault(mention.mention_id, mention)
        known = await self.store.existing_mentions(call.tenant_id, list(batch), None)
        fresh = [m for ident, m in batch.items() if ident not in known]
        authors = (
            await self.contacts.lookup_authors(
                list({SocialAuthor(m.network, m.author_handle) for m in fresh})
            )
            if fresh
            else {}
        )
        rules = await self.store.list_all(self.store.rules, RULES, call.tenant_id)
        openers: dict[str, Decision] = {}
        for mention in fresh:
            decisions = evaluate(rules, Trigger.MENTION_RECEIVED, mention_facts(mention, at))
            opener = next((d for d in decisions if d.action.kind is ActionKind.OPEN_TICKET), None)
            if opener is not None:
                openers[mention.mention_id] = opener
        requesters: dict[str, ContactRef] = {}
        for mention in fresh:
            author = SocialAuthor(mention.network, mention.author_handle)
            if author in authors:
                requesters[mention.mention_id] = authors[author]
            elif mention.mention_id in openers:
                try:
                    ref = await self.contacts.create_for_author(
                        author, f"mention:{mention.mention_id}"
                    )
                except InvalidArgument as exc:
                    # The contacts service does not take this handle as an identity: the
                    # mention is stored, but no ticket can have it as requester.
                    log.warning(
                        "mention %s: author %s cannot become a contact (%s); no ticket opened",
                        mention.mention_id,
                        mention.author_key,
                        exc.message,
                    )
                    del openers[mention.mention_id]
                    continue
                authors[author] = ref
                requesters[mention.mention_id] = ref
        linked = [
            m.linked(contact_id=requesters[m.mention_id].contact_id)
            if m.mention_id in requesters
            else m
            for m in fresh
        ]

        async def work(session: AsyncClientSession) -> tuple[IngestResult, list[datetime]]:
            again = await self.store.existing_mentions(
                call.tenant_id, [m.mention_id for m in linked], session
            )
            new = [m for m in linked if m.mention_id not in again]
            stored: list[Mention] = []
            opened = 0
            armed: list[datetime] = []
            for mention in new:
                opener = openers.get(mention.mention_id)
                if opener is None:
                    stored.append(mention)
                    continue
                draft = TicketDraft(
                    type=opener.action.ticket_type or TicketType.COMPLAINT,
                    channel=Channel.SOCIAL,
                    priority=None,
                    subject=_subject_of(mention),
                    description=mention.text,
                    assignee_id="",
                    team_id="",
                    tags=("social",),
                    category="",
                    product="",
                    first_touch_at=mention.posted_at,
                    interactions=(
                        Interaction(
                            kind=InteractionKind.SOCIAL_MENTION,
                            channel=Channel.SOCIAL,
                            occurred_at=mention.posted_at,
                            reference=mention.mention_id,
                            note=mention.url,
                        ),
                    ),
                )
                facts = _Facts()
                ticket = await self._open_ticket(
                    draft, requesters[mention.mention_id], at, mention.mention_id, session, facts
                )
                ticket = ticket.record_routing(
                    [
                        RoutingRecord(
                            rule_id=opener.rule_id,
                            rule_version=opener.rule_version,
                            trigger=Trigger.MENTION_RECEIVED.value,
                            action=action_to_document(opener.action),
                            assigned_agent_id="",
                            decided_at=at,
                        )
                    ],
                    at,
                )
                mention = mention.linked(ticket_id=ticket.ticket_id)
                stored.append(mention)
                armed += await self._publish(None, ticket, facts, session)
                opened += 1
            await self.store.insert_mentions(stored, session)
            events = [
                self._event(
                    events_pb2.MentionReceived(mention=contract.mention_to_proto(m)),
                    m.author_contact_id or m.author_key,
                    f"mentions/{m.mention_id}",
                    m.posted_at,
                    Actor(ActorType.INTEGRATION, "social-listening"),
                )
                for m in stored
            ]
            await self.outbox.add(events, session)
            duplicates = frozenset(known) | frozenset(again)
            return IngestResult(tuple(stored), duplicates, opened), armed

        try:
            result: IngestResult = await self._commit(work)
        except DuplicateKeyError:  # a concurrent ingest of the same post won: read again
            result = await self._commit(work)
        return IngestResult(
            result.mentions,
            result.duplicates | frozenset(known),
            result.tickets_opened,
        )

    async def get_mention(self, mention_id: str) -> Mention:
        """A mention of the caller's tenant."""
        tenant_id = current_call().tenant_id
        return await self.store.find(
            self.store.mentions,
            MENTIONS,
            "mention",
            tenant_id,
            mention_id,
            doc_id=scoped_id(tenant_id, mention_id),
        )


def _subject_of(mention: Mention) -> str:
    text = " ".join(mention.text.split())
    subject = f"@{mention.author_handle} on {mention.network}: {text}"
    return subject if len(subject) <= 120 else subject[:117] + "..."


def _moved_to_team(ticket: Ticket, team_id: str) -> Ticket:
    """A ticket queued for another team loses its assignee (they are in the old team)."""
    if team_id == ticket.team_id:
        return ticket
    return replace(ticket, team_id=team_id, assignee_id="")


def _routed_fields(before: Ticket, after: Ticket) -> set[str]:
    return {
        name
        for name in ("priority", "team_id", "assignee_id", "tags")
        if getattr(before, name) != getattr(after, name)
    }


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


def ticket_facts(
    ticket: Ticket, at: datetime, *, sla_target: SlaTarget | None = None
) -> TicketFacts:
    """What routing rules see of a ticket."""
    return TicketFacts(
        at=at,
        ticket_id=ticket.ticket_id,
        type=ticket.type,
        channel=ticket.channel,
        priority=ticket.priority,
        status=ticket.status,
        customer_tier=ticket.customer_tier,
        tags=frozenset(ticket.tags),
        category=ticket.category,
        product=ticket.product,
        text=f"{ticket.subject}\n{ticket.description}",
        team_id=ticket.team_id,
        assignee_id=ticket.assignee_id,
        escalated=ESCALATED_TAG in ticket.tags,
        sla_target=sla_target,
    )


def mention_facts(mention: Mention, at: datetime) -> TicketFacts:
    """What routing rules see of a mention."""
    return TicketFacts(
        at=at,
        channel=Channel.SOCIAL,
        sentiment=mention.sentiment,
        author_followers=mention.author_followers,
        text=mention.text,
    )
