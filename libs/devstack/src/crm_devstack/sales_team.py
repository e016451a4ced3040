"""The simulated company's sales team, and the sales block of the summary.

Played through the gateway's ``SalesService`` like the rest of the simulation
(:mod:`crm_devstack.simulator`), with tokens of the roles that would do each step:

- the **admin** sets up a pipeline (qualify → demo → proposal → negotiation → won | lost) and
  the products with their EUR prices, once per tenant;
- the **connectors** (an integration) bring in leads from the web form, some from existing
  customers (their conversion finds the contact by e-mail: no duplicate person), most from
  prospects; and they ingest posts of people asking about the product (social listening);
- the **sales reps** (role ``sales``) turn such a post into a lead whose origin is the service
  desk's mention id, work and qualify or disqualify leads, convert them (contact, organisation
  and opportunity in one step), move the opportunity through the stages, send a quote at the
  proposal stage, record the customer's answer (a rejected quote may get a cheaper revision),
  and win or lose the deal;
- the **marketing** side (the admin's campaigns on e-mail, event and social channels, with a
  budget and dated cost entries, activated at the start and completed at the end of the history;
  the marketing system, an integration, streams each campaign's interactions with the customers
  through ``IngestCampaignInteractions``, one stream per kind, so that each summary's ``accepted``
  is that step of the funnel: customers without e-mail consent are refused the e-mail sends,
  a few unsubscribe, the responders become leads created with the campaign's id);
- the **ERP** (an integration) records the order of a won deal and, for a few, a returned unit.

Every step is an action on the company's agenda at a simulated instant, reps act in business
hours (:func:`crm_devstack.simulator.agent_time`) and customers decide on their own time; the
random draws come from one generator per lead and step, so the story of every lead is the same
for a seed. What the run leaves behind is read back from the API for the summary
(:func:`read_sales_summary`): open pipeline value by stage, win rate by count and by value, quotes
sent and accepted, the campaign funnel and the orders' and returns' revenue.

Not played yet: territory rules, appointments and reps' calendars, follow-up call rules and
logged activities, base currency and exchange rates, ERP costs and repeat purchases.
"""

from __future__ import annotations

import functools
import math
import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from crm.gateway.v1 import sales_pb2_grpc as sales_gw
from crm.sales.v1 import activities_pb2 as apb
from crm.sales.v1 import campaigns_pb2 as campb
from crm.sales.v1 import orders_pb2 as opb
from crm.sales.v1 import sales_pb2 as spb
from crm.servicedesk.v1 import servicedesk_pb2 as pb
from crm_devstack.simulator import (
    NETWORK,
    _Credential,
    _timestamp,
    activity,
    agent_time,
    lognormal_minutes,
)

if TYPE_CHECKING:
    import grpc

    from crm_devstack.simulator import SimulatedCompany

PIPELINE_NAME = "Direct sales"
CURRENCY = "EUR"

STAGES: tuple[tuple[str, str, int, int], ...] = (
    ("qualify", "Qualify", 10, spb.STAGE_KIND_OPEN),
    ("demo", "Demo", 30, spb.STAGE_KIND_OPEN),
    ("proposal", "Proposal", 60, spb.STAGE_KIND_OPEN),
    ("negotiation", "Negotiation", 80, spb.STAGE_KIND_OPEN),
    ("won", "Won", 100, spb.STAGE_KIND_WON),
    ("lost", "Lost", 0, spb.STAGE_KIND_LOST),
)
OPEN_STAGES = tuple(stage for stage, _, _, kind in STAGES if kind == spb.STAGE_KIND_OPEN)

# (SKU, name, unit price in cents, quantities a deal takes).
PRODUCTS: tuple[tuple[str, str, int, tuple[int, ...]], ...] = (
    ("SEAT-STD", "Support seat, standard (year)", 49_00 * 12, (5, 10, 20, 50)),
    ("SEAT-PRO", "Support seat, pro (year)", 129_00 * 12, (3, 5, 10, 25)),
    ("ONBOARD", "Onboarding package", 1_500_00, (1,)),
)

_COMPANIES = (
    "Northwind", "Globex", "Initech", "Umbrella", "Hooli", "Stark Logistics", "Wayne Freight",
    "Soylent", "Vandelay Imports", "Tyrell Systems", "Cyberdyne", "Gringotts", "Wonka Foods",
)  # fmt: skip
_PROSPECT_GIVEN = ("Alex", "Sam", "Robin", "Kim", "Jules", "Toni", "Mika", "Noa", "Eli", "Ren")
_PROSPECT_FAMILY = ("Berg", "Costa", "Dietz", "Engel", "Falk", "Gruber", "Haas", "Ito", "Kaya")
_INTEREST_POSTS = (
    "Looking at @{brand} for our support team - does anyone know their pricing?",
    "Any experience with @{brand}? We need a helpdesk for 20 people, want a demo",
    "Comparing @{brand} and others for our customer service, who has a quote for me?",
)
# (name, channel, budget in cents, the campaign's day in the run, responders' share of clicks).
CAMPAIGNS: tuple[tuple[str, int, int, float], ...] = (
    ("Winter newsletter", campb.CAMPAIGN_CHANNEL_EMAIL, 2_000_00, 0.2),
    ("Support Summit", campb.CAMPAIGN_CHANNEL_EVENT, 8_000_00, 0.5),
    ("Social retargeting", campb.CAMPAIGN_CHANNEL_SOCIAL, 3_000_00, 0.35),
)
FUNNEL: tuple[tuple[int, str, float], ...] = (
    (campb.CAMPAIGN_INTERACTION_KIND_SENT, "sent", 1.0),
    (campb.CAMPAIGN_INTERACTION_KIND_DELIVERED, "delivered", 0.95),
    (campb.CAMPAIGN_INTERACTION_KIND_OPENED, "opened", 0.5),
    (campb.CAMPAIGN_INTERACTION_KIND_CLICKED, "clicked", 0.4),
    (campb.CAMPAIGN_INTERACTION_KIND_RESPONDED, "responded", 0.5),
)
"""The funnel's kinds in order, with the share of the previous kind's contacts that reach each."""
RETURN_SHARE = 0.2
"""Share of the orders (of more than one unit) of which the customer returns a unit."""
UNSUBSCRIBE_SHARE = 0.05
"""Share of the delivered contacts who unsubscribe."""
_DISQUALIFY_REASONS = ("no budget", "student project", "already a competitor's customer")
_CALL_OUTCOMES = ("happy with the onboarding", "asked for more seats", "left a voicemail")
_LOSS_REASONS = ("price", "chose a competitor", "no decision")


