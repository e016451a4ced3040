"""Activity use cases (create, update, complete, the reads) and the follow-up calls after a
purchase.

Follow-ups: a won opportunity (:meth:`FollowUps.after_win`, called by
:class:`~crm_sales.use_cases.opportunities.Opportunities` in the win's transaction) or a
recorded order (:meth:`FollowUps.after_order`, in the order's transaction) reads the tenant's
rule; if it asks for a follow-up and the purchase has not armed one yet (the ``follow_ups``
record, inserted in the same transaction), a durable timer ``follow-up:<purchase>`` is armed,
due ``delay_days`` later on the service's clock, with the rule's id and version, the owner and
the links in its payload, and ``FollowUpScheduled`` is published. When the timer fires
(:meth:`FollowUps.fire`, in the firing transaction) the call activity is created with the id
chosen when it was armed, with ``ActivityCreated``; exactly once, since the timer fires once and
an activity of that id is never created twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from pymongo.asynchronous.client_session import AsyncClientSession

from crm_platform.clock import Clock
from crm_platform.context import CallContext, current_call
from crm_platform.errors import FieldViolation, InvalidArgument, NotFound
from crm_platform.idempotency import IdempotentRequest
from crm_platform.paging import PageQuery
from crm_platform.timers import Timer, TimerEvents, TimerStore
from crm_platform.unit_of_work import Transaction, UnitOfWork
from crm_sales import activities_events as events
from crm_sales.activities_storage import ActivitiesStore
from crm_sales.domain.activities import (
    Activity,
    ActivityDirection,
    ActivityInput,
    ActivityKind,
    FollowUpOrigin,
    FollowUpRule,
    FollowUpRuleInput,
    activity_key,
    purchase_of_order,
    purchase_of_win,
)
from crm_sales.domain.opportunity import Opportunity
from crm_sales.domain.orders import Order
from crm_sales.storage import SalesStore
from crm_sales.use_cases._common import WRITE_RETRIES, after_id, new_id, now_ms, publish_on_key

OPERATION = "activity"
"""The idempotency records' operation for activity creates."""
FOLLOW_UP = "follow_up_call"
"""The kind of a follow-up's timer."""


def follow_up_timer_id(purchase: str) -> str:
    """The name of a purchase's follow-up timer."""
    return f"follow-up:{purchase}"


