"""The events of orders, returns, costs and currencies (``crm/sales/v1/orders_events.proto``).

Keys (documented in that file's header): an order's and a cost's events carry the contact id,
or, for an account with no single contact, the account (organisation) id
(:func:`~crm_sales.domain.orders.customer_key`); a return's carry its order's key; the tenant's
currency settings and exchange rates carry the tenant id (configuration, about no customer).
"""

from __future__ import annotations

from datetime import datetime

from crm.sales.v1 import orders_events_pb2 as events
from crm_platform.context import CallContext
from crm_platform.events import Event
from crm_sales import orders_contract as contract
from crm_sales.domain.orders import Cost, CurrencySettings, ExchangeRate, Order, Return
from crm_sales.events import sales_event


def order_recorded(order: Order, call: CallContext) -> Event:
    """``OrderRecorded``."""
    payload = events.OrderRecorded(order=contract.order_to_pb(order))
    return sales_event(payload, order.subject, order.event_key, call, order.record_time)


def return_recorded(taken: Return, order: Order, call: CallContext) -> Event:
    """``ReturnRecorded``, on the order's key."""
    payload = events.ReturnRecorded(
        **{"return": contract.return_to_pb(taken)}, order=contract.order_to_pb(order)
    )
    return sales_event(payload, taken.subject, order.event_key, call, taken.record_time)


def cost_recorded(cost: Cost, call: CallContext) -> Event:
    """``CostRecorded``."""
    payload = events.CostRecorded(cost=contract.cost_to_pb(cost))
    return sales_event(payload, cost.subject, cost.event_key, call, cost.record_time)


def base_currency_set(
    settings: CurrencySettings, previous: str, call: CallContext, time: datetime
) -> Event:
    """``BaseCurrencySet``, keyed by the tenant id."""
    payload = events.BaseCurrencySet(
        settings=contract.settings_to_pb(settings), previous_base_currency=previous
    )
    return sales_event(payload, "currency-settings", settings.tenant_id, call, time)


def exchange_rate_recorded(rate: ExchangeRate, call: CallContext) -> Event:
    """``ExchangeRateRecorded``, keyed by the tenant id."""
    payload = events.ExchangeRateRecorded(rate=contract.rate_to_pb(rate))
    subject = f"exchange-rates/{rate.currency}/{rate.valid_from}"
    return sales_event(payload, subject, rate.tenant_id, call, rate.record_time)
