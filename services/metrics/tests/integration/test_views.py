"""The cell log on the real database: views read every checkpoint exactly, follow compactions,
and a partition's state survives snapshots and reloads.

The log tests lay out the documents a partition's owner writes, checkpoint by checkpoint, and
check what a query view makes of them. The last tests drive a real ``MetricsPartition`` through
many checkpoints with a tiny snapshot threshold and load it again, and through a rebalance that
revokes it while the consumer's loop is checkpointing it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import TopicPartition

from crm_devstack.pytest_plugin import Infra
from crm_metrics import cell_log
from crm_metrics.calendars import CalendarHub
from crm_metrics.checkpoint import OFFSETS, MetricsPartition
from crm_metrics.domain.clocks import Settings
from crm_metrics.domain.cube import CubeView
from crm_metrics.view import KpiViews
from crm_platform.checkpointed import CheckpointedConsumer, _Rebalance
from crm_platform.mongo import MongoStore
from crm_testing.histories import iter_events
from crm_testing.metrics import scratch_database

TENANT, KPI, HOUR, TOPIC = "acme", "tickets_created", 490_000, "crm.servicedesk.v1"
WHERE = {"ns": "live", "topic": TOPIC, "p": 0}
PREFIX = f"live|{TOPIC}|0|"


@pytest.fixture
async def store(infra: Infra) -> AsyncIterator[MongoStore]:
    async with scratch_database(infra, "views") as mongo:
        yield mongo


async def _offsets(
    store: MongoStore,
    seq: int,
    snapshot: cell_log.Snapshot | None = None,
    generation: str | None = None,
) -> None:
    fields: dict[str, Any] = {**WHERE, "seq": seq, "next_offset": seq, "format": 2}
    if generation is not None:
        fields["generation"] = generation
    if snapshot is not None:
        fields["snapshot"] = snapshot.to_doc()
    await store.db[OFFSETS].update_one({"_id": PREFIX}, {"$set": fields}, upsert=True)


def _items(cells: dict[str, int | None]) -> list[cell_log.Item]:
    return [
        [TENANT, KPI, HOUR, cell, None if n is None else {"c": n, "s": n * 1000}]
        for cell, n in cells.items()
    ]


async def _log(store: MongoStore, seq: int, cells: dict[str, int | None]) -> None:
    """Checkpoint ``seq``'s log, as its transaction leaves it (cell → count, None: emptied)."""
    await store.db[cell_log.CELL_LOG].insert_many(
        cell_log.log_documents(PREFIX, WHERE, seq, _items(cells))
    )


def _count(views: KpiViews, cell: str) -> int | None:
    view = views.peek("live")
    assert view is not None
    aggregate = view.get((TENANT, KPI, HOUR, cell))
    return None if aggregate is None else aggregate.count  # type: ignore[attr-defined]


async def test_a_view_reads_each_committed_checkpoint_and_nothing_beyond(
    store: MongoStore,
) -> None:
    views = KpiViews(store, "UTC", refresh_seconds=60)
    await _log(store, 1, {"": 1})
    await _offsets(store, 1)
    await views.view("live")
    assert _count(views, "") == 1
    # Checkpoint 2 is committed; checkpoint 3's log is there but its number is not yet.
    await _log(store, 2, {"channel=email": 4})
    await _offsets(store, 2)
    await _log(store, 3, {"": 2})
    assert await views.refresh("live") == 1
    assert (_count(views, ""), _count(views, "channel=email")) == (1, 4)
    await _offsets(store, 3)
    assert await views.refresh("live") == 1
    assert (_count(views, ""), _count(views, "channel=email")) == (2, 4)
    assert await views.refresh("live") == 0  # nothing new: nothing read


async def test_a_cell_emptied_by_a_checkpoint_leaves_the_view(store: MongoStore) -> None:
    views = KpiViews(store, "UTC", refresh_seconds=60)
    await _log(store, 1, {"": 3, "channel=chat": 3})
    await _offsets(store, 1)
    await views.view("live")
    await _log(store, 2, {"": 2, "channel=chat": None})
    await _offsets(store, 2)
    await views.refresh("live")
    assert (_count(views, ""), _count(views, "channel=chat")) == (2, None)


async def test_a_view_reads_a_partition_recomputed_from_the_topic_whole(
    store: MongoStore,
) -> None:
    """A partition dropped and recomputed (other definitions, an older layout) numbers its
    checkpoints from 1 again: a view that read further in the old state must not skip them."""
    views = KpiViews(store, "UTC", refresh_seconds=60)
    for seq in (1, 2, 3):
        await _log(store, seq, {"": seq, "channel=chat": 5})
    await _offsets(store, 3, generation="before")
    await views.view("live")
    assert (_count(views, ""), _count(views, "channel=chat")) == (3, 5)
    await store.db[cell_log.CELL_LOG].delete_many(WHERE)
    await store.db[OFFSETS].delete_many(WHERE)
    await _log(store, 1, {"": 2})
    await _offsets(store, 1, generation="after")
    assert await views.refresh("live") > 0
    assert (_count(views, ""), _count(views, "channel=chat")) == (2, None)


