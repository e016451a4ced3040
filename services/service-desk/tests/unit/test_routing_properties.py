"""Properties of routing over random rules, tickets and teams: fair, deterministic, total."""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm_platform.errors import InvalidArgument
from crm_servicedesk.domain.routing import (
    SLA_TRIGGERS,
    Action,
    ActionKind,
    AgentLoad,
    AssignStrategy,
    Condition,
    RoutingRule,
    TicketFacts,
    Trigger,
    choose_agent,
    evaluate,
)
from crm_servicedesk.domain.values import Priority, SlaTarget, TicketType

NOW = datetime(2025, 3, 3, 9, 30, tzinfo=UTC)
TEAMS = ("billing", "support")
SKILLS = ("refunds", "german", "french")
TAGS = ("vip", "refund", "angry", "social")
TYPES = (TicketType.COMPLAINT, TicketType.SERVICE_REQUEST, TicketType.PRODUCT_RETURN)
TIMEZONES = ("UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe")
EXAMPLES = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Random rule sets are costly to build: fewer examples for the properties of evaluate.
RULE_EXAMPLES = settings(EXAMPLES, max_examples=80)

# --- agents -------------------------------------------------------------------------------------

_agents = st.lists(
    st.builds(
        AgentLoad,
        agent_id=st.text("abcdef", min_size=1, max_size=3),
        team_ids=st.frozensets(st.sampled_from(TEAMS)),
        skills=st.frozensets(st.sampled_from(SKILLS)),
        open_tickets=st.integers(0, 6),
        available=st.booleans(),
    ),
    max_size=8,
    unique_by=lambda agent: agent.agent_id,
)


def _members(agents: list[AgentLoad], team: str) -> list[AgentLoad]:
    return [a for a in agents if a.available and team in a.team_ids]


@EXAMPLES
@given(agents=_agents, calls=st.integers(1, 40), start=st.none() | st.text("abcdef", max_size=3))
def test_round_robin_spreads_tickets_evenly_over_available_members(
    agents: list[AgentLoad], calls: int, start: str | None
) -> None:
    members = _members(agents, "billing")
    cursor = start
    counts: Counter[str | None] = Counter()
    for _ in range(calls):
        cursor = choose_agent(AssignStrategy.ROUND_ROBIN, "billing", agents, frozenset(), cursor)
        counts[cursor] += 1

    if not members:
        assert counts == {None: calls}
        return
    fair_share = math.ceil(calls / len(members))
    assert set(counts) <= {a.agent_id for a in members}
    for member in members:
        assert fair_share - 1 <= counts[member.agent_id] <= fair_share


@EXAMPLES
@given(agents=_agents)
def test_least_open_returns_a_member_with_the_fewest_open_tickets(
    agents: list[AgentLoad],
) -> None:
    members = _members(agents, "support")

    chosen = choose_agent(AssignStrategy.LEAST_OPEN, "support", agents)

    if not members:
        assert chosen is None
        return
    fewest = min(a.open_tickets for a in members)
    candidates = sorted(a.agent_id for a in members if a.open_tickets == fewest)
    assert chosen == candidates[0]


@EXAMPLES
@given(
    agents=_agents, needed=st.lists(st.sampled_from(SKILLS), min_size=1, max_size=3).map(frozenset)
)
def test_skill_match_returns_the_least_loaded_of_the_best_matched_members(
    agents: list[AgentLoad], needed: frozenset[str]
) -> None:
    members = _members(agents, "billing")

    chosen = choose_agent(AssignStrategy.SKILL_MATCH, "billing", agents, needed)

    if not members:
        assert chosen is None
        return
    best = max(len(a.skills & needed) for a in members)
    matched = [a for a in members if len(a.skills & needed) == best]
    winner = next(a for a in members if a.agent_id == chosen)
    assert winner in matched
    assert winner.open_tickets == min(a.open_tickets for a in matched)


@EXAMPLES
@given(agents=_agents, strategy=st.sampled_from(AssignStrategy), data=st.data())
def test_choice_does_not_depend_on_the_order_agents_are_listed(
    agents: list[AgentLoad], strategy: AssignStrategy, data: st.DataObject
) -> None:
    shuffled = data.draw(st.permutations(agents))
    needed = frozenset({"refunds", "german"})

    assert choose_agent(strategy, "billing", agents, needed, "c") == choose_agent(
        strategy, "billing", shuffled, needed, "c"
    )


# --- evaluation ---------------------------------------------------------------------------------


