"""The service desk's domain as the contract's messages (``crm.servicedesk.v1``): the enum
mappings and domain → protobuf, shared by the API's responses (:mod:`crm_servicedesk.api`) and the
event payloads (:mod:`crm_servicedesk.events`).

Enum values follow one convention: the proto value ``<PREFIX>_<NAME>`` is the domain value
``<name>`` (``CHANNEL_LIVE_CHAT`` ↔ ``Channel.LIVE_CHAT = "live_chat"``), so each mapping is
derived, not listed by hand. Requests are read in :mod:`crm_servicedesk.api.convert`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from enum import Enum
from typing import Any, TypeVar

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from crm.servicedesk.v1 import servicedesk_pb2 as pb
from crm_calendar.business_calendar import BusinessCalendar
from crm_servicedesk.domain.configuration import Agent
from crm_servicedesk.domain.mention import Mention
from crm_servicedesk.domain.routing import (
    Action,
    ActionKind,
    AssignStrategy,
    Condition,
    RoutingRule,
    Trigger,
    action_from_document,
)
from crm_servicedesk.domain.sla_clock import ClockKind
from crm_servicedesk.domain.sla_policy import SlaPolicy
from crm_servicedesk.domain.survey import Survey, SurveyAnswer, SurveyStatus
from crm_servicedesk.domain.ticket import (
    ClockState,
    Interaction,
    Message,
    RoutingRecord,
    Ticket,
    TicketSla,
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

E = TypeVar("E", bound=Enum)


def _enum_map(wrapper: Any, prefix: str, domain: type[E]) -> dict[E, Any]:
    # Values typed Any: mypy-protobuf types each enum's numbers as its own NewType of int.
    return {member: wrapper.Value(f"{prefix}_{str(member.value).upper()}") for member in domain}


def _inverse(mapping: Mapping[E, Any]) -> dict[int, E]:
    return {number: member for member, number in mapping.items()}


TICKET_TYPES = _enum_map(pb.TicketType, "TICKET_TYPE", TicketType)
CHANNELS = _enum_map(pb.Channel, "CHANNEL", Channel)
PRIORITIES = _enum_map(pb.Priority, "PRIORITY", Priority)
TICKET_STATUSES = _enum_map(pb.TicketStatus, "TICKET_STATUS", TicketStatus)
SLA_TARGETS = _enum_map(pb.SlaTarget, "SLA_TARGET", SlaTarget)
CLOCK_KINDS = _enum_map(pb.ClockKind, "CLOCK_KIND", ClockKind)
CLOCK_STATES = _enum_map(pb.SlaClockState, "SLA_CLOCK_STATE", ClockState)
AUTHOR_TYPES = _enum_map(pb.AuthorType, "AUTHOR_TYPE", AuthorType)
VISIBILITIES = _enum_map(pb.Visibility, "VISIBILITY", Visibility)
INTERACTION_KINDS = _enum_map(pb.InteractionKind, "INTERACTION_KIND", InteractionKind)
TRIGGERS = _enum_map(pb.RuleTrigger, "RULE_TRIGGER", Trigger)
ACTION_KINDS = _enum_map(pb.RuleActionKind, "RULE_ACTION_KIND", ActionKind)
STRATEGIES = _enum_map(pb.AssignStrategy, "ASSIGN_STRATEGY", AssignStrategy)
SURVEY_STATUSES = _enum_map(pb.SurveyStatus, "SURVEY_STATUS", SurveyStatus)
UNSET: Any = 0  # an enum field left unspecified
RECEIPT_KINDS: dict[str, Any] = {
    "delivered": pb.RECEIPT_KIND_DELIVERED,
    "read": pb.RECEIPT_KIND_READ,
}

TICKET_TYPE_OF = _inverse(TICKET_TYPES)
CHANNEL_OF = _inverse(CHANNELS)
PRIORITY_OF = _inverse(PRIORITIES)
TICKET_STATUS_OF = _inverse(TICKET_STATUSES)
SLA_TARGET_OF = _inverse(SLA_TARGETS)
CLOCK_KIND_OF = _inverse(CLOCK_KINDS)
AUTHOR_TYPE_OF = _inverse(AUTHOR_TYPES)
VISIBILITY_OF = _inverse(VISIBILITIES)
INTERACTION_KIND_OF = _inverse(INTERACTION_KINDS)
TRIGGER_OF = _inverse(TRIGGERS)
ACTION_KIND_OF = _inverse(ACTION_KINDS)
STRATEGY_OF = _inverse(STRATEGIES)
RECEIPT_KIND_OF = {number: name for name, number in RECEIPT_KINDS.items()}


def timestamp(value: datetime | None) -> Timestamp | None:
    """A protobuf timestamp (None stays unset)."""
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value.astimezone(UTC))
    return stamp


# -- tickets ----------------------------------------------------------------------------------


def interaction_to_proto(interaction: Interaction) -> pb.Interaction:
    """An interaction as in the API."""
    return pb.Interaction(
        kind=INTERACTION_KINDS[interaction.kind],
        channel=CHANNELS[interaction.channel] if interaction.channel else UNSET,
        occurred_time=timestamp(interaction.occurred_at),
        reference=interaction.reference,
        note=interaction.note,
    )


def sla_to_proto(sla: TicketSla) -> pb.TicketSla:
    """A ticket's SLA clocks as in the API."""
    return pb.TicketSla(
        policy_id=sla.policy_id,
        policy_version=sla.policy_version,
        calendar_id=sla.calendar_id,
        calendar_version=sla.calendar_version,
        clocks=[
            pb.SlaClock(
                target=SLA_TARGETS[clock.target],
                clock=CLOCK_KINDS[clock.clock],
                target_duration=Duration(seconds=clock.seconds),
                start_time=timestamp(clock.started_at),
                due_time=timestamp(clock.due_at),
                at_risk_time=timestamp(clock.at_risk_at),
                state=CLOCK_STATES[clock.state],
                stop_time=timestamp(clock.stopped_at),
            )
            for clock in sla.clocks
        ],
    )


