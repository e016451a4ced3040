"""The cube (write side) and the cube view (read side, with day and block rollups)."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_metrics.domain.aggregate import Aggregate, Distribution, Level, Rate
from crm_metrics.domain.contribution import Contribution, make_dims
from crm_metrics.domain.cube import (
    ALL_CELL,
    DAY_LEVEL,
    HOUR_LEVEL,
    LEVELS,
    ROLLUP_DAYS,
    SLICE_DIMENSIONS,
    CellKey,
    Cube,
    CubeView,
    DayClock,
    aggregate_class,
    cell_key,
    cell_signature,
    expand_cells,
    parse_cell,
)

T0 = int(datetime(2026, 3, 1, tzinfo=UTC).timestamp())
HOUR = 3600
DAY = 86400

# --- strategies ----------------------------------------------------------------------------------

KPI_VALUES: dict[str, st.SearchStrategy[float]] = {
    "frt_wall": st.integers(-(10**7), 10**8).map(lambda ms: ms / 1000),
    "sla_first_response": st.sampled_from([0.0, 1.0]),
    "tickets_created": st.just(1.0),
    "reach": st.integers(0, 10**6).map(float),
    "csat": st.integers(1, 5).map(float),
    "comment_sentiment": st.integers(-10_000, 10_000).map(lambda v: v / 10_000),
    "backlog": st.sampled_from([1.0, -1.0]),
}

dims = st.fixed_dictionaries(
    {},
    optional={
        "channel": st.sampled_from(["email", "phone", "chat"]),
        "agent": st.sampled_from(["a1", "a2", "a|b=c%"]),
        "team": st.sampled_from(["t1", "t2"]),
        "priority": st.sampled_from(["high", "low"]),
    },
).map(make_dims)


@st.composite
def contributions(draw: st.DrawFn, span_days: int = 3) -> Contribution:
    kpi = draw(st.sampled_from(sorted(KPI_VALUES)))
    at = T0 + draw(st.integers(0, span_days * DAY))
    return Contribution(kpi, at, draw(dims), draw(KPI_VALUES[kpi]))


contribution_lists = st.lists(contributions(), max_size=40)
tenants = st.sampled_from(["acme", "globex"])


def docs(source: Cube | CubeView) -> dict[CellKey, object]:
    result: dict[CellKey, object] = {}
    for key in source:
        agg = source.get(key)
        assert agg is not None
        result[key] = agg.to_doc()
    return result


def cube_of(items: list[tuple[str, Contribution]]) -> Cube:
    cube = Cube()
    for tenant, contribution in items:
        cube.apply(tenant, contribution)
    return cube


# --- cells ---------------------------------------------------------------------------------------


def test_a_contribution_lands_in_the_whole_population_each_value_and_channel_pairs() -> None:
    cells = expand_cells(make_dims({"channel": "email", "agent": "a1", "team": "t1"}))
    assert sorted(cells) == sorted(
        [
            "",
            "agent=a1",
            "channel=email",
            "team=t1",
            "channel=email|agent=a1",
            "channel=email|team=t1",
        ]
    )


def test_without_a_channel_there_are_no_pair_cells() -> None:
    cells = expand_cells(make_dims({"agent": "a1", "team": "t1"}))
    assert sorted(cells) == ["", "agent=a1", "team=t1"]


def test_channel_is_the_slice_dimension() -> None:
    assert SLICE_DIMENSIONS == ("channel",)


def test_cell_keys_put_the_slice_dimension_first_whatever_the_input_order() -> None:
    assert cell_key({"agent": "a1", "channel": "email"}) == "channel=email|agent=a1"
    assert cell_key([("channel", "email"), ("agent", "a1")]) == "channel=email|agent=a1"
    assert cell_key({}) == ALL_CELL
    assert cell_signature("channel=email|agent=a1") == ("channel", "agent")


@given(
    st.dictionaries(
        st.sampled_from(["channel", "agent", "brand"]), st.text(min_size=1, max_size=8), max_size=2
    )
)
def test_a_cell_key_parses_back_to_its_values_even_with_separators_in_them(
    values: dict[str, str],
) -> None:
    assert dict(parse_cell(cell_key(values))) == values


# --- the cube ------------------------------------------------------------------------------------


def test_a_contribution_is_bucketed_in_its_utc_hour() -> None:
    cube = Cube()
    cube.apply("acme", Contribution("tickets_created", T0 + 2 * HOUR + 59 * 60, (), 1.0))
    assert list(cube.keys()) == [("acme", "tickets_created", T0 // HOUR + 2, "")]


def test_aggregates_are_created_with_the_kind_of_the_kpi() -> None:
    cube = Cube()
    d = make_dims({"channel": "email"})
    cube.apply("acme", Contribution("frt_wall", T0, d, 30.0))
    cube.apply("acme", Contribution("sla_first_response", T0, d, 1.0))
    assert isinstance(cube.get(("acme", "frt_wall", T0 // HOUR, "channel=email")), Distribution)
    assert isinstance(cube.get(("acme", "sla_first_response", T0 // HOUR, "")), Rate)
    assert aggregate_class("backlog") is Level


def test_tenants_are_kept_apart() -> None:
    cube = Cube()
    cube.apply("acme", Contribution("tickets_created", T0, (), 1.0))
    cube.apply("globex", Contribution("tickets_created", T0, (), 1.0))
    acme = cube.get(("acme", "tickets_created", T0 // HOUR, ""))
    assert acme is not None
    assert acme.to_doc() == {"c": 1, "s": 1000}
    assert cube.tenants() == {"acme", "globex"}


@given(st.lists(st.tuples(tenants, contributions()), max_size=40), st.randoms())
def test_retracting_every_contribution_leaves_the_cube_empty(
    items: list[tuple[str, Contribution]], rnd: random.Random
) -> None:
    cube = cube_of(items)
    rnd.shuffle(items)
    for tenant, contribution in items:
        cube.apply(tenant, contribution, -1)
    assert len(cube) == 0
    assert not cube
    assert list(cube.items()) == []


@given(
    st.lists(st.tuples(tenants, contributions()), max_size=30),
    st.lists(st.tuples(tenants, contributions()), max_size=15),
    st.randoms(),
)
def test_any_permutation_of_contributions_and_retractions_gives_identical_docs(
    kept: list[tuple[str, Contribution]],
    retracted: list[tuple[str, Contribution]],
    rnd: random.Random,
) -> None:
    reference = docs(cube_of(kept))
    ops = [(t, c, 1) for t, c in kept + retracted] + [(t, c, -1) for t, c in retracted]
    rnd.shuffle(ops)
    cube = Cube()
    for tenant, contribution, sign in ops:
        cube.apply(tenant, contribution, sign)
    assert docs(cube) == reference


def test_touched_keys_are_dirty_until_taken_even_when_their_aggregate_is_gone() -> None:
    cube = Cube()
    c = Contribution("frt_wall", T0, make_dims({"channel": "email"}), 12.0)
    cube.apply("acme", c)
    hour = T0 // HOUR
    expected = {("acme", "frt_wall", hour, ""), ("acme", "frt_wall", hour, "channel=email")}
    assert cube.dirty_count == 2
    assert cube.take_dirty() == expected
    assert cube.take_dirty() == set()
    cube.apply("acme", c, -1)
    assert cube.take_dirty() == expected
    assert all(cube.get(key) is None for key in expected)


def test_replace_restores_state_without_marking_it_dirty() -> None:
    cube = Cube()
    agg = Distribution()
    agg.add(5.0)
    key = ("acme", "frt_wall", 10, "")
    cube.replace(key, agg)
    assert cube.get(key) is agg
    assert key in cube
    assert cube.take_dirty() == set()
    cube.replace(key, None, dirty=True)
    assert cube.get(key) is None
    assert cube.take_dirty() == {key}
    with pytest.raises(TypeError):
        cube.replace(key, Rate())


def test_rows_list_every_cell_of_an_hour() -> None:
    cube = Cube()
    cube.apply("acme", Contribution("tickets_created", T0, make_dims({"channel": "email"}), 1.0))
    assert set(cube.row("acme", "tickets_created", T0 // HOUR)) == {"", "channel=email"}
    assert cube.row("acme", "tickets_created", 0) == {}


# --- the view ------------------------------------------------------------------------------------


def view_of(cubes: list[Cube], timezone: str = "UTC") -> CubeView:
    view = CubeView(timezone)
    for partition, cube in enumerate(cubes):
        view.sync_from_cube(partition, cube, list(cube.keys()))
    return view


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(tenants, contributions(), st.integers(0, 2)), max_size=40))
def test_the_view_merged_over_three_partitions_equals_one_cube_with_everything(
    items: list[tuple[str, Contribution, int]],
) -> None:
    parts = [Cube(), Cube(), Cube()]
    whole = Cube()
    for tenant, contribution, partition in items:
        parts[partition].apply(tenant, contribution)
        whole.apply(tenant, contribution)
    assert docs(view_of(parts)) == docs(whole)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.tuples(contributions(), st.integers(0, 2)), max_size=30),
    st.lists(st.tuples(contributions(), st.integers(0, 2)), max_size=30),
)
def test_the_view_follows_partitions_as_they_change(
    first: list[tuple[Contribution, int]], later: list[tuple[Contribution, int]]
) -> None:
    parts = [Cube(), Cube(), Cube()]
    view = CubeView()
    whole = Cube()
    for batch in (first, later):
        for contribution, partition in batch:
            parts[partition].apply("acme", contribution)
            whole.apply("acme", contribution)
        for partition, cube in enumerate(parts):
            view.sync_from_cube(partition, cube, cube.take_dirty())
    assert docs(view) == docs(whole)
    # Withdrawing every contribution empties the view, and the cell index with it.
    for contribution, partition in first + later:
        parts[partition].apply("acme", contribution, -1)
    for partition, cube in enumerate(parts):
        view.sync_from_cube(partition, cube, cube.take_dirty())
    assert len(view) == 0
    assert view.cells("acme", "frt_wall") == set()


def merge_all(aggs: list[Aggregate], kpi: str) -> dict[str, object] | None:
    merged = aggregate_class(kpi)()
    for agg in aggs:
        merged.merge(agg)
    return None if merged.is_empty() else merged.to_doc()


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(contributions(span_days=40), st.integers(0, 1)), max_size=40),
    st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Pacific/Apia"]),
)
def test_day_and_block_rollups_equal_merging_their_hours(
    items: list[tuple[Contribution, int]], timezone: str
) -> None:
    parts = [Cube(), Cube()]
    for contribution, partition in items:
        parts[partition].apply("acme", contribution)
    view = view_of(parts, timezone)
    clock = view.clock
    series = {(kpi, cell) for _, kpi, _, cell in view}
    for kpi, cell in series:
        levels = view.levels("acme", kpi, cell)
        hours = levels[HOUR_LEVEL]
        for level in range(DAY_LEVEL, LEVELS):
            size = ROLLUP_DAYS[level - DAY_LEVEL]
            expected: dict[int, list[Aggregate]] = defaultdict(list)
            for hour, agg in hours.items():
                expected[clock.day(hour) // size].append(agg)
            want = {slot: merge_all(aggs, kpi) for slot, aggs in expected.items()}
            got = {slot: agg.to_doc() for slot, agg in levels[level].items()}
            assert got == {slot: doc for slot, doc in want.items() if doc is not None}
    assert dict(view.day_series("acme", "nope", "")) == {}


def assert_rollups_merge_their_hours(view: CubeView) -> None:
    clock = view.clock
    for kpi, cell in {(kpi, cell) for _, kpi, _, cell in view}:
        levels = view.levels("acme", kpi, cell)
        for level in range(DAY_LEVEL, LEVELS):
            size = ROLLUP_DAYS[level - DAY_LEVEL]
            expected: dict[int, list[Aggregate]] = defaultdict(list)
            for hour, agg in levels[HOUR_LEVEL].items():
                expected[clock.day(hour) // size].append(agg)
            want = {slot: merge_all(aggs, kpi) for slot, aggs in expected.items()}
            got = {slot: agg.to_doc() for slot, agg in levels[level].items()}
            assert got == {slot: doc for slot, doc in want.items() if doc is not None}


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.lists(st.tuples(contributions(span_days=80), st.integers(0, 1), st.booleans())),
        min_size=1,
        max_size=4,
    ),
    st.sampled_from(["UTC", "Europe/Berlin", "Pacific/Apia"]),
)
def test_rollups_settled_between_changes_stay_the_sums_of_their_hours(
    rounds: list[list[tuple[Contribution, int, bool]]], timezone: str
) -> None:
    # Rollups are recomputed lazily when read: reading them between rounds of changes (and
    # retractions that empty hours, days and blocks) must leave nothing stale behind.
    parts, view = [Cube(timezone), Cube(timezone)], CubeView(timezone)
    applied: list[tuple[Contribution, int]] = []
    for changes in rounds:
        for contribution, partition, retract in changes:
            if retract and applied:
                old, old_partition = applied.pop(0)
                parts[old_partition].apply("acme", old, -1)
            parts[partition].apply("acme", contribution)
            applied.append((contribution, partition))
        for partition, cube in enumerate(parts):
            view.sync_from_cube(partition, cube, cube.take_dirty())
        assert_rollups_merge_their_hours(view)


def test_a_partition_report_replaces_its_previous_one() -> None:
    view = CubeView()
    key: CellKey = ("acme", "frt_wall", T0 // HOUR, "")
    first, second = Distribution(), Distribution()
    first.add(10.0)
    second.add(20.0)
    second.add(30.0)
    view.update(0, key, first)
    view.update(1, key, first.copy())
    view.update(0, key, second)
    merged = view.get(key)
    assert isinstance(merged, Distribution)
    assert merged.sum_ms == 60_000
    assert view.partition_value(0, key) is second
    view.clear_partition(1)
    assert view.get(key) == second


def test_the_version_counts_changes_and_the_watermark_keeps_the_newest_event() -> None:
    view = CubeView()
    agg = Rate()
    agg.add(1.0)
    assert view.version == 0
    view.update(0, ("acme", "sla_first_response", 5, ""), agg, event_time=T0 + 10)
    version = view.version
    assert version > 0
    view.update(0, ("acme", "sla_first_response", 6, ""), None, event_time=T0)
    assert view.version == version  # nothing reported, nothing changed
    assert view.watermark == T0 + 10


def test_the_view_refuses_an_aggregate_of_the_wrong_kind() -> None:
    with pytest.raises(TypeError):
        CubeView().update(0, ("acme", "frt_wall", 5, ""), Rate())


def test_cells_are_indexed_by_signature() -> None:
    cube = Cube()
    for agent in ("a1", "a2"):
        d = make_dims({"channel": "email", "agent": agent})
        cube.apply("acme", Contribution("frt_wall", T0, d, 1.0))
    view = view_of([cube])
    assert view.cells("acme", "frt_wall", ("agent",)) == {"agent=a1", "agent=a2"}
    assert view.cells("acme", "frt_wall", ("channel", "agent")) == {
        "channel=email|agent=a1",
        "channel=email|agent=a2",
    }
    assert len(view.cells("acme", "frt_wall")) == 6
    assert view.cells("globex", "frt_wall") == set()


# --- local days ----------------------------------------------------------------------------------


def hour_of(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp()) // HOUR


def test_a_day_of_a_whole_hour_zone_starts_at_local_midnight() -> None:
    clock = DayClock("Europe/Berlin")
    day = datetime(2026, 1, 15).toordinal()
    assert clock.first_hour(day) == hour_of("2026-01-14T23:00:00+00:00")
    assert clock.day(hour_of("2026-01-14T22:00:00+00:00")) == day - 1


def test_dst_days_have_23_and_25_hours() -> None:
    clock = DayClock("Europe/Berlin")
    spring = datetime(2026, 3, 29).toordinal()
    autumn = datetime(2026, 10, 25).toordinal()
    assert clock.first_hour(spring + 1) - clock.first_hour(spring) == 23
    assert clock.first_hour(autumn + 1) - clock.first_hour(autumn) == 25


def test_a_half_hour_zone_rounds_the_day_edge_to_the_utc_hour() -> None:
    clock = DayClock("Asia/Kolkata")  # +05:30: local midnight is 18:30 UTC
    day = datetime(2026, 1, 15).toordinal()
    # 18:00 UTC is 23:30 local (the day before); 19:00 UTC is 00:30 local.
    assert clock.first_hour(day) == hour_of("2026-01-14T19:00:00+00:00")


def test_a_skipped_local_date_has_no_hours() -> None:
    clock = DayClock("Pacific/Apia")  # 2011-12-30 did not happen in Samoa
    skipped = datetime(2011, 12, 30).toordinal()
    assert clock.first_hour(skipped) == clock.first_hour(skipped + 1)
    assert clock.day(clock.first_hour(skipped)) == skipped + 1


def test_reporting_the_same_aggregate_object_again_is_refused() -> None:
    # The view subtracts what a partition reported before; a mutated old report would be lost.
    view = CubeView()
    agg = Rate()
    agg.add(1.0)
    view.update(0, ("acme", "sla_first_response", 5, ""), agg)
    agg.add(0.0)
    with pytest.raises(ValueError, match="copy"):
        view.update(0, ("acme", "sla_first_response", 5, ""), agg)
