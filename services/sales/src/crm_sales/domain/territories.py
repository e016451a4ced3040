"""Territories: ordered, versioned rules that give leads and opportunities a territory, an
owner and/or a team from the company's facts (:class:`CompanyProfile`).

A :class:`TerritoryRule` pairs a :class:`TerritoryCondition` on the facts with what it assigns
(:class:`TerritoryTarget`). :func:`evaluate` tries a tenant's enabled rules for one kind of
record in ``(position, rule_id)`` order and the first whose condition holds decides: a
:class:`~crm_platform.rules.Decision` naming the rule and its version, so every assignment can
be audited against the rule text that made it. Ordering, versioning (``expected_version``,
stale checks, no change → no new version), decisions and the field checks are the shared ones
of :mod:`crm_platform.rules`, as for the service desk's routing rules; the territory
vocabulary is here.

Applying a decision (:func:`assign`): the record gets the territory and the team, and the
owner when the rule names one; when it names only a team, a record moving to another team
loses its owner (they belong to the old team), as a ticket routed to another team loses its
agent.

Pure code: no clock, no I/O.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Protocol, TypeVar

import pycountry

from crm_platform.errors import FieldViolation, InvalidArgument
from crm_platform.rules import (
    MAX_NAME_LENGTH,
    MAX_VALUE_LENGTH,
    Decision,
    check_position,
    check_version,
    clean_enum_values,
    clean_id,
    clean_text,
    clean_values,
    first_match,
    path,
    revise,
)
from crm_sales.domain._checks import Violations, parse_update_mask

MAX_POSTAL_LENGTH = 16
NO_TERRITORY_RULE_MATCHES = "NO_TERRITORY_RULE_MATCHES"
"""The FAILED_PRECONDITION of an assignment no rule decides."""


class RecordKind(StrEnum):
    """The kinds of record a territory rule applies to."""

    LEAD = "lead"
    OPPORTUNITY = "opportunity"


class CompanySize(StrEnum):
    """A company's size band, by number of employees."""

    MICRO = "micro"  # 1-9
    SMALL = "small"  # 10-49
    MEDIUM = "medium"  # 50-249
    LARGE = "large"  # 250-999
    ENTERPRISE = "enterprise"  # 1000+


def normal_postal(value: str) -> str:
    """A postal code or prefix as compared: without blanks, upper case."""
    return "".join(value.split()).upper()


@dataclass(frozen=True, slots=True)
class CompanyProfile:
    """A company's facts the rules look at; empty strings and ``None`` mean "unknown"."""

    country: str = ""
    region: str = ""
    postal_code: str = ""
    industry: str = ""
    size: CompanySize | None = None
    tier: str = ""


NO_PROFILE = CompanyProfile()
"""A company nothing is known of."""


def clean_profile(
    profile: CompanyProfile, violations: list[FieldViolation], prefix: str
) -> CompanyProfile:
    """``profile`` trimmed (the country in upper case); a violation for each bad field (an
    unknown ISO 3166-1 alpha-2 country, a long value, control characters)."""
    country = profile.country.strip().upper()
    if country and (len(country) != 2 or pycountry.countries.get(alpha_2=country) is None):
        violations.append(
            FieldViolation(
                path(prefix, "country"),
                f"must be an ISO 3166-1 alpha-2 country code, got {country[:8]!r}",
            )
        )

    def text(name: str, value: str, max_length: int = MAX_VALUE_LENGTH) -> str:
        return clean_text(
            violations, path(prefix, name), value, max_length=max_length, required=False
        )

    size = profile.size
    if size is not None and not isinstance(size, CompanySize):
        violations.append(FieldViolation(path(prefix, "size"), f"unknown value {size!r}"))
    return CompanyProfile(
        country=country,
        region=text("region", profile.region),
        postal_code=text("postal_code", profile.postal_code, MAX_POSTAL_LENGTH),
        industry=text("industry", profile.industry),
        size=size,
        tier=text("tier", profile.tier),
    )


