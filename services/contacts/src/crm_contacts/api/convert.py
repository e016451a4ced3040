"""Requests → domain inputs. Enum values map by member name (``TIER_GOLD`` ↔ ``GOLD``, see
:mod:`crm_contacts.contract`, which also turns the domain into its protobuf form)."""

from __future__ import annotations

from crm.contacts.v1 import contacts_pb2 as pb
from crm_contacts.contract import enum_from_pb
from crm_contacts.domain.contact import ConsentInput, ContactInput, LifecycleStage
from crm_contacts.domain.identity import IdentityInput, IdentityKind, SocialNetwork
from crm_contacts.domain.organization import OrganizationInput
from crm_contacts.domain.tier import Tier

# --- contacts -------------------------------------------------------------------------------


def identity_input(message: pb.Identity) -> IdentityInput:
    """Caller input for one identity."""
    return IdentityInput(
        kind=enum_from_pb(IdentityKind, message.kind),
        value=message.value,
        network=enum_from_pb(SocialNetwork, message.network),
        primary=message.primary,
        verified=message.verified,
    )


def contact_input(message: pb.Contact) -> ContactInput:
    """Caller input for a contact (create body or update changes)."""
    consent = message.consent
    return ContactInput(
        given_name=message.given_name,
        family_name=message.family_name,
        display_name=message.display_name,
        organization_id=message.organization_id,
        job_title=message.job_title,
        lifecycle_stage=enum_from_pb(LifecycleStage, message.lifecycle_stage),
        tier=enum_from_pb(Tier, message.tier),
        segments=list(message.segments),
        owner_id=message.owner_id,
        consent=ConsentInput(
            email_marketing=consent.email_marketing,
            sms_marketing=consent.sms_marketing,
            phone_marketing=consent.phone_marketing,
            data_processing=consent.data_processing,
        ),
        custom_attributes=dict(message.custom_attributes),
        identities=[identity_input(item) for item in message.identities],
    )


# --- organisations --------------------------------------------------------------------------


def organization_input(message: pb.Organization) -> OrganizationInput:
    """Caller input for an organisation."""
    return OrganizationInput(
        name=message.name,
        domain=message.domain,
        industry=message.industry,
        tier=enum_from_pb(Tier, message.tier),
        owner_id=message.owner_id,
        custom_attributes=dict(message.custom_attributes),
    )