async def test_a_view_behind_a_compaction_starts_again_from_the_snapshot(
    store: MongoStore,
) -> None:
    views = KpiViews(store, "UTC", refresh_seconds=60)
    await _log(store, 1, {"": 1, "channel=chat": 5})
    await _offsets(store, 1)
    await views.view("live")
    # Meanwhile: checkpoints 2 and 3, a snapshot at 3, a compaction that dropped the log up to 2.
    await _log(store, 2, {"channel=chat": None, "channel=email": 2})
    await _log(store, 3, {"": 3})
    snapshot = await cell_log.write_snapshot(
        store.db, PREFIX, WHERE, "t1", 3, _items({"": 3, "channel=email": 2})
    )
    await _log(store, 4, {"channel=email": 7})
    await _offsets(store, 4, snapshot)
    await store.db[cell_log.CELL_LOG].delete_many({**WHERE, "seq": {"$lte": 2}})
    await views.refresh("live")
    counts = (_count(views, ""), _count(views, "channel=chat"), _count(views, "channel=email"))
    assert counts == (3, None, 7)
    # Reading it all again changes nothing: values replace, they do not add.
    await views.refresh("live")
    assert (_count(views, ""), _count(views, "channel=email")) == (3, 7)


async def test_a_missing_checkpoint_or_chunk_is_a_gap_not_a_silent_skip(store: MongoStore) -> None:
    await _log(store, 1, {"": 1})
    await _log(store, 3, {"": 3})
    with pytest.raises(cell_log.LogGapError):
        await cell_log.read_log(store.db, WHERE, 0, 3)
    with pytest.raises(cell_log.LogGapError):
        await cell_log.read_log(store.db, WHERE, 3, 4)  # the log stops before 4
    docs = cell_log.log_documents(PREFIX, WHERE, 2, _items({"": 2}))
    await store.db[cell_log.CELL_LOG].insert_one({**docs[0], "chunks": 2})  # chunk 1 never came
    with pytest.raises(cell_log.LogGapError):
        await cell_log.read_log(store.db, WHERE, 0, 3)
    assert await cell_log.read_log(store.db, WHERE, 2, 3) == _items({"": 3})


def _events(tickets: int) -> list[Any]:
    start = datetime(2026, 3, 2, tzinfo=UTC)
    return list(iter_events(3, tickets, tenant=TENANT, start=start, days=10))


async def test_a_partition_through_snapshots_and_compactions_loads_back_exactly(
    store: MongoStore,
) -> None:
    tp = TopicPartition(TOPIC, 0)
    settings = Settings(own_brands=frozenset({"acme"}))
    owner = MetricsPartition(store, "live", tp, settings, CalendarHub(), snapshot_min_cells=300)
    assert await owner.load() is None
    events = _events(120)
    for offset, event in enumerate(events):
        owner.process(event, offset)
        if offset % 97 == 96:
            await owner.checkpoint()
    await owner.checkpoint()
    offsets = await store.db[OFFSETS].find_one({"_id": PREFIX})
    assert offsets is not None
    assert offsets["next_offset"] == len(events)
    snapshot = cell_log.Snapshot.of(offsets)
    assert snapshot is not None
    assert snapshot.seq > 1
    # Compaction kept one snapshot and dropped the log up to the previous one.
    assert await store.db[cell_log.SNAPSHOTS].distinct("token", WHERE) == [snapshot.token]
    first_logged = await store.db[cell_log.CELL_LOG].find_one(WHERE, sort=[("seq", 1)])
    assert first_logged is not None
    assert first_logged["seq"] > 1

    again = MetricsPartition(store, "live", tp, settings, CalendarHub())
    assert await again.load() == len(events)
    expected = {key: agg.to_doc() for key, agg in owner.engine.cube.items()}
    assert {key: agg.to_doc() for key, agg in again.engine.cube.items()} == expected
    # A view reading the partition from scratch holds the same cells.
    views = KpiViews(store, "UTC", refresh_seconds=60)
    view: CubeView = await views.view("live")
    assert {key: view.get(key).to_doc() for key in view} == expected  # type: ignore[union-attr]


