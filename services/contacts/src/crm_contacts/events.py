"""The events the contacts service publishes (``crm.contacts.v1`` events), one per change."""

from __future__ import annotations

from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message

from crm.contacts.v1 import events_pb2 as events
from crm_contacts import contract
from crm_contacts.domain.contact import Contact, ContactUpdate
from crm_contacts.domain.organization import Organization, OrganizationUpdate
from crm_platform.context import CallContext
from crm_platform.events import Event

SOURCE = "/crm/contacts"


def _contact_event(payload: Message, contact: Contact, call: CallContext) -> Event:
    # Key = the contact id: every event about this customer lands on one partition.
    return Event.of(
        payload,
        source=SOURCE,
        subject=f"contacts/{contact.id}",
        key=contact.id,
        call=call,
        time=contact.update_time,
    )


def _organization_event(payload: Message, organization: Organization, call: CallContext) -> Event:
    # Organisations are not customers: keyed by their own id (documented exception).
    return Event.of(
        payload,
        source=SOURCE,
        subject=f"organizations/{organization.id}",
        key=organization.id,
        call=call,
        time=organization.update_time,
    )


def contact_created(contact: Contact, call: CallContext) -> Event:
    """``ContactCreated`` for a new contact."""
    payload = events.ContactCreated(contact=contract.contact_to_pb(contact))
    return _contact_event(payload, contact, call)


def contact_updated(update: ContactUpdate, previous_version: int, call: CallContext) -> Event:
    """``ContactUpdated`` for a change of the fields ``update`` names."""
    payload = events.ContactUpdated(
        contact=contract.contact_to_pb(update.contact),
        changed_fields=FieldMask(paths=update.changed_paths),
        previous_version=previous_version,
    )
    return _contact_event(payload, update.contact, call)


def organization_created(organization: Organization, call: CallContext) -> Event:
    """``OrganizationCreated`` for a new organisation."""
    payload = events.OrganizationCreated(organization=contract.organization_to_pb(organization))
    return _organization_event(payload, organization, call)


def organization_updated(
    update: OrganizationUpdate, previous_version: int, call: CallContext
) -> Event:
    """``OrganizationUpdated`` for a change of the fields ``update`` names."""
    payload = events.OrganizationUpdated(
        organization=contract.organization_to_pb(update.organization),
        changed_fields=FieldMask(paths=update.changed_paths),
        previous_version=previous_version,
    )
    return _organization_event(payload, update.organization, call)