@dataclass(frozen=True)
class SalesProfile:
    """What the sales team does; the defaults are the demo's."""

    reps: tuple[str, ...] = ("rep-nora", "rep-oscar", "rep-pia")
    web_leads_per_day: float = 5.0
    """Leads from the web form per simulated day (spread like customers' activity)."""
    interest_posts_per_day: float = 1.5
    """Posts showing buying interest per simulated day (each becomes a lead)."""
    known_customer_share: float = 0.35
    """Share of web-form leads from people who are customers already."""
    pace: float = 0.6
    """Multiplies every delay of a deal's story (smaller: faster deals)."""
    follow_up_days: int = 0
    """The admin's follow-up rule: a call this many days after a won deal (the sales service's
    durable timers create it, on its clock: the accelerated one of the simulation). 0, the same
    day: the demo's deals close late in its few days, a later call would fall after them."""


@dataclass
class SalesReport:
    """What the sales team did so far (the simulator's own counts; the summary reads the API)."""

    leads: int = 0
    disqualified: int = 0
    converted: int = 0
    stage_moves: int = 0
    quotes_sent: int = 0
    quotes_accepted: int = 0
    quotes_rejected: int = 0
    won: int = 0
    lost: int = 0
    campaigns: int = 0
    funnel: Counter[str] = field(default_factory=Counter)
    """Interactions the ingestion summaries accepted, by kind name (and "refused" sends)."""
    refused_sends: int = 0
    campaign_leads: int = 0
    """Leads created with a campaign's id (of its responders)."""
    orders: int = 0
    returns: int = 0
    follow_ups_completed: int = 0

    def summary(self) -> str:
        return (
            f"{self.leads} leads, {self.converted} converted, {self.quotes_sent} quotes sent, "
            f"{self.won} deals won, {self.lost} lost"
        )


@dataclass
class Deal:
    """One lead on its way to a won or lost deal."""

    number: int
    key: str
    source: int
    lead_id: str = ""
    lead_version: int = 0
    rep: str = ""
    opportunity_id: str = ""
    version: int = 0
    product: int = 0
    quantity: int = 1
    discount_basis_points: int = 0
    revisions: int = 0
    campaign_id: str = ""
    contact_id: str = ""
    draws: Counter[str] = field(default_factory=Counter)

    def stream(self, step: str) -> random.Random:
        self.draws[step] += 1
        return random.Random(f"{self.key}:{step}:{self.draws[step]}")


