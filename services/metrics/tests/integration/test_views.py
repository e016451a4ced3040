"""The query views read checkpoints from the real database without missing a cell.

A checkpoint writes its cells and its number together, but a view reads the partition's number
first and the cells after; a later checkpoint may rewrite a cell document in between. These tests
lay out exactly that state in the database and check that every cell reaches the view.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from crm_devstack.pytest_plugin import Infra
from crm_metrics.checkpoint import CELLS, OFFSETS, unescape_cell
from crm_metrics.view import KpiViews
from crm_platform.mongo import MongoStore

TENANT, KPI, HOUR, TOPIC = "acme", "tickets_created", 490_000, "crm.servicedesk.v1"


@pytest.fixture
async def store(infra: Infra) -> AsyncIterator[MongoStore]:
    mongo = MongoStore(infra.mongodb_uri, f"crm_metrics_views_{uuid.uuid4().hex[:8]}")
    try:
        yield mongo
    finally:
        await mongo.client.drop_database(mongo.db.name)
        await mongo.close()


async def _offsets(store: MongoStore, seq: int) -> None:
    await store.db[OFFSETS].update_one(
        {"_id": f"live|{TOPIC}|0"},
        {"$set": {"ns": "live", "topic": TOPIC, "p": 0, "seq": seq, "next_offset": seq}},
        upsert=True,
    )


async def _cells(store: MongoStore, seq: int, cells: dict[str, tuple[int, int]]) -> None:
    """The cell document as checkpoint ``seq`` leaves it: ``stored cell name → (count, q)``."""
    cell_fields = {f"cells.{c}": {"c": n, "s": 0, "q": q} for c, (n, q) in cells.items()}
    await store.db[CELLS].update_one(
        {"_id": f"live|{TOPIC}|0|{TENANT}|{KPI}|{HOUR}"},
        {
            "$set": {**cell_fields, "seq": seq},
            "$setOnInsert": {
                "ns": "live",
                "topic": TOPIC,
                "p": 0,
                "tenant": TENANT,
                "kpi": KPI,
                "hour": HOUR,
            },
        },
        upsert=True,
    )


def _count(views: KpiViews, cell: str) -> int:
    view = views.peek("live")
    assert view is not None
    aggregate = view.get((TENANT, KPI, HOUR, unescape_cell(cell)))
    return 0 if aggregate is None else aggregate.count  # type: ignore[attr-defined]


async def test_a_cell_document_rewritten_after_its_number_was_read_loses_no_cell(
    store: MongoStore,
) -> None:
    views = KpiViews(store, "UTC", refresh_seconds=60)
    await _offsets(store, 1)
    await _cells(store, 1, {"_": (1, 1)})
    await views.view("live")
    assert _count(views, "_") == 1
    # Checkpoint 2 changed cell "channel=email"; checkpoint 3 then rewrote the same document,
    # changing only cell "_". The view reads the partition's number while it still says 2, and
    # the document once checkpoint 3 has rewritten it.
    await _cells(store, 2, {"_": (1, 1), "channel=email": (4, 2)})
    await _offsets(store, 2)
    await _cells(store, 3, {"_": (2, 3), "channel=email": (4, 2)})
    await views.refresh("live")
    assert _count(views, "channel=email") == 4
    await _offsets(store, 3)
    await views.refresh("live")
    assert (_count(views, "_"), _count(views, "channel=email")) == (2, 4)


async def test_reading_a_cell_twice_replaces_it_rather_than_adding(store: MongoStore) -> None:
    views = KpiViews(store, "UTC", refresh_seconds=60)
    await _offsets(store, 1)
    await _cells(store, 1, {"_": (3, 1)})
    await views.view("live")
    await _cells(store, 2, {"_": (4, 2)})
    await _offsets(store, 2)
    await _cells(store, 3, {"_": (5, 3)})  # checkpoint 3 lands between the two reads
    assert await views.refresh("live") == 1
    assert _count(views, "_") == 5
    await _offsets(store, 3)
    assert await views.refresh("live") == 1  # the same cell again
    assert _count(views, "_") == 5
