"""Opportunity use cases: create (idempotent), update, the stage changes (move, win, lose,
reopen), and the reads.

A stage change reads the opportunity and the pipeline version it was created under in the same
transaction, lets the domain decide (:mod:`crm_sales.domain.opportunity`), and replaces the
opportunity only if it is still at the version read: of two concurrent changes, one commits
and the other fails (with the caller's ``expected_version``: ``STALE_VERSION`` on the rerun;
without: ``CONCURRENT_UPDATE``), so no stage change is silently lost.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence

from crm_platform.clock import Clock
from crm_platform.context import CallContext
from crm_platform.errors import InvalidArgument, NotFound
from crm_platform.idempotency import IdempotentRequest
from crm_platform.paging import PageQuery
from crm_platform.unit_of_work import Transaction, UnitOfWork
from crm_sales import events
from crm_sales.domain.opportunity import Opportunity, OpportunityInput, StageMove
from crm_sales.domain.pipeline import Pipeline, StageKind
from crm_sales.storage import SalesStore
from crm_sales.use_cases._common import (
    WRITE_RETRIES,
    after_id,
    new_id,
    now_ms,
    publish_on_key,
)
from crm_sales.use_cases.territories import TerritoryAssigner

OPERATION = "opportunity"
"""The idempotency records' operation for opportunity creates."""

StageRule = Callable[[Opportunity, Pipeline], StageMove]
"""A stage change as the domain decides it, given the opportunity and its pipeline version."""
WinHook = Callable[[Transaction, CallContext, Opportunity], Awaitable[None]]
"""What else a win does in its transaction (the follow-up call it may arm)."""


class Opportunities:
    """The opportunity use cases of every tenant; ``clock`` stamps the facts."""

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
        self.on_won: WinHook | None = None

    async def create(
        self, call: CallContext, fields: OpportunityInput, request: IdempotentRequest | None
    ) -> Opportunity:
        """A new opportunity under its pipeline's current version, or, for a retry of
        ``request``, the first result. An unknown pipeline is ``InvalidArgument``. Without an
        owner, the territory rules assign it (:mod:`crm_sales.use_cases.territories`)."""
        opportunity_id = new_id()
        now = now_ms(self.clock)

        async def create(tx: Transaction) -> Opportunity:
            if (earlier := await tx.earlier_result(request)) is not None:
                return await self.store.get_opportunity(call.tenant_id, earlier, tx.session)
            try:
                pipeline = await self.store.get_pipeline(
                    call.tenant_id, fields.pipeline_id, tx.session
                )
            except NotFound:
                raise InvalidArgument.single(
                    "opportunity.pipeline_id", "no such pipeline"
                ) from None
            opportunity = Opportunity.create(
                id=opportunity_id,
                tenant_id=call.tenant_id,
                fields=fields,
                pipeline=pipeline,
                now=now,
                actor=str(call.actor),
            )
            if self.territories is not None:
                opportunity = await self.territories.on_create(opportunity, tx.session)
            await self.store.insert_opportunity(opportunity, tx.session)
            await tx.remember(request, opportunity.id, opportunity.create_time)
            await publish_on_key(tx, self.store, [events.opportunity_created(opportunity, call)])
            return opportunity

        return await self.unit_of_work.run(create, retries=WRITE_RETRIES)

    async def update(
        self,
        call: CallContext,
        opportunity_id: str,
        changes: OpportunityInput,
        paths: Sequence[str],
        expected_version: int | None,
    ) -> Opportunity:
        """Replace the fields named by ``paths``; nothing is written when nothing changes."""

        async def update(tx: Transaction) -> Opportunity:
            current = await self.store.get_opportunity(call.tenant_id, opportunity_id, tx.session)
            change = current.apply_update(changes, paths, expected_version, now_ms(self.clock))
            if not change.changed_paths:
                return current
            await self.store.replace_opportunity(current.version, change.opportunity, tx.session)
            await publish_on_key(
                tx, self.store, [events.opportunity_updated(change, current.version, call)]
            )
            return change.opportunity

        return await self.unit_of_work.run(update, retries=WRITE_RETRIES)

    async def move_stage(
        self, call: CallContext, opportunity_id: str, stage_id: str, expected_version: int | None
    ) -> Opportunity:
        """To another open stage."""
        now = now_ms(self.clock)
        return await self._change_stage(
            call,
            opportunity_id,
            lambda o, p: o.move_to(stage_id, p, expected_version, now, str(call.actor)),
        )

    async def win(
        self,
        call: CallContext,
        opportunity_id: str,
        stage_id: str,
        reason: str,
        expected_version: int | None,
    ) -> Opportunity:
        """Closed as won."""
        now = now_ms(self.clock)
        return await self._change_stage(
            call,
            opportunity_id,
            lambda o, p: o.win(stage_id, reason, p, expected_version, now, str(call.actor)),
        )

    async def lose(
        self,
        call: CallContext,
        opportunity_id: str,
        stage_id: str,
        reason: str,
        expected_version: int | None,
    ) -> Opportunity:
        """Closed as lost, with a reason."""
        now = now_ms(self.clock)
        return await self._change_stage(
            call,
            opportunity_id,
            lambda o, p: o.lose(stage_id, reason, p, expected_version, now, str(call.actor)),
        )

    async def reopen(
        self,
        call: CallContext,
        opportunity_id: str,
        stage_id: str,
        reason: str,
        expected_version: int | None,
    ) -> Opportunity:
        """Back to an open stage from a won or lost one."""
        now = now_ms(self.clock)
        return await self._change_stage(
            call,
            opportunity_id,
            lambda o, p: o.reopen(stage_id, reason, p, expected_version, now, str(call.actor)),
        )

    async def get(self, tenant_id: str, opportunity_id: str) -> Opportunity:
        """The opportunity, or ``NotFound``."""
        return await self.store.get_opportunity(tenant_id, opportunity_id)

    async def list_opportunities(
        self, tenant_id: str, filters: Mapping[str, str], page_size: int, page_token: str
    ) -> tuple[list[Opportunity], str]:
        """A page of the opportunities matching every filter (stored field → value), in id
        order, and the next page's token."""
        query = PageQuery.of(
            {"op": "ListOpportunities", "tenant": tenant_id, **filters}, page_size, page_token
        )
        found = await self.store.list_opportunities(
            tenant_id, filters, after_id(query), query.limit
        )
        return query.page(found, lambda opportunity: [opportunity.id])

    async def _change_stage(
        self, call: CallContext, opportunity_id: str, rule: StageRule
    ) -> Opportunity:
        async def change(tx: Transaction) -> Opportunity:
            current = await self.store.get_opportunity(call.tenant_id, opportunity_id, tx.session)
            pipeline = await self.store.get_pipeline_version(
                call.tenant_id, current.pipeline_id, current.pipeline_version, tx.session
            )
            move = rule(current, pipeline)
            if move.change is None:
                return current
            await self.store.replace_opportunity(current.version, move.opportunity, tx.session)
            event = events.opportunity_stage_event(
                move.opportunity, move.change, current.status, current.version, call
            )
            await publish_on_key(tx, self.store, [event])
            if self.on_won is not None and move.change.to_kind is StageKind.WON:
                await self.on_won(tx, call, move.opportunity)
            return move.opportunity

        return await self.unit_of_work.run(change, retries=WRITE_RETRIES)
