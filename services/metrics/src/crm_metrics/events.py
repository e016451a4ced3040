"""From events to facts: what each service-desk event says, written into the entity it is about.

``apply`` is the only place that reads event payloads. It returns the keys of the entities whose
facts changed (so their KPIs are derived again) and raises :class:`PoisonEvent` for an event that
can never be applied (it goes to the dead-letter topic). Events the KPIs do not need are skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from google.protobuf.descriptor import EnumDescriptor
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from crm.contacts.v1 import events_pb2 as contact_events
from crm.servicedesk.v1 import events_pb2 as ev
from crm.servicedesk.v1 import servicedesk_pb2 as pb
from crm_calendar.business_calendar import BusinessCalendar, OpeningInterval
from crm_metrics.domain.facts import (
    MentionFacts,
    MentionLink,
    MessageFact,
    SlaOutcomeFact,
    SurveyFact,
    TicketFacts,
    TransitionFact,
)
from crm_platform.errors import DomainError
from crm_platform.events import Event

TicketKey = tuple[str, str]  # (tenant, ticket id)
MentionKey = tuple[str, str, str]  # (tenant, "mention", mention id)
EntityKey = TicketKey | MentionKey
BeforeChange = Callable[[EntityKey], None]
"""Called with an entity's key just before its facts change (to retract what it contributed)."""


class PoisonEvent(ValueError):
    """An event that can never be applied (e.g. it names no ticket)."""


@dataclass(slots=True)
class Changes:
    """What one event changed."""

    tickets: list[TicketKey]
    mentions: list[MentionKey]
    calendar: BusinessCalendar | None = None


NOTHING = Changes([], [])

# The contacts topic's events are consumed too (they change no ticket today): importing their
# module registers their types, so they decode instead of being dead-lettered as unknown.
CONTACT_EVENT_TYPES = frozenset(
    message.full_name for message in contact_events.DESCRIPTOR.message_types_by_name.values()
)
_ENUM_NAMES: dict[tuple[str, int], str] = {}


def enum_name(descriptor: EnumDescriptor, number: int) -> str:
    """``CHANNEL_LIVE_CHAT`` → ``live_chat``; unspecified → ``""``."""
    key = (descriptor.full_name, number)
    name = _ENUM_NAMES.get(key)
    if name is None:
        value = descriptor.values_by_number.get(number)
        prefix = _prefix(descriptor.name)
        name = "" if value is None else value.name.removeprefix(prefix).lower()
        if name == "unspecified":
            name = ""
        _ENUM_NAMES[key] = name
    return name


def _prefix(enum_name_: str) -> str:
    out = []
    for index, char in enumerate(enum_name_):
        if char.isupper() and index:
            out.append("_")
        out.append(char.upper())
    return "".join(out) + "_"


def ms(ts: Timestamp) -> int:
    """A timestamp in integer milliseconds since the epoch."""
    return ts.seconds * 1000 + ts.nanos // 1_000_000


_CHANNEL = pb.Channel.DESCRIPTOR
_TYPE = pb.TicketType.DESCRIPTOR
_PRIORITY = pb.Priority.DESCRIPTOR
_STATUS = pb.TicketStatus.DESCRIPTOR
_AUTHOR = pb.AuthorType.DESCRIPTOR
_VISIBILITY = pb.Visibility.DESCRIPTOR
_TARGET = pb.SlaTarget.DESCRIPTOR
_INTERACTION = pb.InteractionKind.DESCRIPTOR


_SCORE_FIELDS = (
    "csat",
    "nps",
    "effort",
    "perceived_wait_minutes",
    "expected_wait_minutes",
    "purchase_intent",
    "loyalty",
)


class FactStore:
    """The facts of one partition: tickets and mentions."""

    def __init__(self) -> None:
        self.tickets: dict[TicketKey, TicketFacts] = {}
        self.mentions: dict[MentionKey, MentionFacts] = {}

    def ticket(self, tenant: str, ticket_id: str) -> TicketFacts:
        """The facts of a ticket, created empty on first sight."""
        if not ticket_id:
            raise PoisonEvent("the event names no ticket")
        key = (tenant, ticket_id)
        facts = self.tickets.get(key)
        if facts is None:
            facts = self.tickets[key] = TicketFacts(tenant, ticket_id)
        return facts