def routing_record_to_proto(record: RoutingRecord) -> pb.RoutingDecision:
    """A routing decision as in the API."""
    return pb.RoutingDecision(
        rule_id=record.rule_id,
        rule_version=record.rule_version,
        action=action_to_proto(action_from_document(record.action)),
        assigned_agent_id=record.assigned_agent_id,
        decide_time=timestamp(record.decided_at),
        trigger=TRIGGERS[Trigger(record.trigger)],
    )


def ticket_to_proto(ticket: Ticket) -> pb.Ticket:
    """A ticket as in the API."""
    return pb.Ticket(
        id=ticket.ticket_id,
        tenant_id=ticket.tenant_id,
        type=TICKET_TYPES[ticket.type],
        channel=CHANNELS[ticket.channel],
        priority=PRIORITIES[ticket.priority],
        status=TICKET_STATUSES[ticket.status],
        subject=ticket.subject,
        description=ticket.description,
        contact_id=ticket.contact_id,
        customer_tier=ticket.customer_tier,
        assignee_id=ticket.assignee_id,
        team_id=ticket.team_id,
        tags=ticket.tags,
        category=ticket.category,
        product=ticket.product,
        first_touch_time=timestamp(ticket.first_touch_at),
        interactions=[interaction_to_proto(i) for i in ticket.interactions],
        source_mention_id=ticket.source_mention_id,
        sla=sla_to_proto(ticket.sla) if ticket.sla else None,
        routing_decisions=[routing_record_to_proto(r) for r in ticket.routing],
        reopen_count=ticket.reopen_count,
        first_response_time=timestamp(ticket.first_response_at),
        resolve_time=timestamp(ticket.resolved_at),
        version=ticket.version,
        create_time=timestamp(ticket.created_at),
        update_time=timestamp(ticket.updated_at),
    )


def message_to_proto(message: Message) -> pb.Message:
    """A message as in the API."""
    return pb.Message(
        id=message.message_id,
        ticket_id=message.ticket_id,
        author_type=AUTHOR_TYPES[message.author_type],
        author_id=message.author_id,
        visibility=VISIBILITIES[message.visibility],
        channel=CHANNELS[message.channel],
        body=message.body,
        send_time=timestamp(message.sent_at),
        deliver_time=timestamp(message.delivered_at),
        read_time=timestamp(message.read_at),
    )


# -- configuration ----------------------------------------------------------------------------


def calendar_to_proto(
    calendar: BusinessCalendar, name: str, updated_at: datetime
) -> pb.BusinessCalendar:
    """A calendar as in the API (weekday 1 = Monday, ISO)."""
    return pb.BusinessCalendar(
        id=calendar.calendar_id,
        name=name,
        timezone=calendar.timezone,
        intervals=[
            pb.OpeningInterval(
                weekday=interval.weekday + 1,
                start_minute=interval.start_minute,
                end_minute=interval.end_minute,
            )
            for interval in calendar.intervals
        ],
        holidays=sorted(day.isoformat() for day in calendar.holidays),
        holiday_country=calendar.holiday_country or "",
        holiday_subdivision=calendar.holiday_subdivision or "",
        version=calendar.version,
        update_time=timestamp(updated_at),
    )


def policy_to_proto(policy: SlaPolicy) -> pb.SlaPolicy:
    """An SLA policy as in the API."""
    return pb.SlaPolicy(
        id=policy.policy_id,
        name=policy.name,
        position=policy.position,
        priorities=[PRIORITIES[p] for p in policy.priorities],
        types=[TICKET_TYPES[t] for t in policy.types],
        channels=[CHANNELS[c] for c in policy.channels],
        customer_tiers=policy.customer_tiers,
        calendar_id=policy.calendar_id,
        targets=[
            pb.SlaTargetSpec(
                target=SLA_TARGETS[spec.target],
                clock=CLOCK_KINDS[spec.clock],
                duration=Duration(seconds=spec.seconds),
            )
            for spec in policy.targets
        ],
        pause_statuses=[TICKET_STATUSES[s] for s in policy.pause_statuses],
        at_risk_fraction=policy.at_risk_fraction,
        enabled=policy.enabled,
        version=policy.version,
        update_time=timestamp(policy.updated_at),
    )


