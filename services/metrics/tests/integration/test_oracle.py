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
from datetime import datetime, timedelta
from typing import Any

import pytest
from kpi_oracle import compute  # type: ignore[import-not-found,unused-ignore]

from crm.metrics.v1 import metrics_pb2 as mpb
from crm_devstack.histories import History, generate, shuffled, with_duplicates
from crm_devstack.pytest_plugin import Infra
from crm_metrics.domain.catalog import CATALOG, Kind
from crm_platform.mongo import MongoStore
from metrics_harness import (
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


async def query(process: Any, history: History, group_by: str = "") -> mpb.GetKpisResponse:
    """Every KPI's totals over the whole history (whole days)."""
    start, end = _range(history)
    kpis = [name for name, spec in CATALOG.items() if not group_by or group_by in spec.dimensions]
    response: mpb.GetKpisResponse = await stub(process).GetKpis(
        kpi_request(kpis, start, end, group_by=group_by),
        metadata=metadata(history.tenant),
        timeout=60,
    )
    return response


async def disagreements(
    process: Any, history: History, oracle: Any, group_by: str = ""
) -> list[str]:
    """The service's disagreements with the oracle once its view has settled.

    Catching up is judged by the checkpointed offsets; the views read those checkpoints a
    moment later (and a calendar arriving re-derives tickets without moving an offset), so ask
    again for a while before calling a difference real.
    """
    deadline = asyncio.get_running_loop().time() + SETTLE_SECONDS
    while True:
        problems = differences(await query(process, history, group_by), oracle, group_by)
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
