"""The query side: every namespace's aggregates merged over all partitions, kept fresh.

Whichever process owns a partition appends the aggregate cells it changed to the partition's
cell log at each checkpoint (:mod:`crm_metrics.cell_log`). Every process serving queries keeps
a :class:`~crm_metrics.domain.cube.CubeView` per namespace and reads each partition's log since
its last look, so all replicas answer the same numbers, whoever owns which partition. A
partition's cell value is replaced, not added, so reading a value twice is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from crm_metrics import cell_log
from crm_metrics.checkpoint import OFFSETS
from crm_metrics.domain.cube import CellKey, CubeView, aggregate_class
from crm_platform.mongo import MongoStore

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Namespace:
    view: CubeView
    # Per partition: the checkpoint number up to which its cells have been read, and the
    # generation of its state they belong to (a partition recomputed from the topic starts a
    # new generation, numbered from 1 again).
    seen: dict[int, int] = field(default_factory=dict)
    generations: dict[int, str | None] = field(default_factory=dict)
    loaded: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class KpiViews:
    """Views of every namespace queried so far, refreshed from the database."""

    def __init__(self, store: MongoStore, reporting_timezone: str, refresh_seconds: float) -> None:
        self.store = store
        self.reporting_timezone = reporting_timezone
        self.refresh_seconds = refresh_seconds
        self._namespaces: dict[str, _Namespace] = {}
        self._partitions: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Condition()

    async def view(self, namespace: str) -> CubeView:
        """The namespace's view, loaded on first use."""
        state = self._namespaces.get(namespace)
        if state is None:
            state = self._namespaces[namespace] = _Namespace(CubeView(self.reporting_timezone))
        if not state.loaded:
            await self.refresh(namespace)
        return state.view

    def watch(self, namespace: str) -> None:
        """Keep a namespace's view loaded and fresh from the start (not only once queried)."""
        if namespace not in self._namespaces:
            self._namespaces[namespace] = _Namespace(CubeView(self.reporting_timezone))

    def install(self, namespace: str, view: CubeView) -> None:
        """Serve a view built elsewhere (benchmarks, embedding) for a namespace, as loaded."""
        self._namespaces[namespace] = _Namespace(view, loaded=True)

    def peek(self, namespace: str) -> CubeView | None:
        """The namespace's view if it has been loaded (no database access)."""
        state = self._namespaces.get(namespace)
        return state.view if state is not None and state.loaded else None

    def _partition_id(self, topic: str, partition: int) -> int:
        name = f"{topic}|{partition}"
        ident = self._partitions.get(name)
        if ident is None:
            ident = self._partitions[name] = len(self._partitions)
        return ident

    async def refresh(self, namespace: str) -> int:
        """Read the cells checkpointed since the last look; returns how many changed.

        Per partition: read its offsets document (the number of its last checkpoint), then the
        log of every checkpoint after the one seen last time, up to that number. Log documents
        are never rewritten, so the range is exact. A partition seen for the first time, or
        whose log was compacted past what was seen, is read again from its snapshot.
        """
        state = self._namespaces[namespace]
        count = 0
        async with state.lock:
            db = self.store.db
            async for offsets in db[OFFSETS].find({"ns": namespace}):
                # The newest event time checkpointed: GetKpis reports it as the watermark.
                state.view.advance_watermark(int(offsets.get("watermark_ms", 0)) // 1000)
                topic, partition = offsets["topic"], offsets["p"]
                part = self._partition_id(topic, partition)
                generation = offsets.get("generation")
                if part in state.seen and state.generations.get(part) != generation:
                    state.seen[part] = 0  # recomputed: what was read belongs to the old state
                seen = state.seen.get(part, 0)
                upto = int(offsets["seq"])
                if upto <= seen:
                    continue
                where = {"ns": namespace, "topic": topic, "p": partition}
                items: list[cell_log.Item] | None = None
                if seen:
                    with contextlib.suppress(cell_log.LogGapError):
                        items = await cell_log.read_log(db, where, seen, upto)
                if items is not None:
                    count += self._apply(state, part, items)
                else:  # a first look, or the log was compacted past what was seen
                    upto, generation, items = await self._read_state(where, offsets)
                    count += self._reload(state, part, items)
                state.seen[part] = upto
                state.generations[part] = generation
            state.loaded = True
        if count:
            async with self._changed:
                self._changed.notify_all()
        return count

    async def _read_state(
        self, where: dict[str, Any], offsets: dict[str, Any] | None
    ) -> tuple[int, str | None, list[cell_log.Item]]:
        """A partition's whole state (snapshot and log) as of ``offsets``, with its checkpoint
        number and generation; if it was compacted meanwhile, as of the partition's offsets
        document read again."""
        for attempt in range(5):
            if attempt:
                offsets = await self.store.db[OFFSETS].find_one(
                    {"_id": f"{where['ns']}|{where['topic']}|{where['p']}|"}
                )
            if offsets is None:
                return 0, None, []
            try:
                base, logged = await cell_log.read_state(self.store.db, where, offsets)
            except cell_log.LogGapError:
                if attempt == 4:
                    raise
                continue
            return int(offsets["seq"]), offsets.get("generation"), base + logged
        raise AssertionError("unreachable")

    @staticmethod
    def _apply(state: _Namespace, part: int, items: list[cell_log.Item]) -> int:
        """Apply log items in order (each replaces the partition's value); returns how many."""
        view = state.view
        for tenant, kpi, hour, cell, value in items:
            aggregate = None if value is None else aggregate_class(kpi).from_doc(value)
            view.update(part, (tenant, kpi, hour, cell), aggregate)
        return len(items)

    @staticmethod
    def _reload(state: _Namespace, part: int, items: list[cell_log.Item]) -> int:
        """Make the partition's values in the view exactly its state in ``items``."""
        latest: dict[CellKey, Any] = {}
        for tenant, kpi, hour, cell, value in items:
            latest[(tenant, kpi, hour, cell)] = value
        view = state.view
        changed = 0
        for key in view.partition_keys(part) - latest.keys():
            view.update(part, key, None)
            changed += 1
        for key, value in latest.items():
            aggregate = None if value is None else aggregate_class(key[1]).from_doc(value)
            view.update(part, key, aggregate)
            changed += 1
        return changed

    async def wait_for_change(self, timeout: float) -> None:
        """Sleep until a refresh brought new cells, or ``timeout``."""
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)

    # -- background refresh (the runner's BackgroundWork) ----------------------------------

    def start(self) -> None:
        """Refresh every loaded namespace in the background."""
        self._task = asyncio.create_task(self._loop(), name="kpi-views")

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop refreshing."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._task, timeout)

    async def _loop(self) -> None:
        while True:
            for namespace in list(self._namespaces):
                try:
                    await self.refresh(namespace)
                except Exception:  # the database may be briefly away; try again next round
                    log.exception("refreshing the %s view failed", namespace)
            await asyncio.sleep(self.refresh_seconds)
