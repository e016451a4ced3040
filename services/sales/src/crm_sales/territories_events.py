"""The events of the territories (``crm.sales.v1``, territories_events.proto).

Keys: a territory rule's events carry the rule id — a rule is about no customer, so there is
no contact id to key it by (the documented exception, as for pipelines and products). A lead's
or an opportunity's assignment carries the record's ``event_key`` (the contact id where there
is one), in order with the record's other events.
"""

from __future__ import annotations

from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message

from crm.sales.v1 import territories_events_pb2 as events
from crm_platform.context import CallContext
from crm_platform.events import Event
from crm_sales import contract
from crm_sales.domain.lead import Lead
from crm_sales.domain.opportunity import Opportunity
from crm_sales.domain.territories import TerritoryRule, TerritoryRuleRevision
from crm_sales.events import sales_event
from crm_sales.territories_contract import assignment_to_pb, rule_to_pb


def _rule_event(payload: Message, rule: TerritoryRule, call: CallContext) -> Event:
    return sales_event(payload, rule.subject, rule.rule_id, call, rule.update_time)


def rule_created(rule: TerritoryRule, call: CallContext) -> Event:
    """``TerritoryRuleCreated``."""
    return _rule_event(events.TerritoryRuleCreated(rule=rule_to_pb(rule)), rule, call)


def rule_updated(
    revision: TerritoryRuleRevision, previous_version: int, call: CallContext
) -> Event:
    """``TerritoryRuleUpdated`` for a new version."""
    payload = events.TerritoryRuleUpdated(
        rule=rule_to_pb(revision.rule),
        changed_fields=FieldMask(paths=revision.changed_paths),
        previous_version=previous_version,
    )
    return _rule_event(payload, revision.rule, call)


def rule_deleted(rule: TerritoryRule, previous_version: int, call: CallContext) -> Event:
    """``TerritoryRuleDeleted`` (``rule`` is the deletion version)."""
    payload = events.TerritoryRuleDeleted(rule=rule_to_pb(rule), previous_version=previous_version)
    return _rule_event(payload, rule, call)


def lead_territory_assigned(
    lead: Lead, previous_version: int, previous_owner_id: str, call: CallContext
) -> Event:
    """``LeadTerritoryAssigned`` on the lead's key."""
    payload = events.LeadTerritoryAssigned(
        lead=contract.lead_to_pb(lead),
        assignment=assignment_to_pb(lead.territory),
        previous_version=previous_version,
        previous_owner_id=previous_owner_id,
    )
    return sales_event(payload, lead.subject, lead.event_key, call, lead.update_time)


def opportunity_territory_assigned(
    opportunity: Opportunity, previous_version: int, previous_owner_id: str, call: CallContext
) -> Event:
    """``OpportunityTerritoryAssigned`` on the opportunity's key."""
    payload = events.OpportunityTerritoryAssigned(
        opportunity=contract.opportunity_to_pb(opportunity),
        assignment=assignment_to_pb(opportunity.territory),
        previous_version=previous_version,
        previous_owner_id=previous_owner_id,
    )
    return sales_event(
        payload, opportunity.subject, opportunity.event_key, call, opportunity.update_time
    )
