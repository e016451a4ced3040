"""``crm.sales.v1.OrderService``: requests in (converted here to domain inputs), the orders use
cases (:mod:`crm_sales.use_cases.orders`), responses out.

Requests arrive validated against the proto rules, with the caller's tenant and actor in the
call context; domain errors become gRPC statuses in the interceptors.
"""

from __future__ import annotations

from typing import Any

from crm.sales.v1 import orders_pb2 as pb
from crm.sales.v1 import orders_pb2_grpc
from crm_platform.context import current_call
from crm_platform.idempotency import IdempotentRequest
from crm_sales import orders_contract as contract
from crm_sales.domain.orders import (
    CostInput,
    OrderInput,
    OrderLineInput,
    ReturnInput,
    ReturnLineInput,
)
from crm_sales.use_cases.orders import COST_OPERATION, Currencies, Orders, date_filters

Context = Any  # grpc.aio.ServicerContext; the handlers do not use it


def order_input(message: pb.Order) -> OrderInput:
    """The caller-settable fields of an order message."""
    return OrderInput(
        external_id=message.external_id,
        contact_id=message.contact_id,
        account_id=message.account_id,
        opportunity_id=message.opportunity_id,
        order_date=message.order_date,
        currency=message.currency,
        lines=tuple(
            OrderLineInput(
                sku=line.sku,
                product_id=line.product_id,
                quantity=line.quantity,
                revenue_minor=line.revenue_minor,
                cost_minor=line.cost_minor,
            )
            for line in message.lines
        ),
    )


def return_input(message: pb.Return) -> ReturnInput:
    """The caller-settable fields of a return message."""
    return ReturnInput(
        external_id=message.external_id,
        order_id=message.order_id,
        return_date=message.return_date,
        lines=tuple(
            ReturnLineInput(
                line_number=line.line_number,
                quantity=line.quantity,
                revenue_minor=line.revenue_minor,
                cost_minor=line.cost_minor,
            )
            for line in message.lines
        ),
    )


def cost_input(message: pb.Cost) -> CostInput:
    """The caller-settable fields of a cost message."""
    return CostInput(
        contact_id=message.contact_id,
        account_id=message.account_id,
        category=contract.category_from_pb(message.category),
        amount_minor=message.amount_minor,
        currency=message.currency,
        period_start=message.period_start,
        period_end=message.period_end,
        description=message.description,
    )


def _customer_filters(request: Any) -> dict[str, object]:
    filters: dict[str, object] = {}
    for name in ("contact_id", "account_id"):
        if value := getattr(request, name):
            filters[name] = value
    return filters


