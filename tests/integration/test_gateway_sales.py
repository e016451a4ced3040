"""The sales service through the gateway, against the real platform: a lead from a web form to a
won deal with the roles that do each step, the quote's PDF downloaded over JSON/HTTP (parsed
back, its totals found), and tenants kept apart on every sales read."""

from __future__ import annotations

import base64
import io
import json
import re
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from pypdf import PdfReader

from crm.sales.v1 import activities_pb2 as apb
from crm.sales.v1 import appointments_pb2 as appb
from crm.sales.v1 import campaigns_pb2 as cpg
from crm.sales.v1 import orders_pb2 as opb
from crm.sales.v1 import sales_pb2 as pb
from crm.sales.v1 import territories_pb2 as tpb
from crm.sales.v1 import territories_types_pb2 as ttpb
from crm_gateway.routes import ROUTES
from crm_testing.gateway import GatewayStack, bearer

pytestmark = pytest.mark.integration

_DOCUMENT = "/v1/SalesService/GetQuoteDocument"


def _stages() -> list[pb.Stage]:
    return [
        pb.Stage(id="qualify", name="Qualify", win_probability_percent=10, kind=pb.STAGE_KIND_OPEN),
        pb.Stage(
            id="proposal", name="Proposal", win_probability_percent=60, kind=pb.STAGE_KIND_OPEN
        ),
        pb.Stage(id="won", name="Won", win_probability_percent=100, kind=pb.STAGE_KIND_WON),
        pb.Stage(id="lost", name="Lost", win_probability_percent=0, kind=pb.STAGE_KIND_LOST),
    ]


