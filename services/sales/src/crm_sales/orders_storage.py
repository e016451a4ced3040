"""The orders area's collections, in the sales service's database.

* ``orders`` — one document per order, ``_id`` = id; ``(tenant_id, external_id)`` is unique
  (two concurrent recordings of one ERP order: one commits, the other's rerun finds it).
  ``version`` guards the replace a return makes (what was returned of each line), so two
  concurrent returns of one order cannot both take the last unit back.
* ``returns`` — one document per return; ``(tenant_id, external_id)`` is unique.
* ``costs`` — one document per cost.
* ``currency_settings`` — one document per tenant, ``_id`` = tenant id, with ``version``.
* ``exchange_rates`` — one document per (tenant, base currency, currency, valid_from), ``_id``
  = ``<tenant>|<base>|<currency>|<valid_from>``; the rate is an exact decimal string.

Days are stored as ``YYYY-MM-DD`` strings (their order is the calendar's); amounts are integers
(minor units), never decimals or floats.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from crm_platform.errors import NotFound
from crm_platform.mongo import Document, replace_version, tenant_page
from crm_sales.domain.orders import (
    BaseAmounts,
    ConversionStatus,
    Cost,
    CostCategory,
    CurrencySettings,
    ExchangeRate,
    Order,
    OrderLine,
    Return,
    ReturnedLine,
)

Session = AsyncClientSession | None

_BASE_FIELDS = ("base_currency", "rate", "rate_valid_from", "amount_minor", "cost_minor")
_LINE_FIELDS = ("line_number", "sku", "product_id", "quantity", "revenue_minor", "cost_minor")
_RETURNED_FIELDS = ("line_number", "quantity", "revenue_minor", "cost_minor")


def _base_to_document(base: BaseAmounts) -> Document:
    return {"status": base.status.value, **{name: getattr(base, name) for name in _BASE_FIELDS}}


def _base_from_document(doc: Mapping[str, Any]) -> BaseAmounts:
    return BaseAmounts(
        ConversionStatus(doc["status"]), **{name: doc[name] for name in _BASE_FIELDS}
    )


def _returned(items: list[Mapping[str, Any]]) -> tuple[ReturnedLine, ...]:
    return tuple(ReturnedLine(**{name: i[name] for name in _RETURNED_FIELDS}) for i in items)


def order_to_document(order: Order) -> Document:
    """The stored form of an order."""
    return {
        "_id": order.id,
        "tenant_id": order.tenant_id,
        "external_id": order.external_id,
        "contact_id": order.contact_id,
        "account_id": order.account_id,
        "opportunity_id": order.opportunity_id,
        "order_date": order.order_date,
        "currency": order.currency,
        "lines": [{name: getattr(line, name) for name in _LINE_FIELDS} for line in order.lines],
        "revenue_total_minor": order.revenue_total_minor,
        "cost_total_minor": order.cost_total_minor,
        "base": _base_to_document(order.base),
        "returned": [{name: getattr(r, name) for name in _RETURNED_FIELDS} for r in order.returned],
        "fingerprint": order.fingerprint,
        "event_key": order.event_key,
        "version": order.version,
        "record_time": order.record_time,
    }


def order_from_document(doc: Mapping[str, Any]) -> Order:
    """Rebuild an order from its stored form."""
    return Order(
        id=doc["_id"],
        tenant_id=doc["tenant_id"],
        external_id=doc["external_id"],
        contact_id=doc["contact_id"],
        account_id=doc["account_id"],
        opportunity_id=doc["opportunity_id"],
        order_date=doc["order_date"],
        currency=doc["currency"],
        lines=tuple(OrderLine(**{name: i[name] for name in _LINE_FIELDS}) for i in doc["lines"]),
        revenue_total_minor=doc["revenue_total_minor"],
        cost_total_minor=doc["cost_total_minor"],
        base=_base_from_document(doc["base"]),
        returned=_returned(doc["returned"]),
        fingerprint=doc["fingerprint"],
        event_key=doc["event_key"],
        version=doc["version"],
        record_time=doc["record_time"],
    )


def return_to_document(taken: Return) -> Document:
    """The stored form of a return."""
    return {
        "_id": taken.id,
        "tenant_id": taken.tenant_id,
        "external_id": taken.external_id,
        "order_id": taken.order_id,
        "return_date": taken.return_date,
        "lines": [{name: getattr(r, name) for name in _RETURNED_FIELDS} for r in taken.lines],
        "currency": taken.currency,
        "revenue_total_minor": taken.revenue_total_minor,
        "cost_total_minor": taken.cost_total_minor,
        "base": _base_to_document(taken.base),
        "contact_id": taken.contact_id,
        "account_id": taken.account_id,
        "fingerprint": taken.fingerprint,
        "event_key": taken.event_key,
        "record_time": taken.record_time,
    }


def return_from_document(doc: Mapping[str, Any]) -> Return:
    """Rebuild a return from its stored form."""
    return Return(
        id=doc["_id"],
        tenant_id=doc["tenant_id"],
        external_id=doc["external_id"],
        order_id=doc["order_id"],
        return_date=doc["return_date"],
        lines=_returned(doc["lines"]),
        currency=doc["currency"],
        revenue_total_minor=doc["revenue_total_minor"],
        cost_total_minor=doc["cost_total_minor"],
        base=_base_from_document(doc["base"]),
        contact_id=doc["contact_id"],
        account_id=doc["account_id"],
        fingerprint=doc["fingerprint"],
        event_key=doc["event_key"],
        record_time=doc["record_time"],
    )


_COST_TEXT = (
    "contact_id",
    "account_id",
    "currency",
    "period_start",
    "period_end",
    "description",
    "event_key",
)


def cost_to_document(cost: Cost) -> Document:
    """The stored form of a cost."""
    return {
        "_id": cost.id,
        "tenant_id": cost.tenant_id,
        **{name: getattr(cost, name) for name in _COST_TEXT},
        "category": cost.category.value,
        "amount_minor": cost.amount_minor,
        "base": _base_to_document(cost.base),
        "record_time": cost.record_time,
    }


def cost_from_document(doc: Mapping[str, Any]) -> Cost:
    """Rebuild a cost from its stored form."""
    return Cost(
        id=doc["_id"],
        tenant_id=doc["tenant_id"],
        **{name: doc[name] for name in _COST_TEXT},
        category=CostCategory(doc["category"]),
        amount_minor=doc["amount_minor"],
        base=_base_from_document(doc["base"]),
        record_time=doc["record_time"],
    )


def _rate_id(tenant_id: str, base: str, currency: str, valid_from: str) -> str:
    return f"{tenant_id}|{base}|{currency}|{valid_from}"


def rate_to_document(rate: ExchangeRate) -> Document:
    """The stored form of an exchange rate."""
    return {
        "_id": _rate_id(rate.tenant_id, rate.base_currency, rate.currency, rate.valid_from),
        "tenant_id": rate.tenant_id,
        "currency": rate.currency,
        "base_currency": rate.base_currency,
        "rate": rate.rate_text,
        "valid_from": rate.valid_from,
        "record_time": rate.record_time,
    }


def rate_from_document(doc: Mapping[str, Any]) -> ExchangeRate:
    """Rebuild an exchange rate from its stored form."""
    return ExchangeRate(
        tenant_id=doc["tenant_id"],
        currency=doc["currency"],
        base_currency=doc["base_currency"],
        rate=Decimal(doc["rate"]),
        valid_from=doc["valid_from"],
        record_time=doc["record_time"],
    )


class OrdersStore:
    """Reads and writes of orders, returns, costs, currency settings and exchange rates."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.orders: AsyncCollection[Document] = db["orders"]
        self.returns: AsyncCollection[Document] = db["returns"]
        self.costs: AsyncCollection[Document] = db["costs"]
        self.settings: AsyncCollection[Document] = db["currency_settings"]
        self.rates: AsyncCollection[Document] = db["exchange_rates"]

    async def ensure_indexes(self) -> None:
        """Uniqueness of ERP ids, the list filters (keyset order is ``_id``), rate lookup."""
        tenant = ("tenant_id", ASCENDING)
        key = ("_id", ASCENDING)
        for collection in (self.orders, self.returns):
            await collection.create_index([tenant, ("external_id", ASCENDING)], unique=True)
        for collection in (self.orders, self.returns, self.costs):
            await collection.create_index([tenant, key])
            for name in ("contact_id", "account_id"):
                await collection.create_index([tenant, (name, ASCENDING), key])
        await self.returns.create_index([tenant, ("order_id", ASCENDING), key])
        await self.rates.create_index(
            [
                tenant,
                ("base_currency", ASCENDING),
                ("currency", ASCENDING),
                ("valid_from", ASCENDING),
            ]
        )

    # --- orders -----------------------------------------------------------------------------

    async def get_order(self, tenant_id: str, order_id: str, session: Session = None) -> Order:
        """The order, or ``NotFound`` (also when it belongs to another tenant)."""
        doc = await self.orders.find_one({"_id": order_id, "tenant_id": tenant_id}, session=session)
        if doc is None:
            raise NotFound("order", order_id)
        return order_from_document(doc)

    async def order_by_external_id(
        self, tenant_id: str, external_id: str, session: Session = None
    ) -> Order | None:
        """The tenant's order with this ERP id, if recorded."""
        doc = await self.orders.find_one(
            {"tenant_id": tenant_id, "external_id": external_id}, session=session
        )
        return order_from_document(doc) if doc is not None else None

    async def insert_order(self, order: Order, session: AsyncClientSession) -> None:
        """Store a new order (a duplicate ERP id is a ``DuplicateKeyError``)."""
        await self.orders.insert_one(order_to_document(order), session=session)

    async def replace_order(
        self, read_version: int, order: Order, session: AsyncClientSession
    ) -> None:
        """Store an order's returned amounts if it is still at ``read_version``."""
        await replace_version(
            self.orders, "orders", read_version, order_to_document(order), session
        )

    async def list_orders(
        self, tenant_id: str, filters: Mapping[str, object], after_id: str | None, limit: int
    ) -> list[Order]:
        """Orders matching every filter, in id order."""
        return [
            order_from_document(doc)
            async for doc in tenant_page(self.orders, tenant_id, filters, after_id, limit)
        ]

    # --- returns ----------------------------------------------------------------------------

    async def get_return(self, tenant_id: str, return_id: str, session: Session = None) -> Return:
        """The return, or ``NotFound``."""
        doc = await self.returns.find_one(
            {"_id": return_id, "tenant_id": tenant_id}, session=session
        )
        if doc is None:
            raise NotFound("return", return_id)
        return return_from_document(doc)

    async def return_by_external_id(
        self, tenant_id: str, external_id: str, session: Session = None
    ) -> Return | None:
        """The tenant's return with this ERP id, if recorded."""
        doc = await self.returns.find_one(
            {"tenant_id": tenant_id, "external_id": external_id}, session=session
        )
        return return_from_document(doc) if doc is not None else None

    async def insert_return(self, taken: Return, session: AsyncClientSession) -> None:
        """Store a new return."""
        await self.returns.insert_one(return_to_document(taken), session=session)

    async def list_returns(
        self, tenant_id: str, filters: Mapping[str, object], after_id: str | None, limit: int
    ) -> list[Return]:
        """Returns matching every filter, in id order."""
        return [
            return_from_document(doc)
            async for doc in tenant_page(self.returns, tenant_id, filters, after_id, limit)
        ]

    # --- costs ------------------------------------------------------------------------------

    async def get_cost(self, tenant_id: str, cost_id: str, session: Session = None) -> Cost:
        """The cost, or ``NotFound``."""
        doc = await self.costs.find_one({"_id": cost_id, "tenant_id": tenant_id}, session=session)
        if doc is None:
            raise NotFound("cost", cost_id)
        return cost_from_document(doc)

    async def insert_cost(self, cost: Cost, session: AsyncClientSession) -> None:
        """Store a new cost."""
        await self.costs.insert_one(cost_to_document(cost), session=session)

    async def list_costs(
        self, tenant_id: str, filters: Mapping[str, object], after_id: str | None, limit: int
    ) -> list[Cost]:
        """Costs matching every filter, in id order."""
        return [
            cost_from_document(doc)
            async for doc in tenant_page(self.costs, tenant_id, filters, after_id, limit)
        ]

    # --- currencies -------------------------------------------------------------------------

    async def get_settings(self, tenant_id: str, session: Session = None) -> CurrencySettings:
        """The tenant's currency settings (version 0 when never set)."""
        doc = await self.settings.find_one({"_id": tenant_id}, session=session)
        if doc is None:
            return CurrencySettings.unset(tenant_id)
        return CurrencySettings(
            doc["_id"], doc["base_currency"], doc["version"], doc["update_time"]
        )

    async def save_settings(
        self, read_version: int, settings: CurrencySettings, session: AsyncClientSession
    ) -> None:
        """Store the settings' new version if they are still at ``read_version``."""
        doc = {
            "_id": settings.tenant_id,
            "tenant_id": settings.tenant_id,
            "base_currency": settings.base_currency,
            "version": settings.version,
            "update_time": settings.update_time,
        }
        if read_version == 0:
            await self.settings.insert_one(doc, session=session)
        else:
            await replace_version(self.settings, "currency_settings", read_version, doc, session)

    async def get_rate_on(
        self, tenant_id: str, base: str, currency: str, valid_from: str, session: Session = None
    ) -> ExchangeRate | None:
        """The rate recorded for exactly ``valid_from``, if any."""
        doc = await self.rates.find_one(
            {"_id": _rate_id(tenant_id, base, currency, valid_from)}, session=session
        )
        return rate_from_document(doc) if doc is not None else None

    async def rate_valid_on(
        self, tenant_id: str, base: str, currency: str, day: str, session: Session = None
    ) -> ExchangeRate | None:
        """The rate of ``currency`` into ``base`` valid on ``day``: the latest recorded with
        ``valid_from`` on or before it."""
        found = (
            await self.rates.find(
                {
                    "tenant_id": tenant_id,
                    "base_currency": base,
                    "currency": currency,
                    "valid_from": {"$lte": day},
                },
                session=session,
            )
            .sort("valid_from", DESCENDING)
            .limit(1)
            .to_list(1)
        )
        return rate_from_document(found[0]) if found else None

    async def insert_rate(self, rate: ExchangeRate, session: AsyncClientSession) -> None:
        """Store a new rate."""
        await self.rates.insert_one(rate_to_document(rate), session=session)

    async def list_rates(
        self, tenant_id: str, base: str, currency: str, after_id: str | None, limit: int
    ) -> list[ExchangeRate]:
        """The rates into ``base`` (of one currency if given), in (currency, day) order."""
        filters: dict[str, object] = {"base_currency": base}
        if currency:
            filters["currency"] = currency
        cursor = tenant_page(self.rates, tenant_id, filters, after_id, limit)
        return [rate_from_document(doc) async for doc in cursor]


def rate_cursor(rate: ExchangeRate) -> str:
    """The keyset position of a rate in :meth:`OrdersStore.list_rates`."""
    return _rate_id(rate.tenant_id, rate.base_currency, rate.currency, rate.valid_from)
