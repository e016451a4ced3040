"""Pipeline rules: stages of every kind, unique ids, fixed closing probabilities; versioning."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from crm_platform.errors import InvalidArgument, StaleVersion
from crm_sales.domain.pipeline import Pipeline, PipelineInput, Stage, StageKind

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
OPEN, WON, LOST = StageKind.OPEN, StageKind.WON, StageKind.LOST

STAGES = (
    Stage("qualify", "Qualify", 10, OPEN),
    Stage("proposal", "Proposal", 50, OPEN),
    Stage("won", "Won", 100, WON),
    Stage("lost", "Lost", 0, LOST),
)


def _pipeline(stages: tuple[Stage, ...] = STAGES, name: str = "Direct sales") -> Pipeline:
    return Pipeline.create(id="p1", tenant_id="acme", fields=PipelineInput(name, stages), now=NOW)


def _fields(error: pytest.ExceptionInfo[InvalidArgument]) -> set[str]:
    return {v.field for v in error.value.violations}


def test_new_pipeline_is_version_1_with_its_stages_in_order() -> None:
    pipeline = _pipeline()
    assert pipeline.version == 1
    assert [s.id for s in pipeline.stages] == ["qualify", "proposal", "won", "lost"]
    assert pipeline.first_stage(OPEN).id == "qualify"
    assert pipeline.stage("proposal") == STAGES[1]
    assert pipeline.stage("nope") is None


def test_pipeline_without_a_won_stage_is_refused() -> None:
    with pytest.raises(InvalidArgument) as error:
        _pipeline((STAGES[0], STAGES[1], STAGES[3]))
    assert _fields(error) == {"pipeline.stages"}


def test_duplicate_stage_ids_blank_names_and_wrong_closing_probabilities_are_all_reported() -> None:
    stages = (
        Stage("qualify", "Qualify", 10, OPEN),
        Stage("qualify", " ", 20, OPEN),
        Stage("won", "Won", 90, WON),
        Stage("lost", "Lost", 5, LOST),
    )
    with pytest.raises(InvalidArgument) as error:
        _pipeline(stages, name="  ")
    assert _fields(error) == {
        "pipeline.name",
        "pipeline.stages[1].id",
        "pipeline.stages[1].name",
        "pipeline.stages[2].win_probability_percent",
        "pipeline.stages[3].win_probability_percent",
    }


def test_changing_stages_makes_a_new_version_and_leaves_the_old_one_alone() -> None:
    old = _pipeline()
    later = NOW + timedelta(days=1)
    stages = (*STAGES[:2], Stage("negotiation", "Negotiation", 80, OPEN), *STAGES[2:])
    revision = old.revise(PipelineInput(stages=stages), ["stages"], 1, later)
    assert revision.changed_paths == ("stages",)
    assert revision.pipeline.version == 2
    assert revision.pipeline.update_time == later
    assert revision.pipeline.stage("negotiation") is not None
    assert old.version == 1
    assert old.stage("negotiation") is None


def test_an_update_that_changes_nothing_makes_no_version() -> None:
    old = _pipeline()
    revision = old.revise(PipelineInput("Direct sales", STAGES), ["*"], None, NOW)
    assert revision.changed_paths == ()
    assert revision.pipeline is old


def test_update_based_on_an_old_version_is_stale() -> None:
    current = replace(_pipeline(), version=3)
    with pytest.raises(StaleVersion):
        current.revise(PipelineInput(name="Renamed"), ["name"], 2, NOW)


def test_update_mask_with_an_unknown_or_read_only_path_is_refused() -> None:
    with pytest.raises(InvalidArgument) as error:
        _pipeline().revise(PipelineInput(name="x"), ["version", "colour"], None, NOW)
    assert _fields(error) == {"update_mask"}
    assert len(error.value.violations) == 2
