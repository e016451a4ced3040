"""Requests of ``crm.sales.v1.SalesService`` → domain inputs (responses and events are built in
:mod:`crm_sales.contract`)."""

from __future__ import annotations

from datetime import UTC

from crm.sales.v1 import sales_pb2 as pb
from crm_sales.contract import enum_from_pb
from crm_sales.domain.lead import LeadInput, LeadSource
from crm_sales.domain.opportunity import (
    BuyingCentreMember,
    BuyingRole,
    LineItem,
    OpportunityInput,
)
from crm_sales.domain.pipeline import PipelineInput, Stage, StageKind
from crm_sales.domain.product import Price, ProductInput
from crm_sales.domain.quote import LineInput, QuoteInput
from crm_sales.territories_contract import profile_from_pb


def stage_from_pb(message: pb.Stage) -> Stage:
    """A stage as given (an UNSPECIFIED kind is refused by the proto rules)."""
    kind = enum_from_pb(StageKind, message.kind) or StageKind.OPEN
    return Stage(message.id, message.name, message.win_probability_percent, kind)


def pipeline_input(message: pb.Pipeline) -> PipelineInput:
    """The caller-settable fields of a pipeline message."""
    return PipelineInput(message.name, tuple(stage_from_pb(s) for s in message.stages))


def opportunity_input(message: pb.Opportunity) -> OpportunityInput:
    """The caller-settable fields of an opportunity message."""
    return OpportunityInput(
        name=message.name,
        account_id=message.account_id,
        primary_contact_id=message.primary_contact_id,
        buying_centre=tuple(
            BuyingCentreMember(
                m.contact_id,
                tuple(r for v in m.roles if (r := enum_from_pb(BuyingRole, v)) is not None),
            )
            for m in message.buying_centre
        ),
        amount_minor=message.amount_minor,
        currency=message.currency,
        expected_close_date=message.expected_close_date,
        pipeline_id=message.pipeline_id,
        stage_id=message.stage_id,
        owner_id=message.owner_id,
        source_lead_id=message.source_lead_id,
        campaign_id=message.campaign_id,
        line_items=tuple(
            LineItem(i.product_id, i.description, i.quantity, i.unit_price_minor)
            for i in message.line_items
        ),
        account_profile=profile_from_pb(message.account_profile),
    )


def lead_input(message: pb.Lead) -> LeadInput:
    """The caller-settable fields of a lead message."""
    return LeadInput(
        contact_id=message.contact_id,
        person_name=message.person_name,
        company_name=message.company_name,
        email=message.email,
        phone=message.phone,
        source=enum_from_pb(LeadSource, message.source),
        campaign_id=message.campaign_id,
        owner_id=message.owner_id,
        origin_mention_id=message.origin_mention_id,
        company_profile=profile_from_pb(message.company_profile),
    )


def product_input(message: pb.Product) -> ProductInput:
    """The caller-settable fields of a product message."""
    return ProductInput(
        sku=message.sku,
        name=message.name,
        active=message.active,
        prices=tuple(Price(p.currency, p.unit_price_minor) for p in message.prices),
    )


def quote_input(message: pb.Quote) -> QuoteInput:
    """The caller-settable fields of a quote message (an unset unit price: the price book's;
    an unset ``valid_until``: ``None``; it is kept to the millisecond, as stored)."""
    valid_until = None
    if message.HasField("valid_until"):
        given = message.valid_until.ToDatetime(tzinfo=UTC)
        valid_until = given.replace(microsecond=given.microsecond // 1000 * 1000)
    return QuoteInput(
        opportunity_id=message.opportunity_id,
        currency=message.currency,
        valid_until=valid_until,
        lines=tuple(
            LineInput(
                product_id=line.product_id,
                quantity=line.quantity,
                unit_price_minor=(
                    line.unit_price_minor if line.HasField("unit_price_minor") else None
                ),
                discount_basis_points=line.discount_basis_points,
                tax_rate_basis_points=line.tax_rate_basis_points,
            )
            for line in message.lines
        ),
    )
