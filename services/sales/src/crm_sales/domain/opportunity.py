"""Opportunities: a possible sale to an account, moving through one pipeline version's stages.

The stage rules:

* an opportunity is created in an OPEN stage of its pipeline's current version and keeps that
  version for its life: every later stage is looked up in it;
* ``move_to`` goes from an OPEN stage to another OPEN stage;
* ``win`` / ``lose`` go from an OPEN stage to a WON / LOST stage (a loss needs a reason);
* ``reopen`` is the only way from a WON or LOST stage back to an OPEN one.

Every stage entered is appended to the stage history with its time and actor, so the history's
last entry is always the current stage. Checks run in this order: the request's arguments
(an unknown stage is ``InvalidArgument`` on the stage field), then the caller's
``expected_version`` (``StaleVersion``), then whether the opportunity's state allows the change
(FAILED_PRECONDITION ``ILLEGAL_STAGE_CHANGE``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from enum import StrEnum

from crm_platform.errors import FailedPrecondition
from crm_sales.domain._checks import (
    Violations,
    check_version,
    join_path,
    parse_update_mask,
    required_text,
)
from crm_sales.domain.money import amount_problem, currency_problem
from crm_sales.domain.pipeline import Pipeline, Stage, StageKind
from crm_sales.domain.territories import (
    NO_PROFILE,
    CompanyProfile,
    TerritoryAssignment,
    clean_profile,
)

ILLEGAL_STAGE_CHANGE = "ILLEGAL_STAGE_CHANGE"
"""The FAILED_PRECONDITION of a stage change the opportunity's status does not allow."""


class BuyingRole(StrEnum):
    """The part a contact plays in the account's purchase."""

    DECISION_MAKER = "decision_maker"
    INFLUENCER = "influencer"
    USER = "user"
    BLOCKER = "blocker"
    CHAMPION = "champion"


@dataclass(frozen=True, slots=True)
class BuyingCentreMember:
    """A contact of the account's buying centre and their roles."""

    contact_id: str
    roles: tuple[BuyingRole, ...]


@dataclass(frozen=True, slots=True)
class LineItem:
    """One line of what is sold, priced in the opportunity's currency."""

    product_id: str
    description: str
    quantity: int
    unit_price_minor: int


@dataclass(frozen=True, slots=True)
class StageChange:
    """The opportunity entering a stage (``from_stage_id`` is empty for its first stage)."""

    from_stage_id: str
    to_stage_id: str
    to_kind: StageKind
    win_probability_percent: int
    change_time: datetime
    actor: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class OpportunityInput:
    """What a caller sets on an opportunity (the stage only on create)."""

    name: str = ""
    account_id: str = ""
    primary_contact_id: str = ""
    buying_centre: tuple[BuyingCentreMember, ...] = ()
    amount_minor: int = 0
    currency: str = ""
    expected_close_date: str = ""
    pipeline_id: str = ""
    stage_id: str = ""
    owner_id: str = ""
    source_lead_id: str = ""
    campaign_id: str = ""
    line_items: tuple[LineItem, ...] = ()
    account_profile: CompanyProfile = NO_PROFILE
    """The account's facts for the territory rules (set on create)."""


OPPORTUNITY_MASK = (
    "name",
    "account_id",
    "primary_contact_id",
    "buying_centre",
    "amount_minor",
    "currency",
    "expected_close_date",
    "owner_id",
    "source_lead_id",
    "campaign_id",
    "line_items",
)
"""The fields an update may change (the pipeline and the stage are not among them)."""


