"""KPI queries: validation and evaluation over a :class:`~crm_metrics.domain.cube.CubeView`.

Pure: the gRPC layer turns a ``GetKpisRequest`` into a :class:`KpiQuery`, calls
:func:`validate` (field paths match the request's fields) and :func:`evaluate`, and turns the
:class:`QueryResult` back into a response.

Time (docs/kpis.md, "Time"): the range ``[start, end)`` is widened to whole UTC hours (an hour
partly inside the range counts whole). Hour buckets are UTC hours; day buckets are the local days
of the query's time zone made of whole hours, clipped to the range; totals cover every hour of
the range.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from crm_metrics.domain.aggregate import (
    QUANTILES,
    Aggregate,
    Count,
    KpiResult,
    Level,
    empty_result,
    kpi_result,
    level_result,
)
from crm_metrics.domain.catalog import (
    CATALOG,
    DIMENSIONS,
    Definitions,
    Kind,
    KpiSpec,
    aggregate_name,
)
from crm_metrics.domain.cube import (
    DAY_LEVEL,
    HOUR_LEVEL,
    LEVELS,
    ROLLUP_DAYS,
    SLICE_DIMENSIONS,
    CubeView,
    DayClock,
    aggregate_class,
    cell_key,
    day_clock,
    parse_cell,
    signature_of,
)
from crm_platform.errors import FieldViolation, InvalidArgument

GRANULARITIES: tuple[str, ...] = ("hour", "day", "total")
"""Bucket sizes: one bucket per UTC hour, per local day, or totals only."""

MAX_HOUR_SPAN = timedelta(days=31)
"""The longest hour series."""

MAX_DAY_SPAN = timedelta(days=3 * 365 + 1)
"""The longest day series: three years (one of them may be a leap year)."""

AGE_KPIS: frozenset[str] = frozenset({"backlog_age", "unanswered_age"})
"""KPIs fed as +1 at the open ticket's creation hour and reported as the age distribution of
those tickets *now* (totals only, whatever the range)."""

_NAMESPACE = re.compile(r"^[a-z0-9_-]{0,64}$")
_SLICES = frozenset(SLICE_DIMENSIONS)

Term = tuple[int, int, int]
"""Part of a bucket: ``(rollup level, slot, sign)``: add (+1) or subtract (-1) the aggregate of
hour / day / block ``slot`` at that level of the view (see ``cube.ROLLUP_DAYS``)."""


@dataclass(frozen=True, slots=True)
class KpiQuery:
    """A KPI query (mirrors ``crm.metrics.v1.GetKpisRequest``).

    ``kpis`` are catalogue names, optionally ``name@version``; ``start``/``end`` are aware
    datetimes (end exclusive); ``granularity`` is ``"hour"``, ``"day"`` or ``"total"``;
    ``filters`` maps dimension → value; ``timezone`` empty means the view's reporting zone.
    """

    kpis: Sequence[str]
    start: datetime
    end: datetime
    granularity: str = "day"
    filters: Mapping[str, str] = field(default_factory=dict)
    group_by: str | None = None
    timezone: str = ""
    namespace: str = ""


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    """One bucket of a series: its start and one value per KPI (in query order)."""

    bucket_start: datetime
    values: list[KpiResult]


@dataclass(frozen=True, slots=True)
class KpiGroup:
    """One value of ``group_by`` (``""`` without it): its series and its totals."""

    value: str
    points: list[SeriesPoint]
    totals: list[KpiResult]


@dataclass(frozen=True, slots=True)
class QueryResult:
    """The answer to a :class:`KpiQuery` (mirrors ``crm.metrics.v1.GetKpisResponse``)."""

    groups: list[KpiGroup]
    definitions: list[str]
    namespace: str
    timezone: str
    watermark: datetime | None
    version: int


# --- validation ----------------------------------------------------------------------------------


def _zone_exists(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # OSError: a directory of the zone database ("America") is not a zone.
        return False
    return True


def _check_kpis(
    query: KpiQuery, definitions: Definitions
) -> tuple[list[KpiSpec], list[FieldViolation]]:
    specs: list[KpiSpec] = []
    violations: list[FieldViolation] = []
    if not query.kpis:
        violations.append(FieldViolation("kpis", "name at least one KPI"))
    seen: set[str] = set()
    for i, item in enumerate(query.kpis):
        path = f"kpis[{i}]"
        name, at, raw = item.partition("@")
        spec = CATALOG.get(name)
        if spec is None:
            violations.append(FieldViolation(path, f"unknown KPI {name!r} (see ListKpis)"))
            continue
        if name in seen:
            violations.append(FieldViolation(path, f"{name} is named more than once"))
            continue
        seen.add(name)
        specs.append(spec)
        if not at:
            continue
        if not raw.isdigit() or int(raw) not in spec.versions:
            known = ", ".join(str(v) for v in spec.versions)
            violations.append(FieldViolation(path, f"{name} has no version {raw!r} (has {known})"))
            continue
        in_force = definitions.version(aggregate_name(name))
        if int(raw) != in_force:
            violations.append(
                FieldViolation(
                    path,
                    f"this namespace computes {name}@{in_force}, not @{raw} (replay the version "
                    "into a namespace of its own to compare)",
                )
            )
    return specs, violations


EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
"""Queries lie within these instants: event times are Unix times, and the calendar arithmetic of
day buckets needs room on both sides of the range (year 1 and year 9999 have none)."""


def _check_time(query: KpiQuery) -> list[FieldViolation]:
    violations: list[FieldViolation] = []
    if query.granularity not in GRANULARITIES:
        violations.append(
            FieldViolation("granularity", f"must be one of {', '.join(GRANULARITIES)}")
        )
    aware = True
    for path, instant in (("start_time", query.start), ("end_time", query.end)):
        if instant.tzinfo is None or instant.utcoffset() is None:
            violations.append(FieldViolation(path, "must be an instant (time zone aware)"))
            aware = False
        elif not EARLIEST <= instant <= LATEST:
            violations.append(FieldViolation(path, "must lie between 1970-01-01 and 9000-01-01"))
            aware = False
    if aware:
        span = query.end - query.start
        if span <= timedelta(0):
            violations.append(FieldViolation("end_time", "must be after start_time"))
        elif query.granularity == "hour" and span > MAX_HOUR_SPAN:
            violations.append(
                FieldViolation("end_time", "an hour series spans at most 31 days; use day")
            )
        elif query.granularity == "day" and span > MAX_DAY_SPAN:
            violations.append(FieldViolation("end_time", "a day series spans at most 3 years"))
    if query.timezone and not _zone_exists(query.timezone):
        violations.append(
            FieldViolation("timezone", f"unknown time zone {query.timezone!r} (IANA names)")
        )
    if not _NAMESPACE.match(query.namespace):
        violations.append(FieldViolation("namespace", "at most 64 of a-z, 0-9, '_' and '-'"))
    return violations


def _check_dimension(path: str, name: str, specs: Sequence[KpiSpec]) -> FieldViolation | None:
    if name not in DIMENSIONS:
        return FieldViolation(
            path, f"unknown dimension {name!r} (dimensions: {', '.join(DIMENSIONS)})"
        )
    missing = [spec.name for spec in specs if name not in spec.dimensions]
    if missing:
        return FieldViolation(path, f"{', '.join(missing)} cannot be broken down by {name}")
    return None


def _check_dimensions(query: KpiQuery, specs: Sequence[KpiSpec]) -> list[FieldViolation]:
    violations: list[FieldViolation] = []
    known = True
    for name, value in query.filters.items():
        path = f"filters[{name}]"
        problem = _check_dimension(path, name, specs)
        if problem is not None:
            violations.append(problem)
            known = known and name in DIMENSIONS
        if not value:
            violations.append(FieldViolation(path, "needs a value"))
    group = query.group_by or None
    if group is not None:
        problem = _check_dimension("group_by", group, specs)
        if problem is not None:
            violations.append(problem)
            known = known and group in DIMENSIONS
    if not known:
        return violations
    used = set(query.filters) | ({group} if group else set())
    if used and query.granularity == "hour":
        violations.append(
            FieldViolation(
                "granularity",
                "hour series are kept for the whole population only; filter or group by a "
                "dimension with day or total granularity",
            )
        )
    # Cells exist for one dimension, or a slice dimension (channel) with one other.
    if len(used) > 2 or (len(used) == 2 and not used & _SLICES):
        why = (
            f"cannot combine {', '.join(sorted(used))}: filter or group by one dimension, or by "
            f"{' / '.join(SLICE_DIMENSIONS)} and one other"
        )
        fields = [f"filters[{name}]" for name in query.filters if name not in _SLICES]
        if group is not None and group not in _SLICES:
            fields.append("group_by")
        violations.extend(FieldViolation(path, why) for path in fields)
    return violations


def validate(query: KpiQuery, definitions: Definitions) -> None:
    """Check a query; raise :class:`InvalidArgument` with one violation per problem.

    ``definitions`` are the namespace's definition versions: naming another version of a KPI
    is refused (history is never silently recomputed).
    """
    specs, violations = _check_kpis(query, definitions)
    violations += _check_time(query)
    violations += _check_dimensions(query, specs)
    if violations:
        raise InvalidArgument(violations)


# --- evaluation ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Plan:
    """Which terms make each bucket and the totals."""

    first_hour: int
    starts: list[datetime]
    buckets: list[list[Term]]
    totals: list[Term]


def _hour_start(hour: int) -> datetime:
    return datetime.fromtimestamp(hour * 3600, UTC)


def _day_runs(clock: DayClock, first: int, end: int) -> list[tuple[int, int, int, bool]]:
    """``(day, first hour, end hour, whole day?)`` for each local day of ``[first, end)``."""
    runs = []
    hour = first
    while hour < end:
        day = clock.day(hour)
        following = clock.first_hour(day + 1)
        stop = min(following, end)
        runs.append((day, hour, stop, hour == clock.first_hour(day) and stop == following))
        hour = stop
    return runs


def _whole_days(first: int, end: int) -> list[Term]:
    """Days ``[first, end)`` as the fewest aligned rollups (largest blocks in the middle)."""
    terms: list[Term] = []
    day = first
    while day < end:
        for level in range(LEVELS - 1, DAY_LEVEL - 1, -1):
            size = ROLLUP_DAYS[level - DAY_LEVEL]
            if day % size == 0 and day + size <= end:
                terms.append((level, day // size, 1))
                day += size
                break
    return terms


def _part_of_day(clock: DayClock, day: int, first: int, end: int) -> list[Term]:
    """Hours ``[first, end)`` of ``day``: those hours, or the day minus the others if fewer."""
    day_first, day_end = clock.first_hour(day), clock.first_hour(day + 1)
    inside = end - first
    outside = (day_end - day_first) - inside
    if outside + 1 >= inside:
        return [(HOUR_LEVEL, h, 1) for h in range(first, end)]
    # Retraction is exact (integer state), so "day minus hours" is the same as "merge hours".
    return [
        (DAY_LEVEL, day, 1),
        *((HOUR_LEVEL, h, -1) for h in range(day_first, first)),
        *((HOUR_LEVEL, h, -1) for h in range(end, day_end)),
    ]


def _cover(clock: DayClock, first: int, end: int) -> list[Term]:
    """Terms whose signed sum is exactly the hours ``[first, end)``, read from few rollups.

    Largest rollups first, so the first merge (a plain copy) does the most work.
    """
    runs = _day_runs(clock, first, end)
    terms: list[Term] = []
    whole = [day for day, _, _, is_whole in runs if is_whole]
    if whole:
        # Only the first and last runs can be partial: the whole days are contiguous.
        terms += _whole_days(whole[0], whole[-1] + 1)
    for day, a, b, is_whole in runs:
        if not is_whole:
            terms += _part_of_day(clock, day, a, b)
    terms.sort(key=lambda term: -term[0])
    return terms


def _plan(view: CubeView, query: KpiQuery, timezone: str) -> _Plan:
    first = math.floor(query.start.timestamp() / 3600)
    end = math.ceil(query.end.timestamp() / 3600)
    clock = view.clock
    # Totals do not depend on the query's zone: always read the view's rollups.
    totals = _cover(clock, first, end)
    starts: list[datetime] = []
    buckets: list[list[Term]] = []
    if query.granularity == "hour":
        for hour in range(first, end):
            starts.append(_hour_start(hour))
            buckets.append([(HOUR_LEVEL, hour, 1)])
    elif query.granularity == "day":
        local = day_clock(timezone)
        for day, a, b, whole in _day_runs(local, first, end):
            starts.append(_hour_start(local.first_hour(day)))
            if local is clock:
                buckets.append([(DAY_LEVEL, day, 1)] if whole else _part_of_day(clock, day, a, b))
            else:
                # Another zone's day: the view's day rollups it overlaps, plus or minus hours.
                buckets.append(_cover(clock, a, b))
    return _Plan(first, starts, buckets, totals)


def _gather(
    terms: Sequence[Term], tables: Sequence[Mapping[int, Aggregate]], cls: type[Aggregate]
) -> Aggregate | None:
    """The signed merge of the aggregates of ``terms`` (None when nothing is left).

    A single aggregate is returned as is (read only), so reading one rollup costs no copy.
    """
    found: Aggregate | None = None
    merged: Aggregate | None = None
    for level, slot, sign in terms:
        agg = tables[level].get(slot)
        if agg is None:
            continue
        if merged is None:
            if found is None and sign == 1:
                found = agg
                continue
            merged = cls()
            if found is not None:
                merged.merge(found)
        merged.merge(agg, sign)
    if merged is not None:
        return None if merged.is_empty() else merged
    return found


def _level_sum(terms: Sequence[Term], tables: Sequence[Mapping[int, Aggregate]]) -> int:
    total = 0
    for level, slot, sign in terms:
        agg = tables[level].get(slot)
        if isinstance(agg, Level):
            total += sign * agg.delta
    return total


def _level_before(clock: DayClock, hour: int, tables: Sequence[Mapping[int, Aggregate]]) -> int:
    """The level at the start of ``hour``: every change before it, however old."""
    day = clock.day(hour)
    # Days before the hour's day hold only earlier hours (days are monotonic in hours).
    days = tables[DAY_LEVEL]
    level = sum(agg.delta for d, agg in days.items() if d < day and isinstance(agg, Level))
    return level + _level_sum(_part_of_day(clock, day, clock.first_hour(day), hour), tables)


def _age_result(spec: KpiSpec, label: str, hours: Mapping[int, Aggregate], now: float) -> KpiResult:
    """The ages (now - creation hour start) of the open tickets counted in ``hours``.

    Exact at one-hour resolution; quantiles follow the sketches' rank rule.
    """
    ages: list[tuple[float, int]] = []
    for hour, agg in hours.items():
        if isinstance(agg, Count) and agg.count > 0:
            ages.append((max(0.0, now - hour * 3600), agg.count))
    n = sum(c for _, c in ages)
    if n <= 0:
        return empty_result(spec, label)
    ages.sort()
    total = sum(age * c for age, c in ages)
    targets = [int(q * (n - 1)) for q in QUANTILES]
    quantiles: list[float] = []
    seen = 0
    it = iter(ages)
    age = 0.0
    for target in targets:  # ascending, as QUANTILES is
        while seen <= target:
            age, c = next(it)
            seen += c
        quantiles.append(age)
    p50, p90, p99 = quantiles
    return KpiResult(
        label,
        spec.kind,
        value=p50,
        count=n,
        mean=total / n,
        p50=p50,
        p90=p90,
        p99=p99,
        sum=total,
        unit=spec.unit,
    )


def _evaluate_cell(
    view: CubeView,
    tenant: str,
    cell: str,
    kpis: Sequence[tuple[KpiSpec, str, str]],
    plan: _Plan,
    now: float,
) -> KpiGroup:
    """Series and totals of every KPI in one cell (the group's value is filled in by the caller)."""
    columns: list[list[KpiResult]] = []
    totals: list[KpiResult] = []
    for spec, label, name in kpis:
        tables = view.levels(tenant, name, cell)
        hours = tables[HOUR_LEVEL]
        if spec.name in AGE_KPIS:
            totals.append(_age_result(spec, label, hours, now))
            continue  # they describe now: no series
        if spec.kind is Kind.LEVEL:
            level = _level_before(view.clock, plan.first_hour, tables) if hours else 0
            column = []
            for terms in plan.buckets:
                level += _level_sum(terms, tables) if hours else 0
                column.append(level_result(spec, label, level))
            if plan.buckets:
                totals.append(column[-1])
            else:
                level += _level_sum(plan.totals, tables) if hours else 0
                totals.append(level_result(spec, label, level))
            columns.append(column)
            continue
        if not hours:
            empty = empty_result(spec, label)
            columns.append([empty] * len(plan.buckets))
            totals.append(empty)
            continue
        cls = aggregate_class(name)
        columns.append(
            [kpi_result(spec, _gather(terms, tables, cls), label) for terms in plan.buckets]
        )
        totals.append(kpi_result(spec, _gather(plan.totals, tables, cls), label))
    points = []
    for b, start in enumerate(plan.starts):
        values = [column[b] for column in columns]
        if any(v.value is not None for v in values):
            points.append(SeriesPoint(start, values))
    return KpiGroup("", points, totals)


def _group_cells(
    view: CubeView, tenant: str, query: KpiQuery, names: Sequence[str]
) -> list[tuple[str, str]]:
    """``(group value, cell)`` of each group; values are discovered from the cells present."""
    filters = dict(query.filters)
    group = query.group_by or None
    if group is None:
        return [("", cell_key(filters))]
    if group in filters:
        return [(filters[group], cell_key(filters))]
    signature = signature_of([*filters, group])
    values: set[str] = set()
    for name in set(names):
        for cell in view.cells(tenant, name, signature):
            pairs = dict(parse_cell(cell))
            if all(pairs.get(k) == v for k, v in filters.items()):
                values.add(pairs[group])
    return [(value, cell_key({**filters, group: value})) for value in sorted(values)]


def _widen_to_days(view: CubeView, query: KpiQuery) -> KpiQuery:
    """Dimension cells are kept per local day of the reporting zone: a query that filters or
    groups by a dimension reads whole days of that zone (its range is widened to them)."""
    if query.timezone and query.timezone != view.timezone:
        raise InvalidArgument.single(
            "timezone",
            f"filters and group_by read days of the reporting time zone ({view.timezone}); "
            "leave timezone empty or use it",
        )
    clock = view.clock
    first = clock.first_hour(clock.day(math.floor(query.start.timestamp() / 3600)))
    last = math.ceil(query.end.timestamp() / 3600) - 1
    end = clock.first_hour(clock.day(last) + 1)
    return replace(query, start=_hour_start(first), end=_hour_start(end))


def evaluate(
    view: CubeView,
    tenant: str,
    query: KpiQuery,
    definitions: Definitions,
    now: datetime,
) -> QueryResult:
    """Answer ``query`` for ``tenant`` from ``view`` (validates it first).

    * Hour buckets read hour aggregates; day buckets read the view's day rollups when the query's
      zone is the view's reporting zone; otherwise (and for days clipped by the range) a day is
      its hours, or an overlapping rollup minus the hours outside when that is fewer merges
      (exact: the state is integers). Totals merge the fewest day / block rollups covering the
      whole days, plus the edge hours.
    * LEVEL KPIs: each bucket's value is the level at its end (every change before it, also
      before the range); the total is the level at the range's end.
    * ``backlog_age``/``unanswered_age``: totals only, the ages of the tickets open at ``now``.
    * A group is returned when it has data in the range (without group_by: always).
    """
    validate(query, definitions)
    if query.filters or query.group_by:
        query = _widen_to_days(view, query)
    names = [item.partition("@")[0] for item in query.kpis]
    kpis = [(CATALOG[n], definitions.label(n), aggregate_name(n)) for n in names]
    timezone = query.timezone or view.timezone
    plan = _plan(view, query, timezone)
    now_s = now.timestamp()
    grouped = bool(query.group_by) and query.group_by not in query.filters
    groups: list[KpiGroup] = []
    for value, cell in _group_cells(view, tenant, query, [name for _, _, name in kpis]):
        result = _evaluate_cell(view, tenant, cell, kpis, plan, now_s)
        if grouped and not any(total.count for total in result.totals):
            continue
        groups.append(KpiGroup(value, result.points, result.totals))
    watermark = view.watermark
    return QueryResult(
        groups=groups,
        definitions=[label for _, label, _ in kpis],
        namespace=query.namespace,
        timezone=timezone,
        watermark=None if watermark is None else datetime.fromtimestamp(watermark, UTC),
        version=view.version,
    )
