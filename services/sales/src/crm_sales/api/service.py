"""``crm.sales.v1.SalesService``: requests in, use cases (:mod:`crm_sales.use_cases`), responses
out.

Requests arrive already validated against the proto rules, with the caller's tenant and actor in
the call context (see ``crm_platform.interceptors``); domain errors become gRPC statuses there.
"""

from __future__ import annotations

from typing import Any

from crm.sales.v1 import sales_pb2 as pb
from crm.sales.v1 import sales_pb2_grpc
from crm_platform.context import current_call
from crm_platform.idempotency import IdempotentRequest
from crm_sales import contract, quote_document
from crm_sales.api import convert
from crm_sales.domain.lead import LeadSource, LeadStatus
from crm_sales.domain.pipeline import StageKind
from crm_sales.domain.quote import QuoteStatus
from crm_sales.use_cases import LeadConversions, Leads, Opportunities, Pipelines, Products, Quotes
from crm_sales.use_cases.leads import OPERATION as LEAD_CREATES
from crm_sales.use_cases.opportunities import OPERATION as OPPORTUNITY_CREATES
from crm_sales.use_cases.pipelines import OPERATION as PIPELINE_CREATES
from crm_sales.use_cases.products import OPERATION as PRODUCT_CREATES
from crm_sales.use_cases.quotes import OPERATION as QUOTE_CREATES

Context = Any  # grpc.aio.ServicerContext; the handlers do not use it


