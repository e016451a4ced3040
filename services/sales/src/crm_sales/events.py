"""The events the sales service publishes (``crm.sales.v1``), one per change.

Keys (documented in proto/crm/sales/v1/events.proto): an opportunity's or lead's events carry
the ``event_key`` it got on create (the contact id where there is one; for an account deal with
no single contact the organisation id); a pipeline's and a product's events carry their own id;
a quote's events carry its opportunity's key (``Quote.event_key``), on the deal's partition.
"""

from __future__ import annotations

from datetime import datetime

from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message

from crm.sales.v1 import events_pb2 as events
from crm_platform.context import CallContext
from crm_platform.events import Event
from crm_sales import contract
from crm_sales.domain.lead import Lead, LeadStatus, LeadUpdate
from crm_sales.domain.opportunity import Opportunity, OpportunityUpdate, StageChange
from crm_sales.domain.pipeline import Pipeline, PipelineRevision, StageKind
from crm_sales.domain.product import Product, ProductUpdate
from crm_sales.domain.quote import Quote, QuoteChange, QuoteStatus

SOURCE = "/crm/sales"


def sales_event(
    payload: Message, subject: str, key: str, call: CallContext, time: datetime
) -> Event:
    """The envelope of every sales event: this service's source, the aggregate as subject, the
    key that orders it (the customer's, or a documented exception), the fact's time."""
    return Event.of(payload, source=SOURCE, subject=subject, key=key, call=call, time=time)


def _opportunity_event(payload: Message, opportunity: Opportunity, call: CallContext) -> Event:
    return sales_event(
        payload,
        f"opportunities/{opportunity.id}",
        opportunity.event_key,
        call,
        opportunity.update_time,
    )


def _lead_event(payload: Message, lead: Lead, call: CallContext) -> Event:
    return sales_event(payload, f"leads/{lead.id}", lead.event_key, call, lead.update_time)


def _pipeline_event(payload: Message, pipeline: Pipeline, call: CallContext) -> Event:
    # A pipeline is about no customer: keyed by its own id (documented exception).
    return sales_event(payload, f"pipelines/{pipeline.id}", pipeline.id, call, pipeline.update_time)


def pipeline_created(pipeline: Pipeline, call: CallContext) -> Event:
    """``PipelineCreated``."""
    payload = events.PipelineCreated(pipeline=contract.pipeline_to_pb(pipeline))
    return _pipeline_event(payload, pipeline, call)


def pipeline_updated(revision: PipelineRevision, previous_version: int, call: CallContext) -> Event:
    """``PipelineUpdated`` for a new version."""
    payload = events.PipelineUpdated(
        pipeline=contract.pipeline_to_pb(revision.pipeline),
        changed_fields=FieldMask(paths=revision.changed_paths),
        previous_version=previous_version,
    )
    return _pipeline_event(payload, revision.pipeline, call)


def opportunity_created(opportunity: Opportunity, call: CallContext) -> Event:
    """``OpportunityCreated``."""
    payload = events.OpportunityCreated(opportunity=contract.opportunity_to_pb(opportunity))
    return _opportunity_event(payload, opportunity, call)


def opportunity_updated(
    update: OpportunityUpdate, previous_version: int, call: CallContext
) -> Event:
    """``OpportunityUpdated`` for a change of the fields ``update`` names."""
    payload = events.OpportunityUpdated(
        opportunity=contract.opportunity_to_pb(update.opportunity),
        changed_fields=FieldMask(paths=update.changed_paths),
        previous_version=previous_version,
    )
    return _opportunity_event(payload, update.opportunity, call)


