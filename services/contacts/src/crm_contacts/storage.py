"""Contacts and organisations in the service's own database: the repository the use cases
(:mod:`crm_contacts.use_cases`) read and write through, in their transaction's session.

Collections (database ``crm_contacts`` by default):

* ``contacts`` / ``organizations`` — one document per aggregate, ``_id`` = id, always queried
  together with ``tenant_id``; ``version`` guards every replace (optimistic concurrency).
* ``contacts.identity_keys`` — ``<tenant>|<kind>:<network>:<value>`` for each identity, under a
  unique multikey index: one owner per identity in a tenant, enforced by the database, and lookup
  by identity is one indexed read. (A separate key collection would cost two more round trips per
  create; the field is absent, not empty, for a contact without identities.)
* ``idempotency`` — ``_id`` = ``<tenant>|<operation>|<request id>``: a retried create returns
  the first result instead of creating twice (see crm_platform.idempotency).
* ``outbox`` — the events, written in the same transaction as the state (see
  crm_platform.unit_of_work and crm_platform.outbox).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from crm_contacts.domain.contact import Consent, Contact, LifecycleStage
from crm_contacts.domain.identity import Identity, IdentityKey, IdentityKind, SocialNetwork
from crm_contacts.domain.organization import Organization
from crm_contacts.domain.tier import Tier
from crm_platform.errors import AlreadyExists, NotFound
from crm_platform.mongo import Document, replace_version


@dataclass(frozen=True, slots=True)
class IdentityOwner:
    """The contact that owns an identity, as a batch lookup answers it: its id and tier."""

    contact_id: str
    tier: Tier


def _identity_id(tenant_id: str, key: IdentityKey) -> str:
    return f"{tenant_id}|{key.encode()}"


def identity_keys(contact: Contact) -> list[str]:
    """The tenant-scoped unique keys of the contact's identities."""
    return [_identity_id(contact.tenant_id, identity.lookup_key) for identity in contact.identities]


def search_names(contact: Contact) -> list[str]:
    """Lower-cased names a prefix search matches: each name, and "given family"."""
    names = {contact.given_name, contact.family_name, contact.display_name}
    names.add(f"{contact.given_name} {contact.family_name}".strip())
    return sorted({name.casefold() for name in names if name})


def contact_to_document(contact: Contact) -> Document:
    """The stored form of a contact."""
    return {
        "_id": contact.id,
        "tenant_id": contact.tenant_id,
        "given_name": contact.given_name,
        "family_name": contact.family_name,
        "display_name": contact.display_name,
        "organization_id": contact.organization_id,
        "job_title": contact.job_title,
        "lifecycle_stage": contact.lifecycle_stage.value,
        "tier": contact.tier.value,
        "segments": list(contact.segments),
        "owner_id": contact.owner_id,
        "consent": {
            "email_marketing": contact.consent.email_marketing,
            "sms_marketing": contact.consent.sms_marketing,
            "phone_marketing": contact.consent.phone_marketing,
            "data_processing": contact.consent.data_processing,
            "update_time": contact.consent.update_time,
        },
        "custom_attributes": dict(contact.custom_attributes),
        "identities": [
            {
                "kind": identity.kind.value,
                "value": identity.value,
                "network": identity.network.value if identity.network else None,
                "primary": identity.primary,
                "verified": identity.verified,
            }
            for identity in contact.identities
        ],
        "search_names": search_names(contact),
        "version": contact.version,
        "create_time": contact.create_time,
        "update_time": contact.update_time,
    } | ({"identity_keys": identity_keys(contact)} if contact.identities else {})


def contact_from_document(doc: Mapping[str, Any]) -> Contact:
    """Rebuild a contact from its stored form."""
    return Contact(
        id=doc["_id"],
        tenant_id=doc["tenant_id"],
        given_name=doc["given_name"],
        family_name=doc["family_name"],
        display_name=doc["display_name"],
        organization_id=doc["organization_id"],
        job_title=doc["job_title"],
        lifecycle_stage=LifecycleStage(doc["lifecycle_stage"]),
        tier=Tier(doc["tier"]),
        segments=tuple(doc["segments"]),
        owner_id=doc["owner_id"],
        consent=Consent(**doc["consent"]),
        custom_attributes=dict(doc["custom_attributes"]),
        identities=tuple(
            Identity(
                kind=IdentityKind(item["kind"]),
                value=item["value"],
                network=SocialNetwork(item["network"]) if item["network"] else None,
                primary=item["primary"],
                verified=item["verified"],
            )
            for item in doc["identities"]
        ),
        version=doc["version"],
        create_time=doc["create_time"],
        update_time=doc["update_time"],
    )


