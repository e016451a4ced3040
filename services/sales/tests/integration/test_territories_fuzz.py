"""Property: random requests to every TerritoryService RPC (and the lead / opportunity creates
that the rules apply to) never come back as UNKNOWN or INTERNAL, whether they name existing
rules and records or not."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm.sales.v1 import sales_pb2 as pb
from crm.sales.v1 import territories_pb2 as tpb
from crm.sales.v1 import territories_pb2_grpc
from crm.sales.v1 import territories_types_pb2 as types_pb
from crm_testing.sales import SalesUnderTest, create_opportunity, create_pipeline, metadata

TENANT = "territory-fuzz"


@dataclass
class Targets:
    """Rules and records of the fuzz tenant that random requests may name."""

    stub: Any
    rule_ids: list[str]
    lead_ids: list[str]
    opportunity_ids: list[str]
    pipeline_ids: list[str]


@pytest.fixture(scope="module")
async def targets(sales: SalesUnderTest) -> AsyncIterator[Targets]:
    async with grpc.aio.insecure_channel(sales.address) as channel:
        stub = territories_pb2_grpc.TerritoryServiceStub(channel)
        rule = await stub.CreateTerritoryRule(
            tpb.CreateTerritoryRuleRequest(
                rule=tpb.TerritoryRule(
                    name="All",
                    applies_to=[tpb.TERRITORY_RECORD_KIND_LEAD],
                    territory_id="all",
                    team_id="inside",
                )
            ),
            metadata=metadata(TENANT),
        )
        lead = await sales.stub.CreateLead(
            pb.CreateLeadRequest(lead=pb.Lead(person_name="F", source=pb.LEAD_SOURCE_EVENT)),
            metadata=metadata(TENANT),
        )
        pipeline = await create_pipeline(sales, tenant=TENANT)
        opportunity = await create_opportunity(sales, pipeline.id, tenant=TENANT)
        yield Targets(stub, [rule.rule.id], [lead.lead.id], [opportunity.id], [pipeline.id])


_text = st.text(max_size=80)
_enum = st.integers(-2, 7)
_version = st.integers(-1, 4)
_country = st.sampled_from(["DE", "at", "XX", "", "D", "DEU"]) | st.text(max_size=3)
_values = st.lists(_text, max_size=3)
_profile = st.builds(
    types_pb.CompanyProfile,
    country=_country,
    region=_text,
    postal_code=st.text(max_size=20),
    industry=_text,
    size=_enum,
    tier=_text,
)
_condition = st.builds(
    tpb.TerritoryCondition,
    countries=st.lists(_country, max_size=3),
    regions=_values,
    postal_prefixes=_values,
    industries=_values,
    sizes=st.lists(_enum, max_size=3),
    tiers=_values,
)
_paths = st.builds(
    FieldMask,
    paths=st.lists(
        st.sampled_from(
            ["*", "name", "position", "enabled", "applies_to", "condition", "territory_id",
             "owner_id", "team_id", "version", "deleted"]
        )
        | st.text(max_size=20),
        max_size=3,
    ),
)  # fmt: skip


def _requests(ids: Targets) -> st.SearchStrategy[Message]:
    rule_id = st.sampled_from(ids.rule_ids) | _text
    lead_id = st.sampled_from(ids.lead_ids) | _text
    opportunity_id = st.sampled_from(ids.opportunity_ids) | _text
    rule = st.builds(
        tpb.TerritoryRule,
        id=rule_id,
        name=_text,
        position=st.integers(-(2**31), 2**31 - 1),
        enabled=st.booleans(),
        applies_to=st.lists(_enum, max_size=3),
        condition=_condition,
        territory_id=_text,
        owner_id=_text,
        team_id=_text,
    )
    # Near-valid rules, so that the writes themselves are fuzzed, not only the checks.
    plausible_rule = st.builds(
        tpb.TerritoryRule,
        name=st.text(min_size=1, max_size=200).filter(str.strip),
        position=st.integers(0, 2**31 - 1),
        enabled=st.booleans(),
        applies_to=st.lists(
            st.sampled_from(
                [tpb.TERRITORY_RECORD_KIND_LEAD, tpb.TERRITORY_RECORD_KIND_OPPORTUNITY]
            ),
            min_size=1,
            max_size=2,
            unique=True,
        ),
        condition=st.builds(
            tpb.TerritoryCondition,
            countries=st.lists(st.sampled_from(["DE", "AT", "fr"]), max_size=2),
            postal_prefixes=st.lists(st.text("0123456789 ", min_size=1, max_size=6), max_size=2),
            tiers=st.lists(st.text(min_size=1, max_size=64), max_size=2),
        ),
        territory_id=st.text("abc-", min_size=1, max_size=64),
        owner_id=st.text("xyz", min_size=1, max_size=64),
    )
    lead = st.builds(
        pb.Lead,
        person_name=st.text(min_size=1, max_size=200).filter(str.strip),
        source=st.just(pb.LEAD_SOURCE_WEB_FORM),
        owner_id=st.sampled_from(["", "rep-1"]),
        company_profile=_profile,
    )
    opportunity = st.builds(
        pb.Opportunity,
        name=st.text(min_size=1, max_size=200).filter(str.strip),
        currency=st.just("EUR"),
        pipeline_id=st.sampled_from(ids.pipeline_ids),
        account_profile=_profile,
    )
    return st.one_of(
        st.builds(tpb.CreateTerritoryRuleRequest, rule=rule | plausible_rule, request_id=_text),
        st.builds(tpb.GetTerritoryRuleRequest, id=rule_id, version=_version),
        st.builds(tpb.ListTerritoryRulesRequest, page_size=st.integers(-5, 600), page_token=_text),
        st.builds(
            tpb.UpdateTerritoryRuleRequest,
            rule=rule | plausible_rule.map(lambda r: _with_id(r, ids.rule_ids[0])),
            update_mask=_paths,
            expected_version=_version,
        ),
        st.builds(tpb.DeleteTerritoryRuleRequest, id=rule_id, expected_version=_version),
        st.builds(tpb.EvaluateTerritoryRequest, kind=_enum, profile=_profile),
        st.builds(tpb.AssignTerritoryRequest, lead_id=lead_id, expected_version=_version),
        st.builds(
            tpb.AssignTerritoryRequest, opportunity_id=opportunity_id, expected_version=_version
        ),
        st.builds(pb.CreateLeadRequest, lead=lead),
        st.builds(pb.CreateOpportunityRequest, opportunity=opportunity),
    )


def _with_id(rule: tpb.TerritoryRule, rule_id: str) -> tpb.TerritoryRule:
    rule.id = rule_id
    return rule


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_random_territory_requests_never_yield_unknown_or_internal(
    sales: SalesUnderTest, targets: Targets, data: st.DataObject
) -> None:
    request = data.draw(_requests(targets))
    name = type(request).__name__.removesuffix("Request")
    stub = (
        sales.stub
        if isinstance(request, pb.CreateLeadRequest | pb.CreateOpportunityRequest)
        else targets.stub
    )
    try:
        await getattr(stub, name)(request, metadata=metadata(TENANT), timeout=10)
    except grpc.aio.AioRpcError as error:
        assert error.code() not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL), (
            name,
            error.code(),
            error.details(),
        )
