"""Campaign use cases: create (idempotent), update, the status changes, dated costs
(idempotent by request id), and the reads. The interactions are :mod:`.campaign_interactions`.

A campaign's events are keyed by its own id (it is about no single customer) and ordered by its
version, which every change increments."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from crm_platform.clock import Clock
from crm_platform.context import CallContext
from crm_platform.idempotency import IdempotentRequest
from crm_platform.paging import PageQuery
from crm_platform.unit_of_work import Transaction, UnitOfWork
from crm_sales import campaigns_events as events
from crm_sales.campaigns_storage import CampaignStore
from crm_sales.domain.campaign import Campaign, CampaignCost, CampaignInput, CostInput
from crm_sales.use_cases._common import WRITE_RETRIES, after_id, new_id, now_ms

OPERATION = "campaign"
"""The idempotency records' operation for campaign creates."""
COST_OPERATION = "campaign_cost"
"""The idempotency records' operation for cost entries."""


class Campaigns:
    """The campaign use cases of every tenant; ``clock`` stamps the facts."""

    def __init__(self, store: CampaignStore, unit_of_work: UnitOfWork, clock: Clock) -> None:
        self.store = store
        self.unit_of_work = unit_of_work
        self.clock = clock

    async def create(
        self, call: CallContext, fields: CampaignInput, request: IdempotentRequest | None
    ) -> Campaign:
        """A new DRAFT campaign, or, for a retry of ``request``, the first result."""
        campaign = Campaign.create(
            id=new_id(), tenant_id=call.tenant_id, fields=fields, now=now_ms(self.clock)
        )

        async def create(tx: Transaction) -> Campaign:
            if (earlier := await tx.earlier_result(request)) is not None:
                return await self.store.get_campaign(call.tenant_id, earlier, tx.session)
            await self.store.insert_campaign(campaign, tx.session)
            await tx.remember(request, campaign.id, campaign.create_time)
            tx.publish([events.campaign_created(campaign, call)], sequence=campaign.version)
            return campaign

        return await self.unit_of_work.run(create, retries=WRITE_RETRIES)

    async def update(
        self,
        call: CallContext,
        campaign_id: str,
        changes: CampaignInput,
        paths: Sequence[str],
        expected_version: int | None,
    ) -> Campaign:
        """Replace the fields named by ``paths``; nothing is written when nothing changes."""

        async def update(tx: Transaction) -> Campaign:
            current = await self.store.get_campaign(call.tenant_id, campaign_id, tx.session)
            change = current.apply_update(changes, paths, expected_version, now_ms(self.clock))
            if not change.changed_paths:
                return current
            await self.store.replace_campaign(current.version, change.campaign, tx.session)
            tx.publish(
                [events.campaign_updated(change, current.version, call)],
                sequence=change.campaign.version,
            )
            return change.campaign

        return await self.unit_of_work.run(update, retries=WRITE_RETRIES)

    async def activate(
        self, call: CallContext, campaign_id: str, expected_version: int | None
    ) -> Campaign:
        """DRAFT → ACTIVE."""
        now = now_ms(self.clock)
        return await self._change_status(
            call, campaign_id, lambda c: c.activate(expected_version, now)
        )

    async def complete(
        self, call: CallContext, campaign_id: str, expected_version: int | None
    ) -> Campaign:
        """ACTIVE → COMPLETED."""
        now = now_ms(self.clock)
        return await self._change_status(
            call, campaign_id, lambda c: c.complete(expected_version, now)
        )

    async def cancel(
        self, call: CallContext, campaign_id: str, reason: str, expected_version: int | None
    ) -> Campaign:
        """DRAFT or ACTIVE → CANCELLED."""
        now = now_ms(self.clock)
        return await self._change_status(
            call, campaign_id, lambda c: c.cancel(reason, expected_version, now)
        )

    async def record_cost(
        self,
        call: CallContext,
        campaign_id: str,
        fields: CostInput,
        request: IdempotentRequest,
        expected_version: int | None,
    ) -> tuple[Campaign, CampaignCost]:
        """Add a dated cost entry; a retry of ``request`` answers with the first entry and the
        campaign as it is now (the entry is counted once)."""
        cost_id = new_id()

        async def record(tx: Transaction) -> tuple[Campaign, CampaignCost]:
            current = await self.store.get_campaign(call.tenant_id, campaign_id, tx.session)
            if (earlier := await tx.earlier_result(request)) is not None:
                return current, await self.store.get_cost(call.tenant_id, earlier, tx.session)
            changed, cost = current.record_cost(
                cost_id, fields, expected_version, now_ms(self.clock)
            )
            await self.store.replace_campaign(current.version, changed, tx.session)
            await self.store.insert_cost(cost, tx.session)
            await tx.remember(request, cost.id, cost.record_time)
            tx.publish(
                [events.campaign_cost_recorded(changed, cost, current.version, call)],
                sequence=changed.version,
            )
            return changed, cost

        return await self.unit_of_work.run(record, retries=WRITE_RETRIES)

    async def get(self, tenant_id: str, campaign_id: str) -> Campaign:
        """The campaign, or ``NotFound``."""
        return await self.store.get_campaign(tenant_id, campaign_id)

    async def list_campaigns(
        self, tenant_id: str, filters: Mapping[str, str], page_size: int, page_token: str
    ) -> tuple[list[Campaign], str]:
        """A page of the campaigns matching every filter, in id order, and the next page's
        token."""
        query = PageQuery.of(
            {"op": "ListCampaigns", "tenant": tenant_id, **filters}, page_size, page_token
        )
        found = await self.store.list_campaigns(tenant_id, filters, after_id(query), query.limit)
        return query.page(found, lambda campaign: [campaign.id])

    async def _change_status(
        self, call: CallContext, campaign_id: str, rule: Callable[[Campaign], Campaign]
    ) -> Campaign:
        async def change(tx: Transaction) -> Campaign:
            current = await self.store.get_campaign(call.tenant_id, campaign_id, tx.session)
            changed = rule(current)
            await self.store.replace_campaign(current.version, changed, tx.session)
            event = events.campaign_status_changed(changed, current.status, current.version, call)
            tx.publish([event], sequence=changed.version)
            return changed

        return await self.unit_of_work.run(change, retries=WRITE_RETRIES)
