"""The service's KPIs equal a simple batch oracle's over thousands of generated tickets, fed
through the real broker: shuffled and partly duplicated, with the service killed (SIGKILL) and
restarted mid-stream, and with two instances sharing the partitions.

The oracle (``kpi_oracle``) recomputes everything from the same events with plain loops and
exact quantiles; the service answers from mergeable aggregates. Counts, sums, rates and scores
must be equal; quantiles within the sketches' 1 % relative accuracy.
"""

from __future__ import annotations

import asyncio
import math
import os
import sys
from datetime import datetime, timedelta
from typing import Any

import pytest

from crm.metrics.v1 import metrics_pb2 as mpb
from crm_devstack.pytest_plugin import Infra
from crm_metrics.domain.catalog import CATALOG, Kind
from crm_platform.mongo import MongoStore
from crm_testing.histories import History, generate, shuffled, with_duplicates
from crm_testing.kpi_oracle import compute
from crm_testing.metrics import (
    kpi_request,
    metadata,
    new_topic,
    partition_ends,
    produce,
    start_metrics,
    stub,
    wait_caught_up,
    wait_visible,
)

TICKETS = 2500
AGE_KPIS = {"backlog_age", "unanswered_age"}  # "now"-relative: compared by count only
# Sketch quantiles are within 1 % of the value at the same rank; a little more for rounding.
RELATIVE = 0.0101
SETTLE_SECONDS = 20.0
MAX_KPIS_PER_REQUEST = 40  # GetKpisRequest.kpis allows at most 40: the catalog is asked in parts
# The KPIs on a ticket's business calendar (or derived from one).
BUSINESS_KPIS = (
    "frt_business",
    "nrt_business",
    "resolution_business",
    "first_resolution_business",
    "perception_gap",
)


@pytest.fixture(scope="module")
def history() -> History:
    """Two weeks of a service desk: ~2,500 tickets, ~40,000 events."""
    return generate(20261122, TICKETS, days=14)


def _close(actual: float, expected: float, relative: float = 1e-9) -> bool:
    return abs(actual - expected) <= relative * abs(expected) + 1e-6


def differences(response: mpb.GetKpisResponse, oracle: Any, group_by: str = "") -> list[str]:
    """Every disagreement between the service's totals and the oracle's, in words."""
    problems: list[str] = []
    service = {
        group.value: {v.kpi.partition("@")[0]: v for v in group.totals} for group in response.groups
    }
    expected_groups = oracle.groups if group_by else {"": oracle.totals}
    for group, expected in expected_groups.items():
        got = service.get(group, {})
        for name, want in expected.items():
            if name not in CATALOG:
                continue
            have = got.get(name)
            where = f"{name}[{group}]" if group_by else name
            if have is None:
                if want.count:
                    problems.append(f"{where}: missing, oracle count {want.count}")
                continue
            if have.count != want.count:
                problems.append(f"{where}: count {have.count} != {want.count}")
                continue
            if name in AGE_KPIS or not want.count:
                continue
            kind = CATALOG[name].kind
            if kind == Kind.RATE and (have.numerator, have.denominator) != (
                want.numerator,
                want.denominator,
            ):
                problems.append(
                    f"{where}: {have.numerator}/{have.denominator} != "
                    f"{want.numerator}/{want.denominator}"
                )
            if kind in (Kind.DISTRIBUTION, Kind.COUNT) and not _close(have.sum, want.sum, 1e-9):
                problems.append(f"{where}: sum {have.sum} != {want.sum}")
            if kind == Kind.DISTRIBUTION:
                for q in ("p50", "p90", "p99"):
                    a, b = getattr(have, q), getattr(want, q)
                    if not _close(a, b, RELATIVE):
                        problems.append(f"{where}: {q} {a} vs {b}")
            elif kind in (Kind.SCORE, Kind.SENTIMENT, Kind.RATE, Kind.LEVEL):
                if want.value is not None and not _close(have.value, want.value, 1e-9):
                    problems.append(f"{where}: value {have.value} != {want.value}")
                has_mean = kind in (Kind.SCORE, Kind.SENTIMENT)
                if has_mean and not math.isclose(have.mean, want.mean, rel_tol=1e-9):
                    problems.append(f"{where}: mean {have.mean} != {want.mean}")
    return problems


async def query(
    process: Any, history: History, group_by: str = "", namespace: str = ""
) -> mpb.GetKpisResponse:
    """Every KPI's totals over the whole history (whole days)."""
    start, end = _range(history)
    kpis = [name for name, spec in CATALOG.items() if not group_by or group_by in spec.dimensions]
    merged = mpb.GetKpisResponse()
    groups: dict[str, mpb.KpiGroup] = {}
    for first in range(0, len(kpis), MAX_KPIS_PER_REQUEST):
        response: mpb.GetKpisResponse = await stub(process).GetKpis(
            kpi_request(
                kpis[first : first + MAX_KPIS_PER_REQUEST],
                start,
                end,
                group_by=group_by,
                namespace=namespace,
            ),
            metadata=metadata(history.tenant),
            timeout=60,
        )
        for group in response.groups:
            if group.value not in groups:
                groups[group.value] = merged.groups.add(value=group.value)
            groups[group.value].totals.extend(group.totals)
    return merged


