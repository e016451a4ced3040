"""The campaigns' part of the sales database: the repository the campaign use cases read and
write through, in their transaction's session.

Collections:

* ``campaigns`` — one document per campaign, ``_id`` = id, always queried with ``tenant_id``;
  ``version`` guards every replace (optimistic concurrency).
* ``campaign_costs`` — one document per cost entry, ``_id`` = id, never changed; amounts in
  minor units of the campaign's currency.
* ``campaign_interactions`` — one document per interaction, never changed. ``_id`` is derived
  from (tenant, campaign, contact, kind, external id)
  (:func:`crm_sales.domain.campaign.interaction_id`): the primary key is the idempotency key,
  so two writers of one interaction cannot both commit (the loser's transaction fails with a
  duplicate key and is rerun, finding it recorded).

Leads are read and written through :class:`crm_sales.storage.SalesStore` (its ``leads``
collection gets one more index here: the open leads of a contact).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from crm_platform.errors import NotFound
from crm_platform.mongo import Document, replace_version, tenant_page
from crm_sales.domain.campaign import (
    Campaign,
    CampaignChannel,
    CampaignCost,
    CampaignStatus,
    Interaction,
    InteractionKind,
)
from crm_sales.domain.lead import Lead, LeadStatus
from crm_sales.storage import SalesStore, lead_from_document

Session = AsyncClientSession | None

_CAMPAIGN_FIELDS = (
    "name",
    "budget_minor",
    "currency",
    "target_segment",
    "cancel_reason",
    "cost_total_minor",
    "cost_entry_count",
    "activate_time",
    "close_time",
    "version",
    "create_time",
    "update_time",
)
_OPEN_LEADS = [s.value for s in (LeadStatus.NEW, LeadStatus.WORKING, LeadStatus.QUALIFIED)]


def campaign_to_document(campaign: Campaign) -> Document:
    """The stored form of a campaign."""
    return {
        "_id": campaign.id,
        "tenant_id": campaign.tenant_id,
        "channel": campaign.channel.value,
        "status": campaign.status.value,
        **{name: getattr(campaign, name) for name in _CAMPAIGN_FIELDS},
    }


def campaign_from_document(doc: Mapping[str, Any]) -> Campaign:
    """Rebuild a campaign from its stored form."""
    return Campaign(
        id=doc["_id"],
        tenant_id=doc["tenant_id"],
        channel=CampaignChannel(doc["channel"]),
        status=CampaignStatus(doc["status"]),
        **{name: doc[name] for name in _CAMPAIGN_FIELDS},
    )


def cost_to_document(cost: CampaignCost) -> Document:
    """The stored form of a cost entry."""
    return {
        "_id": cost.id,
        "tenant_id": cost.tenant_id,
        "campaign_id": cost.campaign_id,
        "amount_minor": cost.amount_minor,
        "currency": cost.currency,
        "cost_date": cost.cost_date,
        "description": cost.description,
        "record_time": cost.record_time,
    }


def cost_from_document(doc: Mapping[str, Any]) -> CampaignCost:
    """Rebuild a cost entry from its stored form."""
    return CampaignCost(
        id=doc["_id"],
        tenant_id=doc["tenant_id"],
        campaign_id=doc["campaign_id"],
        amount_minor=doc["amount_minor"],
        currency=doc["currency"],
        cost_date=doc["cost_date"],
        description=doc["description"],
        record_time=doc["record_time"],
    )


def interaction_to_document(interaction: Interaction) -> Document:
    """The stored form of an interaction."""
    i = interaction
    return {
        "_id": i.id,
        "tenant_id": i.tenant_id,
        "campaign_id": i.campaign_id,
        "contact_id": i.contact_id,
        "kind": i.kind.value,
        "external_id": i.external_id,
        "channel": i.channel.value,
        "occur_time": i.occur_time,
        "record_time": i.record_time,
    }


def interaction_from_document(doc: Mapping[str, Any]) -> Interaction:
    """Rebuild an interaction from its stored form."""
    return Interaction(
        id=doc["_id"],
        tenant_id=doc["tenant_id"],
        campaign_id=doc["campaign_id"],
        contact_id=doc["contact_id"],
        kind=InteractionKind(doc["kind"]),
        external_id=doc["external_id"],
        channel=CampaignChannel(doc["channel"]),
        occur_time=doc["occur_time"],
        record_time=doc["record_time"],
    )


class CampaignStore:
    """Reads and writes of campaigns, their costs and interactions; a write takes its
    transaction's session."""

    def __init__(self, db: AsyncDatabase[Document], sales: SalesStore) -> None:
        self.campaigns: AsyncCollection[Document] = db["campaigns"]
        self.costs: AsyncCollection[Document] = db["campaign_costs"]
        self.interactions: AsyncCollection[Document] = db["campaign_interactions"]
        self.sales = sales

    async def ensure_indexes(self) -> None:
        """Indexes for the list filters (keyset order is ``_id``), the unsubscribes of a
        contact, the open leads of a contact."""
        tenant = ("tenant_id", ASCENDING)
        key = ("_id", ASCENDING)
        await self.campaigns.create_index([tenant, key])
        for name in ("status", "channel"):
            await self.campaigns.create_index([tenant, (name, ASCENDING), key])
        await self.costs.create_index([tenant, ("campaign_id", ASCENDING), key])
        await self.interactions.create_index(
            [tenant, ("contact_id", ASCENDING), ("kind", ASCENDING), ("channel", ASCENDING)]
        )
        await self.interactions.create_index([tenant, ("campaign_id", ASCENDING), key])
        await self.sales.leads.create_index(
            [tenant, ("contact_id", ASCENDING), ("status", ASCENDING)]
        )

    # --- campaigns --------------------------------------------------------------------------

    async def get_campaign(
        self, tenant_id: str, campaign_id: str, session: Session = None
    ) -> Campaign:
        """The campaign, or ``NotFound`` (also when it belongs to another tenant)."""
        doc = await self.campaigns.find_one(
            {"_id": campaign_id, "tenant_id": tenant_id}, session=session
        )
        if doc is None:
            raise NotFound("campaign", campaign_id)
        return campaign_from_document(doc)

    async def campaigns_by_id(
        self, tenant_id: str, campaign_ids: Iterable[str], session: Session = None
    ) -> dict[str, Campaign]:
        """The tenant's campaigns among ``campaign_ids`` (unknown ids are left out)."""
        found = self.campaigns.find(
            {"tenant_id": tenant_id, "_id": {"$in": list(dict.fromkeys(campaign_ids))}},
            session=session,
        )
        return {doc["_id"]: campaign_from_document(doc) async for doc in found}

    async def insert_campaign(self, campaign: Campaign, session: AsyncClientSession) -> None:
        """Store a new campaign."""
        await self.campaigns.insert_one(campaign_to_document(campaign), session=session)

    async def replace_campaign(
        self, read_version: int, campaign: Campaign, session: AsyncClientSession
    ) -> None:
        """Store a changed campaign if it is still at ``read_version``."""
        await replace_version(
            self.campaigns, "campaigns", read_version, campaign_to_document(campaign), session
        )

    async def list_campaigns(
        self, tenant_id: str, filters: Mapping[str, str], after_id: str | None, limit: int
    ) -> list[Campaign]:
        """Campaigns matching every filter (stored field → value), in id order."""
        cursor = tenant_page(self.campaigns, tenant_id, filters, after_id, limit)
        return [campaign_from_document(doc) async for doc in cursor]

    # --- costs ------------------------------------------------------------------------------

    async def insert_cost(self, cost: CampaignCost, session: AsyncClientSession) -> None:
        """Store a new cost entry."""
        await self.costs.insert_one(cost_to_document(cost), session=session)

    async def get_cost(self, tenant_id: str, cost_id: str, session: Session = None) -> CampaignCost:
        """The cost entry, or ``NotFound``."""
        doc = await self.costs.find_one({"_id": cost_id, "tenant_id": tenant_id}, session=session)
        if doc is None:
            raise NotFound("campaign cost", cost_id)
        return cost_from_document(doc)

    # --- interactions -----------------------------------------------------------------------

    async def recorded_interactions(
        self, tenant_id: str, ids: Sequence[str], session: Session = None
    ) -> set[str]:
        """Which of the interaction ``ids`` are recorded already."""
        found = self.interactions.find(
            {"tenant_id": tenant_id, "_id": {"$in": list(ids)}}, {"_id": 1}, session=session
        )
        return {doc["_id"] async for doc in found}

    async def insert_interactions(
        self, interactions: Sequence[Interaction], session: AsyncClientSession
    ) -> None:
        """Store new interactions, in one command."""
        if interactions:
            await self.interactions.insert_many(
                [interaction_to_document(i) for i in interactions], session=session
            )

    async def last_unsubscribes(
        self,
        tenant_id: str,
        contact_ids: Iterable[str],
        session: Session = None,
    ) -> dict[tuple[str, CampaignChannel], datetime]:
        """When each contact's last unsubscribe was recorded, per channel (record time, the
        service's clock: comparable with the time the contacts service last changed a consent,
        unlike the sender's occur time)."""
        found = self.interactions.find(
            {
                "tenant_id": tenant_id,
                "contact_id": {"$in": list(dict.fromkeys(contact_ids))},
                "kind": InteractionKind.UNSUBSCRIBED.value,
            },
            {"contact_id": 1, "channel": 1, "record_time": 1},
            session=session,
        )
        last: dict[tuple[str, CampaignChannel], datetime] = {}
        async for doc in found:
            key = (doc["contact_id"], CampaignChannel(doc["channel"]))
            if key not in last or doc["record_time"] > last[key]:
                last[key] = doc["record_time"]
        return last

    async def list_interactions(
        self, tenant_id: str, campaign_id: str, session: Session = None
    ) -> list[Interaction]:
        """Every interaction of a campaign, in id order (tests and tools)."""
        cursor = self.interactions.find(
            {"tenant_id": tenant_id, "campaign_id": campaign_id}, session=session
        ).sort("_id", ASCENDING)
        return [interaction_from_document(doc) async for doc in cursor]

    # --- leads and event order --------------------------------------------------------------

    async def open_leads_of(
        self, tenant_id: str, contact_ids: Iterable[str], session: Session = None
    ) -> list[Lead]:
        """The open (new, working, qualified) leads about any of ``contact_ids``, in id
        order."""
        cursor = self.sales.leads.find(
            {
                "tenant_id": tenant_id,
                "contact_id": {"$in": list(dict.fromkeys(contact_ids))},
                "status": {"$in": _OPEN_LEADS},
            },
            session=session,
        ).sort("_id", ASCENDING)
        return [lead_from_document(doc) async for doc in cursor]

    async def next_shared_sequence(self, keys: Iterable[str], session: AsyncClientSession) -> int:
        """One sequence for the events of all ``keys`` in the caller's transaction, after every
        earlier event of each of them (see ``key_sequences`` in :mod:`crm_sales.storage`).

        Each key's counter is incremented (which, as for one key, serialises the writers of a
        key), the largest result is taken, and every key's counter is raised to it: it orders
        the batch's events after each key's earlier ones, and the next writer of any of the keys
        gets a larger one. So a whole batch of many contacts' events goes to the outbox in one
        command, in order per key (the relay orders a key's events by sequence, then by their
        ObjectIds, which increase within the command)."""
        distinct = list(dict.fromkeys(keys))
        collection = self.sales.key_sequences
        await collection.bulk_write(
            [UpdateOne({"_id": key}, {"$inc": {"seq": 1}}, upsert=True) for key in distinct],
            ordered=False,
            session=session,
        )
        found = collection.find({"_id": {"$in": distinct}}, {"seq": 1}, session=session)
        shared = max([int(doc["seq"]) async for doc in found])
        await collection.update_many(
            {"_id": {"$in": distinct}, "seq": {"$lt": shared}},
            {"$set": {"seq": shared}},
            session=session,
        )
        return shared
