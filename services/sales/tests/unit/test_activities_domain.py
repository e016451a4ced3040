"""The activities area's rules without a database: links, direction, completion, the follow-up
rule's owner and due time, and how a purchase is named."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crm_platform.errors import FailedPrecondition, InvalidArgument
from crm_sales.domain.activities import (
    Activity,
    ActivityDirection,
    ActivityInput,
    ActivityKind,
    FollowUpOwner,
    FollowUpRule,
    FollowUpRuleInput,
    activity_key,
    purchase_of_order,
    purchase_of_win,
)

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def _call(**fields: object) -> Activity:
    values: dict[str, object] = {"kind": ActivityKind.CALL, "subject": "Call", "contact_id": "c"}
    values.update(fields)
    return Activity.create(
        id="a",
        tenant_id="t",
        fields=ActivityInput(**values),  # type: ignore[arg-type]
        event_key="c",
        now=NOW,
    )


def test_an_activity_needs_a_link_and_only_calls_and_emails_have_a_direction() -> None:
    with pytest.raises(InvalidArgument) as info:
        _call(contact_id="", kind=ActivityKind.TASK, direction=ActivityDirection.INBOUND)
    assert {v.field for v in info.value.violations} == {"activity.contact_id", "activity.direction"}
    assert _call(kind=ActivityKind.EMAIL, direction=ActivityDirection.INBOUND).direction


def test_an_update_may_not_drop_the_last_link() -> None:
    with pytest.raises(InvalidArgument):
        _call().apply_update(ActivityInput(contact_id=""), ["contact_id"], None, NOW)
    same = _call().apply_update(ActivityInput(contact_id="c"), ["contact_id"], None, NOW)
    assert same.changed_paths == ()


def test_completing_twice_is_refused() -> None:
    done = _call().complete("reached", 60, None, 1, NOW)
    assert (done.completed_time, done.version) == (NOW, 2)
    with pytest.raises(FailedPrecondition):
        done.complete("", 0, None, None, NOW)


def test_the_rule_picks_the_deal_owner_or_the_configured_one() -> None:
    rule = FollowUpRule.unset("t").set(
        FollowUpRuleInput(True, True, False, 3, FollowUpOwner.DEAL_OWNER, "carol"), 0, "r", NOW
    )
    assert rule.follow_up_for(order=True, deal_owner="bob", at=NOW) == (
        "bob",
        NOW + timedelta(days=3),
    )
    assert rule.follow_up_for(order=True, deal_owner="", at=NOW) == ("carol", NOW + timedelta(3))
    assert rule.follow_up_for(order=False, deal_owner="bob", at=NOW) is None
    assert rule.set(FollowUpRuleInput(), 1, "other", NOW).id == "r"


def test_an_enabled_rule_needs_an_owner_and_a_trigger() -> None:
    with pytest.raises(InvalidArgument) as info:
        FollowUpRule.unset("t").set(FollowUpRuleInput(enabled=True, delay_days=400), None, "r", NOW)
    assert {v.field for v in info.value.violations} == {
        "rule.delay_days",
        "rule.owner",
        "rule.owner_id",
        "rule.after_order",
    }


def test_an_order_fulfilling_a_deal_is_the_deals_purchase() -> None:
    assert purchase_of_order("o1", "d1") == purchase_of_win("d1")
    assert purchase_of_order("o1", "") == "orders/o1"
    assert activity_key("", "org-1", "lead-1") == "org-1"
