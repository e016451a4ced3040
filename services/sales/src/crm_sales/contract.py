"""The sales service's domain in its protobuf form: enum mappings and domain → protobuf, shared
by the API's responses (:mod:`crm_sales.api`) and the published events (:mod:`crm_sales.events`).
Requests are read in :mod:`crm_sales.api.convert`."""

from __future__ import annotations

from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from crm.sales.v1 import sales_pb2 as pb
from crm_platform.proto_enums import ProtoEnums
from crm_sales.campaigns_contract import touch_to_pb
from crm_sales.domain.lead import Lead, LeadSource, LeadStatus
from crm_sales.domain.opportunity import BuyingRole, Opportunity, StageChange
from crm_sales.domain.pipeline import Pipeline, StageKind
from crm_sales.domain.product import Product
from crm_sales.domain.quote import Quote, QuoteStatus
from crm_sales.territories_contract import assignment_to_pb, profile_to_pb

_ENUMS = ProtoEnums(
    pb.DESCRIPTOR,
    {
        StageKind: "STAGE_KIND_",
        BuyingRole: "BUYING_ROLE_",
        LeadSource: "LEAD_SOURCE_",
        LeadStatus: "LEAD_STATUS_",
        QuoteStatus: "QUOTE_STATUS_",
    },
)
enum_from_pb = _ENUMS.from_pb
enum_to_pb = _ENUMS.to_pb


def timestamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def pipeline_to_pb(pipeline: Pipeline) -> pb.Pipeline:
    """The API form of a pipeline version."""
    return pb.Pipeline(
        id=pipeline.id,
        tenant_id=pipeline.tenant_id,
        name=pipeline.name,
        stages=[
            pb.Stage(
                id=s.id,
                name=s.name,
                win_probability_percent=s.win_probability_percent,
                kind=enum_to_pb(s.kind),  # type: ignore[arg-type]
            )
            for s in pipeline.stages
        ],
        version=pipeline.version,
        create_time=timestamp(pipeline.create_time),
        update_time=timestamp(pipeline.update_time),
    )


def stage_change_to_pb(change: StageChange) -> pb.StageChange:
    """The API form of a stage change."""
    return pb.StageChange(
        from_stage_id=change.from_stage_id,
        to_stage_id=change.to_stage_id,
        to_kind=enum_to_pb(change.to_kind),  # type: ignore[arg-type]
        win_probability_percent=change.win_probability_percent,
        change_time=timestamp(change.change_time),
        actor=change.actor,
        reason=change.reason,
    )


def opportunity_to_pb(opportunity: Opportunity) -> pb.Opportunity:
    """The API form of an opportunity."""
    o = opportunity
    return pb.Opportunity(
        id=o.id,
        tenant_id=o.tenant_id,
        name=o.name,
        account_id=o.account_id,
        primary_contact_id=o.primary_contact_id,
        buying_centre=[
            pb.BuyingCentreMember(
                contact_id=m.contact_id,
                roles=[enum_to_pb(r) for r in m.roles],  # type: ignore[misc]
            )
            for m in o.buying_centre
        ],
        amount_minor=o.amount_minor,
        currency=o.currency,
        expected_close_date=o.expected_close_date,
        pipeline_id=o.pipeline_id,
        pipeline_version=o.pipeline_version,
        stage_id=o.stage_id,
        status=enum_to_pb(o.status),  # type: ignore[arg-type]
        owner_id=o.owner_id,
        source_lead_id=o.source_lead_id,
        campaign_id=o.campaign_id,
        line_items=[
            pb.LineItem(
                product_id=i.product_id,
                description=i.description,
                quantity=i.quantity,
                unit_price_minor=i.unit_price_minor,
            )
            for i in o.line_items
        ],
        stage_history=[stage_change_to_pb(c) for c in o.stage_history],
        close_reason=o.close_reason,
        close_time=timestamp(o.close_time),
        version=o.version,
        create_time=timestamp(o.create_time),
        update_time=timestamp(o.update_time),
        account_profile=profile_to_pb(o.account_profile),
        team_id=o.territory.team_id if o.territory else "",
        territory_id=o.territory.territory_id if o.territory else "",
        territory_assignment=assignment_to_pb(o.territory),
    )


def lead_to_pb(lead: Lead) -> pb.Lead:
    """The API form of a lead."""
    return pb.Lead(
        id=lead.id,
        tenant_id=lead.tenant_id,
        contact_id=lead.contact_id,
        person_name=lead.person_name,
        company_name=lead.company_name,
        email=lead.email,
        phone=lead.phone,
        source=enum_to_pb(lead.source),  # type: ignore[arg-type]
        campaign_id=lead.campaign_id,
        owner_id=lead.owner_id,
        status=enum_to_pb(lead.status),  # type: ignore[arg-type]
        disqualify_reason=lead.disqualify_reason,
        origin_mention_id=lead.origin_mention_id,
        converted_contact_id=lead.converted_contact_id,
        converted_organization_id=lead.converted_organization_id,
        converted_opportunity_id=lead.converted_opportunity_id,
        version=lead.version,
        create_time=timestamp(lead.create_time),
        update_time=timestamp(lead.update_time),
        campaign_touches=[touch_to_pb(t) for t in lead.campaign_touches],
        company_profile=profile_to_pb(lead.company_profile),
        team_id=lead.territory.team_id if lead.territory else "",
        territory_id=lead.territory.territory_id if lead.territory else "",
        territory_assignment=assignment_to_pb(lead.territory),
    )


def product_to_pb(product: Product) -> pb.Product:
    """The API form of a product."""
    return pb.Product(
        id=product.id,
        tenant_id=product.tenant_id,
        sku=product.sku,
        name=product.name,
        active=product.active,
        prices=[
            pb.Price(currency=p.currency, unit_price_minor=p.unit_price_minor)
            for p in product.prices
        ],
        version=product.version,
        create_time=timestamp(product.create_time),
        update_time=timestamp(product.update_time),
    )


def quote_to_pb(quote: Quote) -> pb.Quote:
    """The API form of a quote revision."""
    return pb.Quote(
        id=quote.id,
        tenant_id=quote.tenant_id,
        opportunity_id=quote.opportunity_id,
        revision=quote.revision,
        currency=quote.currency,
        lines=[
            pb.QuoteLine(
                product_id=line.product_id,
                sku=line.sku,
                name=line.name,
                quantity=line.quantity,
                unit_price_minor=line.unit_price_minor,
                discount_basis_points=line.discount_basis_points,
                tax_rate_basis_points=line.tax_rate_basis_points,
                net_minor=line.net_minor,
                tax_minor=line.tax_minor,
            )
            for line in quote.lines
        ],
        net_total_minor=quote.totals.net_minor,
        tax_total_minor=quote.totals.tax_minor,
        total_minor=quote.totals.total_minor,
        valid_until=timestamp(quote.valid_until),
        status=enum_to_pb(quote.status),  # type: ignore[arg-type]
        reason=quote.reason,
        send_time=timestamp(quote.send_time),
        close_time=timestamp(quote.close_time),
        version=quote.version,
        create_time=timestamp(quote.create_time),
        update_time=timestamp(quote.update_time),
    )
