"""The activities area's collections, in the sales service's database.

* ``activities`` — one document per activity, ``_id`` = id, always queried with ``tenant_id``;
  ``version`` guards every replace.
* ``follow_up_rules`` — one document per tenant, ``_id`` = tenant id: the rule's current
  version (each version is also in its ``FollowUpRuleSet`` event).
* ``follow_ups`` — one document per purchase that armed a follow-up call, ``_id`` =
  ``<tenant>|<purchase>`` (``opportunities/<id>`` or ``orders/<id>``): inserted in the
  purchase's transaction, so a purchase arms at most one (a win after a reopen, or an order
  recorded again, finds it), and marked ``fired`` with the activity's id in the timer's firing
  transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from crm_platform.errors import NotFound
from crm_platform.mongo import Document, replace_version, tenant_page
from crm_sales.domain.activities import (
    Activity,
    ActivityDirection,
    ActivityKind,
    ActivityStatus,
    FollowUpOrigin,
    FollowUpOwner,
    FollowUpRule,
)

Session = AsyncClientSession | None

_TEXT = (
    "subject",
    "notes",
    "outcome",
    "contact_id",
    "lead_id",
    "opportunity_id",
    "owner_id",
    "event_key",
)


def activity_to_document(activity: Activity) -> Document:
    """The stored form of an activity."""
    origin = activity.follow_up
    return {
        "_id": activity.id,
        "tenant_id": activity.tenant_id,
        "kind": activity.kind.value,
        **{name: getattr(activity, name) for name in _TEXT},
        "direction": activity.direction.value if activity.direction else None,
        "duration_seconds": activity.duration_seconds,
        "due_time": activity.due_time,
        "completed_time": activity.completed_time,
        "status": activity.status.value,
        "follow_up": (
            None
            if origin is None
            else {
                "rule_id": origin.rule_id,
                "rule_version": origin.rule_version,
                "purchase": origin.purchase,
            }
        ),
        "version": activity.version,
        "create_time": activity.create_time,
        "update_time": activity.update_time,
    }


def activity_from_document(doc: Mapping[str, Any]) -> Activity:
    """Rebuild an activity from its stored form."""
    origin = doc["follow_up"]
    return Activity(
        id=doc["_id"],
        tenant_id=doc["tenant_id"],
        kind=ActivityKind(doc["kind"]),
        **{name: doc[name] for name in _TEXT},
        direction=ActivityDirection(doc["direction"]) if doc["direction"] else None,
        duration_seconds=doc["duration_seconds"],
        due_time=doc["due_time"],
        completed_time=doc["completed_time"],
        status=ActivityStatus(doc["status"]),
        follow_up=(
            None
            if origin is None
            else FollowUpOrigin(origin["rule_id"], origin["rule_version"], origin["purchase"])
        ),
        version=doc["version"],
        create_time=doc["create_time"],
        update_time=doc["update_time"],
    )


def _rule_to_document(rule: FollowUpRule) -> Document:
    return {
        "_id": rule.tenant_id,
        "rule_id": rule.id,
        "tenant_id": rule.tenant_id,
        "enabled": rule.enabled,
        "after_order": rule.after_order,
        "after_won_deal": rule.after_won_deal,
        "delay_days": rule.delay_days,
        "owner": rule.owner.value if rule.owner else None,
        "owner_id": rule.owner_id,
        "version": rule.version,
        "update_time": rule.update_time,
    }


def _rule_from_document(doc: Mapping[str, Any]) -> FollowUpRule:
    return FollowUpRule(
        id=doc["rule_id"],
        tenant_id=doc["tenant_id"],
        enabled=doc["enabled"],
        after_order=doc["after_order"],
        after_won_deal=doc["after_won_deal"],
        delay_days=doc["delay_days"],
        owner=FollowUpOwner(doc["owner"]) if doc["owner"] else None,
        owner_id=doc["owner_id"],
        version=doc["version"],
        update_time=doc["update_time"],
    )


class ActivitiesStore:
    """Reads and writes of activities, the follow-up rule and the armed follow-ups."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.activities: AsyncCollection[Document] = db["activities"]
        self.rules: AsyncCollection[Document] = db["follow_up_rules"]
        self.follow_ups: AsyncCollection[Document] = db["follow_ups"]

    async def ensure_indexes(self) -> None:
        """Indexes for the list filters (keyset order is ``_id``)."""
        tenant = ("tenant_id", ASCENDING)
        key = ("_id", ASCENDING)
        await self.activities.create_index([tenant, key])
        for name in ("contact_id", "lead_id", "opportunity_id", "owner_id", "kind", "status"):
            await self.activities.create_index([tenant, (name, ASCENDING), key])

    async def get_activity(
        self, tenant_id: str, activity_id: str, session: Session = None
    ) -> Activity:
        """The activity, or ``NotFound`` (also when it belongs to another tenant)."""
        doc = await self.activities.find_one(
            {"_id": activity_id, "tenant_id": tenant_id}, session=session
        )
        if doc is None:
            raise NotFound("activity", activity_id)
        return activity_from_document(doc)

    async def find_activity(
        self, tenant_id: str, activity_id: str, session: Session = None
    ) -> Activity | None:
        """The activity if it exists."""
        doc = await self.activities.find_one(
            {"_id": activity_id, "tenant_id": tenant_id}, session=session
        )
        return activity_from_document(doc) if doc is not None else None

    async def insert_activity(self, activity: Activity, session: AsyncClientSession) -> None:
        """Store a new activity."""
        await self.activities.insert_one(activity_to_document(activity), session=session)

    async def replace_activity(
        self, read_version: int, activity: Activity, session: AsyncClientSession
    ) -> None:
        """Store a changed activity if it is still at ``read_version``."""
        await replace_version(
            self.activities, "activities", read_version, activity_to_document(activity), session
        )

    async def list_activities(
        self, tenant_id: str, filters: Mapping[str, object], after_id: str | None, limit: int
    ) -> list[Activity]:
        """Activities matching every filter, in id order."""
        cursor = tenant_page(self.activities, tenant_id, filters, after_id, limit)
        return [activity_from_document(doc) async for doc in cursor]

    # --- the rule ---------------------------------------------------------------------------

    async def get_rule(self, tenant_id: str, session: Session = None) -> FollowUpRule:
        """The tenant's follow-up rule (version 0 when never set)."""
        doc = await self.rules.find_one({"_id": tenant_id}, session=session)
        return _rule_from_document(doc) if doc is not None else FollowUpRule.unset(tenant_id)

    async def save_rule(
        self, read_version: int, rule: FollowUpRule, session: AsyncClientSession
    ) -> None:
        """Store the rule's new version if it is still at ``read_version``."""
        doc = _rule_to_document(rule)
        if read_version == 0:
            await self.rules.insert_one(doc, session=session)
        else:
            await replace_version(self.rules, "follow_up_rules", read_version, doc, session)

    # --- armed follow-ups -------------------------------------------------------------------

    async def follow_up_armed(
        self, tenant_id: str, purchase: str, session: AsyncClientSession
    ) -> bool:
        """Whether the purchase armed a follow-up already."""
        doc = await self.follow_ups.find_one(
            {"_id": f"{tenant_id}|{purchase}"}, {"_id": 1}, session=session
        )
        return doc is not None

    async def arm_follow_up(
        self,
        tenant_id: str,
        purchase: str,
        activity_id: str,
        due_at: datetime,
        session: AsyncClientSession,
    ) -> None:
        """Record that the purchase armed its follow-up (a second one is a duplicate key)."""
        await self.follow_ups.insert_one(
            {
                "_id": f"{tenant_id}|{purchase}",
                "tenant_id": tenant_id,
                "purchase": purchase,
                "activity_id": activity_id,
                "due_at": due_at,
                "state": "armed",
            },
            session=session,
        )

    async def mark_follow_up_fired(
        self, tenant_id: str, purchase: str, session: AsyncClientSession
    ) -> None:
        """Record that the follow-up's activity was created."""
        await self.follow_ups.update_one(
            {"_id": f"{tenant_id}|{purchase}"}, {"$set": {"state": "fired"}}, session=session
        )
