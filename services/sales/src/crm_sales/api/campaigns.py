"""``crm.sales.v1.CampaignService``: requests in, campaign use cases
(:mod:`crm_sales.use_cases.campaigns`, :mod:`crm_sales.use_cases.campaign_interactions`),
responses out; and the conversion of its requests into domain inputs.

Unary requests arrive validated against the proto rules. The interaction stream is read with
``context.read()``, which validates each item as it is read: an item the rules refuse raises
``InvalidArgument`` for that item only, and the handler counts it and reads on, so one bad
item never fails the stream.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

import grpc

from crm.sales.v1 import campaigns_pb2 as pb
from crm.sales.v1 import campaigns_pb2_grpc
from crm_platform.context import current_call
from crm_platform.errors import InvalidArgument
from crm_platform.idempotency import IdempotentRequest
from crm_sales import campaigns_contract as contract
from crm_sales.domain.campaign import (
    CampaignChannel,
    CampaignInput,
    CampaignStatus,
    CostInput,
    IngestRefusal,
    InteractionInput,
    InteractionKind,
)
from crm_sales.use_cases.campaign_interactions import CampaignInteractions, IngestOutcome
from crm_sales.use_cases.campaigns import COST_OPERATION, OPERATION, Campaigns

Context = Any  # grpc.aio.ServicerContext (for the stream: the validating one of the interceptor)


def campaign_input(message: pb.Campaign) -> CampaignInput:
    """The caller-settable fields of a campaign message."""
    return CampaignInput(
        name=message.name,
        channel=contract.enum_from_pb(CampaignChannel, message.channel),
        budget_minor=message.budget_minor,
        currency=message.currency,
        target_segment=message.target_segment,
    )


def cost_input(message: pb.CampaignCost) -> CostInput:
    """A cost entry as given."""
    return CostInput(
        amount_minor=message.amount_minor,
        currency=message.currency,
        cost_date=message.cost_date,
        description=message.description,
    )


def interaction_input(message: pb.CampaignInteraction) -> InteractionInput:
    """A stream item as given (an unset occur_time: ``None``); ``InvalidArgument`` for an
    occur_time outside the Timestamp range (years 1 to 9999, nanos below 10^9)."""
    occur_time = None
    if message.HasField("occur_time"):
        try:
            occur_time = message.occur_time.ToDatetime(tzinfo=UTC)
        except ValueError as exc:
            raise InvalidArgument.single(
                "occur_time", f"is not a valid timestamp ({exc})"
            ) from None
    return InteractionInput(
        campaign_id=message.campaign_id,
        contact_id=message.contact_id,
        kind=contract.enum_from_pb(InteractionKind, message.kind),
        external_id=message.external_id,
        occur_time=occur_time,
    )


def summary_to_pb(outcome: IngestOutcome) -> pb.IngestSummary:
    """The stream's summary."""
    return pb.IngestSummary(
        received=outcome.received,
        accepted=outcome.accepted,
        duplicates=outcome.duplicates,
        refused=sum(outcome.refused.values()),
        refused_by_reason=[
            pb.IngestRefusalCount(
                reason=contract.enum_to_pb(reason),  # type: ignore[arg-type]
                count=outcome.refused[reason],
            )
            for reason in IngestRefusal
            if outcome.refused[reason]
        ],
        errors=[
            pb.IngestItemError(
                index=e.index,
                reason=contract.enum_to_pb(e.reason),  # type: ignore[arg-type]
                field_violations=[
                    pb.IngestFieldViolation(field=v.field, description=v.description)
                    for v in e.violations
                ],
                message=e.message,
            )
            for e in outcome.errors
        ],
        errors_truncated=outcome.errors_truncated,
        lead_touches=outcome.lead_touches,
    )


