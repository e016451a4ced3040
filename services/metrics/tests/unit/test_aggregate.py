"""Aggregates: mergeable, retractable, exact; sketches within 1 % of the exact quantiles."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_metrics.domain.aggregate import (
    AGGREGATES,
    MAPPING,
    QUANTILES,
    Aggregate,
    Count,
    Distribution,
    Level,
    Rate,
    Score,
    Sentiment,
    Sketch,
    aggregate_from_doc,
    kpi_result,
    new_aggregate,
)
from crm_metrics.domain.catalog import CATALOG, Kind

# --- strategies ----------------------------------------------------------------------------------

seconds = st.integers(-(10**9), 10**9).map(lambda ms: ms / 1000)
positive_seconds = st.integers(1, 10**10).map(lambda ms: ms / 1000)

VALUES: dict[Kind, st.SearchStrategy[float]] = {
    Kind.DISTRIBUTION: seconds,
    Kind.RATE: st.sampled_from([0.0, 1.0]),
    Kind.COUNT: st.integers(0, 10**7).map(float) | st.integers(0, 10**6).map(lambda m: m / 1000),
    Kind.SCORE: st.integers(0, 10).map(float),
    Kind.SENTIMENT: st.integers(-10_000, 10_000).map(lambda v: v / 10_000),
    Kind.LEVEL: st.sampled_from([1.0, -1.0]),
}

kinds = st.sampled_from(list(Kind))


@st.composite
def kind_and_value_lists(draw: st.DrawFn, lists: int) -> tuple[Kind, list[list[float]]]:
    kind = draw(kinds)
    values = [draw(st.lists(VALUES[kind], max_size=25)) for _ in range(lists)]
    return kind, values


def build(kind: Kind, values: list[float]) -> Aggregate:
    agg = new_aggregate(kind)
    for value in values:
        agg.add(value)
    return agg


def exact_quantile(values: list[float], q: float) -> float:
    """DDSketch's rank rule on the exact data: the value of rank floor(q * (n - 1))."""
    ordered = sorted(values)
    return ordered[int(q * (len(ordered) - 1))]


def within_one_percent(estimate: float | None, exact: float) -> bool:
    assert estimate is not None
    return abs(estimate - exact) <= 0.01 * abs(exact) * (1 + 1e-9)


# --- the sketch ----------------------------------------------------------------------------------


@given(st.lists(positive_seconds, min_size=1, max_size=300), st.floats(0, 1))
def test_sketch_quantile_is_within_one_percent_of_the_exact_quantile(
    values: list[float], q: float
) -> None:
    sketch = Sketch()
    for value in values:
        sketch.add(value)
    assert within_one_percent(sketch.quantile(q), exact_quantile(values, q))


@given(
    st.lists(seconds | st.just(0.0), min_size=1, max_size=300),
    st.lists(st.floats(0, 1), min_size=1, max_size=5),
)
def test_sketch_quantiles_of_mixed_signs_are_within_one_percent(
    values: list[float], qs: list[float]
) -> None:
    sketch = Sketch()
    for value in values:
        sketch.add(value)
    for q, estimate in zip(qs, sketch.quantiles(qs), strict=True):
        assert within_one_percent(estimate, exact_quantile(values, q))


def test_sketch_orders_negatives_most_negative_first() -> None:
    sketch = Sketch()
    for value in (-100.0, -1.0, 0.0, 5.0, 50.0):
        sketch.add(value)
    low, mid, high = sketch.quantiles((0.0, 0.5, 1.0))
    assert within_one_percent(low, -100.0)
    assert mid == 0.0
    assert within_one_percent(high, 50.0)


def test_an_empty_sketch_has_no_quantile() -> None:
    assert Sketch().quantile(0.5) is None
    assert Sketch().quantiles(QUANTILES) == [None, None, None]


def test_a_quantile_outside_zero_to_one_is_refused() -> None:
    sketch = Sketch()
    sketch.add(1.0)
    with pytest.raises(ValueError, match="outside"):
        sketch.quantile(1.5)


def test_values_too_small_to_index_count_as_zero() -> None:
    sketch = Sketch()
    sketch.add(MAPPING.min_possible / 2)
    sketch.add(-MAPPING.min_possible / 2)
    assert sketch.zero == 2
    assert not sketch.positive
    assert not sketch.negative
    assert sketch.quantile(0.5) == 0.0


@given(st.lists(seconds, max_size=100), st.randoms(use_true_random=False))
def test_retracting_every_value_empties_the_sketch_and_deletes_every_bin(
    values: list[float], rnd: random.Random
) -> None:
    sketch = Sketch()
    for value in values:
        sketch.add(value)
    shuffled = list(values)
    rnd.shuffle(shuffled)
    for value in shuffled:
        sketch.add(value, -1)
    assert sketch.is_empty()
    assert sketch.positive == {}
    assert sketch.negative == {}
    assert sketch.count == 0


