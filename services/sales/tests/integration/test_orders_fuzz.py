"""Property: random requests to every writing RPC (and the reads) of ``OrderService`` and
``ActivityService`` never come back as UNKNOWN or INTERNAL, whether they name existing records
or not."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm.sales.v1 import activities_pb2 as apb
from crm.sales.v1 import orders_pb2 as opb
from crm.sales.v1 import sales_pb2 as pb
from crm_testing.sales import SalesUnderTest, create_opportunity, create_pipeline, metadata
from crm_testing.sales_orders import (
    AreaStubs,
    area_stubs,
    order_message,
    record_order,
    set_currencies,
)

pytestmark = pytest.mark.integration

TENANT = "fuzz-orders"


@dataclass
class Targets:
    """Records of the fuzz tenant that random requests may name."""

    order_ids: list[str]
    external_ids: list[str]
    opportunity_ids: list[str]
    lead_ids: list[str]
    activity_ids: list[str]


@pytest.fixture(scope="module")
async def stubs(sales: SalesUnderTest) -> AsyncIterator[AreaStubs]:
    async with area_stubs(sales) as found:
        yield found


@pytest.fixture(scope="module")
async def targets(sales: SalesUnderTest, stubs: AreaStubs) -> Targets:
    await set_currencies(stubs, TENANT, "EUR", [("USD", "1.1", "2026-01-01")])
    await stubs.activities.SetFollowUpRule(
        apb.SetFollowUpRuleRequest(
            rule=apb.FollowUpRule(
                enabled=True,
                after_order=True,
                after_won_deal=True,
                delay_days=0,
                owner=apb.FOLLOW_UP_OWNER_DEAL_OWNER,
                owner_id="carol",
            )
        ),
        metadata=metadata(TENANT),
    )
    pipeline = await create_pipeline(sales, tenant=TENANT)
    deal = await create_opportunity(sales, pipeline.id, tenant=TENANT)
    order = await record_order(stubs, TENANT, order_message(contact_id="c-1"))
    lead = await sales.stub.CreateLead(
        pb.CreateLeadRequest(lead=pb.Lead(person_name="F", source=pb.LEAD_SOURCE_EVENT)),
        metadata=metadata(TENANT),
    )
    activity = await stubs.activities.CreateActivity(
        apb.CreateActivityRequest(
            activity=apb.Activity(kind=apb.ACTIVITY_KIND_CALL, subject="x", contact_id="c-1")
        ),
        metadata=metadata(TENANT),
    )
    return Targets(
        [order.id], [order.external_id], [deal.id], [lead.lead.id], [activity.activity.id]
    )


_text = st.text(max_size=40)
_int64 = st.integers(-(2**63), 2**63 - 1)
_amount = _int64 | st.integers(0, 10**6)
_int32 = st.integers(-(2**31), 2**31 - 1)
_enum = st.integers(-2, 7)
_version = st.integers(-1, 4)
_currency = st.sampled_from(["EUR", "USD", "JPY", "BHD", "XXX", "eur", ""]) | st.text(max_size=4)
_day = st.sampled_from(["2026-01-01", "2026-03-15", "2026-02-30", "", "1999-12-31"]) | _text
_rate = st.sampled_from(["1", "0.9", "1.0842", "0", "-1", "1e5", "1.", "0000000000009.5"]) | _text
_stamp = st.builds(
    Timestamp,
    seconds=st.integers(-(2**40), 2**40),
    nanos=st.integers(0, 999_999_999),
)


def _requests(ids: Targets) -> st.SearchStrategy[Message]:
    order_id = st.sampled_from(ids.order_ids) | _text
    external_id = st.sampled_from(ids.external_ids) | _text
    opportunity_id = st.sampled_from(ids.opportunity_ids) | st.just("") | _text
    lead_id = st.sampled_from(ids.lead_ids) | st.just("") | _text
    activity_id = st.sampled_from(ids.activity_ids) | _text
    order = st.builds(
        opb.Order,
        external_id=external_id,
        contact_id=_text,
        account_id=_text,
        opportunity_id=opportunity_id,
        order_date=_day,
        currency=_currency,
        lines=st.lists(
            st.builds(
                opb.OrderLine,
                sku=_text,
                product_id=_text,
                quantity=_amount,
                revenue_minor=_amount,
                cost_minor=_amount,
            ),
            max_size=3,
        ),
    )
    plausible_order = st.builds(
        opb.Order,
        external_id=st.text(min_size=1, max_size=40).filter(str.strip),
        contact_id=st.text(min_size=1, max_size=20).filter(str.strip),
        opportunity_id=st.sampled_from(["", *ids.opportunity_ids]),
        order_date=st.sampled_from(["2025-12-31", "2026-01-01", "2026-06-01"]),
        currency=st.sampled_from(["EUR", "USD", "JPY", "BHD"]),
        lines=st.lists(
            st.builds(
                opb.OrderLine,
                sku=st.just("S"),
                quantity=st.integers(1, 2**63 - 1),
                revenue_minor=st.integers(0, 2**63 - 1),
                cost_minor=st.integers(0, 2**63 - 1),
            ),
            min_size=1,
            max_size=3,
        ),
    )
    return_line = st.builds(
        opb.ReturnLine,
        line_number=st.integers(-1, 4) | _int32,
        quantity=_amount,
        revenue_minor=_amount,
        cost_minor=_amount,
    )
    taken = st.builds(
        opb.Return,
        external_id=_text,
        order_id=order_id,
        return_date=_day,
        lines=st.lists(return_line, max_size=3),
    )
    cost = st.builds(
        opb.Cost,
        contact_id=_text,
        account_id=_text,
        category=_enum,
        amount_minor=_amount,
        currency=_currency,
        period_start=_day,
        period_end=_day,
        description=_text,
    )
    activity = st.builds(
        apb.Activity,
        id=activity_id,
        kind=_enum,
        subject=_text,
        notes=_text,
        direction=_enum,
        outcome=_text,
        duration_seconds=_int64,
        due_time=st.none() | _stamp,
        completed_time=st.none() | _stamp,
        contact_id=_text,
        lead_id=lead_id,
        opportunity_id=opportunity_id,
        owner_id=_text,
    )
    paths = st.builds(
        FieldMask,
        paths=st.lists(
            st.sampled_from(
                ["*", "subject", "notes", "direction", "duration_seconds", "due_time",
                 "contact_id", "lead_id", "opportunity_id", "owner_id", "kind", "status"]
            )
            | st.text(max_size=12),
            max_size=3,
        ),
    )  # fmt: skip
    rule = st.builds(
        apb.FollowUpRule,
        enabled=st.booleans(),
        after_order=st.booleans(),
        after_won_deal=st.booleans(),
        delay_days=_int32,
        owner=_enum,
        owner_id=_text,
    )
    return st.one_of(
        st.builds(opb.RecordOrderRequest, order=order | plausible_order),
        st.builds(opb.GetOrderRequest, id=order_id),
        st.builds(
            opb.ListOrdersRequest,
            page_size=st.integers(-5, 600),
            page_token=_text,
            contact_id=_text,
            date_from=_day,
            date_to=_day,
        ),
        st.builds(opb.RecordReturnRequest, **{"return": taken}),
        st.builds(opb.ListReturnsRequest, order_id=order_id, date_from=_day),
        st.builds(opb.RecordCostRequest, cost=cost, request_id=_text),
        st.builds(opb.ListCostsRequest, category=_enum, date_from=_day, date_to=_day),
        st.builds(opb.SetBaseCurrencyRequest, base_currency=_currency, expected_version=_version),
        st.builds(
            opb.RecordExchangeRateRequest,
            rate=st.builds(opb.ExchangeRate, currency=_currency, rate=_rate, valid_from=_day),
        ),
        st.builds(opb.ListExchangeRatesRequest, currency=_currency, page_token=_text),
        st.builds(opb.ConvertAmountRequest, amount_minor=_amount, currency=_currency, date=_day),
        st.builds(apb.CreateActivityRequest, activity=activity, request_id=_text),
        st.builds(
            apb.UpdateActivityRequest,
            activity=activity,
            update_mask=paths,
            expected_version=_version,
        ),
        st.builds(
            apb.CompleteActivityRequest,
            id=activity_id,
            outcome=_text,
            duration_seconds=_int64,
            completed_time=st.none() | _stamp,
            expected_version=_version,
        ),
        st.builds(
            apb.ListActivitiesRequest,
            page_size=st.integers(-5, 600),
            page_token=_text,
            kind=_enum,
            status=_enum,
            lead_id=lead_id,
        ),
        st.builds(apb.SetFollowUpRuleRequest, rule=rule, expected_version=_version),
        st.builds(apb.GetActivityRequest, id=activity_id),
        st.builds(
            pb.WinOpportunityRequest, id=st.sampled_from(ids.opportunity_ids), stage_id=_text
        ),
        st.builds(
            pb.ReopenOpportunityRequest,
            id=st.sampled_from(ids.opportunity_ids),
            stage_id=st.sampled_from(["qualify", "proposal"]),
        ),
    )


def _method(stubs: AreaStubs, sales: SalesUnderTest, request: Message) -> object:
    name = type(request).__name__.removesuffix("Request")
    for stub in (stubs.orders, stubs.activities, sales.stub):
        if hasattr(stub, name):
            return getattr(stub, name)
    raise AssertionError(name)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_random_requests_never_yield_unknown_or_internal(
    sales: SalesUnderTest, stubs: AreaStubs, targets: Targets, data: st.DataObject
) -> None:
    request = data.draw(_requests(targets))
    method = _method(stubs, sales, request)
    try:
        await method(request, metadata=metadata(TENANT), timeout=10)  # type: ignore[operator]
    except grpc.aio.AioRpcError as error:
        assert error.code() not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL), (
            type(request).__name__,
            error.code(),
            error.details(),
        )


async def test_no_follow_up_timer_armed_by_the_fuzzing_failed_to_fire(
    sales: SalesUnderTest, targets: Targets
) -> None:
    timers = sales.service.parts.extra["timers"].timers.collection
    failed = await timers.count_documents({"tenant_id": TENANT, "last_error": {"$exists": True}})
    assert failed == 0
