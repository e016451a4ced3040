"""The sales team's plan and the summary's sales block, without a stack."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest

from crm.sales.v1 import activities_pb2 as apb
from crm.sales.v1 import campaigns_pb2 as campb
from crm.sales.v1 import orders_pb2 as opb
from crm.sales.v1 import sales_pb2 as spb
from crm_devstack.sales_team import (
    CAMPAIGNS,
    PRODUCTS,
    STAGES,
    SalesProfile,
    SalesReport,
    SalesSummary,
    SalesTeam,
    format_sales_summary,
    read_sales_summary,
)
from crm_devstack.simulator import SimulatedCompany
from crm_platform.clock import Clock


class _Page:
    def __init__(self, **items: Any) -> None:
        for name, value in items.items():
            setattr(self, name, value)


def test_the_summary_block_shows_open_value_by_stage_win_rates_and_quotes() -> None:
    summary = SalesSummary(
        stages=[("qualify", "Qualify"), ("demo", "Demo"), ("proposal", "Proposal")],
        open_by_stage={"qualify": (2, {"EUR": 150_000}), "proposal": (1, {"EUR": 1_234_567})},
        won=3,
        lost=1,
        won_value={"EUR": 300_000},
        lost_value={"EUR": 100_000},
        quotes_sent=5,
        quotes_accepted=3,
        leads=9,
        leads_converted=5,
        leads_disqualified=2,
    )
    text = "\n".join(format_sales_summary(summary))
    assert "pipeline 3 open, 13,845.67 EUR" in text
    assert "Qualify" in text
    assert "1,500.00 EUR" in text
    assert "Demo               0 open" in text
    assert "75 % by count (3 won of 4 closed)" in text
    assert "75 % by value (3,000.00 of 4,000.00 EUR)" in text
    assert "5 sent · 3 accepted" in text
    assert "leads 9 (5 converted, 2 disqualified)" in text


def test_without_closed_deals_the_win_rate_is_a_dash() -> None:
    text = "\n".join(format_sales_summary(SalesSummary()))
    assert "- by count (0 won of 0 closed) · - by value" in text
    assert "pipeline 0 open, 0.00 EUR" in text


class _FakeSales:
    """ListPipelines, ListOpportunities, ListQuotes, ListLeads with two pages each."""

    def __init__(self) -> None:
        pipeline = spb.Pipeline(
            id="p",
            stages=[
                spb.Stage(id=stage, name=name, win_probability_percent=p, kind=kind)  # type: ignore[arg-type]
                for stage, name, p, kind in STAGES
            ],
        )
        opportunities = [
            spb.Opportunity(
                id=i,
                stage_id=stage,
                status=status,
                amount_minor=amount,
                currency="EUR",
                campaign_id=campaign,
            )
            for i, stage, status, amount, campaign in (
                ("a", "demo", spb.STAGE_KIND_OPEN, 10, ""),
                ("b", "demo", spb.STAGE_KIND_OPEN, 5, "k1"),
                ("c", "won", spb.STAGE_KIND_WON, 70, "k1"),
                ("d", "lost", spb.STAGE_KIND_LOST, 30, ""),
                ("e", "won", spb.STAGE_KIND_WON, 0, ""),
            )
        ]
        quotes = [
            spb.Quote(id="q1", status=spb.QUOTE_STATUS_DRAFT),
            spb.Quote(id="q2", status=spb.QUOTE_STATUS_SENT),
            spb.Quote(id="q3", status=spb.QUOTE_STATUS_ACCEPTED),
            spb.Quote(id="q4", status=spb.QUOTE_STATUS_REJECTED),
        ]
        leads = [
            spb.Lead(id="l1", status=spb.LEAD_STATUS_CONVERTED),
            spb.Lead(id="l2", status=spb.LEAD_STATUS_DISQUALIFIED),
            spb.Lead(id="l3", status=spb.LEAD_STATUS_WORKING, campaign_id="k1"),
            spb.Lead(id="l4", status=spb.LEAD_STATUS_NEW, campaign_id="k2"),
        ]
        campaigns = [
            campb.Campaign(id=f"k{n}", currency="EUR", cost_total_minor=100 * n) for n in (1, 2, 3)
        ]
        orders = [
            opb.Order(id=f"o{n}", currency="EUR", revenue_total_minor=1000 * n) for n in (1, 2, 3)
        ]
        returns = [opb.Return(id="r1", currency="EUR", revenue_total_minor=500)]
        follow_up = apb.FollowUpOrigin(rule_id="rule", purchase="won:c")
        activities = [
            apb.Activity(id="c1", status=apb.ACTIVITY_STATUS_OPEN, follow_up=follow_up),
            apb.Activity(id="c2", status=apb.ACTIVITY_STATUS_COMPLETED, follow_up=follow_up),
            apb.Activity(id="c3", status=apb.ACTIVITY_STATUS_OPEN),  # a call a rep logged
        ]
        self.data: dict[str, list[Any]] = {
            "pipelines": [pipeline],
            "opportunities": opportunities,
            "quotes": quotes,
            "leads": leads,
            "campaigns": campaigns,
            "orders": orders,
            "returns": returns,
            "activities": activities,
        }

    def _list(self, name: str) -> Any:
        async def call(request: Any, **_: Any) -> Any:
            items = self.data[name]
            start = int(request.page_token or 0)
            page = items[start : start + 2]
            token = str(start + 2) if start + 2 < len(items) else ""
            return _Page(**{name: page, "next_page_token": token})

        return call

    def __getattr__(self, method: str) -> Any:
        name = {
            "ListPipelines": "pipelines",
            "ListOpportunities": "opportunities",
            "ListQuotes": "quotes",
            "ListLeads": "leads",
            "ListCampaigns": "campaigns",
            "ListOrders": "orders",
            "ListReturns": "returns",
            "ListActivities": "activities",
        }[method]
        return self._list(name)


async def test_the_summary_is_computed_from_every_page_of_the_api(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for stub in ("Sales", "Campaign", "Order", "Activity"):
        monkeypatch.setattr(
            f"crm_devstack.sales_team.sales_gw.{stub}ServiceStub", lambda channel: _FakeSales()
        )
    summary = await read_sales_summary(None, "token")  # type: ignore[arg-type]
    assert [stage for stage, _ in summary.stages] == ["qualify", "demo", "proposal", "negotiation"]
    assert summary.open_by_stage == {"demo": (2, {"EUR": 15})}
    assert (summary.won, summary.lost) == (2, 1)
    assert summary.win_rate_by_value("EUR") == 0.7
    assert (summary.quotes_sent, summary.quotes_accepted) == (3, 1)
    assert (summary.leads, summary.leads_converted, summary.leads_disqualified) == (4, 1, 1)
    assert (summary.campaigns, summary.campaign_cost) == (3, {"EUR": 600})
    assert (summary.campaign_leads, summary.campaign_won) == (2, 1)
    assert (summary.orders, summary.order_revenue) == (3, {"EUR": 6000})
    assert (summary.returns, summary.return_revenue) == (1, {"EUR": 500})
    assert (summary.follow_up_calls, summary.follow_up_calls_open) == (2, 1)


def test_the_block_shows_the_campaign_funnel_and_the_orders() -> None:
    report = SalesReport(refused_sends=4)
    report.funnel.update(sent=20, delivered=19, opened=9, clicked=4, responded=2, unsubscribed=1)
    summary = SalesSummary(
        campaigns=2,
        campaign_cost={"EUR": 150_000},
        campaign_leads=3,
        campaign_won=1,
        orders=5,
        order_revenue={"EUR": 1_234_500},
        returns=1,
        return_revenue={"EUR": 10_000},
        follow_up_calls=3,
        follow_up_calls_open=1,
    )
    text = "\n".join(format_sales_summary(summary, report))
    assert (
        "campaigns    2 · cost 1,500.00 EUR · funnel 20 sent → 19 delivered → 9 opened → "
        "4 clicked → 2 responded → 3 leads → 1 won · 4 sends refused · 1 unsubscribed"
    ) in text
    assert (
        "orders       5 · revenue 12,345.00 EUR · returns 1 (100.00 EUR) · "
        "follow-up calls 3 created (1 open)"
    ) in text


async def test_the_plan_is_the_same_for_a_seed_and_as_many_leads_as_the_profile_says() -> None:
    start = datetime(2026, 3, 2, tzinfo=UTC)
    end = start + timedelta(days=2)

    def planned(seed: int) -> list[tuple[datetime, str]]:
        clock = Clock()
        company = SimulatedCompany(
            grpc.aio.insecure_channel("127.0.0.1:9"),  # never called
            lambda role, subject: "t",
            clock,
            seed=seed,
        )
        team: SalesTeam = company.sales
        team.pipeline_id = "p"
        team.product_ids = {sku: sku.lower() for sku, *_ in PRODUCTS}
        team.campaign_ids = {name: f"k-{name}" for name, *_ in CAMPAIGNS}
        team.profile = SalesProfile(web_leads_per_day=5, interest_posts_per_day=2)
        team.plan(start, end)
        return sorted((at, label) for at, _, label, _, _ in company._agenda)

    first = planned(7)
    assert first == planned(7)
    assert first != planned(8)
    assert sum(label.startswith("webform") for _, label in first) == 10
    assert sum(label.startswith("interest") for _, label in first) == 4
    assert sum(label.startswith("campaign ") for _, label in first) == len(CAMPAIGNS)
    assert sum(label == "campaigns complete" for _, label in first) == 1
    assert all(start <= at <= end for at, _ in first)
