"""Routing and escalation: ordered rules that route tickets, set their priority, escalate them.

A :class:`RoutingRule` pairs a :class:`Condition` on what is known about a ticket (or a social
mention) when an event happens, its :class:`TicketFacts`, with the actions to take when the
condition holds. :func:`evaluate` runs a tenant's rules for one :class:`Trigger` in order and
returns :class:`Decision` objects, each naming the rule and rule version that made it, so
prioritisation and assignment are explicit and auditable (favouritism included). Ordering,
versioning, decisions and the field checks are the shared ones of :mod:`crm_platform.rules`
(the sales territories use them too); what is routing's own is here.
:func:`choose_agent` then resolves an "assign an agent" decision to one agent, deterministically.

Pure code: no clock, no I/O. The ticket vocabulary (types, channels, priorities...) is
:mod:`crm_servicedesk.domain.values`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from crm_platform.errors import FieldViolation, InvalidArgument
from crm_platform.rules import (
    MAX_ID_LENGTH,
    MAX_NAME_LENGTH,
    MAX_VALUE_LENGTH,
    check_position,
    clean_enum,
    clean_enum_values,
    clean_id,
    clean_text,
    clean_values,
    from_document,
    in_order,
    path,
    revise,
    to_document,
)
from crm_platform.rules import Decision as RuleDecision
from crm_servicedesk.domain.values import Channel, Priority, SlaTarget, TicketStatus, TicketType

MAX_TEXT_NEEDLE_LENGTH = 200
MAX_ACTIONS = 10
MINUTES_PER_DAY = 24 * 60


class Trigger(StrEnum):
    """The event a rule reacts to."""

    TICKET_CREATED = "ticket_created"
    TICKET_UPDATED = "ticket_updated"
    MENTION_RECEIVED = "mention_received"
    SLA_AT_RISK = "sla_at_risk"
    SLA_BREACHED = "sla_breached"


SLA_TRIGGERS = frozenset({Trigger.SLA_AT_RISK, Trigger.SLA_BREACHED})


class AssignStrategy(StrEnum):
    """How :func:`choose_agent` picks an agent within a team."""

    ROUND_ROBIN = "round_robin"
    LEAST_OPEN = "least_open"
    SKILL_MATCH = "skill_match"


class ActionKind(StrEnum):
    """What an action does; each kind uses only some of :class:`Action`'s fields."""

    ASSIGN_TEAM = "assign_team"  # team_id
    ASSIGN_AGENT = "assign_agent"  # team_id, strategy, required_skills (SKILL_MATCH only)
    SET_PRIORITY = "set_priority"  # priority
    ADD_TAG = "add_tag"  # tag
    ESCALATE = "escalate"  # team_id (optional): raise the priority a level, move to the team
    OPEN_TICKET = "open_ticket"  # ticket_type (optional); MENTION_RECEIVED rules only


# The fields of Action each kind may set; any other field must stay at its default.
_ACTION_FIELDS: dict[ActionKind, frozenset[str]] = {
    ActionKind.ASSIGN_TEAM: frozenset({"team_id"}),
    ActionKind.ASSIGN_AGENT: frozenset({"team_id", "strategy", "required_skills"}),
    ActionKind.SET_PRIORITY: frozenset({"priority"}),
    ActionKind.ADD_TAG: frozenset({"tag"}),
    ActionKind.ESCALATE: frozenset({"team_id"}),
    ActionKind.OPEN_TICKET: frozenset({"ticket_type"}),
}
_ASSIGNMENT_KINDS = frozenset({ActionKind.ASSIGN_TEAM, ActionKind.ASSIGN_AGENT})


@dataclass(frozen=True, slots=True)
class TicketFacts:
    """What a rule can see of a ticket, or of a social mention, when an event happens.

    Empty strings and ``None`` mean "unknown"; a condition on an unknown value does not hold.
    ``text`` is the subject, description or mention text (joined by the caller). ``sla_target``
    is set for SLA events only. ``ticket_id`` is empty for a mention not linked to a ticket yet.
    ``at`` is the time of the event and must carry a time zone.
    """

    at: datetime
    ticket_id: str = ""
    type: TicketType | None = None
    channel: Channel | None = None
    priority: Priority | None = None
    status: TicketStatus | None = None
    customer_tier: str = ""
    tags: frozenset[str] = frozenset()
    category: str = ""
    product: str = ""
    sentiment: float | None = None
    author_followers: int | None = None
    text: str = ""
    team_id: str = ""
    assignee_id: str = ""
    escalated: bool = False
    sla_target: SlaTarget | None = None

    def __post_init__(self) -> None:
        if self.at.utcoffset() is None:
            raise ValueError("TicketFacts.at must be an aware datetime")


