"""The contacts service, as the service desk's use cases see it (a port: the gRPC adapter is
:class:`crm_servicedesk.contacts_directory.GrpcContactDirectory`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class ContactRef:
    """A contact as the service desk needs it."""

    contact_id: str
    tier: str


@dataclass(frozen=True, slots=True)
class SocialAuthor:
    """A mention's author, to look up or create as a contact."""

    network: str
    handle: str


class ContactDirectory(Protocol):
    """The contacts service, as the service desk uses it."""

    async def get(self, contact_id: str) -> ContactRef:
        """The contact; NotFound when the tenant has no such contact."""
        ...

    async def lookup(self, kind: str, value: str, network: str) -> ContactRef:
        """The contact owning an identity; NotFound when nobody does."""
        ...

    async def lookup_authors(
        self, authors: Sequence[SocialAuthor]
    ) -> dict[SocialAuthor, ContactRef]:
        """The contacts owning social handles (unknown authors are left out)."""
        ...

    async def create_for_author(self, author: SocialAuthor, request_id: str) -> ContactRef:
        """A new contact for a social author (idempotent by ``request_id``)."""
        ...
