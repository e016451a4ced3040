"""A partition's aggregate cells in the database: a log of checkpoints and a periodic snapshot.

Each checkpoint appends what it changed to ``metric_cell_log``: the new value of every cell it
touched (``None`` for a cell that became empty), as compressed MessagePack in one document, or a few
when large. Documents are never rewritten, so a reader that knows a partition's checkpoint
number ``seq`` (from ``metric_offsets``) reads exactly the checkpoints in ``(seen, seq]``.

When the log holds more cells than the cube itself, the owner writes the whole cube as a
snapshot (``metric_cell_snapshots``, outside the transaction, under a fresh token) and the next
checkpoint's transaction points the offsets document at it. Log documents older than the
previous snapshot are then deleted; a reader that finds a gap in the log (it fell that far
behind) starts again from the snapshot. Loading a partition reads its snapshot plus the log
after it.

Items are ``[tenant, kpi, hour, cell, aggregate document or None]``.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import msgpack
from bson import Binary
from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

CELL_LOG = "metric_cell_log"
SNAPSHOTS = "metric_cell_snapshots"

Item = list[Any]
"""``[tenant, kpi, hour, cell, aggregate document or None]``."""

MAX_CHUNK_BYTES = 4 * 1024 * 1024
"""Compressed bytes per document (well under MongoDB's 16 MiB document limit)."""


class LogGapError(Exception):
    """The log no longer holds every checkpoint asked for (compacted into a snapshot)."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Where a partition's latest snapshot is: its token, checkpoint number and chunk count."""

    token: str
    seq: int
    chunks: int

    def to_doc(self) -> dict[str, Any]:
        """The ``snapshot`` field of the offsets document."""
        return {"token": self.token, "seq": self.seq, "chunks": self.chunks}

    @classmethod
    def of(cls, offsets: Mapping[str, Any] | None) -> Snapshot | None:
        """The snapshot an offsets document points at, if any."""
        doc = None if offsets is None else offsets.get("snapshot")
        if not doc:
            return None
        return cls(str(doc["token"]), int(doc["seq"]), int(doc["chunks"]))


def encode(items: list[Item]) -> list[bytes]:
    """Items as compressed MessagePack chunks, each under :data:`MAX_CHUNK_BYTES`."""
    data = zlib.compress(msgpack.packb(items), 1)
    if len(data) <= MAX_CHUNK_BYTES or len(items) <= 1:
        return [data]
    half = len(items) // 2
    return encode(items[:half]) + encode(items[half:])


def decode(data: bytes) -> list[Item]:
    """The items of one chunk."""
    items: list[Item] = msgpack.unpackb(zlib.decompress(data))
    return items


async def ensure_indexes(db: AsyncDatabase[Any]) -> None:
    """The indexes the readers need."""
    where = [("ns", ASCENDING), ("topic", ASCENDING), ("p", ASCENDING)]
    await db[CELL_LOG].create_index([*where, ("seq", ASCENDING), ("chunk", ASCENDING)])
    await db[SNAPSHOTS].create_index([*where, ("token", ASCENDING), ("chunk", ASCENDING)])


def log_documents(
    id_prefix: str, where: Mapping[str, Any], seq: int, items: list[Item]
) -> list[dict[str, Any]]:
    """The log documents of checkpoint ``seq`` (at least one, so every checkpoint is seen)."""
    chunks = encode(items)
    return [
        {
            "_id": f"{id_prefix}{seq:012d}|{i}",
            **where,
            "seq": seq,
            "chunk": i,
            "chunks": len(chunks),
            "data": Binary(data),
        }
        for i, data in enumerate(chunks)
    ]


async def append(
    db: AsyncDatabase[Any],
    id_prefix: str,
    where: Mapping[str, Any],
    seq: int,
    items: list[Item],
    session: AsyncClientSession,
) -> None:
    """Append checkpoint ``seq``'s cells to the log (inside the checkpoint's transaction)."""
    await db[CELL_LOG].insert_many(
        log_documents(id_prefix, where, seq, items), ordered=True, session=session
    )


async def write_snapshot(
    db: AsyncDatabase[Any],
    id_prefix: str,
    where: Mapping[str, Any],
    token: str,
    seq: int,
    items: list[Item],
) -> Snapshot:
    """Write a snapshot (outside any transaction: it is only used once an offsets document
    points at it, so a crash leaves an unreferenced snapshot, removed by the next one)."""
    chunks = encode(items)
    await db[SNAPSHOTS].insert_many(
        [
            {
                "_id": f"{id_prefix}{token}|{i}",
                **where,
                "token": token,
                "seq": seq,
                "chunk": i,
                "data": Binary(data),
            }
            for i, data in enumerate(chunks)
        ],
        ordered=True,
    )
    return Snapshot(token, seq, len(chunks))


async def compact(
    db: AsyncDatabase[Any], where: Mapping[str, Any], current: Snapshot, previous: Snapshot | None
) -> None:
    """After ``current`` is committed: drop the log up to the previous snapshot (readers a
    little behind still find their checkpoints) and every other snapshot up to ``current``'s
    checkpoint (older ones, and those a checkpoint that lost the fence left). A newer one is
    left alone: it is another owner's, committed since (this compaction ran late, in a member
    that lost the partition without knowing), and the offsets document may point at it."""
    if previous is not None:
        await db[CELL_LOG].delete_many({**where, "seq": {"$lte": previous.seq}})
    await db[SNAPSHOTS].delete_many(
        {**where, "token": {"$ne": current.token}, "seq": {"$lte": current.seq}}
    )


async def read_log(
    db: AsyncDatabase[Any], where: Mapping[str, Any], after: int, upto: int
) -> list[Item]:
    """The items of checkpoints ``after+1 .. upto`` in order (LogGapError if any is gone)."""
    items: list[Item] = []
    expected_seq, expected_chunk, chunks = after + 1, 0, 0
    cursor = (
        db[CELL_LOG]
        .find({**where, "seq": {"$gt": after, "$lte": upto}})
        .sort([("seq", ASCENDING), ("chunk", ASCENDING)])
    )
    async for doc in cursor:
        seq, chunk = int(doc["seq"]), int(doc["chunk"])
        if expected_chunk and expected_chunk == chunks:  # the previous checkpoint is complete
            expected_seq, expected_chunk = expected_seq + 1, 0
        if (seq, chunk) != (expected_seq, expected_chunk):
            raise LogGapError(f"{dict(where)}: checkpoint {expected_seq} missing from the log")
        chunks = int(doc["chunks"])
        items.extend(decode(doc["data"]))
        expected_chunk += 1
    complete = chunks > 0 and expected_chunk == chunks
    if upto > after and not (expected_seq == upto and complete):
        raise LogGapError(f"{dict(where)}: the log stops before checkpoint {upto}")
    return items


async def read_snapshot(
    db: AsyncDatabase[Any], where: Mapping[str, Any], snapshot: Snapshot
) -> list[Item]:
    """The items of a snapshot (LogGapError if it is gone or incomplete)."""
    items: list[Item] = []
    found = 0
    cursor = db[SNAPSHOTS].find({**where, "token": snapshot.token}).sort("chunk", ASCENDING)
    async for doc in cursor:
        if int(doc["chunk"]) != found:
            break
        items.extend(decode(doc["data"]))
        found += 1
    if found != snapshot.chunks:
        raise LogGapError(f"{dict(where)}: snapshot {snapshot.token} is incomplete")
    return items


async def read_state(
    db: AsyncDatabase[Any], where: Mapping[str, Any], offsets: Mapping[str, Any]
) -> tuple[list[Item], list[Item]]:
    """Every item needed to rebuild the cells as of the offsets document's checkpoint: the
    snapshot's, and the log's after it (apply in that order, later values replacing earlier
    ones)."""
    snapshot = Snapshot.of(offsets)
    base = [] if snapshot is None else await read_snapshot(db, where, snapshot)
    after = 0 if snapshot is None else snapshot.seq
    return base, await read_log(db, where, after, int(offsets["seq"]))


def cube_items(cells: Iterable[tuple[tuple[str, str, int, str], Any]]) -> list[Item]:
    """Snapshot items of ``(key, aggregate)`` pairs."""
    return [[t, k, h, c, agg.to_doc()] for (t, k, h, c), agg in cells]
