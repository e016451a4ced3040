"""``crm.contacts.v1.ContactsService``: requests in, use cases (:mod:`crm_contacts.use_cases`),
responses out.

Requests arrive already validated against the proto rules, with the caller's tenant and actor in
the call context (see ``crm_platform.interceptors``); domain errors become gRPC statuses there.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crm.contacts.v1 import contacts_pb2 as pb
from crm.contacts.v1 import contacts_pb2_grpc
from crm_contacts import contract
from crm_contacts.api import convert
from crm_contacts.domain import InvalidValueError
from crm_contacts.domain.contact import LifecycleStage
from crm_contacts.domain.identity import IdentityKey, IdentityKind, SocialNetwork, lookup_key
from crm_contacts.domain.tier import Tier
from crm_contacts.storage import IdentityOwner
from crm_contacts.use_cases import Contacts, Organizations
from crm_contacts.use_cases.contacts import OPERATION as CONTACT_CREATES
from crm_contacts.use_cases.organizations import OPERATION as ORGANIZATION_CREATES
from crm_platform.context import current_call
from crm_platform.errors import InvalidArgument
from crm_platform.idempotency import IdempotentRequest

Context = Any  # grpc.aio.ServicerContext; the handlers do not use it


def _lookup_result(
    key: IdentityKey | str, owners: Mapping[IdentityKey, IdentityOwner]
) -> pb.IdentityLookupResult:
    """One identity's answer in a batch lookup; ``key`` is the reason when the value is invalid."""
    result = pb.IdentityLookupResult
    if isinstance(key, str):
        return result(outcome=result.OUTCOME_INVALID, invalid_reason=key)
    owner = owners.get(key)
    if owner is None:
        return result(outcome=result.OUTCOME_NOT_FOUND)
    return result(
        outcome=result.OUTCOME_FOUND,
        contact_id=owner.contact_id,
        tier=contract.enum_to_pb(owner.tier),  # type: ignore[arg-type]
    )


