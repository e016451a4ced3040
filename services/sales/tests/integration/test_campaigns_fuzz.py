"""Property: random requests to every CampaignService RPC (the writing ones, the reads, and
random interaction streams) never come back as UNKNOWN or INTERNAL, whether they name existing
campaigns and contacts or not; a stream always answers with a summary whose counts add up."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm.sales.v1 import campaigns_pb2 as cpg
from crm.sales.v1 import campaigns_pb2_grpc
from crm_testing.campaigns import create_campaign, create_contact
from crm_testing.sales import SalesUnderTest, metadata

TENANT = "fuzz-campaigns"


@dataclass
class Targets:
    """Campaigns and contacts of the fuzz tenant that random requests may name, and a stub."""

    stub: campaigns_pb2_grpc.CampaignServiceAsyncStub
    campaign_ids: list[str]
    contact_ids: list[str]


@pytest.fixture(scope="module")
async def targets(sales: SalesUnderTest) -> AsyncIterator[Targets]:
    async with grpc.aio.insecure_channel(sales.address) as channel:
        stub = campaigns_pb2_grpc.CampaignServiceStub(channel)
        draft = await create_campaign(stub, tenant=TENANT, active=False)
        active = await create_campaign(stub, tenant=TENANT)
        phone = await create_campaign(stub, tenant=TENANT, channel=cpg.CAMPAIGN_CHANNEL_PHONE)
        contacts = [
            await create_contact(sales, tenant=TENANT, email=True),
            await create_contact(sales, tenant=TENANT),
        ]
        yield Targets(stub, [draft.id, active.id, phone.id], contacts)


_text = st.text(max_size=80)
_enum = st.integers(-2, 8)
_int64 = st.integers(-(2**63), 2**63 - 1)
_version = st.integers(-1, 6)
_currency = st.sampled_from(["EUR", "JPY", "ZZZ", "XXX", "XAU", "eur", ""]) | st.text(max_size=4)
_date = st.sampled_from(["2026-03-01", "2026-02-30", "2026-3-1", ""]) | _text
_paths = st.builds(
    FieldMask,
    paths=st.lists(
        st.sampled_from(
            ["*", "name", "channel", "budget_minor", "currency", "target_segment", "status",
             "cost_total_minor", "version"]
        )
        | st.text(max_size=20),
        max_size=3,
    ),
)  # fmt: skip
_stamp = st.builds(
    Timestamp,
    seconds=st.integers(-62135596800, 253402300799) | _int64,
    nanos=st.integers(0, 999_999_999) | st.integers(-(2**31), 2**31 - 1),
)  # also outside the Timestamp range


def _requests(ids: Targets) -> st.SearchStrategy[Message]:
    campaign_id = st.sampled_from(ids.campaign_ids) | _text
    campaign = st.builds(
        cpg.Campaign,
        id=campaign_id,
        name=_text,
        channel=_enum,
        budget_minor=_int64,
        currency=_currency,
        target_segment=_text,
    )
    plausible = st.builds(
        cpg.Campaign,
        name=st.text(min_size=1, max_size=200).filter(str.strip),
        channel=st.integers(1, 6),
        budget_minor=st.integers(0, 2**63 - 1),
        currency=st.sampled_from(["EUR", "JPY", "BHD"]),
    )
    cost = st.builds(
        cpg.CampaignCost,
        amount_minor=_int64 | st.integers(1, 2**63 - 1),
        currency=_currency,
        cost_date=_date,
        description=_text,
    )
    return st.one_of(
        st.builds(cpg.CreateCampaignRequest, campaign=campaign | plausible, request_id=_text),
        st.builds(
            cpg.UpdateCampaignRequest,
            campaign=campaign,
            update_mask=_paths,
            expected_version=_version,
        ),
        st.builds(cpg.GetCampaignRequest, id=campaign_id),
        st.builds(
            cpg.ListCampaignsRequest,
            page_size=st.integers(-5, 600),
            page_token=_text,
            status=_enum,
            channel=_enum,
        ),
        st.builds(cpg.ActivateCampaignRequest, id=campaign_id, expected_version=_version),
        st.builds(cpg.CompleteCampaignRequest, id=campaign_id, expected_version=_version),
        st.builds(
            cpg.CancelCampaignRequest, id=campaign_id, reason=_text, expected_version=_version
        ),
        st.builds(
            cpg.RecordCampaignCostRequest,
            campaign_id=campaign_id,
            cost=st.none() | cost,
            request_id=_text,
            expected_version=_version,
        ),
    )


def _items(ids: Targets) -> st.SearchStrategy[list[cpg.CampaignInteraction]]:
    item = st.builds(
        cpg.CampaignInteraction,
        id=_text,
        campaign_id=st.sampled_from(ids.campaign_ids) | _text,
        contact_id=st.sampled_from(ids.contact_ids) | _text,
        kind=_enum,
        external_id=st.sampled_from(["a", "b"]) | _text,
        occur_time=st.none() | _stamp,
        channel=_enum,
    )
    return st.lists(item, max_size=12)


def _method(request: Message) -> str:
    return type(request).__name__.removesuffix("Request")


def _no_server_fault(error: grpc.aio.AioRpcError) -> None:
    assert error.code() not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL), (
        error.code(),
        error.details(),
    )


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_random_campaign_requests_never_yield_unknown_or_internal(
    targets: Targets, data: st.DataObject
) -> None:
    request = data.draw(_requests(targets))
    method = getattr(targets.stub, _method(request))
    try:
        await method(request, metadata=metadata(TENANT), timeout=10)
    except grpc.aio.AioRpcError as error:
        _no_server_fault(error)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_random_interaction_streams_answer_with_a_summary_that_adds_up(
    targets: Targets, data: st.DataObject
) -> None:
    items: Sequence[cpg.CampaignInteraction] = data.draw(_items(targets))

    async def stream() -> AsyncIterator[cpg.CampaignInteraction]:
        for one in items:
            yield one

    try:
        summary = await targets.stub.IngestCampaignInteractions(
            stream(), metadata=metadata(TENANT), timeout=30
        )
    except grpc.aio.AioRpcError as error:  # e.g. the contacts service busy: never a fault
        _no_server_fault(error)
        return
    assert summary.received == len(items)
    assert summary.received == summary.accepted + summary.duplicates + summary.refused
    assert summary.refused == sum(r.count for r in summary.refused_by_reason)
    assert [e.index for e in summary.errors] == sorted(e.index for e in summary.errors)
