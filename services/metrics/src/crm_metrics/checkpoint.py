"""A partition's state in the database: facts, aggregate cells and the next offset, together.

Collections (all keyed by namespace, so a replay writes beside the live state, never over it):

- ``metric_offsets``: one document per (namespace, topic, partition) with the next offset to
  read, the number of the last checkpoint (``seq``) and where the cells' latest snapshot is. It
  is the fence: a checkpoint updates it only if it still holds the number the state was loaded
  from (or last wrote), in the same transaction as everything else.
- ``metric_tickets`` / ``metric_mentions``: the facts of each entity (plus a few derived fields
  for ``GetPerceptionGap``'s worst tickets).
- ``metric_cell_log`` / ``metric_cell_snapshots``: the aggregate cells, as a log of what each
  checkpoint changed plus a periodic snapshot (:mod:`crm_metrics.cell_log`).
- ``metric_calendars``: the calendar versions each partition saw in its events or derived its
  tickets' cells with, written in the checkpoint that needs them (one copy per partition, so
  no two partitions' transactions write the same document). Every process reads them all: they
  are facts, shared by all namespaces.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import Any

from aiokafka import TopicPartition
from pymongo import ASCENDING, ReplaceOne
from pymongo.asynchronous.client_session import AsyncClientSession

from crm_metrics import cell_log
from crm_metrics.calendars import CalendarHub, calendar_from_doc, calendar_to_doc
from crm_metrics.domain.clocks import Settings, TicketClocks
from crm_metrics.domain.cube import aggregate_class
from crm_metrics.domain.facts import MentionFacts, TicketFacts
from crm_metrics.engine import CalendarLostError, FlushResult, PartitionEngine
from crm_metrics.events import PoisonEvent
from crm_platform.checkpointed import LostOwnershipError, PoisonRecordError
from crm_platform.events import Event
from crm_platform.mongo import MongoStore

OFFSETS = "metric_offsets"
TICKETS = "metric_tickets"
MENTIONS = "metric_mentions"
CALENDARS = "metric_calendars"
NAMESPACES = "metric_namespaces"
LIVE = "live"

SNAPSHOT_MIN_CELLS = 200_000
"""A partition's cells are snapshot once its log holds this many cells and more than the cube."""

FORMAT = 3
"""The layout of a partition's state; state of another layout is dropped and recomputed (so is
state computed under other KPI definitions: see ``MetricsPartition.load``)."""

log = logging.getLogger(__name__)


async def ensure_indexes(store: MongoStore) -> None:
    """The indexes the checkpoints and queries need."""
    db = store.db
    await db[TICKETS].create_index([("ns", ASCENDING), ("topic", ASCENDING), ("p", ASCENDING)])
    await db[TICKETS].create_index([("ns", ASCENDING), ("tenant", ASCENDING), ("ticket_id", 1)])
    await db[TICKETS].create_index(
        [("ns", ASCENDING), ("tenant", ASCENDING), ("gap.reply_ms", ASCENDING)]
    )
    await db[MENTIONS].create_index([("ns", ASCENDING), ("topic", ASCENDING), ("p", ASCENDING)])
    await db[CALENDARS].create_index(
        [("tenant", ASCENDING), ("calendar_id", ASCENDING), ("version", ASCENDING)]
    )
    await cell_log.ensure_indexes(db)


def gap_summary(clocks: TicketClocks) -> dict[str, Any] | None:
    """The perception-gap fields of a ticket, for the worst-tickets query."""
    gap = clocks.clocks.get("perception_gap")
    wait = clocks.clocks.get("customer_wait")
    if gap is None or gap.seconds is None or wait is None or clocks.reply_ms is None:
        return None
    return {
        "gap_s": gap.seconds,
        "wait_s": wait.seconds,
        "company_frt_s": clocks.seconds("frt_business"),
        "touch_ms": wait.start_ms,
        "reply_ms": clocks.reply_ms,
    }