def action_to_proto(action: Action) -> pb.RuleAction:
    """A rule action as in the API."""
    return pb.RuleAction(
        kind=ACTION_KINDS[action.kind],
        team_id=action.team_id,
        strategy=STRATEGIES[action.strategy] if action.strategy else UNSET,
        required_skills=sorted(action.required_skills),
        priority=PRIORITIES[Priority(action.priority)] if action.priority else UNSET,
        tag=action.tag,
        ticket_type=TICKET_TYPES[action.ticket_type] if action.ticket_type else UNSET,
    )


def condition_to_proto(condition: Condition) -> pb.RuleCondition:
    """A rule condition as in the API."""
    message = pb.RuleCondition(
        types=[TICKET_TYPES[t] for t in sorted(condition.types)],
        channels=[CHANNELS[c] for c in sorted(condition.channels)],
        priorities=[PRIORITIES[Priority(p)] for p in sorted(condition.priorities)],
        customer_tiers=sorted(condition.customer_tiers),
        tags_any=sorted(condition.tags_any),
        categories=sorted(condition.categories),
        products=sorted(condition.products),
        sla_targets=[SLA_TARGETS[SlaTarget(t)] for t in sorted(condition.sla_targets)],
        weekdays=sorted(day + 1 for day in condition.weekdays),
        timezone=condition.timezone,
        text_contains_any=sorted(condition.text_contains_any),
        statuses=[TICKET_STATUSES[s] for s in sorted(condition.statuses)],
        team_ids=sorted(condition.team_ids),
    )
    if condition.escalated is not None:
        message.escalated = condition.escalated
    if condition.sentiment_below is not None:
        message.sentiment_below = condition.sentiment_below
    if condition.sentiment_above is not None:
        message.sentiment_above = condition.sentiment_above
    if condition.min_author_followers is not None:
        message.min_author_followers = condition.min_author_followers
    if condition.local_time_from_minute is not None:
        message.local_time_from_minute = condition.local_time_from_minute
    if condition.local_time_to_minute is not None:
        message.local_time_to_minute = condition.local_time_to_minute
    return message


def rule_to_proto(rule: RoutingRule) -> pb.RoutingRule:
    """A routing rule as in the API."""
    return pb.RoutingRule(
        id=rule.rule_id,
        name=rule.name,
        position=rule.position,
        enabled=rule.enabled,
        triggers=[TRIGGERS[t] for t in sorted(rule.triggers)],
        condition=condition_to_proto(rule.condition),
        actions=[action_to_proto(a) for a in rule.actions],
        stop_processing=rule.stop_processing,
        version=rule.version,
        update_time=timestamp(rule.update_time),
    )


def agent_to_proto(agent: Agent) -> pb.Agent:
    """An agent as in the API."""
    return pb.Agent(
        id=agent.agent_id,
        display_name=agent.display_name,
        team_ids=agent.team_ids,
        skills=agent.skills,
        available=agent.available,
        open_tickets=agent.open_tickets,
    )


# -- mentions and surveys ---------------------------------------------------------------------


def mention_to_proto(mention: Mention) -> pb.Mention:
    """A mention as in the API."""
    return pb.Mention(
        id=mention.mention_id,
        network=mention.network,
        post_id=mention.post_id,
        author_handle=mention.author_handle,
        author_followers=mention.author_followers,
        text=mention.text,
        url=mention.url,
        posted_time=timestamp(mention.posted_at),
        in_reply_to=mention.in_reply_to,
        brand=mention.brand,
        sentiment=mention.sentiment,
        author_contact_id=mention.author_contact_id,
        ticket_id=mention.ticket_id,
        ingest_time=timestamp(mention.ingested_at),
    )


def survey_to_proto(survey: Survey, now: datetime) -> pb.Survey:
    """A survey as in the API; its status as of ``now``."""
    message = pb.Survey(
        id=survey.survey_id,
        ticket_id=survey.ticket_id,
        contact_id=survey.contact_id,
        channel=CHANNELS[survey.channel],
        send_time=timestamp(survey.sent_at),
        expire_time=timestamp(survey.expires_at),
        status=SURVEY_STATUSES[survey.status(now)],
    )
    if survey.answer is not None:
        message.answer.CopyFrom(answer_to_proto(survey.answer))
    return message


SCORES = (
    "csat",
    "nps",
    "effort",
    "perceived_wait_minutes",
    "expected_wait_minutes",
    "purchase_intent",
    "loyalty",
)


def answer_to_proto(answer: SurveyAnswer) -> pb.SurveyAnswer:
    """A survey answer as in the API."""
    message = pb.SurveyAnswer(comment=answer.comment, answer_time=timestamp(answer.answered_at))
    for name in SCORES:
        value = getattr(answer, name)
        if value is not None:
            setattr(message, name, value)
    if answer.comment_sentiment is not None:
        message.comment_sentiment = answer.comment_sentiment
    return message