def apply(store: FactStore, event: Event, payload: Message, before: BeforeChange) -> Changes:
    """Apply one decoded event; ``before`` is called with each entity key before it changes."""
    tenant = event.tenant_id
    event_ms = int(event.time.timestamp() * 1000)
    if isinstance(payload, ev.MentionReceived):
        return _mention(store, tenant, event, payload.mention, before)
    if isinstance(payload, ev.CalendarChanged):
        return Changes([], [], calendar_from_proto(payload.calendar))
    ticket_id = _ticket_id(payload)
    if ticket_id is None:
        return NOTHING
    facts = store.ticket(tenant, ticket_id)
    if event.id in facts.applied:
        return NOTHING  # a duplicate: already in the facts
    key = (tenant, ticket_id)
    before(key)
    facts.applied.add(event.id)
    facts.last_event_ms = max(facts.last_event_ms, event_ms)
    if isinstance(payload, ev.TicketCreated | ev.TicketUpdated | ev.TicketStatusChanged):
        _snapshot(facts, event, payload.ticket, created=isinstance(payload, ev.TicketCreated))
        if isinstance(payload, ev.TicketStatusChanged):
            at = ms(payload.change_time) if payload.HasField("change_time") else event_ms
            facts.transitions[event.id] = TransitionFact(
                event.id,
                at,
                enum_name(_STATUS, payload.from_status),
                enum_name(_STATUS, payload.to_status),
                payload.reopen,
                payload.ticket.version,
            )
    elif isinstance(payload, ev.MessageAdded):
        message = payload.message
        if not message.id:
            raise PoisonEvent("MessageAdded without a message id")
        facts.contact_id = facts.contact_id or payload.contact_id
        send = ms(message.send_time) if message.HasField("send_time") else event_ms
        facts.messages[message.id] = MessageFact(
            event.id,
            send,
            enum_name(_AUTHOR, message.author_type),
            message.visibility == pb.VISIBILITY_PUBLIC,
            payload.ticket_version,
        )
        if message.HasField("deliver_time"):
            facts.deliver(message.id, ms(message.deliver_time), event.id)
        if message.author_type == pb.AUTHOR_TYPE_CUSTOMER:
            facts.touch(event.id, send, "customer message")
    elif isinstance(payload, ev.ReceiptRecorded):
        if payload.kind == pb.RECEIPT_KIND_DELIVERED:
            at = ms(payload.time) if payload.HasField("time") else event_ms
            facts.deliver(payload.message_id, at, event.id)
    elif isinstance(payload, ev.InteractionLinked):
        if payload.interaction.HasField("occurred_time"):
            kind = enum_name(_INTERACTION, payload.interaction.kind)
            facts.touch(event.id, ms(payload.interaction.occurred_time), kind)
        if payload.HasField("first_touch_time"):
            facts.touch(event.id + "#first_touch", ms(payload.first_touch_time), "first touch")
    elif isinstance(payload, ev.SlaTargetMet | ev.SlaBreached):
        target = enum_name(_TARGET, payload.target)
        if not target:
            raise PoisonEvent("an SLA outcome without a target")
        if isinstance(payload, ev.SlaTargetMet):
            met, stamp = True, payload.met_time
        else:
            met, stamp = False, payload.fire_time
        at = ms(stamp) if stamp.ByteSize() else event_ms
        due = ms(payload.due_time) if payload.HasField("due_time") else at
        facts.sla[event.id] = SlaOutcomeFact(event.id, target, met, due, at)
    elif isinstance(payload, ev.SurveySent | ev.SurveyAnswered):
        _survey(facts, event, event_ms, payload)
    return Changes([key], [])


def _ticket_id(payload: Message) -> str | None:
    if isinstance(payload, ev.TicketCreated | ev.TicketUpdated | ev.TicketStatusChanged):
        return payload.ticket.id
    if isinstance(payload, ev.MessageAdded):
        return payload.message.ticket_id
    if isinstance(payload, ev.ReceiptRecorded | ev.InteractionLinked):
        return payload.ticket_id
    if isinstance(payload, ev.SlaTargetMet | ev.SlaBreached):
        return payload.ticket_id
    if isinstance(payload, ev.SurveySent | ev.SurveyAnswered):
        return payload.survey.ticket_id
    return None


