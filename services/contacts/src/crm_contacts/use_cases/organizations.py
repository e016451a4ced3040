"""Organisation use cases: create (idempotent), update, and the reads (see
:mod:`crm_contacts.use_cases.contacts`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence

from crm_contacts import events
from crm_contacts.domain.organization import Organization, OrganizationInput
from crm_contacts.storage import ContactStore
from crm_contacts.use_cases._common import WRITE_RETRIES, new_id, now_ms
from crm_platform.clock import Clock
from crm_platform.context import CallContext
from crm_platform.idempotency import IdempotentRequest
from crm_platform.paging import PageQuery
from crm_platform.unit_of_work import Transaction, UnitOfWork, UseCase

OPERATION = "organization"
"""The idempotency records' operation for organisation creates."""


class Organizations:
    """The organisation use cases of every tenant; ``clock`` stamps the facts."""

    def __init__(self, store: ContactStore, unit_of_work: UnitOfWork, clock: Clock) -> None:
        self.store = store
        self.unit_of_work = unit_of_work
        self.clock = clock

    async def create(
        self,
        call: CallContext,
        fields: OrganizationInput,
        request: IdempotentRequest | None,
        *,
        also: Callable[[Organization, Transaction], Awaitable[None]] | None = None,
    ) -> Organization:
        """A new organisation, or, for a retry of ``request``, the one the first run created;
        ``also`` writes more in the same transaction (the import's external id)."""
        organization = Organization.create(
            id=new_id(), tenant_id=call.tenant_id, fields=fields, now=now_ms(self.clock)
        )
        event = events.organization_created(organization, call)

        async def create(tx: Transaction) -> Organization:
            if (earlier := await tx.earlier_result(request)) is not None:
                return await self.store.get_organization(call.tenant_id, earlier, tx.session)
            await self.store.insert_organization(organization, tx.session)
            if also is not None:
                await also(organization, tx)
            await tx.remember(request, organization.id, organization.create_time)
            tx.publish([event], sequence=organization.version)
            return organization

        return await self._write(create)

    async def update(
        self,
        call: CallContext,
        organization_id: str,
        changes: OrganizationInput,
        paths: Sequence[str],
        expected_version: int | None,
    ) -> Organization:
        """Replace the fields named by ``paths`` (see :meth:`Contacts.update
        <crm_contacts.use_cases.contacts.Contacts.update>`)."""

        async def update(tx: Transaction) -> Organization:
            current = await self.store.get_organization(call.tenant_id, organization_id, tx.session)
            change = current.apply_update(changes, paths, expected_version, now_ms(self.clock))
            if not change.changed_paths:
                return current
            new = change.organization
            await self.store.replace_organization(current.version, new, tx.session)
            tx.publish(
                [events.organization_updated(change, current.version, call)],
                sequence=new.version,
            )
            return new

        return await self._write(update)

    async def get(self, tenant_id: str, organization_id: str) -> Organization:
        """The organisation, or ``NotFound``."""
        return await self.store.get_organization(tenant_id, organization_id)

    async def list_organizations(
        self, tenant_id: str, filters: Mapping[str, str], page_size: int, page_token: str
    ) -> tuple[list[Organization], str]:
        """A page of the organisations matching every filter, in id order, and the next page's
        token."""
        query = PageQuery.of(
            {"op": "ListOrganizations", "tenant": tenant_id, **filters}, page_size, page_token
        )
        after = str(query.after[0]) if query.after else None
        found = await self.store.list_organizations(tenant_id, filters, after, query.limit)
        return query.page(found, lambda organization: [organization.id])

    async def _write(self, use_case: UseCase[Organization]) -> Organization:
        return await self.unit_of_work.run(
            use_case, retries=WRITE_RETRIES, on_duplicate_key=self.store.identity_conflict
        )
