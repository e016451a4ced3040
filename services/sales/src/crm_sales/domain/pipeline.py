"""Pipelines: a tenant's ordered stages, each with a win probability and a kind, versioned.

Every change of a pipeline makes a new version; earlier versions are kept unchanged, because an
opportunity is judged against the version it was created under (its stages, their order and
their probabilities), not against whatever the pipeline has become since.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from crm_sales.domain._checks import (
    Violations,
    check_version,
    join_path,
    parse_update_mask,
    required_text,
)

MAX_STAGES = 50
_STAGE_ID = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class StageKind(StrEnum):
    """What a stage means for the opportunity in it."""

    OPEN = "open"
    WON = "won"
    LOST = "lost"

    @property
    def closed(self) -> bool:
        """Whether an opportunity in a stage of this kind is closed (won or lost)."""
        return self is not StageKind.OPEN


CLOSED_PROBABILITY = {StageKind.WON: 100, StageKind.LOST: 0}
"""The only win probability a closing stage can have."""


@dataclass(frozen=True, slots=True)
class Stage:
    """One stage: a stable id, a display name, a win probability in percent, a kind."""

    id: str
    name: str
    win_probability_percent: int
    kind: StageKind


@dataclass(frozen=True, slots=True)
class PipelineInput:
    """What a caller sets on a pipeline."""

    name: str = ""
    stages: tuple[Stage, ...] = ()


def check_stages(stages: Sequence[Stage], violations: Violations, field: str) -> None:
    """The rules a pipeline's stages follow: 3 to 50 stages with unique ids, at least one of
    each kind, closing stages at 100 % (won) or 0 % (lost)."""
    if not has_every_kind(stages):
        violations.add(field, "needs at least one open, one won and one lost stage")
    if len(stages) > MAX_STAGES:
        violations.add(field, f"must have at most {MAX_STAGES} stages")
    seen: set[str] = set()
    for index, stage in enumerate(stages):
        path = f"{field}[{index}]"
        if not _STAGE_ID.match(stage.id):
            violations.add(f"{path}.id", "must be 1-64 characters of a-z, 0-9 and _, from a-z")
        elif stage.id in seen:
            violations.add(f"{path}.id", f'"{stage.id}" is used by an earlier stage')
        seen.add(stage.id)
        if not stage.name.strip():
            violations.add(f"{path}.name", "must be non-blank")
        if not 0 <= stage.win_probability_percent <= 100:
            violations.add(f"{path}.win_probability_percent", "must be between 0 and 100")
        elif (wanted := CLOSED_PROBABILITY.get(stage.kind, stage.win_probability_percent)) != (
            stage.win_probability_percent
        ):
            violations.add(
                f"{path}.win_probability_percent",
                f"must be {wanted} for a {stage.kind.value} stage",
            )


def has_every_kind(stages: Sequence[Stage]) -> bool:
    """Whether every kind of stage (open, won, lost) occurs."""
    return {stage.kind for stage in stages} == set(StageKind)


PIPELINE_MASK = ("name", "stages")
"""The fields an update may change."""


@dataclass(frozen=True, slots=True)
class Pipeline:
    """One version of a pipeline."""

    id: str
    tenant_id: str
    name: str
    stages: tuple[Stage, ...]
    version: int
    create_time: datetime
    update_time: datetime

    @classmethod
    def create(
        cls,
        *,
        id: str,
        tenant_id: str,
        fields: PipelineInput,
        now: datetime,
        field_prefix: str = "pipeline",
    ) -> Pipeline:
        """Version 1 of a new pipeline; ``InvalidArgument`` listing every bad field."""
        violations = Violations()
        name = required_text(fields.name, join_path(field_prefix, "name"), violations)
        stages = _clean_stages(fields.stages)
        check_stages(stages, violations, join_path(field_prefix, "stages"))
        violations.raise_if_any()
        return cls(id, tenant_id, name, stages, 1, now, now)

    def revise(
        self,
        changes: PipelineInput,
        paths: Sequence[str],
        expected_version: int | None,
        now: datetime,
        *,
        field_prefix: str = "pipeline",
    ) -> PipelineRevision:
        """The next version with the fields ``paths`` names replaced: ``InvalidArgument``
        (mask and values), then ``StaleVersion``; no change means no new version."""
        violations = Violations()
        named = parse_update_mask(paths, PIPELINE_MASK, violations)
        name, stages = self.name, self.stages
        if "name" in named:
            name = required_text(changes.name, join_path(field_prefix, "name"), violations)
        if "stages" in named:
            stages = _clean_stages(changes.stages)
            check_stages(stages, violations, join_path(field_prefix, "stages"))
        violations.raise_if_any()
        check_version(f"pipelines/{self.id}", expected_version, self.version)
        changed = tuple(
            path
            for path, old, new in (("name", self.name, name), ("stages", self.stages, stages))
            if old != new
        )
        if not changed:
            return PipelineRevision(self, ())
        revised = replace(self, name=name, stages=stages, version=self.version + 1, update_time=now)
        return PipelineRevision(revised, changed)

    def stage(self, stage_id: str) -> Stage | None:
        """The stage with this id in this version, if any."""
        return next((stage for stage in self.stages if stage.id == stage_id), None)

    def first_stage(self, kind: StageKind) -> Stage:
        """The first stage of ``kind`` (every version has one of each)."""
        return next(stage for stage in self.stages if stage.kind is kind)


@dataclass(frozen=True, slots=True)
class PipelineRevision:
    """The outcome of an update: the pipeline (a new version if anything changed) and the
    fields that changed."""

    pipeline: Pipeline
    changed_paths: tuple[str, ...]


def _clean_stages(stages: Sequence[Stage]) -> tuple[Stage, ...]:
    return tuple(replace(stage, name=stage.name.strip()) for stage in stages)
