"""crm_platform.rules: evaluation order, first match, revisions and their stale check, the
field checks and the document form."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm_platform.errors import FieldViolation, StaleVersion
from crm_platform.rules import (
    MAX_POSITION,
    Decision,
    check_position,
    clean_enum,
    clean_enum_values,
    clean_id,
    clean_text,
    clean_values,
    first_match,
    from_document,
    in_order,
    revise,
    to_document,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Rule:
    rule_id: str
    version: int
    position: int
    enabled: bool
    threshold: int
    update_time: datetime = T0


class Colour(StrEnum):
    RED = "red"
    BLUE = "blue"


@dataclass(frozen=True)
class Flat:
    kind: Colour
    name: str = ""
    tags: frozenset[str] = frozenset()
    colours: frozenset[Colour] = frozenset()
    limit: int | None = None


rules_strategy = st.lists(
    st.builds(
        Rule,
        rule_id=st.text("abc", min_size=1, max_size=3),
        version=st.integers(1, 5),
        position=st.integers(0, 5),
        enabled=st.booleans(),
        threshold=st.integers(0, 10),
    ),
    max_size=12,
    unique_by=lambda r: r.rule_id,
)


@given(rules_strategy)
def test_in_order_is_enabled_rules_by_position_then_id(rules: list[Rule]) -> None:
    ordered = in_order(reversed(rules))
    assert all(rule.enabled for rule in ordered)
    assert {r.rule_id for r in ordered} == {r.rule_id for r in rules if r.enabled}
    keys = [(r.position, r.rule_id) for r in ordered]
    assert keys == sorted(keys)


@given(rules_strategy, st.integers(0, 10))
def test_first_match_is_the_first_enabled_matching_rule_in_order(
    rules: list[Rule], value: int
) -> None:
    found = first_match(rules, lambda r: r.threshold <= value)
    # An independent oracle: scan every (position, id) pair from the lowest.
    candidates = [r for r in rules if r.enabled and r.threshold <= value]
    if not candidates:
        assert found is None
        return
    assert found is not None
    best = min(candidates, key=lambda r: (r.position, r.rule_id))
    assert found == best
    decision = Decision.by(found, "go")
    assert (decision.rule_id, decision.rule_version) == (best.rule_id, best.version)


def test_first_match_respects_applies() -> None:
    a = Rule("a", 1, 0, True, 0)
    b = Rule("b", 2, 1, True, 0)
    assert first_match([a, b], lambda r: True, applies=lambda r: r.rule_id != "a") == b


def test_revise_bumps_the_version_once_per_change_and_keeps_an_unchanged_rule() -> None:
    rule = Rule("a", 3, 0, True, 1)
    later = T0 + timedelta(minutes=5)
    same = revise(rule, replace(rule), now=later, expected_version=3, subject="rules/a")
    assert same is rule
    changed = revise(rule, replace(rule, threshold=2), now=later, expected_version=None,
                     subject="rules/a")  # fmt: skip
    assert (changed.version, changed.threshold, changed.update_time) == (4, 2, later)


def test_revise_refuses_a_stale_version_even_without_a_change() -> None:
    rule = Rule("a", 3, 0, True, 1)
    with pytest.raises(StaleVersion) as info:
        revise(rule, replace(rule, threshold=9), now=T0, expected_version=2, subject="rules/a")
    assert (info.value.expected, info.value.actual) == (2, 3)
    with pytest.raises(StaleVersion):
        revise(rule, rule, now=T0, expected_version=4, subject="rules/a")


def test_field_checks_report_every_problem_with_its_path() -> None:
    found: list[FieldViolation] = []
    assert clean_id(found, "r.id", "  x1 ", required=True) == "x1"
    assert not found
    clean_id(found, "r.a", "", required=True)
    clean_id(found, "r.b", "has space", required=False)
    clean_id(found, "r.c", "x" * 65, required=False)
    clean_text(found, "r.d", "bad\x00", max_length=10, required=False)
    clean_values(found, "r.e", ["ok", " ", "y" * 70])
    clean_values(found, "r.f", [str(i) for i in range(51)])
    clean_enum_values(found, "r.g", ["red", "green"], Colour)
    assert clean_enum(found, "r.h", None, Colour) is None
    check_position(found, "r.i", -1)
    check_position(found, "r.i", MAX_POSITION)
    fields = [v.field for v in found]
    assert fields == ["r.a", "r.b", "r.c", "r.d", "r.e", "r.e", "r.f", "r.g", "r.h", "r.i"]


def test_clean_values_normalises_after_trimming() -> None:
    found: list[FieldViolation] = []
    assert clean_values(found, "p", [" de ", "AT"], normalise=str.upper) == {"DE", "AT"}
    assert not found


def test_documents_round_trip_and_leave_defaults_out() -> None:
    item = Flat(Colour.RED, tags=frozenset({"b", "a"}), colours=frozenset({Colour.BLUE}))
    doc = to_document(item)
    assert doc == {"kind": "red", "tags": ["a", "b"], "colours": ["blue"]}
    back = from_document(
        Flat, doc, enums={"kind": Colour}, sets=("tags",), enum_sets={"colours": Colour}
    )
    assert back == item