@st.composite
def _rules(draw: st.DrawFn, rule_id: str) -> RoutingRule:
    """A valid rule over a small vocabulary, so that random rules and tickets often meet."""
    kind = draw(st.sampled_from(["ticket", "mention", "sla"]))
    if kind == "mention":
        triggers = frozenset({Trigger.MENTION_RECEIVED})
    elif kind == "sla":
        triggers = draw(st.frozensets(st.sampled_from(sorted(SLA_TRIGGERS)), min_size=1))
    else:
        triggers = draw(
            st.frozensets(
                st.sampled_from([Trigger.TICKET_CREATED, Trigger.TICKET_UPDATED]), min_size=1
            )
        )
    # Few facets per condition (AND of many rarely holds), each one broad enough to match often.
    facets: dict[str, st.SearchStrategy[Any]] = {
        "types": st.frozensets(st.sampled_from(TYPES), min_size=1, max_size=2),
        "priorities": st.frozensets(st.sampled_from(Priority), min_size=2, max_size=3),
        "tags_any": st.frozensets(st.sampled_from(TAGS), min_size=1, max_size=3),
        "team_ids": st.frozensets(st.sampled_from(TEAMS), min_size=1),
        "sentiment_below": st.sampled_from([0.0, 0.5]),
        "escalated": st.booleans(),
        **(
            {"sla_targets": st.frozensets(st.sampled_from(SlaTarget), min_size=1, max_size=2)}
            if kind == "sla"
            else {}
        ),
    }
    chosen = draw(st.lists(st.sampled_from(sorted(facets)), max_size=2, unique=True))
    condition = Condition(**{name: draw(facets[name]) for name in chosen})
    team = draw(st.sampled_from(TEAMS))  # the actions of one rule name one team at most
    pool = [
        Action.assign_team(team),
        Action.assign_agent(team, AssignStrategy.LEAST_OPEN),
        *(Action.set_priority(priority) for priority in Priority),
        *(Action.add_tag(tag) for tag in TAGS),
        Action.escalate(),
        Action.escalate(team),
        *(
            [Action.open_ticket(TicketType.COMPLAINT), Action.open_ticket()]
            if kind == "mention"
            else []
        ),
    ]

    def effect(action: Action) -> object:
        if action.kind in (ActionKind.ASSIGN_TEAM, ActionKind.ASSIGN_AGENT):
            return "assignment"
        return action.tag if action.kind is ActionKind.ADD_TAG else action.kind

    actions = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=4, unique_by=effect))
    return RoutingRule.create(
        rule_id=rule_id,
        name=f"rule {rule_id}",
        triggers=triggers,
        actions=actions,
        now=NOW,
        condition=condition,
        position=draw(st.integers(0, 5)),
        enabled=draw(st.sampled_from([True, True, True, False])),
        stop_processing=draw(st.booleans()),
    )


_rule_lists = st.lists(st.sampled_from("abcdefghij"), max_size=7, unique=True).flatmap(
    lambda ids: st.tuples(*(_rules(rule_id) for rule_id in ids)).map(list)
)
_facts = st.builds(
    TicketFacts,
    at=st.just(NOW),
    ticket_id=st.sampled_from(["", "t1"]),
    type=st.sampled_from(TYPES),
    priority=st.sampled_from(Priority),
    tags=st.frozensets(st.sampled_from(TAGS), max_size=2),
    sentiment=st.floats(-1, 1),
    team_id=st.sampled_from(("", *TEAMS)),
    assignee_id=st.sampled_from(["", "ada"]),
    escalated=st.booleans(),
    sla_target=st.none() | st.sampled_from(SlaTarget),
)

_SINGLE_EFFECTS = (ActionKind.SET_PRIORITY, ActionKind.ESCALATE, ActionKind.OPEN_TICKET)


@RULE_EXAMPLES
@given(rules=_rule_lists, trigger=st.sampled_from(Trigger), facts=_facts, data=st.data())
def test_evaluation_depends_on_rule_order_only_through_position(
    rules: list[RoutingRule], trigger: Trigger, facts: TicketFacts, data: st.DataObject
) -> None:
    shuffled = data.draw(st.permutations(rules))

    decisions = evaluate(rules, trigger, facts)

    assert evaluate(shuffled, trigger, facts) == decisions
    assert evaluate(rules, trigger, facts) == decisions


@RULE_EXAMPLES
@given(rules=_rule_lists, trigger=st.sampled_from(Trigger), facts=_facts)
def test_every_decision_comes_from_a_live_rule_and_each_effect_is_decided_once(
    rules: list[RoutingRule], trigger: Trigger, facts: TicketFacts
) -> None:
    by_id = {rule.rule_id: rule for rule in rules}
    rank = {
        rule.rule_id: index
        for index, rule in enumerate(sorted(rules, key=lambda r: (r.position, r.rule_id)))
    }

    decisions = evaluate(rules, trigger, facts)

    for decision in decisions:
        source = by_id[decision.rule_id]
        assert source.enabled
        assert trigger in source.triggers
        assert decision.rule_version == source.version
        # An escalation whose move lost to an earlier team decision comes without the team.
        assert decision.action in source.actions or (
            decision.action.kind is ActionKind.ESCALATE
            and any(a.kind is ActionKind.ESCALATE for a in source.actions)
        )
    ranks = [rank[d.rule_id] for d in decisions]
    assert ranks == sorted(ranks)
    kinds = Counter(d.action.kind for d in decisions)
    assert all(kinds[kind] <= 1 for kind in (*_SINGLE_EFFECTS, ActionKind.ASSIGN_AGENT))
    assert kinds[ActionKind.ASSIGN_TEAM] <= 1
    teams = {d.action.team_id for d in decisions if d.action.team_id}
    assert len(teams) <= 1, "no decision moves the ticket away from a team chosen before it"
    order = [d.action.kind for d in decisions]
    if ActionKind.ESCALATE in order and ActionKind.SET_PRIORITY in order:
        assert order.index(ActionKind.SET_PRIORITY) < order.index(ActionKind.ESCALATE)
    tags = [d.action.tag for d in decisions if d.action.kind is ActionKind.ADD_TAG]
    assert len(tags) == len(set(tags))
    assert not set(tags) & facts.tags