class MetricsPartition:
    """One topic partition's metrics state (implements ``crm_platform.checkpointed``'s
    ``PartitionState``)."""

    def __init__(
        self,
        store: MongoStore,
        namespace: str,
        tp: TopicPartition,
        settings: Settings,
        hub: CalendarHub,
        snapshot_min_cells: int = SNAPSHOT_MIN_CELLS,
    ) -> None:
        self.store = store
        self.namespace = namespace
        self.tp = tp
        self.settings = settings
        self.hub = hub
        self.engine = PartitionEngine(tp.topic, tp.partition, settings, hub)
        self._id_prefix = f"{namespace}|{tp.topic}|{tp.partition}|"
        self._where = {"ns": namespace, "topic": tp.topic, "p": tp.partition}
        # The number of the last checkpoint written (None: none yet). It fences the writes and
        # numbers the cell log, so readers find everything a checkpoint changed, even when the
        # offset did not move (a calendar arriving re-derives tickets without new records).
        self._seq: int | None = None
        self._dirty_offset = False
        self._snapshot: cell_log.Snapshot | None = None
        self._snapshot_min_cells = snapshot_min_cells
        self._logged = 0  # cells in the log since the snapshot
        self._stored_calendars: set[tuple[str, str, int]] = set()  # this partition's copies
        self._definitions = settings.definitions.labels()

    # -- PartitionState -----------------------------------------------------------------------

    async def load(self) -> int | None:
        """Load the checkpoint: offset, calendars, facts; rebuild the cube from the cells."""
        db = self.store.db
        doc = await db[OFFSETS].find_one({"_id": self._id_prefix})
        if doc is not None and doc.get("format") != FORMAT:
            log.warning("%s: state of an older layout; recomputing it from the topic", self.tp)
            await self._drop()
            doc = None
        elif doc is not None and doc.get("definitions") != self._definitions:
            tp = self.tp
            # Cells of one partition are all derived under one definition set: a release whose
            # definitions differ (a new KPI, a rule's new version made current) recomputes.
            log.warning("%s: state of other KPI definitions; recomputing it from the topic", tp)
            await self._drop()
            doc = None
        try:
            return await self._restore(doc)
        except CalendarLostError as exc:
            log.error("%s: %s; recomputing the partition from the topic", self.tp, exc)
            await self._drop()
            return await self._restore(None)

    async def _restore(self, doc: dict[str, Any] | None) -> int | None:
        db = self.store.db
        where = self._where
        await load_calendars(self.store, self.hub)
        self._stored_calendars = {
            (c["tenant"], c["calendar_id"], c["version"]) async for c in db[CALENDARS].find(where)
        }
        async for ticket in db[TICKETS].find(where):
            facts = TicketFacts.from_doc(ticket["facts"])
            self.engine.restore(facts, bool(ticket.get("calendar_applied")))
        async for mention in db[MENTIONS].find(where):
            facts_m = MentionFacts.from_doc(mention["facts"])
            self.engine.facts.mentions[(facts_m.tenant, "mention", facts_m.mention_id)] = facts_m
        if doc is None:
            self._seq = None
            return None
        self._snapshot = cell_log.Snapshot.of(doc)
        cube = self.engine.cube
        base, logged = await cell_log.read_state(db, where, doc)
        for items in (base, logged):
            for tenant, kpi, hour, cell, value in items:
                key = (tenant, kpi, hour, cell)
                cube.replace(key, None if value is None else aggregate_class(kpi).from_doc(value))
        cube.take_dirty()
        self._logged = len(logged)
        self._seq = int(doc["seq"])
        self.engine.next_offset = int(doc["next_offset"])
        self.engine.watermark_ms = int(doc.get("watermark_ms", 0))
        return self.engine.next_offset

    async def _drop(self) -> None:
        """Forget the partition's stored state (not its calendars: they stay facts)."""
        db = self.store.db
        for collection in (OFFSETS, TICKETS, MENTIONS, cell_log.CELL_LOG, cell_log.SNAPSHOTS):
            await db[collection].delete_many(self._where)
        self.engine.close()
        self.engine = PartitionEngine(self.tp.topic, self.tp.partition, self.settings, self.hub)
        self._seq, self._snapshot, self._logged = None, None, 0

    def process(self, event: Event, offset: int) -> None:
        """Apply one event."""
        try:
            self.engine.process(event, event.decode(), offset)
        except PoisonEvent as exc:
            raise PoisonRecordError(str(exc)) from exc
        self._dirty_offset = True

    def skip(self, offset: int) -> None:
        """Move past a dead-lettered record."""
        self.engine.next_offset = offset + 1
        self._dirty_offset = True

    @property
    def pending(self) -> int:
        """Changed entities (plus one when only the offset moved)."""
        return self.engine.pending + int(self._dirty_offset)

    async def checkpoint(self) -> int:
        """Flush the engine and write everything it changed with the offset, atomically."""
        flush = self.engine.flush()
        expected = self._seq
        seq = (expected or 0) + 1
        facts = self._fact_writes(flush)
        calendars = self._calendar_writes(flush)
        cells = self._changed_cells()
        offset = self.engine.next_offset
        previous = self._snapshot
        snapshot = await self._maybe_snapshot(seq, len(cells))

        async def save(session: AsyncClientSession) -> None:
            db = self.store.db
            query: dict[str, Any] = {"_id": self._id_prefix}
            fields: dict[str, Any] = {
                "next_offset": offset,
                "seq": seq,
                "format": FORMAT,
                "definitions": self._definitions,
                "watermark_ms": self.engine.watermark_ms,
                **self._where,
                "updated_ms": int(time.time() * 1000),
            }
            if snapshot is not None:
                fields["snapshot"] = snapshot.to_doc()
            if expected is None:
                existing = await db[OFFSETS].find_one(query, session=session)
                if existing is not None:
                    raise LostOwnershipError(f"{self.tp} was checkpointed by another owner")
                # A new generation of the partition's state: views that read an older one
                # (dropped and recomputed) read this one whole, whatever its numbers.
                generation = uuid.uuid4().hex
                await db[OFFSETS].insert_one(
                    {**query, **fields, "generation": generation}, session=session
                )
            else:
                query["seq"] = expected
                result = await db[OFFSETS].update_one(query, {"$set": fields}, session=session)
                if result.matched_count != 1:
                    raise LostOwnershipError(f"{self.tp}: checkpoint {expected} superseded")
            await cell_log.append(db, self._id_prefix, self._where, seq, cells, session)
            for collection, ops in facts.items():
                if ops:
                    await db[collection].bulk_write(ops, ordered=False, session=session)
            if calendars:
                await db[CALENDARS].bulk_write(calendars, ordered=False, session=session)

        await self.store.in_transaction(save)
        self._seq = seq
        self._stored_calendars |= flush.calendars
        self._dirty_offset = False
        self._logged += len(cells)
        if snapshot is not None:
            self._snapshot, self._logged = snapshot, 0
            try:
                await cell_log.compact(self.store.db, self._where, snapshot, previous)
            except Exception:  # left for the next snapshot to clean up; readers are unaffected
                log.warning("compacting the cell log of %s failed", self.tp, exc_info=True)
        return offset

    def close(self) -> None:
        """Drop the in-memory state."""
        self.engine.close()

    # -- documents ----------------------------------------------------------------------------

    async def _maybe_snapshot(self, seq: int, changed: int) -> cell_log.Snapshot | None:
        """Snapshot the cube as of checkpoint ``seq`` when the log has outgrown it."""
        logged = self._logged + changed
        if logged < self._snapshot_min_cells or logged <= len(self.engine.cube):
            return None
        items = cell_log.cube_items(self.engine.cube.items())
        token = uuid.uuid4().hex
        return await cell_log.write_snapshot(
            self.store.db, self._id_prefix, self._where, token, seq, items
        )

    def _changed_cells(self) -> list[cell_log.Item]:
        """The new value of every cell changed since the last checkpoint (None: emptied)."""
        cube = self.engine.cube
        items: list[cell_log.Item] = []
        for key in cube.take_dirty():
            aggregate = cube.get(key)
            items.append([*key, None if aggregate is None else aggregate.to_doc()])
        return items

    def _fact_writes(self, flush: FlushResult) -> dict[str, list[Any]]:
        base = self._where
        tickets: list[Any] = []
        for (tenant, ticket_id), clocks in flush.tickets.items():
            facts = self.engine.facts.tickets[(tenant, ticket_id)]
            doc = {
                **base,
                "tenant": tenant,
                "ticket_id": ticket_id,
                "contact_id": facts.contact_id,
                "facts": facts.to_doc(),
                # Whether the cells were derived with the ticket's calendar version (a restore
                # derives them again if the version is known by then).
                "calendar_applied": facts.calendar is not None and not clocks.calendar_missing,
                "dims": {k: v for k, v in clocks.dims.items() if v},
                "gap": gap_summary(clocks),
            }
            tickets.append(
                ReplaceOne({"_id": self._id_prefix + f"{tenant}|{ticket_id}"}, doc, upsert=True)
            )
        mentions: list[Any] = []
        for key in flush.mentions:
            mention = self.engine.facts.mentions[key]  # type: ignore[index]
            doc = {**base, "tenant": mention.tenant, "facts": mention.to_doc()}
            mentions.append(
                ReplaceOne(
                    {"_id": self._id_prefix + f"{mention.tenant}|m|{mention.mention_id}"},
                    doc,
                    upsert=True,
                )
            )
        return {TICKETS: tickets, MENTIONS: mentions}

    def _calendar_writes(self, flush: FlushResult) -> list[Any]:
        """This partition's copy of each calendar version the checkpoint's cells or events need
        that it has not stored yet."""
        writes: list[Any] = []
        for key in sorted(flush.calendars - self._stored_calendars):
            calendar = self.hub.directory.get(*key)
            assert calendar is not None, key  # seen or derived with: known to the process
            doc = {**self._where, "tenant": key[0], **calendar_to_doc(calendar)}
            writes.append(ReplaceOne({"_id": self._id_prefix + "|".join(map(str, key))}, doc, True))
        return writes