@dataclass(frozen=True, slots=True)
class Condition:
    """When a rule applies: every field set must hold (AND); an empty condition always holds.

    Set-valued fields hold when the ticket's value is one of theirs (``tags_any``: when the
    ticket has at least one of the tags). ``sentiment_below``/``sentiment_above`` compare the
    polarity in [-1, 1] strictly; ``min_author_followers`` is the author's influence. The time
    window ``[local_time_from_minute, local_time_to_minute)`` is read in ``timezone`` and wraps
    past midnight when *from* > *to*; ``weekdays`` are 0 (Monday) to 6 (Sunday), and for a window
    that wraps the hours after midnight belong to the day the window opened. ``text_contains_any``
    holds when the text contains one of the phrases, ignoring case.
    """

    types: frozenset[TicketType] = frozenset()
    channels: frozenset[Channel] = frozenset()
    priorities: frozenset[Priority] = frozenset()
    statuses: frozenset[TicketStatus] = frozenset()
    customer_tiers: frozenset[str] = frozenset()
    tags_any: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()
    products: frozenset[str] = frozenset()
    team_ids: frozenset[str] = frozenset()
    sentiment_below: float | None = None
    sentiment_above: float | None = None
    min_author_followers: int | None = None
    escalated: bool | None = None
    sla_targets: frozenset[SlaTarget] = frozenset()
    local_time_from_minute: int | None = None
    local_time_to_minute: int | None = None
    weekdays: frozenset[int] = frozenset()
    timezone: str = "UTC"
    text_contains_any: frozenset[str] = frozenset()

    def matches(self, facts: TicketFacts) -> bool:
        """Whether the condition holds for ``facts``."""
        memberships = (
            (self.types, facts.type),
            (self.channels, facts.channel),
            (self.priorities, facts.priority),
            (self.statuses, facts.status),
            (self.customer_tiers, facts.customer_tier),
            (self.categories, facts.category),
            (self.products, facts.product),
            (self.team_ids, facts.team_id),
            (self.sla_targets, facts.sla_target),
        )
        if any(allowed and value not in allowed for allowed, value in memberships):
            return False
        if self.tags_any and self.tags_any.isdisjoint(facts.tags):
            return False
        if self.sentiment_below is not None and not (
            facts.sentiment is not None and facts.sentiment < self.sentiment_below
        ):
            return False
        if self.sentiment_above is not None and not (
            facts.sentiment is not None and facts.sentiment > self.sentiment_above
        ):
            return False
        if self.min_author_followers is not None and not (
            facts.author_followers is not None
            and facts.author_followers >= self.min_author_followers
        ):
            return False
        if self.escalated is not None and facts.escalated is not self.escalated:
            return False
        if self.text_contains_any:
            text = facts.text.casefold()
            if not any(phrase.casefold() in text for phrase in self.text_contains_any):
                return False
        return self._in_time_window(facts.at)

    def _in_time_window(self, at: datetime) -> bool:
        start, end = self.local_time_from_minute, self.local_time_to_minute
        if (start is None or end is None) and not self.weekdays:
            return True
        local = at.astimezone(ZoneInfo(self.timezone))
        minute = local.hour * 60 + local.minute
        day = local.weekday()
        if start is not None and end is not None:
            if start < end:
                if not start <= minute < end:
                    return False
            elif minute < end:
                day = (day - 1) % 7  # the window opened the evening before
            elif minute < start:
                return False
        return not self.weekdays or day in self.weekdays


