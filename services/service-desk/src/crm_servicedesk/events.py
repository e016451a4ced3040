"""The service desk's events (``crm.servicedesk.v1`` ``events.proto``): their payloads, built
from the domain, and their envelope.

The use cases (:mod:`crm_servicedesk.use_cases`) decide *what* happened; this module says how it
reads on the topic. Payloads embed the contract's resource messages
(:mod:`crm_servicedesk.contract`), the same ones the API answers with.
"""

from __future__ import annotations

from datetime import datetime

from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message as ProtoMessage

from crm.servicedesk.v1 import events_pb2
from crm_platform.context import Actor, ActorType, CallContext, current_call
from crm_platform.events import Event
from crm_servicedesk import contract
from crm_servicedesk.domain.configuration import Agent, CalendarRecord
from crm_servicedesk.domain.mention import Mention
from crm_servicedesk.domain.routing import RoutingRule
from crm_servicedesk.domain.sla_policy import SlaPolicy
from crm_servicedesk.domain.survey import Survey
from crm_servicedesk.domain.ticket import (
    Interaction,
    Message,
    RoutingRecord,
    StatusChange,
    Ticket,
    TicketSla,
)
from crm_servicedesk.domain.values import SlaTarget

SOURCE = "/crm/servicedesk"
# The actor of SLA facts nobody caused directly (at-risk warnings, breaches).
SLA_ACTOR = Actor(ActorType.SYSTEM, "sla-timer")
SOCIAL_LISTENING = Actor(ActorType.INTEGRATION, "social-listening")

Fact = tuple[ProtoMessage, datetime, Actor | None]
"""An event payload, when it happened, and who did it (None: the caller)."""


def envelope(
    payload: ProtoMessage, key: str, subject: str, at: datetime, actor: Actor | None = None
) -> Event:
    """The event of ``payload`` in the caller's tenant, by the caller (or by ``actor``)."""
    call = current_call()
    if actor is not None:
        call = CallContext(tenant_id=call.tenant_id, actor=actor)
    return Event.of(payload, source=SOURCE, subject=subject, key=key, call=call, time=at)


def ticket_events(ticket: Ticket, facts: list[Fact]) -> list[Event]:
    """The events of one ticket change, keyed by the ticket's contact (a survey sent with the
    change is about the survey, as every survey event is)."""
    return [
        envelope(payload, ticket.contact_id, _subject(ticket, payload), at, actor)
        for payload, at, actor in facts
    ]


def _subject(ticket: Ticket, payload: ProtoMessage) -> str:
    if isinstance(payload, events_pb2.SurveySent):
        return f"surveys/{payload.survey.id}"
    return f"tickets/{ticket.ticket_id}"


# -- tickets ----------------------------------------------------------------------------------


def ticket_created(ticket: Ticket) -> events_pb2.TicketCreated:
    """A ticket was opened."""
    return events_pb2.TicketCreated(ticket=contract.ticket_to_proto(ticket))


def ticket_updated(
    ticket: Ticket, paths: list[str], previous_version: int
) -> events_pb2.TicketUpdated:
    """Fields of a ticket changed (``ticket`` at its new version)."""
    return events_pb2.TicketUpdated(
        ticket=contract.ticket_to_proto(ticket),
        changed_fields=FieldMask(paths=paths),
        previous_version=previous_version,
    )


def ticket_status_changed(ticket: Ticket, change: StatusChange) -> events_pb2.TicketStatusChanged:
    """A ticket moved along its lifecycle (``ticket`` at its new version)."""
    return events_pb2.TicketStatusChanged(
        ticket=contract.ticket_to_proto(ticket),
        from_status=contract.TICKET_STATUSES[change.from_status],
        to_status=contract.TICKET_STATUSES[change.to_status],
        reason=change.reason,
        change_time=contract.timestamp(change.at),
        reopen=change.reopen,
    )


def interaction_linked(
    ticket: Ticket, interaction: Interaction, first_touch_at: datetime | None
) -> events_pb2.InteractionLinked:
    """An earlier interaction was linked to a ticket."""
    return events_pb2.InteractionLinked(
        ticket_id=ticket.ticket_id,
        contact_id=ticket.contact_id,
        interaction=contract.interaction_to_proto(interaction),
        first_touch_time=contract.timestamp(first_touch_at),
    )


def ticket_routed(ticket: Ticket, record: RoutingRecord) -> events_pb2.TicketRouted:
    """A routing rule acted on a ticket."""
    return events_pb2.TicketRouted(
        ticket_id=ticket.ticket_id,
        contact_id=ticket.contact_id,
        decisions=[contract.routing_record_to_proto(record)],
    )


