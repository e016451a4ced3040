"""The territories in their protobuf form: domain → protobuf for responses and events, and the
request messages → domain inputs (both directions here: the messages are territories' own).
:mod:`crm_sales.contract` uses it for the territory fields of leads and opportunities."""

from __future__ import annotations

from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from crm.sales.v1 import territories_pb2 as pb
from crm.sales.v1 import territories_types_pb2 as types_pb
from crm_sales.domain.territories import (
    NO_PROFILE,
    CompanyProfile,
    CompanySize,
    RecordKind,
    TerritoryAssignment,
    TerritoryCondition,
    TerritoryDecision,
    TerritoryRule,
    TerritoryRuleInput,
)


def timestamp(value: datetime) -> Timestamp:
    """A time as a protobuf timestamp."""
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


_SIZES: dict[int, CompanySize] = {
    types_pb.COMPANY_SIZE_MICRO: CompanySize.MICRO,
    types_pb.COMPANY_SIZE_SMALL: CompanySize.SMALL,
    types_pb.COMPANY_SIZE_MEDIUM: CompanySize.MEDIUM,
    types_pb.COMPANY_SIZE_LARGE: CompanySize.LARGE,
    types_pb.COMPANY_SIZE_ENTERPRISE: CompanySize.ENTERPRISE,
}
_SIZE_NUMBERS: dict[CompanySize, int] = {size: number for number, size in _SIZES.items()}
_KINDS: dict[int, RecordKind] = {
    pb.TERRITORY_RECORD_KIND_LEAD: RecordKind.LEAD,
    pb.TERRITORY_RECORD_KIND_OPPORTUNITY: RecordKind.OPPORTUNITY,
}
_KIND_NUMBERS: dict[RecordKind, int] = {kind: number for number, kind in _KINDS.items()}


def size_from_pb(value: int) -> CompanySize | None:
    """The size band of a proto value; ``None`` for UNSPECIFIED (unknown values are refused by
    the proto rules)."""
    return _SIZES.get(value)


def kind_from_pb(value: int) -> str:
    """The record kind of a proto value, as its domain value; an unknown or UNSPECIFIED one as
    a text the domain refuses (the proto rules normally refuse it first)."""
    kind = _KINDS.get(value)
    return kind.value if kind is not None else f"unspecified({value})"


def profile_from_pb(message: types_pb.CompanyProfile) -> CompanyProfile:
    """A company profile from the API (validated by the domain)."""
    return CompanyProfile(
        country=message.country,
        region=message.region,
        postal_code=message.postal_code,
        industry=message.industry,
        size=size_from_pb(message.size),
        tier=message.tier,
    )


def profile_to_pb(profile: CompanyProfile) -> types_pb.CompanyProfile | None:
    """The API form of a company profile (unset when nothing is known)."""
    if profile == NO_PROFILE:
        return None
    return types_pb.CompanyProfile(
        country=profile.country,
        region=profile.region,
        postal_code=profile.postal_code,
        industry=profile.industry,
        size=_SIZE_NUMBERS[profile.size] if profile.size else 0,  # type: ignore[arg-type]
        tier=profile.tier,
    )


def assignment_to_pb(assignment: TerritoryAssignment | None) -> types_pb.TerritoryAssignment | None:
    """The API form of a territory decision kept on a record."""
    if assignment is None:
        return None
    return types_pb.TerritoryAssignment(
        territory_id=assignment.territory_id,
        owner_id=assignment.owner_id,
        team_id=assignment.team_id,
        rule_id=assignment.rule_id,
        rule_version=assignment.rule_version,
        decide_time=timestamp(assignment.decide_time),
    )


def decision_to_pb(decision: TerritoryDecision) -> types_pb.TerritoryAssignment:
    """The API form of a dry-run decision (nothing decided at any time: no decide_time)."""
    target = decision.action
    return types_pb.TerritoryAssignment(
        territory_id=target.territory_id,
        owner_id=target.owner_id,
        team_id=target.team_id,
        rule_id=decision.rule_id,
        rule_version=decision.rule_version,
    )


def condition_from_pb(message: pb.TerritoryCondition) -> TerritoryCondition:
    """A rule condition from the API (validated with the rule)."""
    return TerritoryCondition(
        countries=frozenset(message.countries),
        regions=frozenset(message.regions),
        postal_prefixes=frozenset(message.postal_prefixes),
        industries=frozenset(message.industries),
        sizes=frozenset(
            size for value in message.sizes if (size := size_from_pb(value)) is not None
        ),
        tiers=frozenset(message.tiers),
    )


def rule_input(message: pb.TerritoryRule) -> TerritoryRuleInput:
    """The caller-settable fields of a rule message."""
    return TerritoryRuleInput(
        name=message.name,
        position=message.position,
        enabled=message.enabled,
        applies_to=tuple(kind_from_pb(value) for value in message.applies_to),
        condition=condition_from_pb(message.condition),
        territory_id=message.territory_id,
        owner_id=message.owner_id,
        team_id=message.team_id,
    )


def condition_to_pb(condition: TerritoryCondition) -> pb.TerritoryCondition:
    """The API form of a rule condition (values sorted)."""
    return pb.TerritoryCondition(
        countries=sorted(condition.countries),
        regions=sorted(condition.regions),
        postal_prefixes=sorted(condition.postal_prefixes),
        industries=sorted(condition.industries),
        sizes=sorted(_SIZE_NUMBERS[size] for size in condition.sizes),  # type: ignore[misc]
        tiers=sorted(condition.tiers),
    )


def rule_to_pb(rule: TerritoryRule) -> pb.TerritoryRule:
    """The API form of a rule version."""
    return pb.TerritoryRule(
        id=rule.rule_id,
        name=rule.name,
        position=rule.position,
        enabled=rule.enabled,
        applies_to=sorted(_KIND_NUMBERS[kind] for kind in rule.applies_to),  # type: ignore[misc]
        condition=condition_to_pb(rule.condition),
        territory_id=rule.territory_id,
        owner_id=rule.owner_id,
        team_id=rule.team_id,
        version=rule.version,
        deleted=rule.deleted,
        create_time=timestamp(rule.create_time),
        update_time=timestamp(rule.update_time),
    )


def kind_of(value: int) -> RecordKind | None:
    """The record kind of a proto value, ``None`` for UNSPECIFIED or unknown."""
    return _KINDS.get(value)