def opportunity_stage_event(
    opportunity: Opportunity,
    change: StageChange,
    previous_status: StageKind,
    previous_version: int,
    call: CallContext,
) -> Event:
    """The event of a stage change: ``OpportunityReopened`` out of a closed stage, else
    ``OpportunityWon`` / ``OpportunityLost`` into a closed one, else
    ``OpportunityStageChanged``."""
    kind: type[
        events.OpportunityStageChanged
        | events.OpportunityWon
        | events.OpportunityLost
        | events.OpportunityReopened
    ]
    if previous_status.closed:
        kind = events.OpportunityReopened
    elif change.to_kind is StageKind.WON:
        kind = events.OpportunityWon
    elif change.to_kind is StageKind.LOST:
        kind = events.OpportunityLost
    else:
        kind = events.OpportunityStageChanged
    payload = kind(
        opportunity=contract.opportunity_to_pb(opportunity),
        change=contract.stage_change_to_pb(change),
        previous_version=previous_version,
    )
    return _opportunity_event(payload, opportunity, call)


def lead_created(lead: Lead, call: CallContext) -> Event:
    """``LeadCreated``."""
    return _lead_event(events.LeadCreated(lead=contract.lead_to_pb(lead)), lead, call)


def lead_updated(update: LeadUpdate, previous_version: int, call: CallContext) -> Event:
    """``LeadUpdated`` for a change of the fields ``update`` names."""
    payload = events.LeadUpdated(
        lead=contract.lead_to_pb(update.lead),
        changed_fields=FieldMask(paths=update.changed_paths),
        previous_version=previous_version,
    )
    return _lead_event(payload, update.lead, call)


def lead_converted(
    lead: Lead, contact_created: bool, previous_version: int, call: CallContext
) -> Event:
    """``LeadConverted``."""
    payload = events.LeadConverted(
        lead=contract.lead_to_pb(lead),
        contact_created=contact_created,
        previous_version=previous_version,
    )
    return _lead_event(payload, lead, call)


def lead_status_changed(
    lead: Lead, previous_status: LeadStatus, previous_version: int, call: CallContext
) -> Event:
    """``LeadStatusChanged``."""
    payload = events.LeadStatusChanged(
        lead=contract.lead_to_pb(lead),
        previous_status=contract.enum_to_pb(previous_status),  # type: ignore[arg-type]
        previous_version=previous_version,
    )
    return _lead_event(payload, lead, call)


def _product_event(payload: Message, product: Product, call: CallContext) -> Event:
    # A product is about no customer: keyed by its own id (documented exception).
    return sales_event(payload, f"products/{product.id}", product.id, call, product.update_time)


def product_created(product: Product, call: CallContext) -> Event:
    """``ProductCreated``."""
    payload = events.ProductCreated(product=contract.product_to_pb(product))
    return _product_event(payload, product, call)


def product_updated(update: ProductUpdate, previous_version: int, call: CallContext) -> Event:
    """``ProductUpdated`` for a change of the fields ``update`` names."""
    payload = events.ProductUpdated(
        product=contract.product_to_pb(update.product),
        changed_fields=FieldMask(paths=update.changed_paths),
        previous_version=previous_version,
    )
    return _product_event(payload, update.product, call)


def _quote_event(payload: Message, quote: Quote, call: CallContext) -> Event:
    return sales_event(payload, f"quotes/{quote.id}", quote.event_key, call, quote.update_time)


def quote_created(quote: Quote, call: CallContext) -> Event:
    """``QuoteCreated``."""
    return _quote_event(events.QuoteCreated(quote=contract.quote_to_pb(quote)), quote, call)


def quote_updated(change: QuoteChange, previous_version: int, call: CallContext) -> Event:
    """``QuoteUpdated`` for a change of the fields ``change`` names."""
    payload = events.QuoteUpdated(
        quote=contract.quote_to_pb(change.quote),
        changed_fields=FieldMask(paths=change.changed_paths),
        previous_version=previous_version,
    )
    return _quote_event(payload, change.quote, call)


def quote_status_changed(
    quote: Quote, previous_status: QuoteStatus, previous_version: int, call: CallContext
) -> Event:
    """``QuoteStatusChanged`` (sent, accepted, rejected, expired)."""
    payload = events.QuoteStatusChanged(
        quote=contract.quote_to_pb(quote),
        previous_status=contract.enum_to_pb(previous_status),  # type: ignore[arg-type]
        previous_version=previous_version,
    )
    return _quote_event(payload, quote, call)
