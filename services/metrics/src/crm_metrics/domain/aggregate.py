"""Mergeable, retractable aggregates of KPI contributions (pure: no I/O).

One aggregate holds the contributions of one KPI in one hour and one dimension cell (see
:mod:`crm_metrics.domain.cube`). Every aggregate supports

* ``add(value, sign)``: add (+1) or retract (-1) one contribution;
* ``merge(other, sign)``: add (+1) or subtract (-1) a whole aggregate (partitions, rollups);
* ``is_empty()``: nothing left (every contribution retracted);
* ``to_doc()`` / ``from_doc()``: a compact, BSON-friendly document (string keys, ints, lists).

All state is integers. Float sums drift when the same numbers are added and subtracted in a
different order, which would make "retract everything" leave a residue and make the state depend
on the order events arrived in. So sums are kept in fixed-point units (milliseconds, milli-units,
micro-polarity) and quantiles in a sketch with integer bin counts. Counts may go negative
transiently (a retraction applied before its addition); they come back to zero exactly.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from ddsketch.mapping import LogarithmicMapping

from crm_metrics.domain.catalog import CATALOG, Kind, KpiSpec

RELATIVE_ACCURACY = 0.01
"""The sketch's relative accuracy (docs/kpis.md: 1 %)."""

MAPPING = LogarithmicMapping(relative_accuracy=RELATIVE_ACCURACY)
"""The one key <-> value mapping every sketch uses: sketches are only mergeable bin by bin when
they share it, and building a mapping per sketch would cost time and memory on the hot path."""

_MIN_INDEXABLE: float = MAPPING.min_possible
_key_of: Callable[[float], int] = MAPPING.key
_value_of: Callable[[int], float] = MAPPING.value

QUANTILES: tuple[float, float, float] = (0.5, 0.9, 0.99)
"""The quantiles a distribution reports (p50, p90, p99)."""

SENTIMENT_THRESHOLD = 0.05
"""Polarity above +0.05 is positive, below -0.05 negative, otherwise neutral (KPIS.md)."""

Doc = dict[str, Any]
"""A stored aggregate document: string keys; ints, floats and lists of ints as values."""

Prepared = tuple[int, int, int]
"""A contribution's value pre-digested for its aggregate kind (see ``Aggregate.prepare``)."""

_SIDE_NEGATIVE = -1
_SIDE_ZERO = 0
_SIDE_POSITIVE = 1


def _bins_doc(bins: Mapping[int, int]) -> tuple[list[int], list[int]]:
    """A bin dict as two parallel lists, sorted by key (so equal states give equal documents)."""
    keys = sorted(bins)
    return keys, [bins[k] for k in keys]


def _bins_from(keys: Sequence[int], counts: Sequence[int]) -> dict[int, int]:
    if len(keys) != len(counts):
        raise ValueError("bin keys and counts differ in length")
    return {int(k): int(c) for k, c in zip(keys, counts, strict=True) if c}


def _merge_bins(into: dict[int, int], other: Mapping[int, int], sign: int) -> None:
    """``into += sign * other``, deleting bins that reach zero."""
    if not into and sign == 1:
        into.update(other)  # the first merge into a fresh accumulator: a copy, in C
        return
    get = into.get
    if sign != 1:
        other = {key: sign * count for key, count in other.items()}
    for key, count in other.items():
        total = get(key, 0) + count
        if total:
            into[key] = total
        else:
            # Bins never hold 0, so reaching 0 means the key was present.
            del into[key]


