"""Bad product and quote input gets the right status with field violations and writes nothing;
a quote on a closed opportunity, a change to a sent revision and a stale version are
FAILED_PRECONDITION; another tenant's ids are not the caller's.

Fractional minor units cannot be sent at all: every amount is an ``int64`` on the wire, and the
domain's own check of whole minor units is unit-tested (tests/unit/test_money.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from crm.sales.v1 import sales_pb2 as pb
from crm_testing.sales import (
    OTHER_TENANT,
    SalesUnderTest,
    create_opportunity,
    create_pipeline,
    create_product,
    metadata,
    precondition_types,
    quote_request,
    refused,
    valid_until,
    violations,
)

COLLECTIONS = ("products", "quotes", "timers", "key_sequences", "idempotency", "outbox")
INVALID = grpc.StatusCode.INVALID_ARGUMENT
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION


@dataclass
class World:
    """What the refused requests are aimed at, made before the counting starts."""

    open: pb.Opportunity
    lost: pb.Opportunity
    product: pb.Product
    retired: pb.Product
    draft: pb.Quote
    sent: pb.Quote


@pytest.fixture(scope="module")
async def world(sales: SalesUnderTest) -> World:
    pipeline = await create_pipeline(sales)
    open_one = await create_opportunity(sales, pipeline.id)
    lost = await create_opportunity(sales, pipeline.id)
    product = await create_product(sales)
    retired = await create_product(sales, active=False)
    line = [pb.QuoteLine(product_id=product.id, quantity=2)]
    draft = (
        await sales.stub.CreateQuote(quote_request(open_one.id, line), metadata=metadata())
    ).quote
    sent = (
        await sales.stub.CreateQuote(quote_request(open_one.id, line), metadata=metadata())
    ).quote
    sent = (await sales.stub.SendQuote(pb.SendQuoteRequest(id=sent.id), metadata=metadata())).quote
    lost_quote = (
        await sales.stub.CreateQuote(quote_request(lost.id, line), metadata=metadata())
    ).quote
    await sales.stub.SendQuote(pb.SendQuoteRequest(id=lost_quote.id), metadata=metadata())
    lost = (
        await sales.stub.LoseOpportunity(
            pb.LoseOpportunityRequest(id=lost.id, reason="budget"), metadata=metadata()
        )
    ).opportunity
    return World(open_one, lost, product, retired, draft, sent)


async def _counts(sales: SalesUnderTest) -> dict[str, int]:
    db = sales.mongo.db
    return {name: await db[name].count_documents({}) for name in COLLECTIONS}


@pytest.fixture
async def unchanged(sales: SalesUnderTest, world: World) -> AsyncIterator[None]:
    """Asserts that the test left these collections, the outbox included, as it found them
    (the relay is paused meanwhile: it would otherwise empty the outbox under our feet)."""
    relay = sales.service.parts.extra["relay"]
    await relay.stop()
    try:
        before = await _counts(sales)
        yield
        assert await _counts(sales) == before
    finally:
        relay.start()


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(
    ("price", "field"),
    [
        (pb.Price(currency="EUR", unit_price_minor=-1), "product.prices[0].unit_price_minor"),
        (pb.Price(currency="ZZZ", unit_price_minor=1), "product.prices[0].currency"),
        (pb.Price(currency="XAU", unit_price_minor=1), "product.prices[0].currency"),
        (pb.Price(currency="eur", unit_price_minor=1), "product.prices[0].currency"),
    ],
)
async def test_a_bad_price_book_is_refused(
    sales: SalesUnderTest, price: pb.Price, field: str
) -> None:
    request = pb.CreateProductRequest(product=pb.Product(sku="S-bad", name="X", prices=[price]))
    error = await refused(sales.stub.CreateProduct(request, metadata=metadata()), INVALID)
    assert field in violations(error)


@pytest.mark.usefixtures("unchanged")
async def test_a_product_without_sku_or_name_is_refused(sales: SalesUnderTest) -> None:
    request = pb.CreateProductRequest(product=pb.Product(sku=" ", name=""))
    error = await refused(sales.stub.CreateProduct(request, metadata=metadata()), INVALID)
    assert {"product.sku", "product.name"} <= set(violations(error))


@pytest.mark.usefixtures("unchanged")
async def test_bad_quote_lines_are_refused_with_every_field_named(
    sales: SalesUnderTest, world: World
) -> None:
    lines = [
        pb.QuoteLine(product_id="no-such-product", quantity=1),
        pb.QuoteLine(product_id=world.retired.id, quantity=1),
        pb.QuoteLine(product_id=world.product.id, quantity=0, unit_price_minor=-5),
        pb.QuoteLine(
            product_id=world.product.id,
            quantity=1,
            discount_basis_points=10_001,
            tax_rate_basis_points=-1,
        ),
    ]
    request = quote_request(world.open.id, lines)
    error = await refused(sales.stub.CreateQuote(request, metadata=metadata()), INVALID)
    assert set(violations(error)) == {
        "quote.lines[0].product_id",
        "quote.lines[1].product_id",
        "quote.lines[2].quantity",
        "quote.lines[2].unit_price_minor",
        "quote.lines[3].discount_basis_points",
        "quote.lines[3].tax_rate_basis_points",
    }


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("currency", ["ZZZ", "XXX", "XAU", "eur", ""])
async def test_a_quote_in_an_unknown_currency_is_refused(
    sales: SalesUnderTest, world: World, currency: str
) -> None:
    line = [pb.QuoteLine(product_id=world.product.id, quantity=1, unit_price_minor=10)]
    request = quote_request(world.open.id, line, currency=currency)
    error = await refused(sales.stub.CreateQuote(request, metadata=metadata()), INVALID)
    assert "quote.currency" in violations(error)


@pytest.mark.usefixtures("unchanged")
async def test_a_product_without_a_price_in_the_quote_currency_needs_one(
    sales: SalesUnderTest, world: World
) -> None:
    line = [pb.QuoteLine(product_id=world.product.id, quantity=1)]
    request = quote_request(world.open.id, line, currency="USD")
    error = await refused(sales.stub.CreateQuote(request, metadata=metadata()), INVALID)
    assert "quote.lines[0].unit_price_minor" in violations(error)


@pytest.mark.usefixtures("unchanged")
async def test_a_quote_without_valid_until_or_lines_is_refused(
    sales: SalesUnderTest, world: World
) -> None:
    request = pb.CreateQuoteRequest(quote=pb.Quote(opportunity_id=world.open.id, currency="EUR"))
    error = await refused(sales.stub.CreateQuote(request, metadata=metadata()), INVALID)
    assert {"quote.valid_until", "quote.lines"} <= set(violations(error))


@pytest.mark.usefixtures("unchanged")
async def test_a_quote_on_a_closed_opportunity_is_a_failed_precondition(
    sales: SalesUnderTest, world: World
) -> None:
    line = [pb.QuoteLine(product_id=world.product.id, quantity=1)]
    error = await refused(
        sales.stub.CreateQuote(quote_request(world.lost.id, line), metadata=metadata()),
        PRECONDITION,
    )
    assert precondition_types(error) == {"OPPORTUNITY_CLOSED"}


@pytest.mark.usefixtures("unchanged")
async def test_a_sent_revision_is_immutable(sales: SalesUnderTest, world: World) -> None:
    update = pb.UpdateQuoteRequest(
        quote=pb.Quote(id=world.sent.id, valid_until=valid_until(60)),
        update_mask=FieldMask(paths=["valid_until"]),
    )
    error = await refused(sales.stub.UpdateQuote(update, metadata=metadata()), PRECONDITION)
    assert precondition_types(error) == {"QUOTE_NOT_DRAFT"}
    error = await refused(
        sales.stub.SendQuote(pb.SendQuoteRequest(id=world.sent.id), metadata=metadata()),
        PRECONDITION,
    )
    assert precondition_types(error) == {"QUOTE_NOT_DRAFT"}
    error = await refused(
        sales.stub.AcceptQuote(pb.AcceptQuoteRequest(id=world.draft.id), metadata=metadata()),
        PRECONDITION,
    )
    assert precondition_types(error) == {"QUOTE_NOT_SENT"}


@pytest.mark.usefixtures("unchanged")
async def test_stale_versions_are_failed_preconditions(sales: SalesUnderTest, world: World) -> None:
    calls = [
        sales.stub.SendQuote(
            pb.SendQuoteRequest(id=world.draft.id, expected_version=7), metadata=metadata()
        ),
        sales.stub.UpdateQuote(
            pb.UpdateQuoteRequest(
                quote=pb.Quote(id=world.draft.id, valid_until=valid_until(9)),
                update_mask=FieldMask(paths=["valid_until"]),
                expected_version=7,
            ),
            metadata=metadata(),
        ),
        sales.stub.UpdateProduct(
            pb.UpdateProductRequest(
                product=pb.Product(id=world.product.id, name="Renamed"),
                update_mask=FieldMask(paths=["name"]),
                expected_version=7,
            ),
            metadata=metadata(),
        ),
    ]
    for call in calls:
        assert precondition_types(await refused(call, PRECONDITION)) == {"STALE_VERSION"}


@pytest.mark.usefixtures("unchanged")
async def test_another_tenants_ids_are_not_the_callers(sales: SalesUnderTest, world: World) -> None:
    other = metadata(OTHER_TENANT)
    calls = [
        sales.stub.GetQuote(pb.GetQuoteRequest(id=world.draft.id), metadata=other),
        sales.stub.SendQuote(pb.SendQuoteRequest(id=world.draft.id), metadata=other),
        sales.stub.AcceptQuote(pb.AcceptQuoteRequest(id=world.sent.id), metadata=other),
        sales.stub.RejectQuote(pb.RejectQuoteRequest(id=world.sent.id), metadata=other),
        sales.stub.GetProduct(pb.GetProductRequest(id=world.product.id), metadata=other),
        sales.stub.UpdateProduct(
            pb.UpdateProductRequest(
                product=pb.Product(id=world.product.id, name="Mine now"),
                update_mask=FieldMask(paths=["name"]),
            ),
            metadata=other,
        ),
    ]
    for call in calls:
        await refused(call, grpc.StatusCode.NOT_FOUND)
    # Another tenant's opportunity and product are none of the caller's: no quote is made.
    line = [pb.QuoteLine(product_id=world.product.id, quantity=1)]
    error = await refused(
        sales.stub.CreateQuote(quote_request(world.open.id, line), metadata=other), INVALID
    )
    assert "quote.opportunity_id" in violations(error)
    listed = await sales.stub.ListQuotes(pb.ListQuotesRequest(), metadata=other)
    assert list(listed.quotes) == []
