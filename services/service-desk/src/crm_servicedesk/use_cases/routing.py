"""Routing: the rules of a trigger applied to a ticket (team, agent, priority, tags,
escalation), each decision recorded on the ticket and published."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from crm_platform.context import Actor, ActorType
from crm_platform.errors import NotFound
from crm_servicedesk import events
from crm_servicedesk.domain.mention import Mention
from crm_servicedesk.domain.routing import (
    ActionKind,
    AgentLoad,
    AssignStrategy,
    Decision,
    TicketFacts,
    Trigger,
    action_to_document,
    choose_agent,
    evaluate,
)
from crm_servicedesk.domain.ticket import RoutingRecord, Ticket
from crm_servicedesk.domain.values import Channel, Priority, SlaTarget
from crm_servicedesk.storage import ServiceDeskStore, Session
from crm_servicedesk.use_cases.changes import TicketChange, turns_taken

# How an escalated ticket is marked (rules can test it: "escalate once").
ESCALATED_TAG = "escalated"


def ticket_facts(
    ticket: Ticket, at: datetime, *, sla_target: SlaTarget | None = None
) -> TicketFacts:
    """What routing rules see of a ticket."""
    return TicketFacts(
        at=at,
        ticket_id=ticket.ticket_id,
        type=ticket.type,
        channel=ticket.channel,
        priority=ticket.priority,
        status=ticket.status,
        customer_tier=ticket.customer_tier,
        tags=frozenset(ticket.tags),
        category=ticket.category,
        product=ticket.product,
        text=f"{ticket.subject}\n{ticket.description}",
        team_id=ticket.team_id,
        assignee_id=ticket.assignee_id,
        escalated=ESCALATED_TAG in ticket.tags,
        sla_target=sla_target,
    )


def mention_facts(mention: Mention, at: datetime) -> TicketFacts:
    """What routing rules see of a mention."""
    return TicketFacts(
        at=at,
        channel=Channel.SOCIAL,
        sentiment=mention.sentiment,
        author_followers=mention.author_followers,
        text=mention.text,
    )


def moved_to_team(ticket: Ticket, team_id: str) -> Ticket:
    """A ticket queued for another team loses its assignee (they are in the old team)."""
    if team_id == ticket.team_id:
        return ticket
    return replace(ticket, team_id=team_id, assignee_id="")


class Router:
    """Applies a tenant's routing rules to its tickets."""

    def __init__(self, store: ServiceDeskStore) -> None:
        self.store = store

    async def route(
        self,
        ticket: Ticket,
        trigger: Trigger,
        at: datetime,
        session: Session,
        change: TicketChange,
        *,
        sla_target: SlaTarget | None = None,
    ) -> Ticket:
        """The ticket after the rules of ``trigger``; each decision goes on the ticket's
        routing record and into ``change``."""
        rules = await self.store.routing_rules(ticket.tenant_id, session)
        if not rules:
            return ticket
        decisions = evaluate(rules, trigger, ticket_facts(ticket, at, sla_target=sla_target))
        if not decisions:
            return ticket
        routed, records = await self._apply_decisions(ticket, decisions, trigger, at, session)
        if records:
            routed = routed.record_routing(records, at)
            for record in records:
                change.add(
                    events.ticket_routed(ticket, record), at, Actor(ActorType.RULE, record.rule_id)
                )
        return routed

    async def _apply_decisions(
        self,
        ticket: Ticket,
        decisions: Sequence[Decision],
        trigger: Trigger,
        at: datetime,
        session: Session,
    ) -> tuple[Ticket, list[RoutingRecord]]:
        records: list[RoutingRecord] = []
        for decision in decisions:
            action = decision.action
            agent_id = ""
            if action.kind is ActionKind.ASSIGN_TEAM:
                ticket = moved_to_team(ticket, action.team_id)
            elif action.kind is ActionKind.ASSIGN_AGENT:
                team_id = action.team_id or ticket.team_id
                loads = [
                    a.load()
                    for a in await self.store.team_agents(ticket.tenant_id, team_id, session)
                ]
                assert action.strategy is not None
                cursor = None
                if action.strategy is AssignStrategy.ROUND_ROBIN:
                    cursor = await self._round_robin_cursor(ticket.tenant_id, team_id, loads)
                chosen = choose_agent(
                    action.strategy, team_id, loads, action.required_skills, cursor
                )
                if chosen is None:
                    continue
                agent_id = chosen
                ticket = replace(ticket, team_id=team_id, assignee_id=chosen)
            elif action.kind is ActionKind.SET_PRIORITY:
                assert action.priority is not None
                ticket = replace(ticket, priority=Priority(action.priority))
            elif action.kind is ActionKind.ADD_TAG:
                ticket = replace(ticket, tags=tuple(dict.fromkeys((*ticket.tags, action.tag))))
            elif action.kind is ActionKind.ESCALATE:
                ticket = replace(
                    moved_to_team(ticket, action.team_id or ticket.team_id),
                    priority=ticket.priority.raised(),
                    tags=tuple(dict.fromkeys((*ticket.tags, ESCALATED_TAG))),
                )
            else:
                continue  # OPEN_TICKET is the mention flow's decision
            records.append(
                RoutingRecord(
                    rule_id=decision.rule_id,
                    rule_version=decision.rule_version,
                    trigger=trigger.value,
                    action=action_to_document(action),
                    assigned_agent_id=agent_id,
                    decided_at=at,
                )
            )
        return ticket, records

    async def _round_robin_cursor(
        self, tenant_id: str, team_id: str, loads: Sequence[AgentLoad]
    ) -> str | None:
        """The agent whose turn was last, from the team's turn counter. The counter is taken
        outside the ticket's transaction: concurrent tickets for one team would otherwise all
        conflict on it (an aborted ticket just skips a turn)."""
        members = sorted(a.agent_id for a in loads if a.available and team_id in a.team_ids)
        if not members:
            return None
        taken = turns_taken()
        turn = taken.get(team_id) if taken is not None else None
        if turn is None:
            turn = await self.store.next_turn(tenant_id, team_id)
            if taken is not None:
                taken[team_id] = turn
        return members[(turn - 1) % len(members)] if turn else None

    async def require_agent(self, tenant_id: str, agent_id: str, session: Session | None) -> None:
        """NOT_FOUND unless the tenant has this agent."""
        if not await self.store.has_agent(tenant_id, agent_id, session):
            raise NotFound("agent", agent_id)