def _folded(values: Iterable[str]) -> frozenset[str]:
    return frozenset(value.casefold() for value in values)


@dataclass(frozen=True, slots=True)
class TerritoryCondition:
    """When a rule applies: every non-empty set must contain the company's value (AND between
    the fields, OR within one); an empty condition always holds. An unknown fact matches no
    set. Regions, industries and tiers are compared ignoring case; a postal code matches when
    it starts with one of ``postal_prefixes`` (both without blanks, ignoring case)."""

    countries: frozenset[str] = frozenset()
    regions: frozenset[str] = frozenset()
    postal_prefixes: frozenset[str] = frozenset()
    industries: frozenset[str] = frozenset()
    sizes: frozenset[CompanySize] = frozenset()
    tiers: frozenset[str] = frozenset()

    def matches(self, profile: CompanyProfile) -> bool:
        """Whether the condition holds for ``profile``."""
        if self.countries and profile.country.upper() not in self.countries:
            return False
        if self.regions and profile.region.casefold() not in _folded(self.regions):
            return False
        if self.postal_prefixes:
            code = normal_postal(profile.postal_code)
            if not code or not any(code.startswith(p) for p in self.postal_prefixes):
                return False
        if self.industries and profile.industry.casefold() not in _folded(self.industries):
            return False
        if self.sizes and profile.size not in self.sizes:
            return False
        return not (self.tiers and profile.tier.casefold() not in _folded(self.tiers))


@dataclass(frozen=True, slots=True)
class TerritoryTarget:
    """What a rule assigns: a territory, and an owner and/or a team."""

    territory_id: str
    owner_id: str = ""
    team_id: str = ""


TerritoryDecision = Decision[TerritoryTarget]
"""A rule's decision for a record (:class:`crm_platform.rules.Decision`): the target, with
the rule id and version."""


@dataclass(frozen=True, slots=True)
class TerritoryAssignment:
    """A decision as a record keeps it: the target, the rule and version, and when."""

    territory_id: str
    owner_id: str
    team_id: str
    rule_id: str
    rule_version: int
    decide_time: datetime

    @classmethod
    def of(cls, decision: TerritoryDecision, at: datetime) -> TerritoryAssignment:
        """The assignment ``decision`` makes at ``at``."""
        target = decision.action
        return cls(
            territory_id=target.territory_id,
            owner_id=target.owner_id,
            team_id=target.team_id,
            rule_id=decision.rule_id,
            rule_version=decision.rule_version,
            decide_time=at,
        )

    def same_decision(self, other: TerritoryAssignment | None) -> bool:
        """Whether ``other`` is the same decision (rule, version, target), whenever made."""
        return other is not None and replace(other, decide_time=self.decide_time) == self


@dataclass(frozen=True, slots=True)
class TerritoryRuleInput:
    """What a caller sets on a rule."""

    name: str = ""
    position: int = 0
    enabled: bool = True
    applies_to: tuple[str, ...] = ()
    condition: TerritoryCondition = TerritoryCondition()
    territory_id: str = ""
    owner_id: str = ""
    team_id: str = ""


RULE_MASK = (
    "name",
    "position",
    "enabled",
    "applies_to",
    "condition",
    "territory_id",
    "owner_id",
    "team_id",
)
"""The fields an update may change."""