async def disagreements(
    process: Any, history: History, oracle: Any, group_by: str = "", namespace: str = ""
) -> list[str]:
    """The service's disagreements with the oracle once its view has settled.

    Catching up is judged by the checkpointed offsets; the views read those checkpoints a
    moment later (and a calendar arriving re-derives tickets without moving an offset), so ask
    again for a while before calling a difference real.
    """
    deadline = asyncio.get_running_loop().time() + SETTLE_SECONDS
    while True:
        response = await query(process, history, group_by, namespace)
        problems = differences(response, oracle, group_by)
        if not problems or asyncio.get_running_loop().time() > deadline:
            return problems
        await asyncio.sleep(0.5)


def _range(history: History) -> tuple[datetime, datetime]:
    """The history's range in whole UTC days (the reporting zone): queries that group by a
    dimension read whole days, so every query and the oracle use the same ones."""
    start = history.start.replace(hour=0, minute=0, second=0, microsecond=0)
    end = history.end.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    return start, end


def oracle_of(history: History, events: list[Any], group_by: str | None = None) -> Any:
    """The oracle over the same range as :func:`query`."""
    start, end = _range(history)
    return compute(
        events,
        calendars=history.calendars,
        start=start,
        end=end,
        group_by=group_by,
        own_brands=history.own_brands,
    )


def _database(topic: str) -> str:
    return f"crm_metrics_{topic.replace('-', '_')}"


async def test_shuffled_duplicated_events_give_the_oracles_kpis(
    infra: Infra, history: History
) -> None:
    events = with_duplicates(shuffled(history.events, 7), 0.1, 8)
    topic = new_topic("oracle")
    process = await start_metrics(infra, topic, env={"OWN_BRANDS": ",".join(history.own_brands)})
    mongo = MongoStore(infra.mongodb_uri, _database(topic))
    try:
        await produce(infra.kafka_bootstrap, topic, events)
        await wait_caught_up(mongo, infra.kafka_bootstrap, topic, timeout=240)
        await wait_visible(process, history.tenant, *_range(history), history.tickets)
        problems = await disagreements(process, history, oracle_of(history, events))
        assert not problems, "\n".join(problems[:40])
        by_channel = oracle_of(history, events, "channel")
        problems = await disagreements(process, history, by_channel, "channel")
        assert not problems, "\n".join(problems[:40])
        by_wait = oracle_of(history, events, "wait_bucket")
        problems = await disagreements(process, history, by_wait, "wait_bucket")
        assert not problems, "\n".join(problems[:40])
    finally:
        await mongo.close()
        await process.stop()


async def _snapshots(mongo: MongoStore) -> int:
    """Partitions whose cells have been snapshot (the log before it compacted away)."""
    return await mongo.db["metric_offsets"].count_documents(
        {"ns": "live", "snapshot": {"$exists": True}}
    )


async def test_a_service_killed_mid_stream_resumes_without_loss_or_double_counting(
    infra: Infra, history: History
) -> None:
    events = shuffled(history.events, 11)
    topic = new_topic("oracle-kill")
    # Small snapshots, so the kill also lands between snapshots and compactions of the cells.
    env = {"OWN_BRANDS": ",".join(history.own_brands), "CELL_SNAPSHOT_MIN_CELLS": "2000"}
    process = await start_metrics(infra, topic, env=env)
    mongo = MongoStore(infra.mongodb_uri, _database(topic))
    try:
        half = len(events) // 2
        await produce(infra.kafka_bootstrap, topic, events[:half])
        # Kill it once it has checkpointed some of the first half, but not all of it.
        async with asyncio.timeout(120):
            while not await mongo.db["metric_offsets"].count_documents({"ns": "live"}):
                await asyncio.sleep(0.05)
        await process.kill()
        await produce(infra.kafka_bootstrap, topic, events[half:])
        await process.start(90)
        await wait_caught_up(mongo, infra.kafka_bootstrap, topic, timeout=240)
        assert await _snapshots(mongo), "no partition's cells were snapshot and compacted"
        await wait_visible(process, history.tenant, *_range(history), history.tickets)
        problems = await disagreements(process, history, oracle_of(history, events))
        assert not problems, "\n".join(problems[:40])
    finally:
        await mongo.close()
        await process.stop()


