"""The orders area's domain in its protobuf form (``crm/sales/v1/orders.proto``): enum mappings
and domain → protobuf, shared by the API's responses and the published events."""

from __future__ import annotations

from crm.sales.v1 import orders_pb2 as pb
from crm_sales.contract import timestamp
from crm_sales.domain.orders import (
    BaseAmounts,
    ConversionStatus,
    Cost,
    CostCategory,
    CurrencySettings,
    ExchangeRate,
    Order,
    Return,
    ReturnedLine,
)

_CATEGORY = pb.DESCRIPTOR.enum_types_by_name["CostCategory"]
_STATUS = pb.DESCRIPTOR.enum_types_by_name["ConversionStatus"]


def category_from_pb(value: int) -> CostCategory | None:
    """The category of a proto value; ``None`` for UNSPECIFIED and unknown values."""
    described = _CATEGORY.values_by_number.get(value)
    if value == 0 or described is None:
        return None
    return CostCategory(described.name.removeprefix("COST_CATEGORY_").lower())


def category_to_pb(category: CostCategory) -> int:
    """The proto value of a category."""
    number: int = _CATEGORY.values_by_name["COST_CATEGORY_" + category.value.upper()].number
    return number


def _status_to_pb(status: ConversionStatus) -> int:
    number: int = _STATUS.values_by_name["CONVERSION_STATUS_" + status.value.upper()].number
    return number


def base_to_pb(base: BaseAmounts) -> pb.BaseAmounts:
    """The API form of a record's base-currency amounts."""
    return pb.BaseAmounts(
        status=_status_to_pb(base.status),  # type: ignore[arg-type]
        base_currency=base.base_currency,
        rate=base.rate,
        rate_valid_from=base.rate_valid_from,
        amount_minor=base.amount_minor or 0,
        cost_minor=base.cost_minor or 0,
    )


def _returned_to_pb(line: ReturnedLine) -> pb.ReturnedLine:
    return pb.ReturnedLine(
        line_number=line.line_number,
        quantity=line.quantity,
        revenue_minor=line.revenue_minor,
        cost_minor=line.cost_minor,
    )


def order_to_pb(order: Order) -> pb.Order:
    """The API form of an order."""
    return pb.Order(
        id=order.id,
        tenant_id=order.tenant_id,
        external_id=order.external_id,
        contact_id=order.contact_id,
        account_id=order.account_id,
        opportunity_id=order.opportunity_id,
        order_date=order.order_date,
        currency=order.currency,
        lines=[
            pb.OrderLine(
                line_number=line.line_number,
                sku=line.sku,
                product_id=line.product_id,
                quantity=line.quantity,
                revenue_minor=line.revenue_minor,
                cost_minor=line.cost_minor,
            )
            for line in order.lines
        ],
        revenue_total_minor=order.revenue_total_minor,
        cost_total_minor=order.cost_total_minor,
        base=base_to_pb(order.base),
        returned=[_returned_to_pb(r) for r in order.returned],
        version=order.version,
        record_time=timestamp(order.record_time),
    )


def return_to_pb(taken: Return) -> pb.Return:
    """The API form of a return."""
    return pb.Return(
        id=taken.id,
        tenant_id=taken.tenant_id,
        external_id=taken.external_id,
        order_id=taken.order_id,
        return_date=taken.return_date,
        lines=[
            pb.ReturnLine(
                line_number=r.line_number,
                quantity=r.quantity,
                revenue_minor=r.revenue_minor,
                cost_minor=r.cost_minor,
            )
            for r in taken.lines
        ],
        currency=taken.currency,
        revenue_total_minor=taken.revenue_total_minor,
        cost_total_minor=taken.cost_total_minor,
        base=base_to_pb(taken.base),
        contact_id=taken.contact_id,
        account_id=taken.account_id,
        record_time=timestamp(taken.record_time),
    )


def cost_to_pb(cost: Cost) -> pb.Cost:
    """The API form of a cost."""
    return pb.Cost(
        id=cost.id,
        tenant_id=cost.tenant_id,
        contact_id=cost.contact_id,
        account_id=cost.account_id,
        category=category_to_pb(cost.category),  # type: ignore[arg-type]
        amount_minor=cost.amount_minor,
        currency=cost.currency,
        period_start=cost.period_start,
        period_end=cost.period_end,
        description=cost.description,
        base=base_to_pb(cost.base),
        record_time=timestamp(cost.record_time),
    )


def settings_to_pb(settings: CurrencySettings) -> pb.CurrencySettings:
    """The API form of a tenant's currency settings."""
    return pb.CurrencySettings(
        tenant_id=settings.tenant_id,
        base_currency=settings.base_currency,
        version=settings.version,
        update_time=timestamp(settings.update_time),
    )


def rate_to_pb(rate: ExchangeRate) -> pb.ExchangeRate:
    """The API form of an exchange rate."""
    return pb.ExchangeRate(
        currency=rate.currency,
        base_currency=rate.base_currency,
        rate=rate.rate_text,
        valid_from=rate.valid_from,
        record_time=timestamp(rate.record_time),
    )