@dataclass(frozen=True, slots=True)
class TerritoryRule:
    """A rule at one version. Build one with :meth:`create`; change it with :meth:`revised` or
    :meth:`deleted` (each validates). ``version`` starts at 1 and grows by one with every
    change, so a decision's ``(rule_id, rule_version)`` names exactly one rule text."""

    rule_id: str
    tenant_id: str
    version: int
    name: str
    position: int
    enabled: bool
    applies_to: frozenset[RecordKind]
    condition: TerritoryCondition
    territory_id: str
    owner_id: str
    team_id: str
    deleted: bool
    create_time: datetime
    update_time: datetime

    @classmethod
    def create(
        cls,
        *,
        rule_id: str,
        tenant_id: str,
        fields: TerritoryRuleInput,
        now: datetime,
        field_prefix: str = "rule",
    ) -> TerritoryRule:
        """Version 1; ``InvalidArgument`` listing every bad field."""
        violations: list[FieldViolation] = []
        rule = _checked(
            violations,
            field_prefix,
            fields,
            rule_id=rule_id,
            tenant_id=tenant_id,
            version=1,
            create_time=now,
            update_time=now,
        )
        if violations:
            raise InvalidArgument(violations)
        return rule

    @property
    def subject(self) -> str:
        """The rule's name in errors and events."""
        return f"territoryRules/{self.rule_id}"

    @property
    def target(self) -> TerritoryTarget:
        """What the rule assigns."""
        return TerritoryTarget(self.territory_id, self.owner_id, self.team_id)

    def as_input(self) -> TerritoryRuleInput:
        """The caller-settable fields, as they are."""
        return TerritoryRuleInput(
            name=self.name,
            position=self.position,
            enabled=self.enabled,
            applies_to=tuple(sorted(self.applies_to)),
            condition=self.condition,
            territory_id=self.territory_id,
            owner_id=self.owner_id,
            team_id=self.team_id,
        )

    def revised(
        self,
        changes: TerritoryRuleInput,
        paths: Sequence[str],
        expected_version: int | None,
        now: datetime,
        *,
        field_prefix: str = "rule",
    ) -> TerritoryRuleRevision:
        """The next version with the fields the update mask ``paths`` names replaced (``*``:
        all of :data:`RULE_MASK`): ``InvalidArgument``, then ``StaleVersion``; no change, no new
        version."""
        checks = Violations()
        named = parse_update_mask(paths, RULE_MASK, checks)
        violations = checks.items
        merged = replace(self.as_input(), **{name: getattr(changes, name) for name in named})
        candidate = _checked(
            violations,
            field_prefix,
            merged,
            rule_id=self.rule_id,
            tenant_id=self.tenant_id,
            version=self.version,
            create_time=self.create_time,
            update_time=self.update_time,
        )
        if violations:
            raise InvalidArgument(violations)
        revised = revise(
            self, candidate, now=now, expected_version=expected_version, subject=self.subject
        )
        changed = tuple(name for name in RULE_MASK if getattr(self, name) != getattr(revised, name))
        return TerritoryRuleRevision(revised, changed)

    def deleted_version(self, expected_version: int | None, now: datetime) -> TerritoryRule:
        """The rule's last version: its deletion (``StaleVersion`` when based on another)."""
        check_version(self.subject, expected_version, self.version)
        return replace(self, deleted=True, version=self.version + 1, update_time=now)


@dataclass(frozen=True, slots=True)
class TerritoryRuleRevision:
    """The outcome of an update: the rule and the fields that changed (none: no new version)."""

    rule: TerritoryRule
    changed_paths: tuple[str, ...]


def evaluate(
    rules: Iterable[TerritoryRule], kind: RecordKind, profile: CompanyProfile
) -> TerritoryDecision | None:
    """The decision for a record of ``kind`` with ``profile``: the first enabled, not deleted
    rule for ``kind`` in ``(position, rule_id)`` order whose condition holds, or ``None``."""
    rule = first_match(
        rules,
        lambda r: r.condition.matches(profile),
        applies=lambda r: not r.deleted and kind in r.applies_to,
    )
    return None if rule is None else TerritoryDecision(rule.rule_id, rule.version, rule.target)


class Assignable(Protocol):
    """A record the rules assign (a lead, an opportunity)."""

    @property
    def owner_id(self) -> str: ...

    @property
    def territory(self) -> TerritoryAssignment | None: ...

    @property
    def version(self) -> int: ...

    @property
    def subject(self) -> str: ...


T = TypeVar("T", bound=Assignable)