class Activities:
    """The activity use cases of every tenant; ``clock`` stamps the facts."""

    def __init__(
        self,
        store: SalesStore,
        activities: ActivitiesStore,
        unit_of_work: UnitOfWork,
        clock: Clock,
    ) -> None:
        self.store = store
        self.activities = activities
        self.unit_of_work = unit_of_work
        self.clock = clock

    async def _links(
        self, tenant_id: str, lead_id: str, opportunity_id: str, tx: Transaction
    ) -> tuple[str | None, str | None]:
        """The event keys of the linked lead and opportunity; ``InvalidArgument`` on the
        field of one the tenant does not have."""
        lead_key = opportunity_key = None
        problems: list[tuple[str, str]] = []
        if lead_id:
            try:
                lead_key = (await self.store.get_lead(tenant_id, lead_id, tx.session)).event_key
            except NotFound:
                problems.append(("activity.lead_id", "no such lead"))
        if opportunity_id:
            try:
                found = await self.store.get_opportunity(tenant_id, opportunity_id, tx.session)
                opportunity_key = found.event_key
            except NotFound:
                problems.append(("activity.opportunity_id", "no such opportunity"))
        if problems:
            raise InvalidArgument([FieldViolation(f, d) for f, d in problems])
        return lead_key, opportunity_key

    async def create(
        self, call: CallContext, fields: ActivityInput, request: IdempotentRequest | None
    ) -> Activity:
        """A new activity, or, for a retry of ``request``, the first result."""
        activity_id = new_id()
        now = now_ms(self.clock)

        async def create(tx: Transaction) -> Activity:
            if (earlier := await tx.earlier_result(request)) is not None:
                return await self.activities.get_activity(call.tenant_id, earlier, tx.session)
            Activity.create(  # the request's own faults first, before any lookup
                id=activity_id, tenant_id=call.tenant_id, fields=fields, event_key="", now=now
            )
            lead_key, opportunity_key = await self._links(
                call.tenant_id, fields.lead_id.strip(), fields.opportunity_id.strip(), tx
            )
            activity = Activity.create(
                id=activity_id,
                tenant_id=call.tenant_id,
                fields=fields,
                event_key=activity_key(fields.contact_id.strip(), opportunity_key, lead_key),
                now=now,
            )
            await self.activities.insert_activity(activity, tx.session)
            await tx.remember(request, activity.id, activity.create_time)
            await publish_on_key(tx, self.store, [events.activity_created(activity, call)])
            return activity

        return await self.unit_of_work.run(create, retries=WRITE_RETRIES)

    async def update(
        self,
        call: CallContext,
        activity_id: str,
        changes: ActivityInput,
        paths: Sequence[str],
        expected_version: int | None,
    ) -> Activity:
        """Replace the fields named by ``paths``; nothing is written when nothing changes."""

        async def update(tx: Transaction) -> Activity:
            current = await self.activities.get_activity(call.tenant_id, activity_id, tx.session)
            change = current.apply_update(changes, paths, expected_version, now_ms(self.clock))
            if not change.changed_paths:
                return current
            updated = change.activity
            await self._links(
                call.tenant_id,
                updated.lead_id if "lead_id" in change.changed_paths else "",
                updated.opportunity_id if "opportunity_id" in change.changed_paths else "",
                tx,
            )
            await self.activities.replace_activity(current.version, updated, tx.session)
            await publish_on_key(
                tx, self.store, [events.activity_updated(change, current.version, call)]
            )
            return updated

        return await self.unit_of_work.run(update, retries=WRITE_RETRIES)

    async def complete(
        self,
        call: CallContext,
        activity_id: str,
        outcome: str,
        duration_seconds: int,
        completed_time: datetime | None,
        expected_version: int | None,
    ) -> Activity:
        """An open activity completed."""

        async def complete(tx: Transaction) -> Activity:
            current = await self.activities.get_activity(call.tenant_id, activity_id, tx.session)
            done = current.complete(
                outcome, duration_seconds, completed_time, expected_version, now_ms(self.clock)
            )
            await self.activities.replace_activity(current.version, done, tx.session)
            await publish_on_key(
                tx, self.store, [events.activity_completed(done, current.version, call)]
            )
            return done

        return await self.unit_of_work.run(complete, retries=WRITE_RETRIES)

    async def get(self, tenant_id: str, activity_id: str) -> Activity:
        """The activity, or ``NotFound``."""
        return await self.activities.get_activity(tenant_id, activity_id)

    async def list_activities(
        self, tenant_id: str, filters: Mapping[str, str], page_size: int, page_token: str
    ) -> tuple[list[Activity], str]:
        """A page of the activities matching every filter (stored field → value), in id
        order."""
        query = PageQuery.of(
            {"op": "ListActivities", "tenant": tenant_id, **filters}, page_size, page_token
        )
        found = await self.activities.list_activities(
            tenant_id, filters, after_id(query), query.limit
        )
        return query.page(found, lambda activity: [activity.id])