def test_the_cached_quantiles_follow_changes() -> None:
    sketch = Sketch()
    sketch.add(10.0)
    first = sketch.quantiles(QUANTILES)
    sketch.add(1000.0)
    sketch.add(1000.0)
    assert sketch.quantiles(QUANTILES) != first
    other = Sketch()
    other.add(1000.0)
    sketch.merge(other, -1)
    sketch.merge(other, -1)
    assert sketch.quantiles(QUANTILES) == first


def test_sketches_share_one_mapping() -> None:
    # One module-level mapping: a sketch carries bins only.
    assert set(Sketch.__slots__) == {"_cached", "count", "negative", "positive", "zero"}


# --- every kind: algebra -------------------------------------------------------------------------


@given(kind_and_value_lists(3))
def test_merge_is_associative(data: tuple[Kind, list[list[float]]]) -> None:
    kind, (xs, ys, zs) = data
    left = build(kind, xs)
    left.merge(build(kind, ys))
    left.merge(build(kind, zs))
    right_tail = build(kind, ys)
    right_tail.merge(build(kind, zs))
    right = build(kind, xs)
    right.merge(right_tail)
    assert left.to_doc() == right.to_doc()


@given(kind_and_value_lists(2))
def test_merge_is_commutative_and_equals_adding_everything(
    data: tuple[Kind, list[list[float]]],
) -> None:
    kind, (xs, ys) = data
    ab = build(kind, xs)
    ab.merge(build(kind, ys))
    ba = build(kind, ys)
    ba.merge(build(kind, xs))
    assert ab.to_doc() == ba.to_doc() == build(kind, xs + ys).to_doc()


@given(kind_and_value_lists(2))
def test_merging_with_sign_minus_one_undoes_a_merge(data: tuple[Kind, list[list[float]]]) -> None:
    kind, (xs, ys) = data
    agg = build(kind, xs)
    other = build(kind, ys)
    agg.merge(other)
    agg.merge(other, -1)
    assert agg.to_doc() == build(kind, xs).to_doc()


@given(kind_and_value_lists(1), st.randoms(use_true_random=False))
def test_adding_then_retracting_everything_is_exactly_empty(
    data: tuple[Kind, list[list[float]]], rnd: random.Random
) -> None:
    kind, (values,) = data
    agg = build(kind, values)
    retractions = list(values)
    rnd.shuffle(retractions)
    emptied = [agg.add(value, -1) for value in retractions]
    assert agg.is_empty()
    assert agg.to_doc() == new_aggregate(kind).to_doc()
    if values:
        assert emptied[-1] is True


@given(kind_and_value_lists(2), st.randoms(use_true_random=False))
def test_any_order_of_additions_and_retractions_gives_identical_docs(
    data: tuple[Kind, list[list[float]]], rnd: random.Random
) -> None:
    kind, (kept, retracted) = data
    ops = [(v, 1) for v in kept + retracted] + [(v, -1) for v in retracted]
    reference = build(kind, kept).to_doc()
    for _ in range(3):
        rnd.shuffle(ops)  # a retraction may arrive before its addition
        agg = new_aggregate(kind)
        for value, sign in ops:
            agg.add(value, sign)
        assert agg.to_doc() == reference


def test_float_sums_do_not_drift_under_retraction() -> None:
    dist = Distribution()
    for _ in range(10):
        dist.add(0.1)
    dist.add(1e6)
    for _ in range(10):
        dist.add(0.1, -1)
    assert dist.sum_ms == 1_000_000_000
    dist.add(1e6, -1)
    assert dist.is_empty()


# --- documents -----------------------------------------------------------------------------------


def _bson_friendly(doc: object) -> bool:
    if isinstance(doc, dict):
        return all(isinstance(k, str) and _bson_friendly(v) for k, v in doc.items())
    if isinstance(doc, list):
        return all(isinstance(v, int) for v in doc)
    return isinstance(doc, int | float | str)


@given(kind_and_value_lists(1))
def test_a_document_round_trips_and_is_bson_friendly(data: tuple[Kind, list[list[float]]]) -> None:
    kind, (values,) = data
    agg = build(kind, values)
    doc = agg.to_doc()
    assert _bson_friendly(doc)
    back = aggregate_from_doc(kind, doc)
    assert back == agg
    assert back.to_doc() == doc


def test_a_sketch_document_keeps_bins_as_two_sorted_parallel_lists() -> None:
    dist = Distribution()
    for value in (300.0, 2.0, -7.0, 2.0, 0.0):
        dist.add(value)
    doc = dist.to_doc()
    assert doc["pk"] == sorted(doc["pk"])
    assert len(doc["pk"]) == len(doc["pc"]) == 2
    assert doc["nc"] == [1]
    assert doc["z"] == 1
    assert doc["s"] == 297_000


