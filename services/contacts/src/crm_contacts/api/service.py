"""``crm.contacts.v1.ContactsService``: requests in, domain rules, storage, responses out.

Requests arrive already validated against the proto rules, with the caller's tenant and actor in
the call context (see ``crm_platform.interceptors``); domain errors become gRPC statuses there.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message

from crm.contacts.v1 import contacts_pb2 as pb
from crm.contacts.v1 import contacts_pb2_grpc
from crm.contacts.v1 import events_pb2 as events
from crm_contacts.api import convert
from crm_contacts.domain import InvalidValueError
from crm_contacts.domain.contact import Contact, ContactUpdate, LifecycleStage
from crm_contacts.domain.identity import IdentityKey, IdentityKind, SocialNetwork, lookup_key
from crm_contacts.domain.organization import Organization, OrganizationUpdate
from crm_contacts.domain.paging import (
    decode_page_token,
    encode_page_token,
    filter_fingerprint,
    resolve_page_size,
)
from crm_contacts.domain.tier import Tier
from crm_contacts.storage import ContactStore, Idempotency, IdentityOwner
from crm_platform.clock import Clock, process_clock
from crm_platform.context import CallContext, current_call
from crm_platform.errors import InvalidArgument
from crm_platform.events import Event

SOURCE = "/crm/contacts"
Context = Any  # grpc.aio.ServicerContext; the handlers do not use it


def _millisecond(now: datetime) -> datetime:
    # Millisecond precision, as stored (BSON dates): the response, the event and a later read
    # all carry the same timestamps.
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _new_id() -> str:
    return str(uuid.uuid4())


def _idempotency(
    request: pb.CreateContactRequest | pb.CreateOrganizationRequest,
) -> Idempotency | None:
    """The create's idempotency key, with a fingerprint of what was asked."""
    if not request.request_id:
        return None
    body = request.SerializeToString(deterministic=True)
    return Idempotency(request.request_id, hashlib.sha256(body).hexdigest())


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
        tier=convert.enum_to_pb(owner.tier),  # type: ignore[arg-type]
    )


