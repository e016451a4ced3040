"""Campaigns in their protobuf form (``crm/sales/v1/campaigns.proto``): enum mappings and domain
→ protobuf, shared by the campaign API's responses and the campaign events. Requests are read in
:mod:`crm_sales.api.campaigns`.

Kept apart from :mod:`crm_sales.contract` (which uses :func:`touch_to_pb` for a lead's touches)
and free of it, so the two import in one direction only.
"""

from __future__ import annotations

from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from crm.sales.v1 import campaigns_pb2 as cpb
from crm_platform.proto_enums import ProtoEnums
from crm_sales.domain.campaign import (
    Campaign,
    CampaignChannel,
    CampaignCost,
    CampaignStatus,
    CampaignTouch,
    IngestRefusal,
    Interaction,
    InteractionKind,
)

_ENUMS = ProtoEnums(
    cpb.DESCRIPTOR,
    {
        CampaignChannel: "CAMPAIGN_CHANNEL_",
        CampaignStatus: "CAMPAIGN_STATUS_",
        InteractionKind: "CAMPAIGN_INTERACTION_KIND_",
        IngestRefusal: "INGEST_REFUSAL_",
    },
    names={InteractionKind: "CampaignInteractionKind"},
)
enum_from_pb = _ENUMS.from_pb
enum_to_pb = _ENUMS.to_pb


def _timestamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def campaign_to_pb(campaign: Campaign) -> cpb.Campaign:
    """The API form of a campaign."""
    c = campaign
    return cpb.Campaign(
        id=c.id,
        tenant_id=c.tenant_id,
        name=c.name,
        channel=enum_to_pb(c.channel),  # type: ignore[arg-type]
        budget_minor=c.budget_minor,
        currency=c.currency,
        target_segment=c.target_segment,
        status=enum_to_pb(c.status),  # type: ignore[arg-type]
        cancel_reason=c.cancel_reason,
        cost_total_minor=c.cost_total_minor,
        cost_entry_count=c.cost_entry_count,
        activate_time=_timestamp(c.activate_time),
        close_time=_timestamp(c.close_time),
        version=c.version,
        create_time=_timestamp(c.create_time),
        update_time=_timestamp(c.update_time),
    )


def cost_to_pb(cost: CampaignCost) -> cpb.CampaignCost:
    """The API form of a cost entry."""
    return cpb.CampaignCost(
        id=cost.id,
        campaign_id=cost.campaign_id,
        amount_minor=cost.amount_minor,
        currency=cost.currency,
        cost_date=cost.cost_date,
        description=cost.description,
        record_time=_timestamp(cost.record_time),
    )


def interaction_to_pb(interaction: Interaction) -> cpb.CampaignInteraction:
    """The recorded form of an interaction."""
    i = interaction
    return cpb.CampaignInteraction(
        id=i.id,
        campaign_id=i.campaign_id,
        contact_id=i.contact_id,
        kind=enum_to_pb(i.kind),  # type: ignore[arg-type]
        external_id=i.external_id,
        occur_time=_timestamp(i.occur_time),
        channel=enum_to_pb(i.channel),  # type: ignore[arg-type]
        record_time=_timestamp(i.record_time),
    )


def touch_to_pb(touch: CampaignTouch) -> cpb.CampaignTouch:
    """The API form of a lead's campaign touch."""
    return cpb.CampaignTouch(
        campaign_id=touch.campaign_id,
        interaction_kind=enum_to_pb(touch.interaction_kind),  # type: ignore[arg-type]
        interaction_id=touch.interaction_id,
        touch_time=_timestamp(touch.touch_time),
        lead_created=touch.lead_created,
    )