class Sketch:
    """A DDSketch-style quantile sketch whose bins can be decremented.

    ddsketch's own stores collapse bins and cannot retract, so this keeps sparse integer bins
    keyed by :data:`MAPPING`: positive values by key, negative values by the key of ``|v|``,
    and values too close to zero to index in a zero count. A quantile read back is within 1 %
    relative error of the exact quantile under the same rank rule (see :meth:`quantiles`).
    """

    __slots__ = ("_cached", "count", "negative", "positive", "zero")

    def __init__(self) -> None:
        self.positive: dict[int, int] = {}
        self.negative: dict[int, int] = {}
        self.zero = 0
        self.count = 0
        # p50/p90/p99 of the current state: past days are read by every dashboard refresh and
        # rarely change, so their quantiles are worth keeping until the next mutation.
        self._cached: list[float | None] | None = None

    @staticmethod
    def locate(value: float) -> tuple[int, int]:
        """``(side, key)`` of a value: side +1 positive, -1 negative (key of ``|v|``), 0 zero."""
        if value > _MIN_INDEXABLE:
            return _SIDE_POSITIVE, _key_of(value)
        if value < -_MIN_INDEXABLE:
            return _SIDE_NEGATIVE, _key_of(-value)
        return _SIDE_ZERO, 0

    def add(self, value: float, weight: int = 1) -> None:
        """Add ``weight`` (+1 to add, -1 to retract) observations of ``value``."""
        side, key = self.locate(value)
        self.add_key(side, key, weight)

    def add_key(self, side: int, key: int, weight: int) -> None:
        """Add ``weight`` to one bin located with :meth:`locate` (a bin reaching 0 is deleted)."""
        self._cached = None
        self.count += weight
        if side == _SIDE_ZERO:
            self.zero += weight
            return
        bins = self.positive if side > 0 else self.negative
        total = bins.get(key, 0) + weight
        if total:
            bins[key] = total
        else:
            del bins[key]

    def merge(self, other: Sketch, sign: int = 1) -> None:
        """Add (``sign`` +1) or subtract (-1) every bin of ``other``."""
        self._cached = None
        self.count += sign * other.count
        self.zero += sign * other.zero
        if other.positive:
            _merge_bins(self.positive, other.positive, sign)
        if other.negative:
            _merge_bins(self.negative, other.negative, sign)

    def is_empty(self) -> bool:
        """True when no bin holds anything."""
        return not self.count and not self.zero and not self.positive and not self.negative

    def quantile(self, q: float) -> float | None:
        """The ``q``-quantile (0 ≤ q ≤ 1); None when the sketch is empty."""
        return self.quantiles((q,))[0]

    def quantiles(self, qs: Sequence[float]) -> list[float | None]:
        """Several quantiles in one pass over the bins.

        DDSketch's rank rule: the value of rank ``floor(q * (count - 1))`` (0-based) in the order
        negatives (most negative first), zeros, positives; the value of a bin is the mapping's
        representative of its key. None for every q when the sketch holds nothing.
        """
        if qs == QUANTILES and self._cached is not None:
            return list(self._cached)
        out = self._quantiles(qs)
        if qs == QUANTILES:
            self._cached = out
            return list(out)
        return out

    def _quantiles(self, qs: Sequence[float]) -> list[float | None]:
        for q in qs:
            if not 0.0 <= q <= 1.0:
                raise ValueError(f"quantile {q} is outside [0, 1]")
        out: list[float | None] = [None] * len(qs)
        n = self.count
        if n <= 0:
            return out
        targets = sorted((int(q * (n - 1)), i) for i, q in enumerate(qs))
        t = 0
        nt = len(targets)
        seen = 0
        # The most negative values have the largest keys of |v|.
        negative = self.negative
        for key in sorted(negative, reverse=True):
            seen += negative[key]
            while t < nt and targets[t][0] < seen:
                out[targets[t][1]] = -_value_of(key)
                t += 1
            if t == nt:
                return out
        seen += self.zero
        while t < nt and targets[t][0] < seen:
            out[targets[t][1]] = 0.0
            t += 1
        positive = self.positive
        last: int | None = None
        for key in sorted(positive):
            seen += positive[key]
            last = key
            while t < nt and targets[t][0] < seen:
                out[targets[t][1]] = _value_of(key)
                t += 1
            if t == nt:
                return out
        # Only reachable while some bin count is transiently negative: answer the maximum.
        while t < nt:
            out[targets[t][1]] = _value_of(last) if last is not None else 0.0
            t += 1
        return out

    def copy(self) -> Sketch:
        """An independent copy."""
        new = Sketch()
        new.positive = dict(self.positive)
        new.negative = dict(self.negative)
        new.zero = self.zero
        new.count = self.count
        return new

    def to_doc(self) -> Doc:
        """Compact document: bins as parallel sorted lists, empty parts left out."""
        doc: Doc = {}
        if self.positive:
            doc["pk"], doc["pc"] = _bins_doc(self.positive)
        if self.negative:
            doc["nk"], doc["nc"] = _bins_doc(self.negative)
        if self.zero:
            doc["z"] = self.zero
        return doc

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Sketch:
        """The sketch a :meth:`to_doc` document describes."""
        new = cls()
        new.positive = _bins_from(doc.get("pk", ()), doc.get("pc", ()))
        new.negative = _bins_from(doc.get("nk", ()), doc.get("nc", ()))
        new.zero = int(doc.get("z", 0))
        new.count = new.zero + sum(new.positive.values()) + sum(new.negative.values())
        return new