def assign(record: T, assignment: TerritoryAssignment) -> T:
    """``record`` with the assignment applied (the version is the caller's business): the
    rule's owner if it names one; else the current owner, unless the team changes."""
    owner = assignment.owner_id
    if not owner:
        current = record.territory
        same_team = current is not None and current.team_id == assignment.team_id
        owner = record.owner_id if (same_team or not assignment.team_id) else ""
    return dataclasses.replace(record, owner_id=owner, territory=assignment)  # type: ignore[type-var]


def reassigned(
    record: T, assignment: TerritoryAssignment, expected_version: int | None, now: datetime
) -> T | None:
    """The next version of an existing ``record`` with ``assignment`` applied, or ``None`` when
    the record already has that decision and owner; ``StaleVersion`` when based on another
    version."""
    check_version(record.subject, expected_version, record.version)
    applied = assign(record, assignment)
    if assignment.same_decision(record.territory) and applied.owner_id == record.owner_id:
        return None
    return dataclasses.replace(  # type: ignore[type-var]
        applied, version=record.version + 1, update_time=now
    )


# --- validation -----------------------------------------------------------------------------


def _checked(
    violations: list[FieldViolation],
    prefix: str,
    fields: TerritoryRuleInput,
    *,
    rule_id: str,
    tenant_id: str,
    version: int,
    create_time: datetime,
    update_time: datetime,
) -> TerritoryRule:
    """The rule these fields make, cleaned; every problem found is appended to ``violations``."""
    applies_path = path(prefix, "applies_to")
    if not fields.applies_to:
        violations.append(
            FieldViolation(applies_path, "must name a kind of record: lead, opportunity or both")
        )
    applies_to = clean_enum_values(violations, applies_path, fields.applies_to, RecordKind)
    check_position(violations, path(prefix, "position"), fields.position)
    territory_id = clean_id(
        violations, path(prefix, "territory_id"), fields.territory_id, required=True
    )
    owner_id = clean_id(violations, path(prefix, "owner_id"), fields.owner_id, required=False)
    team_id = clean_id(violations, path(prefix, "team_id"), fields.team_id, required=False)
    if not owner_id and not team_id:
        violations.append(
            FieldViolation(path(prefix, "owner_id"), "a rule assigns an owner or a team, or both")
        )
    return TerritoryRule(
        rule_id=rule_id,
        tenant_id=tenant_id,
        version=version,
        name=clean_text(
            violations, path(prefix, "name"), fields.name, max_length=MAX_NAME_LENGTH, required=True
        ),
        position=fields.position,
        enabled=fields.enabled,
        applies_to=applies_to,
        condition=_clean_condition(violations, path(prefix, "condition"), fields.condition),
        territory_id=territory_id,
        owner_id=owner_id,
        team_id=team_id,
        deleted=False,
        create_time=create_time,
        update_time=update_time,
    )


def _clean_condition(
    violations: list[FieldViolation], prefix: str, condition: TerritoryCondition
) -> TerritoryCondition:
    countries = clean_values(
        violations, path(prefix, "countries"), condition.countries, normalise=str.upper
    )
    for country in sorted(countries):
        if len(country) != 2 or pycountry.countries.get(alpha_2=country) is None:
            violations.append(
                FieldViolation(
                    path(prefix, "countries"),
                    f"must be ISO 3166-1 alpha-2 country codes, got {country[:8]!r}",
                )
            )
    sizes = clean_enum_values(violations, path(prefix, "sizes"), condition.sizes, CompanySize)
    return TerritoryCondition(
        countries=countries,
        regions=clean_values(violations, path(prefix, "regions"), condition.regions),
        postal_prefixes=clean_values(
            violations,
            path(prefix, "postal_prefixes"),
            condition.postal_prefixes,
            max_length=MAX_POSTAL_LENGTH,
            normalise=normal_postal,
        ),
        industries=clean_values(violations, path(prefix, "industries"), condition.industries),
        sizes=sizes,
        tiers=clean_values(violations, path(prefix, "tiers"), condition.tiers),
    )
