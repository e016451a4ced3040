"""A short simulated company against the real services, through the gateway: the services run
on an accelerated clock, the simulator plays one day of a small company in under a minute, and
the gateway's GetKpis shows its tickets, a perception gap and survey answers; its sales team's
leads, deals and quotes make the summary's sales block, which agrees with the sales API."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest

from crm.gateway.v1 import gateway_pb2_grpc
from crm.gateway.v1 import sales_pb2_grpc as gateway_sales_pb2_grpc
from crm.sales.v1 import activities_pb2 as apb
from crm.sales.v1 import campaigns_pb2 as campb
from crm.sales.v1 import orders_pb2 as opb
from crm.sales.v1 import sales_pb2 as spb
from crm_devstack.credentials import DevCredentials
from crm_devstack.demo import format_kpi_summary, kpi_request, plan_company_run, sales_block
from crm_devstack.pytest_plugin import Infra
from crm_devstack.sales_team import SalesProfile, read_sales_summary
from crm_devstack.services import ServiceProcess
from crm_devstack.simulator import CompanyProfile, OfficeHours, SimulatedCompany

pytestmark = pytest.mark.integration

# Open long hours every day, so that any simulated day holds working time.
PROFILE = CompanyProfile(
    hours=OfficeHours(timezone="UTC", weekdays=(1, 2, 3, 4, 5, 6, 7), opens=6 * 60, closes=1440),
    customers=(25, 30),
    issues_per_customer_day=1.2,
    chatter_per_day=10.0,
    answer_rate=0.9,
    # Deals move three times as fast as the demo's, so that one day holds won and lost ones.
    sales=SalesProfile(web_leads_per_day=14.0, interest_posts_per_day=4.0, pace=0.3),
)
# Generous: services that start faster only make the simulated span a little longer.
STARTUP = timedelta(seconds=45)


async def _start_services(
    infra: Infra, clock_env: Mapping[str, str], credentials: DevCredentials
) -> list[ServiceProcess]:
    """Contacts, service desk, metrics, sales and the gateway, each on a database of its own."""
    suffix = uuid.uuid4().hex[:8]

    def env(name: str, **extra: str) -> dict[str, str]:
        return {**clock_env, "MONGODB_DATABASE": f"sim_{name}_{suffix}", **extra}

    contacts, metrics = await asyncio.gather(
        infra.start_service("contacts", env=env("contacts")),
        infra.start_service(
            "metrics",
            env=env(
                "metrics",
                CONSUMER_GROUP=f"sim-metrics-{suffix}",
                VIEW_REFRESH_SECONDS="0.2",
                CHECKPOINT_INTERVAL_SECONDS="0.2",
            ),
            timeout=90,
        ),
    )
    desk, sales = await asyncio.gather(
        infra.start_service(
            "servicedesk", env=env("servicedesk", CONTACTS_ADDRESS=contacts.address)
        ),
        infra.start_service("sales", env=env("sales", CONTACTS_ADDRESS=contacts.address)),
    )
    gateway = await infra.start_service(
        "gateway",
        env={
            **clock_env,
            "CONTACTS_ADDRESSES": contacts.address,
            "SERVICEDESK_ADDRESSES": desk.address,
            "METRICS_ADDRESSES": metrics.address,
            "SALES_ADDRESSES": sales.address,
            "JWKS_FILE": str(credentials.jwks_file),
            "API_KEYS_FILE": str(credentials.api_keys_file),
        },
    )
    return [gateway, desk, sales, metrics, contacts]


@pytest.mark.timeout(480)
async def test_a_simulated_day_through_the_gateway_shows_tickets_a_perception_gap_and_csat(
    infra: Infra, tmp_path: Path
) -> None:
    run = plan_company_run(
        days=1, wall=timedelta(seconds=40), seed=3, startup=STARTUP, profile=PROFILE, working_days=0
    )
    tenant = f"simtest-{uuid.uuid4().hex[:8]}"
    credentials = DevCredentials.ensure(tmp_path / "credentials")
    services = await _start_services(infra, run.service_env, credentials)
    gateway = services[0]
    try:

        def tokens(role: str, subject: str) -> str:
            return credentials.token(tenant, role, subject)

        async with grpc.aio.insecure_channel(gateway.address) as channel:
            company = SimulatedCompany(
                channel, tokens, run.clock, seed=3, days=None, trickle=False, profile=PROFILE
            )
            report = await asyncio.wait_for(company.run(asyncio.Event()), timeout=240)
            assert company.history_done.is_set()
            assert report.errors == 0, report.errors_by_call
            assert report.contacts >= PROFILE.customers[0]
            assert report.tickets >= 10
            assert report.surveys_answered > 0
            team = company.sales.report
            assert team.leads >= 10
            assert team.converted > 0
            assert team.quotes_sent > 0
            assert team.quotes_accepted > 0
            assert team.won > 0
            assert team.lost + team.disqualified > 0

            # The summary's sales block, and the sales API it was computed from.
            analyst_token = tokens("analyst", "test")
            summary = await read_sales_summary(channel, analyst_token)
            lines = await sales_block(channel, analyst_token, company)
            printed = format_kpi_summary("Test", None, None, {}, {}, report, lines)
            sales_api = gateway_sales_pb2_grpc.SalesServiceStub(channel)
            as_analyst = (("authorization", f"Bearer {analyst_token}"),)
            opportunities = (
                await sales_api.ListOpportunities(
                    spb.ListOpportunitiesRequest(page_size=500), metadata=as_analyst, timeout=10
                )
            ).opportunities
            quotes = (
                await sales_api.ListQuotes(
                    spb.ListQuotesRequest(page_size=500), metadata=as_analyst, timeout=10
                )
            ).quotes
            campaigns_api = gateway_sales_pb2_grpc.CampaignServiceStub(channel)
            campaigns = (
                await campaigns_api.ListCampaigns(
                    campb.ListCampaignsRequest(page_size=500), metadata=as_analyst, timeout=10
                )
            ).campaigns
            orders_api = gateway_sales_pb2_grpc.OrderServiceStub(channel)
            orders = (
                await orders_api.ListOrders(
                    opb.ListOrdersRequest(page_size=500), metadata=as_analyst, timeout=10
                )
            ).orders
            calls = (
                await gateway_sales_pb2_grpc.ActivityServiceStub(channel).ListActivities(
                    apb.ListActivitiesRequest(page_size=500, kind=apb.ACTIVITY_KIND_CALL),
                    metadata=as_analyst,
                    timeout=10,
                )
            ).activities
            returns = (
                await orders_api.ListReturns(
                    opb.ListReturnsRequest(page_size=500), metadata=as_analyst, timeout=10
                )
            ).returns
            leads = (
                await sales_api.ListLeads(
                    spb.ListLeadsRequest(page_size=500), metadata=as_analyst, timeout=10
                )
            ).leads

            stub = gateway_pb2_grpc.MetricsServiceStub(channel)
            analyst = (("authorization", f"Bearer {tokens('analyst', 'test')}"),)
            assert company.history_start is not None
            start = company.history_start - timedelta(days=1)
            end = run.clock.now() + timedelta(hours=1)
            request = kpi_request(
                ["tickets_created", "perception_gap", "customer_wait", "company_frt", "csat"],
                start,
                end,
            )
            totals: dict[str, Any] = {}
            async with asyncio.timeout(90):
                while True:
                    reply = await stub.GetKpis(request, metadata=analyst, timeout=10)
                    totals = {
                        value.kpi.partition("@")[0]: value
                        for group in reply.groups[:1]
                        for value in group.totals
                    }
                    created = totals.get("tickets_created")
                    answered = totals.get("csat")
                    if (
                        created is not None
                        and created.sum >= report.tickets
                        and answered is not None
                        and answered.count >= report.surveys_answered
                    ):
                        break
                    await asyncio.sleep(0.5)
    finally:
        for process in services:
            await process.stop()

    assert totals["tickets_created"].sum == report.tickets

    # The sales block: present, and its numbers are the API's (and the team's own counts).
    assert any(line.startswith("  sales        pipeline") for line in printed)
    assert any(line.startswith("  win rate") for line in printed)
    assert any(line.startswith("  quotes") for line in printed)
    open_deals = [o for o in opportunities if o.status == spb.STAGE_KIND_OPEN]
    won = [o for o in opportunities if o.status == spb.STAGE_KIND_WON]
    lost = [o for o in opportunities if o.status == spb.STAGE_KIND_LOST]
    assert summary.open_count == len(open_deals)
    assert summary.open_value() == (
        {"EUR": sum(o.amount_minor for o in open_deals)} if open_deals else {}
    )
    for stage, (count, amounts) in summary.open_by_stage.items():
        in_stage = [o for o in open_deals if o.stage_id == stage]
        assert count == len(in_stage)
        assert amounts == {"EUR": sum(o.amount_minor for o in in_stage)}
    assert (summary.won, summary.lost) == (len(won), len(lost)) == (team.won, team.lost)
    assert summary.won_value == {"EUR": sum(o.amount_minor for o in won)}
    rate = summary.win_rate_by_count()
    assert rate is not None
    assert rate == len(won) / (len(won) + len(lost))
    assert f"{100 * rate:.0f} % by count ({len(won)} won of {len(won) + len(lost)} closed)" in (
        "\n".join(printed)
    )
    sent = [q for q in quotes if q.status != spb.QUOTE_STATUS_DRAFT]
    accepted = [q for q in quotes if q.status == spb.QUOTE_STATUS_ACCEPTED]
    assert (summary.quotes_sent, summary.quotes_accepted) == (len(sent), len(accepted))
    assert (summary.quotes_sent, summary.quotes_accepted) == (
        team.quotes_sent,
        team.quotes_accepted,
    )
    assert f"{len(sent)} sent · {len(accepted)} accepted" in "\n".join(printed)
    assert summary.leads == team.leads
    assert summary.leads_converted == team.converted

    # The campaign funnel: the ingestion summaries' accepted counts, the API's leads and wins.
    text = "\n".join(printed)
    assert team.campaigns == summary.campaigns == len(campaigns) == 3
    assert all(c.status == campb.CAMPAIGN_STATUS_COMPLETED for c in campaigns)
    assert summary.campaign_cost == {"EUR": sum(c.cost_total_minor for c in campaigns)}
    funnel = [team.funnel[k] for k in ("sent", "delivered", "opened", "clicked", "responded")]
    assert funnel[0] > 0
    assert funnel == sorted(funnel, reverse=True)
    assert team.refused_sends > 0  # customers without e-mail consent
    campaign_leads = [lead for lead in leads if lead.campaign_id]
    assert summary.campaign_leads == len(campaign_leads) >= team.campaign_leads > 0
    assert team.campaign_leads == funnel[4]  # every responder became a lead
    campaign_won = [o for o in won if o.campaign_id]
    assert summary.campaign_won == len(campaign_won)
    assert (
        f"funnel {funnel[0]} sent → {funnel[1]} delivered → {funnel[2]} opened → "
        f"{funnel[3]} clicked → {funnel[4]} responded → {len(campaign_leads)} leads → "
        f"{len(campaign_won)} won · {team.refused_sends} sends refused"
    ) in text
    # The ERP's orders: one per won deal it got to, as ListOrders has them.
    assert summary.orders == len(orders) == team.orders <= team.won
    assert {o.opportunity_id for o in orders} <= {o.id for o in won}
    revenue = sum(o.revenue_total_minor for o in orders)
    assert summary.order_revenue == ({"EUR": revenue} if orders else {})
    assert f"  orders       {len(orders)} · revenue " in text
    assert summary.returns == len(returns) == team.returns
    assert {r.order_id for r in returns} <= {o.id for o in orders}
    # The follow-up calls the rule's timers created (the rep completes those due in the run).
    follow_ups = [c for c in calls if c.HasField("follow_up")]
    assert summary.follow_up_calls == len(follow_ups)
    assert all(c.opportunity_id in {o.id for o in won} for c in follow_ups)
    assert team.follow_ups_completed == sum(
        1 for c in follow_ups if c.status == apb.ACTIVITY_STATUS_COMPLETED
    )
    assert f"follow-up calls {len(follow_ups)} created" in text
    gap = totals["perception_gap"]
    assert gap.count > 0
    assert gap.HasField("p90")
    assert gap.p90 > 0  # customers waited longer than the company counted
    assert totals["customer_wait"].p90 > totals["company_frt"].p90
    csat = totals["csat"]
    assert csat.count == report.surveys_answered
    assert csat.HasField("value")