# --- results -------------------------------------------------------------------------------------


@dataclass(slots=True)
class KpiResult:
    """A KPI's value in one bucket or a total (mirrors ``crm.metrics.v1.KpiValue``).

    ``value`` is None when there is no data; ``kpi`` is the label ``name@version``. Treat it as
    immutable (results may be shared between buckets); it is not frozen because a frozen
    dataclass costs 3x to build, and an hour series builds thousands.
    """

    kpi: str
    kind: Kind
    value: float | None = None
    count: int = 0
    mean: float | None = None
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    sum: float = 0.0
    numerator: int = 0
    denominator: int = 0
    unit: str = ""

    @property
    def has_data(self) -> bool:
        """True when the result carries a value."""
        return self.value is not None


def empty_result(spec: KpiSpec, label: str | None = None) -> KpiResult:
    """The result of a KPI with no data."""
    return KpiResult(label or f"{spec.name}@{spec.version}", spec.kind, unit=spec.unit)


# --- aggregates ----------------------------------------------------------------------------------


class Aggregate(ABC):
    """The mergeable, retractable state of one KPI in one hour and cell."""

    __slots__ = ()

    kind: ClassVar[Kind]

    @staticmethod
    @abstractmethod
    def prepare(value: float) -> Prepared:
        """Digest a contribution's value once, so adding it to ~14 cells does the work once."""

    @abstractmethod
    def add_prepared(self, prepared: Prepared, sign: int) -> bool:
        """Add (+1) or retract (-1) a prepared value; returns True when the aggregate is empty."""

    def add(self, value: float, sign: int = 1) -> bool:
        """Add (+1) or retract (-1) one contribution; returns True when now empty."""
        return self.add_prepared(self.prepare(value), sign)

    @abstractmethod
    def merge(self, other: Self, sign: int = 1) -> None:
        """Add (``sign`` +1) or subtract (-1) another aggregate of the same kind."""

    @abstractmethod
    def is_empty(self) -> bool:
        """True when every contribution has been retracted (or none was added)."""

    @abstractmethod
    def to_doc(self) -> Doc:
        """A compact, BSON-friendly document of the state."""

    @classmethod
    @abstractmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Self:
        """The aggregate a :meth:`to_doc` document describes."""

    @abstractmethod
    def result(self, spec: KpiSpec, label: str) -> KpiResult:
        """The KPI value of this state (``label`` is ``name@version``)."""

    def copy(self) -> Self:
        """An independent copy."""
        new = type(self)()
        new.merge(self)
        return new

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Aggregate) or type(other) is not type(self):
            return NotImplemented
        return self.to_doc() == other.to_doc()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_doc()!r})"


