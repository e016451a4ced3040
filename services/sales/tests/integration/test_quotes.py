"""Products and quotes end to end: gRPC → database → outbox → Kafka, a deal's quote events in
order on its opportunity's key; the expiry timer is armed on send and cancelled on acceptance."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import grpc
from google.protobuf.field_mask_pb2 import FieldMask
from pypdf import PdfReader

from crm.sales.v1 import events_pb2
from crm.sales.v1 import sales_pb2 as pb
from crm_platform.timers import TimerState
from crm_sales.use_cases.quotes import expiry_timer_id
from crm_testing.sales import (
    SalesUnderTest,
    create_opportunity,
    create_pipeline,
    create_product,
    events_for,
    metadata,
    quote_request,
    refused,
    unique_id,
)


async def test_quote_lifecycle_prices_lines_exactly_and_publishes_in_order(
    infra: Any, sales: SalesUnderTest
) -> None:
    pipeline = await create_pipeline(sales)
    opportunity = await create_opportunity(sales, pipeline.id)
    seat = await create_product(sales, prices={"EUR": 1999})
    setup = await create_product(sales, prices={"EUR": 333})
    lines = [
        # 3 x 19.99 = 59.97 net; 19 % tax = 11.3943 → 11.39
        pb.QuoteLine(product_id=seat.id, quantity=3, tax_rate_basis_points=1900),
        # 7 x 3.33 = 23.31, less 12.5 % = 20.39625 → 20.40 net; 7.7 % = 1.5708 → 1.57
        pb.QuoteLine(
            product_id=setup.id,
            quantity=7,
            discount_basis_points=1250,
            tax_rate_basis_points=770,
        ),
    ]
    created = (
        await sales.stub.CreateQuote(quote_request(opportunity.id, lines), metadata=metadata())
    ).quote
    assert (created.status, created.revision, created.version) == (pb.QUOTE_STATUS_DRAFT, 1, 1)
    assert [(line.unit_price_minor, line.net_minor, line.tax_minor) for line in created.lines] == [
        (1999, 5997, 1139),
        (333, 2040, 157),
    ]
    assert (created.net_total_minor, created.tax_total_minor, created.total_minor) == (
        8037,
        1296,
        9333,
    )
    # A given unit price overrides the price book.
    lines[0].unit_price_minor = 1500
    updated = (
        await sales.stub.UpdateQuote(
            pb.UpdateQuoteRequest(
                quote=pb.Quote(id=created.id, lines=lines),
                update_mask=FieldMask(paths=["lines"]),
                expected_version=1,
            ),
            metadata=metadata(),
        )
    ).quote
    assert (updated.lines[0].net_minor, updated.lines[0].tax_minor) == (4500, 855)
    assert updated.total_minor == 4500 + 855 + 2040 + 157
    sent = (
        await sales.stub.SendQuote(
            pb.SendQuoteRequest(id=created.id, expected_version=2), metadata=metadata()
        )
    ).quote
    timers = sales.service.parts.extra["timers"].timers
    armed = await timers.get("acme", expiry_timer_id(created.id))
    assert armed.state is TimerState.PENDING
    assert armed.timer.due_at == sent.valid_until.ToDatetime().replace(
        tzinfo=armed.timer.due_at.tzinfo
    )
    accepted = (
        await sales.stub.AcceptQuote(
            pb.AcceptQuoteRequest(id=created.id, expected_version=3),
            metadata=metadata("acme", "bob"),
        )
    ).quote
    assert (accepted.status, accepted.version) == (pb.QUOTE_STATUS_ACCEPTED, 4)
    assert (await timers.get("acme", expiry_timer_id(created.id))).state is TimerState.CANCELLED
    fetched = (
        await sales.stub.GetQuote(pb.GetQuoteRequest(id=created.id), metadata=metadata())
    ).quote
    assert fetched == accepted

    # The next revision of the same deal.
    second = (
        await sales.stub.CreateQuote(quote_request(opportunity.id, lines[:1]), metadata=metadata())
    ).quote
    assert second.revision == 2
    listed = await sales.stub.ListQuotes(
        pb.ListQuotesRequest(opportunity_id=opportunity.id), metadata=metadata()
    )
    assert sorted(q.revision for q in listed.quotes) == [1, 2]

    events = await events_for(infra.kafka_bootstrap, opportunity.primary_contact_id, 6)
    assert [e.type for e in events] == [
        "crm.sales.v1.OpportunityCreated",
        "crm.sales.v1.QuoteCreated",
        "crm.sales.v1.QuoteUpdated",
        "crm.sales.v1.QuoteStatusChanged",
        "crm.sales.v1.QuoteStatusChanged",
        "crm.sales.v1.QuoteCreated",
    ]
    payloads = [events_pb2.QuoteStatusChanged.FromString(e.payload) for e in events[3:5]]
    assert [(p.previous_status, p.quote.status) for p in payloads] == [
        (pb.QUOTE_STATUS_DRAFT, pb.QUOTE_STATUS_SENT),
        (pb.QUOTE_STATUS_SENT, pb.QUOTE_STATUS_ACCEPTED),
    ]
    assert payloads[1].quote == accepted
    assert events[4].actor.id == "bob"


async def test_products_are_created_listed_and_updated_with_a_price_book(
    infra: Any, sales: SalesUnderTest
) -> None:
    product = await create_product(sales, prices={"JPY": 1800, "BHD": 1250, "EUR": 990})
    assert [p.currency for p in product.prices] == ["BHD", "EUR", "JPY"]
    retired = (
        await sales.stub.UpdateProduct(
            pb.UpdateProductRequest(
                product=pb.Product(id=product.id, active=False),
                update_mask=FieldMask(paths=["active"]),
                expected_version=1,
            ),
            metadata=metadata(),
        )
    ).product
    assert (retired.active, retired.version, retired.sku) == (False, 2, product.sku)
    active = await sales.stub.ListProducts(
        pb.ListProductsRequest(active_only=True, page_size=500), metadata=metadata()
    )
    assert product.id not in {p.id for p in active.products}
    every = await sales.stub.ListProducts(
        pb.ListProductsRequest(page_size=500), metadata=metadata()
    )
    assert product.id in {p.id for p in every.products}
    events = await events_for(infra.kafka_bootstrap, product.id, 2)
    assert [e.type for e in events] == [
        "crm.sales.v1.ProductCreated",
        "crm.sales.v1.ProductUpdated",
    ]
    assert events_pb2.ProductUpdated.FromString(events[1].payload).changed_fields.paths == [
        "active"
    ]


async def test_a_sku_is_unique_in_its_tenant_only(sales: SalesUnderTest) -> None:
    sku = unique_id("SKU")
    request = pb.CreateProductRequest(product=pb.Product(sku=sku, name="A", active=True))
    await sales.stub.CreateProduct(request, metadata=metadata())
    await refused(
        sales.stub.CreateProduct(request, metadata=metadata()), grpc.StatusCode.ALREADY_EXISTS
    )
    await sales.stub.CreateProduct(request, metadata=metadata("globex"))


async def test_a_quote_create_retried_with_its_request_id_returns_the_first(
    sales: SalesUnderTest,
) -> None:
    pipeline = await create_pipeline(sales)
    opportunity = await create_opportunity(sales, pipeline.id)
    product = await create_product(sales)
    request = quote_request(
        opportunity.id, [pb.QuoteLine(product_id=product.id, quantity=1)], request_id="q-1"
    )
    first = (await sales.stub.CreateQuote(request, metadata=metadata())).quote
    again = (await sales.stub.CreateQuote(request, metadata=metadata())).quote
    assert again == first


async def test_the_document_of_a_sent_quote_is_a_pdf_with_its_totals(
    sales: SalesUnderTest,
) -> None:
    pipeline = await create_pipeline(sales)
    opportunity = await create_opportunity(sales, pipeline.id, name="Rollout 2027")
    product = await create_product(sales, prices={"JPY": 1800})
    line = [pb.QuoteLine(product_id=product.id, quantity=1000, tax_rate_basis_points=1000)]
    quote = (
        await sales.stub.CreateQuote(
            quote_request(opportunity.id, line, currency="JPY"), metadata=metadata()
        )
    ).quote
    draft_error = await refused(
        sales.stub.GetQuoteDocument(pb.GetQuoteDocumentRequest(id=quote.id), metadata=metadata()),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert "draft" in (draft_error.details() or "")
    await sales.stub.SendQuote(pb.SendQuoteRequest(id=quote.id), metadata=metadata())
    document = await sales.stub.GetQuoteDocument(
        pb.GetQuoteDocumentRequest(id=quote.id), metadata=metadata()
    )
    assert (document.content_type, document.file_name) == (
        "application/pdf",
        f"quote-{quote.id}-r1.pdf",
    )
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(document.content)).pages)
    assert "Rollout 2027" in text
    assert "Net total: 1,800,000 JPY" in text
    assert "Tax total: 180,000 JPY" in text
    assert "Total: 1,980,000 JPY" in text
    await refused(
        sales.stub.GetQuoteDocument(
            pb.GetQuoteDocumentRequest(id=quote.id), metadata=metadata("globex")
        ),
        grpc.StatusCode.NOT_FOUND,
    )


async def test_concurrent_quotes_of_one_deal_get_distinct_revisions(
    infra: Any, sales: SalesUnderTest
) -> None:
    pipeline = await create_pipeline(sales)
    opportunity = await create_opportunity(sales, pipeline.id)
    product = await create_product(sales)
    line = [pb.QuoteLine(product_id=product.id, quantity=1)]
    replies = await asyncio.gather(
        *(
            sales.stub.CreateQuote(quote_request(opportunity.id, line), metadata=metadata())
            for _ in range(4)
        )
    )
    assert sorted(reply.quote.revision for reply in replies) == [1, 2, 3, 4]
    # The deal's key orders its events by commit: revisions appear in the order they were made.
    events = await events_for(infra.kafka_bootstrap, opportunity.primary_contact_id, 5)
    created = [events_pb2.QuoteCreated.FromString(e.payload).quote for e in events[1:]]
    assert [q.revision for q in created] == [1, 2, 3, 4]