class SalesService(sales_pb2_grpc.SalesServiceServicer):
    """The handlers: a request becomes domain inputs and one use case call, its result the
    response. Collaborators come in through the constructor (tests call them directly)."""

    def __init__(
        self,
        pipelines: Pipelines,
        opportunities: Opportunities,
        leads: Leads,
        conversions: LeadConversions,
        products: Products,
        quotes: Quotes,
    ) -> None:
        self.pipelines = pipelines
        self.opportunities = opportunities
        self.leads = leads
        self.conversions = conversions
        self.products = products
        self.quotes = quotes

    # --- pipelines --------------------------------------------------------------------------

    async def CreatePipeline(
        self, request: pb.CreatePipelineRequest, context: Context
    ) -> pb.CreatePipelineResponse:
        call = current_call()
        saved = await self.pipelines.create(
            call,
            convert.pipeline_input(request.pipeline),
            IdempotentRequest.of(call.tenant_id, PIPELINE_CREATES, request.request_id, request),
        )
        return pb.CreatePipelineResponse(pipeline=contract.pipeline_to_pb(saved))

    async def GetPipeline(
        self, request: pb.GetPipelineRequest, context: Context
    ) -> pb.GetPipelineResponse:
        pipeline = await self.pipelines.get(
            current_call().tenant_id, request.id, request.version or None
        )
        return pb.GetPipelineResponse(pipeline=contract.pipeline_to_pb(pipeline))

    async def ListPipelines(
        self, request: pb.ListPipelinesRequest, context: Context
    ) -> pb.ListPipelinesResponse:
        found, token = await self.pipelines.list_pipelines(
            current_call().tenant_id, request.page_size, request.page_token
        )
        return pb.ListPipelinesResponse(
            pipelines=[contract.pipeline_to_pb(p) for p in found], next_page_token=token
        )

    async def UpdatePipeline(
        self, request: pb.UpdatePipelineRequest, context: Context
    ) -> pb.UpdatePipelineResponse:
        saved = await self.pipelines.update(
            current_call(),
            request.pipeline.id,
            convert.pipeline_input(request.pipeline),
            list(request.update_mask.paths),
            request.expected_version or None,
        )
        return pb.UpdatePipelineResponse(pipeline=contract.pipeline_to_pb(saved))

    # --- opportunities ----------------------------------------------------------------------

    async def CreateOpportunity(
        self, request: pb.CreateOpportunityRequest, context: Context
    ) -> pb.CreateOpportunityResponse:
        call = current_call()
        saved = await self.opportunities.create(
            call,
            convert.opportunity_input(request.opportunity),
            IdempotentRequest.of(call.tenant_id, OPPORTUNITY_CREATES, request.request_id, request),
        )
        return pb.CreateOpportunityResponse(opportunity=contract.opportunity_to_pb(saved))

    async def GetOpportunity(
        self, request: pb.GetOpportunityRequest, context: Context
    ) -> pb.GetOpportunityResponse:
        found = await self.opportunities.get(current_call().tenant_id, request.id)
        return pb.GetOpportunityResponse(opportunity=contract.opportunity_to_pb(found))

    async def ListOpportunities(
        self, request: pb.ListOpportunitiesRequest, context: Context
    ) -> pb.ListOpportunitiesResponse:
        filters: dict[str, str] = {}
        if (status := contract.enum_from_pb(StageKind, request.status)) is not None:
            filters["status"] = status.value
        for name in ("pipeline_id", "stage_id", "owner_id", "account_id", "campaign_id"):
            if value := getattr(request, name):
                filters[name] = value
        found, token = await self.opportunities.list_opportunities(
            current_call().tenant_id, filters, request.page_size, request.page_token
        )
        return pb.ListOpportunitiesResponse(
            opportunities=[contract.opportunity_to_pb(o) for o in found], next_page_token=token
        )

    async def UpdateOpportunity(
        self, request: pb.UpdateOpportunityRequest, context: Context
    ) -> pb.UpdateOpportunityResponse:
        saved = await self.opportunities.update(
            current_call(),
            request.opportunity.id,
            convert.opportunity_input(request.opportunity),
            list(request.update_mask.paths),
            request.expected_version or None,
        )
        return pb.UpdateOpportunityResponse(opportunity=contract.opportunity_to_pb(saved))

    async def MoveOpportunityStage(
        self, request: pb.MoveOpportunityStageRequest, context: Context
    ) -> pb.MoveOpportunityStageResponse:
        saved = await self.opportunities.move_stage(
            current_call(), request.id, request.stage_id, request.expected_version or None
        )
        return pb.MoveOpportunityStageResponse(opportunity=contract.opportunity_to_pb(saved))

    async def WinOpportunity(
        self, request: pb.WinOpportunityRequest, context: Context
    ) -> pb.WinOpportunityResponse:
        saved = await self.opportunities.win(
            current_call(),
            request.id,
            request.stage_id,
            request.reason,
            request.expected_version or None,
        )
        return pb.WinOpportunityResponse(opportunity=contract.opportunity_to_pb(saved))

    async def LoseOpportunity(
        self, request: pb.LoseOpportunityRequest, context: Context
    ) -> pb.LoseOpportunityResponse:
        saved = await self.opportunities.lose(
            current_call(),
            request.id,
            request.stage_id,
            request.reason,
            request.expected_version or None,
        )
        return pb.LoseOpportunityResponse(opportunity=contract.opportunity_to_pb(saved))

    async def ReopenOpportunity(
        self, request: pb.ReopenOpportunityRequest, context: Context
    ) -> pb.ReopenOpportunityResponse:
        saved = await self.opportunities.reopen(
            current_call(),
            request.id,
            request.stage_id,
            request.reason,
            request.expected_version or None,
        )
        return pb.ReopenOpportunityResponse(opportunity=contract.opportunity_to_pb(saved))

    # --- leads ------------------------------------------------------------------------------

    async def CreateLead(
        self, request: pb.CreateLeadRequest, context: Context
    ) -> pb.CreateLeadResponse:
        call = current_call()
        saved = await self.leads.create(
            call,
            convert.lead_input(request.lead),
            IdempotentRequest.of(call.tenant_id, LEAD_CREATES, request.request_id, request),
        )
        return pb.CreateLeadResponse(lead=contract.lead_to_pb(saved))

    async def GetLead(self, request: pb.GetLeadRequest, context: Context) -> pb.GetLeadResponse:
        lead = await self.leads.get(current_call().tenant_id, request.id)
        return pb.GetLeadResponse(lead=contract.lead_to_pb(lead))

    async def ListLeads(
        self, request: pb.ListLeadsRequest, context: Context
    ) -> pb.ListLeadsResponse:
        filters: dict[str, str] = {}
        if (status := contract.enum_from_pb(LeadStatus, request.status)) is not None:
            filters["status"] = status.value
        if (source := contract.enum_from_pb(LeadSource, request.source)) is not None:
            filters["source"] = source.value
        for name in ("owner_id", "campaign_id"):
            if value := getattr(request, name):
                filters[name] = value
        found, token = await self.leads.list_leads(
            current_call().tenant_id, filters, request.page_size, request.page_token
        )
        return pb.ListLeadsResponse(
            leads=[contract.lead_to_pb(lead) for lead in found], next_page_token=token
        )

    async def UpdateLead(
        self, request: pb.UpdateLeadRequest, context: Context
    ) -> pb.UpdateLeadResponse:
        saved = await self.leads.update(
            current_call(),
            request.lead.id,
            convert.lead_input(request.lead),
            list(request.update_mask.paths),
            request.expected_version or None,
        )
        return pb.UpdateLeadResponse(lead=contract.lead_to_pb(saved))

    async def StartWorkingLead(
        self, request: pb.StartWorkingLeadRequest, context: Context
    ) -> pb.StartWorkingLeadResponse:
        saved = await self.leads.start_working(
            current_call(), request.id, request.expected_version or None
        )
        return pb.StartWorkingLeadResponse(lead=contract.lead_to_pb(saved))

    async def QualifyLead(
        self, request: pb.QualifyLeadRequest, context: Context
    ) -> pb.QualifyLeadResponse:
        saved = await self.leads.qualify(
            current_call(), request.id, request.expected_version or None
        )
        return pb.QualifyLeadResponse(lead=contract.lead_to_pb(saved))

    async def DisqualifyLead(
        self, request: pb.DisqualifyLeadRequest, context: Context
    ) -> pb.DisqualifyLeadResponse:
        saved = await self.leads.disqualify(
            current_call(), request.id, request.reason, request.expected_version or None
        )
        return pb.DisqualifyLeadResponse(lead=contract.lead_to_pb(saved))

    async def ConvertLead(
        self, request: pb.ConvertLeadRequest, context: Context
    ) -> pb.ConvertLeadResponse:
        conversion = await self.conversions.convert(
            current_call(),
            request.id,
            convert.opportunity_input(request.opportunity),
            request.create_organization,
            request.expected_version or None,
        )
        return pb.ConvertLeadResponse(
            lead=contract.lead_to_pb(conversion.lead),
            opportunity=contract.opportunity_to_pb(conversion.opportunity),
        )

    # --- products ---------------------------------------------------------------------------

    async def CreateProduct(
        self, request: pb.CreateProductRequest, context: Context
    ) -> pb.CreateProductResponse:
        call = current_call()
        saved = await self.products.create(
            call,
            convert.product_input(request.product),
            IdempotentRequest.of(call.tenant_id, PRODUCT_CREATES, request.request_id, request),
        )
        return pb.CreateProductResponse(product=contract.product_to_pb(saved))

    async def GetProduct(
        self, request: pb.GetProductRequest, context: Context
    ) -> pb.GetProductResponse:
        found = await self.products.get(current_call().tenant_id, request.id)
        return pb.GetProductResponse(product=contract.product_to_pb(found))

    async def ListProducts(
        self, request: pb.ListProductsRequest, context: Context
    ) -> pb.ListProductsResponse:
        found, token = await self.products.list_products(
            current_call().tenant_id, request.active_only, request.page_size, request.page_token
        )
        return pb.ListProductsResponse(
            products=[contract.product_to_pb(p) for p in found], next_page_token=token
        )

    async def UpdateProduct(
        self, request: pb.UpdateProductRequest, context: Context
    ) -> pb.UpdateProductResponse:
        saved = await self.products.update(
            current_call(),
            request.product.id,
            convert.product_input(request.product),
            list(request.update_mask.paths),
            request.expected_version or None,
        )
        return pb.UpdateProductResponse(product=contract.product_to_pb(saved))

    # --- quotes -----------------------------------------------------------------------------

    async def CreateQuote(
        self, request: pb.CreateQuoteRequest, context: Context
    ) -> pb.CreateQuoteResponse:
        call = current_call()
        saved = await self.quotes.create(
            call,
            convert.quote_input(request.quote),
            IdempotentRequest.of(call.tenant_id, QUOTE_CREATES, request.request_id, request),
        )
        return pb.CreateQuoteResponse(quote=contract.quote_to_pb(saved))

    async def GetQuote(self, request: pb.GetQuoteRequest, context: Context) -> pb.GetQuoteResponse:
        found = await self.quotes.get(current_call().tenant_id, request.id)
        return pb.GetQuoteResponse(quote=contract.quote_to_pb(found))

    async def ListQuotes(
        self, request: pb.ListQuotesRequest, context: Context
    ) -> pb.ListQuotesResponse:
        filters: dict[str, str] = {}
        if (status := contract.enum_from_pb(QuoteStatus, request.status)) is not None:
            filters["status"] = status.value
        if request.opportunity_id:
            filters["opportunity_id"] = request.opportunity_id
        found, token = await self.quotes.list_quotes(
            current_call().tenant_id, filters, request.page_size, request.page_token
        )
        return pb.ListQuotesResponse(
            quotes=[contract.quote_to_pb(q) for q in found], next_page_token=token
        )

    async def UpdateQuote(
        self, request: pb.UpdateQuoteRequest, context: Context
    ) -> pb.UpdateQuoteResponse:
        saved = await self.quotes.update(
            current_call(),
            request.quote.id,
            convert.quote_input(request.quote),
            list(request.update_mask.paths),
            request.expected_version or None,
        )
        return pb.UpdateQuoteResponse(quote=contract.quote_to_pb(saved))

    async def SendQuote(
        self, request: pb.SendQuoteRequest, context: Context
    ) -> pb.SendQuoteResponse:
        saved = await self.quotes.send(current_call(), request.id, request.expected_version or None)
        return pb.SendQuoteResponse(quote=contract.quote_to_pb(saved))

    async def AcceptQuote(
        self, request: pb.AcceptQuoteRequest, context: Context
    ) -> pb.AcceptQuoteResponse:
        saved = await self.quotes.accept(
            current_call(), request.id, request.expected_version or None
        )
        return pb.AcceptQuoteResponse(quote=contract.quote_to_pb(saved))

    async def RejectQuote(
        self, request: pb.RejectQuoteRequest, context: Context
    ) -> pb.RejectQuoteResponse:
        saved = await self.quotes.reject(
            current_call(), request.id, request.reason, request.expected_version or None
        )
        return pb.RejectQuoteResponse(quote=contract.quote_to_pb(saved))

    async def GetQuoteDocument(
        self, request: pb.GetQuoteDocumentRequest, context: Context
    ) -> pb.GetQuoteDocumentResponse:
        quote, opportunity = await self.quotes.sent_with_opportunity(
            current_call().tenant_id, request.id
        )
        return pb.GetQuoteDocumentResponse(
            content=quote_document.render_pdf(quote, opportunity.name),
            content_type=quote_document.CONTENT_TYPE,
            file_name=quote_document.file_name(quote),
        )