async def test_two_instances_in_one_group_give_the_totals_of_one(
    infra: Infra, history: History
) -> None:
    events = history.events
    topic = new_topic("oracle-two")
    # Small snapshots: each instance's view must follow the other's compacted logs.
    env = {"OWN_BRANDS": ",".join(history.own_brands), "CELL_SNAPSHOT_MIN_CELLS": "2000"}
    first = await start_metrics(infra, topic, env=env)
    second = await start_metrics(infra, topic, env=env)
    mongo = MongoStore(infra.mongodb_uri, _database(topic))
    try:
        await produce(infra.kafka_bootstrap, topic, events)
        await wait_caught_up(mongo, infra.kafka_bootstrap, topic, timeout=240)
        assert await _snapshots(mongo), "no partition's cells were snapshot and compacted"
        owners = await mongo.db["metric_offsets"].distinct("p", {"ns": "live"})
        assert len(owners) == len(await partition_ends(infra.kafka_bootstrap, topic))
        oracle = oracle_of(history, events)
        for process in (first, second):  # each answers for every partition
            await wait_visible(process, history.tenant, *_range(history), history.tickets)
            problems = await disagreements(process, history, oracle)
            assert not problems, "\n".join(problems[:40])
    finally:
        await mongo.close()
        await first.stop()
        await second.stop()


def _business_clock_was_measured(oracle: Any) -> None:
    """The comparison means something for the business clock: it counted most tickets."""
    for name in BUSINESS_KPIS:
        if name in oracle.totals and name in CATALOG:
            assert oracle.totals[name].count, f"the oracle has no {name}"
    assert oracle.totals["frt_business"].count > TICKETS // 2


async def test_partitions_moved_between_instances_mid_stream_keep_the_business_clock(
    infra: Infra, history: History
) -> None:
    """Calendars and tickets arrive shuffled while partitions move to a second instance and
    then back, when the first one leaves: every KPI, the business-clock ones included, equals
    the oracle's."""
    events = shuffled(history.events, 13)
    topic = new_topic("oracle-move")
    env = {"OWN_BRANDS": ",".join(history.own_brands)}
    first = await start_metrics(infra, topic, env=env)
    second = None
    mongo = MongoStore(infra.mongodb_uri, _database(topic))
    try:
        third = len(events) // 3
        await produce(infra.kafka_bootstrap, topic, events[:third])
        async with asyncio.timeout(120):
            while not await mongo.db["metric_offsets"].count_documents({"ns": "live"}):
                await asyncio.sleep(0.05)
        second = await start_metrics(infra, topic, env=env)  # half the partitions move over
        await produce(infra.kafka_bootstrap, topic, events[third : 2 * third])
        await first.stop()  # and every partition moves to the second
        await produce(infra.kafka_bootstrap, topic, events[2 * third :])
        await wait_caught_up(mongo, infra.kafka_bootstrap, topic, timeout=240)
        await wait_visible(second, history.tenant, *_range(history), history.tickets)
        oracle = oracle_of(history, events)
        _business_clock_was_measured(oracle)
        problems = await disagreements(second, history, oracle)
        assert not problems, "\n".join(problems[:40])
    finally:
        await mongo.close()
        await first.stop()
        if second is not None:
            await second.stop()


async def _replay(
    infra: Infra, topic: str, namespace: str, history: History
) -> asyncio.subprocess.Process:
    """``python -m crm_metrics replay`` with the settings the service runs with."""
    env = {
        **os.environ,
        "OWN_BRANDS": ",".join(history.own_brands),
        "MONGODB_URI": infra.mongodb_uri,
        "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap,
        "METRICS_TOPICS": topic,
        "CONSUMER_GROUP": f"g-{topic}",
        "MONGODB_DATABASE": _database(topic),
        "CHECKPOINT_INTERVAL_SECONDS": "0.2",
        "CELL_SNAPSHOT_MIN_CELLS": "2000",
    }
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "crm_metrics",
        "replay",
        "--namespace",
        namespace,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


async def test_a_replay_killed_and_resumed_gives_the_oracles_kpis_in_its_namespace(
    infra: Infra, history: History
) -> None:
    """A replay into a namespace, SIGKILLed after its first checkpoints and run again, holds
    the oracle's KPIs (business clock included) beside the live ones."""
    events = shuffled(history.events, 17)
    topic = new_topic("oracle-replay")
    process = await start_metrics(infra, topic, env={"OWN_BRANDS": ",".join(history.own_brands)})
    mongo = MongoStore(infra.mongodb_uri, _database(topic))
    namespace = "oracle-replay"
    try:
        await produce(infra.kafka_bootstrap, topic, events)
        await wait_caught_up(mongo, infra.kafka_bootstrap, topic, timeout=240)
        killed = await _replay(infra, topic, namespace, history)
        async with asyncio.timeout(120):
            while not await mongo.db["metric_offsets"].count_documents({"ns": namespace}):
                await asyncio.sleep(0.05)
        killed.kill()
        await killed.wait()
        resumed = await _replay(infra, topic, namespace, history)
        output, _ = await asyncio.wait_for(resumed.communicate(), 240)
        assert resumed.returncode == 0, output.decode()[-3000:]
        await wait_caught_up(mongo, infra.kafka_bootstrap, topic, namespace, timeout=60)
        oracle = oracle_of(history, events)
        _business_clock_was_measured(oracle)
        problems = await disagreements(process, history, oracle, namespace=namespace)
        assert not problems, "\n".join(problems[:40])
    finally:
        await mongo.close()
        await process.stop()
