"""The cube: KPI aggregates per tenant, hour and dimension cell (pure: no I/O).

A contribution is added to every *cell* its dimensions belong to (docs/kpis.md, "Dimensions"):
the whole population (cell ``""``), each single dimension value (``"agent=a1"``) and each pair
of a slice dimension with another dimension (``"channel=email|agent=a1"``). A query can then
read any one filter, any group_by, or channel plus one other dimension, from a single cell.

* :class:`Cube` is the write side, one per consumer: contributions in, dirty aggregates out.
* :class:`CubeView` is the read side: the merged state of every partition's cube, with day
  rollups in the reporting time zone so long ranges merge days instead of hours.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime, time
from functools import lru_cache
from zoneinfo import ZoneInfo

from crm_metrics.domain.aggregate import AGGREGATE_OF_KPI, Aggregate, Prepared
from crm_metrics.domain.contribution import Contribution, Dims

SLICE_DIMENSIONS: tuple[str, ...] = ("channel",)
"""Dimensions that pair with every other dimension in a cell (the only two-dimension cells)."""

ALL_CELL = ""
"""The cell of the whole population."""

CellKey = tuple[str, str, int, str]
"""``(tenant, aggregate KPI name, hour since the epoch, cell)``: one aggregate."""

SeriesKey = tuple[str, str, str]
"""``(tenant, aggregate KPI name, cell)``: one aggregate per hour (or day)."""

RowKey = tuple[str, str, int]
"""``(tenant, aggregate KPI name, hour)``: every cell of one KPI in one hour."""

Signature = tuple[str, ...]
"""The dimension names of a cell, in cell order (``()`` for the whole population)."""

_PAIR_SEPARATOR = "|"
_VALUE_SEPARATOR = "="
_SLICE_RANK = {name: i for i, name in enumerate(SLICE_DIMENSIONS)}


def _escape(value: str) -> str:
    # Dimension values are free text (brands, agent ids): escape the separators so every cell
    # string parses back to exactly one set of pairs.
    if "%" in value or "|" in value or "=" in value:
        return value.replace("%", "%25").replace("|", "%7C").replace("=", "%3D")
    return value


def _unescape(value: str) -> str:
    if "%" in value:
        return value.replace("%7C", "|").replace("%3D", "=").replace("%25", "%")
    return value


def _order(name: str) -> tuple[int, str]:
    # Slice dimensions first (in SLICE_DIMENSIONS order), then the others by name.
    return (_SLICE_RANK.get(name, len(SLICE_DIMENSIONS)), name)


def cell_key(pairs: Mapping[str, str] | Iterable[tuple[str, str]]) -> str:
    """The canonical cell string of some dimension values (``""`` for none).

    Slice dimensions come first, so ``{"agent": "a1", "channel": "email"}`` is
    ``"channel=email|agent=a1"``.
    """
    items = pairs.items() if isinstance(pairs, Mapping) else pairs
    ordered = sorted(items, key=lambda item: _order(item[0]))
    return _PAIR_SEPARATOR.join(
        f"{name}{_VALUE_SEPARATOR}{_escape(value)}" for name, value in ordered
    )


@lru_cache(maxsize=65536)
def parse_cell(cell: str) -> tuple[tuple[str, str], ...]:
    """The ``(dimension, value)`` pairs of a cell string, in cell order."""
    if not cell:
        return ()
    pairs = []
    for part in cell.split(_PAIR_SEPARATOR):
        name, sep, value = part.partition(_VALUE_SEPARATOR)
        if not sep:
            raise ValueError(f"malformed cell {cell!r}")
        pairs.append((name, _unescape(value)))
    return tuple(pairs)


def cell_signature(cell: str) -> Signature:
    """The dimension names of a cell, in cell order."""
    return tuple(name for name, _ in parse_cell(cell))


def signature_of(dimensions: Iterable[str]) -> Signature:
    """The signature of a cell over ``dimensions`` (canonical order)."""
    return tuple(sorted(set(dimensions), key=_order))


def _expand(dims: Dims) -> tuple[str, ...]:
    cells = [ALL_CELL]
    for name, value in dims:
        cells.append(cell_key(((name, value),)))
    for name, value in dims:
        rank = _SLICE_RANK.get(name)
        if rank is None:
            continue
        for other, other_value in dims:
            if other == name:
                continue
            other_rank = _SLICE_RANK.get(other)
            if other_rank is not None and other_rank < rank:
                continue  # the pair of two slice dimensions is made once, by the first
            cells.append(cell_key(((name, value), (other, other_value))))
    return tuple(cells)


_EXPANSIONS: dict[Dims, tuple[str, ...]] = {}
_EXPANSIONS_MAX = 200_000


def expand_cells(dims: Dims) -> tuple[str, ...]:
    """Every cell a contribution with ``dims`` belongs to.

    The whole population, one cell per dimension value, and one per slice dimension x other
    dimension. Memoised: a ticket's ~15 contributions share their dimensions, and so do many
    tickets.
    """
    cells = _EXPANSIONS.get(dims)
    if cells is None:
        if len(_EXPANSIONS) >= _EXPANSIONS_MAX:
            _EXPANSIONS.clear()  # crude bound; recomputing is cheap, an unbounded cache is not
        cells = _EXPANSIONS[dims] = _expand(dims)
    return cells


def aggregate_class(kpi: str) -> type[Aggregate]:
    """The aggregate class of an aggregate KPI name (KeyError for unknown names)."""
    return AGGREGATE_OF_KPI[kpi]


# --- the write side ------------------------------------------------------------------------------


class Cube:
    """Aggregates of many tenants: ``(tenant, kpi, hour, cell) → aggregate``.

    Aggregates are created on first touch and deleted when they become empty, so retracting
    every contribution leaves the cube empty. Every touched key is recorded as dirty until
    :meth:`take_dirty` (the caller persists those).
    """

    __slots__ = ("_clock", "_day_hours", "_dirty", "_rows")

    def __init__(self, timezone: str = "UTC") -> None:
        # Rows group the cells of one contribution under one (tenant, kpi, hour) key, so a
        # contribution costs one tuple and then a plain string lookup per cell.
        self._rows: dict[RowKey, dict[str, Aggregate]] = {}
        self._dirty: dict[RowKey, set[str]] = {}
        # The whole population is kept per hour; dimension cells per local day of the reporting
        # time zone (keyed by the day's first hour). Per-hour dimension cells would be sparse
        # (an agent has a handful of tickets an hour) and cost tens of GB at a million tickets.
        self._clock = day_clock(timezone)
        self._day_hours: dict[int, int] = {}

    def day_hour(self, hour: int) -> int:
        """The first hour of ``hour``'s local day (where its dimension cells are kept)."""
        first = self._day_hours.get(hour)
        if first is None:
            clock = self._clock
            first = self._day_hours[hour] = clock.first_hour(clock.day(hour))
        return first

    def apply(self, tenant: str, contribution: Contribution, sign: int = 1) -> None:
        """Add (``sign`` +1) or retract (-1) a contribution in every cell it belongs to."""
        kpi = contribution.kpi
        cls = AGGREGATE_OF_KPI[kpi]
        prepared = cls.prepare(contribution.value)
        hour = contribution.at // 3600
        dims = contribution.dims
        cells = _EXPANSIONS.get(dims) or expand_cells(dims)
        self._add(tenant, kpi, hour, cells[:1], cls, prepared, sign)  # the whole population
        if len(cells) > 1:
            self._add(tenant, kpi, self.day_hour(hour), cells[1:], cls, prepared, sign)

    def _add(
        self,
        tenant: str,
        kpi: str,
        hour: int,
        cells: tuple[str, ...],
        cls: type[Aggregate],
        prepared: Prepared,
        sign: int,
    ) -> None:
        row_key = (tenant, kpi, hour)
        rows = self._rows
        row = rows.get(row_key)
        if row is None:
            row = rows[row_key] = {}
        get = row.get
        for cell in cells:
            agg = get(cell)
            if agg is None:
                agg = row[cell] = cls()
            if agg.add_prepared(prepared, sign):
                del row[cell]
        if not row:
            del rows[row_key]
        dirty = self._dirty.get(row_key)
        if dirty is None:
            self._dirty[row_key] = set(cells)
        else:
            dirty.update(cells)

    def apply_all(self, tenant: str, contributions: Iterable[Contribution], sign: int = 1) -> None:
        """:meth:`apply` each contribution."""
        apply = self.apply
        for contribution in contributions:
            apply(tenant, contribution, sign)

    def take_dirty(self) -> set[CellKey]:
        """The keys touched since the last call (their aggregate may now be absent)."""
        dirty = self._dirty
        self._dirty = {}
        return {(t, k, h, cell) for (t, k, h), cells in dirty.items() for cell in cells}

    @property
    def dirty_count(self) -> int:
        """How many keys :meth:`take_dirty` would return."""
        return sum(len(cells) for cells in self._dirty.values())

    def get(self, key: CellKey) -> Aggregate | None:
        """The aggregate at ``key``, or None."""
        tenant, kpi, hour, cell = key
        row = self._rows.get((tenant, kpi, hour))
        return None if row is None else row.get(cell)

    def replace(self, key: CellKey, aggregate: Aggregate | None, *, dirty: bool = False) -> None:
        """Set (or delete, with None or an empty aggregate) the aggregate at ``key``.

        For restoring stored state, so not dirty unless asked.
        """
        tenant, kpi, hour, cell = key
        row_key = (tenant, kpi, hour)
        if aggregate is not None and type(aggregate) is not AGGREGATE_OF_KPI[kpi]:
            raise TypeError(f"{kpi} needs a {AGGREGATE_OF_KPI[kpi].__name__} aggregate")
        row = self._rows.get(row_key)
        if aggregate is None or aggregate.is_empty():
            if row is not None:
                row.pop(cell, None)
                if not row:
                    del self._rows[row_key]
        else:
            if row is None:
                row = self._rows[row_key] = {}
            row[cell] = aggregate
        if dirty:
            self._dirty.setdefault(row_key, set()).add(cell)

    def __len__(self) -> int:
        return sum(len(row) for row in self._rows.values())

    def __bool__(self) -> bool:
        return bool(self._rows)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, tuple) or len(key) != 4:
            return False
        row = self._rows.get(key[:3])
        return row is not None and key[3] in row

    def __iter__(self) -> Iterator[CellKey]:
        return self.keys()

    def keys(self) -> Iterator[CellKey]:
        """Every key holding an aggregate."""
        for (tenant, kpi, hour), row in self._rows.items():
            for cell in row:
                yield tenant, kpi, hour, cell

    def items(self) -> Iterator[tuple[CellKey, Aggregate]]:
        """Every ``(key, aggregate)``."""
        for (tenant, kpi, hour), row in self._rows.items():
            for cell, agg in row.items():
                yield (tenant, kpi, hour, cell), agg

    def row(self, tenant: str, kpi: str, hour: int) -> Mapping[str, Aggregate]:
        """Every cell of one KPI in one hour (read-only view; empty when none)."""
        return self._rows.get((tenant, kpi, hour), {})

    def tenants(self) -> set[str]:
        """Tenants with at least one aggregate."""
        return {tenant for tenant, _, _ in self._rows}

    def clear(self) -> None:
        """Forget every aggregate and dirty key."""
        self._rows.clear()
        self._dirty.clear()