def test_copies_are_independent() -> None:
    for kind, cls in AGGREGATES.items():
        agg = cls()
        agg.add(1.0)
        copy = agg.copy()
        copy.add(1.0)
        assert copy != agg, kind


# --- results -------------------------------------------------------------------------------------


def result_of(name: str, values: list[float]) -> object:
    spec = CATALOG[name]
    return kpi_result(spec, build(spec.kind, values))


def test_a_distribution_reports_the_median_as_its_value_with_exact_count_sum_and_mean() -> None:
    spec = CATALOG["frt_wall"]
    agg = build(spec.kind, [60.0, 120.0, 180.5, 3600.0])
    result = kpi_result(spec, agg)
    assert result.kpi == "frt_wall@1"
    assert result.count == 4
    assert result.sum == pytest.approx(3960.5)
    assert result.mean == pytest.approx(3960.5 / 4)
    assert result.value == result.p50
    assert within_one_percent(result.p50, 120.0)
    assert within_one_percent(result.p90, 180.5)
    assert within_one_percent(result.p99, 180.5)
    assert result.unit == "s"


def test_a_rate_is_the_numerator_over_the_denominator_in_percent() -> None:
    spec = CATALOG["sla_first_response"]
    result = kpi_result(spec, build(spec.kind, [1.0, 1.0, 1.0, 0.0]))
    assert (result.value, result.numerator, result.denominator, result.count) == (75.0, 3, 4, 4)


def test_a_count_reports_the_sum_of_its_amounts() -> None:
    spec = CATALOG["reach"]
    result = kpi_result(spec, build(spec.kind, [100.0, 2500.0]))
    assert (result.value, result.sum, result.count) == (2600.0, 2600.0, 2)


@pytest.mark.parametrize(
    ("name", "scores", "headline"),
    [
        ("csat", [5, 4, 3, 1], 50.0),
        ("nps", [10, 9, 8, 7, 6, 0, 10, 10], 100 * (4 - 2) / 8),
        ("effort", [7, 5, 4, 1], 50.0),
        ("purchase_intent", [10, 9, 8, 0], 50.0),
        ("loyalty", [9, 1, 1, 1], 25.0),
    ],
)
def test_each_score_kpi_has_its_own_headline(name: str, scores: list[int], headline: float) -> None:
    spec = CATALOG[name]
    result = kpi_result(spec, build(spec.kind, [float(s) for s in scores]))
    assert result.value == pytest.approx(headline)
    assert result.mean == pytest.approx(sum(scores) / len(scores))
    assert result.count == len(scores)


def test_net_sentiment_uses_the_plus_minus_five_hundredths_thresholds() -> None:
    spec = CATALOG["comment_sentiment"]
    agg = Sentiment()
    for polarity in (0.8, 0.06, 0.05, -0.05, -0.051, -0.9):
        agg.add(polarity)
    assert (agg.positive, agg.neutral, agg.negative) == (2, 2, 2)
    result = kpi_result(spec, agg)
    assert result.value == 0.0
    assert result.mean == pytest.approx((0.8 + 0.06 + 0.05 - 0.05 - 0.051 - 0.9) / 6)
    agg.add(0.5)
    assert kpi_result(spec, agg).value == pytest.approx(1 / 7)


def test_a_level_is_the_sum_of_its_changes() -> None:
    level = Level()
    for delta in (1.0, 1.0, -1.0, 1.0):
        level.add(delta)
    assert kpi_result(CATALOG["backlog"], level).value == 2.0


@pytest.mark.parametrize(
    "name", ["frt_wall", "csat", "sla_resolution", "mentions", "comment_sentiment"]
)
def test_no_aggregate_means_no_value(name: str) -> None:
    result = kpi_result(CATALOG[name], None)
    assert result.value is None
    assert result.count == 0
    assert not result.has_data


def test_a_level_without_changes_is_zero() -> None:
    assert kpi_result(CATALOG["backlog"], None).value == 0.0


def test_a_result_is_labelled_with_the_given_version() -> None:
    assert kpi_result(CATALOG["frt_wall"], None, "frt_wall@2").kpi == "frt_wall@2"


def test_an_aggregate_of_another_kind_is_refused() -> None:
    with pytest.raises(TypeError):
        kpi_result(CATALOG["frt_wall"], Rate())


@pytest.mark.parametrize(
    ("cls", "bad"),
    [(Distribution, math.inf), (Distribution, math.nan), (Count, math.inf), (Score, math.nan)],
)
def test_non_finite_values_are_refused(cls: Callable[[], Aggregate], bad: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        cls().add(bad)


@settings(max_examples=50)
@given(st.lists(st.integers(1, 5), min_size=1, max_size=50))
def test_scores_are_kept_exactly(scores: list[int]) -> None:
    agg = Score()
    for score in scores:
        agg.add(float(score))
    assert agg.hist == {s: scores.count(s) for s in set(scores)}
