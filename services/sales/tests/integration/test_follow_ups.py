"""Follow-up calls after a purchase: the tenant's rule arms a durable timer in the transaction of
a win or an order, and the timer creates the call, once per purchase. The sales service runs on
an accelerated clock (``CRM_CLOCK_*``, as in the quote-expiry test), so a day's delay passes in
wall seconds without a sleep."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crm.sales.v1 import activities_events_pb2 as aev
from crm.sales.v1 import activities_pb2 as apb
from crm.sales.v1 import sales_pb2 as pb
from crm_platform.clock import CLOCK_VARS, Clock, accelerated_env
from crm_platform.timers import TimerState
from crm_sales.use_cases.activities import follow_up_timer_id
from crm_testing.sales import (
    TENANT,
    create_opportunity,
    create_pipeline,
    events_for,
    metadata,
    running_sales,
    unique_id,
)
from crm_testing.sales_orders import area_stubs, order_message, record_order

pytestmark = pytest.mark.integration

RATE = 43_200.0  # one simulated day per two wall seconds


async def test_a_win_and_an_order_each_schedule_one_follow_up_call_fired_by_the_timers(
    infra: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = accelerated_env(datetime.now(UTC) - timedelta(days=2), RATE)
    clock = Clock.from_env(env)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    async with running_sales(infra, "sales_follow_ups") as sales, area_stubs(sales) as stubs:
        for name in CLOCK_VARS:
            monkeypatch.delenv(name)
        rule = (
            await stubs.activities.SetFollowUpRule(
                apb.SetFollowUpRuleRequest(
                    rule=apb.FollowUpRule(
                        enabled=True,
                        after_order=True,
                        after_won_deal=True,
                        delay_days=1,
                        owner=apb.FOLLOW_UP_OWNER_DEAL_OWNER,
                        owner_id="carol",
                    )
                ),
                metadata=metadata(),
            )
        ).rule
        assert (rule.version, bool(rule.id)) == (1, True)

        pipeline = await create_pipeline(sales)
        deal = await create_opportunity(sales, pipeline.id, owner_id="bob")
        contact = deal.primary_contact_id
        won_at = clock.now()
        await sales.stub.WinOpportunity(
            pb.WinOpportunityRequest(id=deal.id, stage_id="won"), metadata=metadata()
        )
        # Reopened and won again, then fulfilled by an order: one purchase, one follow-up.
        await sales.stub.ReopenOpportunity(
            pb.ReopenOpportunityRequest(id=deal.id, stage_id="qualify", reason="terms"),
            metadata=metadata(),
        )
        await sales.stub.WinOpportunity(
            pb.WinOpportunityRequest(id=deal.id, stage_id="won"), metadata=metadata()
        )
        await record_order(stubs, TENANT, order_message(contact_id=contact, opportunity_id=deal.id))
        # An order of another contact, recorded three times at once and once more by the ERP:
        # one order, one follow-up.
        buyer = unique_id("contact")
        message = order_message(contact_id=buyer)
        recorded = await asyncio.gather(*(record_order(stubs, TENANT, message) for _ in range(3)))
        order = recorded[0]
        assert recorded[1:] == [order, order]
        assert await record_order(stubs, TENANT, message) == order

        # Bounds of the reads, not waits for the timers: the calls come a simulated day later.
        on_deal = await events_for(infra.kafka_bootstrap, contact, 7)
        assert [e.type.removeprefix("crm.sales.v1.") for e in on_deal] == [
            "OpportunityCreated",
            "OpportunityWon",
            "FollowUpScheduled",
            "OpportunityReopened",
            "OpportunityWon",
            "OrderRecorded",
            "ActivityCreated",
        ]
        on_buyer = await events_for(infra.kafka_bootstrap, buyer, 3)
        assert [e.type.removeprefix("crm.sales.v1.") for e in on_buyer] == [
            "OrderRecorded",
            "FollowUpScheduled",
            "ActivityCreated",
        ]
        deal_call = aev.ActivityCreated.FromString(on_deal[-1].payload).activity
        buyer_call = aev.ActivityCreated.FromString(on_buyer[-1].payload).activity
        assert str(on_deal[-1].actor) == str(on_buyer[-1].actor) == "system:timers"
        assert (deal_call.kind, deal_call.status) == (
            apb.ACTIVITY_KIND_CALL,
            apb.ACTIVITY_STATUS_OPEN,
        )
        assert (deal_call.owner_id, deal_call.opportunity_id, deal_call.contact_id) == (
            "bob",
            deal.id,
            contact,
        )
        assert (buyer_call.owner_id, buyer_call.contact_id) == ("carol", buyer)
        assert deal_call.follow_up == apb.FollowUpOrigin(
            rule_id=rule.id, rule_version=1, purchase=f"opportunities/{deal.id}"
        )
        assert buyer_call.follow_up.purchase == f"orders/{order.id}"
        scheduled = aev.FollowUpScheduled.FromString(on_deal[2].payload)
        assert scheduled.activity_id == deal_call.id
        due = deal_call.due_time.ToDatetime(tzinfo=UTC)
        # A simulated day after the win (the bound only excludes the wrong clock).
        assert won_at + timedelta(days=1) <= due < won_at + timedelta(days=1, hours=12)

        # Exactly once: one activity per purchase, one armed record each, timers fired.
        for filters in (
            apb.ListActivitiesRequest(opportunity_id=deal.id),
            apb.ListActivitiesRequest(contact_id=buyer),
        ):
            listed = await stubs.activities.ListActivities(filters, metadata=metadata())
            assert len(listed.activities) == 1
        assert await sales.mongo.db["follow_ups"].count_documents({"tenant_id": TENANT}) == 2
        timers = sales.service.parts.extra["timers"].timers
        for purchase in (f"opportunities/{deal.id}", f"orders/{order.id}"):
            stored = await timers.get(TENANT, follow_up_timer_id(purchase))
            assert stored is not None
            assert (stored.state, stored.generation) == (TimerState.FIRED, 1)


async def test_no_rule_no_follow_up_and_the_rule_is_versioned(infra: Any) -> None:
    tenant = unique_id("t")
    async with running_sales(infra, "sales_no_rule") as sales, area_stubs(sales) as stubs:
        unset = (
            await stubs.activities.GetFollowUpRule(
                apb.GetFollowUpRuleRequest(), metadata=metadata(tenant)
            )
        ).rule
        assert (unset.version, unset.enabled) == (0, False)
        buyer = unique_id("contact")
        await record_order(stubs, tenant, order_message(contact_id=buyer))
        assert await sales.mongo.db["follow_ups"].count_documents({}) == 0
        first = (
            await stubs.activities.SetFollowUpRule(
                apb.SetFollowUpRuleRequest(
                    rule=apb.FollowUpRule(
                        enabled=True,
                        after_order=True,
                        delay_days=3,
                        owner=apb.FOLLOW_UP_OWNER_CONFIGURED,
                        owner_id="carol",
                    )
                ),
                metadata=metadata(tenant),
            )
        ).rule
        second = (
            await stubs.activities.SetFollowUpRule(
                apb.SetFollowUpRuleRequest(
                    rule=apb.FollowUpRule(enabled=False), expected_version=1
                ),
                metadata=metadata(tenant),
            )
        ).rule
        assert (second.id, second.version, second.enabled) == (first.id, 2, False)
        found = await events_for(infra.kafka_bootstrap, tenant, 2)
        assert [e.type for e in found] == ["crm.sales.v1.FollowUpRuleSet"] * 2
