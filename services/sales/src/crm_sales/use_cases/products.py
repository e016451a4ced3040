"""Product use cases: create (idempotent, SKU unique in the tenant), update, and the reads."""

from __future__ import annotations

from collections.abc import Sequence

from crm_platform.clock import Clock
from crm_platform.context import CallContext
from crm_platform.errors import AlreadyExists
from crm_platform.idempotency import IdempotentRequest
from crm_platform.paging import PageQuery
from crm_platform.unit_of_work import Transaction, UnitOfWork
from crm_sales import events
from crm_sales.domain.product import Product, ProductInput
from crm_sales.storage import SalesStore
from crm_sales.use_cases._common import WRITE_RETRIES, after_id, new_id, now_ms

OPERATION = "product"
"""The idempotency records' operation for product creates."""


class Products:
    """The product use cases of every tenant; ``clock`` stamps the facts."""

    def __init__(self, store: SalesStore, unit_of_work: UnitOfWork, clock: Clock) -> None:
        self.store = store
        self.unit_of_work = unit_of_work
        self.clock = clock

    async def create(
        self, call: CallContext, fields: ProductInput, request: IdempotentRequest | None
    ) -> Product:
        """A new product or, for a retry of ``request``, the first result. A SKU the tenant
        has already is ``AlreadyExists`` (of two concurrent creates, the unique index lets one
        commit; the other's rerun finds the SKU taken)."""
        product_id = new_id()
        now = now_ms(self.clock)

        async def create(tx: Transaction) -> Product:
            if (earlier := await tx.earlier_result(request)) is not None:
                return await self.store.get_product(call.tenant_id, earlier, tx.session)
            product = Product.create(
                id=product_id, tenant_id=call.tenant_id, fields=fields, now=now
            )
            if await self.store.sku_taken(call.tenant_id, product.sku, tx.session):
                raise AlreadyExists("product", product.sku, "a product has this SKU already")
            await self.store.insert_product(product, tx.session)
            await tx.remember(request, product.id, product.create_time)
            tx.publish([events.product_created(product, call)], sequence=product.version)
            return product

        return await self.unit_of_work.run(create, retries=WRITE_RETRIES)

    async def update(
        self,
        call: CallContext,
        product_id: str,
        changes: ProductInput,
        paths: Sequence[str],
        expected_version: int | None,
    ) -> Product:
        """Replace the fields named by ``paths``; nothing is written when nothing changes.
        Quote lines priced earlier keep their prices."""

        async def update(tx: Transaction) -> Product:
            current = await self.store.get_product(call.tenant_id, product_id, tx.session)
            change = current.apply_update(changes, paths, expected_version, now_ms(self.clock))
            if not change.changed_paths:
                return current
            await self.store.replace_product(current.version, change.product, tx.session)
            tx.publish(
                [events.product_updated(change, current.version, call)],
                sequence=change.product.version,
            )
            return change.product

        return await self.unit_of_work.run(update, retries=WRITE_RETRIES)

    async def get(self, tenant_id: str, product_id: str) -> Product:
        """The product, or ``NotFound``."""
        return await self.store.get_product(tenant_id, product_id)

    async def list_products(
        self, tenant_id: str, active_only: bool, page_size: int, page_token: str
    ) -> tuple[list[Product], str]:
        """A page of the tenant's products (only active ones if asked), in id order."""
        query = PageQuery.of(
            {"op": "ListProducts", "tenant": tenant_id, "active_only": active_only},
            page_size,
            page_token,
        )
        filters = {"active": True} if active_only else {}
        found = await self.store.list_products(tenant_id, filters, after_id(query), query.limit)
        return query.page(found, lambda product: [product.id])
