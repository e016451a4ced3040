"""The events of activities and the follow-up rule (``crm/sales/v1/activities_events.proto``).

Keys (documented in that file's header): an activity's events carry the ``event_key`` it got on
create — its contact id, else its opportunity's key, else its lead's key
(:func:`~crm_sales.domain.activities.activity_key`); ``FollowUpScheduled`` carries the key its
activity will have; ``FollowUpRuleSet`` carries the tenant id (configuration).
"""

from __future__ import annotations

from datetime import datetime

from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message

from crm.sales.v1 import activities_events_pb2 as events
from crm_platform.context import CallContext
from crm_platform.events import Event
from crm_sales import activities_contract as contract
from crm_sales.contract import timestamp
from crm_sales.domain.activities import Activity, ActivityUpdate, FollowUpOrigin, FollowUpRule
from crm_sales.events import sales_event


def _activity_event(payload: Message, activity: Activity, call: CallContext) -> Event:
    return sales_event(
        payload, activity.subject_name, activity.event_key, call, activity.update_time
    )


def activity_created(activity: Activity, call: CallContext) -> Event:
    """``ActivityCreated``."""
    payload = events.ActivityCreated(activity=contract.activity_to_pb(activity))
    return _activity_event(payload, activity, call)


def activity_updated(update: ActivityUpdate, previous_version: int, call: CallContext) -> Event:
    """``ActivityUpdated`` for a change of the fields ``update`` names."""
    payload = events.ActivityUpdated(
        activity=contract.activity_to_pb(update.activity),
        changed_fields=FieldMask(paths=update.changed_paths),
        previous_version=previous_version,
    )
    return _activity_event(payload, update.activity, call)


def activity_completed(activity: Activity, previous_version: int, call: CallContext) -> Event:
    """``ActivityCompleted``."""
    payload = events.ActivityCompleted(
        activity=contract.activity_to_pb(activity), previous_version=previous_version
    )
    return _activity_event(payload, activity, call)


def follow_up_scheduled(
    *,
    origin: FollowUpOrigin,
    activity_id: str,
    due_at: datetime,
    contact_id: str,
    opportunity_id: str,
    order_id: str,
    owner_id: str,
    key: str,
    call: CallContext,
    time: datetime,
) -> Event:
    """``FollowUpScheduled``, on the key its activity will have."""
    payload = events.FollowUpScheduled(
        origin=contract.origin_to_pb(origin),
        activity_id=activity_id,
        due_time=timestamp(due_at),
        contact_id=contact_id,
        opportunity_id=opportunity_id,
        order_id=order_id,
        owner_id=owner_id,
    )
    return sales_event(payload, f"activities/{activity_id}", key, call, time)


def follow_up_rule_set(rule: FollowUpRule, previous_version: int, call: CallContext) -> Event:
    """``FollowUpRuleSet``, keyed by the tenant id."""
    assert rule.update_time is not None
    payload = events.FollowUpRuleSet(
        rule=contract.rule_to_pb(rule), previous_version=previous_version
    )
    return sales_event(payload, "follow-up-rule", rule.tenant_id, call, rule.update_time)
