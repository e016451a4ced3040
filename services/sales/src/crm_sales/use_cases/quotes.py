"""Quote use cases: create a revision (idempotent), update a draft, send, accept, reject, the
reads, and the expiry that the durable timers fire.

Sending arms a timer ``quote:<id>:expiry`` due at ``valid_until`` in the same transaction
(:mod:`crm_platform.timers`); accepting or rejecting cancels it in theirs. When it fires
(:meth:`Quotes.fire`), the quote expires if it is still SENT, in the firing transaction, with
its event. A quote changes only while its opportunity is open (FAILED_PRECONDITION
``OPPORTUNITY_CLOSED``), except that a sent one can still be rejected and still expires.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from pymongo.asynchronous.client_session import AsyncClientSession

from crm_platform.clock import Clock
from crm_platform.context import CallContext, current_call
from crm_platform.errors import FailedPrecondition, InvalidArgument, NotFound
from crm_platform.idempotency import IdempotentRequest
from crm_platform.paging import PageQuery
from crm_platform.timers import Timer, TimerEvents, TimerStore
from crm_platform.unit_of_work import Transaction, UnitOfWork
from crm_sales import events
from crm_sales.domain.opportunity import Opportunity
from crm_sales.domain.quote import (
    OPPORTUNITY_CLOSED,
    QUOTE_NOT_SENT,
    Quote,
    QuoteInput,
    QuoteStatus,
)
from crm_sales.storage import SalesStore
from crm_sales.use_cases._common import (
    WRITE_RETRIES,
    after_id,
    new_id,
    now_ms,
    publish_on_key,
)

OPERATION = "quote"
"""The idempotency records' operation for quote creates."""
EXPIRY = "quote_expiry"
"""The kind of a quote's expiry timer."""

QuoteRule = Callable[[Quote, datetime], Quote]


def expiry_timer_id(quote_id: str) -> str:
    """The name of a quote's expiry timer."""
    return f"quote:{quote_id}:expiry"


def _require_open(opportunity: Opportunity) -> None:
    if opportunity.status.closed:
        raise FailedPrecondition(
            OPPORTUNITY_CLOSED,
            opportunity.subject,
            f"is {opportunity.status.value}: its quotes no longer change (reopen it first)",
        )


