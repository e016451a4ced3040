"""Protobuf requests (``crm.servicedesk.v1``) → domain: what the handlers read from a request.

Responses are built with :mod:`crm_servicedesk.contract` (domain → protobuf, shared with the
event payloads).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from crm.servicedesk.v1 import servicedesk_pb2 as pb
from crm_calendar.business_calendar import BusinessCalendar, OpeningInterval
from crm_platform.errors import FieldViolation, InvalidArgument
from crm_platform.paging import CursorValue
from crm_servicedesk.contract import (
    ACTION_KIND_OF,
    CHANNEL_OF,
    CLOCK_KIND_OF,
    INTERACTION_KIND_OF,
    PRIORITY_OF,
    SCORES,
    SLA_TARGET_OF,
    STRATEGY_OF,
    TICKET_STATUS_OF,
    TICKET_TYPE_OF,
)
from crm_servicedesk.domain.routing import Action, Condition
from crm_servicedesk.domain.sla_policy import SlaPolicy, TargetSpec
from crm_servicedesk.domain.survey import SurveyAnswer
from crm_servicedesk.domain.ticket import Interaction
from crm_servicedesk.domain.values import Priority


def from_timestamp(stamp: Timestamp, path: str = "time") -> datetime:
    """An aware UTC datetime at millisecond precision (what the database keeps);
    INVALID_ARGUMENT naming ``path`` for a timestamp outside years 1 to 9999 or with bad nanos."""
    try:
        value = stamp.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise InvalidArgument.single(path, "is not a valid time (years 1 to 9999)") from None
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def optional_time(message: Any, field: str, path: str) -> datetime | None:
    """A timestamp field's value, None when unset (``path`` names it in errors)."""
    return from_timestamp(getattr(message, field), path) if message.HasField(field) else None


def interaction_from_proto(message: pb.Interaction, path: str = "interaction") -> Interaction:
    """An interaction from the API (``path`` names it in errors)."""
    return Interaction(
        kind=INTERACTION_KIND_OF[message.kind],
        channel=CHANNEL_OF.get(message.channel),
        occurred_at=from_timestamp(message.occurred_time, f"{path}.occurred_time"),
        reference=message.reference,
        note=message.note,
    )


def ticket_changes(ticket: pb.Ticket, paths: list[str]) -> dict[str, Any]:
    """The values of the fields an UpdateTicket mask names, in domain form."""
    changes: dict[str, Any] = {}
    for path in paths:
        if path == "priority":
            changes[path] = PRIORITY_OF.get(ticket.priority, Priority.NORMAL)
        elif path == "type":
            changes[path] = TICKET_TYPE_OF[ticket.type] if ticket.type else None
        elif path == "tags":
            changes[path] = tuple(ticket.tags)
        else:
            changes[path] = getattr(ticket, path)
    return changes


# -- configuration ----------------------------------------------------------------------------


def calendar_from_proto(
    message: pb.BusinessCalendar, calendar_id: str, version: int
) -> BusinessCalendar:
    """A validated calendar; bad dates, overlaps, unknown zones or countries → INVALID_ARGUMENT."""
    holidays: list[date] = []
    violations: list[FieldViolation] = []
    for index, text in enumerate(message.holidays):
        try:
            holidays.append(date.fromisoformat(text))
        except ValueError:
            violations.append(FieldViolation(f"calendar.holidays[{index}]", "is not a valid date"))
    if violations:
        raise InvalidArgument(violations)
    calendar = BusinessCalendar.create(
        calendar_id=calendar_id,
        version=version,
        timezone=message.timezone,
        intervals=[
            OpeningInterval(
                weekday=interval.weekday - 1,
                start_minute=interval.start_minute,
                end_minute=interval.end_minute,
            )
            for interval in message.intervals
        ],
        holidays=holidays,
        holiday_country=message.holiday_country or None,
        holiday_subdivision=message.holiday_subdivision or None,
    )
    if calendar.next_open(datetime.now(UTC)) is None:
        raise InvalidArgument.single(
            "calendar.holidays", "leave the calendar no opening time in the next three years"
        )
    return calendar


