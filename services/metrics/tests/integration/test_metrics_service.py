"""The metrics service on the real broker and database: the worked example end to end, the
clocks of one ticket with their events, bad queries, and poison events."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
from datetime import timedelta
from typing import Any

import grpc
import pytest
from aiokafka import AIOKafkaConsumer
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2, status_pb2

from crm.metrics.v1 import metrics_pb2 as mpb
from crm.servicedesk.v1 import events_pb2 as ev
from crm_devstack.pytest_plugin import Infra
from crm_platform.mongo import MongoStore
from crm_testing.metrics import (
    kpi_request,
    metadata,
    new_topic,
    produce,
    start_metrics,
    stub,
    totals,
    wait_caught_up,
    wait_visible,
)
from crm_testing.ticket_events import DAY, TENANT, at, event, ticket, worked_example

GAP_KPIS = [
    "company_frt",
    "customer_wait",
    "perception_gap",
    "green_inside_red_outside",
    "sla_first_response",
    "expectation_breach",
]


def violations(error: grpc.aio.AioRpcError) -> dict[str, str]:
    """The field violations of an INVALID_ARGUMENT error."""
    status = status_pb2.Status()
    trailers: Any = error.trailing_metadata() or ()
    for key, value in trailers:
        if key == "grpc-status-details-bin":
            status.ParseFromString(value)
    out: dict[str, str] = {}
    for detail in status.details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            out.update({v.field: v.description for v in bad.field_violations})
    return out


@pytest.fixture(scope="module")
async def worked(infra: Infra):  # type: ignore[no-untyped-def]
    """The worked example produced to a topic of its own, and the service that consumed it."""
    topic = new_topic()
    process = await start_metrics(infra, topic)
    events = worked_example()
    await produce(infra.kafka_bootstrap, topic, events)
    mongo = MongoStore(infra.mongodb_uri, f"crm_metrics_{topic.replace('-', '_')}")
    await wait_caught_up(mongo, infra.kafka_bootstrap, topic)
    await wait_visible(process, TENANT, DAY, DAY + timedelta(days=1), 1)
    yield process, events, topic, mongo
    await mongo.close()
    await process.stop()


async def test_worked_example_reaches_get_kpis_with_an_eight_hour_gap(worked) -> None:  # type: ignore[no-untyped-def]
    process, _events, _topic, _mongo = worked
    response = await stub(process).GetKpis(
        kpi_request(GAP_KPIS, DAY, DAY + timedelta(days=1)), metadata=metadata(TENANT)
    )
    values = totals(response)
    assert values["company_frt"].count == 1
    assert values["company_frt"].p50 == pytest.approx(2 * 3600, rel=0.01)
    assert values["customer_wait"].p50 == pytest.approx(10 * 3600, rel=0.01)
    assert values["perception_gap"].p50 == pytest.approx(8 * 3600, rel=0.01)
    assert values["perception_gap"].sum == 8 * 3600  # sums are exact
    assert values["green_inside_red_outside"].value == 100.0
    assert values["sla_first_response"].value == 100.0
    assert values["expectation_breach"].numerator == 1
    assert "company_frt@1" in response.definitions or "frt_business@1" in response.definitions


async def test_another_tenant_sees_nothing(worked) -> None:  # type: ignore[no-untyped-def]
    process, *_ = worked
    response = await stub(process).GetKpis(
        kpi_request(GAP_KPIS, DAY, DAY + timedelta(days=1)), metadata=metadata("other")
    )
    assert all(value.count == 0 for value in totals(response).values())


async def test_ticket_clocks_name_the_events_that_set_them(worked) -> None:  # type: ignore[no-untyped-def]
    process, events, *_ = worked
    response = await stub(process).GetTicketClocks(
        mpb.GetTicketClocksRequest(ticket_id="T1"), metadata=metadata(TENANT)
    )
    clocks = {clock.name: clock for clock in response.clocks.clocks}
    assert clocks["customer_wait"].seconds == 10 * 3600
    assert list(clocks["customer_wait"].start_event_ids) == [events[1].id]  # the mention
    assert list(clocks["customer_wait"].end_event_ids) == [events[6].id]  # the delivery
    assert clocks["perception_gap"].seconds == 8 * 3600
    assert "green_inside_red_outside" in response.clocks.flags
    assert response.clocks.sla_outcomes["first_response"] == "met"
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await stub(process).GetTicketClocks(
            mpb.GetTicketClocksRequest(ticket_id="T1"), metadata=metadata("other")
        )
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_perception_gap_lists_the_worst_ticket_and_wait_buckets(worked) -> None:  # type: ignore[no-untyped-def]
    process, *_ = worked
    response = await stub(process).GetPerceptionGap(
        mpb.GetPerceptionGapRequest(
            start_time=kpi_request(["csat"], DAY, DAY).start_time,
            end_time=kpi_request(["csat"], DAY, DAY + timedelta(days=1)).end_time,
        ),
        metadata=metadata(TENANT),
    )
    assert [t.ticket_id for t in response.worst_tickets] == ["T1"]
    assert response.worst_tickets[0].perception_gap_seconds == 8 * 3600
    assert {b.label: b.tickets for b in response.wait_buckets}["4-12h"] == 1
    assert [(b.lower_hours, b.tickets) for b in response.gap_histogram] == [(8, 1)]
    rates = {r.kpi.partition("@")[0]: r for r in response.rates}
    assert rates["green_inside_red_outside"].value == 100.0


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (kpi_request(["frt_wall", "no_such_kpi"], DAY, DAY + timedelta(days=1)), "kpis[1]"),
        (kpi_request(["frt_wall"], DAY + timedelta(days=1), DAY), "end_time"),
        (
            kpi_request(
                ["frt_wall"], DAY, DAY + timedelta(days=90), granularity=mpb.GRANULARITY_HOUR
            ),
            "end_time",
        ),
        (kpi_request(["frt_wall"], DAY, DAY + timedelta(days=1), group_by="colour"), "group_by"),
        (
            kpi_request(["frt_wall"], DAY, DAY + timedelta(days=1), filters={"colour": "red"}),
            "filters[colour]",
        ),
        (kpi_request(["frt_wall@9"], DAY, DAY + timedelta(days=1)), "kpis[0]"),
    ],
    ids=[
        "unknown-kpi",
        "inverted-range",
        "range-too-large",
        "unknown-group",
        "unknown-filter",
        "unknown-version",
    ],
)
async def test_bad_queries_are_invalid_argument_with_the_field(  # type: ignore[no-untyped-def]
    worked, request_: mpb.GetKpisRequest, field: str
) -> None:
    process, *_ = worked
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stub(process).GetKpis(request_, metadata=metadata(TENANT))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    found = violations(error.value)
    assert any(name == field or name.startswith(field) for name in found), found


async def test_a_poison_event_goes_to_the_dead_letter_topic(infra: Infra, worked) -> None:  # type: ignore[no-untyped-def]
    _process, _events, topic, mongo = worked
    # A CloudEvent whose payload does not parse as its type.
    broken = dataclasses.replace(event(ev.SlaBreached(ticket_id="T1"), DAY), payload=b"\xff\xff")
    await produce(infra.kafka_bootstrap, topic, [broken])
    consumer = AIOKafkaConsumer(
        topic + ".dlq", bootstrap_servers=infra.kafka_bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), 30)
    finally:
        await consumer.stop()
    headers = dict(record.headers)
    assert headers["dlq_reason"] == b"malformed"
    assert headers["ce_id"] == broken.id.encode()
    await wait_caught_up(mongo, infra.kafka_bootstrap, topic)  # the offset moved past it


async def test_stream_kpis_sends_an_update_when_new_events_land(infra: Infra, worked) -> None:  # type: ignore[no-untyped-def]
    process, _events, topic, _mongo = worked
    request = mpb.StreamKpisRequest(
        query=kpi_request(["tickets_created"], DAY, DAY + timedelta(days=1)),
        min_interval=Duration(nanos=200_000_000),
    )
    stream: Any = stub(process).StreamKpis(request, metadata=metadata(TENANT))
    first = await asyncio.wait_for(stream.read(), 30)
    before = totals(first.result)["tickets_created"].sum
    other = ticket(created=17.5)
    other.id = "T-stream"
    await produce(infra.kafka_bootstrap, topic, [event(ev.TicketCreated(ticket=other), at(17.5))])
    async with asyncio.timeout(30):
        while True:
            update = await stream.read()
            if totals(update.result)["tickets_created"].sum == before + 1:
                break
    stream.cancel()


async def test_list_kpis_names_every_kpi_with_its_versions(worked) -> None:  # type: ignore[no-untyped-def]
    process, *_ = worked
    response = await stub(process).ListKpis(mpb.ListKpisRequest(), metadata=metadata(TENANT))
    kpis = {kpi.name: kpi for kpi in response.kpis}
    assert {"perception_gap", "customer_wait", "green_inside_red_outside", "csat"} <= set(kpis)
    assert list(kpis["frt_wall"].versions) == [1, 2]
    assert "wait_bucket" in response.dimensions


async def test_replay_under_a_new_definition_fills_its_own_namespace(infra: Infra, worked) -> None:  # type: ignore[no-untyped-def]
    process, _events, topic, _mongo = worked
    env = {
        **os.environ,
        "MONGODB_URI": infra.mongodb_uri,
        "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap,
        "METRICS_TOPICS": topic,
        "CONSUMER_GROUP": f"g-{topic}",
        "MONGODB_DATABASE": f"crm_metrics_{topic.replace('-', '_')}",
    }
    replay = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "crm_metrics",
        "replay",
        "--namespace",
        "bots-count",
        "--definitions",
        "frt_wall@2,frt_business@2",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(replay.communicate(), 120)
    assert replay.returncode == 0, output.decode()[-3000:]
    assert b"into namespace 'bots-count'" in output
    kpis = ["frt_wall", "company_frt", "customer_wait"]
    window = (DAY, DAY + timedelta(days=1))
    replayed = totals(
        await stub(process).GetKpis(
            kpi_request(kpis, *window, namespace="bots-count"), metadata=metadata(TENANT)
        )
    )
    live = totals(
        await stub(process).GetKpis(kpi_request(kpis, *window), metadata=metadata(TENANT))
    )
    # v2 lets the bot's acknowledgement (36 s after creation) count as the first response.
    assert replayed["frt_wall"].kpi == "frt_wall@2"
    assert replayed["frt_wall"].sum == pytest.approx(36.0)
    assert replayed["company_frt"].sum == pytest.approx(36.0)
    assert replayed["customer_wait"].sum == 10 * 3600  # the customer's clock does not change
    assert live["frt_wall"].kpi == "frt_wall@1"
    assert live["frt_wall"].sum == 2 * 3600  # the live numbers stay
    with pytest.raises(grpc.aio.AioRpcError) as mixed:
        await stub(process).GetKpis(
            kpi_request(["frt_wall@1"], *window, namespace="bots-count"), metadata=metadata(TENANT)
        )
    assert mixed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
