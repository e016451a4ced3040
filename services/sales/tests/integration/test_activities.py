"""Activities on the real database and broker: create, update, complete, list; their events in
order on the contact's key; links checked in the caller's tenant; bad input refused with
nothing written."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp

from crm.sales.v1 import activities_events_pb2 as aev
from crm.sales.v1 import activities_pb2 as apb
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
    unique_id,
    violations,
)
from crm_testing.sales_orders import AreaStubs, area_stubs

pytestmark = pytest.mark.integration

INVALID = grpc.StatusCode.INVALID_ARGUMENT
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION


@pytest.fixture(scope="module")
async def stubs(sales: SalesUnderTest) -> AsyncIterator[AreaStubs]:
    async with area_stubs(sales) as found:
        yield found


def _stamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


async def _create(stubs: AreaStubs, tenant: str, **fields: object) -> apb.Activity:
    values: dict[str, object] = {"kind": apb.ACTIVITY_KIND_CALL, "subject": "Intro call"}
    values.update(fields)
    reply = await stubs.activities.CreateActivity(
        apb.CreateActivityRequest(activity=apb.Activity(**values)),  # type: ignore[arg-type]
        metadata=metadata(tenant),
    )
    created: apb.Activity = reply.activity
    return created


async def _count(stubs: AreaStubs, tenant: str) -> int:
    found = await stubs.activities.ListActivities(
        apb.ListActivitiesRequest(), metadata=metadata(tenant)
    )
    return len(found.activities)


async def test_an_activity_is_created_updated_and_completed_with_its_events_in_order(
    stubs: AreaStubs, infra: object
) -> None:
    tenant = unique_id("t")
    contact = unique_id("contact")
    due = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    created = await _create(
        stubs,
        tenant,
        contact_id=contact,
        direction=apb.ACTIVITY_DIRECTION_OUTBOUND,
        due_time=_stamp(due),
        owner_id="bob",
    )
    assert (created.status, created.version) == (apb.ACTIVITY_STATUS_OPEN, 1)
    assert created.due_time.ToDatetime(tzinfo=UTC) == due

    updated = (
        await stubs.activities.UpdateActivity(
            apb.UpdateActivityRequest(
                activity=apb.Activity(id=created.id, notes="Asked about pricing", owner_id="eve"),
                update_mask=FieldMask(paths=["notes", "owner_id"]),
                expected_version=1,
            ),
            metadata=metadata(tenant),
        )
    ).activity
    assert (updated.notes, updated.owner_id, updated.version) == ("Asked about pricing", "eve", 2)
    error = await refused(
        stubs.activities.UpdateActivity(
            apb.UpdateActivityRequest(
                activity=apb.Activity(id=created.id, notes="x"),
                update_mask=FieldMask(paths=["notes"]),
                expected_version=1,
            ),
            metadata=metadata(tenant),
        ),
        PRECONDITION,
    )
    assert precondition_types(error) == {"STALE_VERSION"}

    done = (
        await stubs.activities.CompleteActivity(
            apb.CompleteActivityRequest(
                id=created.id, outcome="agreed to a demo", duration_seconds=540
            ),
            metadata=metadata(tenant),
        )
    ).activity
    assert (done.status, done.outcome, done.duration_seconds) == (
        apb.ACTIVITY_STATUS_COMPLETED,
        "agreed to a demo",
        540,
    )
    assert done.HasField("completed_time")
    error = await refused(
        stubs.activities.CompleteActivity(
            apb.CompleteActivityRequest(id=created.id), metadata=metadata(tenant)
        ),
        PRECONDITION,
    )
    assert precondition_types(error) == {"ACTIVITY_COMPLETED"}

    found = await events_for(infra.kafka_bootstrap, contact, 3)  # type: ignore[attr-defined]
    assert [e.type for e in found] == [
        "crm.sales.v1.ActivityCreated",
        "crm.sales.v1.ActivityUpdated",
        "crm.sales.v1.ActivityCompleted",
    ]
    assert {str(e.actor) for e in found} == {"agent:alice"}
    changed = aev.ActivityUpdated.FromString(found[1].payload)
    assert list(changed.changed_fields.paths) == ["notes", "owner_id"]
    assert aev.ActivityCompleted.FromString(found[2].payload).previous_version == 2


async def test_a_logged_activity_about_a_deal_is_keyed_by_the_deal(
    sales: SalesUnderTest, stubs: AreaStubs, infra: object
) -> None:
    tenant = unique_id("t")
    pipeline = await create_pipeline(sales, tenant=tenant)
    deal = await create_opportunity(sales, pipeline.id, tenant=tenant)
    lead = (
        await sales.stub.CreateLead(
            pb.CreateLeadRequest(lead=pb.Lead(person_name="Ann", source=pb.LEAD_SOURCE_EVENT)),
            metadata=metadata(tenant),
        )
    ).lead
    logged = await _create(
        stubs,
        tenant,
        kind=apb.ACTIVITY_KIND_MEETING,
        subject="Workshop",
        opportunity_id=deal.id,
        lead_id=lead.id,
        completed_time=_stamp(datetime.now(UTC)),
        duration_seconds=3600,
        outcome="held",
    )
    assert logged.status == apb.ACTIVITY_STATUS_COMPLETED
    found = await events_for(infra.kafka_bootstrap, deal.primary_contact_id, 2)  # type: ignore[attr-defined]
    assert [e.type for e in found] == [
        "crm.sales.v1.OpportunityCreated",
        "crm.sales.v1.ActivityCreated",
    ]


async def test_lists_filter_and_page(stubs: AreaStubs) -> None:
    tenant = unique_id("t")
    contact = unique_id("c")
    calls = [await _create(stubs, tenant, contact_id=contact, owner_id="bob") for _ in range(3)]
    await _create(stubs, tenant, contact_id=contact, kind=apb.ACTIVITY_KIND_TASK, subject="Send")
    await _create(stubs, tenant, contact_id=unique_id("c"), owner_id="bob")
    seen: list[str] = []
    token = ""
    while True:
        page = await stubs.activities.ListActivities(
            apb.ListActivitiesRequest(
                contact_id=contact,
                kind=apb.ACTIVITY_KIND_CALL,
                owner_id="bob",
                page_size=2,
                page_token=token,
            ),
            metadata=metadata(tenant),
        )
        seen.extend(a.id for a in page.activities)
        if not (token := page.next_page_token):
            break
    assert seen == sorted(a.id for a in calls)


async def test_bad_activities_are_refused_with_their_fields_and_nothing_is_written(
    sales: SalesUnderTest, stubs: AreaStubs
) -> None:
    tenant = unique_id("t")
    pipeline = await create_pipeline(sales, tenant=OTHER_TENANT)
    foreign = await create_opportunity(sales, pipeline.id, tenant=OTHER_TENANT)
    foreign_lead = (
        await sales.stub.CreateLead(
            pb.CreateLeadRequest(lead=pb.Lead(person_name="F", source=pb.LEAD_SOURCE_EVENT)),
            metadata=metadata(OTHER_TENANT),
        )
    ).lead
    error = await refused(
        stubs.activities.CreateActivity(
            apb.CreateActivityRequest(
                activity=apb.Activity(
                    kind=apb.ACTIVITY_KIND_MEETING,
                    subject=" ",
                    direction=apb.ACTIVITY_DIRECTION_INBOUND,
                    duration_seconds=-1,
                )
            ),
            metadata=metadata(tenant),
        ),
        INVALID,
    )
    assert set(violations(error)) == {
        "activity.subject",
        "activity.direction",
        "activity.duration_seconds",
        "activity.contact_id",
    }
    error = await refused(
        stubs.activities.CreateActivity(
            apb.CreateActivityRequest(
                activity=apb.Activity(
                    kind=apb.ACTIVITY_KIND_CALL,
                    subject="Call",
                    opportunity_id=foreign.id,
                    lead_id=foreign_lead.id,
                )
            ),
            metadata=metadata(tenant),
        ),
        INVALID,
    )
    assert set(violations(error)) == {"activity.opportunity_id", "activity.lead_id"}
    assert await _count(stubs, tenant) == 0

    mine = await _create(stubs, tenant, contact_id="c")
    error = await refused(
        stubs.activities.UpdateActivity(
            apb.UpdateActivityRequest(
                activity=apb.Activity(id=mine.id, opportunity_id=foreign.id, contact_id=""),
                update_mask=FieldMask(paths=["opportunity_id"]),
            ),
            metadata=metadata(tenant),
        ),
        INVALID,
    )
    assert set(violations(error)) == {"activity.opportunity_id"}
    await refused(
        stubs.activities.GetActivity(
            apb.GetActivityRequest(id=mine.id), metadata=metadata(OTHER_TENANT)
        ),
        grpc.StatusCode.NOT_FOUND,
    )
    stored = (
        await stubs.activities.GetActivity(
            apb.GetActivityRequest(id=mine.id), metadata=metadata(tenant)
        )
    ).activity
    assert stored.version == 1