class OrderService(orders_pb2_grpc.OrderServiceServicer):
    """The handlers of the orders area."""

    def __init__(self, orders: Orders, currencies: Currencies) -> None:
        self.orders = orders
        self.currencies = currencies

    async def RecordOrder(
        self, request: pb.RecordOrderRequest, context: Context
    ) -> pb.RecordOrderResponse:
        saved = await self.orders.record_order(current_call(), order_input(request.order))
        return pb.RecordOrderResponse(order=contract.order_to_pb(saved))

    async def GetOrder(self, request: pb.GetOrderRequest, context: Context) -> pb.GetOrderResponse:
        found = await self.orders.get_order(current_call().tenant_id, request.id)
        return pb.GetOrderResponse(order=contract.order_to_pb(found))

    async def ListOrders(
        self, request: pb.ListOrdersRequest, context: Context
    ) -> pb.ListOrdersResponse:
        filters = _customer_filters(request)
        filters.update(date_filters("order_date", request.date_from, request.date_to))
        found, token = await self.orders.list_orders(
            current_call().tenant_id, filters, request.page_size, request.page_token
        )
        return pb.ListOrdersResponse(
            orders=[contract.order_to_pb(o) for o in found], next_page_token=token
        )

    async def RecordReturn(
        self, request: pb.RecordReturnRequest, context: Context
    ) -> pb.RecordReturnResponse:
        taken, order = await self.orders.record_return(
            current_call(), return_input(getattr(request, "return"))
        )
        return pb.RecordReturnResponse(
            **{"return": contract.return_to_pb(taken)}, order=contract.order_to_pb(order)
        )

    async def GetReturn(
        self, request: pb.GetReturnRequest, context: Context
    ) -> pb.GetReturnResponse:
        found = await self.orders.get_return(current_call().tenant_id, request.id)
        return pb.GetReturnResponse(**{"return": contract.return_to_pb(found)})

    async def ListReturns(
        self, request: pb.ListReturnsRequest, context: Context
    ) -> pb.ListReturnsResponse:
        filters = _customer_filters(request)
        if request.order_id:
            filters["order_id"] = request.order_id
        filters.update(date_filters("return_date", request.date_from, request.date_to))
        found, token = await self.orders.list_returns(
            current_call().tenant_id, filters, request.page_size, request.page_token
        )
        return pb.ListReturnsResponse(
            returns=[contract.return_to_pb(r) for r in found], next_page_token=token
        )

    async def RecordCost(
        self, request: pb.RecordCostRequest, context: Context
    ) -> pb.RecordCostResponse:
        call = current_call()
        saved = await self.orders.record_cost(
            call,
            cost_input(request.cost),
            IdempotentRequest.of(call.tenant_id, COST_OPERATION, request.request_id, request),
        )
        return pb.RecordCostResponse(cost=contract.cost_to_pb(saved))

    async def GetCost(self, request: pb.GetCostRequest, context: Context) -> pb.GetCostResponse:
        found = await self.orders.get_cost(current_call().tenant_id, request.id)
        return pb.GetCostResponse(cost=contract.cost_to_pb(found))

    async def ListCosts(
        self, request: pb.ListCostsRequest, context: Context
    ) -> pb.ListCostsResponse:
        filters = _customer_filters(request)
        if (category := contract.category_from_pb(request.category)) is not None:
            filters["category"] = category.value
        # A cost's period overlaps [date_from, date_to].
        filters.update(date_filters("period_end", request.date_from, ""))
        filters.update(date_filters("period_start", "", request.date_to))
        found, token = await self.orders.list_costs(
            current_call().tenant_id, filters, request.page_size, request.page_token
        )
        return pb.ListCostsResponse(
            costs=[contract.cost_to_pb(c) for c in found], next_page_token=token
        )

    async def SetBaseCurrency(
        self, request: pb.SetBaseCurrencyRequest, context: Context
    ) -> pb.SetBaseCurrencyResponse:
        saved = await self.currencies.set_base(
            current_call(), request.base_currency, request.expected_version or None
        )
        return pb.SetBaseCurrencyResponse(settings=contract.settings_to_pb(saved))

    async def GetCurrencySettings(
        self, request: pb.GetCurrencySettingsRequest, context: Context
    ) -> pb.GetCurrencySettingsResponse:
        found = await self.currencies.settings(current_call().tenant_id)
        return pb.GetCurrencySettingsResponse(settings=contract.settings_to_pb(found))

    async def RecordExchangeRate(
        self, request: pb.RecordExchangeRateRequest, context: Context
    ) -> pb.RecordExchangeRateResponse:
        saved = await self.currencies.record_rate(
            current_call(), request.rate.currency, request.rate.rate, request.rate.valid_from
        )
        return pb.RecordExchangeRateResponse(rate=contract.rate_to_pb(saved))

    async def ListExchangeRates(
        self, request: pb.ListExchangeRatesRequest, context: Context
    ) -> pb.ListExchangeRatesResponse:
        found, token = await self.currencies.list_rates(
            current_call().tenant_id, request.currency, request.page_size, request.page_token
        )
        return pb.ListExchangeRatesResponse(
            rates=[contract.rate_to_pb(r) for r in found], next_page_token=token
        )

    async def ConvertAmount(
        self, request: pb.ConvertAmountRequest, context: Context
    ) -> pb.ConvertAmountResponse:
        amount, base, rate, valid_from = await self.currencies.convert(
            current_call().tenant_id, request.amount_minor, request.currency, request.date
        )
        return pb.ConvertAmountResponse(
            amount_minor=amount, base_currency=base, rate=rate, rate_valid_from=valid_from
        )
