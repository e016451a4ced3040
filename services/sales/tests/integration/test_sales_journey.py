"""One customer's whole sales journey across the service's areas, on the real broker: a lead
from a campaign, its conversion, the opportunity through its stages, a quote sent and accepted,
the win, the ERP's order and a return, and the follow-up call the win arms. Every fact is an
event, and the events of each key arrive in the order the facts happened."""

from __future__ import annotations

from typing import Any

from crm.sales.v1 import activities_pb2 as apb
from crm.sales.v1 import events_pb2
from crm.sales.v1 import orders_pb2 as opb
from crm.sales.v1 import sales_pb2 as pb
from crm_testing.sales import (
    SalesUnderTest,
    create_pipeline,
    create_product,
    events_for,
    metadata,
    quote_request,
    unique_id,
)
from crm_testing.sales_orders import area_stubs, order_message, record_order


async def test_lead_to_conversion_to_quote_to_won_to_order_publishes_every_fact_in_order(
    infra: Any, sales: SalesUnderTest
) -> None:
    # A tenant of its own: its follow-up rule applies to no other test's wins.
    tenant = unique_id("journey")
    calls = metadata(tenant)
    async with area_stubs(sales) as stubs:
        rule = (
            await stubs.activities.SetFollowUpRule(
                apb.SetFollowUpRuleRequest(
                    rule=apb.FollowUpRule(
                        enabled=True,
                        after_won_deal=True,
                        after_order=True,
                        delay_days=7,
                        owner=apb.FOLLOW_UP_OWNER_DEAL_OWNER,
                        owner_id="account-desk",
                    )
                ),
                metadata=calls,
            )
        ).rule
        pipeline = await create_pipeline(sales, tenant)
        product = await create_product(sales, tenant=tenant)
        campaign = unique_id("campaign")
        email = f"{unique_id('journey')}@example.com"

        lead = (
            await sales.stub.CreateLead(
                pb.CreateLeadRequest(
                    lead=pb.Lead(
                        person_name="Jo Park",
                        email=email,
                        source=pb.LEAD_SOURCE_CAMPAIGN,
                        campaign_id=campaign,
                        owner_id="rep-1",
                    )
                ),
                metadata=calls,
            )
        ).lead
        await sales.stub.QualifyLead(pb.QualifyLeadRequest(id=lead.id), metadata=calls)
        converted = await sales.stub.ConvertLead(
            pb.ConvertLeadRequest(
                id=lead.id,
                opportunity=pb.Opportunity(
                    name="Support seats",
                    amount_minor=250_000,
                    currency="EUR",
                    pipeline_id=pipeline.id,
                ),
            ),
            metadata=calls,
        )
        contact_id = converted.lead.converted_contact_id
        opportunity = converted.opportunity
        assert opportunity.primary_contact_id == contact_id != ""
        assert (opportunity.source_lead_id, opportunity.campaign_id) == (lead.id, campaign)

        await sales.stub.MoveOpportunityStage(
            pb.MoveOpportunityStageRequest(id=opportunity.id, stage_id="proposal"),
            metadata=calls,
        )
        quote = (
            await sales.stub.CreateQuote(
                quote_request(
                    opportunity.id,
                    [pb.QuoteLine(product_id=product.id, quantity=200, tax_rate_basis_points=1900)],
                ),
                metadata=calls,
            )
        ).quote
        await sales.stub.SendQuote(pb.SendQuoteRequest(id=quote.id), metadata=calls)
        accepted = (
            await sales.stub.AcceptQuote(pb.AcceptQuoteRequest(id=quote.id), metadata=calls)
        ).quote
        won = (
            await sales.stub.WinOpportunity(
                pb.WinOpportunityRequest(id=opportunity.id, reason="best support terms"),
                metadata=calls,
            )
        ).opportunity
        assert won.stage_id == "won"
        assert [c.to_stage_id for c in won.stage_history] == ["qualify", "proposal", "won"]

        order = await record_order(
            stubs,
            tenant,
            order_message(
                contact_id=contact_id,
                opportunity_id=opportunity.id,
                currency="EUR",
                lines=((200, accepted.net_total_minor, 150_000),),
            ),
        )
        returned = await stubs.orders.RecordReturn(
            opb.RecordReturnRequest(
                **{
                    "return": opb.Return(
                        external_id=unique_id("RMA"),
                        order_id=order.id,
                        return_date="2026-03-20",
                        lines=[
                            opb.ReturnLine(
                                line_number=1,
                                quantity=10,
                                revenue_minor=accepted.net_total_minor // 20,
                                cost_minor=7_500,
                            )
                        ],
                    )
                }
            ),
            metadata=calls,
        )
        assert returned.ByteSize() > 0

    # The lead's own key: its life until conversion.
    lead_events = await events_for(infra.kafka_bootstrap, lead.id, 3)
    assert [e.type for e in lead_events] == [
        "crm.sales.v1.LeadCreated",
        "crm.sales.v1.LeadStatusChanged",
        "crm.sales.v1.LeadConverted",
    ]
    # The customer's key: the deal, its quote, the win and the follow-up it arms, the order
    # (the same purchase: no second follow-up) and the return, in the order they happened.
    expected = [
        "crm.sales.v1.OpportunityCreated",
        "crm.sales.v1.OpportunityStageChanged",
        "crm.sales.v1.QuoteCreated",
        "crm.sales.v1.QuoteStatusChanged",
        "crm.sales.v1.QuoteStatusChanged",
        "crm.sales.v1.OpportunityWon",
        "crm.sales.v1.FollowUpScheduled",
        "crm.sales.v1.OrderRecorded",
        "crm.sales.v1.ReturnRecorded",
    ]
    customer = await events_for(infra.kafka_bootstrap, contact_id, len(expected))
    assert [e.type for e in customer] == expected
    assert {str(e.actor) for e in customer} == {"agent:alice"}
    assert {e.tenant_id for e in customer} == {tenant}
    assert [e.time for e in customer] == sorted(e.time for e in customer)

    created = customer[0].decode()
    assert isinstance(created, events_pb2.OpportunityCreated)
    assert (created.opportunity.amount_minor, created.opportunity.currency) == (250_000, "EUR")
    assert created.opportunity.source_lead_id == lead.id
    sent, accepted_event = customer[3].decode(), customer[4].decode()
    assert isinstance(sent, events_pb2.QuoteStatusChanged)
    assert isinstance(accepted_event, events_pb2.QuoteStatusChanged)
    assert (sent.quote.status, accepted_event.quote.status) == (
        pb.QUOTE_STATUS_SENT,
        pb.QUOTE_STATUS_ACCEPTED,
    )
    win = customer[5].decode()
    assert isinstance(win, events_pb2.OpportunityWon)
    assert win.change.to_stage_id == "won"
    assert win.change.win_probability_percent == 100
    follow_up = customer[6].decode()
    assert follow_up.origin.rule_id == rule.id  # type: ignore[attr-defined]
    assert follow_up.opportunity_id == opportunity.id  # type: ignore[attr-defined]
    recorded = customer[7].decode()
    assert recorded.order.id == order.id  # type: ignore[attr-defined]
    assert recorded.order.revenue_total_minor == accepted.net_total_minor  # type: ignore[attr-defined]