@dataclass(frozen=True, slots=True)
class Action:
    """One thing a rule does; build it with the class methods (one per :class:`ActionKind`).

    A flat record (the kind and the fields it uses) so it maps one-to-one to an API message.
    """

    kind: ActionKind
    team_id: str = ""
    strategy: AssignStrategy | None = None
    required_skills: frozenset[str] = frozenset()
    priority: Priority | None = None
    tag: str = ""
    ticket_type: TicketType | None = None

    @classmethod
    def assign_team(cls, team_id: str) -> Action:
        """Put the ticket in ``team_id``'s queue (an agent of another team loses it)."""
        return cls(ActionKind.ASSIGN_TEAM, team_id=team_id)

    @classmethod
    def assign_agent(
        cls, team_id: str, strategy: AssignStrategy, required_skills: Iterable[str] = ()
    ) -> Action:
        """Give the ticket to an agent of ``team_id`` chosen by ``strategy`` (see choose_agent)."""
        return cls(
            ActionKind.ASSIGN_AGENT,
            team_id=team_id,
            strategy=strategy,
            required_skills=frozenset(required_skills),
        )

    @classmethod
    def set_priority(cls, priority: Priority) -> Action:
        """Set the ticket's priority."""
        return cls(ActionKind.SET_PRIORITY, priority=priority)

    @classmethod
    def add_tag(cls, tag: str) -> Action:
        """Add ``tag`` to the ticket."""
        return cls(ActionKind.ADD_TAG, tag=tag)

    @classmethod
    def escalate(cls, team_id: str = "") -> Action:
        """Mark the ticket escalated, raise its priority one level and, when ``team_id`` is
        given, move it to that team (supervisors are told through the resulting event)."""
        return cls(ActionKind.ESCALATE, team_id=team_id)

    @classmethod
    def open_ticket(cls, ticket_type: TicketType | None = None) -> Action:
        """Open a ticket (of ``ticket_type``, if given) from a social mention that has none."""
        return cls(ActionKind.OPEN_TICKET, ticket_type=ticket_type)


Decision = RuleDecision[Action]
"""An action a rule decided for a ticket, with the rule id and version, for the audit trail
(:class:`crm_platform.rules.Decision`). For ``ASSIGN_AGENT`` the agent is not known yet: the
caller resolves it with :func:`choose_agent`."""


@dataclass(frozen=True, slots=True)
class RoutingRule:
    """A named, ordered, versioned rule: on ``triggers``, when ``condition`` holds, do ``actions``.

    Build one with :meth:`create` and change it with :meth:`revised`; both validate. ``version``
    starts at 1 and grows by one with every revision that changes something, so a decision's
    ``(rule_id, rule_version)`` names exactly the rule text that made it. Rules run in
    ``position`` order (ties by ``rule_id``); ``stop_processing`` ends the evaluation after
    this rule when it matched.
    """

    rule_id: str
    version: int
    name: str
    position: int
    enabled: bool
    triggers: frozenset[Trigger]
    condition: Condition
    actions: tuple[Action, ...]
    stop_processing: bool
    create_time: datetime
    update_time: datetime

    @classmethod
    def create(
        cls,
        *,
        rule_id: str,
        name: str,
        triggers: Iterable[Trigger],
        actions: Iterable[Action],
        now: datetime,
        condition: Condition | None = None,
        position: int = 0,
        enabled: bool = True,
        stop_processing: bool = False,
        field_prefix: str = "rule",
    ) -> RoutingRule:
        """Validate the fields and return a new rule at version 1.

        ``field_prefix`` starts every violation's path (``rule.condition.timezone``). Raises
        ``InvalidArgument`` listing every violation.
        """
        violations: list[FieldViolation] = []
        rule = _checked(
            violations,
            field_prefix,
            rule_id=clean_id(violations, path(field_prefix, "rule_id"), rule_id, required=True),
            version=1,
            name=name,
            position=position,
            enabled=enabled,
            triggers=triggers,
            condition=condition if condition is not None else Condition(),
            actions=actions,
            stop_processing=stop_processing,
            create_time=now,
            update_time=now,
        )
        if violations:
            raise InvalidArgument(violations)
        return rule

    def revised(
        self,
        *,
        now: datetime,
        name: str | None = None,
        position: int | None = None,
        enabled: bool | None = None,
        triggers: Iterable[Trigger] | None = None,
        condition: Condition | None = None,
        actions: Iterable[Action] | None = None,
        stop_processing: bool | None = None,
        expected_version: int | None = None,
        field_prefix: str = "rule",
    ) -> RoutingRule:
        """The rule with the given fields replaced (``None`` keeps a field), at the next version.

        Validates like :meth:`create` (raises ``InvalidArgument``), then raises ``StaleVersion``
        when ``expected_version`` is given and is not the current version. When nothing actually
        changes, the same rule comes back with its version untouched.
        """
        violations: list[FieldViolation] = []
        candidate = _checked(
            violations,
            field_prefix,
            rule_id=self.rule_id,
            version=self.version,
            name=self.name if name is None else name,
            position=self.position if position is None else position,
            enabled=self.enabled if enabled is None else enabled,
            triggers=self.triggers if triggers is None else triggers,
            condition=self.condition if condition is None else condition,
            actions=self.actions if actions is None else actions,
            stop_processing=self.stop_processing if stop_processing is None else stop_processing,
            create_time=self.create_time,
            update_time=self.update_time,
        )
        if violations:
            raise InvalidArgument(violations)
        return revise(
            self,
            candidate,
            now=now,
            expected_version=expected_version,
            subject=f"routingRules/{self.rule_id}",
        )