class SalesTeam:
    """The sales side of a :class:`~crm_devstack.simulator.SimulatedCompany`."""

    def __init__(
        self, company: SimulatedCompany, channel: grpc.aio.Channel, profile: SalesProfile
    ) -> None:
        self.company = company
        self.profile = profile
        self.report = SalesReport()
        self.pipeline_id = ""
        self.product_ids: dict[str, str] = {}
        self._sales = sales_gw.SalesServiceStub(channel)
        self._campaigns = sales_gw.CampaignServiceStub(channel)
        self._orders = sales_gw.OrderServiceStub(channel)
        self._activities = sales_gw.ActivityServiceStub(channel)
        self.campaign_ids: dict[str, str] = {}
        self._reps = {rep: _Credential(company.tokens, "sales", rep) for rep in self.profile.reps}
        self._numbers = 0

    # -- setup ----------------------------------------------------------------------------------

    async def setup(self) -> None:
        """The pipeline and the products (found by name and SKU if an earlier run made them)."""
        company = self.company
        admin = company._admin
        listed = await company._call(
            "ListPipelines",
            self._sales.ListPipelines,
            spb.ListPipelinesRequest(page_size=500),
            admin,
        )
        if listed is None:
            return
        for pipeline in listed.pipelines:
            if pipeline.name == PIPELINE_NAME:
                self.pipeline_id = str(pipeline.id)
        if not self.pipeline_id:
            stages = [
                spb.Stage(id=stage, name=name, win_probability_percent=p, kind=kind)  # type: ignore[arg-type]
                for stage, name, p, kind in STAGES
            ]
            created = await company._call(
                "CreatePipeline",
                self._sales.CreatePipeline,
                spb.CreatePipelineRequest(
                    pipeline=spb.Pipeline(name=PIPELINE_NAME, stages=stages),
                    request_id=f"{company.run_key}-pipeline",
                ),
                admin,
            )
            if created is None:
                return
            self.pipeline_id = str(created.pipeline.id)
        products = await company._call(
            "ListProducts",
            self._sales.ListProducts,
            spb.ListProductsRequest(page_size=500),
            admin,
        )
        if products is None:
            return
        self.product_ids = {str(p.sku): str(p.id) for p in products.products}
        for sku, name, price, _ in PRODUCTS:
            if sku in self.product_ids:
                continue
            made = await company._call(
                "CreateProduct",
                self._sales.CreateProduct,
                spb.CreateProductRequest(
                    product=spb.Product(
                        sku=sku,
                        name=name,
                        active=True,
                        prices=[spb.Price(currency=CURRENCY, unit_price_minor=price)],
                    ),
                    request_id=f"{company.run_key}-product-{sku}",
                ),
                admin,
            )
            if made is not None:
                self.product_ids[sku] = str(made.product.id)
        await self._setup_campaigns()
        await company._call(
            "SetFollowUpRule",
            self._activities.SetFollowUpRule,
            apb.SetFollowUpRuleRequest(
                rule=apb.FollowUpRule(
                    enabled=True,
                    after_won_deal=True,
                    delay_days=self.profile.follow_up_days,
                    owner=apb.FOLLOW_UP_OWNER_DEAL_OWNER,
                    owner_id=self.profile.reps[0],
                )
            ),
            admin,
        )

    async def _setup_campaigns(self) -> None:
        """The marketing campaigns (created, budgeted, activated; found by name on a rerun)."""
        company = self.company
        listed = await company._call(
            "ListCampaigns",
            self._campaigns.ListCampaigns,
            campb.ListCampaignsRequest(page_size=500),
            company._admin,
        )
        if listed is None:
            return
        known = {str(c.name): c for c in listed.campaigns}
        for name, channel, budget, _ in CAMPAIGNS:
            if name in known:
                if known[name].status == campb.CAMPAIGN_STATUS_ACTIVE:
                    self.campaign_ids[name] = str(known[name].id)
                continue
            created = await company._call(
                "CreateCampaign",
                self._campaigns.CreateCampaign,
                campb.CreateCampaignRequest(
                    campaign=campb.Campaign(
                        name=name,
                        channel=channel,  # type: ignore[arg-type]
                        budget_minor=budget,
                        currency=CURRENCY,
                    ),
                    request_id=f"{company.run_key}-campaign-{name}",
                ),
                company._admin,
            )
            if created is None:
                continue
            campaign_id = str(created.campaign.id)
            for entry, share in (("production", 0.3), ("media", 0.5)):
                await company._call(
                    "RecordCampaignCost",
                    self._campaigns.RecordCampaignCost,
                    campb.RecordCampaignCostRequest(
                        campaign_id=campaign_id,
                        cost=campb.CampaignCost(
                            amount_minor=int(budget * share),
                            currency=CURRENCY,
                            cost_date=company.clock.now().date().isoformat(),
                            description=entry,
                        ),
                        request_id=f"{company.run_key}-campaign-{name}-{entry}",
                    ),
                    company._admin,
                )
            active = await company._call(
                "ActivateCampaign",
                self._campaigns.ActivateCampaign,
                campb.ActivateCampaignRequest(id=campaign_id, expected_version=0),
                company._admin,
            )
            if active is not None:
                self.campaign_ids[name] = campaign_id
                self.report.campaigns += 1

    @property
    def ready(self) -> bool:
        return bool(self.pipeline_id) and len(self.product_ids) == len(PRODUCTS)

    # -- planning -------------------------------------------------------------------------------

    def plan(self, start: datetime, end: datetime) -> None:
        """The web-form leads and the interest posts of ``[start, end)``."""
        if not self.ready:
            return
        rng = random.Random(f"{self.company.seed}:sales")
        days = max(0.0, (end - start).total_seconds() / 86_400)
        timezone = self.company.profile.hours.timezone
        for count, source in (
            (round(self.profile.web_leads_per_day * days), spb.LEAD_SOURCE_WEB_FORM),
            (round(self.profile.interest_posts_per_day * days), spb.LEAD_SOURCE_SOCIAL),
        ):
            planned = 0
            while planned < count:
                at = start + (end - start) * rng.random()
                if rng.random() >= activity(at, timezone):
                    continue
                planned += 1
                self._numbers += 1
                deal = Deal(self._numbers, f"{self.company.seed}:deal:{self._numbers}", source)
                if source == spb.LEAD_SOURCE_WEB_FORM:
                    self._at(at, "webform", deal, self._web_form)
                else:
                    self._at(at, "interest", deal, self._interest_post)
        for name, channel, _, day_share in CAMPAIGNS:
            if name not in self.campaign_ids:
                continue
            at = start + (end - start) * day_share
            self.company._schedule(
                at, f"campaign {name}", functools.partial(self._run_campaign, name, channel)
            )
        if self.campaign_ids:
            self.company._schedule(end, "campaigns complete", self.complete_campaigns)

    async def _run_campaign(self, name: str, channel: int) -> None:
        """The marketing system's feed of one campaign: a stream per funnel kind (so that each
        summary's ``accepted`` is that kind's count), the unsubscribes, and the responders'
        leads (created with the campaign's id)."""
        company = self.company
        campaign_id = self.campaign_ids[name]
        rng = random.Random(f"{company.seed}:campaign:{name}")
        reached = [
            (customer, company.contact_ids[customer.number])
            for customer in company.customers
            if customer.number in company.contact_ids and rng.random() < 0.6
        ]
        now = company.clock.now()
        delivered: list[tuple[Any, str]] = []
        for kind, label, share in FUNNEL:
            reached = [pair for pair in reached if rng.random() < share]
            items = [
                campb.CampaignInteraction(
                    campaign_id=campaign_id,
                    contact_id=contact_id,
                    kind=kind,  # type: ignore[arg-type]
                    external_id=f"{company.run_key}-{name}-{label}-{customer.number}",
                    occur_time=_timestamp(now),
                )
                for customer, contact_id in reached
            ]
            summary = await self._ingest(items)
            if summary is None:
                return
            self.report.funnel[label] += int(summary.accepted)
            if kind == campb.CAMPAIGN_INTERACTION_KIND_SENT:
                refused = {int(e.index) for e in summary.errors}
                self.report.refused_sends += int(summary.refused)
                reached = [pair for i, pair in enumerate(reached) if i not in refused]
            if kind == campb.CAMPAIGN_INTERACTION_KIND_DELIVERED:
                delivered = list(reached)
        unsubscribing = [pair for pair in delivered if rng.random() < UNSUBSCRIBE_SHARE]
        if unsubscribing:
            summary = await self._ingest(
                [
                    campb.CampaignInteraction(
                        campaign_id=campaign_id,
                        contact_id=contact_id,
                        kind=campb.CAMPAIGN_INTERACTION_KIND_UNSUBSCRIBED,
                        external_id=f"{company.run_key}-{name}-unsub-{customer.number}",
                        occur_time=_timestamp(now),
                    )
                    for customer, contact_id in unsubscribing
                ]
            )
            if summary is not None:
                self.report.funnel["unsubscribed"] += int(summary.accepted)
        for customer, contact_id in reached:  # the responders
            self._numbers += 1
            deal = Deal(
                self._numbers,
                f"{company.seed}:deal:{self._numbers}",
                spb.LEAD_SOURCE_CAMPAIGN,
                campaign_id=campaign_id,
            )
            lead = spb.Lead(
                contact_id=contact_id,
                person_name=f"{customer.given_name} {customer.family_name}",
                email=customer.email,
                source=spb.LEAD_SOURCE_CAMPAIGN,
                campaign_id=campaign_id,
            )
            self._at(
                now + timedelta(minutes=rng.uniform(5, 90)),
                "campaign-lead",
                deal,
                functools.partial(self._create_lead, lead=lead, who=company._connectors),
            )

    async def _ingest(self, items: list[Any]) -> Any:
        if not items:
            return campb.IngestSummary()
        return await self.company._call(
            "IngestCampaignInteractions",
            self._campaigns.IngestCampaignInteractions,
            items,  # type: ignore[arg-type]
            self.company._connectors,
        )

    async def complete_campaigns(self) -> None:
        """The campaigns ran their course: completed (at the end of the history)."""
        for campaign_id in self.campaign_ids.values():
            got = await self.company._call(
                "GetCampaign",
                self._campaigns.GetCampaign,
                campb.GetCampaignRequest(id=campaign_id),
                self.company._admin,
            )
            if got is None or got.campaign.status != campb.CAMPAIGN_STATUS_ACTIVE:
                continue
            await self.company._call(
                "CompleteCampaign",
                self._campaigns.CompleteCampaign,
                campb.CompleteCampaignRequest(
                    id=campaign_id, expected_version=int(got.campaign.version)
                ),
                self.company._admin,
            )

    def _at(self, at: datetime, label: str, deal: Deal, step: Any) -> None:
        self.company._schedule(at, f"{label} {deal.number}", functools.partial(step, deal))

    def _later(self, deal: Deal, label: str, step: Any, median_minutes: float) -> None:
        """``step`` when the deal's rep gets to it: business time, after ``median_minutes``."""
        company = self.company
        rng = deal.stream(label)
        at = agent_time(
            rng, company.calendar, company.clock.now(), median_minutes * self.profile.pace
        )
        self._at(at, label, deal, step)

    def _customer_later(self, deal: Deal, label: str, step: Any, median_minutes: float) -> None:
        """``step`` when the customer gets to it (any time of day)."""
        rng = deal.stream(label)
        delay = lognormal_minutes(rng, median_minutes * self.profile.pace, 0.6)
        self._at(self.company.clock.now() + delay, label, deal, step)

    def _rep(self, deal: Deal) -> _Credential:
        if not deal.rep:
            deal.rep = deal.stream("rep").choice(self.profile.reps)
        return self._reps[deal.rep]

    # -- a deal's story -------------------------------------------------------------------------

    async def _web_form(self, deal: Deal) -> None:
        """Someone fills in the web form: the connector creates the lead."""
        company = self.company
        rng = deal.stream("person")
        if rng.random() < self.profile.known_customer_share and company.customers:
            customer = rng.choice(company.customers)
            person = f"{customer.given_name} {customer.family_name}"
            email = customer.email
        else:
            given, family = rng.choice(_PROSPECT_GIVEN), rng.choice(_PROSPECT_FAMILY)
            person = f"{given} {family}"
            email = f"{given}.{family}.{deal.number}@prospect.example".lower()
        lead = spb.Lead(
            person_name=person,
            company_name=rng.choice(_COMPANIES),
            email=email,
            source=spb.LEAD_SOURCE_WEB_FORM,
        )
        await self._create_lead(deal, lead, company._connectors)

    async def _interest_post(self, deal: Deal) -> None:
        """A post asking about the product, ingested by social listening; a rep makes it a
        lead with the mention as its origin."""
        company = self.company
        rng = deal.stream("post")
        given, family = rng.choice(_PROSPECT_GIVEN), rng.choice(_PROSPECT_FAMILY)
        handle = f"{given}{family}{deal.number}".lower()
        mention = pb.Mention(
            network=NETWORK,
            post_id=f"{company.run_key}-interest-{deal.number}",
            author_handle=handle,
            author_followers=int(math.exp(rng.gauss(5.0, 1.5))),
            text=rng.choice(_INTEREST_POSTS).format(brand=company.profile.brand),
            url=f"https://x.com/{handle}/status/{deal.number}",
            posted_time=_timestamp(company.clock.now()),
        )
        ingested = await company._call(
            "IngestMention",
            company._social.IngestMention,
            pb.IngestMentionRequest(mention=mention),
            company._connectors,
        )
        if ingested is None:
            return
        company.report.mentions += 1
        mention_id = str(ingested.mention.id)

        async def make_lead(deal: Deal) -> None:
            lead = spb.Lead(
                person_name=f"{given} {family}",
                company_name=rng.choice(_COMPANIES),
                email=f"{handle}@prospect.example",
                source=spb.LEAD_SOURCE_SOCIAL,
                origin_mention_id=mention_id,
                owner_id=self._rep_name(deal),
            )
            await self._create_lead(deal, lead, self._rep(deal))

        self._later(deal, "social-lead", make_lead, 60.0)

    def _rep_name(self, deal: Deal) -> str:
        self._rep(deal)
        return deal.rep

    async def _create_lead(self, deal: Deal, lead: spb.Lead, who: _Credential) -> None:
        created = await self.company._call(
            "CreateLead",
            self._sales.CreateLead,
            spb.CreateLeadRequest(
                lead=lead, request_id=f"{self.company.run_key}-lead-{deal.number}"
            ),
            who,
        )
        if created is None:
            return
        self.report.leads += 1
        if lead.campaign_id:
            self.report.campaign_leads += 1
        deal.lead_id = str(created.lead.id)
        deal.lead_version = int(created.lead.version)
        self._later(deal, "work", self._work, 45.0)

    async def _open_lead(self, deal: Deal) -> bool:
        """The rep opens the lead (its version moves with every campaign touch of its contact)."""
        got = await self.company._call(
            "GetLead",
            self._sales.GetLead,
            spb.GetLeadRequest(id=deal.lead_id),
            self._rep(deal),
        )
        if got is None:
            return False
        deal.lead_version = int(got.lead.version)
        return True

    async def _work(self, deal: Deal) -> None:
        if not await self._open_lead(deal):
            return
        worked = await self.company._call(
            "StartWorkingLead",
            self._sales.StartWorkingLead,
            spb.StartWorkingLeadRequest(id=deal.lead_id, expected_version=deal.lead_version),
            self._rep(deal),
        )
        if worked is None:
            return
        deal.lead_version = int(worked.lead.version)
        self._later(deal, "qualify", self._qualify, 150.0)

    async def _qualify(self, deal: Deal) -> None:
        rng = deal.stream("qualify")
        rep = self._rep(deal)
        if not await self._open_lead(deal):
            return
        if rng.random() < 0.25:
            done = await self.company._call(
                "DisqualifyLead",
                self._sales.DisqualifyLead,
                spb.DisqualifyLeadRequest(
                    id=deal.lead_id,
                    reason=rng.choice(_DISQUALIFY_REASONS),
                    expected_version=deal.lead_version,
                ),
                rep,
            )
            if done is not None:
                self.report.disqualified += 1
            return
        qualified = await self.company._call(
            "QualifyLead",
            self._sales.QualifyLead,
            spb.QualifyLeadRequest(id=deal.lead_id, expected_version=deal.lead_version),
            rep,
        )
        if qualified is None:
            return
        deal.product = rng.randrange(len(PRODUCTS))
        deal.quantity = rng.choice(PRODUCTS[deal.product][3])
        sku, name, price, _ = PRODUCTS[deal.product]
        close = self.company.clock.now() + timedelta(days=rng.randint(14, 60))
        converted = await self.company._call(
            "ConvertLead",
            self._sales.ConvertLead,
            spb.ConvertLeadRequest(
                id=deal.lead_id,
                opportunity=spb.Opportunity(
                    name=f"{qualified.lead.company_name or qualified.lead.person_name}: {name}",
                    pipeline_id=self.pipeline_id,
                    amount_minor=price * deal.quantity,
                    currency=CURRENCY,
                    expected_close_date=close.date().isoformat(),
                    owner_id=deal.rep,
                    line_items=[
                        spb.LineItem(
                            product_id=self.product_ids[sku],
                            quantity=deal.quantity,
                            unit_price_minor=price,
                        )
                    ],
                ),
                create_organization=bool(qualified.lead.company_name),
            ),
            rep,
        )
        if converted is None:
            return
        self.report.converted += 1
        deal.opportunity_id = str(converted.opportunity.id)
        deal.contact_id = str(converted.opportunity.primary_contact_id)
        deal.version = int(converted.opportunity.version)
        self._later(deal, "demo", self._demo, 240.0)

    async def _move(self, deal: Deal, stage: str) -> bool:
        moved = await self.company._call(
            "MoveOpportunityStage",
            self._sales.MoveOpportunityStage,
            spb.MoveOpportunityStageRequest(
                id=deal.opportunity_id, stage_id=stage, expected_version=deal.version
            ),
            self._rep(deal),
        )
        if moved is None:
            return False
        self.report.stage_moves += 1
        deal.version = int(moved.opportunity.version)
        return True

    async def _demo(self, deal: Deal) -> None:
        if not await self._move(deal, "demo"):
            return
        if deal.stream("demo").random() < 0.15:
            self._later(deal, "lose", functools.partial(self._lose, reason="no decision"), 240.0)
            return
        self._later(deal, "proposal", self._proposal, 360.0)

    async def _proposal(self, deal: Deal) -> None:
        if not await self._move(deal, "proposal"):
            return
        await self._send_quote(deal)

    async def _send_quote(self, deal: Deal) -> None:
        company = self.company
        sku = PRODUCTS[deal.product][0]
        deal.revisions += 1
        created = await company._call(
            "CreateQuote",
            self._sales.CreateQuote,
            spb.CreateQuoteRequest(
                quote=spb.Quote(
                    opportunity_id=deal.opportunity_id,
                    currency=CURRENCY,
                    lines=[
                        spb.QuoteLine(
                            product_id=self.product_ids[sku],
                            quantity=deal.quantity,
                            discount_basis_points=deal.discount_basis_points,
                            tax_rate_basis_points=1900,
                        )
                    ],
                    valid_until=_timestamp(company.clock.now() + timedelta(days=30)),
                ),
                request_id=f"{company.run_key}-quote-{deal.number}-{deal.revisions}",
            ),
            self._rep(deal),
        )
        if created is None:
            return
        sent = await company._call(
            "SendQuote",
            self._sales.SendQuote,
            spb.SendQuoteRequest(id=created.quote.id, expected_version=created.quote.version),
            self._rep(deal),
        )
        if sent is None:
            return
        self.report.quotes_sent += 1
        quote_id, version = str(sent.quote.id), int(sent.quote.version)
        self._customer_later(
            deal, "decide", functools.partial(self._decide, quote_id=quote_id, version=version),
            600.0,
        )  # fmt: skip

    async def _decide(self, deal: Deal, *, quote_id: str, version: int) -> None:
        """The customer answers the quote (the rep records it)."""
        rng = deal.stream("decide")
        rep = self._rep(deal)
        accept = rng.random() < (0.55 + 0.1 * deal.revisions)
        if accept:
            done = await self.company._call(
                "AcceptQuote",
                self._sales.AcceptQuote,
                spb.AcceptQuoteRequest(id=quote_id, expected_version=version),
                rep,
            )
            if done is None:
                return
            self.report.quotes_accepted += 1
            if await self._move(deal, "negotiation"):
                self._later(deal, "win", self._win, 120.0)
            return
        rejected = await self.company._call(
            "RejectQuote",
            self._sales.RejectQuote,
            spb.RejectQuoteRequest(id=quote_id, reason="too expensive", expected_version=version),
            rep,
        )
        if rejected is None:
            return
        self.report.quotes_rejected += 1
        if deal.revisions < 2 and rng.random() < 0.6:
            deal.discount_basis_points += 1000  # a cheaper revision
            self._later(deal, "revise", self._send_quote, 120.0)
        else:
            reason = rng.choice(_LOSS_REASONS)
            self._later(deal, "lose", functools.partial(self._lose, reason=reason), 60.0)

    async def _win(self, deal: Deal) -> None:
        won = await self.company._call(
            "WinOpportunity",
            self._sales.WinOpportunity,
            spb.WinOpportunityRequest(
                id=deal.opportunity_id, reason="quote accepted", expected_version=deal.version
            ),
            self._rep(deal),
        )
        if won is not None:
            self.report.won += 1
            self._customer_later(deal, "order", self._order, 240.0)
            # The rep gets to the follow-up call (due follow_up_days later) a little after.
            due = self.company.clock.now() + timedelta(days=self.profile.follow_up_days)
            at = agent_time(deal.stream("follow-up"), self.company.calendar, due, 120.0)
            self._at(at, "follow-up", deal, self._follow_up)

    async def _follow_up(self, deal: Deal) -> None:
        """The rep makes the follow-up calls the timers created on the deal and logs them."""
        listed = await self.company._call(
            "ListActivities",
            self._activities.ListActivities,
            apb.ListActivitiesRequest(
                opportunity_id=deal.opportunity_id,
                kind=apb.ACTIVITY_KIND_CALL,
                status=apb.ACTIVITY_STATUS_OPEN,
            ),
            self._rep(deal),
        )
        if listed is None:
            return
        for call in listed.activities:
            if not call.HasField("follow_up"):
                continue
            done = await self.company._call(
                "CompleteActivity",
                self._activities.CompleteActivity,
                apb.CompleteActivityRequest(
                    id=call.id,
                    outcome=deal.stream("call").choice(_CALL_OUTCOMES),
                    duration_seconds=deal.stream("call-length").randint(120, 900),
                    expected_version=call.version,
                ),
                self._rep(deal),
            )
            if done is not None:
                self.report.follow_ups_completed += 1

    async def _order(self, deal: Deal) -> None:
        """The ERP (the integration) records the won deal's order."""
        sku, _, price, _ = PRODUCTS[deal.product]
        revenue = price * deal.quantity * (10_000 - deal.discount_basis_points) // 10_000
        recorded = await self.company._call(
            "RecordOrder",
            self._orders.RecordOrder,
            opb.RecordOrderRequest(
                order=opb.Order(
                    external_id=f"{self.company.run_key}-order-{deal.number}",
                    contact_id=deal.contact_id,
                    opportunity_id=deal.opportunity_id,
                    order_date=self.company.clock.now().date().isoformat(),
                    currency=CURRENCY,
                    lines=[
                        opb.OrderLine(
                            sku=sku,
                            product_id=self.product_ids[sku],
                            quantity=deal.quantity,
                            revenue_minor=revenue,
                            cost_minor=revenue // 5,
                        )
                    ],
                )
            ),
            self.company._connectors,
        )
        if recorded is None:
            return
        self.report.orders += 1
        order = recorded.order
        if deal.quantity > 1 and deal.stream("return").random() < RETURN_SHARE:
            self._customer_later(
                deal, "return", functools.partial(self._return, order=order), 600.0
            )

    async def _return(self, deal: Deal, *, order: opb.Order) -> None:
        """The customer sends one unit of the order back; the ERP records the return."""
        line = order.lines[0]
        unit_revenue = int(line.revenue_minor) // int(line.quantity)
        recorded = await self.company._call(
            "RecordReturn",
            self._orders.RecordReturn,
            opb.RecordReturnRequest(
                **{
                    "return": opb.Return(
                        external_id=f"{self.company.run_key}-return-{deal.number}",
                        order_id=order.id,
                        return_date=self.company.clock.now().date().isoformat(),
                        lines=[
                            opb.ReturnLine(
                                line_number=line.line_number,
                                quantity=1,
                                revenue_minor=unit_revenue,
                                cost_minor=int(line.cost_minor) // int(line.quantity),
                            )
                        ],
                    )
                }
            ),
            self.company._connectors,
        )
        if recorded is not None:
            self.report.returns += 1

    async def _lose(self, deal: Deal, *, reason: str) -> None:
        lost = await self.company._call(
            "LoseOpportunity",
            self._sales.LoseOpportunity,
            spb.LoseOpportunityRequest(
                id=deal.opportunity_id, reason=reason, expected_version=deal.version
            ),
            self._rep(deal),
        )
        if lost is not None:
            self.report.lost += 1


