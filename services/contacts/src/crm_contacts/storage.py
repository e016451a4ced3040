"""Contacts and organisations in the service's own database, with their events in the outbox.

Collections (database ``crm_contacts`` by default):

* ``contacts`` / ``organizations`` — one document per aggregate, ``_id`` = id, always queried
  together with ``tenant_id``; ``version`` guards every replace (optimistic concurrency).
* ``contacts.identity_keys`` — ``<tenant>|<kind>:<network>:<value>`` for each identity, under a
  unique multikey index: one owner per identity in a tenant, enforced by the database, and lookup
  by identity is one indexed read. (A separate key collection would cost two more round trips per
  create; the field is absent, not empty, for a contact without identities.)
* ``idempotency`` — ``_id`` = ``<tenant>|<operation>|<request id>``: a retried create returns
  the first result instead of creating twice.
* ``outbox`` — the events, written in the same transaction as the state (see crm_platform.outbox).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from crm_contacts.domain.contact import Consent, Contact, ContactUpdate, LifecycleStage
from crm_contacts.domain.identity import Identity, IdentityKey, IdentityKind, SocialNetwork
from crm_contacts.domain.organization import Organization, OrganizationUpdate
from crm_contacts.domain.tier import Tier
from crm_platform.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from crm_platform.events import Event
from crm_platform.mongo import Document, MongoStore, replace_version
from crm_platform.outbox import Outbox

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Idempotency:
    """A create's idempotency key and a fingerprint of its request: a retry (same key, same
    request) returns the first result; the same key with another request is refused."""

    request_id: str
    fingerprint: str


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
    """Reads and transactional writes of contacts and organisations."""

    def __init__(self, store: MongoStore, outbox: Outbox) -> None:
        self.store = store
        self.outbox = outbox
        db = store.db
        self.contacts: AsyncCollection[Document] = db["contacts"]
        self.organizations: AsyncCollection[Document] = db["organizations"]
        self.idempotency: AsyncCollection[Document] = db["idempotency"]

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
        await self.idempotency.create_index("created_at", expireAfterSeconds=7 * 24 * 3600)

    # --- contacts ---------------------------------------------------------------------------

    async def get_contact(self, tenant_id: str, contact_id: str) -> Contact:
        """The contact, or ``NotFound`` (also when it belongs to another tenant)."""
        doc = await self.contacts.find_one({"_id": contact_id, "tenant_id": tenant_id})
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

    async def create_contact(
        self,
        contact: Contact,
        event: Event,
        *,
        idempotency: Idempotency | None = None,
        now: datetime,
    ) -> Contact:
        """Insert a new contact, claim its identities and queue its event, all or nothing.

        With an idempotency key, a retry of the same create returns the contact created first.
        """

        async def work(session: AsyncClientSession) -> Contact:
            earlier = await self._earlier_result(
                self.contacts, "contact", contact.tenant_id, idempotency, session
            )
            if earlier is not None:
                return contact_from_document(earlier)
            await self._check_organization(contact, session)
            await self.contacts.insert_one(contact_to_document(contact), session=session)
            if idempotency:
                await self._remember(
                    contact.tenant_id, "contact", idempotency, contact.id, now, session
                )
            await self.outbox.add([event], session, sequence=contact.version)
            return contact

        return await self._write(work)

    async def update_contact(
        self,
        tenant_id: str,
        contact_id: str,
        change: Callable[[Contact], ContactUpdate],
        event_for: Callable[[ContactUpdate, int], Event],
    ) -> Contact:
        """Apply a domain change to the current contact; write it and its event if it changed.

        The replace is conditional on the version that was read, so a concurrent update makes
        this one fail (``CONCURRENT_UPDATE``) rather than overwrite it.
        """

        async def work(session: AsyncClientSession) -> Contact:
            current = contact_from_document(
                await self._must_find(self.contacts, "contact", tenant_id, contact_id, session)
            )
            update = change(current)
            if not update.changed_paths:
                return current
            new = update.contact
            if "organization_id" in update.changed_paths:
                await self._check_organization(new, session)
            await replace_version(
                self.contacts, "contacts", current.version, contact_to_document(new), session
            )
            await self.outbox.add(
                [event_for(update, current.version)], session, sequence=new.version
            )
            return new

        return await self._write(work)

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

    async def get_organization(self, tenant_id: str, organization_id: str) -> Organization:
        """The organisation, or ``NotFound`` (also when it belongs to another tenant)."""
        doc = await self.organizations.find_one({"_id": organization_id, "tenant_id": tenant_id})
        if doc is None:
            raise NotFound("organization", organization_id)
        return organization_from_document(doc)

    async def create_organization(
        self,
        organization: Organization,
        event: Event,
        *,
        idempotency: Idempotency | None = None,
        now: datetime,
    ) -> Organization:
        """Insert a new organisation and queue its event; idempotent (see :class:`Idempotency`)."""

        async def work(session: AsyncClientSession) -> Organization:
            tenant_id = organization.tenant_id
            earlier = await self._earlier_result(
                self.organizations, "organization", tenant_id, idempotency, session
            )
            if earlier is not None:
                return organization_from_document(earlier)
            await self.organizations.insert_one(
                organization_to_document(organization), session=session
            )
            if idempotency:
                await self._remember(
                    tenant_id, "organization", idempotency, organization.id, now, session
                )
            await self.outbox.add([event], session, sequence=organization.version)
            return organization

        return await self._write(work)

    async def update_organization(
        self,
        tenant_id: str,
        organization_id: str,
        change: Callable[[Organization], OrganizationUpdate],
        event_for: Callable[[OrganizationUpdate, int], Event],
    ) -> Organization:
        """Apply a domain change to the current organisation (see :meth:`update_contact`)."""

        async def work(session: AsyncClientSession) -> Organization:
            current = organization_from_document(
                await self._must_find(
                    self.organizations, "organization", tenant_id, organization_id, session
                )
            )
            update = change(current)
            if not update.changed_paths:
                return current
            await replace_version(
                self.organizations,
                "organizations",
                current.version,
                organization_to_document(update.organization),
                session,
            )
            await self.outbox.add(
                [event_for(update, current.version)],
                session,
                sequence=update.organization.version,
            )
            return update.organization

        return await self._write(work)

    async def list_organizations(
        self, tenant_id: str, filters: Mapping[str, str], after_id: str | None, limit: int
    ) -> list[Organization]:
        """Organisations matching every filter, in id order, after ``after_id``."""
        query: dict[str, Any] = {"tenant_id": tenant_id, **filters}
        if after_id is not None:
            query["_id"] = {"$gt": after_id}
        cursor = self.organizations.find(query).sort("_id", ASCENDING).limit(limit)
        return [organization_from_document(doc) async for doc in cursor]

    # --- helpers ----------------------------------------------------------------------------

    async def _write(self, work: Callable[[AsyncClientSession], Awaitable[T]]) -> T:
        """Run a write transaction, then wake the relay; unique-key collisions become domain
        outcomes: a taken identity is ``AlreadyExists``, and a concurrent create with the same
        request id is retried once (the retry returns the winner's result)."""
        try:
            result = await self.store.in_transaction(work)
        except DuplicateKeyError as exc:
            taken = (exc.details or {}).get("keyValue", {}).get("identity_keys")
            if taken is not None:
                owner = await self.contacts.find_one({"identity_keys": taken}, {"_id": 1})
                identity = str(taken).partition("|")[2]
                holder = owner["_id"] if owner else "another contact"
                raise AlreadyExists(
                    "identity", identity, f"already belongs to contact {holder}"
                ) from None
            result = await self.store.in_transaction(work)
        self.outbox.notify_committed()
        return result

    async def _must_find(
        self,
        collection: AsyncCollection[Document],
        kind: str,
        tenant_id: str,
        ident: str,
        session: AsyncClientSession,
    ) -> Document:
        doc = await collection.find_one({"_id": ident, "tenant_id": tenant_id}, session=session)
        if doc is None:
            raise NotFound(kind, ident)
        return doc

    async def _check_organization(self, contact: Contact, session: AsyncClientSession) -> None:
        """A contact may only belong to an organisation that exists in its tenant."""
        if not contact.organization_id:
            return
        found = await self.organizations.find_one(
            {"_id": contact.organization_id, "tenant_id": contact.tenant_id},
            {"_id": 1},
            session=session,
        )
        if found is None:
            raise InvalidArgument.single("contact.organization_id", "no such organization")

    async def _earlier_result(
        self,
        collection: AsyncCollection[Document],
        kind: str,
        tenant_id: str,
        key: Idempotency | None,
        session: AsyncClientSession,
    ) -> Document | None:
        """What the first create with this idempotency key made, if it already ran."""
        if key is None:
            return None
        doc = await self.idempotency.find_one(
            {"_id": f"{tenant_id}|{kind}|{key.request_id}"}, session=session
        )
        if doc is None:
            return None
        if doc.get("fingerprint") != key.fingerprint:
            raise FailedPrecondition(
                "REQUEST_ID_REUSED",
                f"request_id {key.request_id}",
                "was already used for a different request; use a new request_id",
            )
        return await self._must_find(collection, kind, tenant_id, str(doc["result_id"]), session)

    async def _remember(
        self,
        tenant_id: str,
        kind: str,
        key: Idempotency,
        result_id: str,
        now: datetime,
        session: AsyncClientSession,
    ) -> None:
        await self.idempotency.insert_one(
            {
                "_id": f"{tenant_id}|{kind}|{key.request_id}",
                "fingerprint": key.fingerprint,
                "result_id": result_id,
                "created_at": now,
            },
            session=session,
        )
