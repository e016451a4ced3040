"""Property: random requests to every writing RPC (and the reads) never come back as UNKNOWN or
INTERNAL, whether they name existing aggregates or not."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm.sales.v1 import sales_pb2 as pb
from crm_testing.sales import (
    SalesUnderTest,
    create_opportunity,
    create_pipeline,
    create_product,
    metadata,
    quote_request,
)

TENANT = "fuzz"


@dataclass
class Targets:
    """Aggregates of the fuzz tenant that random requests may name."""

    pipeline_ids: list[str]
    opportunity_ids: list[str]
    lead_ids: list[str]
    product_ids: list[str]
    quote_ids: list[str]


@pytest.fixture(scope="module")
async def targets(sales: SalesUnderTest) -> Targets:
    pipeline = await create_pipeline(sales, tenant=TENANT)
    open_one = await create_opportunity(sales, pipeline.id, tenant=TENANT)
    won = await create_opportunity(sales, pipeline.id, tenant=TENANT)
    await sales.stub.WinOpportunity(pb.WinOpportunityRequest(id=won.id), metadata=metadata(TENANT))
    lead = await sales.stub.CreateLead(
        pb.CreateLeadRequest(lead=pb.Lead(person_name="F", source=pb.LEAD_SOURCE_EVENT)),
        metadata=metadata(TENANT),
    )
    product = await create_product(sales, tenant=TENANT)
    retired = await create_product(sales, tenant=TENANT, active=False)
    line = [pb.QuoteLine(product_id=product.id, quantity=1)]
    draft = await sales.stub.CreateQuote(
        quote_request(open_one.id, line), metadata=metadata(TENANT)
    )
    sent = await sales.stub.CreateQuote(quote_request(open_one.id, line), metadata=metadata(TENANT))
    await sales.stub.SendQuote(pb.SendQuoteRequest(id=sent.quote.id), metadata=metadata(TENANT))
    return Targets(
        [pipeline.id],
        [open_one.id, won.id],
        [lead.lead.id],
        [product.id, retired.id],
        [draft.quote.id, sent.quote.id],
    )


_text = st.text(max_size=80)
_stage_ids = st.sampled_from(["qualify", "proposal", "won", "lost", "", "Nope"]) | _text
_enum = st.integers(-2, 11)
_int64 = st.integers(-(2**63), 2**63 - 1)
_version = st.integers(-1, 4)
_currency = st.sampled_from(["EUR", "JPY", "ZZZ", "XXX", "eur", ""]) | st.text(max_size=4)
_stage = st.builds(
    pb.Stage,
    id=_stage_ids,
    name=_text,
    win_probability_percent=st.integers(-5, 105),
    kind=_enum,
)
_paths = st.builds(
    FieldMask,
    paths=st.lists(
        st.sampled_from(
            ["*", "name", "stages", "amount_minor", "currency", "buying_centre", "stage_id",
             "line_items", "expected_close_date", "email", "source", "status", "version",
             "active", "prices", "sku", "lines", "valid_until"]
        )
        | st.text(max_size=20),
        max_size=3,
    ),
)  # fmt: skip


def _requests(ids: Targets) -> st.SearchStrategy[Message]:
    pipeline_id = st.sampled_from(ids.pipeline_ids) | _text
    opportunity_id = st.sampled_from(ids.opportunity_ids) | _text
    lead_id = st.sampled_from(ids.lead_ids) | _text
    pipeline = st.builds(
        pb.Pipeline, id=pipeline_id, name=_text, stages=st.lists(_stage, max_size=6)
    )
    opportunity = st.builds(
        pb.Opportunity,
        id=opportunity_id,
        name=_text,
        account_id=_text,
        primary_contact_id=_text,
        buying_centre=st.lists(
            st.builds(
                pb.BuyingCentreMember,
                contact_id=_text,
                roles=st.lists(_enum, max_size=3),
            ),
            max_size=3,
        ),
        amount_minor=_int64,
        currency=_currency,
        expected_close_date=st.sampled_from(["2026-06-30", "2026-02-30", ""]) | _text,
        pipeline_id=pipeline_id,
        stage_id=_stage_ids,
        line_items=st.lists(
            st.builds(
                pb.LineItem,
                product_id=_text,
                quantity=_int64,
                unit_price_minor=_int64,
            ),
            max_size=2,
        ),
    )
    lead = st.builds(
        pb.Lead,
        id=lead_id,
        contact_id=_text,
        person_name=_text,
        email=_text,
        source=_enum,
        origin_mention_id=_text,
    )
    # Near-valid creates, so that the writes themselves (extreme amounts, odd text) are fuzzed
    # too, not only the checks in front of them.
    plausible_opportunity = st.builds(
        pb.Opportunity,
        name=st.text(min_size=1, max_size=200).filter(str.strip),
        primary_contact_id=st.text(max_size=64),
        amount_minor=st.integers(0, 2**63 - 1),
        currency=st.sampled_from(["EUR", "JPY", "BHD", "USD"]),
        pipeline_id=st.sampled_from(ids.pipeline_ids),
        stage_id=st.sampled_from(["", "qualify", "proposal"]),
        line_items=st.lists(
            st.builds(
                pb.LineItem,
                product_id=st.text(min_size=1, max_size=64).filter(str.strip),
                quantity=st.integers(1, 10**9),
                unit_price_minor=st.integers(0, 2**63 - 1),
            ),
            max_size=2,
        ),
    )
    plausible_pipeline = st.builds(
        pb.Pipeline,
        name=st.text(min_size=1, max_size=200).filter(str.strip),
        stages=st.permutations(
            [
                pb.Stage(id="a", name="A", win_probability_percent=20, kind=pb.STAGE_KIND_OPEN),
                pb.Stage(id="w", name="W", win_probability_percent=100, kind=pb.STAGE_KIND_WON),
                pb.Stage(id="l", name="L", win_probability_percent=0, kind=pb.STAGE_KIND_LOST),
            ]
        ),
    )
    product_id = st.sampled_from(ids.product_ids) | _text
    quote_id = st.sampled_from(ids.quote_ids) | _text
    price = st.builds(pb.Price, currency=_currency, unit_price_minor=_int64)
    product = st.builds(
        pb.Product,
        id=product_id,
        sku=_text,
        name=_text,
        active=st.booleans(),
        prices=st.lists(price, max_size=3),
    )
    stamp = st.builds(
        Timestamp,
        seconds=st.integers(-62135596800, 253402300799),
        nanos=st.integers(0, 999_999_999),
    )
    quote_line = st.builds(
        pb.QuoteLine,
        product_id=product_id,
        quantity=_int64,
        unit_price_minor=st.none() | _int64,
        discount_basis_points=st.integers(-(2**31), 2**31 - 1),
        tax_rate_basis_points=st.integers(-5, 20_000),
    )
    quote = st.builds(
        pb.Quote,
        id=quote_id,
        opportunity_id=opportunity_id,
        currency=_currency,
        lines=st.lists(quote_line, max_size=3),
        valid_until=st.none() | stamp,
    )
    # Near-valid quotes: extreme quantities and prices reach the Decimal totals.
    plausible_quote = st.builds(
        pb.Quote,
        opportunity_id=st.sampled_from(ids.opportunity_ids),
        currency=st.sampled_from(["EUR", "JPY", "BHD", "USD"]),
        lines=st.lists(
            st.builds(
                pb.QuoteLine,
                product_id=st.sampled_from(ids.product_ids),
                quantity=st.integers(1, 2**63 - 1),
                unit_price_minor=st.none() | st.integers(0, 2**63 - 1),
                discount_basis_points=st.integers(0, 10_000),
                tax_rate_basis_points=st.integers(0, 10_000),
            ),
            min_size=1,
            max_size=3,
        ),
        valid_until=stamp,
    )
    return st.one_of(
        st.builds(pb.CreateProductRequest, product=product, request_id=_text),
        st.builds(
            pb.UpdateProductRequest,
            product=product,
            update_mask=_paths,
            expected_version=_version,
        ),
        st.builds(pb.GetProductRequest, id=product_id),
        st.builds(
            pb.ListProductsRequest,
            page_size=st.integers(-5, 600),
            page_token=_text,
            active_only=st.booleans(),
        ),
        st.builds(pb.CreateQuoteRequest, quote=quote | plausible_quote, request_id=_text),
        st.builds(
            pb.UpdateQuoteRequest,
            quote=quote | plausible_quote.map(lambda q: _with_id(q, ids.quote_ids[0])),
            update_mask=_paths,
            expected_version=_version,
        ),
        st.builds(pb.GetQuoteRequest, id=quote_id),
        st.builds(pb.GetQuoteDocumentRequest, id=quote_id),
        st.builds(
            pb.ListQuotesRequest,
            page_size=st.integers(-5, 600),
            page_token=_text,
            opportunity_id=opportunity_id,
            status=_enum,
        ),
        st.builds(pb.SendQuoteRequest, id=quote_id, expected_version=_version),
        st.builds(pb.AcceptQuoteRequest, id=quote_id, expected_version=_version),
        st.builds(pb.RejectQuoteRequest, id=quote_id, reason=_text, expected_version=_version),
        st.builds(pb.CreateOpportunityRequest, opportunity=plausible_opportunity),
        st.builds(pb.CreatePipelineRequest, pipeline=plausible_pipeline),
        st.builds(pb.CreatePipelineRequest, pipeline=pipeline, request_id=_text),
        st.builds(
            pb.UpdatePipelineRequest,
            pipeline=pipeline,
            update_mask=_paths,
            expected_version=_version,
        ),
        st.builds(pb.GetPipelineRequest, id=pipeline_id, version=_version),
        st.builds(pb.CreateOpportunityRequest, opportunity=opportunity, request_id=_text),
        st.builds(
            pb.UpdateOpportunityRequest,
            opportunity=opportunity,
            update_mask=_paths,
            expected_version=_version,
        ),
        st.builds(
            pb.MoveOpportunityStageRequest,
            id=opportunity_id,
            stage_id=_stage_ids,
            expected_version=_version,
        ),
        st.builds(
            pb.WinOpportunityRequest,
            id=opportunity_id,
            stage_id=_stage_ids,
            reason=_text,
            expected_version=_version,
        ),
        st.builds(
            pb.LoseOpportunityRequest,
            id=opportunity_id,
            stage_id=_stage_ids,
            reason=_text,
            expected_version=_version,
        ),
        st.builds(
            pb.ReopenOpportunityRequest,
            id=opportunity_id,
            stage_id=_stage_ids,
            reason=_text,
            expected_version=_version,
        ),
        st.builds(
            pb.ListOpportunitiesRequest,
            page_size=st.integers(-5, 600),
            page_token=_text,
            status=_enum,
            pipeline_id=pipeline_id,
        ),
        st.builds(pb.CreateLeadRequest, lead=lead, request_id=_text),
        st.builds(pb.UpdateLeadRequest, lead=lead, update_mask=_paths, expected_version=_version),
        st.builds(pb.StartWorkingLeadRequest, id=lead_id, expected_version=_version),
        st.builds(pb.QualifyLeadRequest, id=lead_id, expected_version=_version),
        st.builds(pb.DisqualifyLeadRequest, id=lead_id, reason=_text, expected_version=_version),
        st.builds(pb.ListLeadsRequest, page_size=st.integers(-5, 600), status=_enum, source=_enum),
        st.builds(
            pb.ConvertLeadRequest,
            id=lead_id,
            opportunity=opportunity | plausible_opportunity,
            create_organization=st.booleans(),
            expected_version=_version,
        ),
    )


def _with_id(quote: pb.Quote, quote_id: str) -> pb.Quote:
    quote.id = quote_id
    return quote


def _method(request: Message) -> str:
    return type(request).__name__.removesuffix("Request")


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_random_requests_never_yield_unknown_or_internal(
    sales: SalesUnderTest, targets: Targets, data: st.DataObject
) -> None:
    request = data.draw(_requests(targets))
    method = getattr(sales.stub, _method(request))
    try:
        await method(request, metadata=metadata(TENANT), timeout=10)
    except grpc.aio.AioRpcError as error:
        assert error.code() not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL), (
            error.code(),
            error.details(),
        )