def policy_from_proto(
    message: pb.SlaPolicy, *, policy_id: str, tenant_id: str, version: int, at: datetime
) -> SlaPolicy:
    """A validated SLA policy."""
    return SlaPolicy.create(
        policy_id=policy_id,
        tenant_id=tenant_id,
        name=message.name,
        position=message.position,
        priorities=[PRIORITY_OF[p] for p in message.priorities],
        types=[TICKET_TYPE_OF[t] for t in message.types],
        channels=[CHANNEL_OF[c] for c in message.channels],
        customer_tiers=list(message.customer_tiers),
        calendar_id=message.calendar_id,
        targets=[
            TargetSpec(
                target=SLA_TARGET_OF[spec.target],
                clock=CLOCK_KIND_OF[spec.clock],
                seconds=int(spec.duration.ToTimedelta() // timedelta(seconds=1)),
            )
            for spec in message.targets
        ],
        pause_statuses=[TICKET_STATUS_OF[s] for s in message.pause_statuses],
        at_risk_fraction=message.at_risk_fraction,
        enabled=message.enabled,
        version=version,
        updated_at=at,
    )


def action_from_proto(message: pb.RuleAction) -> Action:
    """A rule action from the API (validated with the rule)."""
    return Action(
        kind=ACTION_KIND_OF[message.kind],
        team_id=message.team_id,
        strategy=STRATEGY_OF.get(message.strategy),
        required_skills=frozenset(message.required_skills),
        priority=PRIORITY_OF.get(message.priority),
        tag=message.tag,
        ticket_type=TICKET_TYPE_OF.get(message.ticket_type),
    )


def condition_from_proto(message: pb.RuleCondition) -> Condition:
    """A rule condition from the API (validated with the rule)."""
    return Condition(
        types=frozenset(TICKET_TYPE_OF[t] for t in message.types if t),
        channels=frozenset(CHANNEL_OF[c] for c in message.channels if c),
        priorities=frozenset(PRIORITY_OF[p] for p in message.priorities if p),
        customer_tiers=frozenset(message.customer_tiers),
        tags_any=frozenset(message.tags_any),
        categories=frozenset(message.categories),
        products=frozenset(message.products),
        sentiment_below=(message.sentiment_below if message.HasField("sentiment_below") else None),
        sentiment_above=(message.sentiment_above if message.HasField("sentiment_above") else None),
        min_author_followers=(
            message.min_author_followers if message.HasField("min_author_followers") else None
        ),
        sla_targets=frozenset(SLA_TARGET_OF[t] for t in message.sla_targets if t),
        local_time_from_minute=(
            message.local_time_from_minute if message.HasField("local_time_from_minute") else None
        ),
        local_time_to_minute=(
            message.local_time_to_minute if message.HasField("local_time_to_minute") else None
        ),
        weekdays=frozenset(day - 1 for day in message.weekdays),
        timezone=message.timezone or "UTC",
        text_contains_any=frozenset(message.text_contains_any),
        statuses=frozenset(TICKET_STATUS_OF[s] for s in message.statuses if s),
        team_ids=frozenset(message.team_ids),
        escalated=message.escalated if message.HasField("escalated") else None,
    )


# -- surveys ----------------------------------------------------------------------------------


def answer_from_proto(message: pb.SurveyAnswer) -> SurveyAnswer:
    """A survey answer from the API (ranges are checked by the contract's rules)."""
    fields: Any = message  # HasField's stub only takes literal names
    scores = {name: getattr(message, name) if fields.HasField(name) else None for name in SCORES}
    return SurveyAnswer(comment=message.comment, **scores)


# -- paging -----------------------------------------------------------------------------------


def keyset_position(after: tuple[CursorValue, ...] | None) -> tuple[datetime, str] | None:
    """The (time, id) keyset position of a page token's sort key (None: the first page);
    INVALID_ARGUMENT for a token whose sort key is not one."""
    if after is None:
        return None
    if len(after) == 2 and isinstance(after[0], datetime) and isinstance(after[1], str):
        return after[0], after[1]
    raise InvalidArgument.single("page_token", "is not a valid page token")