def evaluate(rules: Sequence[RoutingRule], trigger: Trigger, facts: TicketFacts) -> list[Decision]:
    """The decisions the rules make for one event, in the order they were made.

    - Only enabled rules listing ``trigger`` run, in ``(position, rule_id)`` order, whatever
      the order of ``rules``.
    - Each rule sees the facts as changed by the decisions before it (priority, tags, team,
      escalation, ticket type), so a rule may build on an earlier one.
    - Precedence: the first rule to decide an effect wins. A ticket gets at most one team
      decision, one agent decision, one priority, one escalation and one opened ticket per
      evaluation; later rules' actions for an effect already decided are dropped. An agent
      decision may follow a team decision for the same team (route, then pick an agent) but
      never moves the ticket away from a team an earlier rule chose. Tags accumulate.
    - An escalation raises the priority one level, on top of a priority decided before it, and
      no later rule sets the priority. Its move to a team (``team_id``) counts as the team
      decision; when an earlier rule chose another team, the escalation is returned without
      the move (its action's ``team_id`` emptied).
    - A decision that would change nothing (the priority it already has, a tag it already has,
      the team it is already in, an agent when it already has one in that team, a ticket for a
      mention that has one) is left out, and still takes precedence over later rules.
    - ``stop_processing`` on a matching rule ends the evaluation after that rule.
    """
    ordered = in_order(rules, lambda rule: trigger in rule.triggers)
    evaluation = _Evaluation(facts)
    for rule in ordered:
        if not rule.condition.matches(evaluation.facts):
            continue
        for action in rule.actions:
            evaluation.decide(rule, action)
        if rule.stop_processing:
            break
    return evaluation.decisions


@dataclass(frozen=True, slots=True)
class AgentLoad:
    """An agent as the assignment strategies see them: teams, skills, current load, presence."""

    agent_id: str
    team_ids: frozenset[str]
    skills: frozenset[str] = frozenset()
    open_tickets: int = 0
    available: bool = True


def choose_agent(
    strategy: AssignStrategy,
    team_id: str,
    agents: Sequence[AgentLoad],
    required_skills: frozenset[str] = frozenset(),
    round_robin_cursor: str | None = None,
) -> str | None:
    """The agent of ``team_id`` to give a ticket to, or ``None`` when no member is available.

    Only available members of the team count (agent ids are unique). Deterministic:

    - ``ROUND_ROBIN``: the first member whose id comes after ``round_robin_cursor`` (the agent
      this strategy chose last for the team), wrapping to the smallest id.
    - ``LEAST_OPEN``: fewest open tickets, ties by agent id.
    - ``SKILL_MATCH``: most of ``required_skills`` (all of them when someone has all), then
      fewest open tickets, then agent id; when nobody has any of the skills, the least loaded
      member still gets the ticket. ``required_skills`` is used by this strategy only.
    """
    members = sorted(
        (a for a in agents if a.available and team_id in a.team_ids), key=lambda a: a.agent_id
    )
    if not members:
        return None
    if strategy is AssignStrategy.ROUND_ROBIN:
        if round_robin_cursor is None:
            return members[0].agent_id
        after = [a for a in members if a.agent_id > round_robin_cursor]
        return (after or members)[0].agent_id
    if strategy is AssignStrategy.LEAST_OPEN:
        return min(members, key=lambda a: (a.open_tickets, a.agent_id)).agent_id
    return min(
        members,
        key=lambda a: (-len(a.skills & required_skills), a.open_tickets, a.agent_id),
    ).agent_id


