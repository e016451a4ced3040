"""SLA policies: which tickets a policy applies to, and its targets on which clock.

Policies are matched in ascending ``position`` (ties by id); the first enabled policy whose
conditions all hold applies. A condition left empty matches every value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from crm_platform.errors import FieldViolation, InvalidArgument
from crm_servicedesk.domain.sla_clock import ClockKind
from crm_servicedesk.domain.values import (
    DEFAULT_PAUSE_STATUSES,
    Channel,
    Priority,
    SlaTarget,
    TicketStatus,
    TicketType,
)

DEFAULT_AT_RISK_FRACTION = 0.8


@dataclass(frozen=True, slots=True)
class TargetSpec:
    """One target of a policy: e.g. first response within 4 business hours."""

    target: SlaTarget
    clock: ClockKind
    seconds: int


@dataclass(frozen=True, slots=True)
class SlaPolicy:
    """Conditions → targets, with the statuses that pause the clocks."""

    policy_id: str
    tenant_id: str
    name: str
    position: int
    priorities: tuple[Priority, ...]
    types: tuple[TicketType, ...]
    channels: tuple[Channel, ...]
    customer_tiers: tuple[str, ...]
    calendar_id: str
    targets: tuple[TargetSpec, ...]
    pause_statuses: tuple[TicketStatus, ...]
    at_risk_fraction: float
    enabled: bool
    version: int
    updated_at: datetime

    @classmethod
    def create(
        cls,
        *,
        policy_id: str,
        tenant_id: str,
        name: str,
        position: int,
        priorities: Sequence[Priority],
        types: Sequence[TicketType],
        channels: Sequence[Channel],
        customer_tiers: Sequence[str],
        calendar_id: str,
        targets: Sequence[TargetSpec],
        pause_statuses: Sequence[TicketStatus],
        at_risk_fraction: float,
        enabled: bool,
        version: int,
        updated_at: datetime,
    ) -> SlaPolicy:
        """A validated policy; every violation is reported at once."""
        violations: list[FieldViolation] = []
        if not name.strip():
            violations.append(FieldViolation("policy.name", "must not be blank"))
        seen: set[SlaTarget] = set()
        for index, spec in enumerate(targets):
            if spec.target in seen:
                violations.append(
                    FieldViolation(f"policy.targets[{index}].target", "one target of each kind")
                )
            seen.add(spec.target)
        needs_calendar = any(spec.clock is ClockKind.BUSINESS for spec in targets)
        if needs_calendar and not calendar_id:
            violations.append(
                FieldViolation("policy.calendar_id", "required when a target is on business clock")
            )
        for index, status in enumerate(pause_statuses):
            if status not in DEFAULT_PAUSE_STATUSES:
                violations.append(
                    FieldViolation(
                        f"policy.pause_statuses[{index}]",
                        "only pending_customer and on_hold can pause the clocks",
                    )
                )
        if violations:
            raise InvalidArgument(violations)
        return cls(
            policy_id=policy_id,
            tenant_id=tenant_id,
            name=name.strip(),
            position=position,
            priorities=tuple(dict.fromkeys(priorities)),
            types=tuple(dict.fromkeys(types)),
            channels=tuple(dict.fromkeys(channels)),
            customer_tiers=tuple(dict.fromkeys(customer_tiers)),
            calendar_id=calendar_id,
            targets=tuple(sorted(targets, key=lambda spec: list(SlaTarget).index(spec.target))),
            pause_statuses=tuple(dict.fromkeys(pause_statuses)) or DEFAULT_PAUSE_STATUSES,
            at_risk_fraction=at_risk_fraction or DEFAULT_AT_RISK_FRACTION,
            enabled=enabled,
            version=version,
            updated_at=updated_at,
        )

    def revised(self, new: SlaPolicy) -> SlaPolicy:
        """``new`` as the next version of this policy."""
        return replace(new, policy_id=self.policy_id, version=self.version + 1)

    def matches(
        self, *, priority: Priority, type_: TicketType, channel: Channel, customer_tier: str
    ) -> bool:
        """Whether every non-empty condition holds for the ticket."""
        return (
            self.enabled
            and (not self.priorities or priority in self.priorities)
            and (not self.types or type_ in self.types)
            and (not self.channels or channel in self.channels)
            and (not self.customer_tiers or customer_tier in self.customer_tiers)
        )

    def target(self, target: SlaTarget) -> TargetSpec | None:
        """The policy's spec for one target, if it has one."""
        return next((spec for spec in self.targets if spec.target is target), None)


def select_policy(
    policies: Sequence[SlaPolicy],
    *,
    priority: Priority,
    type_: TicketType,
    channel: Channel,
    customer_tier: str,
) -> SlaPolicy | None:
    """The first matching policy in position order, or None."""
    for policy in sorted(policies, key=lambda p: (p.position, p.policy_id)):
        if policy.matches(
            priority=priority, type_=type_, channel=channel, customer_tier=customer_tier
        ):
            return policy
    return None
