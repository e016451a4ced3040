"""Pipeline use cases: create (idempotent), update (a new version), and the reads."""

from __future__ import annotations

from collections.abc import Sequence

from crm_platform.clock import Clock
from crm_platform.context import CallContext
from crm_platform.idempotency import IdempotentRequest
from crm_platform.paging import PageQuery
from crm_platform.unit_of_work import Transaction, UnitOfWork
from crm_sales import events
from crm_sales.domain.pipeline import Pipeline, PipelineInput
from crm_sales.storage import SalesStore
from crm_sales.use_cases._common import WRITE_RETRIES, after_id, new_id, now_ms

OPERATION = "pipeline"
"""The idempotency records' operation for pipeline creates."""


class Pipelines:
    """The pipeline use cases of every tenant; ``clock`` stamps the facts."""

    def __init__(self, store: SalesStore, unit_of_work: UnitOfWork, clock: Clock) -> None:
        self.store = store
        self.unit_of_work = unit_of_work
        self.clock = clock

    async def create(
        self, call: CallContext, fields: PipelineInput, request: IdempotentRequest | None
    ) -> Pipeline:
        """Version 1 of a new pipeline, or, for a retry of ``request``, the first result."""
        pipeline = Pipeline.create(
            id=new_id(), tenant_id=call.tenant_id, fields=fields, now=now_ms(self.clock)
        )
        event = events.pipeline_created(pipeline, call)

        async def create(tx: Transaction) -> Pipeline:
            if (earlier := await tx.earlier_result(request)) is not None:
                return await self.store.get_pipeline(call.tenant_id, earlier, tx.session)
            await self.store.insert_pipeline(pipeline, tx.session)
            await tx.remember(request, pipeline.id, pipeline.create_time)
            tx.publish([event], sequence=pipeline.version)
            return pipeline

        return await self.unit_of_work.run(create, retries=WRITE_RETRIES)

    async def update(
        self,
        call: CallContext,
        pipeline_id: str,
        changes: PipelineInput,
        paths: Sequence[str],
        expected_version: int | None,
    ) -> Pipeline:
        """A new version with the fields ``paths`` names replaced (none if nothing changes);
        earlier versions stay as they were."""

        async def update(tx: Transaction) -> Pipeline:
            current = await self.store.get_pipeline(call.tenant_id, pipeline_id, tx.session)
            revision = current.revise(changes, paths, expected_version, now_ms(self.clock))
            if not revision.changed_paths:
                return current
            await self.store.replace_pipeline(current.version, revision.pipeline, tx.session)
            tx.publish(
                [events.pipeline_updated(revision, current.version, call)],
                sequence=revision.pipeline.version,
            )
            return revision.pipeline

        return await self.unit_of_work.run(update, retries=WRITE_RETRIES)

    async def get(self, tenant_id: str, pipeline_id: str, version: int | None) -> Pipeline:
        """The pipeline at ``version`` (``None``: the current one), or ``NotFound``."""
        if version is None:
            return await self.store.get_pipeline(tenant_id, pipeline_id)
        return await self.store.get_pipeline_version(tenant_id, pipeline_id, version)

    async def list_pipelines(
        self, tenant_id: str, page_size: int, page_token: str
    ) -> tuple[list[Pipeline], str]:
        """A page of the tenant's pipelines in id order, and the next page's token."""
        query = PageQuery.of({"op": "ListPipelines", "tenant": tenant_id}, page_size, page_token)
        found = await self.store.list_pipelines(tenant_id, after_id(query), query.limit)
        return query.page(found, lambda pipeline: [pipeline.id])
