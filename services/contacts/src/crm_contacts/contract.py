"""The contacts service's domain in its protobuf form: enum mappings and domain → protobuf,
shared by the API's responses (:mod:`crm_contacts.api`) and the published events
(:mod:`crm_contacts.events`). Requests are read in :mod:`crm_contacts.api.convert`."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

from google.protobuf.timestamp_pb2 import Timestamp

from crm.contacts.v1 import contacts_pb2 as pb
from crm_contacts.domain.contact import Consent, Contact, LifecycleStage
from crm_contacts.domain.identity import Identity, IdentityKind, SocialNetwork
from crm_contacts.domain.organization import Organization
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
