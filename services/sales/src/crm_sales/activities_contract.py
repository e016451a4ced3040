"""The activities area's domain in its protobuf form (``crm/sales/v1/activities.proto``): enum
mappings and domain → protobuf, shared by the API's responses and the published events."""

from __future__ import annotations

from crm.sales.v1 import activities_pb2 as pb
from crm_platform.proto_enums import ProtoEnums
from crm_sales.contract import timestamp
from crm_sales.domain.activities import (
    Activity,
    ActivityDirection,
    ActivityKind,
    ActivityStatus,
    FollowUpOrigin,
    FollowUpOwner,
    FollowUpRule,
)

_ENUMS = ProtoEnums(
    pb.DESCRIPTOR,
    {
        ActivityKind: "ACTIVITY_KIND_",
        ActivityDirection: "ACTIVITY_DIRECTION_",
        ActivityStatus: "ACTIVITY_STATUS_",
        FollowUpOwner: "FOLLOW_UP_OWNER_",
    },
)
enum_from_pb = _ENUMS.from_pb
enum_to_pb = _ENUMS.to_pb


def origin_to_pb(origin: FollowUpOrigin) -> pb.FollowUpOrigin:
    """The API form of a follow-up's origin."""
    return pb.FollowUpOrigin(
        rule_id=origin.rule_id, rule_version=origin.rule_version, purchase=origin.purchase
    )


def activity_to_pb(activity: Activity) -> pb.Activity:
    """The API form of an activity."""
    return pb.Activity(
        id=activity.id,
        tenant_id=activity.tenant_id,
        kind=enum_to_pb(activity.kind),  # type: ignore[arg-type]
        subject=activity.subject,
        notes=activity.notes,
        direction=enum_to_pb(activity.direction),  # type: ignore[arg-type]
        outcome=activity.outcome,
        duration_seconds=activity.duration_seconds,
        due_time=timestamp(activity.due_time),
        completed_time=timestamp(activity.completed_time),
        status=enum_to_pb(activity.status),  # type: ignore[arg-type]
        contact_id=activity.contact_id,
        lead_id=activity.lead_id,
        opportunity_id=activity.opportunity_id,
        owner_id=activity.owner_id,
        follow_up=origin_to_pb(activity.follow_up) if activity.follow_up else None,
        version=activity.version,
        create_time=timestamp(activity.create_time),
        update_time=timestamp(activity.update_time),
    )


def rule_to_pb(rule: FollowUpRule) -> pb.FollowUpRule:
    """The API form of the follow-up rule."""
    return pb.FollowUpRule(
        id=rule.id,
        tenant_id=rule.tenant_id,
        enabled=rule.enabled,
        after_order=rule.after_order,
        after_won_deal=rule.after_won_deal,
        delay_days=rule.delay_days,
        owner=enum_to_pb(rule.owner),  # type: ignore[arg-type]
        owner_id=rule.owner_id,
        version=rule.version,
        update_time=timestamp(rule.update_time),
    )
