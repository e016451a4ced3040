"""Configuration: calendars, SLA policies, routing rules and agents, each change a new version
of the item and a ``*Changed`` event."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from google.protobuf.message import Message as ProtoMessage

from crm_platform.context import current_call
from crm_platform.errors import FailedPrecondition
from crm_platform.mongo import CONCURRENT_UPDATE
from crm_platform.unit_of_work import Transaction
from crm_servicedesk import events
from crm_servicedesk.domain.configuration import Agent, CalendarRecord
from crm_servicedesk.domain.routing import RoutingRule
from crm_servicedesk.domain.sla_policy import SlaPolicy
from crm_servicedesk.storage import ServiceDeskStore, scoped_id
from crm_servicedesk.use_cases.changes import TicketChanges


class Configuration:
    """The configuration items of the caller's tenant: read, stored, their changes published."""

    def __init__(
        self, store: ServiceDeskStore, changes: TicketChanges, now: Callable[[], datetime]
    ) -> None:
        self.store = store
        self.changes = changes
        self.now = now

    # -- reads -----------------------------------------------------------------------------

    async def calendar(self, calendar_id: str) -> CalendarRecord:
        """The current version of a calendar."""
        return await self.store.calendar(current_call().tenant_id, calendar_id)

    async def calendars(self) -> list[CalendarRecord]:
        """Every calendar (current versions)."""
        return await self.store.list_calendars(current_call().tenant_id)

    async def sla_policy(self, policy_id: str) -> SlaPolicy:
        """The current version of an SLA policy."""
        return await self.store.sla_policy(current_call().tenant_id, policy_id)

    async def sla_policies(self) -> list[SlaPolicy]:
        """SLA policies in matching order."""
        policies = await self.store.sla_policies(current_call().tenant_id)
        return sorted(policies, key=lambda p: (p.position, p.policy_id))

    async def routing_rule(self, rule_id: str) -> RoutingRule:
        """The current version of a routing rule."""
        return await self.store.routing_rule(current_call().tenant_id, rule_id)

    async def routing_rules(self) -> list[RoutingRule]:
        """Routing rules in evaluation order."""
        rules = await self.store.routing_rules(current_call().tenant_id)
        return sorted(rules, key=lambda r: (r.position, r.rule_id))

    async def agent(self, agent_id: str) -> Agent | None:
        """An agent, if there is one of this id."""
        return await self.store.agent(current_call().tenant_id, agent_id)

    async def agents(self, team_id: str = "") -> list[Agent]:
        """Agents (of one team), in id order."""
        return await self.store.list_agents(current_call().tenant_id, team_id)

    # -- changes ---------------------------------------------------------------------------

    async def save_calendar(self, record: CalendarRecord) -> None:
        """Store a calendar version (and make it the current one)."""
        tenant_id = current_call().tenant_id
        calendar_id = record.calendar.calendar_id
        await self._save(
            "calendar",
            calendar_id,
            lambda tx: self.store.save_calendar(record, tenant_id, tx.session),
            events.calendar_changed(record),
            record.updated_at,
        )

    async def save_policy(self, policy: SlaPolicy) -> None:
        """Store an SLA policy version."""
        tenant_id = current_call().tenant_id
        await self._save(
            "policy",
            policy.policy_id,
            lambda tx: self.store.save_versioned("policy", policy, tenant_id, tx.session),
            events.policy_changed(policy),
            policy.updated_at,
        )

    async def save_rule(self, rule: RoutingRule) -> None:
        """Store a routing rule version."""
        tenant_id = current_call().tenant_id
        await self._save(
            "rule",
            rule.rule_id,
            lambda tx: self.store.save_versioned("rule", rule, tenant_id, tx.session),
            events.rule_changed(rule),
            rule.update_time,
        )

    async def put_agent(self, agent: Agent) -> None:
        """Create or replace an agent."""
        await self._save(
            "agent",
            scoped_id(agent.tenant_id, agent.agent_id),
            lambda tx: self.store.put_agent(agent, tx.session),
            events.agent_changed(agent),
            self.now(),  # an agent record keeps no change time of its own
        )

    async def _save(
        self,
        kind: str,
        doc_id: str,
        write: Callable[[Transaction], Awaitable[None]],
        payload: ProtoMessage,
        at: datetime,
    ) -> None:
        """Write one configuration item and its event, stamped when the item says it changed."""

        async def work(tx: Transaction) -> None:
            await write(tx)
            tx.publish([events.envelope(payload, doc_id, f"{kind}s/{doc_id}", at)])

        async def refused(error: Exception) -> None:
            raise FailedPrecondition(
                CONCURRENT_UPDATE, f"{kind}/{doc_id}", "changed meanwhile; read it again"
            ) from None

        await self.changes.commit(work, on_duplicate_key=refused)