class _Evaluation:
    """The running state of one :func:`evaluate` call: facts so far, decisions, decided effects."""

    def __init__(self, facts: TicketFacts) -> None:
        self.facts = facts
        self.decisions: list[Decision] = []
        self._decided: set[str] = set()

    def decide(self, rule: RoutingRule, action: Action) -> None:
        """Take ``action`` of ``rule`` into account: record it, unless precedence or no effect."""
        facts, replace = self.facts, dataclasses.replace
        match action.kind:
            case ActionKind.ASSIGN_TEAM:
                if self._claim("team"):
                    after = replace(facts, team_id=action.team_id, assignee_id="")
                    self._record(rule, action, facts.team_id != action.team_id, after)
            case ActionKind.ASSIGN_AGENT:
                if "agent" in self._decided or (
                    "team" in self._decided and facts.team_id != action.team_id
                ):
                    return
                self._decided.update(("team", "agent"))
                has_one = facts.team_id == action.team_id and facts.assignee_id != ""
                # The agent is chosen later (choose_agent); later rules only see the team.
                after = replace(facts, team_id=action.team_id, assignee_id="")
                self._record(rule, action, not has_one, after)
            case ActionKind.SET_PRIORITY:
                if self._claim("priority"):
                    after = replace(facts, priority=action.priority)
                    self._record(rule, action, facts.priority != action.priority, after)
            case ActionKind.ADD_TAG:
                after = replace(facts, tags=facts.tags | {action.tag})
                self._record(rule, action, action.tag not in facts.tags, after)
            case ActionKind.ESCALATE:
                if not self._claim("escalation"):
                    return
                team = action.team_id
                if team and "team" in self._decided and facts.team_id != team:
                    team = ""  # an earlier rule chose the team: escalate without the move
                    action = replace(action, team_id="")
                if team:
                    self._decided.add("team")
                # The raise applies on top of any priority decided before; none may follow it.
                self._decided.add("priority")
                after = replace(
                    facts,
                    escalated=True,
                    priority=facts.priority.raised() if facts.priority else None,
                    team_id=team or facts.team_id,
                    assignee_id="" if team and team != facts.team_id else facts.assignee_id,
                )
                self._record(rule, action, True, after)
            case ActionKind.OPEN_TICKET:
                if self._claim("ticket"):
                    after = replace(facts, type=action.ticket_type or facts.type)
                    self._record(rule, action, facts.ticket_id == "", after)

    def _claim(self, effect: str) -> bool:
        """Decide ``effect`` now, unless an earlier rule already has."""
        if effect in self._decided:
            return False
        self._decided.add(effect)
        return True

    def _record(self, rule: RoutingRule, action: Action, changed: bool, after: TicketFacts) -> None:
        if changed:
            self.decisions.append(Decision(rule.rule_id, rule.version, action))
            self.facts = after


# --- validation -----------------------------------------------------------------------------


def _checked(
    violations: list[FieldViolation],
    prefix: str,
    *,
    rule_id: str,
    version: int,
    name: str,
    position: int,
    enabled: bool,
    triggers: Iterable[Trigger],
    condition: Condition,
    actions: Iterable[Action],
    stop_processing: bool,
    create_time: datetime,
    update_time: datetime,
) -> RoutingRule:
    """The rule these fields make, cleaned; every problem found is appended to ``violations``."""
    trigger_list = list(triggers)
    trigger_path = path(prefix, "triggers")
    if not trigger_list:
        violations.append(FieldViolation(trigger_path, "at least one trigger is required"))
    trigger_set = clean_enum_values(violations, trigger_path, trigger_list, Trigger)
    check_position(violations, path(prefix, "position"), position)
    return RoutingRule(
        rule_id=rule_id,
        version=version,
        name=clean_text(
            violations, path(prefix, "name"), name, max_length=MAX_NAME_LENGTH, required=True
        ),
        position=position,
        enabled=enabled,
        triggers=trigger_set,
        condition=_clean_condition(violations, path(prefix, "condition"), condition, trigger_set),
        actions=_clean_actions(violations, path(prefix, "actions"), actions, trigger_set),
        stop_processing=stop_processing,
        create_time=create_time,
        update_time=update_time,
    )


_VALUE_FIELDS = (
    "customer_tiers",
    "tags_any",
    "categories",
    "products",
)


