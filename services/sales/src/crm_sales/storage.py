"""The sales service's own database: the repository its use cases read and write through, in
their transaction's session.

Collections (database ``crm_sales`` by default):

* ``pipelines`` — the current version of each pipeline, ``_id`` = pipeline id; ``version``
  guards every replace (optimistic concurrency).
* ``pipeline_versions`` — every version ever made, ``_id`` = ``<pipeline id>@<version>``,
  never changed once written: an opportunity's stage rules are read from the version it was
  created under.
* ``opportunities`` / ``leads`` — one document per aggregate, ``_id`` = id, always queried
  together with ``tenant_id``; ``version`` guards every replace.
* ``products`` — one document per product, ``_id`` = id; ``(tenant_id, sku)`` is unique.
* ``quotes`` — one document per quote revision, ``_id`` = id; ``(tenant_id, opportunity_id,
  revision)`` is unique (two concurrent creates of one revision: one commits, the other is
  rerun as the next revision). Amounts are integers (minor units), never decimals or floats.
* ``key_sequences`` — per Kafka key of the customer-keyed events (opportunities, leads, quotes),
  ``_id`` = key: the last sequence given to an event of that key. Several aggregates publish
  on one key (a contact's leads, opportunities and their quotes), so an aggregate's version
  cannot order the key's events; this counter, incremented in each writing transaction, does
  (and serialises the writes of one key: a concurrent one conflicts and is retried).
* ``timers`` — the quotes' expiry timers (crm_platform.timers).
* ``idempotency`` and ``outbox`` — see crm_platform.idempotency and crm_platform.outbox.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from crm_platform.errors import NotFound
from crm_platform.mongo import Document, replace_version, tenant_page
from crm_sales.domain.campaign import CampaignTouch, InteractionKind
from crm_sales.domain.lead import Lead, LeadSource, LeadStatus
from crm_sales.domain.opportunity import (
    BuyingCentreMember,
    BuyingRole,
    LineItem,
    Opportunity,
    StageChange,
)
from crm_sales.domain.pipeline import Pipeline, Stage, StageKind
from crm_sales.domain.product import Price, Product
from crm_sales.domain.quote import Quote, QuoteLine, QuoteStatus, Totals
from crm_sales.territories_storage import (
    assignment_from_document,
    assignment_to_document,
    profile_from_document,
    profile_to_document,
)

Session = AsyncClientSession | None


def _version_id(pipeline_id: str, version: int) -> str:
    return f"{pipeline_id}@{version}"


def pipeline_to_document(pipeline: Pipeline) -> Document:
    """The stored form of a pipeline version."""
    return {
        "_id": pipeline.id,
        "tenant_id": pipeline.tenant_id,
        "name": pipeline.name,
        "stages": [
            {
                "id": s.id,
                "name": s.name,
                "win_probability_percent": s.win_probability_percent,
                "kind": s.kind.value,
            }
            for s in pipeline.stages
        ],
        "version": pipeline.version,
        "create_time": pipeline.create_time,
        "update_time": pipeline.update_time,
    }


def pipeline_from_document(doc: Mapping[str, Any]) -> Pipeline:
    """Rebuild a pipeline version from its stored form (current or historical)."""
    return Pipeline(
        id=doc.get("pipeline_id", doc["_id"]),
        tenant_id=doc["tenant_id"],
        name=doc["name"],
        stages=tuple(
            Stage(s["id"], s["name"], s["win_probability_percent"], StageKind(s["kind"]))
            for s in doc["stages"]
        ),
        version=doc["version"],
        create_time=doc["create_time"],
        update_time=doc["update_time"],
    )


def _version_document(pipeline: Pipeline) -> Document:
    doc = pipeline_to_document(pipeline)
    return doc | {"_id": _version_id(pipeline.id, pipeline.version), "pipeline_id": pipeline.id}


def _change_to_document(change: StageChange) -> Document:
    return {
        "from_stage_id": change.from_stage_id,
        "to_stage_id": change.to_stage_id,
        "to_kind": change.to_kind.value,
        "win_probability_percent": change.win_probability_percent,
        "change_time": change.change_time,
        "actor": change.actor,
        "reason": change.reason,
    }


def opportunity_to_document(o: Opportunity) -> Document:
    """The stored form of an opportunity."""
    return {
        "_id": o.id,
        "tenant_id": o.tenant_id,
        "name": o.name,
        "account_id": o.account_id,
        "primary_contact_id": o.primary_contact_id,
        "buying_centre": [
            {"contact_id": m.contact_id, "roles": [r.value for r in m.roles]}
            for m in o.buying_centre
        ],
        "amount_minor": o.amount_minor,
        "currency": o.currency,
        "expected_close_date": o.expected_close_date,
        "pipeline_id": o.pipeline_id,
        "pipeline_version": o.pipeline_version,
        "stage_id": o.stage_id,
        "status": o.status.value,
        "owner_id": o.owner_id,
        "source_lead_id": o.source_lead_id,
        "campaign_id": o.campaign_id,
        "line_items": [
            {
                "product_id": i.product_id,
                "description": i.description,
                "quantity": i.quantity,
                "unit_price_minor": i.unit_price_minor,
            }
            for i in o.line_items
        ],
        "stage_history": [_change_to_document(c) for c in o.stage_history],
        "close_reason": o.close_reason,
        "close_time": o.close_time,
        "event_key": o.event_key,
        "version": o.version,
        "create_time": o.create_time,
        "update_time": o.update_time,
        "account_profile": profile_to_document(o.account_profile),
        "territory": assignment_to_document(o.territory),
    }


def opportunity_from_document(doc: Mapping[str, Any]) -> Opportunity:
    """Rebuild an opportunity from its stored form."""
    return Opportunity(
        id=doc["_id"],
        tenant_id=doc["tenant_id"],
        name=doc["name"],
        account_id=doc["account_id"],
        primary_contact_id=doc["primary_contact_id"],
        buying_centre=tuple(
            BuyingCentreMember(m["contact_id"], tuple(BuyingRole(r) for r in m["roles"]))
            for m in doc["buying_centre"]
        ),
        amount_minor=doc["amount_minor"],
        currency=doc["currency"],
        expected_close_date=doc["expected_close_date"],
        pipeline_id=doc["pipeline_id"],
        pipeline_version=doc["pipeline_version"],
        stage_id=doc["stage_id"],
        status=StageKind(doc["status"]),
        owner_id=doc["owner_id"],
        source_lead_id=doc["source_lead_id"],
        campaign_id=doc["campaign_id"],
        line_items=tuple(
            LineItem(i["product_id"], i["description"], i["quantity"], i["unit_price_minor"])
            for i in doc["line_items"]
        ),
        stage_history=tuple(
            StageChange(
                c["from_stage_id"],
                c["to_stage_id"],
                StageKind(c["to_kind"]),
                c["win_probability_percent"],
                c["change_time"],
                c["actor"],
                c["reason"],
            )
            for c in doc["stage_history"]
        ),
        close_reason=doc["close_reason"],
        close_time=doc["close_time"],
        event_key=doc["event_key"],
        version=doc["version"],
        create_time=doc["create_time"],
        update_time=doc["update_time"],
        account_profile=profile_from_document(doc.get("account_profile")),
        territory=assignment_from_document(doc.get("territory")),
    )


_LEAD_TEXT = (
    "contact_id",
    "person_name",
    "company_name",
    "email",
    "phone",
    "campaign_id",
    "owner_id",
    "disqualify_reason",
    "origin_mention_id",
    "event_key",
    "converted_contact_id",
    "converted_organization_id",
    "converted_opportunity_id",
)


def lead_to_document(lead: Lead) -> Document:
    """The stored form of a lead."""
    return {
        "_id": lead.id,
        "tenant_id": lead.tenant_id,
        **{name: getattr(lead, name) for name in _LEAD_TEXT},
        "source": lead.source.value,
        "status": lead.status.value,
        "version": lead.version,
        "create_time": lead.create_time,
        "update_time": lead.update_time,
        "campaign_touches": [
            {
                "campaign_id": t.campaign_id,
                "interaction_kind": t.interaction_kind.value if t.interaction_kind else "",
                "interaction_id": t.interaction_id,
                "touch_time": t.touch_time,
                "lead_created": t.lead_created,
            }
            for t in lead.campaign_touches
        ],
        "company_profile": profile_to_document(lead.company_profile),
        "territory": assignment_to_document(lead.territory),
    }


def lead_from_document(doc: Mapping[str, Any]) -> Lead:
    """Rebuild a lead from its stored form."""
    return Lead(
        id=doc["_id"],
        tenant_id=doc["tenant_id"],
        **{name: doc[name] for name in _LEAD_TEXT},
        source=LeadSource(doc["source"]),
        status=LeadStatus(doc["status"]),
        version=doc["version"],
        create_time=doc["create_time"],
        update_time=doc["update_time"],
        campaign_touches=tuple(
            CampaignTouch(
                t["campaign_id"],
                InteractionKind(t["interaction_kind"]) if t["interaction_kind"] else None,
                t["interaction_id"],
                t["touch_time"],
                t["lead_created"],
            )
            for t in doc.get("campaign_touches", ())  # leads stored before touches: none
        ),
        company_profile=profile_from_document(doc.get("company_profile")),
        territory=assignment_from_document(doc.get("territory")),
    )


def product_to_document(product: Product) -> Document:
    """The stored form of a product."""
    return {
        "_id": product.id,
        "tenant_id": product.tenant_id,
        "sku": product.sku,
        "name": product.name,
        "active": product.active,
        "prices": [
            {"currency": p.currency, "unit_price_minor": p.unit_price_minor} for p in product.prices
        ],
        "version": product.version,
        "create_time": product.create_time,
        "update_time": product.update_time,
    }


def product_from_document(doc: Mapping[str, Any]) -> Product:
    """Rebuild a product from its stored form."""
    return Product(
        id=doc["_id"],
        tenant_id=doc["tenant_id"],
        sku=doc["sku"],
        name=doc["name"],
        active=doc["active"],
        prices=tuple(Price(p["currency"], p["unit_price_minor"]) for p in doc["prices"]),
        version=doc["version"],
        create_time=doc["create_time"],
        update_time=doc["update_time"],
    )


_LINE_FIELDS = (
    "product_id",
    "sku",
    "name",
    "quantity",
    "unit_price_minor",
    "discount_basis_points",
    "tax_rate_basis_points",
    "net_minor",
    "tax_minor",
)


def quote_to_document(quote: Quote) -> Document:
    """The stored form of a quote revision."""
    return {
        "_id": quote.id,
        "tenant_id": quote.tenant_id,
        "opportunity_id": quote.opportunity_id,
        "revision": quote.revision,
        "currency": quote.currency,
        "lines": [{name: getattr(line, name) for name in _LINE_FIELDS} for line in quote.lines],
        "net_total_minor": quote.totals.net_minor,
        "tax_total_minor": quote.totals.tax_minor,
        "total_minor": quote.totals.total_minor,
        "valid_until": quote.valid_until,
        "status": quote.status.value,
        "reason": quote.reason,
        "send_time": quote.send_time,
        "close_time": quote.close_time,
        "event_key": quote.event_key,
        "version": quote.version,
        "create_time": quote.create_time,
        "update_time": quote.update_time,
    }


def quote_from_document(doc: Mapping[str, Any]) -> Quote:
    """Rebuild a quote revision from its stored form."""
    return Quote(
        id=doc["_id"],
        tenant_id=doc["tenant_id"],
        opportunity_id=doc["opportunity_id"],
        revision=doc["revision"],
        currency=doc["currency"],
        lines=tuple(
            QuoteLine(**{name: line[name] for name in _LINE_FIELDS}) for line in doc["lines"]
        ),
        totals=Totals(doc["net_total_minor"], doc["tax_total_minor"], doc["total_minor"]),
        valid_until=doc["valid_until"],
        status=QuoteStatus(doc["status"]),
        reason=doc["reason"],
        send_time=doc["send_time"],
        close_time=doc["close_time"],
        event_key=doc["event_key"],
        version=doc["version"],
        create_time=doc["create_time"],
        update_time=doc["update_time"],
    )


class SalesStore:
    """Reads and writes of pipelines, opportunities and leads; a write takes its transaction's
    session."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.pipelines: AsyncCollection[Document] = db["pipelines"]
        self.pipeline_versions: AsyncCollection[Document] = db["pipeline_versions"]
        self.opportunities: AsyncCollection[Document] = db["opportunities"]
        self.leads: AsyncCollection[Document] = db["leads"]
        self.products: AsyncCollection[Document] = db["products"]
        self.quotes: AsyncCollection[Document] = db["quotes"]
        self.key_sequences: AsyncCollection[Document] = db["key_sequences"]

    async def ensure_indexes(self) -> None:
        """Indexes for the list filters (keyset order is ``_id``)."""
        tenant = ("tenant_id", ASCENDING)
        key = ("_id", ASCENDING)
        await self.pipelines.create_index([tenant, key])
        await self.opportunities.create_index([tenant, key])
        for name in ("pipeline_id", "stage_id", "status", "owner_id", "account_id", "campaign_id"):
            await self.opportunities.create_index([tenant, (name, ASCENDING), key])
        await self.leads.create_index([tenant, key])
        for name in ("status", "source", "owner_id", "campaign_id"):
            await self.leads.create_index([tenant, (name, ASCENDING), key])
        await self.products.create_index([tenant, ("sku", ASCENDING)], unique=True)
        await self.products.create_index([tenant, ("active", ASCENDING), key])
        await self.products.create_index([tenant, key])
        await self.quotes.create_index(
            [tenant, ("opportunity_id", ASCENDING), ("revision", ASCENDING)], unique=True
        )
        await self.quotes.create_index([tenant, ("opportunity_id", ASCENDING), key])
        await self.quotes.create_index([tenant, ("status", ASCENDING), key])
        await self.quotes.create_index([tenant, key])

    # --- pipelines --------------------------------------------------------------------------

    async def get_pipeline(
        self, tenant_id: str, pipeline_id: str, session: Session = None
    ) -> Pipeline:
        """The pipeline's current version, or ``NotFound`` (also for another tenant's)."""
        doc = await self.pipelines.find_one(
            {"_id": pipeline_id, "tenant_id": tenant_id}, session=session
        )
        if doc is None:
            raise NotFound("pipeline", pipeline_id)
        return pipeline_from_document(doc)

    async def get_pipeline_version(
        self, tenant_id: str, pipeline_id: str, version: int, session: Session = None
    ) -> Pipeline:
        """One version of the pipeline, or ``NotFound``."""
        doc = await self.pipeline_versions.find_one(
            {"_id": _version_id(pipeline_id, version), "tenant_id": tenant_id}, session=session
        )
        if doc is None:
            raise NotFound("pipeline version", _version_id(pipeline_id, version))
        return pipeline_from_document(doc)

    async def insert_pipeline(self, pipeline: Pipeline, session: AsyncClientSession) -> None:
        """Store a new pipeline and its version 1."""
        await self.pipelines.insert_one(pipeline_to_document(pipeline), session=session)
        await self.pipeline_versions.insert_one(_version_document(pipeline), session=session)

    async def replace_pipeline(
        self, read_version: int, pipeline: Pipeline, session: AsyncClientSession
    ) -> None:
        """Store a pipeline's new version if it is still at ``read_version`` (otherwise
        FAILED_PRECONDITION ``CONCURRENT_UPDATE``), keeping every earlier version."""
        await replace_version(
            self.pipelines, "pipelines", read_version, pipeline_to_document(pipeline), session
        )
        await self.pipeline_versions.insert_one(_version_document(pipeline), session=session)

    async def list_pipelines(
        self, tenant_id: str, after_id: str | None, limit: int
    ) -> list[Pipeline]:
        """The tenant's pipelines (current versions), in id order, after ``after_id``."""
        return [
            pipeline_from_document(doc)
            async for doc in tenant_page(self.pipelines, tenant_id, {}, after_id, limit)
        ]

    # --- opportunities ----------------------------------------------------------------------

    async def get_opportunity(
        self, tenant_id: str, opportunity_id: str, session: Session = None
    ) -> Opportunity:
        """The opportunity, or ``NotFound`` (also when it belongs to another tenant)."""
        doc = await self.opportunities.find_one(
            {"_id": opportunity_id, "tenant_id": tenant_id}, session=session
        )
        if doc is None:
            raise NotFound("opportunity", opportunity_id)
        return opportunity_from_document(doc)

    async def insert_opportunity(
        self, opportunity: Opportunity, session: AsyncClientSession
    ) -> None:
        """Store a new opportunity."""
        await self.opportunities.insert_one(opportunity_to_document(opportunity), session=session)

    async def replace_opportunity(
        self, read_version: int, opportunity: Opportunity, session: AsyncClientSession
    ) -> None:
        """Store a changed opportunity if it is still at ``read_version``."""
        await replace_version(
            self.opportunities,
            "opportunities",
            read_version,
            opportunity_to_document(opportunity),
            session,
        )

    async def list_opportunities(
        self, tenant_id: str, filters: Mapping[str, str], after_id: str | None, limit: int
    ) -> list[Opportunity]:
        """Opportunities matching every filter (stored field → value), in id order."""
        return [
            opportunity_from_document(doc)
            async for doc in tenant_page(self.opportunities, tenant_id, filters, after_id, limit)
        ]

    # --- leads ------------------------------------------------------------------------------

    async def get_lead(self, tenant_id: str, lead_id: str, session: Session = None) -> Lead:
        """The lead, or ``NotFound`` (also when it belongs to another tenant)."""
        doc = await self.leads.find_one({"_id": lead_id, "tenant_id": tenant_id}, session=session)
        if doc is None:
            raise NotFound("lead", lead_id)
        return lead_from_document(doc)

    async def insert_lead(self, lead: Lead, session: AsyncClientSession) -> None:
        """Store a new lead."""
        await self.leads.insert_one(lead_to_document(lead), session=session)

    async def replace_lead(
        self, read_version: int, lead: Lead, session: AsyncClientSession
    ) -> None:
        """Store a changed lead if it is still at ``read_version``."""
        await replace_version(self.leads, "leads", read_version, lead_to_document(lead), session)

    async def list_leads(
        self, tenant_id: str, filters: Mapping[str, str], after_id: str | None, limit: int
    ) -> list[Lead]:
        """Leads matching every filter (stored field → value), in id order."""
        return [
            lead_from_document(doc)
            async for doc in tenant_page(self.leads, tenant_id, filters, after_id, limit)
        ]

    # --- event order --------------------------------------------------------------------------

    async def next_key_sequence(self, key: str, session: AsyncClientSession) -> int:
        """The next sequence of the events keyed ``key`` (1, 2, ...), in the caller's
        transaction (see ``key_sequences`` above)."""
        doc = await self.key_sequences.find_one_and_update(
            {"_id": key},
            {"$inc": {"seq": 1}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
            session=session,
        )
        assert doc is not None
        return int(doc["seq"])

    # --- products ---------------------------------------------------------------------------

    async def get_product(
        self, tenant_id: str, product_id: str, session: Session = None
    ) -> Product:
        """The product, or ``NotFound`` (also when it belongs to another tenant)."""
        doc = await self.products.find_one(
            {"_id": product_id, "tenant_id": tenant_id}, session=session
        )
        if doc is None:
            raise NotFound("product", product_id)
        return product_from_document(doc)

    async def products_by_id(
        self, tenant_id: str, product_ids: Sequence[str], session: Session = None
    ) -> dict[str, Product]:
        """The tenant's products among ``product_ids`` (unknown ids are left out)."""
        found = self.products.find(
            {"tenant_id": tenant_id, "_id": {"$in": list(dict.fromkeys(product_ids))}},
            session=session,
        )
        return {doc["_id"]: product_from_document(doc) async for doc in found}

    async def sku_taken(self, tenant_id: str, sku: str, session: Session = None) -> bool:
        """Whether a product of the tenant has ``sku``."""
        doc = await self.products.find_one(
            {"tenant_id": tenant_id, "sku": sku}, {"_id": 1}, session=session
        )
        return doc is not None

    async def insert_product(self, product: Product, session: AsyncClientSession) -> None:
        """Store a new product."""
        await self.products.insert_one(product_to_document(product), session=session)

    async def replace_product(
        self, read_version: int, product: Product, session: AsyncClientSession
    ) -> None:
        """Store a changed product if it is still at ``read_version``."""
        await replace_version(
            self.products, "products", read_version, product_to_document(product), session
        )

    async def list_products(
        self, tenant_id: str, filters: Mapping[str, object], after_id: str | None, limit: int
    ) -> list[Product]:
        """Products matching every filter, in id order."""
        return [
            product_from_document(doc)
            async for doc in tenant_page(self.products, tenant_id, filters, after_id, limit)
        ]

    # --- quotes -----------------------------------------------------------------------------

    async def get_quote(self, tenant_id: str, quote_id: str, session: Session = None) -> Quote:
        """The quote revision, or ``NotFound`` (also when it belongs to another tenant)."""
        doc = await self.quotes.find_one({"_id": quote_id, "tenant_id": tenant_id}, session=session)
        if doc is None:
            raise NotFound("quote", quote_id)
        return quote_from_document(doc)

    async def last_revision(
        self, tenant_id: str, opportunity_id: str, session: Session = None
    ) -> int:
        """The highest revision of the opportunity's quotes (0 without one)."""
        found = (
            await self.quotes.find(
                {"tenant_id": tenant_id, "opportunity_id": opportunity_id},
                {"revision": 1},
                session=session,
            )
            .sort("revision", DESCENDING)
            .limit(1)
            .to_list(1)
        )
        return int(found[0]["revision"]) if found else 0

    async def insert_quote(self, quote: Quote, session: AsyncClientSession) -> None:
        """Store a new quote revision."""
        await self.quotes.insert_one(quote_to_document(quote), session=session)

    async def replace_quote(
        self, read_version: int, quote: Quote, session: AsyncClientSession
    ) -> None:
        """Store a changed quote if it is still at ``read_version``."""
        await replace_version(
            self.quotes, "quotes", read_version, quote_to_document(quote), session
        )

    async def list_quotes(
        self, tenant_id: str, filters: Mapping[str, object], after_id: str | None, limit: int
    ) -> list[Quote]:
        """Quotes matching every filter, in id order."""
        return [
            quote_from_document(doc)
            async for doc in tenant_page(self.quotes, tenant_id, filters, after_id, limit)
        ]