def organization_to_document(organization: Organization) -> Document:
    """The stored form of an organisation."""
    return {
        "_id": organization.id,
        "tenant_id": organization.tenant_id,
        "name": organization.name,
        "name_folded": organization.name.casefold(),
        "domain": organization.domain,
        "industry": organization.industry,
        "tier": organization.tier.value,
        "owner_id": organization.owner_id,
        "custom_attributes": dict(organization.custom_attributes),
        "version": organization.version,
        "create_time": organization.create_time,
        "update_time": organization.update_time,
    }


def organization_from_document(doc: Mapping[str, Any]) -> Organization:
    """Rebuild an organisation from its stored form."""
    return Organization(
        id=doc["_id"],
        tenant_id=doc["tenant_id"],
        name=doc["name"],
        domain=doc["domain"],
        industry=doc["industry"],
        tier=Tier(doc["tier"]),
        owner_id=doc["owner_id"],
        custom_attributes=dict(doc["custom_attributes"]),
        version=doc["version"],
        create_time=doc["create_time"],
        update_time=doc["update_time"],
    )


class ContactStore:
    """Reads and writes of contacts and organisations; a write takes its transaction's session."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.contacts: AsyncCollection[Document] = db["contacts"]
        self.organizations: AsyncCollection[Document] = db["organizations"]

    async def ensure_indexes(self) -> None:
        """Indexes for the list filters (keyset order is ``_id``) and name prefix search."""
        tenant = ("tenant_id", ASCENDING)
        key = ("_id", ASCENDING)
        for field in ("lifecycle_stage", "tier", "owner_id", "organization_id", "segments"):
            await self.contacts.create_index([tenant, (field, ASCENDING), key])
        await self.contacts.create_index([tenant, key])
        await self.contacts.create_index([tenant, ("search_names", ASCENDING), key])
        await self.contacts.create_index(
            "identity_keys",
            name="identity_keys_unique",
            unique=True,
            partialFilterExpression={"identity_keys": {"$exists": True}},
        )
        await self.organizations.create_index([tenant, key])
        await self.organizations.create_index([tenant, ("name_folded", ASCENDING), key])

    # --- contacts ---------------------------------------------------------------------------

    async def get_contact(
        self, tenant_id: str, contact_id: str, session: AsyncClientSession | None = None
    ) -> Contact:
        """The contact, or ``NotFound`` (also when it belongs to another tenant)."""
        doc = await self.contacts.find_one(
            {"_id": contact_id, "tenant_id": tenant_id}, session=session
        )
        if doc is None:
            raise NotFound("contact", contact_id)
        return contact_from_document(doc)

    async def find_by_identity(self, tenant_id: str, key: IdentityKey) -> Contact:
        """The contact owning this identity in the tenant, or ``NotFound``."""
        doc = await self.contacts.find_one(
            {"identity_keys": _identity_id(tenant_id, key), "tenant_id": tenant_id}
        )
        if doc is None:
            raise NotFound("identity", key.encode())
        return contact_from_document(doc)

    async def find_identity_owners(
        self, tenant_id: str, keys: Iterable[IdentityKey]
    ) -> dict[IdentityKey, IdentityOwner]:
        """The owners of those ``keys`` that a contact of the tenant owns: one indexed query,
        reading only the id, tier and identity keys of the matching contacts."""
        wanted = {_identity_id(tenant_id, key): key for key in keys}
        if not wanted:
            return {}
        cursor = self.contacts.find(
            {"identity_keys": {"$in": list(wanted)}, "tenant_id": tenant_id},
            {"_id": 1, "tier": 1, "identity_keys": 1},
            batch_size=len(wanted),  # at most one owner per key: every match in one reply
        )
        owners: dict[IdentityKey, IdentityOwner] = {}
        async for doc in cursor:
            owner = IdentityOwner(doc["_id"], Tier(doc["tier"]))
            # A contact may own several of the keys asked for (its e-mail and its phone).
            for stored in doc["identity_keys"]:
                if (key := wanted.get(stored)) is not None:
                    owners[key] = owner
        return owners

    async def insert_contact(self, contact: Contact, session: AsyncClientSession) -> None:
        """Store a new contact; a taken identity is a ``DuplicateKeyError`` (see
        :meth:`identity_conflict`)."""
        await self.contacts.insert_one(contact_to_document(contact), session=session)

    async def replace_contact(
        self, read_version: int, contact: Contact, session: AsyncClientSession
    ) -> None:
        """Store a changed contact if it is still at ``read_version``; otherwise
        FAILED_PRECONDITION ``CONCURRENT_UPDATE`` (it changed meanwhile)."""
        await replace_version(
            self.contacts, "contacts", read_version, contact_to_document(contact), session
        )

    async def list_contacts(
        self, tenant_id: str, filters: Mapping[str, str], after_id: str | None, limit: int
    ) -> list[Contact]:
        """Contacts matching every filter, in id order, after ``after_id``."""
        query: dict[str, Any] = {"tenant_id": tenant_id, **filters}
        if after_id is not None:
            query["_id"] = {"$gt": after_id}
        cursor = self.contacts.find(query).sort("_id", ASCENDING).limit(limit)
        return [contact_from_document(doc) async for doc in cursor]

    async def search_contacts(
        self, tenant_id: str, prefix: str, after_id: str | None, limit: int
    ) -> list[Contact]:
        """Contacts with a name starting with ``prefix`` (case-insensitive), in id order."""
        folded = prefix.casefold()
        query: dict[str, Any] = {
            "tenant_id": tenant_id,
            "search_names": {"$gte": folded, "$lt": folded + "\U0010ffff"},
        }
        if after_id is not None:
            query["_id"] = {"$gt": after_id}
        cursor = self.contacts.find(query).sort("_id", ASCENDING).limit(limit)
        return [contact_from_document(doc) async for doc in cursor]

    # --- organisations ----------------------------------------------------------------------

    async def get_organization(
        self, tenant_id: str, organization_id: str, session: AsyncClientSession | None = None
    ) -> Organization:
        """The organisation, or ``NotFound`` (also when it belongs to another tenant)."""
        doc = await self.organizations.find_one(
            {"_id": organization_id, "tenant_id": tenant_id}, session=session
        )
        if doc is None:
            raise NotFound("organization", organization_id)
        return organization_from_document(doc)

    async def organization_exists(
        self, tenant_id: str, organization_id: str, session: AsyncClientSession
    ) -> bool:
        """Whether the tenant has this organisation (reads only its id)."""
        found = await self.organizations.find_one(
            {"_id": organization_id, "tenant_id": tenant_id}, {"_id": 1}, session=session
        )
        return found is not None

    async def insert_organization(
        self, organization: Organization, session: AsyncClientSession
    ) -> None:
        """Store a new organisation."""
        await self.organizations.insert_one(organization_to_document(organization), session=session)

    async def replace_organization(
        self, read_version: int, organization: Organization, session: AsyncClientSession
    ) -> None:
        """Store a changed organisation if it is still at ``read_version`` (see
        :meth:`replace_contact`)."""
        await replace_version(
            self.organizations,
            "organizations",
            read_version,
            organization_to_document(organization),
            session,
        )

    async def list_organizations(
        self, tenant_id: str, filters: Mapping[str, str], after_id: str | None, limit: int
    ) -> list[Organization]:
        """Organisations matching every filter, in id order, after ``after_id``."""
        query: dict[str, Any] = {"tenant_id": tenant_id, **filters}
        if after_id is not None:
            query["_id"] = {"$gt": after_id}
        cursor = self.organizations.find(query).sort("_id", ASCENDING).limit(limit)
        return [organization_from_document(doc) async for doc in cursor]

    # --- unique keys ------------------------------------------------------------------------

    async def identity_conflict(self, exc: DuplicateKeyError) -> None:
        """A write's duplicate key as the domain outcome it stands for: a taken identity is
        ``AlreadyExists`` (naming its owner); any other key returns (a concurrent create with
        the same request id: running the write again returns the winner's result)."""
        taken = (exc.details or {}).get("keyValue", {}).get("identity_keys")
        if taken is None:
            return
        owner = await self.contacts.find_one({"identity_keys": taken}, {"_id": 1})
        identity = str(taken).partition("|")[2]
        holder = owner["_id"] if owner else "another contact"
        raise AlreadyExists("identity", identity, f"already belongs to contact {holder}") from None