def _until(days: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(datetime.now(UTC) + timedelta(days=days))
    return stamp


def fetch(
    stack: GatewayStack,
    path: str,
    *,
    token: str | None = None,
    api_key: str | None = None,
    body: Any = None,
    accept: str | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """A GET (no body) or POST (JSON body) over HTTP; returns (status, headers, raw body)."""
    headers: dict[str, str] = {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if api_key:
        headers["X-API-Key"] = api_key
    if accept:
        headers["Accept"] = accept
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(
        stack.http_url + path, data=data, headers=headers, method="POST" if data else "GET"
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def _pdf_text(content: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)


def _eur(minor: int) -> str:
    return f"{Decimal(minor).scaleb(-2):,.2f} EUR"


@dataclass
class SalesStory:
    """What the deal of :func:`_sell` left behind."""

    tenant: str
    lead: pb.Lead
    opportunity: pb.Opportunity
    quote: pb.Quote
    draft: pb.Quote
    pipeline: pb.Pipeline
    product: pb.Product


async def _sell(stack: GatewayStack) -> SalesStory:
    """A web-form lead (the integration), set-up (admin), working, converting and quoting (a
    rep of the sales role), as real callers would, all in tenant acme."""
    tenant = "acme"
    admin = bearer(stack.token(tenant, "admin", "alice"))
    rep = bearer(stack.token(tenant, "sales", "rep-sam"))
    connector = (("x-api-key", stack.api_keys["acme-integration"]),)
    sales = stack.stub("SalesService")
    pipeline = (
        await sales.CreatePipeline(
            pb.CreatePipelineRequest(pipeline=pb.Pipeline(name="Direct", stages=_stages())),
            metadata=admin,
            timeout=10,
        )
    ).pipeline
    product = (
        await sales.CreateProduct(
            pb.CreateProductRequest(
                product=pb.Product(
                    sku=f"SEAT-{uuid.uuid4().hex[:8]}",
                    name="Support seat",
                    active=True,
                    prices=[pb.Price(currency="EUR", unit_price_minor=1250)],
                )
            ),
            metadata=admin,
            timeout=10,
        )
    ).product
    lead = (
        await sales.CreateLead(
            pb.CreateLeadRequest(
                lead=pb.Lead(
                    person_name="Grace Hopper",
                    company_name="Navy Labs",
                    email=f"grace+{uuid.uuid4().hex[:8]}@example.com",
                    source=pb.LEAD_SOURCE_WEB_FORM,
                )
            ),
            metadata=connector,
            timeout=10,
        )
    ).lead
    lead = (
        await sales.StartWorkingLead(
            pb.StartWorkingLeadRequest(id=lead.id), metadata=rep, timeout=10
        )
    ).lead
    lead = (
        await sales.QualifyLead(pb.QualifyLeadRequest(id=lead.id), metadata=rep, timeout=10)
    ).lead
    converted = await sales.ConvertLead(
        pb.ConvertLeadRequest(
            id=lead.id,
            opportunity=pb.Opportunity(
                name="Navy Labs seats",
                pipeline_id=pipeline.id,
                amount_minor=375_000,
                currency="EUR",
            ),
        ),
        metadata=rep,
        timeout=10,
    )
    opportunity = (
        await sales.MoveOpportunityStage(
            pb.MoveOpportunityStageRequest(id=converted.opportunity.id, stage_id="proposal"),
            metadata=rep,
            timeout=10,
        )
    ).opportunity
    lines = [
        pb.QuoteLine(
            product_id=product.id,
            quantity=3,
            discount_basis_points=1000,
            tax_rate_basis_points=1900,
        )
    ]
    draft = (
        await sales.CreateQuote(
            pb.CreateQuoteRequest(
                quote=pb.Quote(
                    opportunity_id=opportunity.id,
                    currency="EUR",
                    lines=lines,
                    valid_until=_until(30),
                )
            ),
            metadata=rep,
            timeout=10,
        )
    ).quote
    quote = (
        await sales.SendQuote(pb.SendQuoteRequest(id=draft.id), metadata=rep, timeout=10)
    ).quote
    second = (
        await sales.CreateQuote(
            pb.CreateQuoteRequest(
                quote=pb.Quote(
                    opportunity_id=opportunity.id,
                    currency="EUR",
                    lines=lines,
                    valid_until=_until(30),
                )
            ),
            metadata=rep,
            timeout=10,
        )
    ).quote
    return SalesStory(tenant, converted.lead, opportunity, quote, second, pipeline, product)


async def test_a_web_form_lead_becomes_a_won_deal_through_the_gateway_with_each_roles_rights(
    gateway_stack: GatewayStack,
) -> None:
    story = await _sell(gateway_stack)
    assert story.lead.status == pb.LEAD_STATUS_CONVERTED
    assert story.lead.converted_opportunity_id == story.opportunity.id
    assert story.opportunity.stage_id == "proposal"
    assert story.quote.status == pb.QUOTE_STATUS_SENT
    # 3 x 12.50 = 37.50, less 10 % = 33.75, 19 % tax = 6.41 (half-even), total 40.16.
    assert (story.quote.net_total_minor, story.quote.total_minor) == (3375, 4016)
    sales = gateway_stack.stub("SalesService")
    rep = bearer(gateway_stack.token("acme", "sales", "rep-sam"))
    connector = (("x-api-key", gateway_stack.api_keys["acme-integration"]),)
    analyst = bearer(gateway_stack.token("acme", "analyst", "ann"))
    agent = bearer(gateway_stack.token("acme", "agent", "amara"))
    # The integration feeds leads but neither sees nor changes deals; the analyst reads them.
    denied = [
        (connector, "GetOpportunity", pb.GetOpportunityRequest(id=story.opportunity.id)),
        (connector, "CreateOpportunity", pb.CreateOpportunityRequest()),
        (analyst, "WinOpportunity", pb.WinOpportunityRequest(id=story.opportunity.id)),
        (agent, "AcceptQuote", pb.AcceptQuoteRequest(id=story.quote.id)),
        (rep, "UpdateProduct", pb.UpdateProductRequest(product=story.product)),
    ]
    for credential, method, request in denied:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await getattr(sales, method)(request, metadata=credential, timeout=10)
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED, method
    seen = await sales.GetOpportunity(
        pb.GetOpportunityRequest(id=story.opportunity.id), metadata=analyst, timeout=10
    )
    assert seen.opportunity.version == story.opportunity.version  # the denied win changed nothing
    accepted = await sales.AcceptQuote(
        pb.AcceptQuoteRequest(id=story.quote.id), metadata=rep, timeout=10
    )
    assert accepted.quote.status == pb.QUOTE_STATUS_ACCEPTED
    won = await sales.WinOpportunity(
        pb.WinOpportunityRequest(id=story.opportunity.id, reason="signed"),
        metadata=rep,
        timeout=10,
    )
    assert won.opportunity.status == pb.STAGE_KIND_WON
    assert [change.to_stage_id for change in won.opportunity.stage_history][-2:] == [
        "proposal",
        "won",
    ]


async def test_the_quote_pdf_downloads_through_the_gateway_and_shows_the_totals(
    gateway_stack: GatewayStack,
) -> None:
    story = await _sell(gateway_stack)
    token = gateway_stack.token("acme", "sales", "rep-sam")
    query = "?" + urllib.parse.urlencode({"id": story.quote.id})
    # `curl -OJ` of the URL: the PDF itself, named, as a download.
    status, headers, pdf = fetch(gateway_stack, _DOCUMENT + query, token=token)
    assert status == 200, pdf[:300]
    assert headers["Content-Type"] == "application/pdf"
    disposition = headers["Content-Disposition"]
    assert re.fullmatch(r'attachment; filename="quote-[A-Za-z0-9._-]+-r1\.pdf"', disposition)
    assert pdf.startswith(b"%PDF-")
    text = _pdf_text(pdf)
    quote = story.quote
    assert f"Net total: {_eur(quote.net_total_minor)}" in text
    assert f"Tax total: {_eur(quote.tax_total_minor)}" in text
    assert f"Total: {_eur(quote.total_minor)}" in text
    assert "Total: 40.16 EUR" in text
    assert quote.id in text
    # The same bytes to a POST asking for the PDF, and base64 in the JSON answer by default.
    status, headers, posted = fetch(
        gateway_stack, _DOCUMENT, token=token, body={"id": quote.id}, accept="application/pdf"
    )
    assert (status, headers["Content-Type"], posted) == (200, "application/pdf", pdf)
    status, headers, answer = fetch(gateway_stack, _DOCUMENT, token=token, body={"id": quote.id})
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    document = json.loads(answer)
    assert base64.b64decode(document["content"]) == pdf
    assert document["contentType"] == "application/pdf"
    # An analyst reads it; the integration may not; errors stay JSON with their status.
    analyst = gateway_stack.token("acme", "analyst", "ann")
    assert fetch(gateway_stack, _DOCUMENT + query, token=analyst)[2] == pdf
    key = gateway_stack.api_keys["acme-integration"]
    for path, credential, expected, code in (
        (_DOCUMENT + query, {"api_key": key}, 403, "PERMISSION_DENIED"),
        (_DOCUMENT + query, {}, 401, "UNAUTHENTICATED"),
        (f"{_DOCUMENT}?id={story.draft.id}", {"token": token}, 412, "FAILED_PRECONDITION"),
        (f"{_DOCUMENT}?id=no-such-quote", {"token": token}, 404, "NOT_FOUND"),
        (_DOCUMENT, {"token": token}, 400, "INVALID_ARGUMENT"),
        (f"{_DOCUMENT}?id={quote.id}&shoeSize=42", {"token": token}, 400, "INVALID_ARGUMENT"),
        ("/v1/SalesService/GetQuote" + query, {"token": token}, 405, "UNIMPLEMENTED"),
        ("/v1/SalesService/NoSuchThing" + query, {"token": token}, 404, "NOT_FOUND"),
    ):
        status, headers, body = fetch(gateway_stack, path, **credential)
        assert status == expected, (path, body[:300])
        assert headers["Content-Type"].startswith("application/json"), path
        assert json.loads(body)["code"] == code, path
    # Another tenant's admin gets NOT_FOUND for it, not the document.
    other = gateway_stack.token("globex", "admin", "bob")
    status, _, body = fetch(gateway_stack, _DOCUMENT + query, token=other)
    assert status == 404
    assert json.loads(body)["code"] == "NOT_FOUND"


async def test_tenant_b_reads_nothing_of_tenant_as_sales(gateway_stack: GatewayStack) -> None:
    """Every sales read operation (Sales, Territory, Order, Activity services) as tenant B's
    admin with tenant A's ids: NOT_FOUND, or an answer without A's records; and B cannot move
    A's opportunity."""
    story = await _sell(gateway_stack)
    rule = (
        await gateway_stack.stub("TerritoryService").CreateTerritoryRule(
            tpb.CreateTerritoryRuleRequest(
                rule=tpb.TerritoryRule(
                    name=f"Iceland {uuid.uuid4().hex[:6]}",
                    position=10,
                    enabled=True,
                    applies_to=[tpb.TERRITORY_RECORD_KIND_LEAD],
                    condition=tpb.TerritoryCondition(countries=["IS"]),
                    territory_id="nordics",
                    owner_id="rep-is",
                )
            ),
            metadata=bearer(gateway_stack.token("acme", "admin", "alice")),
            timeout=10,
        )
    ).rule
    admin_a = bearer(gateway_stack.token("acme", "admin", "alice"))
    await gateway_stack.stub("OrderService").SetBaseCurrency(
        opb.SetBaseCurrencyRequest(base_currency="EUR"), metadata=admin_a, timeout=10
    )
    order = (
        await gateway_stack.stub("OrderService").RecordOrder(
            opb.RecordOrderRequest(
                order=opb.Order(
                    external_id=f"ERP-{uuid.uuid4().hex[:8]}",
                    contact_id=story.opportunity.primary_contact_id,
                    order_date="2026-03-15",
                    currency="EUR",
                    lines=[
                        opb.OrderLine(sku="SEAT", quantity=3, revenue_minor=3750, cost_minor=900)
                    ],
                )
            ),
            metadata=(("x-api-key", gateway_stack.api_keys["acme-integration"]),),
            timeout=10,
        )
    ).order
    activity = (
        await gateway_stack.stub("ActivityService").CreateActivity(
            apb.CreateActivityRequest(
                activity=apb.Activity(
                    kind=apb.ACTIVITY_KIND_CALL,
                    subject="Intro call",
                    opportunity_id=story.opportunity.id,
                )
            ),
            metadata=bearer(gateway_stack.token("acme", "sales", "rep-sam")),
            timeout=10,
        )
    ).activity
    campaign = (
        await gateway_stack.stub("CampaignService").CreateCampaign(
            cpg.CreateCampaignRequest(
                campaign=cpg.Campaign(
                    name="Spring launch",
                    channel=cpg.CAMPAIGN_CHANNEL_EMAIL,
                    budget_minor=5_000_00,
                    currency="EUR",
                )
            ),
            metadata=bearer(gateway_stack.token("acme", "sales", "rep-sam")),
            timeout=10,
        )
    ).campaign
    a_ids = {
        campaign.id,
        order.id,
        activity.id,
        story.lead.id,
        story.opportunity.id,
        story.quote.id,
        story.draft.id,
        story.pipeline.id,
        story.product.id,
        rule.id,
    }
    reads: list[tuple[str, str, Any]] = [
        ("SalesService", "GetPipeline", pb.GetPipelineRequest(id=story.pipeline.id)),
        ("SalesService", "ListPipelines", pb.ListPipelinesRequest()),
        ("SalesService", "GetOpportunity", pb.GetOpportunityRequest(id=story.opportunity.id)),
        (
            "SalesService",
            "ListOpportunities",
            pb.ListOpportunitiesRequest(pipeline_id=story.pipeline.id),
        ),
        ("SalesService", "GetLead", pb.GetLeadRequest(id=story.lead.id)),
        ("SalesService", "ListLeads", pb.ListLeadsRequest()),
        ("SalesService", "GetProduct", pb.GetProductRequest(id=story.product.id)),
        ("SalesService", "ListProducts", pb.ListProductsRequest()),
        ("SalesService", "GetQuote", pb.GetQuoteRequest(id=story.quote.id)),
        (
            "SalesService",
            "ListQuotes",
            pb.ListQuotesRequest(opportunity_id=story.opportunity.id),
        ),
        ("SalesService", "GetQuoteDocument", pb.GetQuoteDocumentRequest(id=story.quote.id)),
        ("TerritoryService", "GetTerritoryRule", tpb.GetTerritoryRuleRequest(id=rule.id)),
        ("TerritoryService", "ListTerritoryRules", tpb.ListTerritoryRulesRequest()),
        (
            "TerritoryService",
            "EvaluateTerritory",
            tpb.EvaluateTerritoryRequest(
                kind=tpb.TERRITORY_RECORD_KIND_LEAD, profile=ttpb.CompanyProfile(country="IS")
            ),
        ),
        ("OrderService", "GetOrder", opb.GetOrderRequest(id=order.id)),
        ("OrderService", "ListOrders", opb.ListOrdersRequest()),
        ("OrderService", "GetReturn", opb.GetReturnRequest(id=order.id)),
        ("OrderService", "ListReturns", opb.ListReturnsRequest(order_id=order.id)),
        ("OrderService", "GetCost", opb.GetCostRequest(id=order.id)),
        ("OrderService", "ListCosts", opb.ListCostsRequest()),
        ("OrderService", "GetCurrencySettings", opb.GetCurrencySettingsRequest()),
        ("OrderService", "ListExchangeRates", opb.ListExchangeRatesRequest()),
        (
            "OrderService",
            "ConvertAmount",
            opb.ConvertAmountRequest(amount_minor=100, currency="EUR", date="2026-03-15"),
        ),
        ("ActivityService", "GetActivity", apb.GetActivityRequest(id=activity.id)),
        ("ActivityService", "ListActivities", apb.ListActivitiesRequest()),
        ("ActivityService", "GetFollowUpRule", apb.GetFollowUpRuleRequest()),
        ("CampaignService", "GetCampaign", cpg.GetCampaignRequest(id=campaign.id)),
        ("CampaignService", "ListCampaigns", cpg.ListCampaignsRequest()),
        # No appointment is booked in A here (that takes work calendars): unknown ids are
        # NOT_FOUND, B's lists are its own; the appointments' own tests book across tenants.
        ("AppointmentService", "GetAppointment", appb.GetAppointmentRequest(id="a-1")),
        ("AppointmentService", "ListAppointments", appb.ListAppointmentsRequest()),
        (
            "AppointmentService",
            "GetAppointmentCalendarFile",
            appb.GetAppointmentCalendarFileRequest(id="a-1"),
        ),
    ]
    untried = {("AppointmentService", "GetWorkCalendar"), ("AppointmentService", "FindFreeSlots")}
    sales_reads = {
        (r.service, r.method)
        for r in ROUTES
        if r.backend is not None and r.backend.value == "sales" and r.read_only
    }
    tried = {(service, method) for service, method, _ in reads}
    assert sales_reads - untried == tried, "a read is untried"
    other = bearer(gateway_stack.token("globex", "admin", "bob"))
    leaks: list[str] = []
    for service, method, request in reads:
        try:
            reply = await getattr(gateway_stack.stub(service), method)(
                request, metadata=other, timeout=10
            )
        except grpc.aio.AioRpcError as exc:
            # FAILED_PRECONDITION: B has no base currency of its own to convert into.
            if exc.code() not in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION):
                leaks.append(f"{method}: unexpected {exc.code().name} {exc.details()}")
            continue
        leaks.extend(f"{method} returned {ident}" for ident in a_ids if ident in str(reply))
    assert not leaks, "\n".join(leaks)
    sales = gateway_stack.stub("SalesService")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await sales.MoveOpportunityStage(
            pb.MoveOpportunityStageRequest(id=story.opportunity.id, stage_id="qualify"),
            metadata=other,
            timeout=10,
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    mine = await sales.GetOpportunity(
        pb.GetOpportunityRequest(id=story.opportunity.id),
        metadata=bearer(gateway_stack.token("acme", "analyst", "ann")),
        timeout=10,
    )
    assert mine.opportunity.stage_id == "proposal"
    # The territory rule itself: the admin's, read by analysts, not changed by a sales rep.
    territories = gateway_stack.stub("TerritoryService")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await territories.DeleteTerritoryRule(
            tpb.DeleteTerritoryRuleRequest(id=rule.id),
            metadata=bearer(gateway_stack.token("acme", "sales", "rep-sam")),
            timeout=10,
        )
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    evaluated = await territories.EvaluateTerritory(
        tpb.EvaluateTerritoryRequest(
            kind=tpb.TERRITORY_RECORD_KIND_LEAD, profile=ttpb.CompanyProfile(country="IS")
        ),
        metadata=bearer(gateway_stack.token("acme", "analyst", "ann")),
        timeout=10,
    )
    assert evaluated.matched
    assert evaluated.decision.rule_id == rule.id
