"""Order use cases: record an order, a return, a cost; the tenant's base currency and exchange
rates; converting an amount; the reads.

Recording an order is idempotent on (tenant, ERP id): the unique index on ``external_id``
lets one of two concurrent recordings commit, and the other's rerun finds it. An order's base
currency amounts are computed in the recording transaction from the settings and rate read in
it. A return replaces its order at the version read (what was returned of each line), so of two
concurrent returns the second is checked against the first. A recorded order may arm a
follow-up call (:class:`~crm_sales.use_cases.activities.FollowUps`) in the same transaction.
"""

from __future__ import annotations

from collections.abc import Mapping

from crm_platform.clock import Clock
from crm_platform.context import CallContext
from crm_platform.errors import AlreadyExists, InvalidArgument, NotFound
from crm_platform.idempotency import IdempotentRequest
from crm_platform.paging import PageQuery
from crm_platform.unit_of_work import Transaction, UnitOfWork
from crm_sales import orders_events as events
from crm_sales.domain._checks import Violations
from crm_sales.domain.money import amount_problem, currency_problem
from crm_sales.domain.opportunity import Opportunity
from crm_sales.domain.orders import (
    Cost,
    CostInput,
    CurrencySettings,
    ExchangeRate,
    Order,
    OrderInput,
    Return,
    ReturnInput,
    check_order,
    convert_minor,
    day_problem,
    rate_missing,
)
from crm_sales.orders_storage import OrdersStore, rate_cursor
from crm_sales.storage import SalesStore
from crm_sales.use_cases._common import WRITE_RETRIES, after_id, new_id, now_ms, publish_on_key
from crm_sales.use_cases.activities import FollowUps

COST_OPERATION = "cost"
"""The idempotency records' operation for cost records."""


def date_filters(field: str, date_from: str, date_to: str) -> dict[str, object]:
    """A stored day field's range filter; ``InvalidArgument`` on a malformed bound."""
    violations = Violations()
    for name, value in (("date_from", date_from), ("date_to", date_to)):
        if value and (problem := day_problem(value)):
            violations.add(name, problem)
    violations.raise_if_any()
    bounds: dict[str, str] = {}
    if date_from:
        bounds["$gte"] = date_from
    if date_to:
        bounds["$lte"] = date_to
    return {field: bounds} if bounds else {}


class Currencies:
    """The tenant's base currency, its exchange rates and conversions."""

    def __init__(
        self, store: SalesStore, orders: OrdersStore, unit_of_work: UnitOfWork, clock: Clock
    ) -> None:
        self.store = store
        self.orders = orders
        self.unit_of_work = unit_of_work
        self.clock = clock

    async def set_base(
        self, call: CallContext, base_currency: str, expected_version: int | None
    ) -> CurrencySettings:
        """The settings with ``base_currency``; the same one again changes nothing."""
        now = now_ms(self.clock)

        async def change(tx: Transaction) -> CurrencySettings:
            current = await self.orders.get_settings(call.tenant_id, tx.session)
            changed = current.set_base(base_currency, expected_version, now)
            if changed is current:
                return current
            await self.orders.save_settings(current.version, changed, tx.session)
            event = events.base_currency_set(changed, current.base_currency, call, now)
            await publish_on_key(tx, self.store, [event])
            return changed

        return await self.unit_of_work.run(change, retries=WRITE_RETRIES)

    async def settings(self, tenant_id: str) -> CurrencySettings:
        """The tenant's settings (version 0 when never set)."""
        return await self.orders.get_settings(tenant_id)

    async def record_rate(
        self, call: CallContext, currency: str, rate: str, valid_from: str
    ) -> ExchangeRate:
        """A rate into the current base currency; the same again returns the first, another
        rate for the same currency and day is ``AlreadyExists``."""
        now = now_ms(self.clock)

        async def record(tx: Transaction) -> ExchangeRate:
            settings = await self.orders.get_settings(call.tenant_id, tx.session)
            recorded = ExchangeRate.record(
                tenant_id=call.tenant_id,
                currency=currency,
                base_currency=settings.base_currency,
                rate=rate,
                valid_from=valid_from,
                now=now,
            )
            settings.require_base()
            earlier = await self.orders.get_rate_on(
                call.tenant_id, settings.base_currency, currency, valid_from, tx.session
            )
            if earlier is not None:
                if earlier.rate == recorded.rate:
                    return earlier
                raise AlreadyExists(
                    "exchange rate",
                    f"{currency}/{settings.base_currency}@{valid_from}",
                    f"is recorded already as {earlier.rate_text}: record a correction from "
                    "another day",
                )
            await self.orders.insert_rate(recorded, tx.session)
            await publish_on_key(tx, self.store, [events.exchange_rate_recorded(recorded, call)])
            return recorded

        return await self.unit_of_work.run(record, retries=WRITE_RETRIES)

    async def list_rates(
        self, tenant_id: str, currency: str, page_size: int, page_token: str
    ) -> tuple[list[ExchangeRate], str]:
        """A page of the rates into the current base currency, in (currency, day) order."""
        settings = await self.orders.get_settings(tenant_id)
        query = PageQuery.of(
            {
                "op": "ListExchangeRates",
                "tenant": tenant_id,
                "base": settings.base_currency,
                "currency": currency,
            },
            page_size,
            page_token,
        )
        found = await self.orders.list_rates(
            tenant_id, settings.base_currency, currency, after_id(query), query.limit
        )
        return query.page(found, lambda rate: [rate_cursor(rate)])

    async def convert(
        self, tenant_id: str, amount_minor: int, currency: str, day: str
    ) -> tuple[int, str, str, str]:
        """``amount_minor`` of ``currency`` in the base currency at ``day``'s rate: the amount,
        the base currency, the rate used and the day it is valid from."""
        violations = Violations()
        if problem := amount_problem(amount_minor):
            violations.add("amount_minor", problem)
        if problem := currency_problem(currency):
            violations.add("currency", problem)
        if not day:
            violations.add("date", "is required (YYYY-MM-DD)")
        elif problem := day_problem(day):
            violations.add("date", problem)
        violations.raise_if_any()
        settings = await self.orders.get_settings(tenant_id)
        base = settings.require_base()
        if currency == base:
            return amount_minor, base, "1", ""
        rate = await self.orders.rate_valid_on(tenant_id, base, currency, day)
        if rate is None:
            raise rate_missing(currency, base, day)
        try:
            converted = convert_minor(amount_minor, currency, base, rate.rate)
        except OverflowError:
            raise InvalidArgument.single(
                "amount_minor", f"is out of range once converted into {base}"
            ) from None
        return converted, base, rate.rate_text, rate.valid_from