class FollowUps:
    """The follow-up rule and the follow-up calls it schedules. ``timer_armed`` is told each
    armed due time after the commit (the timer worker's ``notify``)."""

    def __init__(
        self,
        store: SalesStore,
        activities: ActivitiesStore,
        unit_of_work: UnitOfWork,
        timers: TimerStore,
        clock: Clock,
    ) -> None:
        self.store = store
        self.activities = activities
        self.unit_of_work = unit_of_work
        self.timers = timers
        self.clock = clock
        self.timer_armed: Callable[[datetime], None] = lambda due_at: None

    async def set_rule(
        self, call: CallContext, fields: FollowUpRuleInput, expected_version: int | None
    ) -> FollowUpRule:
        """The rule's next version (purchases armed before keep the version they armed)."""
        now = now_ms(self.clock)
        rule_id = new_id()

        async def change(tx: Transaction) -> FollowUpRule:
            current = await self.activities.get_rule(call.tenant_id, tx.session)
            changed = current.set(fields, expected_version, rule_id, now)
            await self.activities.save_rule(current.version, changed, tx.session)
            event = events.follow_up_rule_set(changed, current.version, call)
            await publish_on_key(tx, self.store, [event])
            return changed

        return await self.unit_of_work.run(change, retries=WRITE_RETRIES)

    async def rule(self, tenant_id: str) -> FollowUpRule:
        """The tenant's rule (version 0 when never set)."""
        return await self.activities.get_rule(tenant_id)

    async def after_win(self, tx: Transaction, call: CallContext, won: Opportunity) -> None:
        """In the win's transaction: arm the deal's follow-up if the rule asks for one."""
        await self._arm(
            tx,
            call,
            purchase=purchase_of_win(won.id),
            order=False,
            deal_owner=won.owner_id,
            contact_id=won.primary_contact_id,
            opportunity=won,
            order_id="",
            what=f"the won deal {won.name!r}",
        )

    async def after_order(
        self, tx: Transaction, call: CallContext, order: Order, opportunity: Opportunity | None
    ) -> None:
        """In the order's transaction: arm its follow-up if the rule asks for one (an order
        fulfilling an opportunity is that opportunity's purchase)."""
        await self._arm(
            tx,
            call,
            purchase=purchase_of_order(order.id, order.opportunity_id),
            order=True,
            deal_owner=opportunity.owner_id if opportunity is not None else "",
            contact_id=order.contact_id
            or (opportunity.primary_contact_id if opportunity is not None else ""),
            opportunity=opportunity,
            order_id=order.id,
            what=f"order {order.external_id}",
        )

    async def _arm(
        self,
        tx: Transaction,
        call: CallContext,
        *,
        purchase: str,
        order: bool,
        deal_owner: str,
        contact_id: str,
        opportunity: Opportunity | None,
        order_id: str,
        what: str,
    ) -> None:
        tenant_id = call.tenant_id
        rule = await self.activities.get_rule(tenant_id, tx.session)
        now = now_ms(self.clock)
        plan = rule.follow_up_for(order=order, deal_owner=deal_owner, at=now)
        if plan is None or not (contact_id or opportunity is not None):
            return  # no rule for it, or nobody to call (an account's order without a deal)
        if await self.activities.follow_up_armed(tenant_id, purchase, tx.session):
            return  # this purchase has its follow-up (a win after a reopen, a second order)
        owner_id, due_at = plan
        activity_id = new_id()
        opportunity_id = opportunity.id if opportunity is not None else ""
        key = activity_key(contact_id, opportunity.event_key if opportunity else None, None)
        origin = FollowUpOrigin(rule.id, rule.version, purchase)
        timer = Timer(
            follow_up_timer_id(purchase),
            tenant_id,
            due_at,
            FOLLOW_UP,
            {
                "activity_id": activity_id,
                "purchase": purchase,
                "rule_id": rule.id,
                "rule_version": rule.version,
                "owner_id": owner_id,
                "contact_id": contact_id,
                "opportunity_id": opportunity_id,
                "order_id": order_id,
                "event_key": key,
                "subject": f"Follow-up call after {what}"[:200],
            },
        )
        await self.activities.arm_follow_up(
            tenant_id, purchase, activity_id, timer.due_at, tx.session
        )
        await self.timers.schedule([timer], tx.session)
        tx.after_commit(lambda: self.timer_armed(timer.due_at))
        scheduled = events.follow_up_scheduled(
            origin=origin,
            activity_id=activity_id,
            due_at=timer.due_at,
            contact_id=contact_id,
            opportunity_id=opportunity_id,
            order_id=order_id,
            owner_id=owner_id,
            key=key,
            call=call,
            time=now,
        )
        await publish_on_key(tx, self.store, [scheduled])

    async def fire(self, timer: Timer, session: AsyncClientSession) -> TimerEvents:
        """The follow-up timer's fire handler (in the firing transaction): the call activity,
        due now, with the rule's id and version."""
        payload = timer.payload
        tenant_id = timer.tenant_id
        if await self.activities.find_activity(tenant_id, payload["activity_id"], session):
            return TimerEvents()  # created already (cannot happen with one firing; kept safe)
        fields = ActivityInput(
            kind=ActivityKind.CALL,
            subject=payload["subject"],
            direction=ActivityDirection.OUTBOUND,
            due_time=timer.due_at,
            contact_id=payload["contact_id"],
            opportunity_id=payload["opportunity_id"],
            owner_id=payload["owner_id"],
        )
        activity = Activity.create(
            id=payload["activity_id"],
            tenant_id=tenant_id,
            fields=fields,
            event_key=payload["event_key"],
            now=now_ms(self.clock),
            follow_up=FollowUpOrigin(
                payload["rule_id"], int(payload["rule_version"]), payload["purchase"]
            ),
        )
        await self.activities.insert_activity(activity, session)
        await self.activities.mark_follow_up_fired(tenant_id, payload["purchase"], session)
        event = events.activity_created(activity, current_call())
        return TimerEvents([event], sequence=await self.store.next_key_sequence(event.key, session))