def _snapshot(facts: TicketFacts, event: Event, ticket: pb.Ticket, *, created: bool) -> None:
    if not ticket.HasField("create_time"):
        raise PoisonEvent("a ticket snapshot without create_time")
    create = ms(ticket.create_time)
    if created or facts.create_ms is None:
        facts.create_ms = create
        if created or not facts.created_event_id:
            facts.created_event_id = event.id
    facts.touch(event.id + "#created", create, "creation")
    if ticket.HasField("first_touch_time"):
        facts.touch(event.id, ms(ticket.first_touch_time), "first touch")
    for index, interaction in enumerate(ticket.interactions):
        if interaction.HasField("occurred_time"):
            facts.touch(
                f"{event.id}#{index}",
                ms(interaction.occurred_time),
                enum_name(_INTERACTION, interaction.kind),
            )
    if ticket.version > facts.snapshot_version:
        facts.snapshot_version = ticket.version
        facts.snapshot_event_id = event.id
        facts.contact_id = ticket.contact_id or facts.contact_id
        facts.dims = {
            "channel": enum_name(_CHANNEL, ticket.channel),
            "type": enum_name(_TYPE, ticket.type),
            "priority": enum_name(_PRIORITY, ticket.priority),
            "team": ticket.team_id,
            "agent": ticket.assignee_id,
            "tier": ticket.customer_tier,
            "category": ticket.category,
            "product": ticket.product,
        }
        sla = ticket.sla
        facts.calendar = (
            (sla.calendar_id, sla.calendar_version)
            if ticket.HasField("sla") and sla.calendar_id
            else None
        )


def _survey(
    facts: TicketFacts, event: Event, event_ms: int, payload: ev.SurveySent | ev.SurveyAnswered
) -> None:
    survey = payload.survey
    if not survey.id:
        raise PoisonEvent("a survey event without a survey id")
    fact = facts.surveys.get(survey.id)
    if fact is None:
        fact = facts.surveys[survey.id] = SurveyFact(survey.id)
    if survey.HasField("send_time") and not fact.sent_event_id:
        fact.sent_event_id = event.id
        fact.send_ms = ms(survey.send_time)
    if isinstance(payload, ev.SurveyAnswered):
        answer = survey.answer
        answered = ms(answer.answer_time) if answer.HasField("answer_time") else event_ms
        if fact.answer_ms is not None and (fact.answer_ms, fact.answer_event_id) <= (
            answered,
            event.id,
        ):
            return  # only the earliest answer counts, whatever the order they arrive in
        fact.answer_event_id = event.id
        fact.answer_ms = answered
        present = {descriptor.name for descriptor, _ in answer.ListFields()}
        fact.scores = {
            name: int(getattr(answer, name)) for name in _SCORE_FIELDS if name in present
        }
        fact.comment_sentiment = (
            answer.comment_sentiment if answer.HasField("comment_sentiment") else None
        )


def _mention(
    store: FactStore, tenant: str, event: Event, mention: pb.Mention, before: BeforeChange
) -> Changes:
    if not mention.id or not mention.HasField("posted_time"):
        raise PoisonEvent("a mention without an id or a post time")
    posted = ms(mention.posted_time)
    key: MentionKey = (tenant, "mention", mention.id)
    changes = Changes([], [])
    if key not in store.mentions:
        before(key)
        store.mentions[key] = MentionFacts(
            tenant,
            mention.id,
            event.id,
            posted,
            mention.network,
            mention.brand,
            mention.author_followers,
            mention.sentiment,
        )
        changes.mentions.append(key)
    if mention.ticket_id:
        facts = store.ticket(tenant, mention.ticket_id)
        if mention.id not in facts.mentions:
            ticket_key = (tenant, mention.ticket_id)
            before(ticket_key)
            facts.mentions[mention.id] = MentionLink(event.id, posted, mention.sentiment)
            facts.touch(event.id, posted, "social mention")
            facts.contact_id = facts.contact_id or mention.author_contact_id
            changes.tickets.append(ticket_key)
    return changes


def calendar_from_proto(message: pb.BusinessCalendar) -> BusinessCalendar:
    """The calendar a ``CalendarChanged`` event carries; raises :class:`PoisonEvent` if invalid."""
    try:
        return BusinessCalendar.create(
            calendar_id=message.id,
            version=message.version,
            timezone=message.timezone,
            intervals=[
                OpeningInterval(
                    weekday=interval.weekday - 1,
                    start_minute=interval.start_minute,
                    end_minute=interval.end_minute,
                )
                for interval in message.intervals
            ],
            holidays=[date.fromisoformat(text) for text in message.holidays],
            holiday_country=message.holiday_country or None,
            holiday_subdivision=message.holiday_subdivision or None,
        )
    except (DomainError, ValueError) as exc:
        raise PoisonEvent(f"an invalid calendar: {exc}") from exc
