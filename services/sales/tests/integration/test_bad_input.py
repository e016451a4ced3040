"""Bad input gets the right status with field violations, and writes nothing; another tenant's
ids are NOT_FOUND; of two concurrent stage changes on one version exactly one wins."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from crm.sales.v1 import sales_pb2 as pb
from crm_testing.sales import (
    OTHER_TENANT,
    SalesUnderTest,
    create_opportunity,
    create_pipeline,
    events_for,
    metadata,
    precondition_types,
    refused,
    stages,
    violations,
)

COLLECTIONS = ("pipelines", "pipeline_versions", "opportunities", "leads", "idempotency", "outbox")
INVALID = grpc.StatusCode.INVALID_ARGUMENT
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION


@dataclass
class World:
    """What the refused requests are aimed at, made before the counting starts."""

    pipeline: pb.Pipeline
    open: pb.Opportunity
    won: pb.Opportunity
    lead: pb.Lead


@pytest.fixture(scope="module")
async def world(sales: SalesUnderTest) -> World:
    pipeline = await create_pipeline(sales)
    open_one = await create_opportunity(sales, pipeline.id)
    won = await create_opportunity(sales, pipeline.id)
    won = (
        await sales.stub.WinOpportunity(pb.WinOpportunityRequest(id=won.id), metadata=metadata())
    ).opportunity
    lead = (
        await sales.stub.CreateLead(
            pb.CreateLeadRequest(lead=pb.Lead(email="x@example.com", source=pb.LEAD_SOURCE_PHONE)),
            metadata=metadata(),
        )
    ).lead
    return World(pipeline, open_one, won, lead)


async def _counts(sales: SalesUnderTest) -> dict[str, int]:
    db = sales.mongo.db
    return {name: await db[name].count_documents({}) for name in COLLECTIONS}


@pytest.fixture
async def unchanged(sales: SalesUnderTest, world: World) -> AsyncIterator[None]:
    """Asserts that the test left every collection, the outbox included, as it found it (the
    relay is paused meanwhile: it would otherwise empty the outbox under our feet)."""
    relay = sales.service.parts.extra["relay"]
    await relay.stop()
    try:
        before = await _counts(sales)
        yield
        assert await _counts(sales) == before
    finally:
        relay.start()


def _opportunity(pipeline: str, **fields: object) -> pb.CreateOpportunityRequest:
    values: dict[str, object] = {
        "name": "Deal",
        "amount_minor": 100,
        "currency": "EUR",
        "pipeline_id": pipeline,
    }
    values.update(fields)
    return pb.CreateOpportunityRequest(opportunity=pb.Opportunity(**values))  # type: ignore[arg-type]


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"amount_minor": -1}, "opportunity.amount_minor"),
        ({"currency": "ZZZ"}, "opportunity.currency"),
        ({"currency": "XXX"}, "opportunity.currency"),
        ({"currency": "eur"}, "opportunity.currency"),
        ({"currency": ""}, "opportunity.currency"),
        ({"stage_id": "negotiation"}, "opportunity.stage_id"),
        ({"stage_id": "won"}, "opportunity.stage_id"),
        ({"pipeline_id": "no-such-pipeline"}, "opportunity.pipeline_id"),
        ({"name": "  "}, "opportunity"),
        ({"expected_close_date": "2026-13-01"}, "opportunity.expected_close_date"),
        (
            {"buying_centre": [pb.BuyingCentreMember(contact_id="c1")]},
            "opportunity.buying_centre[0].roles",
        ),
        (
            {"line_items": [pb.LineItem(product_id="sku", quantity=0)]},
            "opportunity.line_items[0].quantity",
        ),
    ],
)
async def test_invalid_opportunity_is_refused_with_the_field_named(
    sales: SalesUnderTest, world: World, fields: dict[str, object], field: str
) -> None:
    error = await refused(
        sales.stub.CreateOpportunity(
            _opportunity(world.pipeline.id, **fields), metadata=metadata()
        ),
        INVALID,
    )
    assert field in violations(error)


@pytest.mark.usefixtures("unchanged")
async def test_pipeline_without_a_lost_stage_is_refused(sales: SalesUnderTest) -> None:
    no_lost = [s for s in stages() if s.kind != pb.STAGE_KIND_LOST]
    no_lost.append(
        pb.Stage(id="won2", name="Won 2", win_probability_percent=100, kind=pb.STAGE_KIND_WON)
    )
    error = await refused(
        sales.stub.CreatePipeline(
            pb.CreatePipelineRequest(pipeline=pb.Pipeline(name="P", stages=no_lost)),
            metadata=metadata(),
        ),
        INVALID,
    )
    assert "pipeline.stages" in violations(error)


@pytest.mark.usefixtures("unchanged")
async def test_move_to_an_unknown_stage_names_stage_id(sales: SalesUnderTest, world: World) -> None:
    error = await refused(
        sales.stub.MoveOpportunityStage(
            pb.MoveOpportunityStageRequest(id=world.open.id, stage_id="nope"), metadata=metadata()
        ),
        INVALID,
    )
    assert "nope" in violations(error)["stage_id"]


@pytest.mark.usefixtures("unchanged")
async def test_won_cannot_move_to_an_open_stage_without_reopen(
    sales: SalesUnderTest, world: World
) -> None:
    error = await refused(
        sales.stub.MoveOpportunityStage(
            pb.MoveOpportunityStageRequest(id=world.won.id, stage_id="proposal"),
            metadata=metadata(),
        ),
        PRECONDITION,
    )
    assert precondition_types(error) == {"ILLEGAL_STAGE_CHANGE"}


@pytest.mark.usefixtures("unchanged")
async def test_stale_expected_version_is_a_failed_precondition(
    sales: SalesUnderTest, world: World
) -> None:
    error = await refused(
        sales.stub.ReopenOpportunity(
            pb.ReopenOpportunityRequest(id=world.won.id, stage_id="qualify", expected_version=1),
            metadata=metadata(),
        ),
        PRECONDITION,
    )
    assert precondition_types(error) == {"STALE_VERSION"}
    error = await refused(
        sales.stub.UpdateOpportunity(
            pb.UpdateOpportunityRequest(
                opportunity=pb.Opportunity(id=world.open.id, owner_id="bob"),
                update_mask=FieldMask(paths=["owner_id"]),
                expected_version=9,
            ),
            metadata=metadata(),
        ),
        PRECONDITION,
    )
    assert precondition_types(error) == {"STALE_VERSION"}


@pytest.mark.usefixtures("unchanged")
async def test_update_cannot_change_the_stage_or_set_an_unknown_currency(
    sales: SalesUnderTest, world: World
) -> None:
    error = await refused(
        sales.stub.UpdateOpportunity(
            pb.UpdateOpportunityRequest(
                opportunity=pb.Opportunity(id=world.open.id, stage_id="won"),
                update_mask=FieldMask(paths=["stage_id"]),
            ),
            metadata=metadata(),
        ),
        INVALID,
    )
    assert "update_mask" in violations(error)
    error = await refused(
        sales.stub.UpdateOpportunity(
            pb.UpdateOpportunityRequest(
                opportunity=pb.Opportunity(id=world.open.id, currency="ABC"),
                update_mask=FieldMask(paths=["currency"]),
            ),
            metadata=metadata(),
        ),
        INVALID,
    )
    assert "opportunity.currency" in violations(error)


@pytest.mark.usefixtures("unchanged")
async def test_loss_without_reason_and_lead_without_anyone_are_refused(
    sales: SalesUnderTest, world: World
) -> None:
    error = await refused(
        sales.stub.LoseOpportunity(
            pb.LoseOpportunityRequest(id=world.open.id), metadata=metadata()
        ),
        INVALID,
    )
    assert "reason" in violations(error)
    error = await refused(
        sales.stub.CreateLead(
            pb.CreateLeadRequest(lead=pb.Lead(source=pb.LEAD_SOURCE_WEB_FORM)), metadata=metadata()
        ),
        INVALID,
    )
    assert "lead" in violations(error)
    error = await refused(
        sales.stub.DisqualifyLead(
            pb.DisqualifyLeadRequest(id=world.lead.id, reason=" "), metadata=metadata()
        ),
        INVALID,
    )
    assert "reason" in violations(error)


@pytest.mark.usefixtures("unchanged")
async def test_another_tenants_ids_are_not_found(sales: SalesUnderTest, world: World) -> None:
    other = metadata(OTHER_TENANT)
    calls = [
        sales.stub.GetOpportunity(pb.GetOpportunityRequest(id=world.open.id), metadata=other),
        sales.stub.MoveOpportunityStage(
            pb.MoveOpportunityStageRequest(id=world.open.id, stage_id="proposal"), metadata=other
        ),
        sales.stub.WinOpportunity(pb.WinOpportunityRequest(id=world.open.id), metadata=other),
        sales.stub.ReopenOpportunity(
            pb.ReopenOpportunityRequest(id=world.won.id, stage_id="qualify"), metadata=other
        ),
        sales.stub.GetPipeline(pb.GetPipelineRequest(id=world.pipeline.id), metadata=other),
        sales.stub.UpdatePipeline(
            pb.UpdatePipelineRequest(
                pipeline=pb.Pipeline(id=world.pipeline.id, name="Mine now"),
                update_mask=FieldMask(paths=["name"]),
            ),
            metadata=other,
        ),
        sales.stub.GetLead(pb.GetLeadRequest(id=world.lead.id), metadata=other),
        sales.stub.QualifyLead(pb.QualifyLeadRequest(id=world.lead.id), metadata=other),
    ]
    for call in calls:
        await refused(call, grpc.StatusCode.NOT_FOUND)
    # Another tenant's pipeline is no pipeline of the caller's: nothing is created under it.
    error = await refused(
        sales.stub.CreateOpportunity(_opportunity(world.pipeline.id), metadata=other), INVALID
    )
    assert "opportunity.pipeline_id" in violations(error)
    listed = await sales.stub.ListOpportunities(pb.ListOpportunitiesRequest(), metadata=other)
    assert list(listed.opportunities) == []


async def test_of_two_concurrent_stage_changes_on_one_version_exactly_one_wins(
    infra: Any, sales: SalesUnderTest, world: World
) -> None:
    for _ in range(5):
        o = await create_opportunity(sales, world.pipeline.id)
        move = sales.stub.MoveOpportunityStage(
            pb.MoveOpportunityStageRequest(id=o.id, stage_id="proposal", expected_version=1),
            metadata=metadata(),
        )
        win = sales.stub.WinOpportunity(
            pb.WinOpportunityRequest(id=o.id, expected_version=1), metadata=metadata()
        )
        results = await asyncio.gather(move, win, return_exceptions=True)
        failures = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
        assert len(failures) == 1, results
        assert failures[0].code() == PRECONDITION
        [winner] = [r for r in results if not isinstance(r, BaseException)]
        stored = (
            await sales.stub.GetOpportunity(pb.GetOpportunityRequest(id=o.id), metadata=metadata())
        ).opportunity
        assert stored == winner.opportunity
        assert stored.version == 2
        assert len(stored.stage_history) == 2
        # The winner's event follows the creation on the opportunity's key; the loser's, which
        # would have been written in its rolled-back transaction, is not there.
        events = await events_for(infra.kafka_bootstrap, o.primary_contact_id, 2)
        won = stored.status == pb.STAGE_KIND_WON
        assert [e.type for e in events] == [
            "crm.sales.v1.OpportunityCreated",
            "crm.sales.v1.OpportunityWon" if won else "crm.sales.v1.OpportunityStageChanged",
        ]