async def load_calendars(
    store: MongoStore, hub: CalendarHub, query: dict[str, Any] | None = None
) -> int:
    """Announce every stored calendar version (matching ``query``) not known yet; returns how
    many were new."""
    added = 0
    async for doc in store.db[CALENDARS].find(query or {}):
        if hub.directory.get(doc["tenant"], doc["calendar_id"], doc["version"]) is None:
            added += hub.add(doc["tenant"], calendar_from_doc(doc))
    return added


async def poll_calendars(store: MongoStore, hub: CalendarHub) -> int:
    """Look in the database for the calendar versions the hub's engines wait for (stored by
    partitions of other processes); returns how many were found."""
    wanted = hub.wanted()
    if not wanted:
        return 0
    query = {
        "$or": [
            {"tenant": tenant, "calendar_id": calendar_id, "version": version}
            for tenant, calendar_id, version in sorted(wanted)
        ]
    }
    return await load_calendars(store, hub, query)


class CalendarPoller:
    """Background work: while tickets wait for a calendar version, look for it in the
    database every ``interval`` seconds (another process may own the partition it came on)."""

    def __init__(self, store: MongoStore, hub: CalendarHub, interval: float = 1.0) -> None:
        self.store = store
        self.hub = hub
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Poll in the background."""
        self._task = asyncio.create_task(self._run(), name="calendar-poller")

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop polling."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                found = await poll_calendars(self.store, self.hub)
            except Exception:  # the database is away for a moment: the next round tries again
                log.warning("looking for calendar versions failed", exc_info=True)
                continue
            if found:
                log.info("found %d calendar versions stored by other processes", found)