def _clean_condition(
    violations: list[FieldViolation],
    prefix: str,
    condition: Condition,
    triggers: frozenset[Trigger],
) -> Condition:
    def add(name: str, description: str) -> None:
        violations.append(FieldViolation(path(prefix, name), description))

    values = {
        name: clean_values(violations, path(prefix, name), getattr(condition, name))
        for name in _VALUE_FIELDS
    }
    team_ids = clean_values(
        violations, path(prefix, "team_ids"), condition.team_ids, max_length=MAX_ID_LENGTH
    )
    types = clean_enum_values(violations, path(prefix, "types"), condition.types, TicketType)
    channels = clean_enum_values(violations, path(prefix, "channels"), condition.channels, Channel)
    statuses = clean_enum_values(
        violations, path(prefix, "statuses"), condition.statuses, TicketStatus
    )
    priorities = clean_enum_values(
        violations, path(prefix, "priorities"), condition.priorities, Priority
    )
    sla_targets = clean_enum_values(
        violations, path(prefix, "sla_targets"), condition.sla_targets, SlaTarget
    )
    if condition.sla_targets and triggers and not triggers <= SLA_TRIGGERS:
        # On any other event the ticket has no SLA target, so the rule could never match there.
        add(
            "sla_targets",
            "applies to sla_at_risk and sla_breached triggers only; remove the others",
        )

    below, above = condition.sentiment_below, condition.sentiment_above
    for name, bound in (("sentiment_below", below), ("sentiment_above", above)):
        if bound is not None and not -1.0 <= bound <= 1.0:  # NaN fails too
            add(name, f"must be between -1 and 1, got {bound}")
    bounds_valid = all(b is None or -1.0 <= b <= 1.0 for b in (below, above))
    if bounds_valid and below is not None and above is not None and above >= below:
        add("sentiment_below", "must be greater than sentiment_above, or no sentiment matches")
    if condition.min_author_followers is not None and condition.min_author_followers < 0:
        add("min_author_followers", "must not be negative")

    start, end = condition.local_time_from_minute, condition.local_time_to_minute
    if start is None and end is not None:
        add("local_time_from_minute", "is required when local_time_to_minute is set")
    if end is None and start is not None:
        add("local_time_to_minute", "is required when local_time_from_minute is set")
    if start is not None and not 0 <= start < MINUTES_PER_DAY:
        add("local_time_from_minute", f"must be between 0 and {MINUTES_PER_DAY - 1}")
    if end is not None and not 0 <= end <= MINUTES_PER_DAY:
        add("local_time_to_minute", f"must be between 0 and {MINUTES_PER_DAY}")
    elif start is not None and start == end:
        add(
            "local_time_to_minute",
            "must differ from local_time_from_minute (unset both for all day)",
        )
    bad_days = sorted(day for day in condition.weekdays if not 0 <= day <= 6)
    if bad_days:
        add("weekdays", f"must be 0 (Monday) to 6 (Sunday), got {bad_days}")
    timezone = condition.timezone.strip()
    if not timezone:
        add("timezone", "is required")
    elif not _is_time_zone(timezone):
        add("timezone", f"unknown time zone {timezone[:MAX_ID_LENGTH]!r}")

    return Condition(
        types=types,
        channels=channels,
        priorities=priorities,
        statuses=statuses,
        customer_tiers=values["customer_tiers"],
        tags_any=values["tags_any"],
        categories=values["categories"],
        products=values["products"],
        team_ids=team_ids,
        sentiment_below=below,
        sentiment_above=above,
        min_author_followers=condition.min_author_followers,
        escalated=condition.escalated,
        sla_targets=sla_targets,
        local_time_from_minute=start,
        local_time_to_minute=end,
        weekdays=frozenset(condition.weekdays),
        timezone=timezone,
        text_contains_any=clean_values(
            violations,
            path(prefix, "text_contains_any"),
            condition.text_contains_any,
            max_length=MAX_TEXT_NEEDLE_LENGTH,
        ),
    )


