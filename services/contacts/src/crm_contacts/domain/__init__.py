"""The contacts domain: contacts, organisations and identities, as plain Python.

Nothing here imports gRPC, protobuf or a database driver; the API layer converts messages to
these types and maps :mod:`crm_platform.errors` to status codes.
"""

from crm_contacts.domain._validation import InvalidValueError
from crm_contacts.domain.contact import (
    CONTACT_MASK,
    ILLEGAL_LIFECYCLE_TRANSITION,
    LIFECYCLE_TRANSITIONS,
    Consent,
    ConsentInput,
    Contact,
    ContactInput,
    ContactUpdate,
    LifecycleStage,
    can_move,
)
from crm_contacts.domain.domain_names import normalise_domain_name
from crm_contacts.domain.identity import (
    Identity,
    IdentityInput,
    IdentityKey,
    IdentityKind,
    SocialNetwork,
    check_phone_region,
    lookup_key,
    normalise_email,
    normalise_identity_value,
    normalise_phone,
    normalise_social_handle,
    parse_identity,
)
from crm_contacts.domain.organization import (
    ORGANIZATION_MASK,
    Organization,
    OrganizationInput,
    OrganizationUpdate,
)
from crm_contacts.domain.tier import Tier

__all__ = [
    "CONTACT_MASK",
    "ILLEGAL_LIFECYCLE_TRANSITION",
    "LIFECYCLE_TRANSITIONS",
    "ORGANIZATION_MASK",
    "Consent",
    "ConsentInput",
    "Contact",
    "ContactInput",
    "ContactUpdate",
    "Identity",
    "IdentityInput",
    "IdentityKey",
    "IdentityKind",
    "InvalidValueError",
    "LifecycleStage",
    "Organization",
    "OrganizationInput",
    "OrganizationUpdate",
    "SocialNetwork",
    "Tier",
    "can_move",
    "check_phone_region",
    "lookup_key",
    "normalise_domain_name",
    "normalise_email",
    "normalise_identity_value",
    "normalise_phone",
    "normalise_social_handle",
    "parse_identity",
]
