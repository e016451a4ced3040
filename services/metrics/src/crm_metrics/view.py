"""The query side: every namespace's aggregates merged over all partitions, kept fresh.

Whichever process owns a partition writes its aggregate cells to the database at each
checkpoint (:mod:`crm_metrics.checkpoint`). Every process serving queries keeps a
:class:`~crm_metrics.domain.cube.CubeView` per namespace and polls for cell documents written
since its last look, so all replicas answer the same numbers, whoever owns which partition.
Re-reading a document is harmless: a partition's cell value is replaced, not added.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from crm_metrics.checkpoint import CELLS, OFFSETS, unescape_cell
from crm_metrics.domain.cube import CubeView, aggregate_class
from crm_platform.mongo import MongoStore

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Namespace:
    view: CubeView
    # Per partition: the checkpoint number up to which its cells have been read.
    seen: dict[int, int] = field(default_factory=dict)
    loaded: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # The cells each partition last reported per (tenant, KPI, hour) document.
    reported: dict[tuple[int, str, str, int], set[str]] = field(default_factory=dict)


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

        Per partition: read its offset document (the number of its last checkpoint), then every
        cell document written after the checkpoint seen last time, and apply the cells whose own
        number ``q`` is newer than that. A checkpoint commits its cells and its number together,
        so every cell up to the number read is visible. A document may meanwhile have been
        rewritten by a later checkpoint: it is still read now (no upper bound), because its
        other cells may carry changes of the checkpoints being caught up with, which a later
        round would skip as already seen. Re-applying a cell is harmless: a partition's cell
        value is replaced, not added.
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
                seen = state.seen.get(part, -1)
                upto = int(offsets["seq"])
                if upto <= seen:
                    continue
                query = {
                    "ns": namespace,
                    "topic": topic,
                    "p": partition,
                    "seq": {"$gt": seen},
                }
                async for doc in db[CELLS].find(query):
                    count += self._apply(state, part, doc, seen)
                state.seen[part] = upto
            state.loaded = True
        if count:
            async with self._changed:
                self._changed.notify_all()
        return count

    @staticmethod
    def _apply(state: _Namespace, part: int, doc: dict[str, Any], seen: int) -> int:
        """Apply the cells of one document that changed after ``seen``; returns how many."""
        cls = aggregate_class(doc["kpi"])
        tenant, kpi, hour = doc["tenant"], doc["kpi"], doc["hour"]
        view = state.view
        changed = 0
        present: set[str] = set()
        for name, value in doc.get("cells", {}).items():
            cell = unescape_cell(name)
            present.add(cell)
            if value.get("q", 0) > seen:
                view.update(part, (tenant, kpi, hour, cell), cls.from_doc(value))
                changed += 1
        group = (part, tenant, kpi, hour)
        for cell in state.reported.get(group, set()) - present:
            view.update(part, (tenant, kpi, hour, cell), None)  # emptied ($unset) meanwhile
            changed += 1
        state.reported[group] = present
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