@RULE_EXAMPLES
@given(rules=_rule_lists, facts=_facts)
def test_rules_after_a_stopping_rule_decide_nothing(
    rules: list[RoutingRule], facts: TicketFacts
) -> None:
    # With a catch-all stopping rule first, only that rule can decide anything.
    stopper = RoutingRule.create(
        rule_id="0-stop",
        name="stop",
        triggers=[Trigger.TICKET_CREATED],
        actions=[Action.add_tag("stopped")],
        now=NOW,
        stop_processing=True,
    )

    decisions = evaluate([*rules, stopper], Trigger.TICKET_CREATED, facts)

    assert {d.rule_id for d in decisions} <= {"0-stop"}


# --- time windows -------------------------------------------------------------------------------


@EXAMPLES
@given(
    start=st.integers(0, 1439),
    end=st.integers(0, 1439),
    timezone=st.sampled_from(TIMEZONES),
    offset=st.integers(0, 366 * 24 * 60),
)
def test_a_window_and_its_complement_split_every_day(
    start: int, end: int, timezone: str, offset: int
) -> None:
    at = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(minutes=offset)
    window = Condition(local_time_from_minute=start, local_time_to_minute=end, timezone=timezone)
    complement = Condition(
        local_time_from_minute=end, local_time_to_minute=start, timezone=timezone
    )
    facts = TicketFacts(at=at)

    if start == end:
        return
    assert window.matches(facts) != complement.matches(facts)


# --- validation ---------------------------------------------------------------------------------

_texts = st.text(max_size=8) | st.sampled_from(["", " ", "x" * 101, "a\x00b", "billing"])
_floats = st.none() | st.floats(allow_nan=True, allow_infinity=True) | st.floats(-1, 1)
_raw_conditions = st.builds(
    Condition,
    types=st.frozensets(st.sampled_from([*TicketType, "COMPLAINT"]), max_size=3),
    priorities=st.frozensets(st.sampled_from([*Priority, "CRITICAL"]), max_size=2),
    tags_any=st.frozensets(_texts, max_size=3),
    team_ids=st.frozensets(_texts, max_size=2),
    sentiment_below=_floats,
    sentiment_above=_floats,
    min_author_followers=st.none() | st.integers(-5, 5),
    sla_targets=st.frozensets(st.sampled_from(SlaTarget), max_size=2),
    local_time_from_minute=st.none() | st.integers(-2, 1442),
    local_time_to_minute=st.none() | st.integers(-2, 1442),
    weekdays=st.frozensets(st.integers(-1, 9), max_size=3),
    timezone=st.sampled_from([*TIMEZONES, "", "Mars/Base", "../etc", "America", "a\x00"]),
    text_contains_any=st.frozensets(_texts, max_size=3),
)
_raw_actions = st.builds(
    Action,
    kind=st.sampled_from([*ActionKind, "DELETE"]),
    team_id=_texts,
    strategy=st.none() | st.sampled_from(AssignStrategy),
    required_skills=st.frozensets(_texts, max_size=2),
    priority=st.none() | st.sampled_from(Priority),
    tag=_texts,
    ticket_type=st.none() | st.sampled_from([*TicketType, "ticket"]),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rule_id=_texts,
    name=_texts,
    triggers=st.lists(st.sampled_from([*Trigger, "NOPE"]), max_size=3),
    condition=_raw_conditions,
    actions=st.lists(_raw_actions, max_size=4),
    position=st.integers(-3, 2**31 + 3),
)
def test_creating_a_rule_either_succeeds_or_reports_violations_under_the_rule(
    rule_id: str,
    name: str,
    triggers: list[Any],
    condition: Condition,
    actions: list[Action],
    position: int,
) -> None:
    try:
        created = RoutingRule.create(
            rule_id=rule_id,
            name=name,
            triggers=triggers,
            actions=actions,
            now=NOW,
            condition=condition,
            position=position,
        )
    except InvalidArgument as error:
        assert error.violations
        assert all(v.field.startswith("rule.") for v in error.violations)
        return
    assert created.version == 1
    assert created.triggers
    assert created.actions
    # A valid rule can be evaluated on any ticket and revised to itself without a new version.
    evaluate([created], next(iter(created.triggers)), TicketFacts(at=NOW, text="x"))
    assert created.revised(now=NOW, name=created.name) is created
