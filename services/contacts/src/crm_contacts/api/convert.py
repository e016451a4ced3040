"""Protobuf messages ↔ domain types. Enum values map by member name (``TIER_GOLD`` ↔ ``GOLD``)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

from google.protobuf.timestamp_pb2 import Timestamp

from crm.contacts.v1 import contacts_pb2 as pb
from crm_contacts.domain.contact import Consent, ConsentInput, Contact, ContactInput, LifecycleStage
from crm_contacts.domain.identity import Identity, IdentityInput, IdentityKind, SocialNetwork
from crm_contacts.domain.organization import Organization, OrganizationInput
from crm_contacts.domain.tier import Tier

E = TypeVar("E", bound=StrEnum)

_PREFIX = {
    LifecycleStage: "LIFECYCLE_STAGE_",
    Tier: "VALUE_TIER_",
    IdentityKind: "IDENTITY_KIND_",
    SocialNetwork: "SOCIAL_NETWORK_",
}
_PB_ENUM: dict[type[StrEnum], Any] = {
    LifecycleStage: pb.LifecycleStage,
    Tier: pb.ValueTier,
    IdentityKind: pb.IdentityKind,
    SocialNetwork: pb.SocialNetwork,
}


def enum_from_pb(domain_type: type[E], value: int) -> E | None:
    """The domain member for a protobuf enum number; ``None`` for UNSPECIFIED (not given)."""
    if value == 0:
        return None
    name: str = _PB_ENUM[domain_type].Name(value)
    return domain_type(name.removeprefix(_PREFIX[domain_type]))


def enum_to_pb(member: StrEnum | None) -> int:
    """The protobuf enum number of a domain member (0 for ``None``)."""
    if member is None:
        return 0
    prefix = _PREFIX[type(member)]
    return int(_PB_ENUM[type(member)].Value(prefix + member.value))


def timestamp(value: datetime | None) -> Timestamp | None:
    """A protobuf Timestamp, or ``None`` for an unset time."""
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


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


def identity_to_pb(identity: Identity) -> pb.Identity:
    """The API form of an identity."""
    return pb.Identity(
        kind=enum_to_pb(identity.kind),  # type: ignore[arg-type]
        value=identity.value,
        network=enum_to_pb(identity.network),  # type: ignore[arg-type]
        primary=identity.primary,
        verified=identity.verified,
    )


def consent_to_pb(consent: Consent) -> pb.Consent:
    """The API form of the consent flags."""
    return pb.Consent(
        email_marketing=consent.email_marketing,
        sms_marketing=consent.sms_marketing,
        phone_marketing=consent.phone_marketing,
        data_processing=consent.data_processing,
        update_time=timestamp(consent.update_time),
    )


def contact_to_pb(contact: Contact) -> pb.Contact:
    """The API form of a contact."""
    return pb.Contact(
        id=contact.id,
        tenant_id=contact.tenant_id,
        given_name=contact.given_name,
        family_name=contact.family_name,
        display_name=contact.display_name,
        organization_id=contact.organization_id,
        job_title=contact.job_title,
        lifecycle_stage=enum_to_pb(contact.lifecycle_stage),  # type: ignore[arg-type]
        tier=enum_to_pb(contact.tier),  # type: ignore[arg-type]
        segments=list(contact.segments),
        owner_id=contact.owner_id,
        consent=consent_to_pb(contact.consent),
        custom_attributes=dict(contact.custom_attributes),
        identities=[identity_to_pb(identity) for identity in contact.identities],
        version=contact.version,
        create_time=timestamp(contact.create_time),
        update_time=timestamp(contact.update_time),
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


def organization_to_pb(organization: Organization) -> pb.Organization:
    """The API form of an organisation."""
    return pb.Organization(
        id=organization.id,
        tenant_id=organization.tenant_id,
        name=organization.name,
        domain=organization.domain,
        industry=organization.industry,
        tier=enum_to_pb(organization.tier),  # type: ignore[arg-type]
        owner_id=organization.owner_id,
        custom_attributes=dict(organization.custom_attributes),
        version=organization.version,
        create_time=timestamp(organization.create_time),
        update_time=timestamp(organization.update_time),
    )
