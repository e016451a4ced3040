"""Territories on the real database and broker: rule CRUD with its events, stale versions,
leads and opportunities assigned by the rules on create (the decision recorded and in the
event) and on AssignTerritory, the dry run, bad input, and tenant isolation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from crm.sales.v1 import events_pb2, territories_events_pb2, territories_pb2_grpc
from crm.sales.v1 import sales_pb2 as pb
from crm.sales.v1 import territories_pb2 as tpb
from crm.sales.v1 import territories_types_pb2 as types_pb
from crm_testing.sales import (
    SalesUnderTest,
    create_opportunity,
    create_pipeline,
    events_for,
    metadata,
    precondition_types,
    refused,
    unique_id,
    violations,
)

LEAD = tpb.TERRITORY_RECORD_KIND_LEAD
OPPORTUNITY = tpb.TERRITORY_RECORD_KIND_OPPORTUNITY
INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION


@pytest.fixture(scope="module")
async def territories(sales: SalesUnderTest) -> AsyncIterator[Any]:
    async with grpc.aio.insecure_channel(sales.address) as channel:
        yield territories_pb2_grpc.TerritoryServiceStub(channel)


def _rule(**fields: Any) -> tpb.TerritoryRule:
    values: dict[str, Any] = {
        "name": "DACH",
        "position": 10,
        "enabled": True,
        "applies_to": [LEAD, OPPORTUNITY],
        "condition": tpb.TerritoryCondition(countries=["DE", "AT"]),
        "territory_id": "dach",
        "owner_id": "rep-de",
        "team_id": "team-dach",
    }
    values.update(fields)
    return tpb.TerritoryRule(**values)


async def _create_rule(territories: Any, tenant: str, **fields: Any) -> tpb.TerritoryRule:
    reply = await territories.CreateTerritoryRule(
        tpb.CreateTerritoryRuleRequest(rule=_rule(**fields)), metadata=metadata(tenant)
    )
    rule: tpb.TerritoryRule = reply.rule
    return rule


async def _create_lead(
    sales: SalesUnderTest, tenant: str, owner: str = "", **profile: Any
) -> pb.Lead:
    reply = await sales.stub.CreateLead(
        pb.CreateLeadRequest(
            lead=pb.Lead(
                person_name="Ann Lee",
                company_name="Muster GmbH",
                source=pb.LEAD_SOURCE_WEB_FORM,
                owner_id=owner,
                company_profile=types_pb.CompanyProfile(**profile),
            )
        ),
        metadata=metadata(tenant),
    )
    lead: pb.Lead = reply.lead
    return lead


async def _all_rules(territories: Any, tenant: str) -> list[tpb.TerritoryRule]:
    reply = await territories.ListTerritoryRules(
        tpb.ListTerritoryRulesRequest(page_size=500), metadata=metadata(tenant)
    )
    return list(reply.rules)


async def test_rule_crud_publishes_created_updated_deleted_in_order_on_the_rule_key(
    infra: Any, territories: Any
) -> None:
    tenant = unique_id("t")
    rule = await _create_rule(territories, tenant)
    assert (rule.version, rule.deleted) == (1, False)
    got = await territories.GetTerritoryRule(
        tpb.GetTerritoryRuleRequest(id=rule.id), metadata=metadata(tenant)
    )
    assert got.rule == rule

    updated = (
        await territories.UpdateTerritoryRule(
            tpb.UpdateTerritoryRuleRequest(
                rule=tpb.TerritoryRule(id=rule.id, owner_id="rep-at", position=5),
                update_mask=FieldMask(paths=["owner_id", "position"]),
                expected_version=1,
            ),
            metadata=metadata(tenant, actor="bob"),
        )
    ).rule
    assert (updated.version, updated.owner_id, updated.position) == (2, "rep-at", 5)
    assert updated.condition == rule.condition

    deleted = (
        await territories.DeleteTerritoryRule(
            tpb.DeleteTerritoryRuleRequest(id=rule.id, expected_version=2),
            metadata=metadata(tenant),
        )
    ).rule
    assert (deleted.version, deleted.deleted) == (3, True)
    await refused(
        territories.GetTerritoryRule(
            tpb.GetTerritoryRuleRequest(id=rule.id), metadata=metadata(tenant)
        ),
        NOT_FOUND,
    )
    # Every version stays readable, for the audit of decisions it made.
    for version, expected in ((1, rule), (2, updated), (3, deleted)):
        old = await territories.GetTerritoryRule(
            tpb.GetTerritoryRuleRequest(id=rule.id, version=version), metadata=metadata(tenant)
        )
        assert old.rule == expected
    assert await _all_rules(territories, tenant) == []

    events = await events_for(infra.kafka_bootstrap, rule.id, 3)
    assert [e.type for e in events] == [
        "crm.sales.v1.TerritoryRuleCreated",
        "crm.sales.v1.TerritoryRuleUpdated",
        "crm.sales.v1.TerritoryRuleDeleted",
    ]
    assert {e.subject for e in events} == {f"territoryRules/{rule.id}"}
    assert {e.tenant_id for e in events} == {tenant}
    assert [str(e.actor) for e in events] == ["agent:alice", "agent:bob", "agent:alice"]
    created, changed, removed = (e.decode() for e in events)
    assert isinstance(created, territories_events_pb2.TerritoryRuleCreated)
    assert isinstance(changed, territories_events_pb2.TerritoryRuleUpdated)
    assert isinstance(removed, territories_events_pb2.TerritoryRuleDeleted)
    assert created.rule == rule
    assert changed.rule == updated
    assert sorted(changed.changed_fields.paths) == ["owner_id", "position"]
    assert changed.previous_version == 1
    assert (removed.rule, removed.previous_version) == (deleted, 2)


async def test_list_is_in_position_order_and_pages(territories: Any) -> None:
    tenant = unique_id("t")
    made = [
        await _create_rule(territories, tenant, name=f"p{position}", position=position)
        for position in (30, 10, 20, 10)
    ]
    expected = sorted(made, key=lambda r: (r.position, r.id))
    seen: list[tpb.TerritoryRule] = []
    token = ""
    while True:
        reply = await territories.ListTerritoryRules(
            tpb.ListTerritoryRulesRequest(page_size=1, page_token=token), metadata=metadata(tenant)
        )
        seen.extend(reply.rules)
        token = reply.next_page_token
        if not token:
            break
    assert seen == expected


async def test_a_stale_or_concurrently_based_change_is_refused_and_nothing_changes(
    territories: Any,
) -> None:
    tenant = unique_id("t")
    rule = await _create_rule(territories, tenant)
    error = await refused(
        territories.UpdateTerritoryRule(
            tpb.UpdateTerritoryRuleRequest(
                rule=tpb.TerritoryRule(id=rule.id, name="Renamed"),
                update_mask=FieldMask(paths=["name"]),
                expected_version=2,
            ),
            metadata=metadata(tenant),
        ),
        PRECONDITION,
    )
    assert precondition_types(error) == {"STALE_VERSION"}
    error = await refused(
        territories.DeleteTerritoryRule(
            tpb.DeleteTerritoryRuleRequest(id=rule.id, expected_version=3),
            metadata=metadata(tenant),
        ),
        PRECONDITION,
    )
    assert precondition_types(error) == {"STALE_VERSION"}
    assert await _all_rules(territories, tenant) == [rule]


async def test_a_create_retried_with_its_request_id_creates_one_rule(territories: Any) -> None:
    tenant = unique_id("t")
    request = tpb.CreateTerritoryRuleRequest(rule=_rule(), request_id="once")
    first = await territories.CreateTerritoryRule(request, metadata=metadata(tenant))
    again = await territories.CreateTerritoryRule(request, metadata=metadata(tenant))
    assert again.rule == first.rule
    assert await _all_rules(territories, tenant) == [first.rule]


async def test_a_lead_created_without_owner_is_assigned_by_the_first_matching_rule(
    infra: Any, sales: SalesUnderTest, territories: Any
) -> None:
    tenant = unique_id("t")
    dach = await _create_rule(territories, tenant)
    catch_all = await _create_rule(
        territories,
        tenant,
        name="Everyone else",
        position=100,
        condition=tpb.TerritoryCondition(),
        territory_id="rest",
        owner_id="",
        team_id="inside-sales",
    )
    german = await _create_lead(sales, tenant, country="de", postal_code="80331")
    assert (german.owner_id, german.team_id, german.territory_id) == (
        "rep-de",
        "team-dach",
        "dach",
    )
    decision = german.territory_assignment
    assert (decision.rule_id, decision.rule_version) == (dach.id, 1)
    assert decision.decide_time == german.create_time
    assert german.company_profile.country == "DE"

    french = await _create_lead(sales, tenant, country="FR")
    assert (french.owner_id, french.team_id, french.territory_id) == ("", "inside-sales", "rest")
    assert french.territory_assignment.rule_id == catch_all.id

    chosen = await _create_lead(sales, tenant, owner="rep-own", country="DE")
    assert chosen.owner_id == "rep-own"
    assert not chosen.HasField("territory_assignment")
    assert chosen.territory_id == ""

    stored = await sales.stub.GetLead(pb.GetLeadRequest(id=german.id), metadata=metadata(tenant))
    assert stored.lead == german
    (event,) = await events_for(infra.kafka_bootstrap, german.id, 1)
    payload = event.decode()
    assert isinstance(payload, events_pb2.LeadCreated)
    assert payload.lead == german
    assert payload.lead.territory_assignment.rule_id == dach.id


async def test_an_opportunity_created_without_owner_is_assigned_and_its_event_says_so(
    infra: Any, sales: SalesUnderTest, territories: Any
) -> None:
    tenant = unique_id("t")
    leads_only = await _create_rule(territories, tenant, applies_to=[LEAD], position=1)
    enterprise = await _create_rule(
        territories,
        tenant,
        name="Enterprise",
        applies_to=[OPPORTUNITY],
        condition=tpb.TerritoryCondition(
            sizes=[types_pb.COMPANY_SIZE_ENTERPRISE], industries=["Manufacturing"]
        ),
        territory_id="strategic",
        owner_id="rep-big",
        team_id="",
    )
    pipeline = await create_pipeline(sales, tenant=tenant)
    opportunity = await create_opportunity(
        sales,
        pipeline.id,
        tenant=tenant,
        account_profile=types_pb.CompanyProfile(
            country="DE", size=types_pb.COMPANY_SIZE_ENTERPRISE, industry="manufacturing"
        ),
    )
    assert opportunity.owner_id == "rep-big"
    assert opportunity.territory_id == "strategic"
    assert (
        opportunity.territory_assignment.rule_id,
        opportunity.territory_assignment.rule_version,
    ) == (enterprise.id, 1)
    assert leads_only.id != opportunity.territory_assignment.rule_id

    unmatched = await create_opportunity(
        sales, pipeline.id, tenant=tenant, account_profile=types_pb.CompanyProfile(country="DE")
    )
    assert (unmatched.owner_id, unmatched.territory_id) == ("", "")
    assert not unmatched.HasField("territory_assignment")

    (event,) = await events_for(infra.kafka_bootstrap, opportunity.primary_contact_id, 1)
    payload = event.decode()
    assert isinstance(payload, events_pb2.OpportunityCreated)
    assert payload.opportunity == opportunity


async def test_assign_territory_re_evaluates_with_the_current_rules(
    infra: Any, sales: SalesUnderTest, territories: Any
) -> None:
    tenant = unique_id("t")
    rule = await _create_rule(territories, tenant)
    lead = await _create_lead(sales, tenant, country="AT")
    assert lead.territory_assignment.rule_version == 1

    unchanged = await territories.AssignTerritory(
        tpb.AssignTerritoryRequest(lead_id=lead.id), metadata=metadata(tenant)
    )
    assert (unchanged.changed, unchanged.lead) == (False, lead)

    await territories.UpdateTerritoryRule(
        tpb.UpdateTerritoryRuleRequest(
            rule=tpb.TerritoryRule(id=rule.id, owner_id="rep-at"),
            update_mask=FieldMask(paths=["owner_id"]),
        ),
        metadata=metadata(tenant),
    )
    error = await refused(
        territories.AssignTerritory(
            tpb.AssignTerritoryRequest(lead_id=lead.id, expected_version=2),
            metadata=metadata(tenant),
        ),
        PRECONDITION,
    )
    assert precondition_types(error) == {"STALE_VERSION"}

    reply = await territories.AssignTerritory(
        tpb.AssignTerritoryRequest(lead_id=lead.id, expected_version=1),
        metadata=metadata(tenant, actor="bob"),
    )
    assert reply.changed
    assert reply.WhichOneof("record") == "lead"
    assert (reply.lead.owner_id, reply.lead.version) == ("rep-at", 2)
    assert (reply.assignment.rule_id, reply.assignment.rule_version) == (rule.id, 2)
    assert reply.lead.territory_assignment == reply.assignment

    events = await events_for(infra.kafka_bootstrap, lead.id, 2)
    assert [e.type for e in events] == [
        "crm.sales.v1.LeadCreated",
        "crm.sales.v1.LeadTerritoryAssigned",
    ]
    assigned = events[1].decode()
    assert isinstance(assigned, territories_events_pb2.LeadTerritoryAssigned)
    assert (assigned.lead, assigned.assignment) == (reply.lead, reply.assignment)
    assert (assigned.previous_version, assigned.previous_owner_id) == (1, "rep-de")
    assert str(events[1].actor) == "agent:bob"

    # No rule matches any more: refused, nothing changes.
    await territories.DeleteTerritoryRule(
        tpb.DeleteTerritoryRuleRequest(id=rule.id), metadata=metadata(tenant)
    )
    error = await refused(
        territories.AssignTerritory(
            tpb.AssignTerritoryRequest(lead_id=lead.id), metadata=metadata(tenant)
        ),
        PRECONDITION,
    )
    assert precondition_types(error) == {"NO_TERRITORY_RULE_MATCHES"}
    again = await sales.stub.GetLead(pb.GetLeadRequest(id=lead.id), metadata=metadata(tenant))
    assert again.lead == reply.lead


async def test_assign_territory_on_an_existing_opportunity(
    sales: SalesUnderTest, territories: Any
) -> None:
    tenant = unique_id("t")
    pipeline = await create_pipeline(sales, tenant=tenant)
    opportunity = await create_opportunity(
        sales, pipeline.id, tenant=tenant, account_profile=types_pb.CompanyProfile(tier="gold")
    )
    assert opportunity.territory_id == ""  # no rules yet
    rule = await _create_rule(
        territories, tenant, condition=tpb.TerritoryCondition(tiers=["Gold"]), territory_id="vip"
    )
    reply = await territories.AssignTerritory(
        tpb.AssignTerritoryRequest(opportunity_id=opportunity.id), metadata=metadata(tenant)
    )
    assert reply.changed
    assert (reply.opportunity.territory_id, reply.opportunity.owner_id) == ("vip", "rep-de")
    assert (reply.assignment.rule_id, reply.opportunity.version) == (rule.id, 2)


async def test_evaluate_is_a_dry_run(sales: SalesUnderTest, territories: Any) -> None:
    tenant = unique_id("t")
    rule = await _create_rule(territories, tenant)
    hit = await territories.EvaluateTerritory(
        tpb.EvaluateTerritoryRequest(kind=LEAD, profile=types_pb.CompanyProfile(country="DE")),
        metadata=metadata(tenant),
    )
    assert hit.matched
    assert (hit.decision.rule_id, hit.decision.rule_version, hit.decision.owner_id) == (
        rule.id,
        1,
        "rep-de",
    )
    miss = await territories.EvaluateTerritory(
        tpb.EvaluateTerritoryRequest(kind=LEAD, profile=types_pb.CompanyProfile(country="FR")),
        metadata=metadata(tenant),
    )
    assert not miss.matched
    assert not miss.HasField("decision")
    assert await _all_rules(territories, tenant) == [rule]


async def test_bad_input_is_refused_with_field_violations_and_nothing_is_written(
    sales: SalesUnderTest, territories: Any
) -> None:
    tenant = unique_id("t")
    error = await refused(
        territories.CreateTerritoryRule(
            tpb.CreateTerritoryRuleRequest(
                rule=_rule(
                    name=" ",
                    applies_to=[],
                    territory_id="",
                    owner_id="",
                    team_id="",
                    condition=tpb.TerritoryCondition(countries=["XX"], postal_prefixes=[" "]),
                )
            ),
            metadata=metadata(tenant),
        ),
        INVALID,
    )
    assert set(violations(error)) == {
        "rule.name",
        "rule.applies_to",
        "rule.territory_id",
        "rule.owner_id",
        "rule.condition.countries",
        "rule.condition.postal_prefixes",
    }
    error = await refused(
        territories.CreateTerritoryRule(
            tpb.CreateTerritoryRuleRequest(rule=_rule(applies_to=[7], position=-1)),
            metadata=metadata(tenant),
        ),
        INVALID,
    )
    assert set(violations(error)) == {"rule.applies_to[0]", "rule.position"}
    assert await _all_rules(territories, tenant) == []

    rule = await _create_rule(territories, tenant)
    error = await refused(
        territories.UpdateTerritoryRule(
            tpb.UpdateTerritoryRuleRequest(
                rule=tpb.TerritoryRule(id=rule.id, territory_id=""),
                update_mask=FieldMask(paths=["territory_id"]),
            ),
            metadata=metadata(tenant),
        ),
        INVALID,
    )
    assert set(violations(error)) == {"rule.territory_id"}
    assert await _all_rules(territories, tenant) == [rule]

    error = await refused(
        sales.stub.CreateLead(
            pb.CreateLeadRequest(
                lead=pb.Lead(
                    person_name="Ann",
                    source=pb.LEAD_SOURCE_WEB_FORM,
                    company_profile=types_pb.CompanyProfile(country="QQ"),
                )
            ),
            metadata=metadata(tenant),
        ),
        INVALID,
    )
    assert set(violations(error)) == {"lead.company_profile.country"}
    listed = await sales.stub.ListLeads(pb.ListLeadsRequest(), metadata=metadata(tenant))
    assert list(listed.leads) == []

    error = await refused(
        territories.EvaluateTerritory(
            tpb.EvaluateTerritoryRequest(kind=LEAD, profile=types_pb.CompanyProfile(country="1")),
            metadata=metadata(tenant),
        ),
        INVALID,
    )
    assert set(violations(error)) == {"profile.country"}
    error = await refused(
        territories.AssignTerritory(tpb.AssignTerritoryRequest(), metadata=metadata(tenant)),
        INVALID,
    )
    assert violations(error)


async def test_another_tenants_rules_never_apply_and_are_never_visible(
    sales: SalesUnderTest, territories: Any
) -> None:
    tenant, other = unique_id("t"), unique_id("t")
    rule = await _create_rule(territories, tenant, condition=tpb.TerritoryCondition())
    lead = await _create_lead(sales, tenant, country="DE")
    assert lead.territory_assignment.rule_id == rule.id

    assert await _all_rules(territories, other) == []
    for call in (
        territories.GetTerritoryRule(
            tpb.GetTerritoryRuleRequest(id=rule.id), metadata=metadata(other)
        ),
        territories.GetTerritoryRule(
            tpb.GetTerritoryRuleRequest(id=rule.id, version=1), metadata=metadata(other)
        ),
        territories.UpdateTerritoryRule(
            tpb.UpdateTerritoryRuleRequest(
                rule=tpb.TerritoryRule(id=rule.id, name="Mine"),
                update_mask=FieldMask(paths=["name"]),
            ),
            metadata=metadata(other),
        ),
        territories.DeleteTerritoryRule(
            tpb.DeleteTerritoryRuleRequest(id=rule.id), metadata=metadata(other)
        ),
        territories.AssignTerritory(
            tpb.AssignTerritoryRequest(lead_id=lead.id), metadata=metadata(other)
        ),
    ):
        await refused(call, NOT_FOUND)

    theirs = await _create_lead(sales, other, country="DE")
    assert (theirs.owner_id, theirs.territory_id) == ("", "")
    assert not theirs.HasField("territory_assignment")
    dry = await territories.EvaluateTerritory(
        tpb.EvaluateTerritoryRequest(kind=LEAD, profile=types_pb.CompanyProfile(country="DE")),
        metadata=metadata(other),
    )
    assert not dry.matched
    unchanged = await territories.GetTerritoryRule(
        tpb.GetTerritoryRuleRequest(id=rule.id), metadata=metadata(tenant)
    )
    assert unchanged.rule == rule


async def test_of_two_concurrent_changes_of_one_version_exactly_one_wins(
    territories: Any,
) -> None:
    tenant = unique_id("t")
    rule = await _create_rule(territories, tenant)

    async def change(owner: str) -> tpb.TerritoryRule | grpc.aio.AioRpcError:
        try:
            reply = await territories.UpdateTerritoryRule(
                tpb.UpdateTerritoryRuleRequest(
                    rule=tpb.TerritoryRule(id=rule.id, owner_id=owner),
                    update_mask=FieldMask(paths=["owner_id"]),
                    expected_version=1,
                ),
                metadata=metadata(tenant),
            )
        except grpc.aio.AioRpcError as error:
            return error
        changed: tpb.TerritoryRule = reply.rule
        return changed

    results = await asyncio.gather(change("rep-a"), change("rep-b"))
    won = [r for r in results if isinstance(r, tpb.TerritoryRule)]
    lost = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(won) == 1
    assert len(lost) == 1
    assert lost[0].code() == PRECONDITION
    assert precondition_types(lost[0]) <= {"STALE_VERSION", "CONCURRENT_UPDATE"}
    (current,) = await _all_rules(territories, tenant)
    assert current == won[0]
    assert current.version == 2
    with pytest.raises(grpc.aio.AioRpcError):  # no third version was made
        await territories.GetTerritoryRule(
            tpb.GetTerritoryRuleRequest(id=rule.id, version=3), metadata=metadata(tenant)
        )


async def test_a_converted_leads_company_facts_become_its_opportunitys_account_facts(
    sales: SalesUnderTest, territories: Any
) -> None:
    tenant = unique_id("t")
    await _create_rule(territories, tenant, applies_to=[OPPORTUNITY], territory_id="dach-deals")
    lead = await _create_lead(sales, tenant, owner="rep-own", country="AT", tier="gold")
    await sales.stub.QualifyLead(pb.QualifyLeadRequest(id=lead.id), metadata=metadata(tenant))
    pipeline = await create_pipeline(sales, tenant=tenant)
    converted = await sales.stub.ConvertLead(
        pb.ConvertLeadRequest(
            id=lead.id,
            opportunity=pb.Opportunity(
                name="First order", amount_minor=100, currency="EUR", pipeline_id=pipeline.id
            ),
        ),
        metadata=metadata(tenant),
    )
    opportunity = converted.opportunity
    assert opportunity.account_profile == lead.company_profile
    assert opportunity.owner_id == "rep-own"  # the lead's owner: the rules do not override it
    reply = await territories.AssignTerritory(
        tpb.AssignTerritoryRequest(opportunity_id=opportunity.id), metadata=metadata(tenant)
    )
    assert reply.opportunity.territory_id == "dach-deals"