# -- conversation -----------------------------------------------------------------------------


def message_added(
    message: Message, contact_id: str, ticket_version: int, *, first_response: bool = False
) -> events_pb2.MessageAdded:
    """A message was added; ``ticket_version`` is the version the change gives the ticket."""
    return events_pb2.MessageAdded(
        message=contract.message_to_proto(message),
        contact_id=contact_id,
        first_response=first_response,
        ticket_version=ticket_version,
    )


def receipt_recorded(
    ticket: Ticket, message_id: str, kind: str, at: datetime
) -> events_pb2.ReceiptRecorded:
    """A delivery or read receipt of an outbound message."""
    return events_pb2.ReceiptRecorded(
        ticket_id=ticket.ticket_id,
        contact_id=ticket.contact_id,
        message_id=message_id,
        kind=contract.RECEIPT_KINDS[kind],
        time=contract.timestamp(at),
    )


# -- SLA --------------------------------------------------------------------------------------


def sla_breached(
    ticket: Ticket, target: SlaTarget, due_at: datetime, now: datetime
) -> events_pb2.SlaBreached:
    """An SLA target was breached (noticed at ``now``)."""
    return events_pb2.SlaBreached(
        ticket_id=ticket.ticket_id,
        contact_id=ticket.contact_id,
        target=contract.SLA_TARGETS[target],
        due_time=contract.timestamp(due_at),
        fire_time=contract.timestamp(now),
    )


def sla_target_met(
    ticket: Ticket, target: SlaTarget, due_at: datetime | None, met_at: datetime
) -> events_pb2.SlaTargetMet:
    """An SLA target was met."""
    return events_pb2.SlaTargetMet(
        ticket_id=ticket.ticket_id,
        contact_id=ticket.contact_id,
        target=contract.SLA_TARGETS[target],
        due_time=contract.timestamp(due_at),
        met_time=contract.timestamp(met_at),
    )


def sla_clocks_changed(ticket: Ticket, sla: TicketSla) -> events_pb2.SlaClocksChanged:
    """A ticket's SLA clocks changed."""
    return events_pb2.SlaClocksChanged(
        ticket_id=ticket.ticket_id,
        contact_id=ticket.contact_id,
        sla=contract.sla_to_proto(sla),
    )


def sla_at_risk(
    ticket: Ticket, target: SlaTarget, due_at: datetime, at_risk_at: datetime, now: datetime
) -> events_pb2.SlaAtRisk:
    """An SLA target is at risk (its at-risk timer fired)."""
    return events_pb2.SlaAtRisk(
        ticket_id=ticket.ticket_id,
        contact_id=ticket.contact_id,
        target=contract.SLA_TARGETS[target],
        due_time=contract.timestamp(due_at),
        at_risk_time=contract.timestamp(at_risk_at),
        fire_time=contract.timestamp(now),
    )


# -- surveys and mentions ---------------------------------------------------------------------


def survey_sent(survey: Survey, at: datetime) -> events_pb2.SurveySent:
    """A survey was sent."""
    return events_pb2.SurveySent(survey=contract.survey_to_proto(survey, at))


def survey_answered(survey: Survey, at: datetime) -> events_pb2.SurveyAnswered:
    """A survey was answered."""
    return events_pb2.SurveyAnswered(survey=contract.survey_to_proto(survey, at))


def mention_received(mention: Mention) -> Event:
    """A mention was ingested (by the social-listening integration)."""
    return envelope(
        events_pb2.MentionReceived(mention=contract.mention_to_proto(mention)),
        mention.author_contact_id or mention.author_key,
        f"mentions/{mention.mention_id}",
        mention.posted_at,
        SOCIAL_LISTENING,
    )


# -- configuration ----------------------------------------------------------------------------


def calendar_changed(record: CalendarRecord) -> events_pb2.CalendarChanged:
    """A calendar version was stored."""
    calendar = contract.calendar_to_proto(record.calendar, record.name, record.updated_at)
    return events_pb2.CalendarChanged(calendar=calendar)


def policy_changed(policy: SlaPolicy) -> events_pb2.SlaPolicyChanged:
    """An SLA policy version was stored."""
    return events_pb2.SlaPolicyChanged(policy=contract.policy_to_proto(policy))


def rule_changed(rule: RoutingRule) -> events_pb2.RoutingRuleChanged:
    """A routing rule version was stored."""
    return events_pb2.RoutingRuleChanged(rule=contract.rule_to_proto(rule))


def agent_changed(agent: Agent) -> events_pb2.AgentChanged:
    """An agent was created or replaced."""
    return events_pb2.AgentChanged(agent=contract.agent_to_proto(agent))
