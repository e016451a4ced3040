"""The cell log's encoding: compact chunks under the document limit, decoded exactly."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm_metrics import cell_log

_docs = st.one_of(
    st.none(),
    st.fixed_dictionaries({"c": st.integers(0, 10**9), "s": st.integers(-(10**12), 10**12)}),
    st.fixed_dictionaries(
        {"pk": st.lists(st.integers(-2000, 2000), max_size=5), "s": st.integers(0, 10**15)}
    ),
)
_items = st.lists(
    st.tuples(
        st.text(max_size=8), st.text(max_size=12), st.integers(0, 10**6), st.text(), _docs
    ).map(list),
    max_size=40,
)


@given(_items)
def test_items_round_trip_in_order(items: list[cell_log.Item]) -> None:
    decoded = [item for chunk in cell_log.encode(items) for item in cell_log.decode(chunk)]
    assert decoded == items


def test_large_logs_split_into_chunks_under_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cell_log, "MAX_CHUNK_BYTES", 2_000)
    items: list[cell_log.Item] = [
        ["t", "frt_wall", hour, f"agent=a{hour}", {"pk": list(range(hour % 50)), "s": hour}]
        for hour in range(3_000)
    ]
    chunks = cell_log.encode(items)
    assert len(chunks) > 1
    assert all(len(chunk) <= 2_000 for chunk in chunks)
    assert [item for chunk in chunks for item in cell_log.decode(chunk)] == items


def test_every_checkpoint_has_a_log_document_even_without_changes() -> None:
    docs = cell_log.log_documents("live|t|0|", {"ns": "live", "topic": "t", "p": 0}, 7, [])
    assert [(doc["seq"], doc["chunk"], doc["chunks"]) for doc in docs] == [(7, 0, 1)]
    assert docs[0]["_id"] == "live|t|0|000000000007|0"


def test_the_snapshot_pointer_round_trips_through_the_offsets_document() -> None:
    snapshot = cell_log.Snapshot("abc", 12, 3)
    assert cell_log.Snapshot.of({"seq": 14, "snapshot": snapshot.to_doc()}) == snapshot
    assert cell_log.Snapshot.of({"seq": 14}) is None
    assert cell_log.Snapshot.of(None) is None
