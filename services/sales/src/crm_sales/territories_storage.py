"""The territory rules' collections, and the stored form of what leads and opportunities keep
of the territories (their company profile and assignment). PyMongo only here.

* ``territory_rules`` — the current version of each rule (``_id`` = rule id, ``tenant_id``;
  ``version`` guards each replace). A deleted rule stays, at its deletion version, so its id
  is never reused and concurrent changes still conflict on it.
* ``territory_rule_versions`` — every version of every rule, immutable (``_id`` =
  ``<rule id>@<version>``): a decision's ``(rule_id, rule_version)`` is always found here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from crm_platform.errors import NotFound
from crm_platform.mongo import Document, replace_version
from crm_platform.rules import from_document, to_document
from crm_sales.domain.territories import (
    NO_PROFILE,
    CompanyProfile,
    CompanySize,
    RecordKind,
    TerritoryAssignment,
    TerritoryCondition,
    TerritoryRule,
)

Session = AsyncClientSession | None

_CONDITION_SETS = ("countries", "regions", "postal_prefixes", "industries", "tiers")


def profile_to_document(profile: CompanyProfile) -> Document:
    """A company profile as stored (unknown facts left out)."""
    return to_document(profile)


def profile_from_document(data: Mapping[str, Any] | None) -> CompanyProfile:
    """A company profile from its stored form (none stored: nothing known)."""
    if not data:
        return NO_PROFILE
    return from_document(CompanyProfile, data, enums={"size": CompanySize})


def assignment_to_document(assignment: TerritoryAssignment | None) -> Document | None:
    """A territory assignment as stored."""
    if assignment is None:
        return None
    return {
        "territory_id": assignment.territory_id,
        "owner_id": assignment.owner_id,
        "team_id": assignment.team_id,
        "rule_id": assignment.rule_id,
        "rule_version": assignment.rule_version,
        "decide_time": assignment.decide_time,
    }


def assignment_from_document(data: Mapping[str, Any] | None) -> TerritoryAssignment | None:
    """A territory assignment from its stored form."""
    return None if data is None else TerritoryAssignment(**data)


def rule_to_document(rule: TerritoryRule) -> Document:
    """The stored form of a rule version."""
    return {
        "_id": rule.rule_id,
        "tenant_id": rule.tenant_id,
        "version": rule.version,
        "name": rule.name,
        "position": rule.position,
        "enabled": rule.enabled,
        "applies_to": sorted(kind.value for kind in rule.applies_to),
        "condition": to_document(rule.condition),
        "territory_id": rule.territory_id,
        "owner_id": rule.owner_id,
        "team_id": rule.team_id,
        "deleted": rule.deleted,
        "create_time": rule.create_time,
        "update_time": rule.update_time,
    }


def rule_from_document(doc: Mapping[str, Any]) -> TerritoryRule:
    """Rebuild a rule version from its stored form."""
    return TerritoryRule(
        rule_id=doc["rule_id"] if "rule_id" in doc else doc["_id"],
        tenant_id=doc["tenant_id"],
        version=doc["version"],
        name=doc["name"],
        position=doc["position"],
        enabled=doc["enabled"],
        applies_to=frozenset(RecordKind(kind) for kind in doc["applies_to"]),
        condition=from_document(
            TerritoryCondition,
            doc["condition"],
            sets=_CONDITION_SETS,
            enum_sets={"sizes": CompanySize},
        ),
        territory_id=doc["territory_id"],
        owner_id=doc["owner_id"],
        team_id=doc["team_id"],
        deleted=doc["deleted"],
        create_time=doc["create_time"],
        update_time=doc["update_time"],
    )


def _version_document(rule: TerritoryRule) -> Document:
    doc = rule_to_document(rule)
    return doc | {"_id": f"{rule.rule_id}@{rule.version}", "rule_id": rule.rule_id}


class TerritoryStore:
    """Reads and writes of territory rules; a write takes its transaction's session."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.rules: AsyncCollection[Document] = db["territory_rules"]
        self.versions: AsyncCollection[Document] = db["territory_rule_versions"]

    async def ensure_indexes(self) -> None:
        """The evaluation and list order: ``(position, _id)`` within a tenant."""
        await self.rules.create_index(
            [("tenant_id", ASCENDING), ("position", ASCENDING), ("_id", ASCENDING)]
        )
        await self.versions.create_index(
            [("tenant_id", ASCENDING), ("rule_id", ASCENDING), ("version", ASCENDING)]
        )

    async def get_rule(
        self, tenant_id: str, rule_id: str, session: Session = None
    ) -> TerritoryRule:
        """The current version, or ``NotFound`` (also for a deleted rule and another
        tenant's)."""
        doc = await self.rules.find_one({"_id": rule_id, "tenant_id": tenant_id}, session=session)
        if doc is None or doc["deleted"]:
            raise NotFound("territory rule", rule_id)
        return rule_from_document(doc)

    async def get_rule_version(
        self, tenant_id: str, rule_id: str, version: int, session: Session = None
    ) -> TerritoryRule:
        """Any version (also of a deleted rule), or ``NotFound``."""
        doc = await self.versions.find_one(
            {"_id": f"{rule_id}@{version}", "tenant_id": tenant_id}, session=session
        )
        if doc is None:
            raise NotFound("territory rule", f"{rule_id}@{version}")
        return rule_from_document(doc)

    async def insert_rule(self, rule: TerritoryRule, session: AsyncClientSession) -> None:
        """Store version 1 of a rule."""
        await self.rules.insert_one(rule_to_document(rule), session=session)
        await self.versions.insert_one(_version_document(rule), session=session)

    async def replace_rule(
        self, read_version: int, rule: TerritoryRule, session: AsyncClientSession
    ) -> None:
        """Store a new version of a rule if it is still at ``read_version``
        (``CONCURRENT_UPDATE`` otherwise)."""
        await replace_version(
            self.rules, "territoryRules", read_version, rule_to_document(rule), session
        )
        await self.versions.insert_one(_version_document(rule), session=session)

    async def list_rules(
        self, tenant_id: str, after: tuple[int, str] | None, limit: int
    ) -> list[TerritoryRule]:
        """Rules not deleted, in ``(position, id)`` order, after the given key."""
        query: dict[str, Any] = {"tenant_id": tenant_id, "deleted": False}
        if after is not None:
            position, rule_id = after
            query["$or"] = [
                {"position": {"$gt": position}},
                {"position": position, "_id": {"$gt": rule_id}},
            ]
        cursor = self.rules.find(query).sort([("position", ASCENDING), ("_id", ASCENDING)])
        return [rule_from_document(doc) async for doc in cursor.limit(limit)]

    async def active_rules(self, tenant_id: str, session: Session = None) -> list[TerritoryRule]:
        """Every rule of the tenant that may apply (enabled, not deleted), as of ``session``."""
        cursor = self.rules.find(
            {"tenant_id": tenant_id, "deleted": False, "enabled": True}, session=session
        )
        return [rule_from_document(doc) async for doc in cursor.limit(10_000)]