class ContactsService(contacts_pb2_grpc.ContactsServiceServicer):
    """The handlers; collaborators come in through the constructor (tests call them directly).

    ``clock`` stamps the facts (creation and update times, events); default: the process clock
    (the wall clock unless ``CRM_CLOCK_*`` accelerate it, see :mod:`crm_platform.clock`).
    """

    def __init__(
        self,
        store: ContactStore,
        *,
        default_phone_region: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.store = store
        self.region = default_phone_region
        self.clock = clock if clock is not None else process_clock()

    def _now(self) -> datetime:
        return _millisecond(self.clock.now())

    # --- events -----------------------------------------------------------------------------

    def _contact_event(self, payload: Message, contact: Contact, call: CallContext) -> Event:
        # Key = the contact id: every event about this customer lands on one partition.
        return Event.of(
            payload,
            source=SOURCE,
            subject=f"contacts/{contact.id}",
            key=contact.id,
            call=call,
            time=contact.update_time,
        )

    def _organization_event(
        self, payload: Message, organization: Organization, call: CallContext
    ) -> Event:
        # Organisations are not customers: keyed by their own id (documented exception).
        return Event.of(
            payload,
            source=SOURCE,
            subject=f"organizations/{organization.id}",
            key=organization.id,
            call=call,
            time=organization.update_time,
        )

    # --- contacts ---------------------------------------------------------------------------

    async def CreateContact(
        self, request: pb.CreateContactRequest, context: Context
    ) -> pb.CreateContactResponse:
        call = current_call()
        contact = Contact.create(
            id=_new_id(),
            tenant_id=call.tenant_id,
            fields=convert.contact_input(request.contact),
            now=self._now(),
            default_region=self.region,
        )
        event = self._contact_event(
            events.ContactCreated(contact=convert.contact_to_pb(contact)), contact, call
        )
        saved = await self.store.create_contact(
            contact, event, idempotency=_idempotency(request), now=contact.create_time
        )
        return pb.CreateContactResponse(contact=convert.contact_to_pb(saved))

    async def GetContact(
        self, request: pb.GetContactRequest, context: Context
    ) -> pb.GetContactResponse:
        contact = await self.store.get_contact(current_call().tenant_id, request.id)
        return pb.GetContactResponse(contact=convert.contact_to_pb(contact))

    async def UpdateContact(
        self, request: pb.UpdateContactRequest, context: Context
    ) -> pb.UpdateContactResponse:
        call = current_call()
        changes = convert.contact_input(request.contact)
        paths = list(request.update_mask.paths)

        def change(current: Contact) -> ContactUpdate:
            return current.apply_update(
                changes,
                paths,
                request.expected_version or None,
                self._now(),
                default_region=self.region,
            )

        def event_for(update: ContactUpdate, previous_version: int) -> Event:
            payload = events.ContactUpdated(
                contact=convert.contact_to_pb(update.contact),
                changed_fields=FieldMask(paths=update.changed_paths),
                previous_version=previous_version,
            )
            return self._contact_event(payload, update.contact, call)

        saved = await self.store.update_contact(
            call.tenant_id, request.contact.id, change, event_for
        )
        return pb.UpdateContactResponse(contact=convert.contact_to_pb(saved))

    async def ListContacts(
        self, request: pb.ListContactsRequest, context: Context
    ) -> pb.ListContactsResponse:
        tenant = current_call().tenant_id
        filters: dict[str, str] = {}
        stage = convert.enum_from_pb(LifecycleStage, request.lifecycle_stage)
        tier = convert.enum_from_pb(Tier, request.tier)
        if stage is not None:
            filters["lifecycle_stage"] = stage.value
        if tier is not None:
            filters["tier"] = tier.value
        for name in ("owner_id", "organization_id"):
            if value := getattr(request, name):
                filters[name] = value
        if request.segment:
            filters["segments"] = request.segment
        contacts, token = await self._page(
            {"op": "ListContacts", "tenant": tenant, **filters},
            request.page_size,
            request.page_token,
            lambda after, limit: self.store.list_contacts(tenant, filters, after, limit),
        )
        return pb.ListContactsResponse(
            contacts=[convert.contact_to_pb(c) for c in contacts], next_page_token=token
        )

    async def SearchContacts(
        self, request: pb.SearchContactsRequest, context: Context
    ) -> pb.SearchContactsResponse:
        tenant = current_call().tenant_id
        prefix = request.name_prefix.strip()
        if not prefix:
            raise InvalidArgument.single("name_prefix", "must contain a non-blank character")
        contacts, token = await self._page(
            {"op": "SearchContacts", "tenant": tenant, "prefix": prefix.casefold()},
            request.page_size,
            request.page_token,
            lambda after, limit: self.store.search_contacts(tenant, prefix, after, limit),
        )
        return pb.SearchContactsResponse(
            contacts=[convert.contact_to_pb(c) for c in contacts], next_page_token=token
        )

    async def LookupContactByIdentity(
        self, request: pb.LookupContactByIdentityRequest, context: Context
    ) -> pb.LookupContactByIdentityResponse:
        identity = request.identity
        kind = convert.enum_from_pb(IdentityKind, identity.kind)
        if kind is None:
            raise InvalidArgument.single("identity.kind", "is required")
        network = convert.enum_from_pb(SocialNetwork, identity.network)
        try:
            key = lookup_key(kind, identity.value, network, default_region=self.region)
        except InvalidValueError as exc:
            raise InvalidArgument.single("identity.value", str(exc)) from None
        contact = await self.store.find_by_identity(current_call().tenant_id, key)
        return pb.LookupContactByIdentityResponse(contact=convert.contact_to_pb(contact))

    async def BatchLookupContactsByIdentity(
        self, request: pb.BatchLookupContactsByIdentityRequest, context: Context
    ) -> pb.BatchLookupContactsByIdentityResponse:
        # Each identity's lookup key, or why its value does not normalise: an invalid value is
        # one item's answer, not the batch's failure (the batch often comes from inbound data).
        keys: list[IdentityKey | str] = []
        for index, identity in enumerate(request.identities):
            kind = convert.enum_from_pb(IdentityKind, identity.kind)
            if kind is None:  # refused by the proto rules before the handler runs
                raise InvalidArgument.single(f"identities[{index}].kind", "is required")
            network = convert.enum_from_pb(SocialNetwork, identity.network)
            try:
                keys.append(lookup_key(kind, identity.value, network, default_region=self.region))
            except InvalidValueError as exc:
                keys.append(exc.description)
        owners = await self.store.find_identity_owners(
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
        organization = Organization.create(
            id=_new_id(),
            tenant_id=call.tenant_id,
            fields=convert.organization_input(request.organization),
            now=self._now(),
        )
        payload = events.OrganizationCreated(organization=convert.organization_to_pb(organization))
        saved = await self.store.create_organization(
            organization,
            self._organization_event(payload, organization, call),
            idempotency=_idempotency(request),
            now=organization.create_time,
        )
        return pb.CreateOrganizationResponse(organization=convert.organization_to_pb(saved))

    async def GetOrganization(
        self, request: pb.GetOrganizationRequest, context: Context
    ) -> pb.GetOrganizationResponse:
        organization = await self.store.get_organization(current_call().tenant_id, request.id)
        return pb.GetOrganizationResponse(organization=convert.organization_to_pb(organization))

    async def UpdateOrganization(
        self, request: pb.UpdateOrganizationRequest, context: Context
    ) -> pb.UpdateOrganizationResponse:
        call = current_call()
        changes = convert.organization_input(request.organization)
        paths = list(request.update_mask.paths)

        def change(current: Organization) -> OrganizationUpdate:
            return current.apply_update(
                changes, paths, request.expected_version or None, self._now()
            )

        def event_for(update: OrganizationUpdate, previous_version: int) -> Event:
            payload = events.OrganizationUpdated(
                organization=convert.organization_to_pb(update.organization),
                changed_fields=FieldMask(paths=update.changed_paths),
                previous_version=previous_version,
            )
            return self._organization_event(payload, update.organization, call)

        saved = await self.store.update_organization(
            call.tenant_id, request.organization.id, change, event_for
        )
        return pb.UpdateOrganizationResponse(organization=convert.organization_to_pb(saved))

    async def ListOrganizations(
        self, request: pb.ListOrganizationsRequest, context: Context
    ) -> pb.ListOrganizationsResponse:
        tenant = current_call().tenant_id
        filters: dict[str, str] = {}
        tier = convert.enum_from_pb(Tier, request.tier)
        if tier is not None:
            filters["tier"] = tier.value
        if request.owner_id:
            filters["owner_id"] = request.owner_id
        organizations, token = await self._page(
            {"op": "ListOrganizations", "tenant": tenant, **filters},
            request.page_size,
            request.page_token,
            lambda after, limit: self.store.list_organizations(tenant, filters, after, limit),
        )
        return pb.ListOrganizationsResponse(
            organizations=[convert.organization_to_pb(o) for o in organizations],
            next_page_token=token,
        )

    # --- paging -----------------------------------------------------------------------------

    async def _page(
        self,
        criteria: dict[str, str],
        page_size: int,
        page_token: str,
        fetch: Callable[[str | None, int], Any],
    ) -> tuple[list[Any], str]:
        """Keyset pagination in id order: fetch one more than the page to know if more follow."""
        fingerprint = filter_fingerprint(criteria)
        after = decode_page_token(page_token, fingerprint)
        after_id = str(after[0]) if after else None
        size = resolve_page_size(page_size)
        items: list[Any] = await fetch(after_id, size + 1)
        if len(items) <= size:
            return items, ""
        page = items[:size]
        return page, encode_page_token([page[-1].id], fingerprint)