# --- local days ----------------------------------------------------------------------------------


class DayClock:
    """Maps UTC hours to local days of a time zone (docs/kpis.md, "Time").

    The day of an hour is the local date of the hour's start instant, so a day is made of whole
    UTC hours: exact for whole-hour offsets, the edge rounded to the hour otherwise. Days are
    proleptic Gregorian ordinals (``date.toordinal()``).
    """

    __slots__ = ("_days", "_first", "name", "zone")

    def __init__(self, name: str) -> None:
        self.name = name
        self.zone = ZoneInfo(name)
        # Both caches stay small: one entry per hour (day) ever asked about, ~9k per year.
        self._days: dict[int, int] = {}
        self._first: dict[int, int] = {}

    def day(self, hour: int) -> int:
        """The local day (ordinal) of ``hour``."""
        day = self._days.get(hour)
        if day is None:
            day = self._days[hour] = datetime.fromtimestamp(hour * 3600, self.zone).toordinal()
        return day

    def first_hour(self, day: int) -> int:
        """The first hour whose day is ``day`` or later (the day's start when the day exists)."""
        hour = self._first.get(day)
        if hour is None:
            midnight = datetime.combine(date.fromordinal(day), time(), tzinfo=self.zone)
            hour = math.ceil(midnight.timestamp() / 3600)
            # Midnight may fall in a DST gap or a 30-minute offset: settle on the exact rule.
            while self.day(hour - 1) >= day:
                hour -= 1
            while self.day(hour) < day:
                hour += 1
            self._first[day] = hour
        return hour