class ContactsService(contacts_pb2_grpc.ContactsServiceServicer):
    """The handlers: a request becomes domain inputs and one use case call, its result the
    response. Collaborators come in through the constructor (tests call them directly);
    ``default_phone_region`` reads looked-up phone numbers written without a country code."""

    def __init__(
        self,
        contacts: Contacts,
        organizations: Organizations,
        *,
        default_phone_region: str | None = None,
    ) -> None:
        self.contacts = contacts
        self.organizations = organizations
        self.region = default_phone_region

    # --- contacts ---------------------------------------------------------------------------

    async def CreateContact(
        self, request: pb.CreateContactRequest, context: Context
    ) -> pb.CreateContactResponse:
        call = current_call()
        saved = await self.contacts.create(
            call,
            convert.contact_input(request.contact),
            IdempotentRequest.of(call.tenant_id, CONTACT_CREATES, request.request_id, request),
        )
        return pb.CreateContactResponse(contact=contract.contact_to_pb(saved))

    async def GetContact(
        self, request: pb.GetContactRequest, context: Context
    ) -> pb.GetContactResponse:
        contact = await self.contacts.get(current_call().tenant_id, request.id)
        return pb.GetContactResponse(contact=contract.contact_to_pb(contact))

    async def UpdateContact(
        self, request: pb.UpdateContactRequest, context: Context
    ) -> pb.UpdateContactResponse:
        saved = await self.contacts.update(
            current_call(),
            request.contact.id,
            convert.contact_input(request.contact),
            list(request.update_mask.paths),
            request.expected_version or None,
        )
        return pb.UpdateContactResponse(contact=contract.contact_to_pb(saved))

    async def ListContacts(
        self, request: pb.ListContactsRequest, context: Context
    ) -> pb.ListContactsResponse:
        filters: dict[str, str] = {}
        stage = contract.enum_from_pb(LifecycleStage, request.lifecycle_stage)
        tier = contract.enum_from_pb(Tier, request.tier)
        if stage is not None:
            filters["lifecycle_stage"] = stage.value
        if tier is not None:
            filters["tier"] = tier.value
        for name in ("owner_id", "organization_id"):
            if value := getattr(request, name):
                filters[name] = value
        if request.segment:
            filters["segments"] = request.segment
        found, token = await self.contacts.list_contacts(
            current_call().tenant_id, filters, request.page_size, request.page_token
        )
        return pb.ListContactsResponse(
            contacts=[contract.contact_to_pb(c) for c in found], next_page_token=token
        )

    async def SearchContacts(
        self, request: pb.SearchContactsRequest, context: Context
    ) -> pb.SearchContactsResponse:
        found, token = await self.contacts.search(
            current_call().tenant_id, request.name_prefix, request.page_size, request.page_token
        )
        return pb.SearchContactsResponse(
            contacts=[contract.contact_to_pb(c) for c in found], next_page_token=token
        )

    async def LookupContactByIdentity(
        self, request: pb.LookupContactByIdentityRequest, context: Context
    ) -> pb.LookupContactByIdentityResponse:
        identity = request.identity
        kind = contract.enum_from_pb(IdentityKind, identity.kind)
        if kind is None:
            raise InvalidArgument.single("identity.kind", "is required")
        network = contract.enum_from_pb(SocialNetwork, identity.network)
        try:
            key = lookup_key(kind, identity.value, network, default_region=self.region)
        except InvalidValueError as exc:
            raise InvalidArgument.single("identity.value", str(exc)) from None
        contact = await self.contacts.find_by_identity(current_call().tenant_id, key)
        return pb.LookupContactByIdentityResponse(contact=contract.contact_to_pb(contact))

    async def BatchLookupContactsByIdentity(
        self, request: pb.BatchLookupContactsByIdentityRequest, context: Context
    ) -> pb.BatchLookupContactsByIdentityResponse:
        # Each identity's lookup key, or why its value does not normalise: an invalid value is
        # one item's answer, not the batch's failure (the batch often comes from inbound data).
        keys: list[IdentityKey | str] = []
        for index, identity in enumerate(request.identities):
            kind = contract.enum_from_pb(IdentityKind, identity.kind)
            if kind is None:  # refused by the proto rules before the handler runs
                raise InvalidArgument.single(f"identities[{index}].kind", "is required")
            network = contract.enum_from_pb(SocialNetwork, identity.network)
            try:
                keys.append(lookup_key(kind, identity.value, network, default_region=self.region))
            except InvalidValueError as exc:
                keys.append(exc.description)
        owners = await self.contacts.find_identity_owners(
            current_call().tenant_id, [key for key in keys if isinstance(key, IdentityKey)]
        )
        return pb.BatchLookupContactsByIdentityResponse(
            results=[_lookup_result(key, owners) for key in keys]
        )

    # --- organisations ----------------------------------------------------------------------

    async def CreateOrganization(
        self, request: pb.CreateOrganizationRequest, context: Context
    ) -> pb.CreateOrganizationResponse:
        call = current_call()
        saved = await self.organizations.create(
            call,
            convert.organization_input(request.organization),
            IdempotentRequest.of(call.tenant_id, ORGANIZATION_CREATES, request.request_id, request),
        )
        return pb.CreateOrganizationResponse(organization=contract.organization_to_pb(saved))

    async def GetOrganization(
        self, request: pb.GetOrganizationRequest, context: Context
    ) -> pb.GetOrganizationResponse:
        organization = await self.organizations.get(current_call().tenant_id, request.id)
        return pb.GetOrganizationResponse(organization=contract.organization_to_pb(organization))

    async def UpdateOrganization(
        self, request: pb.UpdateOrganizationRequest, context: Context
    ) -> pb.UpdateOrganizationResponse:
        saved = await self.organizations.update(
            current_call(),
            request.organization.id,
            convert.organization_input(request.organization),
            list(request.update_mask.paths),
            request.expected_version or None,
        )
        return pb.UpdateOrganizationResponse(organization=contract.organization_to_pb(saved))

    async def ListOrganizations(
        self, request: pb.ListOrganizationsRequest, context: Context
    ) -> pb.ListOrganizationsResponse:
        filters: dict[str, str] = {}
        tier = contract.enum_from_pb(Tier, request.tier)
        if tier is not None:
            filters["tier"] = tier.value
        if request.owner_id:
            filters["owner_id"] = request.owner_id
        found, token = await self.organizations.list_organizations(
            current_call().tenant_id, filters, request.page_size, request.page_token
        )
        return pb.ListOrganizationsResponse(
            organizations=[contract.organization_to_pb(o) for o in found], next_page_token=token
        )
