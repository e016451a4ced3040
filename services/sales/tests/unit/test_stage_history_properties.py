"""Property: whatever sequence of stage changes is attempted, the stage history stays a true,
gap-free record of the stages entered, and only a reopen leads out of a closed stage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from crm_platform.errors import DomainError
from crm_sales.domain.opportunity import Opportunity, OpportunityInput, StageMove
from crm_sales.domain.pipeline import Pipeline, PipelineInput, Stage, StageKind

T0 = datetime(2026, 3, 1, tzinfo=UTC)
PIPELINE = Pipeline.create(
    id="p1",
    tenant_id="acme",
    fields=PipelineInput(
        "Direct",
        (
            Stage("lead_in", "Lead in", 5, StageKind.OPEN),
            Stage("demo", "Demo", 30, StageKind.OPEN),
            Stage("proposal", "Proposal", 60, StageKind.OPEN),
            Stage("won", "Won", 100, StageKind.WON),
            Stage("won_partner", "Won via partner", 100, StageKind.WON),
            Stage("lost", "Lost", 0, StageKind.LOST),
        ),
    ),
    now=T0,
)
STAGE_IDS = [s.id for s in PIPELINE.stages] + ["unknown", ""]

operations = st.lists(
    st.tuples(
        st.sampled_from(["move", "win", "lose", "reopen"]),
        st.sampled_from(STAGE_IDS),
        st.sampled_from(["", "because"]),
        st.integers(min_value=0, max_value=120),  # minutes since the previous attempt
        st.booleans(),  # pass the current version as expected_version, or a stale one
    ),
    max_size=25,
)


def _attempt(
    o: Opportunity, op: str, stage: str, reason: str, at: datetime, expected: int
) -> StageMove:
    if op == "move":
        return o.move_to(stage, PIPELINE, expected, at, "agent:a")
    if op == "win":
        return o.win(stage, reason, PIPELINE, expected, at, "agent:a")
    if op == "lose":
        return o.lose(stage, reason, PIPELINE, expected, at, "agent:a")
    return o.reopen(stage, reason, PIPELINE, expected, at, "agent:a")


def _check_invariants(o: Opportunity, reopens: set[int]) -> None:
    history = o.stage_history
    assert history[0].from_stage_id == ""
    for before, after in pairwise(history):
        assert after.from_stage_id == before.to_stage_id
        assert after.change_time >= before.change_time
        assert after.to_stage_id != before.to_stage_id or before.to_kind.closed
    for index, entry in enumerate(history):
        stage = PIPELINE.stage(entry.to_stage_id)
        assert stage is not None
        assert (entry.to_kind, entry.win_probability_percent) == (
            stage.kind,
            stage.win_probability_percent,
        )
        if index and history[index - 1].to_kind.closed:
            # Out of a closed stage there is exactly one way: a reopen, into an open stage.
            assert index in reopens
            assert not entry.to_kind.closed
    assert history[-1].to_stage_id == o.stage_id
    assert history[-1].to_kind is o.status
    assert o.version == len(history)
    assert (o.close_time is not None) == o.status.closed
    if not o.status.closed:
        assert o.close_reason == ""


@settings(max_examples=300, deadline=None)
@given(operations)
def test_stage_history_is_a_gap_free_record_whatever_is_attempted(
    attempts: list[tuple[str, str, str, int, bool]],
) -> None:
    o = Opportunity.create(
        id="o1",
        tenant_id="acme",
        fields=OpportunityInput(name="Deal", currency="EUR", pipeline_id="p1"),
        pipeline=PIPELINE,
        now=T0,
        actor="agent:a",
    )
    reopens: set[int] = set()
    at = T0
    for op, stage, reason, minutes, current in attempts:
        at += timedelta(minutes=minutes)
        before = o
        try:
            move = _attempt(o, op, stage, reason, at, o.version if current else o.version + 1)
        except DomainError:
            assert o == before  # a refused change leaves nothing behind
            continue
        assert current, "a stale expected_version was accepted"
        if move.change is not None:
            if op == "reopen":
                reopens.add(len(o.stage_history))
            assert move.opportunity.stage_history[:-1] == o.stage_history
            assert move.opportunity.stage_history[-1] == move.change
            o = move.opportunity
        _check_invariants(o, reopens)