@dataclass(frozen=True, slots=True)
class Opportunity:
    """An opportunity at one version."""

    id: str
    tenant_id: str
    name: str
    account_id: str
    primary_contact_id: str
    buying_centre: tuple[BuyingCentreMember, ...]
    amount_minor: int
    currency: str
    expected_close_date: str
    pipeline_id: str
    pipeline_version: int
    stage_id: str
    status: StageKind
    owner_id: str
    source_lead_id: str
    campaign_id: str
    line_items: tuple[LineItem, ...]
    stage_history: tuple[StageChange, ...]
    close_reason: str
    close_time: datetime | None
    event_key: str
    """The Kafka key of its events, chosen on create and kept (see :func:`event_key_for`)."""
    version: int
    create_time: datetime
    update_time: datetime
    account_profile: CompanyProfile = NO_PROFILE
    territory: TerritoryAssignment | None = None
    """The territory rule decision that assigned the opportunity, if one did."""

    @classmethod
    def create(
        cls,
        *,
        id: str,
        tenant_id: str,
        fields: OpportunityInput,
        pipeline: Pipeline,
        now: datetime,
        actor: str,
        field_prefix: str = "opportunity",
    ) -> Opportunity:
        """Version 1 in ``fields.stage_id`` (an OPEN stage of ``pipeline``) or, if that is
        empty, in the pipeline's first OPEN stage; ``InvalidArgument`` listing every bad field."""
        violations = Violations()
        clean = _check_fields(fields, OPPORTUNITY_MASK, violations, field_prefix)
        profile = clean_profile(
            fields.account_profile, violations.items, join_path(field_prefix, "account_profile")
        )
        stage = pipeline.first_stage(StageKind.OPEN)
        if fields.stage_id:
            stage_field = join_path(field_prefix, "stage_id")
            stage = _stage_of_kind(
                pipeline, fields.stage_id, {StageKind.OPEN}, violations, stage_field
            )
        violations.raise_if_any()
        entered = StageChange("", stage.id, stage.kind, stage.win_probability_percent, now, actor)
        return cls(
            id=id,
            tenant_id=tenant_id,
            name=clean.name,
            account_id=clean.account_id,
            primary_contact_id=clean.primary_contact_id,
            buying_centre=clean.buying_centre,
            amount_minor=clean.amount_minor,
            currency=clean.currency,
            expected_close_date=clean.expected_close_date,
            pipeline_id=pipeline.id,
            pipeline_version=pipeline.version,
            stage_id=stage.id,
            status=stage.kind,
            owner_id=clean.owner_id,
            source_lead_id=clean.source_lead_id,
            campaign_id=clean.campaign_id,
            line_items=clean.line_items,
            stage_history=(entered,),
            close_reason="",
            close_time=None,
            event_key=event_key_for(id, clean.primary_contact_id, clean.account_id),
            version=1,
            create_time=now,
            update_time=now,
            account_profile=profile,
        )

    @property
    def subject(self) -> str:
        """The aggregate's name in errors and events."""
        return f"opportunities/{self.id}"

    def apply_update(
        self,
        changes: OpportunityInput,
        paths: Sequence[str],
        expected_version: int | None,
        now: datetime,
        *,
        field_prefix: str = "opportunity",
    ) -> OpportunityUpdate:
        """The next version with the fields ``paths`` names replaced: ``InvalidArgument``
        (mask and values, all at once), then ``StaleVersion``; no change, no new version."""
        violations = Violations()
        named = parse_update_mask(paths, OPPORTUNITY_MASK, violations)
        clean = _check_fields(changes, named, violations, field_prefix)
        violations.raise_if_any()
        check_version(self.subject, expected_version, self.version)
        values = {name: getattr(clean, name) for name in named}
        changed = tuple(name for name in named if getattr(self, name) != values[name])
        if not changed:
            return OpportunityUpdate(self, ())
        updated = replace(
            self,
            **{name: values[name] for name in changed},
            version=self.version + 1,
            update_time=now,
        )
        return OpportunityUpdate(updated, changed)

    def move_to(
        self,
        stage_id: str,
        pipeline: Pipeline,
        expected_version: int | None,
        now: datetime,
        actor: str,
    ) -> StageMove:
        """From an OPEN stage to another OPEN stage of its pipeline version (moving to the
        current stage changes nothing)."""
        target = self._target(pipeline, stage_id, {StageKind.OPEN}, "stage_id")
        check_version(self.subject, expected_version, self.version)
        self._require_status(StageKind.OPEN, "move", "reopen it to move it to an open stage")
        if target.id == self.stage_id:
            return StageMove(self, None)
        return self._enter(target, now, actor, "")

    def win(
        self,
        stage_id: str,
        reason: str,
        pipeline: Pipeline,
        expected_version: int | None,
        now: datetime,
        actor: str,
    ) -> StageMove:
        """From an OPEN stage to ``stage_id`` (a WON stage) or the version's first WON stage."""
        return self._close(StageKind.WON, stage_id, reason, pipeline, expected_version, now, actor)

    def lose(
        self,
        stage_id: str,
        reason: str,
        pipeline: Pipeline,
        expected_version: int | None,
        now: datetime,
        actor: str,
    ) -> StageMove:
        """From an OPEN stage to ``stage_id`` (a LOST stage) or the first LOST stage; a loss
        needs a non-blank ``reason``."""
        return self._close(StageKind.LOST, stage_id, reason, pipeline, expected_version, now, actor)

    def reopen(
        self,
        stage_id: str,
        reason: str,
        pipeline: Pipeline,
        expected_version: int | None,
        now: datetime,
        actor: str,
    ) -> StageMove:
        """From a WON or LOST stage back to an OPEN stage; the close reason and time are
        cleared (the history keeps them)."""
        target = self._target(pipeline, stage_id, {StageKind.OPEN}, "stage_id")
        check_version(self.subject, expected_version, self.version)
        if not self.status.closed:
            raise FailedPrecondition(
                ILLEGAL_STAGE_CHANGE, self.subject, "is open: only a won or lost one is reopened"
            )
        return self._enter(target, now, actor, reason.strip())

    # --- internals --------------------------------------------------------------------------

    def _close(
        self,
        kind: StageKind,
        stage_id: str,
        reason: str,
        pipeline: Pipeline,
        expected_version: int | None,
        now: datetime,
        actor: str,
    ) -> StageMove:
        violations = Violations()
        why = reason.strip()
        if kind is StageKind.LOST and not why:
            violations.add("reason", "must be non-blank: say why the opportunity was lost")
        target = pipeline.first_stage(kind)
        if stage_id:
            target = _stage_of_kind(pipeline, stage_id, {kind}, violations, "stage_id")
        violations.raise_if_any()
        check_version(self.subject, expected_version, self.version)
        self._require_status(StageKind.OPEN, kind.value, "reopen it first")
        return self._enter(target, now, actor, why)

    def _target(
        self, pipeline: Pipeline, stage_id: str, kinds: set[StageKind], field: str
    ) -> Stage:
        violations = Violations()
        stage = _stage_of_kind(pipeline, stage_id, kinds, violations, field)
        violations.raise_if_any()
        return stage

    def _require_status(self, status: StageKind, action: str, hint: str) -> None:
        if self.status is not status:
            raise FailedPrecondition(
                ILLEGAL_STAGE_CHANGE,
                self.subject,
                f"is {self.status.value} (stage {self.stage_id!r}): cannot {action}; {hint}",
            )

    def _enter(self, stage: Stage, now: datetime, actor: str, reason: str) -> StageMove:
        change = StageChange(
            self.stage_id, stage.id, stage.kind, stage.win_probability_percent, now, actor, reason
        )
        closed = stage.kind.closed
        moved = replace(
            self,
            stage_id=stage.id,
            status=stage.kind,
            stage_history=(*self.stage_history, change),
            close_reason=reason if closed else "",
            close_time=now if closed else None,
            version=self.version + 1,
            update_time=now,
        )
        return StageMove(moved, change)