async def test_a_snapshot_left_by_a_crash_before_its_commit_is_ignored(store: MongoStore) -> None:
    tp = TopicPartition(TOPIC, 0)
    settings = Settings(own_brands=frozenset({"acme"}))
    owner = MetricsPartition(store, "live", tp, settings, CalendarHub())
    await owner.load()
    events = _events(30)
    for offset, event in enumerate(events):
        owner.process(event, offset)
    await owner.checkpoint()
    # A snapshot written, then the process died before the checkpoint that points at it.
    await cell_log.write_snapshot(store.db, PREFIX, WHERE, "orphan", 2, _items({"": 999}))
    again = MetricsPartition(store, "live", tp, settings, CalendarHub())
    assert await again.load() == len(events)
    expected = {key: agg.to_doc() for key, agg in owner.engine.cube.items()}
    assert {key: agg.to_doc() for key, agg in again.engine.cube.items()} == expected


async def test_a_revocation_during_the_loops_checkpoint_loses_no_cells(
    store: MongoStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rebalance revokes a partition while the consumer's loop is checkpointing it (its
    transaction slow to start, e.g. behind a snapshot on a loaded machine). The revocation's
    checkpoint must not overtake it: if it commits first it writes the offset past every
    record processed, with none of the cells and facts the loop's checkpoint had flushed (the
    loop's then loses the fence), and every view and every later owner miss them for good."""
    tp = TopicPartition(TOPIC, 0)
    settings = Settings(own_brands=frozenset({"acme"}))
    hub = CalendarHub()
    owner = MetricsPartition(store, "live", tp, settings, hub)
    consumer = CheckpointedConsumer(
        lambda tp: MetricsPartition(store, "live", tp, settings, hub),
        topics=[TOPIC],
        group_id="g",
        bootstrap_servers="127.0.0.1:1",
    )
    assert await owner.load() is None
    events = _events(40)
    half = len(events) // 2
    for offset, event in enumerate(events[:half]):
        owner.process(event, offset)
    await owner.checkpoint()
    for offset, event in enumerate(events[half:], half):
        owner.process(event, offset)

    # The loop's next transaction waits at its start until released.
    started, release = asyncio.Event(), asyncio.Event()
    in_transaction = store.in_transaction

    async def held(work: Any) -> Any:
        if not started.is_set():
            started.set()
            await release.wait()
        return await in_transaction(work)

    monkeypatch.setattr(store, "in_transaction", held)
    checkpoints = 0
    checkpoint = owner.checkpoint

    async def counted() -> int:
        nonlocal checkpoints
        checkpoints += 1
        return await checkpoint()

    monkeypatch.setattr(owner, "checkpoint", counted)
    consumer.states[tp] = owner
    consumer._last_checkpoint[tp] = 0.0  # due
    loop_checkpoint = asyncio.create_task(consumer._checkpoint_due())
    await started.wait()
    revoke = asyncio.create_task(_Rebalance(consumer).on_partitions_revoked([tp]))
    for _ in range(10):
        await asyncio.sleep(0)
    if checkpoints > 1:  # the revocation checkpoints at once: let it commit first
        await revoke
    release.set()
    await asyncio.gather(loop_checkpoint, revoke)
    assert consumer._failure is None
    expected = {key: agg.to_doc() for key, agg in owner.engine.cube.items()}  # all flushed

    again = MetricsPartition(store, "live", tp, settings, CalendarHub())
    assert await again.load() == len(events)
    assert {key: agg.to_doc() for key, agg in again.engine.cube.items()} == expected
    views = KpiViews(store, "UTC", refresh_seconds=60)
    view: CubeView = await views.view("live")
    assert {key: view.get(key).to_doc() for key in view} == expected  # type: ignore[union-attr]


async def test_a_former_owners_late_compaction_keeps_the_newer_snapshot(store: MongoStore) -> None:
    """A member that lost the partition without knowing (a long pause) commits a checkpoint
    with snapshot "old" just before the new owner loads it; the new owner then snapshots
    ("new") and compacts; the former owner's compaction runs only now. It must not delete the
    snapshot the offsets document points at, or every full read (a view behind, a new owner's
    load) fails until the next snapshot."""
    old = await cell_log.write_snapshot(store.db, PREFIX, WHERE, "old", 3, _items({"": 3}))
    new = await cell_log.write_snapshot(store.db, PREFIX, WHERE, "new", 5, _items({"": 5}))
    await _log(store, 6, {"": 6})
    await _offsets(store, 6, new)
    await cell_log.compact(store.db, WHERE, new, old)  # the new owner's
    await cell_log.compact(store.db, WHERE, old, None)  # the former owner's, late
    assert await store.db[cell_log.SNAPSHOTS].distinct("token", WHERE) == ["new"]
    views = KpiViews(store, "UTC", refresh_seconds=60)
    await views.view("live")
    assert _count(views, "") == 6