class Distribution(Aggregate):
    """Observations (seconds, possibly negative): count, exact sum in ms, and a sketch.

    Headline value = p50; also mean, p90, p99.
    """

    __slots__ = ("sketch", "sum_ms")
    kind = Kind.DISTRIBUTION

    def __init__(self) -> None:
        self.sketch = Sketch()
        # Values are seconds with at most millisecond precision, so the sum is exact in ms.
        self.sum_ms = 0

    @property
    def count(self) -> int:
        """Number of observations."""
        return self.sketch.count

    @staticmethod
    def prepare(value: float) -> Prepared:
        """``(milliseconds, sketch side, sketch key)``."""
        if not math.isfinite(value):
            raise ValueError(f"a distribution observation must be finite, got {value}")
        side, key = Sketch.locate(value)
        return round(value * 1000), side, key

    def add_prepared(self, prepared: Prepared, sign: int) -> bool:
        ms, side, key = prepared
        self.sum_ms += sign * ms
        sketch = self.sketch
        sketch.add_key(side, key, sign)
        return (
            not sketch.count
            and not self.sum_ms
            and not sketch.zero
            and not sketch.positive
            and not sketch.negative
        )

    def merge(self, other: Distribution, sign: int = 1) -> None:
        self.sum_ms += sign * other.sum_ms
        self.sketch.merge(other.sketch, sign)

    def is_empty(self) -> bool:
        return not self.sum_ms and self.sketch.is_empty()

    def to_doc(self) -> Doc:
        doc = self.sketch.to_doc()
        if self.sum_ms:
            doc["s"] = self.sum_ms
        return doc

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Distribution:
        new = cls()
        new.sketch = Sketch.from_doc(doc)
        new.sum_ms = int(doc.get("s", 0))
        return new

    def copy(self) -> Distribution:
        new = Distribution()
        new.sketch = self.sketch.copy()
        new.sum_ms = self.sum_ms
        return new

    def result(self, spec: KpiSpec, label: str) -> KpiResult:
        n = self.sketch.count
        if n <= 0:
            return empty_result(spec, label)
        total = self.sum_ms / 1000.0
        p50, p90, p99 = self.sketch.quantiles(QUANTILES)
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


class Rate(Aggregate):
    """Numerator and denominator; value = 100 * numerator / denominator."""

    __slots__ = ("denominator", "numerator")
    kind = Kind.RATE

    def __init__(self) -> None:
        self.numerator = 0
        self.denominator = 0

    @staticmethod
    def prepare(value: float) -> Prepared:
        """``(1 if in the numerator else 0, 0, 0)``."""
        return (1 if value > 0 else 0), 0, 0

    def add_prepared(self, prepared: Prepared, sign: int) -> bool:
        self.numerator += sign * prepared[0]
        self.denominator += sign
        return not self.denominator and not self.numerator

    def merge(self, other: Rate, sign: int = 1) -> None:
        self.numerator += sign * other.numerator
        self.denominator += sign * other.denominator

    def is_empty(self) -> bool:
        return not self.numerator and not self.denominator

    def to_doc(self) -> Doc:
        return {"n": self.numerator, "d": self.denominator}

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Rate:
        new = cls()
        new.numerator = int(doc.get("n", 0))
        new.denominator = int(doc.get("d", 0))
        return new

    def result(self, spec: KpiSpec, label: str) -> KpiResult:
        den = self.denominator
        if den <= 0:
            return empty_result(spec, label)
        return KpiResult(
            label,
            spec.kind,
            value=100.0 * self.numerator / den,
            count=den,
            numerator=self.numerator,
            denominator=den,
            unit=spec.unit,
        )


class Count(Aggregate):
    """Number of contributions and the sum of their amounts (exact, in milli-units).

    Headline value = the sum (a count when every amount is 1, followers for reach).
    """

    __slots__ = ("count", "sum_milli")
    kind = Kind.COUNT

    def __init__(self) -> None:
        self.count = 0
        self.sum_milli = 0

    @staticmethod
    def prepare(value: float) -> Prepared:
        """``(amount in milli-units, 0, 0)``."""
        if not math.isfinite(value):
            raise ValueError(f"a count amount must be finite, got {value}")
        return round(value * 1000), 0, 0

    def add_prepared(self, prepared: Prepared, sign: int) -> bool:
        self.count += sign
        self.sum_milli += sign * prepared[0]
        return not self.count and not self.sum_milli

    def merge(self, other: Count, sign: int = 1) -> None:
        self.count += sign * other.count
        self.sum_milli += sign * other.sum_milli

    def is_empty(self) -> bool:
        return not self.count and not self.sum_milli

    def to_doc(self) -> Doc:
        return {"c": self.count, "s": self.sum_milli}

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Count:
        new = cls()
        new.count = int(doc.get("c", 0))
        new.sum_milli = int(doc.get("s", 0))
        return new

    def result(self, spec: KpiSpec, label: str) -> KpiResult:
        if self.count <= 0:
            return empty_result(spec, label)
        total = self.sum_milli / 1000.0
        return KpiResult(label, spec.kind, value=total, count=self.count, sum=total, unit=spec.unit)


