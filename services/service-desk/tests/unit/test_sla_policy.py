"""SLA policies: validation, normalisation, matching and selection."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from crm_platform.errors import InvalidArgument
from crm_servicedesk.domain.sla_clock import ClockKind
from crm_servicedesk.domain.sla_policy import (
    DEFAULT_AT_RISK_FRACTION,
    SlaPolicy,
    TargetSpec,
    select_policy,
)
from crm_servicedesk.domain.values import (
    DEFAULT_PAUSE_STATUSES,
    Channel,
    Priority,
    SlaTarget,
    TicketStatus,
    TicketType,
)

T0 = datetime(2026, 1, 12, 8, 0, tzinfo=UTC)
FR = TargetSpec(SlaTarget.FIRST_RESPONSE, ClockKind.WALL, 3600)
NR = TargetSpec(SlaTarget.NEXT_RESPONSE, ClockKind.WALL, 7200)
RES = TargetSpec(SlaTarget.RESOLUTION, ClockKind.WALL, 28800)


def create(**overrides: Any) -> SlaPolicy:
    args: dict[str, Any] = {
        "policy_id": "policy-a",
        "tenant_id": "tenant-1",
        "name": "Standard",
        "position": 10,
        "priorities": (),
        "types": (),
        "channels": (),
        "customer_tiers": (),
        "calendar_id": "",
        "targets": (FR, RES),
        "pause_statuses": (),
        "at_risk_fraction": 0.75,
        "enabled": True,
        "version": 1,
        "updated_at": T0,
    }
    args.update(overrides)
    return SlaPolicy.create(**args)


def ticket_facts(**overrides: Any) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "priority": Priority.HIGH,
        "type_": TicketType.INCIDENT,
        "channel": Channel.EMAIL,
        "customer_tier": "gold",
    }
    facts.update(overrides)
    return facts


# --- create -------------------------------------------------------------------------------------


def test_create_normalises_the_policy() -> None:
    policy = create(
        name="  Gold  ",
        priorities=[Priority.HIGH, Priority.URGENT, Priority.HIGH],
        channels=[Channel.EMAIL, Channel.EMAIL],
        customer_tiers=["gold", "gold", "platinum"],
        targets=[RES, NR, FR],
        pause_statuses=[TicketStatus.ON_HOLD, TicketStatus.ON_HOLD],
    )
    assert policy.name == "Gold"
    assert policy.priorities == (Priority.HIGH, Priority.URGENT)
    assert policy.channels == (Channel.EMAIL,)
    assert policy.customer_tiers == ("gold", "platinum")
    assert policy.targets == (FR, NR, RES)
    assert policy.pause_statuses == (TicketStatus.ON_HOLD,)
    assert policy.at_risk_fraction == 0.75


def test_create_defaults_pause_statuses_and_at_risk_fraction() -> None:
    policy = create(pause_statuses=(), at_risk_fraction=0.0)
    assert policy.pause_statuses == DEFAULT_PAUSE_STATUSES
    assert policy.at_risk_fraction == DEFAULT_AT_RISK_FRACTION


def test_business_target_with_a_calendar_is_valid() -> None:
    business = TargetSpec(SlaTarget.FIRST_RESPONSE, ClockKind.BUSINESS, 4 * 3600)
    policy = create(targets=[business], calendar_id="office")
    assert policy.target(SlaTarget.FIRST_RESPONSE) == business
    assert policy.target(SlaTarget.RESOLUTION) is None


def test_create_reports_every_violation_at_once() -> None:
    business = TargetSpec(SlaTarget.RESOLUTION, ClockKind.BUSINESS, 3600)
    with pytest.raises(InvalidArgument) as raised:
        create(
            name="  ",
            targets=[FR, business, FR],
            calendar_id="",
            pause_statuses=[
                TicketStatus.RESOLVED,
                TicketStatus.ON_HOLD,
                TicketStatus.OPEN,
            ],
        )
    assert [v.field for v in raised.value.violations] == [
        "policy.name",
        "policy.targets[2].target",
        "policy.calendar_id",
        "policy.pause_statuses[0]",
        "policy.pause_statuses[2]",
    ]


@pytest.mark.parametrize("status", [s for s in TicketStatus if s not in DEFAULT_PAUSE_STATUSES])
def test_only_pending_customer_and_on_hold_can_pause(status: TicketStatus) -> None:
    with pytest.raises(InvalidArgument) as raised:
        create(pause_statuses=[status])
    assert [v.field for v in raised.value.violations] == ["policy.pause_statuses[0]"]


def test_duplicate_target_is_reported_at_each_repeat() -> None:
    other_first = TargetSpec(SlaTarget.FIRST_RESPONSE, ClockKind.WALL, 60)
    with pytest.raises(InvalidArgument) as raised:
        create(targets=[FR, other_first, RES, other_first])
    assert [v.field for v in raised.value.violations] == [
        "policy.targets[1].target",
        "policy.targets[3].target",
    ]


def test_revised_policy_keeps_the_id_and_takes_the_next_version() -> None:
    current = create(version=3)
    new = create(policy_id="ignored", name="Renamed", version=1)
    revised = current.revised(new)
    assert (revised.policy_id, revised.version, revised.name) == ("policy-a", 4, "Renamed")


# --- matching -----------------------------------------------------------------------------------


def test_empty_conditions_match_every_ticket() -> None:
    policy = create()
    for priority in Priority:
        assert policy.matches(**ticket_facts(priority=priority, customer_tier=""))


@pytest.mark.parametrize(
    ("conditions", "facts", "expected"),
    [
        ({"priorities": [Priority.HIGH]}, {}, True),
        ({"priorities": [Priority.LOW]}, {}, False),
        ({"types": [TicketType.INCIDENT]}, {}, True),
        ({"types": [TicketType.COMPLAINT]}, {}, False),
        ({"channels": [Channel.PHONE, Channel.EMAIL]}, {}, True),
        ({"channels": [Channel.PHONE]}, {}, False),
        ({"customer_tiers": ["gold"]}, {}, True),
        ({"customer_tiers": ["gold"]}, {"customer_tier": ""}, False),
        ({"priorities": [Priority.HIGH], "channels": [Channel.PHONE]}, {}, False),
    ],
)
def test_every_non_empty_condition_must_hold(
    conditions: dict[str, Any], facts: dict[str, Any], expected: bool
) -> None:
    assert create(**conditions).matches(**ticket_facts(**facts)) is expected


def test_disabled_policy_matches_nothing() -> None:
    assert not create(enabled=False).matches(**ticket_facts())


# --- selection ----------------------------------------------------------------------------------


def test_select_policy_picks_the_lowest_position_first() -> None:
    late = create(policy_id="a-late", position=20)
    early = create(policy_id="z-early", position=5)
    assert select_policy([late, early], **ticket_facts()) is early


def test_select_policy_breaks_position_ties_by_id() -> None:
    b = create(policy_id="policy-b", position=1)
    a = create(policy_id="policy-a", position=1)
    assert select_policy([b, a], **ticket_facts()) is a


def test_select_policy_skips_disabled_and_non_matching_policies() -> None:
    disabled = create(policy_id="p1", position=1, enabled=False)
    for_phone = create(policy_id="p2", position=2, channels=[Channel.PHONE])
    for_gold = create(policy_id="p3", position=3, customer_tiers=["gold"])
    fallback = create(policy_id="p4", position=4)
    policies = [fallback, for_gold, for_phone, disabled]
    assert select_policy(policies, **ticket_facts()) is for_gold
    assert select_policy(policies, **ticket_facts(customer_tier="silver")) is fallback
    assert select_policy(policies, **ticket_facts(channel=Channel.PHONE)) is for_phone


def test_select_policy_without_a_match_is_none() -> None:
    only_low = create(priorities=[Priority.LOW])
    assert select_policy([only_low], **ticket_facts()) is None
    assert select_policy([], **ticket_facts()) is None
