"""The sales API end to end: gRPC → database → outbox → Kafka, events in order per key."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf.field_mask_pb2 import FieldMask

from crm.sales.v1 import events_pb2
from crm.sales.v1 import sales_pb2 as pb
from crm_testing.sales import (
    SalesUnderTest,
    create_opportunity,
    create_pipeline,
    events_for,
    metadata,
    precondition_types,
    refused,
    unique_id,
)


async def test_opportunity_through_its_stages_to_won_publishes_every_event_in_order(
    infra: Any, sales: SalesUnderTest
) -> None:
    pipeline = await create_pipeline(sales)
    opportunity = await create_opportunity(sales, pipeline.id)
    assert (opportunity.stage_id, opportunity.pipeline_version, opportunity.version) == (
        "qualify",
        1,
        1,
    )
    moved = (
        await sales.stub.MoveOpportunityStage(
            pb.MoveOpportunityStageRequest(
                id=opportunity.id, stage_id="proposal", expected_version=1
            ),
            metadata=metadata(),
        )
    ).opportunity
    updated = (
        await sales.stub.UpdateOpportunity(
            pb.UpdateOpportunityRequest(
                opportunity=pb.Opportunity(id=opportunity.id, amount_minor=990_000),
                update_mask=FieldMask(paths=["amount_minor"]),
                expected_version=moved.version,
            ),
            metadata=metadata(),
        )
    ).opportunity
    won = (
        await sales.stub.WinOpportunity(
            pb.WinOpportunityRequest(
                id=opportunity.id, reason="best fit", expected_version=updated.version
            ),
            metadata=metadata(actor="bob"),
        )
    ).opportunity
    assert (won.status, won.stage_id, won.close_reason, won.version) == (
        pb.STAGE_KIND_WON,
        "won",
        "best fit",
        4,
    )
    assert [(c.from_stage_id, c.to_stage_id) for c in won.stage_history] == [
        ("", "qualify"),
        ("qualify", "proposal"),
        ("proposal", "won"),
    ]
    assert won.stage_history[-1].actor == "agent:bob"
    assert won.amount_minor == 990_000

    read = (
        await sales.stub.GetOpportunity(
            pb.GetOpportunityRequest(id=opportunity.id), metadata=metadata()
        )
    ).opportunity
    assert read == won

    events = await events_for(infra.kafka_bootstrap, opportunity.primary_contact_id, 4)
    assert [e.type for e in events] == [
        "crm.sales.v1.OpportunityCreated",
        "crm.sales.v1.OpportunityStageChanged",
        "crm.sales.v1.OpportunityUpdated",
        "crm.sales.v1.OpportunityWon",
    ]
    assert {e.subject for e in events} == {f"opportunities/{opportunity.id}"}
    assert {e.tenant_id for e in events} == {"acme"}
    assert [str(e.actor) for e in events] == ["agent:alice"] * 3 + ["agent:bob"]
    created, moved_event, updated_event, won_event = (e.decode() for e in events)
    assert isinstance(created, events_pb2.OpportunityCreated)
    assert isinstance(moved_event, events_pb2.OpportunityStageChanged)
    assert isinstance(updated_event, events_pb2.OpportunityUpdated)
    assert isinstance(won_event, events_pb2.OpportunityWon)
    assert won_event.opportunity == won
    assert won_event.change.to_stage_id == "won"
    assert won_event.previous_version == 3
    assert list(updated_event.changed_fields.paths) == ["amount_minor"]
    assert [
        created.opportunity.version,
        moved_event.opportunity.version,
        updated_event.opportunity.version,
        won_event.opportunity.version,
    ] == [1, 2, 3, 4]


async def test_account_deal_without_a_contact_is_keyed_by_the_organisation(
    infra: Any, sales: SalesUnderTest
) -> None:
    pipeline = await create_pipeline(sales)
    account = unique_id("org")
    opportunity = await create_opportunity(
        sales, pipeline.id, account_id=account, primary_contact_id=""
    )
    await sales.stub.LoseOpportunity(
        pb.LoseOpportunityRequest(id=opportunity.id, reason="no budget"), metadata=metadata()
    )
    reopened = (
        await sales.stub.ReopenOpportunity(
            pb.ReopenOpportunityRequest(id=opportunity.id, stage_id="qualify", reason="budget"),
            metadata=metadata(),
        )
    ).opportunity
    assert reopened.status == pb.STAGE_KIND_OPEN
    events = await events_for(infra.kafka_bootstrap, account, 3)
    assert [e.type for e in events] == [
        "crm.sales.v1.OpportunityCreated",
        "crm.sales.v1.OpportunityLost",
        "crm.sales.v1.OpportunityReopened",
    ]


async def test_opportunity_keeps_the_pipeline_version_it_was_created_under(
    sales: SalesUnderTest,
) -> None:
    pipeline = await create_pipeline(sales)
    old = await create_opportunity(sales, pipeline.id)
    stages = list(pipeline.stages)
    stages.insert(
        2,
        pb.Stage(
            id="negotiation", name="Negotiation", win_probability_percent=80,
            kind=pb.STAGE_KIND_OPEN,
        ),
    )  # fmt: skip
    v2 = (
        await sales.stub.UpdatePipeline(
            pb.UpdatePipelineRequest(
                pipeline=pb.Pipeline(id=pipeline.id, stages=stages),
                update_mask=FieldMask(paths=["stages"]),
                expected_version=1,
            ),
            metadata=metadata(),
        )
    ).pipeline
    assert v2.version == 2
    new = await create_opportunity(sales, pipeline.id, stage_id="negotiation")
    assert (new.pipeline_version, new.stage_id) == (2, "negotiation")
    v1 = (
        await sales.stub.GetPipeline(
            pb.GetPipelineRequest(id=pipeline.id, version=1), metadata=metadata()
        )
    ).pipeline
    assert [s.id for s in v1.stages] == ["qualify", "proposal", "won", "lost"]
    assert old.pipeline_version == 1


async def test_create_with_a_request_id_twice_creates_once(sales: SalesUnderTest) -> None:
    pipeline = await create_pipeline(sales)
    request = pb.CreateOpportunityRequest(
        opportunity=pb.Opportunity(
            name="Retry me", currency="USD", amount_minor=100, pipeline_id=pipeline.id
        ),
        request_id=unique_id("req"),
    )
    first = await sales.stub.CreateOpportunity(request, metadata=metadata())
    second = await sales.stub.CreateOpportunity(request, metadata=metadata())
    assert first.opportunity == second.opportunity
    count = await sales.mongo.db["opportunities"].count_documents({"name": "Retry me"})
    assert count == 1


async def test_a_request_id_reused_for_another_request_is_refused(sales: SalesUnderTest) -> None:
    request_id = unique_id("req")
    first = pb.CreateLeadRequest(
        lead=pb.Lead(person_name="A", source=pb.LEAD_SOURCE_REFERRAL), request_id=request_id
    )
    await sales.stub.CreateLead(first, metadata=metadata())
    other = pb.CreateLeadRequest(
        lead=pb.Lead(person_name="B", source=pb.LEAD_SOURCE_REFERRAL), request_id=request_id
    )
    error = await refused(
        sales.stub.CreateLead(other, metadata=metadata()), grpc.StatusCode.FAILED_PRECONDITION
    )
    assert precondition_types(error) == {"REQUEST_ID_REUSED"}
    assert await sales.mongo.db["leads"].count_documents({"person_name": "B"}) == 0


async def test_lead_created_then_worked_then_qualified_publishes_in_order(
    infra: Any, sales: SalesUnderTest
) -> None:
    campaign = unique_id("campaign")
    lead = (
        await sales.stub.CreateLead(
            pb.CreateLeadRequest(
                lead=pb.Lead(
                    person_name="Ann Lee",
                    company_name="Lee & Co",
                    email="ann@example.com",
                    source=pb.LEAD_SOURCE_SOCIAL,
                    campaign_id=campaign,
                    origin_mention_id="mention-42",
                )
            ),
            metadata=metadata(),
        )
    ).lead
    assert (lead.status, lead.version) == (pb.LEAD_STATUS_NEW, 1)
    working = (
        await sales.stub.StartWorkingLead(
            pb.StartWorkingLeadRequest(id=lead.id, expected_version=1), metadata=metadata()
        )
    ).lead
    qualified = (
        await sales.stub.QualifyLead(
            pb.QualifyLeadRequest(id=lead.id, expected_version=working.version),
            metadata=metadata(),
        )
    ).lead
    assert (qualified.status, qualified.version) == (pb.LEAD_STATUS_QUALIFIED, 3)
    listed = await sales.stub.ListLeads(
        pb.ListLeadsRequest(campaign_id=campaign, status=pb.LEAD_STATUS_QUALIFIED),
        metadata=metadata(),
    )
    assert [x.id for x in listed.leads] == [lead.id]

    events = await events_for(infra.kafka_bootstrap, lead.id, 3)  # no contact yet: the lead id
    assert [e.type for e in events] == [
        "crm.sales.v1.LeadCreated",
        "crm.sales.v1.LeadStatusChanged",
        "crm.sales.v1.LeadStatusChanged",
    ]
    last = events[2].decode()
    assert isinstance(last, events_pb2.LeadStatusChanged)
    assert last.previous_status == pb.LEAD_STATUS_WORKING
    assert last.lead.origin_mention_id == "mention-42"


async def test_list_opportunities_filters_and_pages_by_keyset(sales: SalesUnderTest) -> None:
    pipeline = await create_pipeline(sales)
    owner = unique_id("rep")
    created = [await create_opportunity(sales, pipeline.id, owner_id=owner) for _ in range(5)]
    await sales.stub.WinOpportunity(pb.WinOpportunityRequest(id=created[0].id), metadata=metadata())
    seen: list[str] = []
    token = ""
    while True:
        page = await sales.stub.ListOpportunities(
            pb.ListOpportunitiesRequest(
                owner_id=owner, status=pb.STAGE_KIND_OPEN, page_size=2, page_token=token
            ),
            metadata=metadata(),
        )
        assert len(page.opportunities) <= 2
        seen += [o.id for o in page.opportunities]
        token = page.next_page_token
        if not token:
            break
    assert seen == sorted(o.id for o in created[1:])