def _share(hist: Mapping[int, int], n: int, low: int, high: int) -> float:
    """Percentage of answers scoring in ``[low, high]``."""
    return 100.0 * sum(c for s, c in hist.items() if low <= s <= high) / n


SCORE_HEADLINES: dict[str, Callable[[Mapping[int, int], int], float]] = {
    "csat": lambda h, n: _share(h, n, 4, 5),
    "nps": lambda h, n: _share(h, n, 9, 10) - _share(h, n, 0, 6),
    "effort": lambda h, n: _share(h, n, 5, 7),
    "purchase_intent": lambda h, n: _share(h, n, 9, 10),
    "loyalty": lambda h, n: _share(h, n, 9, 10),
}
"""The headline of each score KPI from its histogram and answer count (KPIS.md)."""


class Score(Aggregate):
    """Exact histogram of integer survey scores; headline per KPI (:data:`SCORE_HEADLINES`)."""

    __slots__ = ("hist",)
    kind = Kind.SCORE

    def __init__(self) -> None:
        self.hist: dict[int, int] = {}

    @property
    def count(self) -> int:
        """Number of answers."""
        return sum(self.hist.values())

    @staticmethod
    def prepare(value: float) -> Prepared:
        """``(integer score, 0, 0)``."""
        if not math.isfinite(value):
            raise ValueError(f"a score must be finite, got {value}")
        return round(value), 0, 0

    def add_prepared(self, prepared: Prepared, sign: int) -> bool:
        hist = self.hist
        score = prepared[0]
        total = hist.get(score, 0) + sign
        if total:
            hist[score] = total
        else:
            del hist[score]
        return not hist

    def merge(self, other: Score, sign: int = 1) -> None:
        _merge_bins(self.hist, other.hist, sign)

    def is_empty(self) -> bool:
        return not self.hist

    def to_doc(self) -> Doc:
        keys, counts = _bins_doc(self.hist)
        return {"k": keys, "c": counts}

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Score:
        new = cls()
        new.hist = _bins_from(doc.get("k", ()), doc.get("c", ()))
        return new

    def copy(self) -> Score:
        new = Score()
        new.hist = dict(self.hist)
        return new

    def result(self, spec: KpiSpec, label: str) -> KpiResult:
        hist = self.hist
        n = sum(hist.values())
        if n <= 0:
            return empty_result(spec, label)
        total = sum(s * c for s, c in hist.items())
        mean = total / n
        headline = SCORE_HEADLINES.get(spec.name)
        return KpiResult(
            label,
            spec.kind,
            value=headline(hist, n) if headline else mean,
            count=n,
            mean=mean,
            sum=float(total),
            unit=spec.unit,
        )


class Sentiment(Aggregate):
    """Positive / negative / neutral counts and the polarity sum (exact, in micro-polarity).

    Headline = net sentiment (positive - negative) / all; also the mean polarity.
    """

    __slots__ = ("negative", "neutral", "positive", "sum_micro")
    kind = Kind.SENTIMENT

    def __init__(self) -> None:
        self.positive = 0
        self.negative = 0
        self.neutral = 0
        self.sum_micro = 0

    @property
    def count(self) -> int:
        """Number of polarities."""
        return self.positive + self.negative + self.neutral

    @staticmethod
    def prepare(value: float) -> Prepared:
        """``(micro-polarity, class, 0)`` with class +1 positive, -1 negative, 0 neutral."""
        if not math.isfinite(value):
            raise ValueError(f"a polarity must be finite, got {value}")
        cls = 1 if value > SENTIMENT_THRESHOLD else -1 if value < -SENTIMENT_THRESHOLD else 0
        return round(value * 1_000_000), cls, 0

    def add_prepared(self, prepared: Prepared, sign: int) -> bool:
        micro, cls, _ = prepared
        self.sum_micro += sign * micro
        if cls > 0:
            self.positive += sign
        elif cls < 0:
            self.negative += sign
        else:
            self.neutral += sign
        return not (self.positive or self.negative or self.neutral or self.sum_micro)

    def merge(self, other: Sentiment, sign: int = 1) -> None:
        self.positive += sign * other.positive
        self.negative += sign * other.negative
        self.neutral += sign * other.neutral
        self.sum_micro += sign * other.sum_micro

    def is_empty(self) -> bool:
        return not (self.positive or self.negative or self.neutral or self.sum_micro)

    def to_doc(self) -> Doc:
        return {"p": self.positive, "m": self.negative, "z": self.neutral, "s": self.sum_micro}

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Sentiment:
        new = cls()
        new.positive = int(doc.get("p", 0))
        new.negative = int(doc.get("m", 0))
        new.neutral = int(doc.get("z", 0))
        new.sum_micro = int(doc.get("s", 0))
        return new

    def result(self, spec: KpiSpec, label: str) -> KpiResult:
        n = self.positive + self.negative + self.neutral
        if n <= 0:
            return empty_result(spec, label)
        total = self.sum_micro / 1_000_000
        return KpiResult(
            label,
            spec.kind,
            value=(self.positive - self.negative) / n,
            count=n,
            mean=total / n,
            sum=total,
            unit=spec.unit,
        )