# --- the summary's sales block -------------------------------------------------------------------


@dataclass
class SalesSummary:
    """The tenant's sales as the API tells them (amounts in minor units, by currency)."""

    stages: list[tuple[str, str]] = field(default_factory=list)
    """(stage id, name) of the open stages, in pipeline order."""
    open_by_stage: dict[str, tuple[int, dict[str, int]]] = field(default_factory=dict)
    """Open stage id → (how many, amount by currency)."""
    won: int = 0
    lost: int = 0
    won_value: dict[str, int] = field(default_factory=dict)
    lost_value: dict[str, int] = field(default_factory=dict)
    quotes_sent: int = 0
    """Quotes that were sent (sent, accepted, rejected or expired)."""
    quotes_accepted: int = 0
    leads: int = 0
    leads_converted: int = 0
    leads_disqualified: int = 0
    campaigns: int = 0
    campaign_cost: dict[str, int] = field(default_factory=dict)
    campaign_leads: int = 0
    """Leads attributed to a campaign (created with one or touched by one first)."""
    campaign_won: int = 0
    """Won opportunities attributed to a campaign."""
    orders: int = 0
    order_revenue: dict[str, int] = field(default_factory=dict)
    returns: int = 0
    return_revenue: dict[str, int] = field(default_factory=dict)
    follow_up_calls: int = 0
    """Call activities the follow-up rule's timers created."""
    follow_up_calls_open: int = 0

    @property
    def open_count(self) -> int:
        return sum(count for count, _ in self.open_by_stage.values())

    def open_value(self) -> dict[str, int]:
        total: dict[str, int] = defaultdict(int)
        for _, amounts in self.open_by_stage.values():
            for currency, amount in amounts.items():
                total[currency] += amount
        return dict(total)

    def win_rate_by_count(self) -> float | None:
        closed = self.won + self.lost
        return self.won / closed if closed else None

    def win_rate_by_value(self, currency: str) -> float | None:
        won = self.won_value.get(currency, 0)
        closed = won + self.lost_value.get(currency, 0)
        return won / closed if closed else None


