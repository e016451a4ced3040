"""A partition's state in the database: facts, aggregate cells and the next offset, together.

Collections (all keyed by namespace, so a replay writes beside the live state, never over it):

- ``metric_offsets``: one document per (namespace, topic, partition) with the next offset to
  read and the number of the last checkpoint (``seq``). It is the fence: a checkpoint updates it
  only if it still holds the number the state was loaded from (or last wrote), in the same
  transaction as everything else.
- ``metric_tickets`` / ``metric_mentions``: the facts of each entity (plus a few derived fields
  for ``GetPerceptionGap``'s worst tickets).
- ``metric_cells``: aggregates, one document per (namespace, partition, tenant, KPI, hour) with
  one field per dimension cell. Only the cells that changed are written (``$set``/``$unset``).
- ``metric_calendars``: every calendar version seen (shared by all namespaces: they are facts).
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from aiokafka import TopicPartition
from pymongo import ASCENDING, ReplaceOne, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession

from crm_calendar.business_calendar import BusinessCalendar
from crm_metrics.calendars import CalendarHub, calendar_from_doc, calendar_to_doc
from crm_metrics.domain.clocks import Settings, TicketClocks
from crm_metrics.domain.cube import aggregate_class
from crm_metrics.domain.facts import MentionFacts, TicketFacts
from crm_metrics.engine import FlushResult, PartitionEngine
from crm_metrics.events import PoisonEvent
from crm_platform.checkpointed import LostOwnershipError, PoisonRecordError
from crm_platform.events import Event
from crm_platform.mongo import MongoStore

OFFSETS = "metric_offsets"
TICKETS = "metric_tickets"
MENTIONS = "metric_mentions"
CELLS = "metric_cells"
CALENDARS = "metric_calendars"
NAMESPACES = "metric_namespaces"
LIVE = "live"


def escape_cell(cell: str) -> str:
    """A cell key usable as a MongoDB field name (no '.', no leading '$')."""
    return cell.replace("%", "%25").replace(".", "%2E").replace("$", "%24") or "_"


def unescape_cell(field: str) -> str:
    """The inverse of :func:`escape_cell`."""
    if field == "_":
        return ""
    return field.replace("%24", "$").replace("%2E", ".").replace("%25", "%")


async def ensure_indexes(store: MongoStore) -> None:
    """The indexes the checkpoints and queries need."""
    db = store.db
    await db[TICKETS].create_index([("ns", ASCENDING), ("topic", ASCENDING), ("p", ASCENDING)])
    await db[TICKETS].create_index([("ns", ASCENDING), ("tenant", ASCENDING), ("ticket_id", 1)])
    await db[TICKETS].create_index(
        [("ns", ASCENDING), ("tenant", ASCENDING), ("gap.reply_ms", ASCENDING)]
    )
    await db[MENTIONS].create_index([("ns", ASCENDING), ("topic", ASCENDING), ("p", ASCENDING)])
    await db[CELLS].create_index([("ns", ASCENDING), ("topic", ASCENDING), ("p", ASCENDING)])
    await db[CELLS].create_index(
        [("ns", ASCENDING), ("topic", ASCENDING), ("p", ASCENDING), ("seq", ASCENDING)]
    )


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
    ) -> None:
        self.store = store
        self.namespace = namespace
        self.tp = tp
        self.engine = PartitionEngine(tp.topic, tp.partition, settings, hub)
        self._id_prefix = f"{namespace}|{tp.topic}|{tp.partition}|"
        # The number of the last checkpoint written (None: none yet). It fences the writes and
        # stamps the cells, so readers find everything a checkpoint changed, even when the
        # offset did not move (a calendar arriving re-derives tickets without new records).
        self._seq: int | None = None
        self._dirty_offset = False

    # -- PartitionState -----------------------------------------------------------------------

    async def load(self) -> int | None:
        """Load the checkpoint: offset, calendars, facts; rebuild the cube from the cells."""
        db = self.store.db
        doc = await db[OFFSETS].find_one({"_id": self._id_prefix})
        await load_calendars(self.store, self.engine.hub)
        where = {"ns": self.namespace, "topic": self.tp.topic, "p": self.tp.partition}
        async for ticket in db[TICKETS].find(where):
            facts = TicketFacts.from_doc(ticket["facts"])
            self.engine.facts.tickets[(facts.tenant, facts.ticket_id)] = facts
        async for mention in db[MENTIONS].find(where):
            facts_m = MentionFacts.from_doc(mention["facts"])
            self.engine.facts.mentions[(facts_m.tenant, "mention", facts_m.mention_id)] = facts_m
        cube = self.engine.cube
        async for cell_doc in db[CELLS].find(where):
            cls = aggregate_class(cell_doc["kpi"])
            for field, value in cell_doc.get("cells", {}).items():  # every cell $unset: none
                key = (cell_doc["tenant"], cell_doc["kpi"], cell_doc["hour"], unescape_cell(field))
                cube.replace(key, cls.from_doc(value))
        cube.take_dirty()
        self.engine.wait_for_calendars()
        if doc is None:
            self._seq = None
            return None
        self._seq = int(doc["seq"])
        self.engine.next_offset = int(doc["next_offset"])
        self.engine.watermark_ms = int(doc.get("watermark_ms", 0))
        return self.engine.next_offset

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
        writes = self._writes(flush, seq)
        offset = self.engine.next_offset

        async def save(session: AsyncClientSession) -> None:
            db = self.store.db
            query: dict[str, Any] = {"_id": self._id_prefix}
            update = {
                "$set": {
                    "next_offset": offset,
                    "seq": seq,
                    "watermark_ms": self.engine.watermark_ms,
                    "ns": self.namespace,
                    "topic": self.tp.topic,
                    "p": self.tp.partition,
                    "updated_ms": int(time.time() * 1000),
                }
            }
            if expected is None:
                existing = await db[OFFSETS].find_one(query, session=session)
                if existing is not None:
                    raise LostOwnershipError(f"{self.tp} was checkpointed by another owner")
                await db[OFFSETS].insert_one({**query, **update["$set"]}, session=session)
            else:
                query["seq"] = expected
                result = await db[OFFSETS].update_one(query, update, session=session)
                if result.matched_count != 1:
                    raise LostOwnershipError(f"{self.tp}: checkpoint {expected} superseded")
            for collection, ops in writes.items():
                if ops:
                    await db[collection].bulk_write(ops, ordered=False, session=session)
            for tenant, calendar in flush.calendars:
                await save_calendar(self.store, tenant, calendar, session)

        await self.store.in_transaction(save)
        self._seq = seq
        self._dirty_offset = False
        return offset

    def close(self) -> None:
        """Drop the in-memory state."""
        self.engine.close()

    # -- documents ----------------------------------------------------------------------------

    def _writes(self, flush: FlushResult, seq: int) -> dict[str, list[Any]]:
        base = {"ns": self.namespace, "topic": self.tp.topic, "p": self.tp.partition}
        tickets: list[Any] = []
        for (tenant, ticket_id), clocks in flush.tickets.items():
            facts = self.engine.facts.tickets[(tenant, ticket_id)]
            doc = {
                **base,
                "tenant": tenant,
                "ticket_id": ticket_id,
                "contact_id": facts.contact_id,
                "facts": facts.to_doc(),
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
        groups: dict[tuple[str, str, int], dict[str, Any]] = defaultdict(dict)
        cube = self.engine.cube
        for cell_key in cube.take_dirty():
            tenant, kpi, hour, cell = cell_key
            aggregate = cube.get(cell_key)
            groups[(tenant, kpi, hour)][escape_cell(cell)] = (
                None if aggregate is None else aggregate.to_doc()
            )
        # Every changed cell, and its document, carry the checkpoint's number as ``seq``:
        # readers (the views) fetch what changed since the checkpoint they last saw, cell by cell.
        cells: list[Any] = []
        for (tenant, kpi, hour), changed in groups.items():
            sets: dict[str, Any] = {
                f"cells.{f}": {**v, "q": seq} for f, v in changed.items() if v is not None
            }
            unsets = {f"cells.{f}": "" for f, v in changed.items() if v is None}
            update: dict[str, Any] = {
                "$set": {**sets, "seq": seq},
                "$setOnInsert": {**base, "tenant": tenant, "kpi": kpi, "hour": hour},
            }
            if unsets:
                update["$unset"] = unsets
            cells.append(
                UpdateOne({"_id": self._id_prefix + f"{tenant}|{kpi}|{hour}"}, update, upsert=True)
            )
        return {TICKETS: tickets, MENTIONS: mentions, CELLS: cells}


async def save_calendar(
    store: MongoStore,
    tenant: str,
    calendar: BusinessCalendar,
    session: AsyncClientSession | None = None,
) -> None:
    """Store a calendar version (idempotent)."""
    await store.db[CALENDARS].replace_one(
        {"_id": f"{tenant}|{calendar.calendar_id}|{calendar.version}"},
        {"tenant": tenant, **calendar_to_doc(calendar)},
        upsert=True,
        session=session,
    )


async def load_calendars(store: MongoStore, hub: CalendarHub) -> int:
    """Announce every stored calendar version not known yet; returns how many were new."""
    added = 0
    async for doc in store.db[CALENDARS].find({}):
        if hub.directory.get(doc["tenant"], doc["calendar_id"], doc["version"]) is None:
            added += hub.add(doc["tenant"], calendar_from_doc(doc))
    return added
