"""The contacts service over gRPC, as the service desk needs it (:class:`ContactDirectory`).

Calls carry the caller's tenant, actor and remaining deadline (crm_platform.clients); failures
come back as domain errors, so an unknown contact is NOT_FOUND for the service desk's caller too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc

from crm.contacts.v1 import contacts_pb2 as cpb
from crm.contacts.v1 import contacts_pb2_grpc
from crm_platform.clients import error_from_rpc, open_channel
from crm_platform.errors import AlreadyExists
from crm_servicedesk.use_cases.contacts import ContactRef, SocialAuthor

_KINDS = {
    "email": cpb.IDENTITY_KIND_EMAIL,
    "phone": cpb.IDENTITY_KIND_PHONE,
    "social": cpb.IDENTITY_KIND_SOCIAL,
}
_TIERS = {
    cpb.VALUE_TIER_UNSPECIFIED: "standard",
    cpb.VALUE_TIER_STANDARD: "standard",
    cpb.VALUE_TIER_SILVER: "silver",
    cpb.VALUE_TIER_GOLD: "gold",
    cpb.VALUE_TIER_PLATINUM: "platinum",
}
# The contacts service's batch limit.
BATCH_LIMIT = 500


def social_network(name: str) -> Any:
    """The contacts enum value of a network name ("x", "instagram", ...); OTHER if unknown."""
    try:
        return cpb.SocialNetwork.Value(f"SOCIAL_NETWORK_{name.upper()}")
    except ValueError:
        return cpb.SOCIAL_NETWORK_OTHER


def _identity(kind: str, value: str, network: str) -> cpb.Identity:
    return cpb.Identity(
        kind=_KINDS[kind],
        value=value,
        network=social_network(network) if kind == "social" else cpb.SOCIAL_NETWORK_UNSPECIFIED,
    )


class GrpcContactDirectory:
    """:class:`~crm_servicedesk.use_cases.contacts.ContactDirectory` over the contacts service's
    gRPC API."""

    def __init__(self, target: str) -> None:
        self.channel = open_channel(
            target, retry_idempotent=[cpb.DESCRIPTOR.services_by_name["ContactsService"]]
        )
        self.stub = contacts_pb2_grpc.ContactsServiceStub(self.channel)

    async def close(self) -> None:
        """Close the channel."""
        await self.channel.close(grace=None)

    async def get(self, contact_id: str) -> ContactRef:
        """The contact; NotFound when the tenant has no such contact."""
        try:
            response = await self.stub.GetContact(cpb.GetContactRequest(id=contact_id))
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc) from None
        return ContactRef(response.contact.id, _TIERS.get(response.contact.tier, "standard"))

    async def lookup(self, kind: str, value: str, network: str) -> ContactRef:
        """The contact owning an identity; NotFound when nobody does."""
        request = cpb.LookupContactByIdentityRequest(identity=_identity(kind, value, network))
        try:
            response = await self.stub.LookupContactByIdentity(request)
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc) from None
        return ContactRef(response.contact.id, _TIERS.get(response.contact.tier, "standard"))

    async def lookup_authors(
        self, authors: Sequence[SocialAuthor]
    ) -> dict[SocialAuthor, ContactRef]:
        """The contacts owning social handles, in batches of the contacts service's limit."""
        found: dict[SocialAuthor, ContactRef] = {}
        for start in range(0, len(authors), BATCH_LIMIT):
            chunk = authors[start : start + BATCH_LIMIT]
            request = cpb.BatchLookupContactsByIdentityRequest(
                identities=[_identity("social", a.handle, a.network) for a in chunk]
            )
            try:
                response = await self.stub.BatchLookupContactsByIdentity(request)
            except grpc.aio.AioRpcError as exc:
                raise error_from_rpc(exc) from None
            for author, result in zip(chunk, response.results, strict=True):
                if result.outcome == cpb.IdentityLookupResult.OUTCOME_FOUND:
                    found[author] = ContactRef(
                        result.contact_id, _TIERS.get(result.tier, "standard")
                    )
        return found

    async def create_for_author(self, author: SocialAuthor, request_id: str) -> ContactRef:
        """A new contact for a social author; if the handle was taken meanwhile, its owner."""
        request = cpb.CreateContactRequest(
            contact=cpb.Contact(
                display_name=f"@{author.handle}",
                identities=[_identity("social", author.handle, author.network)],
            ),
            request_id=request_id,
        )
        try:
            response = await self.stub.CreateContact(request)
        except grpc.aio.AioRpcError as exc:
            error = error_from_rpc(exc)
            if isinstance(error, AlreadyExists):
                return await self.lookup("social", author.handle, author.network)
            raise error from None
        return ContactRef(response.contact.id, _TIERS.get(response.contact.tier, "standard"))