@lru_cache(maxsize=1024)
def day_clock(timezone: str) -> DayClock:
    """The shared :class:`DayClock` of a time zone (ZoneInfoNotFoundError if unknown)."""
    return DayClock(timezone)


# --- the read side -------------------------------------------------------------------------------


HOUR_LEVEL = 0
"""Rollup level of hour aggregates."""

DAY_LEVEL = 1
"""Rollup level of local-day aggregates."""

ROLLUP_DAYS: tuple[int, ...] = (1, 8, 64)
"""Days per rollup at levels 1, 2, ...: local days, then aligned blocks of 8^k days (block index
= day ordinal // size). A range's total merges a handful of blocks instead of one aggregate per
day: a sketch's bins saturate, so merging fewer, larger rollups is what keeps queries cheap."""

LEVELS = 1 + len(ROLLUP_DAYS)
"""Number of rollup levels, hours included."""


class CubeView:
    """The merged state of every partition's cube, for queries.

    Partitions report their aggregates as ``(partition, key, aggregate or None)``; the view keeps
    each partition's latest value and the merged aggregate per key (the sum over partitions,
    updated by merging ``new - old``), the same per local day of the reporting
    time zone (day rollups) and per block of days (:data:`ROLLUP_DAYS`), an index of the cells
    present, a :attr:`version` bumped on every change and the :attr:`watermark` (newest event
    time reported).

    Rollups are settled lazily: an update merges into the hour only and notes the hour as stale;
    :meth:`levels` recomputes the stale days and blocks of a series from their children before
    it answers. A cell changed many times between two queries (a replay, a backlog) costs one
    merge per change and one recomputation per query, instead of a merge per level per change.

    The view owns the aggregates it is given: the caller must not mutate them afterwards
    (:meth:`sync_from_cube` copies).
    """

    __slots__ = ("_cells", "_clock", "_parts", "_series", "_stale", "version", "watermark")

    def __init__(self, timezone: str = "UTC") -> None:
        self._clock = day_clock(timezone)
        self._parts: dict[int, dict[CellKey, Aggregate]] = {}
        # Per series, one table per level: hour -> aggregate, day -> rollup, block -> rollup.
        self._series: dict[SeriesKey, tuple[dict[int, Aggregate], ...]] = {}
        self._cells: dict[tuple[str, str], dict[Signature, set[str]]] = {}
        # Per series, the hours changed since its rollups were last settled.
        self._stale: dict[SeriesKey, set[int]] = {}
        self.version = 0
        self.watermark: int | None = None

    @property
    def timezone(self) -> str:
        """The reporting time zone of the day rollups."""
        return self._clock.name

    @property
    def clock(self) -> DayClock:
        """The day clock of the reporting time zone."""
        return self._clock

    def update(
        self,
        partition: int,
        key: CellKey,
        aggregate: Aggregate | None,
        event_time: int | None = None,
    ) -> None:
        """Partition ``partition``'s aggregate at ``key`` is now ``aggregate`` (None: gone).

        ``event_time`` (epoch seconds), when given, advances the watermark.
        """
        if event_time is not None:
            self.advance_watermark(event_time)
        tenant, kpi, hour, cell = key
        cls = AGGREGATE_OF_KPI[kpi]
        if aggregate is not None:
            if type(aggregate) is not cls:
                raise TypeError(f"{kpi} needs a {cls.__name__} aggregate")
            if aggregate.is_empty():
                aggregate = None
        part = self._parts.get(partition)
        if part is None:
            part = self._parts[partition] = {}
        old = part.get(key)
        if aggregate is not None and aggregate is old:
            # The view keeps `old` to subtract it later; a mutated `old` would corrupt the sums.
            raise ValueError("report a new aggregate (a copy), not the one reported before")
        if aggregate is None:
            if old is None:
                return
            del part[key]
            delta, sign = old, -1
        elif old is None:
            part[key] = aggregate
            delta, sign = aggregate, 1
        else:
            part[key] = aggregate
            # One partition's report usually differs from its previous one by a contribution or
            # two: subtract once here, then every level merges a delta of a bin or two.
            delta, sign = aggregate.copy(), 1
            delta.merge(old, -1)
        series_key = (tenant, kpi, cell)
        tables = self._series.get(series_key)
        if tables is None:
            tables = self._series[series_key] = tuple({} for _ in range(LEVELS))
            self._index(tenant, kpi, cell, add=True)
        hours = tables[HOUR_LEVEL]
        merged = hours.get(hour)
        if merged is None:
            merged = hours[hour] = cls()
        merged.merge(delta, sign)
        if merged.is_empty():
            del hours[hour]
        if hours:
            stale = self._stale.get(series_key)
            if stale is None:
                self._stale[series_key] = {hour}
            else:
                stale.add(hour)
        else:  # rollups are sums of hours: no hours left means nothing left at any level
            del self._series[series_key]
            self._stale.pop(series_key, None)
            self._index(tenant, kpi, cell, add=False)
        self.version += 1

    def advance_watermark(self, event_time: int) -> None:
        """Record that events up to ``event_time`` (epoch seconds) are reflected."""
        if self.watermark is None or event_time > self.watermark:
            self.watermark = event_time
            self.version += 1

    def sync_from_cube(self, partition: int, cube: Cube, keys: Iterable[CellKey]) -> None:
        """Copy ``cube``'s aggregates at ``keys`` (e.g. its dirty keys) as ``partition``'s."""
        for key in keys:
            agg = cube.get(key)
            self.update(partition, key, None if agg is None else agg.copy())

    def clear_partition(self, partition: int) -> None:
        """Withdraw everything ``partition`` reported (e.g. its state is being reloaded)."""
        for key in list(self._parts.get(partition, {})):
            self.update(partition, key, None)
        self._parts.pop(partition, None)

    def _index(self, tenant: str, kpi: str, cell: str, *, add: bool) -> None:
        by_signature = self._cells.setdefault((tenant, kpi), {})
        signature = cell_signature(cell)
        if add:
            by_signature.setdefault(signature, set()).add(cell)
            return
        cells = by_signature.get(signature)
        if cells is not None:
            cells.discard(cell)
            if not cells:
                del by_signature[signature]
        if not by_signature:
            del self._cells[(tenant, kpi)]

    # --- reads -----------------------------------------------------------------------------------

    def get(self, key: CellKey) -> Aggregate | None:
        """The merged aggregate at ``key``, or None."""
        tenant, kpi, hour, cell = key
        tables = self._series.get((tenant, kpi, cell))
        return None if tables is None else tables[HOUR_LEVEL].get(hour)

    def partition_keys(self, partition: int) -> set[CellKey]:
        """Every key ``partition`` holds a value at."""
        return set(self._parts.get(partition, ()))

    def partition_value(self, partition: int, key: CellKey) -> Aggregate | None:
        """What ``partition`` last reported at ``key``."""
        return self._parts.get(partition, {}).get(key)

    def levels(self, tenant: str, kpi: str, cell: str) -> Sequence[Mapping[int, Aggregate]]:
        """One series' tables by level (:data:`HOUR_LEVEL`, :data:`DAY_LEVEL`, blocks).

        Read-only; empty tables when the series holds nothing.
        """
        series_key = (tenant, kpi, cell)
        tables = self._series.get(series_key)
        if tables is None:
            return _EMPTY_LEVELS
        stale = self._stale.pop(series_key, None)
        if stale:
            self._settle(tables, stale)
        return tables

    def _settle(self, tables: tuple[dict[int, Aggregate], ...], hours: set[int]) -> None:
        """Recompute the rollups covering ``hours`` from their children (exact sums)."""
        clock = self._clock
        cls: type[Aggregate] | None = None
        slots = {clock.day(hour) for hour in hours}
        for level in range(DAY_LEVEL, LEVELS):
            table, below = tables[level], tables[level - 1]
            for slot in slots:
                if level == DAY_LEVEL:
                    children: Iterable[int] = range(
                        clock.first_hour(slot), clock.first_hour(slot + 1)
                    )
                else:
                    fanout = ROLLUP_DAYS[level - DAY_LEVEL] // ROLLUP_DAYS[level - DAY_LEVEL - 1]
                    children = range(slot * fanout, (slot + 1) * fanout)
                total: Aggregate | None = None
                for child in children:
                    value = below.get(child)
                    if value is not None:
                        if total is None:
                            cls = cls or type(value)
                            total = cls()
                        total.merge(value)
                if total is None or total.is_empty():
                    table.pop(slot, None)
                else:
                    table[slot] = total
            if level + 1 < LEVELS:
                fanout = ROLLUP_DAYS[level + 1 - DAY_LEVEL] // ROLLUP_DAYS[level - DAY_LEVEL]
                slots = {slot // fanout for slot in slots}

    def hour_series(self, tenant: str, kpi: str, cell: str) -> Mapping[int, Aggregate]:
        """The merged aggregates of one series by hour (read-only; empty when none)."""
        return self.levels(tenant, kpi, cell)[HOUR_LEVEL]

    def day_series(self, tenant: str, kpi: str, cell: str) -> Mapping[int, Aggregate]:
        """The day rollups of one series by local day ordinal (read-only; empty when none)."""
        return self.levels(tenant, kpi, cell)[DAY_LEVEL]

    def cells(self, tenant: str, kpi: str, signature: Signature | None = None) -> set[str]:
        """The cells of ``kpi`` holding data, all or only those of one signature."""
        by_signature = self._cells.get((tenant, kpi), {})
        if signature is not None:
            return set(by_signature.get(signature, ()))
        return {cell for cells in by_signature.values() for cell in cells}

    def __iter__(self) -> Iterator[CellKey]:
        return self.keys()

    def tenants(self) -> set[str]:
        """Tenants with at least one aggregate."""
        return {tenant for tenant, _ in self._cells}

    def keys(self) -> Iterator[CellKey]:
        """Every key holding a merged aggregate."""
        for (tenant, kpi, cell), tables in self._series.items():
            for hour in tables[HOUR_LEVEL]:
                yield tenant, kpi, hour, cell

    def __len__(self) -> int:
        return sum(len(tables[HOUR_LEVEL]) for tables in self._series.values())


_EMPTY_LEVELS: tuple[Mapping[int, Aggregate], ...] = tuple({} for _ in range(LEVELS))
