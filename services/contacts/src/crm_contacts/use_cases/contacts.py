"""Contact use cases: create (idempotent), update, and the reads.

Each write is one unit of work: the domain decides the new state, the repository stores it in
the transaction's session, the event describing it is published in the same transaction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence

from crm_contacts import events
from crm_contacts.domain.contact import Contact, ContactInput
from crm_contacts.domain.identity import IdentityKey
from crm_contacts.storage import ContactStore, IdentityOwner
from crm_contacts.use_cases._common import WRITE_RETRIES, new_id, now_ms
from crm_platform.clock import Clock
from crm_platform.context import CallContext
from crm_platform.errors import InvalidArgument
from crm_platform.idempotency import IdempotentRequest
from crm_platform.paging import PageQuery
from crm_platform.unit_of_work import Transaction, UnitOfWork, UseCase

OPERATION = "contact"
"""The idempotency records' operation for contact creates."""


class Contacts:
    """The contact use cases of every tenant.

    ``clock`` stamps the facts (creation and update times, events); ``default_region`` reads
    phone numbers written without a country code.
    """

    def __init__(
        self,
        store: ContactStore,
        unit_of_work: UnitOfWork,
        clock: Clock,
        *,
        default_region: str | None = None,
    ) -> None:
        self.store = store
        self.unit_of_work = unit_of_work
        self.clock = clock
        self.region = default_region

    async def create(
        self,
        call: CallContext,
        fields: ContactInput,
        request: IdempotentRequest | None,
        *,
        also: Callable[[Contact, Transaction], Awaitable[None]] | None = None,
    ) -> Contact:
        """A new contact with its identities, or, for a retry of ``request``, the contact the
        first run created; ``AlreadyExists`` if another contact owns one of its identities.
        ``also`` writes more in the same transaction (the import's external id)."""
        contact = Contact.create(
            id=new_id(),
            tenant_id=call.tenant_id,
            fields=fields,
            now=now_ms(self.clock),
            default_region=self.region,
        )
        event = events.contact_created(contact, call)

        async def create(tx: Transaction) -> Contact:
            if (earlier := await tx.earlier_result(request)) is not None:
                return await self.store.get_contact(call.tenant_id, earlier, tx.session)
            await self._require_organization(contact, tx)
            await self.store.insert_contact(contact, tx.session)
            if also is not None:
                await also(contact, tx)
            await tx.remember(request, contact.id, contact.create_time)
            tx.publish([event], sequence=contact.version)
            return contact

        return await self._write(create)

    async def update(
        self,
        call: CallContext,
        contact_id: str,
        changes: ContactInput,
        paths: Sequence[str],
        expected_version: int | None,
    ) -> Contact:
        """Replace the fields named by ``paths``; nothing is written or published when nothing
        changes. The replace is conditional on the version read, so a concurrent update makes
        this one fail (``CONCURRENT_UPDATE``) rather than overwrite it."""

        async def update(tx: Transaction) -> Contact:
            current = await self.store.get_contact(call.tenant_id, contact_id, tx.session)
            change = current.apply_update(
                changes,
                paths,
                expected_version,
                now_ms(self.clock),
                default_region=self.region,
            )
            if not change.changed_paths:
                return current
            new = change.contact
            if "organization_id" in change.changed_paths:
                await self._require_organization(new, tx)
            await self.store.replace_contact(current.version, new, tx.session)
            tx.publish(
                [events.contact_updated(change, current.version, call)], sequence=new.version
            )
            return new

        return await self._write(update)

    async def get(self, tenant_id: str, contact_id: str) -> Contact:
        """The contact, or ``NotFound``."""
        return await self.store.get_contact(tenant_id, contact_id)

    async def find_by_identity(self, tenant_id: str, key: IdentityKey) -> Contact:
        """The contact owning this identity, or ``NotFound``."""
        return await self.store.find_by_identity(tenant_id, key)

    async def find_identity_owners(
        self, tenant_id: str, keys: Iterable[IdentityKey]
    ) -> dict[IdentityKey, IdentityOwner]:
        """The owners of those ``keys`` that a contact of the tenant owns."""
        return await self.store.find_identity_owners(tenant_id, keys)

    async def list_contacts(
        self, tenant_id: str, filters: Mapping[str, str], page_size: int, page_token: str
    ) -> tuple[list[Contact], str]:
        """A page of the contacts matching every filter (stored field → value), in id order,
        and the next page's token."""
        query = PageQuery.of(
            {"op": "ListContacts", "tenant": tenant_id, **filters}, page_size, page_token
        )
        after = str(query.after[0]) if query.after else None
        found = await self.store.list_contacts(tenant_id, filters, after, query.limit)
        return query.page(found, lambda contact: [contact.id])

    async def search(
        self, tenant_id: str, name_prefix: str, page_size: int, page_token: str
    ) -> tuple[list[Contact], str]:
        """A page of the contacts with a name starting with ``name_prefix`` (case-insensitive,
        surrounding blanks ignored), in id order, and the next page's token."""
        prefix = name_prefix.strip()
        if not prefix:
            raise InvalidArgument.single("name_prefix", "must contain a non-blank character")
        query = PageQuery.of(
            {"op": "SearchContacts", "tenant": tenant_id, "prefix": prefix.casefold()},
            page_size,
            page_token,
        )
        after = str(query.after[0]) if query.after else None
        found = await self.store.search_contacts(tenant_id, prefix, after, query.limit)
        return query.page(found, lambda contact: [contact.id])

    async def _require_organization(self, contact: Contact, tx: Transaction) -> None:
        """A contact may only belong to an organisation that exists in its tenant."""
        if contact.organization_id and not await self.store.organization_exists(
            contact.tenant_id, contact.organization_id, tx.session
        ):
            raise InvalidArgument.single("contact.organization_id", "no such organization")

    async def _write(self, use_case: UseCase[Contact]) -> Contact:
        return await self.unit_of_work.run(
            use_case, retries=WRITE_RETRIES, on_duplicate_key=self.store.identity_conflict
        )