class Level(Aggregate):
    """The sum of a level's changes (+1 / -1) in the hour; levels change by whole units."""

    __slots__ = ("delta",)
    kind = Kind.LEVEL

    def __init__(self) -> None:
        self.delta = 0

    @staticmethod
    def prepare(value: float) -> Prepared:
        """``(integer change, 0, 0)``."""
        if not math.isfinite(value):
            raise ValueError(f"a level change must be finite, got {value}")
        return round(value), 0, 0

    def add_prepared(self, prepared: Prepared, sign: int) -> bool:
        self.delta += sign * prepared[0]
        return not self.delta

    def merge(self, other: Level, sign: int = 1) -> None:
        self.delta += sign * other.delta

    def is_empty(self) -> bool:
        return not self.delta

    def to_doc(self) -> Doc:
        return {"d": self.delta}

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Level:
        new = cls()
        new.delta = int(doc.get("d", 0))
        return new

    def result(self, spec: KpiSpec, label: str) -> KpiResult:
        """The change alone; the query turns changes into levels (:func:`level_result`)."""
        return level_result(spec, label, self.delta)


def level_result(spec: KpiSpec, label: str, level: int) -> KpiResult:
    """A LEVEL KPI's value: a level is always defined (0 when nothing is open)."""
    return KpiResult(
        label, spec.kind, value=float(level), count=level, sum=float(level), unit=spec.unit
    )


AGGREGATES: dict[Kind, type[Aggregate]] = {
    Kind.DISTRIBUTION: Distribution,
    Kind.RATE: Rate,
    Kind.COUNT: Count,
    Kind.SCORE: Score,
    Kind.SENTIMENT: Sentiment,
    Kind.LEVEL: Level,
}
"""The aggregate class of each kind."""

AGGREGATE_OF_KPI: dict[str, type[Aggregate]] = {
    name: AGGREGATES[spec.kind] for name, spec in CATALOG.items()
}
"""The aggregate class of each KPI (by aggregate name)."""


def new_aggregate(kind: Kind) -> Aggregate:
    """An empty aggregate of ``kind``."""
    return AGGREGATES[kind]()


def aggregate_from_doc(kind: Kind, doc: Mapping[str, Any]) -> Aggregate:
    """The aggregate of ``kind`` a stored document describes."""
    return AGGREGATES[kind].from_doc(doc)


def kpi_result(spec: KpiSpec, aggregate: Aggregate | None, label: str | None = None) -> KpiResult:
    """The value of ``spec`` given its aggregate (None or empty: no data).

    ``label`` is ``name@version`` (default: the catalogue's current version).
    """
    label = label or f"{spec.name}@{spec.version}"
    if aggregate is None:
        if spec.kind is Kind.LEVEL:
            return level_result(spec, label, 0)
        return empty_result(spec, label)
    if aggregate.kind is not spec.kind:
        raise TypeError(f"{spec.name} is a {spec.kind} KPI, got a {aggregate.kind} aggregate")
    return aggregate.result(spec, label)
