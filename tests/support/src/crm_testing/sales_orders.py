"""Pieces of the sales integration tests of the orders and activities areas: stubs of
``OrderService`` and ``ActivityService`` on a running sales service, and builders."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import grpc

from crm.sales.v1 import activities_pb2_grpc, orders_pb2_grpc
from crm.sales.v1 import orders_pb2 as opb
from crm_testing.sales import SalesUnderTest, metadata, unique_id


@dataclass
class AreaStubs:
    """Stubs of the orders and activities services of one running sales service."""

    orders: orders_pb2_grpc.OrderServiceAsyncStub
    activities: activities_pb2_grpc.ActivityServiceAsyncStub


@asynccontextmanager
async def area_stubs(sales: SalesUnderTest) -> AsyncIterator[AreaStubs]:
    """Stubs on a channel of their own to ``sales``."""
    async with grpc.aio.insecure_channel(sales.address) as channel:
        yield AreaStubs(
            orders_pb2_grpc.OrderServiceStub(channel),
            activities_pb2_grpc.ActivityServiceStub(channel),
        )


def order_message(
    *,
    contact_id: str = "",
    account_id: str = "",
    currency: str = "USD",
    order_date: str = "2026-03-15",
    lines: Sequence[tuple[int, int, int]] = ((2, 10_000, 6_000), (1, 4_999, 2_500)),
    external_id: str = "",
    opportunity_id: str = "",
) -> opb.Order:
    """An order with ``lines`` of (quantity, revenue_minor, cost_minor)."""
    return opb.Order(
        external_id=external_id or unique_id("ERP"),
        contact_id=contact_id,
        account_id=account_id,
        opportunity_id=opportunity_id,
        order_date=order_date,
        currency=currency,
        lines=[
            opb.OrderLine(sku=f"SKU-{n}", quantity=q, revenue_minor=r, cost_minor=c)
            for n, (q, r, c) in enumerate(lines, start=1)
        ],
    )


async def record_order(stubs: AreaStubs, tenant: str, order: opb.Order) -> opb.Order:
    """Record ``order`` for ``tenant``."""
    reply = await stubs.orders.RecordOrder(
        opb.RecordOrderRequest(order=order), metadata=metadata(tenant)
    )
    recorded: opb.Order = reply.order
    return recorded


async def set_currencies(
    stubs: AreaStubs, tenant: str, base: str, rates: Sequence[tuple[str, str, str]]
) -> None:
    """Set ``tenant``'s base currency and record ``rates`` of (currency, rate, valid_from)."""
    await stubs.orders.SetBaseCurrency(
        opb.SetBaseCurrencyRequest(base_currency=base), metadata=metadata(tenant)
    )
    for currency, rate, valid_from in rates:
        await stubs.orders.RecordExchangeRate(
            opb.RecordExchangeRateRequest(
                rate=opb.ExchangeRate(currency=currency, rate=rate, valid_from=valid_from)
            ),
            metadata=metadata(tenant),
        )