def _is_time_zone(name: str) -> bool:
    if len(name) > MAX_ID_LENGTH:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def _clean_actions(
    violations: list[FieldViolation],
    prefix: str,
    actions: Iterable[Action],
    triggers: frozenset[Trigger],
) -> tuple[Action, ...]:
    items = list(actions)
    if not items:
        violations.append(FieldViolation(prefix, "at least one action is required"))
    elif len(items) > MAX_ACTIONS:
        violations.append(
            FieldViolation(prefix, f"must have at most {MAX_ACTIONS} actions, got {len(items)}")
        )
    cleaned = tuple(
        _clean_action(violations, f"{prefix}[{index}]", action, triggers)
        for index, action in enumerate(items)
    )
    # A rule that decides the same effect twice contradicts itself (or repeats itself).
    if sum(action.kind in _ASSIGNMENT_KINDS for action in cleaned) > 1:
        violations.append(
            FieldViolation(prefix, "at most one assign_team or assign_agent action per rule")
        )
    for kind in (ActionKind.SET_PRIORITY, ActionKind.ESCALATE, ActionKind.OPEN_TICKET):
        if sum(action.kind is kind for action in cleaned) > 1:
            violations.append(FieldViolation(prefix, f"at most one {kind} action per rule"))
    teams = {action.team_id for action in cleaned if action.team_id}
    if len(teams) > 1:
        violations.append(FieldViolation(prefix, f"name different teams: {sorted(teams)}"))
    tags = [action.tag for action in cleaned if action.kind is ActionKind.ADD_TAG and action.tag]
    for tag in sorted({tag for tag in tags if tags.count(tag) > 1}):
        violations.append(FieldViolation(prefix, f"adds the tag {tag!r} more than once"))
    return cleaned


def _clean_action(
    violations: list[FieldViolation], prefix: str, action: Action, triggers: frozenset[Trigger]
) -> Action:
    def add(name: str, description: str) -> None:
        violations.append(FieldViolation(path(prefix, name), description))

    try:
        kind = ActionKind(action.kind)
    except ValueError:
        add("kind", f"unknown action kind {action.kind!r}")
        return action
    used = _ACTION_FIELDS[kind]
    for spec in dataclasses.fields(Action):
        if (
            spec.name not in used
            and spec.name != "kind"
            and getattr(action, spec.name) != spec.default
        ):
            add(spec.name, f"must not be set for {kind} actions")

    team_id = action.team_id
    if "team_id" in used:
        required = kind in _ASSIGNMENT_KINDS
        team_id = clean_id(violations, path(prefix, "team_id"), team_id, required=required)
    strategy, skills = action.strategy, action.required_skills
    if kind is ActionKind.ASSIGN_AGENT:
        strategy = clean_enum(violations, path(prefix, "strategy"), strategy, AssignStrategy)
        skills = clean_values(violations, path(prefix, "required_skills"), skills)
        if strategy is AssignStrategy.SKILL_MATCH and not skills:
            add("required_skills", "is required for the skill_match strategy")
        elif strategy is not None and strategy is not AssignStrategy.SKILL_MATCH and skills:
            add("required_skills", "is used by the skill_match strategy only")
    priority = action.priority
    if kind is ActionKind.SET_PRIORITY:
        priority = clean_enum(violations, path(prefix, "priority"), priority, Priority)
    tag = action.tag
    if kind is ActionKind.ADD_TAG:
        tag = clean_text(
            violations, path(prefix, "tag"), tag, max_length=MAX_VALUE_LENGTH, required=True
        )
    ticket_type = action.ticket_type
    if kind is ActionKind.OPEN_TICKET:
        if ticket_type is not None:
            ticket_type = clean_enum(
                violations, path(prefix, "ticket_type"), ticket_type, TicketType
            )
        if triggers and triggers != {Trigger.MENTION_RECEIVED}:
            add("kind", "open_ticket needs mention_received as the rule's only trigger")
    return Action(
        kind=kind,
        team_id=team_id,
        strategy=strategy,
        required_skills=skills,
        priority=priority,
        tag=tag,
        ticket_type=ticket_type,
    )


def action_to_document(action: Action) -> dict[str, Any]:
    """A rule action as plain data (kept on the ticket's routing record)."""
    return to_document(action)


def action_from_document(data: Mapping[str, Any]) -> Action:
    """A rule action from :func:`action_to_document`'s form."""
    return from_document(
        Action,
        data,
        enums={
            "kind": ActionKind,
            "strategy": AssignStrategy,
            "priority": Priority,
            "ticket_type": TicketType,
        },
        sets=("required_skills",),
    )
