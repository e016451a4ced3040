"""``crm.sales.v1.ActivityService``: requests in (converted here to domain inputs), the activity
use cases (:mod:`crm_sales.use_cases.activities`), responses out."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from crm.sales.v1 import activities_pb2 as pb
from crm.sales.v1 import activities_pb2_grpc
from crm_platform.context import current_call
from crm_platform.errors import InvalidArgument
from crm_platform.idempotency import IdempotentRequest
from crm_sales import activities_contract as contract
from crm_sales.activities_contract import enum_from_pb
from crm_sales.domain.activities import (
    ActivityDirection,
    ActivityInput,
    ActivityKind,
    ActivityStatus,
    FollowUpOwner,
    FollowUpRuleInput,
)
from crm_sales.use_cases.activities import OPERATION, Activities, FollowUps

Context = Any  # grpc.aio.ServicerContext; the handlers do not use it


def _time(message: Any, name: str, path: str) -> datetime | None:
    """A timestamp field at millisecond precision (as stored), ``None`` when unset;
    ``InvalidArgument`` on ``path`` outside the years 1 to 9999."""
    if not message.HasField(name):
        return None
    stamp: Timestamp = getattr(message, name)
    try:
        given = stamp.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise InvalidArgument.single(path, "is not a time between the years 1 and 9999") from None
    return given.replace(microsecond=given.microsecond // 1000 * 1000)


def activity_input(message: pb.Activity) -> ActivityInput:
    """The caller-settable fields of an activity message."""
    return ActivityInput(
        kind=enum_from_pb(ActivityKind, message.kind),
        subject=message.subject,
        notes=message.notes,
        direction=enum_from_pb(ActivityDirection, message.direction),
        outcome=message.outcome,
        duration_seconds=message.duration_seconds,
        due_time=_time(message, "due_time", "activity.due_time"),
        completed_time=_time(message, "completed_time", "activity.completed_time"),
        contact_id=message.contact_id,
        lead_id=message.lead_id,
        opportunity_id=message.opportunity_id,
        owner_id=message.owner_id,
    )


def rule_input(message: pb.FollowUpRule) -> FollowUpRuleInput:
    """The caller-settable fields of a follow-up rule message."""
    return FollowUpRuleInput(
        enabled=message.enabled,
        after_order=message.after_order,
        after_won_deal=message.after_won_deal,
        delay_days=message.delay_days,
        owner=enum_from_pb(FollowUpOwner, message.owner),
        owner_id=message.owner_id,
    )


class ActivityService(activities_pb2_grpc.ActivityServiceServicer):
    """The handlers of the activities area."""

    def __init__(self, activities: Activities, follow_ups: FollowUps) -> None:
        self.activities = activities
        self.follow_ups = follow_ups

    async def CreateActivity(
        self, request: pb.CreateActivityRequest, context: Context
    ) -> pb.CreateActivityResponse:
        call = current_call()
        saved = await self.activities.create(
            call,
            activity_input(request.activity),
            IdempotentRequest.of(call.tenant_id, OPERATION, request.request_id, request),
        )
        return pb.CreateActivityResponse(activity=contract.activity_to_pb(saved))

    async def GetActivity(
        self, request: pb.GetActivityRequest, context: Context
    ) -> pb.GetActivityResponse:
        found = await self.activities.get(current_call().tenant_id, request.id)
        return pb.GetActivityResponse(activity=contract.activity_to_pb(found))

    async def ListActivities(
        self, request: pb.ListActivitiesRequest, context: Context
    ) -> pb.ListActivitiesResponse:
        filters: dict[str, str] = {}
        for name in ("contact_id", "lead_id", "opportunity_id", "owner_id"):
            if value := getattr(request, name):
                filters[name] = value
        if (kind := enum_from_pb(ActivityKind, request.kind)) is not None:
            filters["kind"] = kind.value
        if (status := enum_from_pb(ActivityStatus, request.status)) is not None:
            filters["status"] = status.value
        found, token = await self.activities.list_activities(
            current_call().tenant_id, filters, request.page_size, request.page_token
        )
        return pb.ListActivitiesResponse(
            activities=[contract.activity_to_pb(a) for a in found], next_page_token=token
        )

    async def UpdateActivity(
        self, request: pb.UpdateActivityRequest, context: Context
    ) -> pb.UpdateActivityResponse:
        saved = await self.activities.update(
            current_call(),
            request.activity.id,
            activity_input(request.activity),
            list(request.update_mask.paths),
            request.expected_version or None,
        )
        return pb.UpdateActivityResponse(activity=contract.activity_to_pb(saved))

    async def CompleteActivity(
        self, request: pb.CompleteActivityRequest, context: Context
    ) -> pb.CompleteActivityResponse:
        saved = await self.activities.complete(
            current_call(),
            request.id,
            request.outcome,
            request.duration_seconds,
            _time(request, "completed_time", "completed_time"),
            request.expected_version or None,
        )
        return pb.CompleteActivityResponse(activity=contract.activity_to_pb(saved))

    async def SetFollowUpRule(
        self, request: pb.SetFollowUpRuleRequest, context: Context
    ) -> pb.SetFollowUpRuleResponse:
        saved = await self.follow_ups.set_rule(
            current_call(), rule_input(request.rule), request.expected_version or None
        )
        return pb.SetFollowUpRuleResponse(rule=contract.rule_to_pb(saved))

    async def GetFollowUpRule(
        self, request: pb.GetFollowUpRuleRequest, context: Context
    ) -> pb.GetFollowUpRuleResponse:
        found = await self.follow_ups.rule(current_call().tenant_id)
        return pb.GetFollowUpRuleResponse(rule=contract.rule_to_pb(found))