class Quotes:
    """The quote use cases of every tenant; ``clock`` stamps the facts and is the clock the
    expiry timers are due on. ``timer_armed`` is told each armed due time after the commit
    (the timer worker's ``notify``)."""

    def __init__(
        self, store: SalesStore, unit_of_work: UnitOfWork, timers: TimerStore, clock: Clock
    ) -> None:
        self.store = store
        self.unit_of_work = unit_of_work
        self.timers = timers
        self.clock = clock
        self.timer_armed: Callable[[datetime], None] = lambda due_at: None

    async def create(
        self, call: CallContext, fields: QuoteInput, request: IdempotentRequest | None
    ) -> Quote:
        """The opportunity's next revision, as a draft, or, for a retry of ``request``, the
        first result. An unknown opportunity is ``InvalidArgument`` on its field."""
        quote_id = new_id()
        now = now_ms(self.clock)

        async def create(tx: Transaction) -> Quote:
            if (earlier := await tx.earlier_result(request)) is not None:
                return await self.store.get_quote(call.tenant_id, earlier, tx.session)
            opportunity = await self._opportunity(call.tenant_id, fields.opportunity_id, tx)
            products = await self.store.products_by_id(
                call.tenant_id, [line.product_id for line in fields.lines], tx.session
            )
            revision = await self.store.last_revision(call.tenant_id, opportunity.id, tx.session)
            quote = Quote.draft(
                id=quote_id,
                tenant_id=call.tenant_id,
                revision=revision + 1,
                fields=fields,
                products=products,
                event_key=opportunity.event_key,
                now=now,
            )
            _require_open(opportunity)
            await self.store.insert_quote(quote, tx.session)
            await tx.remember(request, quote.id, quote.create_time)
            await publish_on_key(tx, self.store, [events.quote_created(quote, call)])
            return quote

        return await self.unit_of_work.run(create, retries=WRITE_RETRIES)

    async def update(
        self,
        call: CallContext,
        quote_id: str,
        changes: QuoteInput,
        paths: Sequence[str],
        expected_version: int | None,
    ) -> Quote:
        """A draft's fields named by ``paths`` replaced (lines re-priced)."""

        async def update(tx: Transaction) -> Quote:
            current = await self.store.get_quote(call.tenant_id, quote_id, tx.session)
            products = await self.store.products_by_id(
                call.tenant_id, [line.product_id for line in changes.lines], tx.session
            )
            change = current.apply_update(
                changes, paths, products, expected_version, now_ms(self.clock)
            )
            _require_open(await self._opportunity_of(current, tx))
            if not change.changed_paths:
                return current
            await self.store.replace_quote(current.version, change.quote, tx.session)
            await publish_on_key(
                tx, self.store, [events.quote_updated(change, current.version, call)]
            )
            return change.quote

        return await self.unit_of_work.run(update, retries=WRITE_RETRIES)

    async def send(self, call: CallContext, quote_id: str, expected_version: int | None) -> Quote:
        """DRAFT → SENT, arming its expiry timer in the same transaction."""

        def send(quote: Quote, now: datetime) -> Quote:
            return quote.send(expected_version, now)

        return await self._change_status(call, quote_id, send, needs_open=True, arm=True)

    async def accept(self, call: CallContext, quote_id: str, expected_version: int | None) -> Quote:
        """SENT → ACCEPTED; its expiry timer is cancelled."""

        def accept(quote: Quote, now: datetime) -> Quote:
            return quote.accept(expected_version, now)

        return await self._change_status(call, quote_id, accept, needs_open=True, arm=False)

    async def reject(
        self, call: CallContext, quote_id: str, reason: str, expected_version: int | None
    ) -> Quote:
        """SENT → REJECTED; its expiry timer is cancelled."""

        def reject(quote: Quote, now: datetime) -> Quote:
            return quote.reject(reason, expected_version, now)

        return await self._change_status(call, quote_id, reject, needs_open=False, arm=False)

    async def fire(self, timer: Timer, session: AsyncClientSession) -> TimerEvents:
        """The expiry timer's fire handler (in the timer's firing transaction): the quote
        expires if it is still SENT; otherwise nothing happens."""
        quote = await self.store.get_quote(timer.tenant_id, timer.payload["quote_id"], session)
        expired = quote.expire(now_ms(self.clock))
        if expired is None:
            return TimerEvents()
        await self.store.replace_quote(quote.version, expired, session)
        event = events.quote_status_changed(expired, quote.status, quote.version, current_call())
        return TimerEvents([event], sequence=await self.store.next_key_sequence(event.key, session))

    async def get(self, tenant_id: str, quote_id: str) -> Quote:
        """The quote revision, or ``NotFound``."""
        return await self.store.get_quote(tenant_id, quote_id)

    async def sent_with_opportunity(
        self, tenant_id: str, quote_id: str
    ) -> tuple[Quote, Opportunity]:
        """A quote that was sent (any status but DRAFT: ``QUOTE_NOT_SENT``), and its
        opportunity: what its document shows."""
        quote = await self.store.get_quote(tenant_id, quote_id)
        if quote.status is QuoteStatus.DRAFT:
            raise FailedPrecondition(
                QUOTE_NOT_SENT, quote.subject, "is a draft: only a sent quote has a document"
            )
        return quote, await self.store.get_opportunity(tenant_id, quote.opportunity_id)

    async def list_quotes(
        self, tenant_id: str, filters: Mapping[str, str], page_size: int, page_token: str
    ) -> tuple[list[Quote], str]:
        """A page of the quotes matching every filter (stored field → value), in id order."""
        query = PageQuery.of(
            {"op": "ListQuotes", "tenant": tenant_id, **filters}, page_size, page_token
        )
        found = await self.store.list_quotes(tenant_id, filters, after_id(query), query.limit)
        return query.page(found, lambda quote: [quote.id])

    async def _change_status(
        self, call: CallContext, quote_id: str, rule: QuoteRule, *, needs_open: bool, arm: bool
    ) -> Quote:
        async def change(tx: Transaction) -> Quote:
            current = await self.store.get_quote(call.tenant_id, quote_id, tx.session)
            changed = rule(current, now_ms(self.clock))
            if needs_open:
                _require_open(await self._opportunity_of(current, tx))
            await self.store.replace_quote(current.version, changed, tx.session)
            timer_id = expiry_timer_id(changed.id)
            if arm:
                timer = Timer(
                    timer_id,
                    changed.tenant_id,
                    changed.valid_until,
                    EXPIRY,
                    {"quote_id": changed.id},
                )
                await self.timers.schedule([timer], tx.session)
                tx.after_commit(lambda: self.timer_armed(timer.due_at))
            else:
                await self.timers.cancel(changed.tenant_id, [timer_id], tx.session)
            event = events.quote_status_changed(changed, current.status, current.version, call)
            await publish_on_key(tx, self.store, [event])
            return changed

        return await self.unit_of_work.run(change, retries=WRITE_RETRIES)

    async def _opportunity(
        self, tenant_id: str, opportunity_id: str, tx: Transaction
    ) -> Opportunity:
        try:
            return await self.store.get_opportunity(tenant_id, opportunity_id, tx.session)
        except NotFound:
            raise InvalidArgument.single("quote.opportunity_id", "no such opportunity") from None

    async def _opportunity_of(self, quote: Quote, tx: Transaction) -> Opportunity:
        return await self.store.get_opportunity(quote.tenant_id, quote.opportunity_id, tx.session)