async def _pages(call: Any, request: Any, field_name: str, metadata: Any) -> list[Any]:
    items: list[Any] = []
    while True:
        reply = await call(request, metadata=metadata, timeout=15)
        items.extend(getattr(reply, field_name))
        if not reply.next_page_token:
            return items
        request.page_token = reply.next_page_token


async def read_sales_summary(channel: grpc.aio.Channel, token: str) -> SalesSummary:
    """The sales block's numbers, from the gateway's SalesService (every page of the tenant's
    pipelines, opportunities, quotes and leads)."""
    stub = sales_gw.SalesServiceStub(channel)
    metadata = (("authorization", f"Bearer {token}"),)
    summary = SalesSummary()
    pipelines = await _pages(
        stub.ListPipelines, spb.ListPipelinesRequest(page_size=500), "pipelines", metadata
    )
    seen: set[str] = set()
    for pipeline in pipelines:
        for stage in pipeline.stages:
            if stage.kind == spb.STAGE_KIND_OPEN and stage.id not in seen:
                seen.add(stage.id)
                summary.stages.append((str(stage.id), str(stage.name)))
    opportunities = await _pages(
        stub.ListOpportunities,
        spb.ListOpportunitiesRequest(page_size=500),
        "opportunities",
        metadata,
    )
    open_by_stage: dict[str, list[Any]] = defaultdict(list)
    for opportunity in opportunities:
        amount, currency = int(opportunity.amount_minor), str(opportunity.currency)
        if opportunity.status == spb.STAGE_KIND_OPEN:
            open_by_stage[str(opportunity.stage_id)].append((amount, currency))
        elif opportunity.status == spb.STAGE_KIND_WON:
            summary.won += 1
            summary.won_value[currency] = summary.won_value.get(currency, 0) + amount
        elif opportunity.status == spb.STAGE_KIND_LOST:
            summary.lost += 1
            summary.lost_value[currency] = summary.lost_value.get(currency, 0) + amount
    for stage_id, deals in open_by_stage.items():
        amounts: dict[str, int] = defaultdict(int)
        for amount, currency in deals:
            amounts[currency] += amount
        summary.open_by_stage[stage_id] = (len(deals), dict(amounts))
        if stage_id not in seen:
            summary.stages.append((stage_id, stage_id))
    quotes = await _pages(stub.ListQuotes, spb.ListQuotesRequest(page_size=500), "quotes", metadata)
    sent = {
        spb.QUOTE_STATUS_SENT,
        spb.QUOTE_STATUS_ACCEPTED,
        spb.QUOTE_STATUS_REJECTED,
        spb.QUOTE_STATUS_EXPIRED,
    }
    summary.quotes_sent = sum(1 for quote in quotes if quote.status in sent)
    summary.quotes_accepted = sum(1 for q in quotes if q.status == spb.QUOTE_STATUS_ACCEPTED)
    leads = await _pages(stub.ListLeads, spb.ListLeadsRequest(page_size=500), "leads", metadata)
    summary.leads = len(leads)
    summary.leads_converted = sum(1 for lead in leads if lead.status == spb.LEAD_STATUS_CONVERTED)
    summary.leads_disqualified = sum(
        1 for lead in leads if lead.status == spb.LEAD_STATUS_DISQUALIFIED
    )
    summary.campaign_leads = sum(1 for lead in leads if lead.campaign_id)
    summary.campaign_won = sum(
        1 for o in opportunities if o.campaign_id and o.status == spb.STAGE_KIND_WON
    )
    campaigns_stub = sales_gw.CampaignServiceStub(channel)
    campaigns = await _pages(
        campaigns_stub.ListCampaigns,
        campb.ListCampaignsRequest(page_size=500),
        "campaigns",
        metadata,
    )
    summary.campaigns = len(campaigns)
    for campaign in campaigns:
        _add(summary.campaign_cost, str(campaign.currency), int(campaign.cost_total_minor))
    orders_stub = sales_gw.OrderServiceStub(channel)
    orders = await _pages(
        orders_stub.ListOrders, opb.ListOrdersRequest(page_size=500), "orders", metadata
    )
    summary.orders = len(orders)
    for order in orders:
        _add(summary.order_revenue, str(order.currency), int(order.revenue_total_minor))
    returns = await _pages(
        orders_stub.ListReturns, opb.ListReturnsRequest(page_size=500), "returns", metadata
    )
    summary.returns = len(returns)
    activities = await _pages(
        sales_gw.ActivityServiceStub(channel).ListActivities,
        apb.ListActivitiesRequest(page_size=500, kind=apb.ACTIVITY_KIND_CALL),
        "activities",
        metadata,
    )
    follow_ups = [a for a in activities if a.HasField("follow_up")]
    summary.follow_up_calls = len(follow_ups)
    summary.follow_up_calls_open = sum(
        1 for a in follow_ups if a.status == apb.ACTIVITY_STATUS_OPEN
    )
    for returned in returns:
        _add(summary.return_revenue, str(returned.currency), int(returned.revenue_total_minor))
    return summary