class CampaignService(campaigns_pb2_grpc.CampaignServiceServicer):
    """The handlers: a request becomes domain inputs and one use case call, its result the
    response."""

    def __init__(self, campaigns: Campaigns, interactions: CampaignInteractions) -> None:
        self.campaigns = campaigns
        self.interactions = interactions

    async def CreateCampaign(
        self, request: pb.CreateCampaignRequest, context: Context
    ) -> pb.CreateCampaignResponse:
        call = current_call()
        saved = await self.campaigns.create(
            call,
            campaign_input(request.campaign),
            IdempotentRequest.of(call.tenant_id, OPERATION, request.request_id, request),
        )
        return pb.CreateCampaignResponse(campaign=contract.campaign_to_pb(saved))

    async def GetCampaign(
        self, request: pb.GetCampaignRequest, context: Context
    ) -> pb.GetCampaignResponse:
        found = await self.campaigns.get(current_call().tenant_id, request.id)
        return pb.GetCampaignResponse(campaign=contract.campaign_to_pb(found))

    async def ListCampaigns(
        self, request: pb.ListCampaignsRequest, context: Context
    ) -> pb.ListCampaignsResponse:
        filters: dict[str, str] = {}
        if (status := contract.enum_from_pb(CampaignStatus, request.status)) is not None:
            filters["status"] = status.value
        if (channel := contract.enum_from_pb(CampaignChannel, request.channel)) is not None:
            filters["channel"] = channel.value
        found, token = await self.campaigns.list_campaigns(
            current_call().tenant_id, filters, request.page_size, request.page_token
        )
        return pb.ListCampaignsResponse(
            campaigns=[contract.campaign_to_pb(c) for c in found], next_page_token=token
        )

    async def UpdateCampaign(
        self, request: pb.UpdateCampaignRequest, context: Context
    ) -> pb.UpdateCampaignResponse:
        saved = await self.campaigns.update(
            current_call(),
            request.campaign.id,
            campaign_input(request.campaign),
            list(request.update_mask.paths),
            request.expected_version or None,
        )
        return pb.UpdateCampaignResponse(campaign=contract.campaign_to_pb(saved))

    async def ActivateCampaign(
        self, request: pb.ActivateCampaignRequest, context: Context
    ) -> pb.ActivateCampaignResponse:
        saved = await self.campaigns.activate(
            current_call(), request.id, request.expected_version or None
        )
        return pb.ActivateCampaignResponse(campaign=contract.campaign_to_pb(saved))

    async def CompleteCampaign(
        self, request: pb.CompleteCampaignRequest, context: Context
    ) -> pb.CompleteCampaignResponse:
        saved = await self.campaigns.complete(
            current_call(), request.id, request.expected_version or None
        )
        return pb.CompleteCampaignResponse(campaign=contract.campaign_to_pb(saved))

    async def CancelCampaign(
        self, request: pb.CancelCampaignRequest, context: Context
    ) -> pb.CancelCampaignResponse:
        saved = await self.campaigns.cancel(
            current_call(), request.id, request.reason, request.expected_version or None
        )
        return pb.CancelCampaignResponse(campaign=contract.campaign_to_pb(saved))

    async def RecordCampaignCost(
        self, request: pb.RecordCampaignCostRequest, context: Context
    ) -> pb.RecordCampaignCostResponse:
        call = current_call()
        request_log = IdempotentRequest.of(
            call.tenant_id, COST_OPERATION, request.request_id, request
        )
        assert request_log is not None  # request_id is required by the proto rules
        campaign, cost = await self.campaigns.record_cost(
            call,
            request.campaign_id,
            cost_input(request.cost),
            request_log,
            request.expected_version or None,
        )
        return pb.RecordCampaignCostResponse(
            campaign=contract.campaign_to_pb(campaign), cost=contract.cost_to_pb(cost)
        )

    async def IngestCampaignInteractions(
        self, request_iterator: object, context: Context
    ) -> pb.IngestSummary:
        stream = self.interactions.stream(current_call())
        index = 0
        while True:
            try:
                item = await context.read()
                if item is grpc.aio.EOF:  # type: ignore[attr-defined]  # missing in the stubs
                    break
                given = interaction_input(item)
            except InvalidArgument as invalid:  # this item only: counted, and the stream goes on
                stream.refuse_invalid(index, invalid.violations, invalid.message)
                index += 1
                continue
            await stream.add(index, given)
            index += 1
        return summary_to_pb(await stream.finish())