@dataclass(frozen=True, slots=True)
class OpportunityUpdate:
    """The outcome of an update: the opportunity and the fields that changed."""

    opportunity: Opportunity
    changed_paths: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class StageMove:
    """The outcome of a stage change: the opportunity and the change (``None``: none)."""

    opportunity: Opportunity
    change: StageChange | None


def event_key_for(opportunity_id: str, primary_contact_id: str, account_id: str) -> str:
    """The partition key of an opportunity's events: its primary contact; for an account deal
    without one, the account (organisation) id; failing both, the opportunity id."""
    return primary_contact_id or account_id or opportunity_id


def _stage_of_kind(
    pipeline: Pipeline, stage_id: str, kinds: set[StageKind], violations: Violations, field: str
) -> Stage:
    """The stage ``stage_id`` of ``pipeline`` if it is of one of ``kinds``; otherwise a
    violation on ``field`` and the first stage of one of ``kinds`` (a placeholder)."""
    stage = pipeline.stage(stage_id)
    if stage is None:
        violations.add(
            field,
            f"no stage {stage_id!r} in pipeline {pipeline.id} version {pipeline.version}",
        )
    elif stage.kind not in kinds:
        wanted = " or ".join(sorted(kind.value for kind in kinds))
        violations.add(field, f"stage {stage_id!r} is a {stage.kind.value} stage, not {wanted}")
    else:
        return stage
    return pipeline.first_stage(min(kinds))


def _check_fields(
    fields: OpportunityInput, named: Sequence[str], violations: Violations, prefix: str
) -> OpportunityInput:
    """``fields`` cleaned (text stripped), with a violation for each bad field in ``named``."""

    def path(name: str) -> str:
        return join_path(prefix, name)

    name = fields.name.strip()
    if "name" in named:
        name = required_text(fields.name, path("name"), violations)
    if "amount_minor" in named and (problem := amount_problem(fields.amount_minor)):
        violations.add(path("amount_minor"), problem)
    if "currency" in named and (problem := currency_problem(fields.currency)):
        violations.add(path("currency"), problem)
    if "expected_close_date" in named and fields.expected_close_date:
        try:
            date.fromisoformat(fields.expected_close_date)
        except ValueError:
            violations.add(path("expected_close_date"), "must be a date as YYYY-MM-DD")
    if "buying_centre" in named:
        seen: set[str] = set()
        for index, member in enumerate(fields.buying_centre):
            member_path = f"{path('buying_centre')}[{index}]"
            if not member.contact_id.strip():
                violations.add(f"{member_path}.contact_id", "must be non-blank")
            elif member.contact_id in seen:
                violations.add(f"{member_path}.contact_id", "is already in the buying centre")
            seen.add(member.contact_id)
            if not member.roles:
                violations.add(f"{member_path}.roles", "must name at least one role")
    if "line_items" in named:
        for index, item in enumerate(fields.line_items):
            item_path = f"{path('line_items')}[{index}]"
            if not item.product_id.strip():
                violations.add(f"{item_path}.product_id", "must be non-blank")
            if item.quantity < 1:
                violations.add(f"{item_path}.quantity", "must be at least 1")
            if problem := amount_problem(item.unit_price_minor):
                violations.add(f"{item_path}.unit_price_minor", problem)
    return replace(
        fields,
        name=name,
        buying_centre=tuple(
            BuyingCentreMember(m.contact_id.strip(), tuple(dict.fromkeys(m.roles)))
            for m in fields.buying_centre
        ),
    )
