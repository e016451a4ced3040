"""The contacts service over gRPC, as the sales service needs it for lead conversion.

Calls carry the caller's tenant, actor and remaining deadline (crm_platform.clients); failures
come back as domain errors. A person is matched by identity (e-mail address, then phone number)
before one is created, and creates carry a request id derived from the lead, so converting one
lead twice, or twice at once, never makes two people.
"""

from __future__ import annotations

import grpc

from crm.contacts.v1 import contacts_pb2 as cpb
from crm.contacts.v1 import contacts_pb2_grpc
from crm_platform.clients import error_from_rpc, open_channel
from crm_platform.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from crm_sales.use_cases.conversion import FoundContact, Person

LEAD_DATA_INVALID = "LEAD_DATA_INVALID"
"""The FAILED_PRECONDITION of a conversion whose lead data the contacts service refuses."""


class GrpcContactDirectory:
    """:class:`~crm_sales.use_cases.conversion.ContactDirectory` over the contacts service."""

    def __init__(self, target: str) -> None:
        self.channel = open_channel(
            target, retry_idempotent=[cpb.DESCRIPTOR.services_by_name["ContactsService"]]
        )
        self.stub = contacts_pb2_grpc.ContactsServiceStub(self.channel)

    async def close(self) -> None:
        """Close the channel."""
        await self.channel.close(grace=None)

    async def require_contact(self, contact_id: str) -> None:
        """Nothing if the tenant has the contact; ``NotFound`` otherwise."""
        try:
            await self.stub.GetContact(cpb.GetContactRequest(id=contact_id))
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc) from None

    async def find_or_create_person(
        self, person: Person, *, organization_id: str, request_id: str, subject: str
    ) -> FoundContact:
        """The contact owning the person's e-mail address or phone number, or a new one."""
        identities = _identities(person)
        if (found := await self._owner(identities, subject)) is not None:
            return FoundContact(found, created=False)
        request = cpb.CreateContactRequest(
            contact=cpb.Contact(
                display_name=person.name,
                organization_id=organization_id,
                identities=identities,
            ),
            request_id=request_id,
        )
        try:
            response = await self.stub.CreateContact(request)
        except grpc.aio.AioRpcError as exc:
            error = error_from_rpc(exc)
            # An identity was taken meanwhile: its owner is the person.
            if isinstance(error, AlreadyExists) and (
                found := await self._owner(identities, subject)
            ):
                return FoundContact(found, created=False)
            if isinstance(error, InvalidArgument):
                raise _lead_data_invalid(subject, error) from None
            raise error from None
        return FoundContact(response.contact.id, created=True)

    async def create_organization(self, name: str, *, request_id: str) -> str:
        """A new organisation (or, for a retry of ``request_id``, the first one)."""
        request = cpb.CreateOrganizationRequest(
            organization=cpb.Organization(name=name), request_id=request_id
        )
        try:
            response = await self.stub.CreateOrganization(request)
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc) from None
        organization_id: str = response.organization.id
        return organization_id

    async def _owner(self, identities: list[cpb.Identity], subject: str) -> str | None:
        for identity in identities:
            try:
                response = await self.stub.LookupContactByIdentity(
                    cpb.LookupContactByIdentityRequest(identity=identity)
                )
            except grpc.aio.AioRpcError as exc:
                error = error_from_rpc(exc)
                if isinstance(error, NotFound):
                    continue
                if isinstance(error, InvalidArgument):
                    raise _lead_data_invalid(subject, error) from None
                raise error from None
            contact_id: str = response.contact.id
            return contact_id
        return None


def _identities(person: Person) -> list[cpb.Identity]:
    found = []
    if person.email:
        found.append(cpb.Identity(kind=cpb.IDENTITY_KIND_EMAIL, value=person.email, primary=True))
    if person.phone:
        found.append(cpb.Identity(kind=cpb.IDENTITY_KIND_PHONE, value=person.phone, primary=True))
    return found


def _lead_data_invalid(subject: str, error: InvalidArgument) -> FailedPrecondition:
    reasons = "; ".join(v.description for v in error.violations) or error.message
    return FailedPrecondition(
        LEAD_DATA_INVALID,
        subject,
        f"the lead's e-mail address or phone number is not valid for a contact ({reasons}); "
        "correct it with UpdateLead",
    )
