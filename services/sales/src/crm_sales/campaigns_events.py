"""The events of campaigns and their interactions (``crm.sales.v1``, payloads in
``crm/sales/v1/campaigns_events.proto``).

Keys (documented in that file's header): a campaign's events carry the campaign id (a campaign
is about no single customer: it reaches a segment); ``CampaignInteractionRecorded`` carries the
interaction's contact id; ``LeadCampaignTouched`` the lead's ``event_key``, on the partition of
the lead's other events.
"""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message

from crm.sales.v1 import campaigns_events_pb2 as events
from crm_platform.context import CallContext
from crm_platform.events import Event
from crm_sales import campaigns_contract as contract
from crm_sales import contract as sales_contract
from crm_sales.domain.campaign import (
    Campaign,
    CampaignCost,
    CampaignStatus,
    CampaignTouch,
    CampaignUpdate,
    Interaction,
)
from crm_sales.domain.lead import Lead
from crm_sales.events import sales_event


def _campaign_event(payload: Message, campaign: Campaign, call: CallContext) -> Event:
    # A campaign is about no single customer: keyed by its own id (documented exception).
    return sales_event(payload, campaign.subject, campaign.id, call, campaign.update_time)


def campaign_created(campaign: Campaign, call: CallContext) -> Event:
    """``CampaignCreated``."""
    payload = events.CampaignCreated(campaign=contract.campaign_to_pb(campaign))
    return _campaign_event(payload, campaign, call)


def campaign_updated(update: CampaignUpdate, previous_version: int, call: CallContext) -> Event:
    """``CampaignUpdated`` for a change of the fields ``update`` names."""
    payload = events.CampaignUpdated(
        campaign=contract.campaign_to_pb(update.campaign),
        changed_fields=FieldMask(paths=update.changed_paths),
        previous_version=previous_version,
    )
    return _campaign_event(payload, update.campaign, call)


def campaign_status_changed(
    campaign: Campaign, previous_status: CampaignStatus, previous_version: int, call: CallContext
) -> Event:
    """``CampaignStatusChanged``."""
    payload = events.CampaignStatusChanged(
        campaign=contract.campaign_to_pb(campaign),
        previous_status=contract.enum_to_pb(previous_status),  # type: ignore[arg-type]
        previous_version=previous_version,
    )
    return _campaign_event(payload, campaign, call)


def campaign_cost_recorded(
    campaign: Campaign, cost: CampaignCost, previous_version: int, call: CallContext
) -> Event:
    """``CampaignCostRecorded``."""
    payload = events.CampaignCostRecorded(
        campaign=contract.campaign_to_pb(campaign),
        cost=contract.cost_to_pb(cost),
        previous_version=previous_version,
    )
    return _campaign_event(payload, campaign, call)


def interaction_recorded(
    interaction: Interaction, touched_lead_ids: Sequence[str], call: CallContext
) -> Event:
    """``CampaignInteractionRecorded``, keyed by the contact, at the interaction's time."""
    payload = events.CampaignInteractionRecorded(
        interaction=contract.interaction_to_pb(interaction),
        touched_lead_ids=list(touched_lead_ids),
    )
    return sales_event(
        payload, interaction.subject, interaction.contact_id, call, interaction.occur_time
    )


def lead_campaign_touched(
    lead: Lead, touch: CampaignTouch, previous_version: int, call: CallContext
) -> Event:
    """``LeadCampaignTouched``, on the lead's key, at the touch's time."""
    payload = events.LeadCampaignTouched(
        lead=sales_contract.lead_to_pb(lead),
        touch=contract.touch_to_pb(touch),
        previous_version=previous_version,
    )
    return sales_event(payload, lead.subject, lead.event_key, call, touch.touch_time)
