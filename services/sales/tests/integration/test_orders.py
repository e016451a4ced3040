"""Orders, returns and costs from the ERP on the real database and broker: events in order per
key, idempotent recording, returns bounded by what was ordered, bad input refused with nothing
written, and currency conversion against an independent oracle."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date
from fractions import Fraction

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm.sales.v1 import orders_events_pb2 as oev
from crm.sales.v1 import orders_pb2 as opb
from crm_testing.sales import (
    OTHER_TENANT,
    SalesUnderTest,
    create_opportunity,
    create_pipeline,
    events_for,
    metadata,
    precondition_types,
    refused,
    unique_id,
    violations,
)
from crm_testing.sales_orders import (
    AreaStubs,
    area_stubs,
    order_message,
    record_order,
    set_currencies,
)

pytestmark = pytest.mark.integration

INVALID = grpc.StatusCode.INVALID_ARGUMENT
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION


@pytest.fixture(scope="module")
async def stubs(sales: SalesUnderTest) -> AsyncIterator[AreaStubs]:
    async with area_stubs(sales) as found:
        yield found


def _return(order: opb.Order, *lines: tuple[int, int, int, int], day: str = "") -> opb.Return:
    """A return of ``order`` with lines of (line_number, quantity, revenue, cost)."""
    return opb.Return(
        external_id=unique_id("RET"),
        order_id=order.id,
        return_date=day or order.order_date,
        lines=[
            opb.ReturnLine(line_number=n, quantity=q, revenue_minor=r, cost_minor=c)
            for n, q, r, c in lines
        ],
    )


async def _count(stubs: AreaStubs, tenant: str) -> tuple[int, int, int]:
    orders = await stubs.orders.ListOrders(opb.ListOrdersRequest(), metadata=metadata(tenant))
    returns = await stubs.orders.ListReturns(opb.ListReturnsRequest(), metadata=metadata(tenant))
    costs = await stubs.orders.ListCosts(opb.ListCostsRequest(), metadata=metadata(tenant))
    return len(orders.orders), len(returns.returns), len(costs.costs)


async def test_order_then_return_then_cost_are_events_in_order_on_the_contacts_key(
    sales: SalesUnderTest, stubs: AreaStubs, infra: object
) -> None:
    tenant = unique_id("t")
    contact = unique_id("contact")
    await set_currencies(stubs, tenant, "EUR", [("USD", "0.9", "2026-01-01")])
    order = await record_order(stubs, tenant, order_message(contact_id=contact))
    assert (order.revenue_total_minor, order.cost_total_minor) == (14_999, 8_500)
    assert order.base.status == opb.CONVERSION_STATUS_CONVERTED
    # 149.99 USD * 0.9 = 134.991 EUR -> 13499 cents (half-even); 85.00 * 0.9 = 76.50.
    assert (order.base.amount_minor, order.base.cost_minor) == (13_499, 7_650)
    assert (order.base.rate, order.base.rate_valid_from) == ("0.9", "2026-01-01")
    assert [line.line_number for line in order.lines] == [1, 2]

    reply = await stubs.orders.RecordReturn(
        opb.RecordReturnRequest(**{"return": _return(order, (1, 1, 5_000, 3_000))}),
        metadata=metadata(tenant),
    )
    taken = getattr(reply, "return")
    assert (taken.revenue_total_minor, taken.base.amount_minor) == (5_000, 4_500)
    assert [(r.line_number, r.quantity, r.revenue_minor) for r in reply.order.returned] == [
        (1, 1, 5_000),
        (2, 0, 0),
    ]
    assert reply.order.version == 2

    cost = (
        await stubs.orders.RecordCost(
            opb.RecordCostRequest(
                cost=opb.Cost(
                    contact_id=contact,
                    category=opb.COST_CATEGORY_COMPLAINTS,
                    amount_minor=2_500,
                    currency="GBP",
                    period_start="2026-03-01",
                    period_end="2026-03-31",
                )
            ),
            metadata=metadata(tenant),
        )
    ).cost
    # No GBP rate: visible as such, never a zero amount taken for real.
    assert cost.base.status == opb.CONVERSION_STATUS_RATE_MISSING
    assert cost.base.base_currency == "EUR"

    bootstrap = infra.kafka_bootstrap  # type: ignore[attr-defined]
    found = await events_for(bootstrap, contact, 3)
    assert [e.type for e in found] == [
        "crm.sales.v1.OrderRecorded",
        "crm.sales.v1.ReturnRecorded",
        "crm.sales.v1.CostRecorded",
    ]
    assert {str(e.actor) for e in found} == {"agent:alice"}
    assert oev.OrderRecorded.FromString(found[0].payload).order.id == order.id
    recorded_return = oev.ReturnRecorded.FromString(found[1].payload)
    assert getattr(recorded_return, "return").id == taken.id
    assert oev.CostRecorded.FromString(found[2].payload).cost.id == cost.id
    config = await events_for(bootstrap, tenant, 2)
    assert [e.type for e in config] == [
        "crm.sales.v1.BaseCurrencySet",
        "crm.sales.v1.ExchangeRateRecorded",
    ]


async def test_an_account_order_without_a_contact_is_keyed_by_the_account(
    stubs: AreaStubs, infra: object
) -> None:
    tenant = unique_id("t")
    account = unique_id("org")
    order = await record_order(stubs, tenant, order_message(account_id=account))
    assert order.base.status == opb.CONVERSION_STATUS_NO_BASE_CURRENCY
    found = await events_for(infra.kafka_bootstrap, account, 1)  # type: ignore[attr-defined]
    assert oev.OrderRecorded.FromString(found[0].payload).order.id == order.id


async def test_recording_an_order_again_returns_the_first_and_other_contents_are_refused(
    stubs: AreaStubs, infra: object
) -> None:
    tenant = unique_id("t")
    contact = unique_id("contact")
    message = order_message(contact_id=contact)
    first = await record_order(stubs, tenant, message)
    again = await record_order(stubs, tenant, message)
    assert again == first

    changed = opb.Order()
    changed.CopyFrom(message)
    changed.lines[0].revenue_minor += 1
    error = await refused(
        stubs.orders.RecordOrder(opb.RecordOrderRequest(order=changed), metadata=metadata(tenant)),
        grpc.StatusCode.ALREADY_EXISTS,
    )
    assert message.external_id in (error.details() or "")
    assert "other contents" in (error.details() or "")

    # The next order of the contact is the key's second event: the repeat published nothing.
    other = await record_order(stubs, tenant, order_message(contact_id=contact))
    found = await events_for(infra.kafka_bootstrap, contact, 2)  # type: ignore[attr-defined]
    ids = [oev.OrderRecorded.FromString(e.payload).order.id for e in found]
    assert ids == [first.id, other.id]
    assert (await _count(stubs, tenant))[0] == 2


async def test_a_return_cannot_take_back_more_than_is_left(stubs: AreaStubs) -> None:
    tenant = unique_id("t")
    order = await record_order(stubs, tenant, order_message(contact_id=unique_id("c")))
    error = await refused(
        stubs.orders.RecordReturn(
            opb.RecordReturnRequest(**{"return": _return(order, (1, 3, 100, 0))}),
            metadata=metadata(tenant),
        ),
        INVALID,
    )
    assert set(violations(error)) == {"return.lines[0].quantity"}
    await stubs.orders.RecordReturn(
        opb.RecordReturnRequest(**{"return": _return(order, (1, 2, 9_000, 6_000))}),
        metadata=metadata(tenant),
    )
    error = await refused(
        stubs.orders.RecordReturn(
            opb.RecordReturnRequest(
                **{"return": _return(order, (1, 0, 1_001, 0), (2, 1, 5_000, 0), (7, 1, 0, 0))}
            ),
            metadata=metadata(tenant),
        ),
        INVALID,
    )
    assert set(violations(error)) == {
        "return.lines[0].revenue_minor",  # 1,000 left of 10,000
        "return.lines[1].revenue_minor",  # 4,999 ordered
        "return.lines[2].line_number",
    }
    stored = (
        await stubs.orders.GetOrder(opb.GetOrderRequest(id=order.id), metadata=metadata(tenant))
    ).order
    assert [(r.quantity, r.revenue_minor, r.cost_minor) for r in stored.returned] == [
        (2, 9_000, 6_000),
        (0, 0, 0),
    ]
    assert (await _count(stubs, tenant))[1] == 1


async def test_bad_orders_and_costs_are_refused_with_their_fields_and_nothing_is_written(
    sales: SalesUnderTest, stubs: AreaStubs
) -> None:
    tenant = unique_id("t")
    pipeline = await create_pipeline(sales, tenant=OTHER_TENANT)
    foreign = await create_opportunity(sales, pipeline.id, tenant=OTHER_TENANT)
    bad = order_message(contact_id="c1", currency="ZZZ", lines=((0, -5, -1),))
    error = await refused(
        stubs.orders.RecordOrder(opb.RecordOrderRequest(order=bad), metadata=metadata(tenant)),
        INVALID,
    )
    assert set(violations(error)) == {
        "order.currency",
        "order.lines[0].quantity",
        "order.lines[0].revenue_minor",
        "order.lines[0].cost_minor",
    }
    error = await refused(
        stubs.orders.RecordOrder(
            opb.RecordOrderRequest(order=order_message(order_date="2026-02-30")),
            metadata=metadata(tenant),
        ),
        INVALID,
    )
    assert set(violations(error)) == {"order.contact_id", "order.order_date"}
    error = await refused(
        stubs.orders.RecordOrder(
            opb.RecordOrderRequest(order=order_message(contact_id="c", opportunity_id=foreign.id)),
            metadata=metadata(tenant),
        ),
        INVALID,
    )
    assert set(violations(error)) == {"order.opportunity_id"}

    others = await record_order(stubs, OTHER_TENANT, order_message(contact_id="c"))
    error = await refused(
        stubs.orders.RecordReturn(
            opb.RecordReturnRequest(**{"return": _return(others, (1, 1, 0, 0))}),
            metadata=metadata(tenant),
        ),
        INVALID,
    )
    assert set(violations(error)) == {"return.order_id"}
    await refused(
        stubs.orders.GetOrder(opb.GetOrderRequest(id=others.id), metadata=metadata(tenant)),
        grpc.StatusCode.NOT_FOUND,
    )
    error = await refused(
        stubs.orders.RecordCost(
            opb.RecordCostRequest(
                cost=opb.Cost(
                    amount_minor=-1,
                    currency="XXX",
                    period_start="2026-03-31",
                    period_end="2026-03-01",
                )
            ),
            metadata=metadata(tenant),
        ),
        INVALID,
    )
    assert set(violations(error)) == {
        "cost.contact_id",
        "cost.category",
        "cost.amount_minor",
        "cost.currency",
        "cost.period_end",
    }
    assert await _count(stubs, tenant) == (0, 0, 0)


async def test_lists_filter_by_customer_and_date_and_page_by_keyset(stubs: AreaStubs) -> None:
    tenant = unique_id("t")
    contact = unique_id("c")
    days = ["2026-01-10", "2026-02-10", "2026-03-10", "2026-04-10"]
    made = [
        await record_order(stubs, tenant, order_message(contact_id=contact, order_date=day))
        for day in days
    ]
    await record_order(stubs, tenant, order_message(account_id="org-1", order_date="2026-02-11"))
    seen: list[str] = []
    token = ""
    while True:
        page = await stubs.orders.ListOrders(
            opb.ListOrdersRequest(
                contact_id=contact,
                date_from="2026-02-01",
                date_to="2026-03-31",
                page_size=1,
                page_token=token,
            ),
            metadata=metadata(tenant),
        )
        seen.extend(o.id for o in page.orders)
        if not (token := page.next_page_token):
            break
    assert seen == sorted(o.id for o in made[1:3])
    by_account = await stubs.orders.ListOrders(
        opb.ListOrdersRequest(account_id="org-1"), metadata=metadata(tenant)
    )
    assert len(by_account.orders) == 1
    error = await refused(
        stubs.orders.ListOrders(
            opb.ListOrdersRequest(date_from="March"), metadata=metadata(tenant)
        ),
        INVALID,
    )
    assert set(violations(error)) == {"date_from"}


# --- currencies -----------------------------------------------------------------------------------

DIGITS = {"EUR": 2, "USD": 2, "JPY": 0, "BHD": 3}
RATES = [
    ("USD", "0.9", "2026-01-01"),
    ("USD", "0.925", "2026-03-01"),
    ("JPY", "0.0061", "2026-01-01"),
    ("BHD", "2.4373", "2026-02-15"),
    ("BHD", "2.4401", "2026-04-01"),
]


def _oracle(amount_minor: int, currency: str, day: str) -> tuple[int, str] | None:
    """The conversion into EUR computed independently: the latest rate on or before ``day``,
    exact rational arithmetic, rounding half to even by hand."""
    valid = sorted((v, r) for c, r, v in RATES if c == currency and v <= day)
    if currency == "EUR":
        return amount_minor, "1"
    if not valid:
        return None
    rate = valid[-1][1]
    exact = Fraction(amount_minor, 10 ** DIGITS[currency]) * Fraction(rate) * 10 ** DIGITS["EUR"]
    floor = exact.numerator // exact.denominator
    remainder = exact - floor
    if remainder > Fraction(1, 2) or (remainder == Fraction(1, 2) and floor % 2 == 1):
        floor += 1
    return floor, rate


@pytest.fixture(scope="module")
async def rates_tenant(stubs: AreaStubs) -> str:
    tenant = unique_id("rates")
    await set_currencies(stubs, tenant, "EUR", RATES)
    return tenant


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    amount=st.integers(0, 10**15) | st.sampled_from([5, 15, 25, 50, 150, 250, 1_005]),
    currency=st.sampled_from(sorted(DIGITS)),
    day=st.dates(date(2025, 12, 1), date(2026, 5, 1)).map(date.isoformat)
    | st.sampled_from([v for _, _, v in RATES]),
)
async def test_conversion_matches_an_independent_decimal_oracle(
    stubs: AreaStubs, rates_tenant: str, amount: int, currency: str, day: str
) -> None:
    expected = _oracle(amount, currency, day)
    call = stubs.orders.ConvertAmount(
        opb.ConvertAmountRequest(amount_minor=amount, currency=currency, date=day),
        metadata=metadata(rates_tenant),
    )
    if expected is None:
        error = await refused(call, PRECONDITION)
        assert precondition_types(error) == {"RATE_MISSING"}
        return
    reply = await call
    assert (reply.amount_minor, reply.rate, reply.base_currency) == (*expected, "EUR")


async def test_rates_are_facts_and_conversion_needs_a_base_currency(
    stubs: AreaStubs, rates_tenant: str
) -> None:
    tenant = unique_id("t")
    error = await refused(
        stubs.orders.ConvertAmount(
            opb.ConvertAmountRequest(amount_minor=1, currency="USD", date="2026-01-01"),
            metadata=metadata(tenant),
        ),
        PRECONDITION,
    )
    assert precondition_types(error) == {"BASE_CURRENCY_NOT_SET"}
    error = await refused(
        stubs.orders.RecordExchangeRate(
            opb.RecordExchangeRateRequest(
                rate=opb.ExchangeRate(currency="USD", rate="1.1", valid_from="2026-01-01")
            ),
            metadata=metadata(tenant),
        ),
        PRECONDITION,
    )
    again = await stubs.orders.RecordExchangeRate(
        opb.RecordExchangeRateRequest(
            rate=opb.ExchangeRate(currency="USD", rate="0.900", valid_from="2026-01-01")
        ),
        metadata=metadata(rates_tenant),
    )
    assert again.rate.rate == "0.9"
    await refused(
        stubs.orders.RecordExchangeRate(
            opb.RecordExchangeRateRequest(
                rate=opb.ExchangeRate(currency="USD", rate="0.91", valid_from="2026-01-01")
            ),
            metadata=metadata(rates_tenant),
        ),
        grpc.StatusCode.ALREADY_EXISTS,
    )
    error = await refused(
        stubs.orders.RecordExchangeRate(
            opb.RecordExchangeRateRequest(
                rate=opb.ExchangeRate(currency="EUR", rate="-1", valid_from="2026-13-01")
            ),
            metadata=metadata(rates_tenant),
        ),
        INVALID,
    )
    assert set(violations(error)) == {"rate.currency", "rate.rate", "rate.valid_from"}
    listed = await stubs.orders.ListExchangeRates(
        opb.ListExchangeRatesRequest(currency="USD"), metadata=metadata(rates_tenant)
    )
    assert [(r.rate, r.valid_from) for r in listed.rates] == [
        ("0.9", "2026-01-01"),
        ("0.925", "2026-03-01"),
    ]


async def test_concurrent_recordings_make_one_order_and_concurrent_returns_cannot_overdraw(
    stubs: AreaStubs,
) -> None:
    tenant = unique_id("t")
    message = order_message(contact_id=unique_id("c"), lines=((1, 1_000, 400),))
    calls = [
        stubs.orders.RecordOrder(opb.RecordOrderRequest(order=message), metadata=metadata(tenant))
        for _ in range(4)
    ]
    replies = await asyncio.gather(*calls)
    assert len({reply.order.id for reply in replies}) == 1
    order = replies[0].order

    async def take_everything() -> grpc.StatusCode:
        try:
            await stubs.orders.RecordReturn(
                opb.RecordReturnRequest(**{"return": _return(order, (1, 1, 1_000, 400))}),
                metadata=metadata(tenant),
            )
        except grpc.aio.AioRpcError as error:
            return error.code()
        return grpc.StatusCode.OK

    codes = await asyncio.gather(*(take_everything() for _ in range(3)))
    assert codes.count(grpc.StatusCode.OK) == 1, codes
    assert set(codes) - {grpc.StatusCode.OK} <= {INVALID, PRECONDITION}
    assert await _count(stubs, tenant) == (1, 1, 0)