class Orders:
    """Orders, returns and costs of every tenant; ``clock`` stamps the facts."""

    def __init__(
        self,
        store: SalesStore,
        orders: OrdersStore,
        unit_of_work: UnitOfWork,
        clock: Clock,
        follow_ups: FollowUps | None = None,
    ) -> None:
        self.store = store
        self.orders = orders
        self.unit_of_work = unit_of_work
        self.clock = clock
        self.follow_ups = follow_ups

    async def _rate(
        self, tenant_id: str, currency: str, day: str, tx: Transaction
    ) -> tuple[str, ExchangeRate | None]:
        settings = await self.orders.get_settings(tenant_id, tx.session)
        base = settings.base_currency
        if not base or base == currency:
            return base, None
        return base, await self.orders.rate_valid_on(tenant_id, base, currency, day, tx.session)

    async def record_order(self, call: CallContext, fields: OrderInput) -> Order:
        """The order as recorded, or, recorded before with the same contents, the first
        result; the same ERP id with other contents is ``AlreadyExists``."""
        order_id = new_id()
        now = now_ms(self.clock)
        violations = Violations()
        check_order(fields, violations)
        violations.raise_if_any()

        async def record(tx: Transaction) -> Order:
            external_id = fields.external_id.strip()
            earlier = await self.orders.order_by_external_id(
                call.tenant_id, external_id, tx.session
            )
            if earlier is not None:
                if earlier.fingerprint == fields.fingerprint:
                    return earlier
                raise AlreadyExists(
                    "order",
                    external_id,
                    f"an order with external_id {external_id!r} was recorded with other "
                    f"contents (as orders/{earlier.id}); an ERP order is recorded once: report "
                    "a change as a return",
                )
            opportunity = await self._opportunity(call.tenant_id, fields.opportunity_id, tx)
            base, rate = await self._rate(call.tenant_id, fields.currency, fields.order_date, tx)
            order = Order.record(
                id=order_id,
                tenant_id=call.tenant_id,
                fields=fields,
                base_currency=base,
                rate=rate,
                now=now,
            )
            await self.orders.insert_order(order, tx.session)
            await publish_on_key(tx, self.store, [events.order_recorded(order, call)])
            if self.follow_ups is not None:
                await self.follow_ups.after_order(tx, call, order, opportunity)
            return order

        return await self.unit_of_work.run(record, retries=WRITE_RETRIES)

    async def _opportunity(
        self, tenant_id: str, opportunity_id: str, tx: Transaction
    ) -> Opportunity | None:
        if not opportunity_id:
            return None
        try:
            return await self.store.get_opportunity(tenant_id, opportunity_id, tx.session)
        except NotFound:
            raise InvalidArgument.single("order.opportunity_id", "no such opportunity") from None

    async def record_return(self, call: CallContext, fields: ReturnInput) -> tuple[Return, Order]:
        """The return and its order after it; recorded before with the same contents: the
        first result (and the order now)."""
        return_id = new_id()
        now = now_ms(self.clock)

        async def record(tx: Transaction) -> tuple[Return, Order]:
            if not fields.order_id:
                raise InvalidArgument.single("return.order_id", "is required")
            try:
                order = await self.orders.get_order(call.tenant_id, fields.order_id, tx.session)
            except NotFound:
                raise InvalidArgument.single("return.order_id", "no such order") from None
            external_id = fields.external_id.strip()
            earlier = (
                await self.orders.return_by_external_id(call.tenant_id, external_id, tx.session)
                if external_id
                else None
            )
            if earlier is not None:
                if earlier.fingerprint == fields.fingerprint:
                    return earlier, await self.orders.get_order(
                        call.tenant_id, earlier.order_id, tx.session
                    )
                raise AlreadyExists(
                    "return",
                    external_id,
                    f"a return with external_id {external_id!r} was recorded with other "
                    f"contents (as returns/{earlier.id})",
                )
            base, rate = await self._rate(call.tenant_id, order.currency, fields.return_date, tx)
            taken, after = order.take_return(
                id=return_id, fields=fields, base_currency=base, rate=rate, now=now
            )
            await self.orders.replace_order(order.version, after, tx.session)
            await self.orders.insert_return(taken, tx.session)
            await publish_on_key(tx, self.store, [events.return_recorded(taken, after, call)])
            return taken, after

        return await self.unit_of_work.run(record, retries=WRITE_RETRIES)

    async def record_cost(
        self, call: CallContext, fields: CostInput, request: IdempotentRequest | None
    ) -> Cost:
        """The cost as recorded, or, for a retry of ``request``, the first result."""
        cost_id = new_id()
        now = now_ms(self.clock)

        async def record(tx: Transaction) -> Cost:
            if (earlier := await tx.earlier_result(request)) is not None:
                return await self.orders.get_cost(call.tenant_id, earlier, tx.session)
            base, rate = await self._rate(call.tenant_id, fields.currency, fields.period_end, tx)
            cost = Cost.record(
                id=cost_id,
                tenant_id=call.tenant_id,
                fields=fields,
                base_currency=base,
                rate=rate,
                now=now,
            )
            await self.orders.insert_cost(cost, tx.session)
            await tx.remember(request, cost.id, cost.record_time)
            await publish_on_key(tx, self.store, [events.cost_recorded(cost, call)])
            return cost

        return await self.unit_of_work.run(record, retries=WRITE_RETRIES)

    async def get_order(self, tenant_id: str, order_id: str) -> Order:
        """The order, or ``NotFound``."""
        return await self.orders.get_order(tenant_id, order_id)

    async def get_return(self, tenant_id: str, return_id: str) -> Return:
        """The return, or ``NotFound``."""
        return await self.orders.get_return(tenant_id, return_id)

    async def get_cost(self, tenant_id: str, cost_id: str) -> Cost:
        """The cost, or ``NotFound``."""
        return await self.orders.get_cost(tenant_id, cost_id)

    async def list_orders(
        self, tenant_id: str, filters: Mapping[str, object], page_size: int, page_token: str
    ) -> tuple[list[Order], str]:
        """A page of the orders matching every filter, in id order."""
        query = PageQuery.of(
            {"op": "ListOrders", "tenant": tenant_id, **filters}, page_size, page_token
        )
        found = await self.orders.list_orders(tenant_id, filters, after_id(query), query.limit)
        return query.page(found, lambda order: [order.id])

    async def list_returns(
        self, tenant_id: str, filters: Mapping[str, object], page_size: int, page_token: str
    ) -> tuple[list[Return], str]:
        """A page of the returns matching every filter, in id order."""
        query = PageQuery.of(
            {"op": "ListReturns", "tenant": tenant_id, **filters}, page_size, page_token
        )
        found = await self.orders.list_returns(tenant_id, filters, after_id(query), query.limit)
        return query.page(found, lambda taken: [taken.id])

    async def list_costs(
        self, tenant_id: str, filters: Mapping[str, object], page_size: int, page_token: str
    ) -> tuple[list[Cost], str]:
        """A page of the costs matching every filter, in id order."""
        query = PageQuery.of(
            {"op": "ListCosts", "tenant": tenant_id, **filters}, page_size, page_token
        )
        found = await self.orders.list_costs(tenant_id, filters, after_id(query), query.limit)
        return query.page(found, lambda cost: [cost.id])
