"""Routing and escalation rules: conditions, precedence, audit trail, agent choice, validation."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import pytest

from crm_platform.errors import InvalidArgument, StaleVersion
from crm_servicedesk.domain.routing import (
    Action,
    ActionKind,
    AgentLoad,
    AssignStrategy,
    Condition,
    Decision,
    RoutingRule,
    TicketFacts,
    Trigger,
    choose_agent,
    evaluate,
)
from crm_servicedesk.domain.values import Channel, Priority, SlaTarget, TicketType

NOW = datetime(2025, 3, 3, 9, 30, tzinfo=UTC)  # a Monday
LATER = datetime(2025, 3, 4, 9, 30, tzinfo=UTC)


def rule(
    rule_id: str,
    *actions: Action,
    condition: Condition | None = None,
    triggers: Iterable[Trigger] = (Trigger.TICKET_CREATED,),
    position: int = 0,
    enabled: bool = True,
    stop_processing: bool = False,
) -> RoutingRule:
    return RoutingRule.create(
        rule_id=rule_id,
        name=f"rule {rule_id}",
        triggers=triggers,
        actions=actions,
        now=NOW,
        condition=condition,
        position=position,
        enabled=enabled,
        stop_processing=stop_processing,
    )


BASE_FACTS = TicketFacts(at=NOW, ticket_id="t1", priority=Priority.NORMAL)


def facts(**fields: Any) -> TicketFacts:
    return dataclasses.replace(BASE_FACTS, **fields)


def decided(decisions: list[Decision]) -> list[tuple[str, ActionKind]]:
    return [(d.rule_id, d.action.kind) for d in decisions]


def violations_of(**fields: Any) -> dict[str, str]:
    arguments: dict[str, Any] = {
        "rule_id": "r1",
        "name": "VIP complaints",
        "triggers": [Trigger.TICKET_CREATED],
        "actions": [Action.set_priority(Priority.HIGH)],
        "now": NOW,
    }
    arguments.update(fields)
    with pytest.raises(InvalidArgument) as caught:
        RoutingRule.create(**arguments)
    return {v.field: v.description for v in caught.value.violations}


# --- evaluation ---------------------------------------------------------------------------------


def test_vip_complaint_rule_sets_priority_and_records_rule_id() -> None:
    vip_complaints = rule(
        "vip-complaints",
        Action.set_priority(Priority.URGENT),
        Action.add_tag("vip"),
        condition=Condition(
            types=frozenset({TicketType.COMPLAINT}), customer_tiers=frozenset({"PLATINUM"})
        ),
    )

    decisions = evaluate(
        [vip_complaints],
        Trigger.TICKET_CREATED,
        facts(type=TicketType.COMPLAINT, customer_tier="PLATINUM"),
    )

    assert decisions == [
        Decision("vip-complaints", 1, Action.set_priority(Priority.URGENT)),
        Decision("vip-complaints", 1, Action.add_tag("vip")),
    ]
    other_tier = facts(type=TicketType.COMPLAINT, customer_tier="GOLD")
    assert evaluate([vip_complaints], Trigger.TICKET_CREATED, other_tier) == []


def test_decisions_name_the_rule_version_that_made_them() -> None:
    original = rule("r1", Action.set_priority(Priority.HIGH))
    revised = original.revised(now=LATER, actions=[Action.set_priority(Priority.URGENT)])

    (decision,) = evaluate([revised], Trigger.TICKET_CREATED, facts())

    assert (decision.rule_id, decision.rule_version) == ("r1", 2)


def test_empty_condition_matches_every_ticket() -> None:
    catch_all = rule("r1", Action.add_tag("triage"))

    assert decided(evaluate([catch_all], Trigger.TICKET_CREATED, facts())) == [
        ("r1", ActionKind.ADD_TAG)
    ]


def test_disabled_rules_and_rules_for_other_triggers_are_skipped() -> None:
    rules = [
        rule("disabled", Action.add_tag("a"), enabled=False),
        rule("on-update", Action.add_tag("b"), triggers=[Trigger.TICKET_UPDATED]),
        rule(
            "on-both",
            Action.add_tag("c"),
            triggers=[Trigger.TICKET_CREATED, Trigger.TICKET_UPDATED],
        ),
    ]

    assert decided(evaluate(rules, Trigger.TICKET_CREATED, facts())) == [
        ("on-both", ActionKind.ADD_TAG)
    ]


def test_rules_run_in_position_order_with_ties_broken_by_rule_id() -> None:
    rules = [
        rule("c", Action.add_tag("c"), position=1),
        rule("b", Action.add_tag("b"), position=2),
        rule("a", Action.add_tag("a"), position=2),
    ]

    assert [d.rule_id for d in evaluate(rules, Trigger.TICKET_CREATED, facts())] == ["c", "a", "b"]


def test_stop_processing_prevents_later_rules() -> None:
    rules = [
        rule(
            "first",
            Action.add_tag("spam"),
            position=1,
            stop_processing=True,
            condition=Condition(text_contains_any=frozenset({"casino"})),
        ),
        rule("second", Action.assign_team("support"), position=2),
    ]

    spam = evaluate(rules, Trigger.TICKET_CREATED, facts(text="Best CASINO offers"))
    ham = evaluate(rules, Trigger.TICKET_CREATED, facts(text="My parcel is late"))

    assert decided(spam) == [("first", ActionKind.ADD_TAG)]
    assert decided(ham) == [("second", ActionKind.ASSIGN_TEAM)]


def test_later_rules_see_priority_tags_and_team_set_by_earlier_rules() -> None:
    rules = [
        rule(
            "tag-refunds",
            Action.add_tag("refund"),
            position=1,
            condition=Condition(text_contains_any=frozenset({"refund"})),
        ),
        rule(
            "urgent-refunds",
            Action.set_priority(Priority.HIGH),
            position=2,
            condition=Condition(tags_any=frozenset({"refund"})),
        ),
        rule(
            "route-high",
            Action.assign_team("billing"),
            position=3,
            condition=Condition(priorities=frozenset({Priority.HIGH})),
        ),
        rule(
            "billing-agent",
            Action.assign_agent("billing", AssignStrategy.LEAST_OPEN),
            position=4,
            condition=Condition(team_ids=frozenset({"billing"})),
        ),
    ]

    decisions = evaluate(rules, Trigger.TICKET_CREATED, facts(text="I want a Refund now"))

    assert decided(decisions) == [
        ("tag-refunds", ActionKind.ADD_TAG),
        ("urgent-refunds", ActionKind.SET_PRIORITY),
        ("route-high", ActionKind.ASSIGN_TEAM),
        ("billing-agent", ActionKind.ASSIGN_AGENT),
    ]


def test_first_rule_to_decide_an_effect_wins() -> None:
    rules = [
        rule(
            "vip",
            Action.assign_team("vip-desk"),
            Action.set_priority(Priority.HIGH),
            Action.escalate(),
            position=1,
        ),
        rule(
            "generic",
            Action.assign_team("support"),
            Action.set_priority(Priority.LOW),
            Action.escalate(),
            Action.add_tag("seen"),
            position=2,
        ),
    ]

    decisions = evaluate(rules, Trigger.TICKET_CREATED, facts())

    assert decided(decisions) == [
        ("vip", ActionKind.ASSIGN_TEAM),
        ("vip", ActionKind.SET_PRIORITY),
        ("vip", ActionKind.ESCALATE),
        ("generic", ActionKind.ADD_TAG),
    ]


def test_agent_assignment_never_moves_the_ticket_away_from_an_earlier_team_decision() -> None:
    rules = [
        rule("team", Action.assign_team("billing"), position=1),
        rule(
            "other-team-agent",
            Action.assign_agent("support", AssignStrategy.ROUND_ROBIN),
            position=2,
        ),
        rule(
            "same-team-agent", Action.assign_agent("billing", AssignStrategy.LEAST_OPEN), position=3
        ),
        rule(
            "second-agent", Action.assign_agent("billing", AssignStrategy.ROUND_ROBIN), position=4
        ),
    ]

    decisions = evaluate(rules, Trigger.TICKET_CREATED, facts())

    assert decided(decisions) == [
        ("team", ActionKind.ASSIGN_TEAM),
        ("same-team-agent", ActionKind.ASSIGN_AGENT),
    ]


def test_decisions_that_change_nothing_are_left_out_but_keep_precedence() -> None:
    rules = [
        rule(
            "keep-high",
            Action.set_priority(Priority.HIGH),
            Action.add_tag("vip"),
            Action.assign_team("billing"),
            position=1,
        ),
        rule("lower", Action.set_priority(Priority.LOW), Action.assign_team("support"), position=2),
    ]
    current = facts(priority=Priority.HIGH, tags=frozenset({"vip"}), team_id="billing")

    assert evaluate(rules, Trigger.TICKET_UPDATED, current) == []
    assert evaluate(rules, Trigger.TICKET_CREATED, current) == []


def test_assign_agent_is_left_out_when_the_ticket_already_has_an_agent_of_that_team() -> None:
    assign = rule("agent", Action.assign_agent("billing", AssignStrategy.LEAST_OPEN))

    assigned = facts(team_id="billing", assignee_id="ada")
    queued = facts(team_id="billing")
    elsewhere = facts(team_id="support", assignee_id="bob")

    assert evaluate([assign], Trigger.TICKET_CREATED, assigned) == []
    assert decided(evaluate([assign], Trigger.TICKET_CREATED, queued)) == [
        ("agent", ActionKind.ASSIGN_AGENT)
    ]
    assert decided(evaluate([assign], Trigger.TICKET_CREATED, elsewhere)) == [
        ("agent", ActionKind.ASSIGN_AGENT)
    ]


def test_time_window_wrapping_midnight_in_rule_timezone() -> None:
    night_shift = rule(
        "night",
        Action.assign_team("night-desk"),
        condition=Condition(
            local_time_from_minute=22 * 60, local_time_to_minute=6 * 60, timezone="Europe/Paris"
        ),
    )

    def routed(at: datetime) -> bool:
        return bool(evaluate([night_shift], Trigger.TICKET_CREATED, facts(at=at)))

    # Paris is UTC+1 in winter: 21:30 UTC is 22:30 there, 04:59 UTC is 05:59.
    assert routed(datetime(2025, 1, 10, 21, 30, tzinfo=UTC))
    assert routed(datetime(2025, 1, 10, 23, 30, tzinfo=UTC))
    assert routed(datetime(2025, 1, 11, 4, 59, tzinfo=UTC))
    assert not routed(datetime(2025, 1, 11, 5, 0, tzinfo=UTC))
    assert not routed(datetime(2025, 1, 10, 20, 59, tzinfo=UTC))
    # In summer (UTC+2) the same local window starts at 20:00 UTC.
    assert routed(datetime(2025, 7, 10, 20, 0, tzinfo=UTC))
    assert not routed(datetime(2025, 7, 10, 19, 59, tzinfo=UTC))


def test_after_midnight_hours_of_a_wrapping_window_belong_to_the_day_it_opened() -> None:
    friday_night = Condition(
        local_time_from_minute=22 * 60,
        local_time_to_minute=6 * 60,
        weekdays=frozenset({4}),
        timezone="America/New_York",
    )
    # 2025-01-10 is a Friday; New York is UTC-5 in January.
    friday_2300 = facts(at=datetime(2025, 1, 11, 4, 0, tzinfo=UTC))
    saturday_0300 = facts(at=datetime(2025, 1, 11, 8, 0, tzinfo=UTC))
    saturday_2300 = facts(at=datetime(2025, 1, 12, 4, 0, tzinfo=UTC))
    friday_0300 = facts(at=datetime(2025, 1, 10, 8, 0, tzinfo=UTC))  # Thursday's window

    assert friday_night.matches(friday_2300)
    assert friday_night.matches(saturday_0300)
    assert not friday_night.matches(saturday_2300)
    assert not friday_night.matches(friday_0300)


def test_weekdays_without_a_time_window_use_the_local_date() -> None:
    weekend = Condition(weekdays=frozenset({5, 6}), timezone="Asia/Tokyo")

    # Friday 2025-01-10 20:00 UTC is already Saturday 05:00 in Tokyo.
    assert weekend.matches(facts(at=datetime(2025, 1, 10, 20, 0, tzinfo=UTC)))
    assert not weekend.matches(facts(at=datetime(2025, 1, 10, 14, 0, tzinfo=UTC)))


def test_escalation_rule_fires_only_on_breach_of_its_target() -> None:
    escalate_resolution = rule(
        "escalate-resolution",
        Action.escalate("tier-2"),
        triggers=[Trigger.SLA_BREACHED],
        condition=Condition(sla_targets=frozenset({SlaTarget.RESOLUTION})),
    )
    rules = [escalate_resolution]

    breach = evaluate(rules, Trigger.SLA_BREACHED, facts(sla_target=SlaTarget.RESOLUTION))
    other_target = evaluate(rules, Trigger.SLA_BREACHED, facts(sla_target=SlaTarget.FIRST_RESPONSE))
    at_risk = evaluate(rules, Trigger.SLA_AT_RISK, facts(sla_target=SlaTarget.RESOLUTION))

    assert breach == [Decision("escalate-resolution", 1, Action.escalate("tier-2"))]
    assert other_target == []
    assert at_risk == []


def test_escalation_raises_priority_and_moves_the_ticket_for_later_rules() -> None:
    rules = [
        rule("escalate", Action.escalate("tier-2"), position=1, triggers=[Trigger.SLA_AT_RISK]),
        rule(
            "urgent-tier-2",
            Action.assign_agent("tier-2", AssignStrategy.LEAST_OPEN),
            Action.set_priority(Priority.LOW),
            position=2,
            triggers=[Trigger.SLA_AT_RISK],
            condition=Condition(
                priorities=frozenset({Priority.URGENT}),
                team_ids=frozenset({"tier-2"}),
                escalated=True,
            ),
        ),
    ]

    decisions = evaluate(rules, Trigger.SLA_AT_RISK, facts(priority=Priority.HIGH, team_id="l1"))

    # The priority was raised by the escalation, so the later SET_PRIORITY is dropped.
    assert decided(decisions) == [
        ("escalate", ActionKind.ESCALATE),
        ("urgent-tier-2", ActionKind.ASSIGN_AGENT),
    ]


def test_escalation_keeps_a_team_an_earlier_rule_chose() -> None:
    rules = [
        rule(
            "route", Action.assign_team("billing"), Action.set_priority(Priority.HIGH), position=1
        ),
        rule("escalate", Action.escalate("tier-2"), position=2),
    ]

    decisions = evaluate(rules, Trigger.TICKET_CREATED, facts())

    assert decisions[-1] == Decision("escalate", 1, Action.escalate())
    assert decided(decisions) == [
        ("route", ActionKind.ASSIGN_TEAM),
        ("route", ActionKind.SET_PRIORITY),
        ("escalate", ActionKind.ESCALATE),
    ]


def test_escalated_condition_lets_a_rule_escalate_only_once() -> None:
    angry = rule(
        "angry",
        Action.escalate(),
        triggers=[Trigger.TICKET_UPDATED],
        condition=Condition(sentiment_below=-0.6, escalated=False),
    )

    first = evaluate([angry], Trigger.TICKET_UPDATED, facts(sentiment=-0.9))
    again = evaluate([angry], Trigger.TICKET_UPDATED, facts(sentiment=-0.9, escalated=True))

    assert decided(first) == [("angry", ActionKind.ESCALATE)]
    assert again == []


def test_sentiment_and_influence_conditions_do_not_hold_when_unknown() -> None:
    band = Condition(sentiment_above=-0.5, sentiment_below=0.0)
    influencer = Condition(min_author_followers=10_000)

    assert band.matches(facts(sentiment=-0.2))
    assert not band.matches(facts(sentiment=-0.5))
    assert not band.matches(facts(sentiment=0.0))
    assert not band.matches(facts())
    assert influencer.matches(facts(author_followers=10_000))
    assert not influencer.matches(facts(author_followers=9_999))
    assert not influencer.matches(facts())


def test_text_condition_ignores_case() -> None:
    outage = Condition(text_contains_any=frozenset({"Not Working", "outage"}))

    assert outage.matches(facts(text="The app is NOT WORKING since noon"))
    assert outage.matches(facts(text="Straße OUTAGE"))
    assert not outage.matches(facts(text="works fine"))


def test_negative_mention_from_influential_author_opens_a_prioritised_ticket() -> None:
    influencer_complaint = rule(
        "influencer-complaint",
        Action.open_ticket(TicketType.COMPLAINT),
        Action.set_priority(Priority.HIGH),
        Action.add_tag("influencer"),
        triggers=[Trigger.MENTION_RECEIVED],
        condition=Condition(sentiment_below=-0.3, min_author_followers=50_000),
    )
    complaints = rule(
        "complaints-team",
        Action.assign_team("complaints"),
        triggers=[Trigger.MENTION_RECEIVED],
        position=1,
        condition=Condition(types=frozenset({TicketType.COMPLAINT})),
    )
    mention = facts(
        ticket_id="",
        priority=None,
        channel=Channel.SOCIAL,
        sentiment=-0.7,
        author_followers=120_000,
        text="@acme lost my bag again",
    )

    decisions = evaluate([complaints, influencer_complaint], Trigger.MENTION_RECEIVED, mention)

    assert decided(decisions) == [
        ("influencer-complaint", ActionKind.OPEN_TICKET),
        ("influencer-complaint", ActionKind.SET_PRIORITY),
        ("influencer-complaint", ActionKind.ADD_TAG),
        ("complaints-team", ActionKind.ASSIGN_TEAM),
    ]
    assert decisions[0].action.ticket_type == TicketType.COMPLAINT


def test_mention_already_linked_to_a_ticket_opens_no_other_ticket() -> None:
    open_one = rule(
        "open", Action.open_ticket(), Action.add_tag("social"), triggers=[Trigger.MENTION_RECEIVED]
    )

    decisions = evaluate([open_one], Trigger.MENTION_RECEIVED, facts(ticket_id="t9"))

    assert decided(decisions) == [("open", ActionKind.ADD_TAG)]


def test_event_time_without_time_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        TicketFacts(at=datetime(2025, 1, 1, 12, 0))


# --- agent choice -------------------------------------------------------------------------------


def agent(
    agent_id: str,
    *,
    open_tickets: int = 0,
    available: bool = True,
    teams: Iterable[str] = ("billing",),
    skills: Iterable[str] = (),
) -> AgentLoad:
    return AgentLoad(agent_id, frozenset(teams), frozenset(skills), open_tickets, available)


def test_round_robin_wraps_and_skips_unavailable_agents() -> None:
    team = [agent("carol"), agent("ada"), agent("bob", available=False), agent("dan")]
    cursor: str | None = None
    chosen = []
    for _ in range(5):
        cursor = choose_agent(AssignStrategy.ROUND_ROBIN, "billing", team, frozenset(), cursor)
        chosen.append(cursor)

    assert chosen == ["ada", "carol", "dan", "ada", "carol"]


def test_round_robin_continues_after_a_cursor_that_left_the_team() -> None:
    team = [agent("ada"), agent("carol")]

    assert choose_agent(AssignStrategy.ROUND_ROBIN, "billing", team, frozenset(), "bob") == "carol"
    assert choose_agent(AssignStrategy.ROUND_ROBIN, "billing", team, frozenset(), "zed") == "ada"


def test_only_members_of_the_team_are_chosen() -> None:
    agents = [
        agent("ada", teams=["support"]),
        agent("bob", teams=["billing", "support"], open_tickets=9),
    ]

    for strategy in AssignStrategy:
        assert choose_agent(strategy, "billing", agents, frozenset({"refunds"})) == "bob"


def test_least_open_prefers_fewest_open_tickets_then_agent_id() -> None:
    team = [
        agent("dan", open_tickets=2),
        agent("carol", open_tickets=1),
        agent("bob", open_tickets=1),
        agent("ada", open_tickets=0, available=False),
    ]

    assert choose_agent(AssignStrategy.LEAST_OPEN, "billing", team) == "bob"


def test_skill_match_prefers_agents_with_every_skill_then_least_open() -> None:
    team = [
        agent("ada", skills=["refunds"], open_tickets=0),
        agent("bob", skills=["refunds", "german"], open_tickets=5),
        agent("carol", skills=["refunds", "german", "french"], open_tickets=3),
    ]

    chosen = choose_agent(
        AssignStrategy.SKILL_MATCH, "billing", team, frozenset({"refunds", "german"})
    )

    assert chosen == "carol"


def test_skill_match_falls_back_to_most_matching_skills() -> None:
    team = [
        agent("ada", skills=["french"], open_tickets=0),
        agent("bob", skills=["refunds"], open_tickets=4),
        agent("carol", skills=["german"], open_tickets=2),
    ]
    needs = frozenset({"refunds", "german"})

    assert choose_agent(AssignStrategy.SKILL_MATCH, "billing", team, needs) == "carol"
    unskilled = [agent("bob", open_tickets=4), agent("ada", open_tickets=4)]
    assert choose_agent(AssignStrategy.SKILL_MATCH, "billing", unskilled, needs) == "ada"


def test_choose_agent_returns_none_when_nobody_is_available() -> None:
    team = [agent("ada", available=False), agent("bob", teams=["support"])]

    for strategy in AssignStrategy:
        assert choose_agent(strategy, "billing", team, frozenset({"x"}), "ada") is None


# --- rule validation and versions ---------------------------------------------------------------


def test_valid_rule_is_cleaned_and_starts_at_version_one() -> None:
    created = RoutingRule.create(
        rule_id=" r1 ",
        name="  VIP complaints ",
        triggers=[Trigger.TICKET_CREATED, Trigger.TICKET_CREATED],
        actions=[
            Action.add_tag(" vip "),
            Action.assign_agent(" billing ", AssignStrategy.SKILL_MATCH, [" refunds "]),
        ],
        condition=Condition(channels=frozenset({Channel.EMAIL}), timezone=" Europe/Paris "),
        now=NOW,
    )

    assert created.rule_id == "r1"
    assert created.name == "VIP complaints"
    assert created.version == 1
    assert created.triggers == {Trigger.TICKET_CREATED}
    assert created.condition.channels == {Channel.EMAIL}
    assert created.condition.timezone == "Europe/Paris"
    assert created.actions == (
        Action.add_tag("vip"),
        Action.assign_agent("billing", AssignStrategy.SKILL_MATCH, ["refunds"]),
    )
    assert (created.create_time, created.update_time) == (NOW, NOW)


def test_invalid_rule_reports_every_violation() -> None:
    violations = violations_of(
        rule_id="",
        name="  ",
        triggers=[],
        position=-1,
        condition=Condition(
            sentiment_below=-1.5,
            sentiment_above=2.0,
            min_author_followers=-1,
            local_time_from_minute=1440,
            weekdays=frozenset({-1, 7}),
            timezone="Mars/Olympus_Mons",
            text_contains_any=frozenset({" "}),
        ),
        actions=[
            Action.assign_agent("", AssignStrategy.SKILL_MATCH),
            Action(ActionKind.SET_PRIORITY, tag="vip"),
            Action.add_tag(""),
        ],
    )

    assert violations == {
        "rule.rule_id": "is required",
        "rule.name": "is required",
        "rule.triggers": "at least one trigger is required",
        "rule.position": "must be between 0 and 2147483647",
        "rule.condition.sentiment_below": "must be between -1 and 1, got -1.5",
        "rule.condition.sentiment_above": "must be between -1 and 1, got 2.0",
        "rule.condition.min_author_followers": "must not be negative",
        "rule.condition.local_time_from_minute": "must be between 0 and 1439",
        "rule.condition.local_time_to_minute": "is required when local_time_from_minute is set",
        "rule.condition.weekdays": "must be 0 (Monday) to 6 (Sunday), got [-1, 7]",
        "rule.condition.timezone": "unknown time zone 'Mars/Olympus_Mons'",
        "rule.condition.text_contains_any": "must not contain empty values",
        "rule.actions[0].team_id": "is required",
        "rule.actions[0].required_skills": "is required for the skill_match strategy",
        "rule.actions[1].tag": "must not be set for set_priority actions",
        "rule.actions[1].priority": "is required",
        "rule.actions[2].tag": "is required",
    }


def test_rule_without_actions_is_refused() -> None:
    assert violations_of(actions=[]) == {"rule.actions": "at least one action is required"}


def test_open_ticket_needs_mention_received_as_only_trigger() -> None:
    violations = violations_of(
        triggers=[Trigger.MENTION_RECEIVED, Trigger.TICKET_CREATED],
        actions=[Action.open_ticket(TicketType.COMPLAINT)],
    )

    assert violations == {
        "rule.actions[0].kind": "open_ticket needs mention_received as the rule's only trigger"
    }


def test_sla_targets_need_sla_triggers_only() -> None:
    violations = violations_of(
        triggers=[Trigger.SLA_BREACHED, Trigger.TICKET_UPDATED],
        condition=Condition(sla_targets=frozenset({SlaTarget.RESOLUTION})),
    )

    assert list(violations) == ["rule.condition.sla_targets"]


def test_sentiment_band_that_no_value_can_match_is_refused() -> None:
    violations = violations_of(condition=Condition(sentiment_above=0.2, sentiment_below=0.2))

    assert list(violations) == ["rule.condition.sentiment_below"]


def test_empty_time_window_is_refused_but_whole_day_is_allowed() -> None:
    violations = violations_of(
        condition=Condition(local_time_from_minute=600, local_time_to_minute=600)
    )
    whole_day = rule(
        "r1",
        Action.add_tag("x"),
        condition=Condition(local_time_from_minute=0, local_time_to_minute=1440),
    )

    assert list(violations) == ["rule.condition.local_time_to_minute"]
    assert whole_day.condition.matches(facts(at=datetime(2025, 1, 1, 23, 59, tzinfo=UTC)))


def test_a_rule_decides_each_effect_at_most_once() -> None:
    with pytest.raises(InvalidArgument) as caught:
        rule(
            "r1",
            Action.assign_team("billing"),
            Action.assign_agent("billing", AssignStrategy.LEAST_OPEN),
            Action.set_priority(Priority.HIGH),
            Action.set_priority(Priority.LOW),
            Action.escalate(),
            Action.escalate(),
            Action.add_tag("vip"),
            Action.add_tag("vip"),
        )

    assert [(v.field, v.description) for v in caught.value.violations] == [
        ("rule.actions", "at most one assign_team or assign_agent action per rule"),
        ("rule.actions", "at most one set_priority action per rule"),
        ("rule.actions", "at most one escalate action per rule"),
        ("rule.actions", "adds the tag 'vip' more than once"),
    ]


def test_actions_of_a_rule_name_one_team_at_most() -> None:
    violations = violations_of(
        actions=[Action.assign_team("billing"), Action.escalate("tier-2")],
    )

    assert violations == {"rule.actions": "name different teams: ['billing', 'tier-2']"}


def test_strategy_is_required_and_skills_belong_to_skill_match() -> None:
    no_strategy = Action(ActionKind.ASSIGN_AGENT, team_id="billing")
    round_robin_with_skills = Action.assign_agent("support", AssignStrategy.ROUND_ROBIN, ["x"])

    assert violations_of(actions=[no_strategy]) == {"rule.actions[0].strategy": "is required"}
    assert violations_of(actions=[round_robin_with_skills]) == {
        "rule.actions[0].required_skills": "is used by the skill_match strategy only"
    }


def test_unknown_enum_values_are_reported_not_raised() -> None:
    violations = violations_of(
        triggers=["TICKET_DELETED"],
        condition=Condition(priorities=frozenset({"CRITICAL"})),  # type: ignore[arg-type]
        actions=[Action(ActionKind.SET_PRIORITY, priority="CRITICAL")],  # type: ignore[arg-type]
    )

    assert violations == {
        "rule.triggers": "unknown value 'TICKET_DELETED'",
        "rule.condition.priorities": "unknown value 'CRITICAL'",
        "rule.actions[0].priority": "unknown value 'CRITICAL'",
    }


def test_enum_fields_accept_their_plain_string_values() -> None:
    created = rule(
        "r1",
        Action(ActionKind.SET_PRIORITY, priority="urgent"),  # type: ignore[arg-type]
        condition=Condition(types=frozenset({"complaint"})),  # type: ignore[arg-type]
    )

    assert created.condition.types == {TicketType.COMPLAINT}
    assert created.actions[0].priority is Priority.URGENT


def test_revised_rule_gets_the_next_version_and_keeps_its_identity() -> None:
    original = rule("r1", Action.add_tag("vip"), position=3)

    revised = original.revised(now=LATER, name="VIP", enabled=False, expected_version=1)

    assert (revised.rule_id, revised.version, revised.name) == ("r1", 2, "VIP")
    assert (revised.position, revised.enabled, revised.actions) == (3, False, original.actions)
    assert (revised.create_time, revised.update_time) == (NOW, LATER)


def test_revision_that_changes_nothing_keeps_the_version() -> None:
    original = rule("r1", Action.add_tag("vip"))

    assert (
        original.revised(now=LATER, name=" rule r1 ", actions=[Action.add_tag("vip")]) is original
    )


def test_revision_with_a_stale_expected_version_is_refused() -> None:
    current = rule("r1", Action.add_tag("vip")).revised(now=LATER, name="renamed")

    with pytest.raises(StaleVersion):
        current.revised(now=LATER, name="again", expected_version=1)


def test_revision_is_validated_like_creation() -> None:
    original = rule("r1", Action.add_tag("vip"))

    with pytest.raises(InvalidArgument) as caught:
        original.revised(
            now=LATER, name="", actions=[Action.open_ticket()], field_prefix="routing_rule"
        )

    assert {v.field for v in caught.value.violations} == {
        "routing_rule.name",
        "routing_rule.actions[0].kind",
    }
