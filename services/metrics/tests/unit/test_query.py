"""KPI queries: validation (field paths of GetKpisRequest) and evaluation over a CubeView."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_metrics.domain.aggregate import KpiResult, kpi_result
from crm_metrics.domain.catalog import CATALOG, Definitions, aggregate_name
from crm_metrics.domain.contribution import Contribution, make_dims
from crm_metrics.domain.cube import Cube, CubeView, aggregate_class, cell_key, day_clock
from crm_metrics.domain.query import KpiQuery, QueryResult, evaluate, validate
from crm_platform.errors import InvalidArgument

START = datetime(2026, 3, 1, tzinfo=UTC)
T0 = int(START.timestamp())
HOUR = 3600
DAY = 86400
DEFAULTS = Definitions()


def at(hours: float) -> int:
    return T0 + int(hours * HOUR)


def view_of(
    contributions: Iterable[Contribution], timezone: str = "UTC", tenant: str = "acme"
) -> CubeView:
    cube = Cube()
    cube.apply_all(tenant, contributions)
    view = CubeView(timezone)
    view.sync_from_cube(0, cube, cube.take_dirty())
    return view


def query(kpis: list[str], days: float = 3, **kwargs: Any) -> KpiQuery:
    return KpiQuery(kpis, START, START + timedelta(days=days), **kwargs)


def run(view: CubeView, q: KpiQuery, definitions: Definitions = DEFAULTS) -> QueryResult:
    return evaluate(view, "acme", q, definitions, START + timedelta(days=30))


def fields_of(q: KpiQuery, definitions: Definitions = DEFAULTS) -> list[str]:
    with pytest.raises(InvalidArgument) as caught:
        validate(q, definitions)
    return [v.field for v in caught.value.violations]


def brute_force(
    view: CubeView, kpi: str, cell: str, hours: Iterable[int], definitions: Definitions = DEFAULTS
) -> KpiResult:
    """Merge hour aggregates one by one: what every rollup shortcut must equal."""
    name = aggregate_name(kpi)
    merged = aggregate_class(name)()
    series = view.hour_series("acme", name, cell)
    for hour in hours:
        agg = series.get(hour)
        if agg is not None:
            merged.merge(agg)
    return kpi_result(CATALOG[kpi], None if merged.is_empty() else merged, definitions.label(kpi))


# --- validation ----------------------------------------------------------------------------------


def test_a_valid_query_passes() -> None:
    validate(
        query(["frt_wall", "csat@1"], filters={"channel": "email"}, group_by="agent"), DEFAULTS
    )


def test_an_unknown_kpi_is_named_by_its_index() -> None:
    assert fields_of(query(["frt_wall", "frt_nonsense"])) == ["kpis[1]"]


def test_an_unknown_version_is_refused() -> None:
    assert fields_of(query(["frt_wall@7"])) == ["kpis[0]"]
    assert fields_of(query(["frt_wall@x"])) == ["kpis[0]"]


def test_a_version_the_namespace_does_not_compute_is_refused() -> None:
    replay = Definitions({"frt_wall": 2})
    assert fields_of(query(["csat", "frt_wall@1"]), replay) == ["kpis[1]"]
    validate(query(["frt_wall@2"]), replay)
    # An alias follows the version of the aggregate it reads.
    assert fields_of(query(["company_frt@2"])) == ["kpis[0]"]
    validate(query(["company_frt@2"]), Definitions({"frt_business": 2}))


def test_a_kpi_named_twice_is_refused() -> None:
    assert fields_of(query(["frt_wall", "frt_wall@1"])) == ["kpis[1]"]


def test_no_kpi_is_refused() -> None:
    assert fields_of(query([])) == ["kpis"]


def test_the_end_must_come_after_the_start() -> None:
    assert fields_of(KpiQuery(["csat"], START, START)) == ["end_time"]


def test_hour_series_span_at_most_31_days_and_day_series_3_years() -> None:
    validate(query(["csat"], days=31, granularity="hour"), DEFAULTS)
    assert fields_of(query(["csat"], days=31.5, granularity="hour")) == ["end_time"]
    validate(query(["csat"], days=3 * 365, granularity="day"), DEFAULTS)
    assert fields_of(query(["csat"], days=4 * 365, granularity="day")) == ["end_time"]
    validate(query(["csat"], days=10 * 365, granularity="total"), DEFAULTS)


def test_times_must_be_instants() -> None:
    naive = datetime(2026, 3, 1)
    assert fields_of(KpiQuery(["csat"], naive, START + timedelta(days=1))) == ["start_time"]


def test_times_at_the_edges_of_the_calendar_are_refused() -> None:
    year_one = datetime(1, 1, 1, tzinfo=UTC)
    assert fields_of(KpiQuery(["csat"], year_one, START)) == ["start_time"]
    late = datetime(9999, 12, 31, tzinfo=UTC)
    assert fields_of(KpiQuery(["csat"], late - timedelta(days=1), late)) == [
        "start_time",
        "end_time",
    ]


def test_an_unknown_granularity_is_refused() -> None:
    assert fields_of(query(["csat"], granularity="week")) == ["granularity"]


def test_an_unknown_dimension_is_refused() -> None:
    assert fields_of(query(["csat"], filters={"colour": "red"})) == ["filters[colour]"]
    assert fields_of(query(["csat"], group_by="colour")) == ["group_by"]


def test_a_dimension_the_kpi_does_not_carry_is_refused() -> None:
    assert fields_of(query(["mentions"], filters={"agent": "a1"})) == ["filters[agent]"]
    assert fields_of(query(["frt_wall"], group_by="brand")) == ["group_by"]
    # Only tickets_created carries category and product.
    assert fields_of(query(["frt_wall"], filters={"category": "billing"})) == ["filters[category]"]
    validate(query(["tickets_created"], filters={"category": "billing"}), DEFAULTS)


def test_an_empty_filter_value_is_refused() -> None:
    assert fields_of(query(["csat"], filters={"agent": ""})) == ["filters[agent]"]


@pytest.mark.parametrize(
    ("filters", "group_by", "fields"),
    [
        ({"agent": "a1", "team": "t1"}, None, ["filters[agent]", "filters[team]"]),
        ({"agent": "a1"}, "team", ["filters[agent]", "group_by"]),
        ({"channel": "email", "agent": "a1"}, "team", ["filters[agent]", "group_by"]),
    ],
)
def test_combinations_without_a_cell_are_refused_naming_the_fields(
    filters: dict[str, str], group_by: str | None, fields: list[str]
) -> None:
    assert fields_of(query(["frt_wall"], filters=filters, group_by=group_by)) == fields


@pytest.mark.parametrize(
    ("filters", "group_by"),
    [
        ({"agent": "a1"}, None),
        ({}, "agent"),
        ({"channel": "email"}, "agent"),
        ({"agent": "a1"}, "channel"),
        ({"channel": "email", "agent": "a1"}, None),
        ({"channel": "email", "agent": "a1"}, "agent"),
    ],
)
def test_combinations_with_a_cell_are_accepted(
    filters: dict[str, str], group_by: str | None
) -> None:
    validate(query(["frt_wall"], filters=filters, group_by=group_by), DEFAULTS)


def test_an_unknown_time_zone_is_refused() -> None:
    assert fields_of(query(["csat"], timezone="Mars/Olympus")) == ["timezone"]
    assert fields_of(query(["csat"], timezone="America")) == ["timezone"]
    validate(query(["csat"], timezone="Asia/Kolkata"), DEFAULTS)


def test_every_problem_is_reported_at_once() -> None:
    bad = KpiQuery(
        ["nope", "frt_wall@5"],
        START,
        START - timedelta(hours=1),
        filters={"colour": "red"},
        timezone="Nowhere/Land",
    )
    assert sorted(fields_of(bad)) == sorted(
        ["kpis[0]", "kpis[1]", "end_time", "timezone", "filters[colour]"]
    )


KPI_CHOICES = ["frt_wall", "csat", "mentions", "bogus", "reach@9"]
TICKET_KPIS = {"frt_wall", "csat"}


@given(
    st.lists(st.sampled_from(KPI_CHOICES), min_size=1, max_size=4, unique=True),
    st.dictionaries(st.sampled_from(["channel", "agent", "network", "nope"]), st.just("x")),
    st.sampled_from([None, "team", "brand", "channel", "nope2"]),
)
def test_validation_errors_carry_the_field_paths_of_the_request(
    kpis: list[str], filters: dict[str, str], group_by: str | None
) -> None:
    mention_kpis = {"mentions", "reach@9"}  # reach@9: a known KPI with an unknown version
    expected = {f"kpis[{i}]" for i, k in enumerate(kpis) if k in ("bogus", "reach@9")}
    known = [k for k in kpis if k != "bogus"]
    carried = {
        "channel": TICKET_KPIS,
        "agent": TICKET_KPIS,
        "team": TICKET_KPIS,
        "network": mention_kpis,
        "brand": mention_kpis,
    }
    fields_by_dim = [(f"filters[{name}]", name) for name in filters]
    if group_by is not None:
        fields_by_dim.append(("group_by", group_by))
    unknown = False
    for path, name in fields_by_dim:
        if name not in carried:
            expected.add(path)
            unknown = True
        elif any(k not in carried[name] for k in known):
            expected.add(path)
    used = set(filters) | ({group_by} if group_by else set())
    if not unknown and (len(used) > 2 or (len(used) == 2 and "channel" not in used)):
        expected |= {path for path, name in fields_by_dim if name != "channel"}
    q = query(kpis, filters=filters, group_by=group_by)
    if expected:
        assert set(fields_of(q)) == expected
    else:
        validate(q, DEFAULTS)


# --- evaluation: buckets and totals --------------------------------------------------------------


def test_day_buckets_and_totals_of_a_distribution() -> None:
    view = view_of(
        [
            Contribution("frt_wall", at(1), (), 60.0),
            Contribution("frt_wall", at(2), (), 120.0),
            Contribution("frt_wall", at(26), (), 600.0),
        ]
    )
    result = run(view, query(["frt_wall"]))
    (group,) = result.groups
    assert group.value == ""
    assert [p.bucket_start for p in group.points] == [START, START + timedelta(days=1)]
    assert [p.values[0].count for p in group.points] == [2, 1]
    (total,) = group.totals
    assert total.count == 3
    assert total.sum == 780.0
    assert total.kpi == "frt_wall@1"
    assert result.definitions == ["frt_wall@1"]
    assert result.timezone == "UTC"


def test_hour_buckets_start_at_their_utc_hour_and_only_buckets_with_data_appear() -> None:
    view = view_of([Contribution("tickets_created", at(5.5), (), 1.0)])
    (group,) = run(view, query(["tickets_created"], days=1, granularity="hour")).groups
    assert [p.bucket_start for p in group.points] == [START + timedelta(hours=5)]
    assert group.points[0].values[0].value == 1.0


def test_total_granularity_has_no_points() -> None:
    view = view_of([Contribution("tickets_created", at(5), (), 1.0)])
    (group,) = run(view, query(["tickets_created"], granularity="total")).groups
    assert group.points == []
    assert group.totals[0].value == 1.0


def test_a_range_is_widened_to_whole_hours() -> None:
    view = view_of([Contribution("tickets_created", at(1.2), (), 1.0)])
    q = KpiQuery(
        ["tickets_created"], START + timedelta(hours=1.5), START + timedelta(hours=1.7), "total"
    )
    assert run(view, q).groups[0].totals[0].value == 1.0


def test_day_buckets_follow_the_query_time_zone() -> None:
    view = view_of([Contribution("tickets_created", at(20), (), 1.0)])  # 01:30 next day, Kolkata
    q = query(["tickets_created"], timezone="Asia/Kolkata")
    (group,) = run(view, q).groups
    # The Kolkata day of March 2 starts at 18:30 UTC, rounded to the 19:00 UTC hour.
    assert [p.bucket_start for p in group.points] == [datetime(2026, 3, 1, 19, tzinfo=UTC)]
    assert run(view, q).timezone == "Asia/Kolkata"


contribution_strategy = st.builds(
    Contribution,
    st.sampled_from(["frt_wall", "sla_first_response", "csat", "reach", "comment_sentiment"]),
    st.integers(T0 - 5 * DAY, T0 + 40 * DAY),
    st.sampled_from([(), make_dims({"channel": "email"})]),
    st.sampled_from([1.0, 0.0, 4.0, 5.0, 0.5, 7.25, -0.2, 12345.678]),
)
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(contribution_strategy, max_size=60),
    st.sampled_from(ZONES),
    st.integers(0, 40 * DAY),
    st.integers(1, 35 * DAY),
)
def test_totals_equal_merging_every_hour_of_the_range(
    contributions: list[Contribution], timezone: str, offset: int, length: int
) -> None:
    view = view_of(contributions, timezone)
    start = START - timedelta(days=3) + timedelta(seconds=offset)
    end = start + timedelta(seconds=length)
    kpis = ["frt_wall", "sla_first_response", "csat", "reach", "comment_sentiment"]
    result = run(view, KpiQuery(kpis, start, end, "total"))
    first = int(start.timestamp()) // HOUR
    last = -(-int(end.timestamp()) // HOUR)
    expected = [brute_force(view, kpi, "", range(first, last)) for kpi in kpis]
    assert result.groups[0].totals == expected


@settings(max_examples=40, deadline=None)
@given(
    st.lists(contribution_strategy, max_size=60),
    st.sampled_from(ZONES),
    st.sampled_from(ZONES),
    st.integers(0, 10 * DAY),
)
def test_day_buckets_equal_merging_hours_by_local_day_in_any_zone(
    contributions: list[Contribution], reporting: str, timezone: str, offset: int
) -> None:
    view = view_of(contributions, reporting)
    start = START + timedelta(seconds=offset)
    end = start + timedelta(days=20)
    kpis = ["frt_wall", "sla_first_response", "csat"]
    (group,) = run(view, KpiQuery(kpis, start, end, "day", timezone=timezone)).groups
    clock = day_clock(timezone)
    first = int(start.timestamp()) // HOUR
    last = -(-int(end.timestamp()) // HOUR)
    by_day: dict[int, list[int]] = {}
    for hour in range(first, last):
        by_day.setdefault(clock.day(hour), []).append(hour)
    expected = []
    for day, hours in sorted(by_day.items()):
        values = [brute_force(view, kpi, "", hours) for kpi in kpis]
        if any(v.has_data for v in values):
            expected.append((clock.first_hour(day) * HOUR, values))
    got = [(int(p.bucket_start.timestamp()), p.values) for p in group.points]
    assert got == expected


# --- levels and ages -----------------------------------------------------------------------------


def test_a_level_counts_every_change_before_the_end_of_each_bucket() -> None:
    view = view_of(
        [
            Contribution("backlog", at(-24 * 10), (), 1.0),  # long before the range
            Contribution("backlog", at(3), (), 1.0),
            Contribution("backlog", at(30), (), 1.0),
            Contribution("backlog", at(50), (), -1.0),
            Contribution("backlog", at(24 * 5), (), 1.0),  # after the range
        ]
    )
    (group,) = run(view, query(["backlog"], days=3)).groups
    assert [p.values[0].value for p in group.points] == [2.0, 3.0, 2.0]
    assert group.totals[0].value == 2.0
    total = run(view, query(["backlog"], days=3, granularity="total")).groups[0].totals[0]
    assert total.value == 2.0


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(-20 * DAY, 30 * DAY), st.sampled_from([1.0, -1.0])), max_size=40
    ),
    st.sampled_from(ZONES),
    st.integers(0, 20 * DAY),
    st.sampled_from(["hour", "day"]),
)
def test_a_level_bucket_is_the_sum_of_all_changes_before_its_end(
    changes: list[tuple[int, float]], reporting: str, offset: int, granularity: str
) -> None:
    view = view_of([Contribution("backlog", T0 + t, (), v) for t, v in changes], reporting)
    start = START + timedelta(seconds=offset)
    end = start + timedelta(days=5)
    (group,) = run(view, KpiQuery(["backlog"], start, end, granularity)).groups
    last = -(-int(end.timestamp()) // HOUR)
    for point, following in zip(group.points, [*group.points[1:], None], strict=True):
        bucket_end = last if following is None else int(following.bucket_start.timestamp()) // HOUR
        expected = sum(v for t, v in changes if (T0 + t) // HOUR < bucket_end)
        assert point.values[0].value == expected
    assert group.totals[0].value == sum(v for t, v in changes if (T0 + t) // HOUR < last)


def test_backlog_age_describes_the_open_tickets_now_whatever_the_range() -> None:
    view = view_of(
        [
            *(Contribution("backlog_age", at(0.5), (), 1.0) for _ in range(3)),
            Contribution("backlog_age", at(5), (), 1.0),
        ]
    )
    now = START + timedelta(hours=24)
    far = KpiQuery(["backlog_age"], START + timedelta(days=100), START + timedelta(days=101))
    (group,) = evaluate(view, "acme", far, DEFAULTS, now).groups
    assert group.points == []
    (age,) = group.totals
    assert age.count == 4
    assert age.value == age.p50 == 24 * HOUR
    assert age.mean == pytest.approx((3 * 24 + 19) * HOUR / 4)
    assert age.p90 == age.p99 == 24 * HOUR
    assert age.unit == "s"


def test_an_age_never_goes_negative() -> None:
    view = view_of([Contribution("unanswered_age", at(10), (), 1.0)])
    (age,) = evaluate(view, "acme", query(["unanswered_age"]), DEFAULTS, START).groups[0].totals
    assert age.value == 0.0


# --- aliases, versions, groups -------------------------------------------------------------------


def test_company_frt_reads_frt_business() -> None:
    view = view_of([Contribution("frt_business", at(1), (), 90.0)])
    result = run(view, query(["company_frt"]))
    assert result.groups[0].totals[0].kpi == "company_frt@1"
    assert result.groups[0].totals[0].count == 1
    replay = run(view, query(["company_frt"]), Definitions({"frt_business": 2}))
    assert replay.definitions == ["company_frt@2"]


def test_invalid_queries_are_refused_by_evaluate_too() -> None:
    with pytest.raises(InvalidArgument):
        run(view_of([]), query(["nope"]))


def tickets(rows: list[tuple[str, str, float]]) -> list[Contribution]:
    return [
        Contribution("frt_wall", at(1), make_dims({"channel": ch, "agent": agent}), value)
        for ch, agent, value in rows
    ]


def values_by_group(result: QueryResult) -> Mapping[str, float]:
    return {g.value: g.totals[0].sum for g in result.groups}


def test_group_values_are_discovered_from_the_cells_present() -> None:
    view = view_of(tickets([("email", "a1", 10.0), ("phone", "a2", 20.0), ("email", "a2", 5.0)]))
    result = run(view, query(["frt_wall"], group_by="agent"))
    assert values_by_group(result) == {"a1": 10.0, "a2": 25.0}
    assert [g.value for g in result.groups] == ["a1", "a2"]


def test_group_by_within_a_channel_and_channel_within_a_filter() -> None:
    view = view_of(tickets([("email", "a1", 10.0), ("phone", "a2", 20.0), ("email", "a2", 5.0)]))
    by_agent = run(view, query(["frt_wall"], filters={"channel": "email"}, group_by="agent"))
    assert values_by_group(by_agent) == {"a1": 10.0, "a2": 5.0}
    by_channel = run(view, query(["frt_wall"], filters={"agent": "a2"}, group_by="channel"))
    assert values_by_group(by_channel) == {"email": 5.0, "phone": 20.0}
    both = run(view, query(["frt_wall"], filters={"channel": "phone", "agent": "a2"}))
    assert values_by_group(both) == {"": 20.0}


def test_a_group_without_data_in_the_range_is_left_out() -> None:
    view = view_of(
        [
            Contribution("frt_wall", at(1), make_dims({"agent": "a1"}), 10.0),
            Contribution("frt_wall", at(24 * 20), make_dims({"agent": "a2"}), 10.0),
        ]
    )
    assert [g.value for g in run(view, query(["frt_wall"], group_by="agent")).groups] == ["a1"]


def test_without_group_by_there_is_always_one_group() -> None:
    (group,) = run(view_of([]), query(["frt_wall", "backlog"])).groups
    assert group.totals[0].value is None
    assert group.totals[1].value == 0.0


def test_a_filter_reads_its_cell() -> None:
    view = view_of(tickets([("email", "a1", 10.0), ("phone", "a2", 20.0)]))
    assert values_by_group(run(view, query(["frt_wall"], filters={"agent": "a1"}))) == {"": 10.0}
    assert cell_key({"agent": "a1"}) == "agent=a1"


def test_the_result_carries_the_namespace_watermark_and_version() -> None:
    view = view_of([Contribution("tickets_created", at(1), (), 1.0)])
    view.advance_watermark(at(2))
    result = run(view, query(["tickets_created"], namespace="replay-1"))
    assert result.namespace == "replay-1"
    assert result.watermark == START + timedelta(hours=2)
    assert result.version == view.version
