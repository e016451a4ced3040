"""Lead use cases: create (idempotent), update, the status changes, and the reads."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from crm_platform.clock import Clock
from crm_platform.context import CallContext
from crm_platform.idempotency import IdempotentRequest
from crm_platform.paging import PageQuery
from crm_platform.unit_of_work import Transaction, UnitOfWork
from crm_sales import events
from crm_sales.domain.lead import Lead, LeadInput
from crm_sales.storage import SalesStore
from crm_sales.use_cases._common import (
    WRITE_RETRIES,
    after_id,
    new_id,
    now_ms,
    publish_on_key,
)
from crm_sales.use_cases.territories import TerritoryAssigner

OPERATION = "lead"
"""The idempotency records' operation for lead creates."""


class Leads:
    """The lead use cases of every tenant; ``clock`` stamps the facts."""

    def __init__(
        self,
        store: SalesStore,
        unit_of_work: UnitOfWork,
        clock: Clock,
        territories: TerritoryAssigner | None = None,
    ) -> None:
        self.store = store
        self.unit_of_work = unit_of_work
        self.clock = clock
        self.territories = territories

    async def create(
        self, call: CallContext, fields: LeadInput, request: IdempotentRequest | None
    ) -> Lead:
        """A new lead (NEW), or, for a retry of ``request``, the first result. Without an
        owner, the territory rules assign it (:mod:`crm_sales.use_cases.territories`)."""
        new = Lead.create(
            id=new_id(), tenant_id=call.tenant_id, fields=fields, now=now_ms(self.clock)
        )

        async def create(tx: Transaction) -> Lead:
            if (earlier := await tx.earlier_result(request)) is not None:
                return await self.store.get_lead(call.tenant_id, earlier, tx.session)
            lead = new
            if self.territories is not None:
                lead = await self.territories.on_create(new, tx.session)
            await self.store.insert_lead(lead, tx.session)
            await tx.remember(request, lead.id, lead.create_time)
            await publish_on_key(tx, self.store, [events.lead_created(lead, call)])
            return lead

        return await self.unit_of_work.run(create, retries=WRITE_RETRIES)

    async def update(
        self,
        call: CallContext,
        lead_id: str,
        changes: LeadInput,
        paths: Sequence[str],
        expected_version: int | None,
    ) -> Lead:
        """Replace the fields named by ``paths``; nothing is written when nothing changes."""

        async def update(tx: Transaction) -> Lead:
            current = await self.store.get_lead(call.tenant_id, lead_id, tx.session)
            change = current.apply_update(changes, paths, expected_version, now_ms(self.clock))
            if not change.changed_paths:
                return current
            await self.store.replace_lead(current.version, change.lead, tx.session)
            await publish_on_key(
                tx, self.store, [events.lead_updated(change, current.version, call)]
            )
            return change.lead

        return await self.unit_of_work.run(update, retries=WRITE_RETRIES)

    async def start_working(
        self, call: CallContext, lead_id: str, expected_version: int | None
    ) -> Lead:
        """NEW → WORKING."""
        now = now_ms(self.clock)
        return await self._change_status(
            call, lead_id, lambda lead: lead.start_working(expected_version, now)
        )

    async def qualify(self, call: CallContext, lead_id: str, expected_version: int | None) -> Lead:
        """NEW or WORKING → QUALIFIED."""
        now = now_ms(self.clock)
        return await self._change_status(
            call, lead_id, lambda lead: lead.qualify(expected_version, now)
        )

    async def disqualify(
        self, call: CallContext, lead_id: str, reason: str, expected_version: int | None
    ) -> Lead:
        """NEW or WORKING → DISQUALIFIED, with a reason."""
        now = now_ms(self.clock)
        return await self._change_status(
            call, lead_id, lambda lead: lead.disqualify(reason, expected_version, now)
        )

    async def get(self, tenant_id: str, lead_id: str) -> Lead:
        """The lead, or ``NotFound``."""
        return await self.store.get_lead(tenant_id, lead_id)

    async def list_leads(
        self, tenant_id: str, filters: Mapping[str, str], page_size: int, page_token: str
    ) -> tuple[list[Lead], str]:
        """A page of the leads matching every filter, in id order, and the next page's token."""
        query = PageQuery.of(
            {"op": "ListLeads", "tenant": tenant_id, **filters}, page_size, page_token
        )
        found = await self.store.list_leads(tenant_id, filters, after_id(query), query.limit)
        return query.page(found, lambda lead: [lead.id])

    async def _change_status(
        self, call: CallContext, lead_id: str, rule: Callable[[Lead], Lead]
    ) -> Lead:
        async def change(tx: Transaction) -> Lead:
            current = await self.store.get_lead(call.tenant_id, lead_id, tx.session)
            changed = rule(current)
            await self.store.replace_lead(current.version, changed, tx.session)
            event = events.lead_status_changed(changed, current.status, current.version, call)
            await publish_on_key(tx, self.store, [event])
            return changed

        return await self.unit_of_work.run(change, retries=WRITE_RETRIES)