def _add(amounts: dict[str, int], currency: str, amount: int) -> None:
    amounts[currency] = amounts.get(currency, 0) + amount


def _money(amounts: dict[str, int]) -> str:
    if not amounts:
        return f"{0:,.2f} {CURRENCY}"
    return " + ".join(
        f"{_major(amount, currency)} {currency}" for currency, amount in sorted(amounts.items())
    )


_ZERO_DECIMALS = frozenset({"JPY", "KRW", "CLP", "ISK", "VND", "XAF", "XOF", "XPF"})


def _major(amount_minor: int, currency: str) -> str:
    """Minor units in major units, exactly (the simulation prices in EUR; a few zero-decimal
    currencies are known so that another tenant's data reads right)."""
    digits = 0 if currency in _ZERO_DECIMALS else 2
    return f"{Decimal(amount_minor).scaleb(-digits):,.{digits}f}"


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{100 * rate:.0f} %"


def format_sales_summary(summary: SalesSummary, report: SalesReport | None = None) -> list[str]:
    """The sales block of the printed summary: open pipeline value by stage, win rate by count
    and value, quotes sent and accepted, leads (all as the API answered)."""
    lines = [
        f"  sales        pipeline {summary.open_count} open, {_money(summary.open_value())} "
        "(from the gateway's SalesService)"
    ]
    for stage_id, name in summary.stages:
        count, amounts = summary.open_by_stage.get(stage_id, (0, {}))
        lines.append(f"    {name:<16}{count:>4} open {_money(amounts):>24}")
    currencies: Sequence[str] = sorted(set(summary.won_value) | set(summary.lost_value))
    parts = []
    for currency in currencies:
        won = summary.won_value.get(currency, 0)
        closed = won + summary.lost_value.get(currency, 0)
        rate = _percent(summary.win_rate_by_value(currency))
        parts.append(
            f"{rate} by value ({_major(won, currency)} of {_major(closed, currency)} {currency})"
        )
    by_value = " · ".join(parts) or "- by value"
    lines += [
        f"  win rate     {_percent(summary.win_rate_by_count())} by count "
        f"({summary.won} won of {summary.won + summary.lost} closed) · {by_value}",
        f"  quotes       {summary.quotes_sent} sent · {summary.quotes_accepted} accepted · "
        f"leads {summary.leads} ({summary.leads_converted} converted, "
        f"{summary.leads_disqualified} disqualified)",
    ]
    funnel = report.funnel if report is not None else Counter()
    refused = report.refused_sends if report is not None else 0
    lines += [
        f"  campaigns    {summary.campaigns} · cost {_money(summary.campaign_cost)} · funnel "
        + " → ".join(f"{funnel[label]} {label}" for _, label, _ in FUNNEL)
        + f" → {summary.campaign_leads} leads → {summary.campaign_won} won · "
        f"{refused} sends refused · {funnel['unsubscribed']} unsubscribed",
        f"  orders       {summary.orders} · revenue {_money(summary.order_revenue)} · "
        f"returns {summary.returns} ({_money(summary.return_revenue)}) · "
        f"follow-up calls {summary.follow_up_calls} created "
        f"({summary.follow_up_calls_open} open)",
    ]
    if report is not None:
        lines.append(f"  sales team   {report.summary()}")
    return lines
