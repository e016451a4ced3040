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
from crm_servicedesk.usecases.changes import TicketChanges


class Configuration:
    """Stores configuration items of the caller's tenant and publishes their changes."""

    def __init__(
        self, store: ServiceDeskStore, changes: TicketChanges, now: Callable[[], datetime]
    ) -> None:
        self.store = store
        self.changes = changes
        self.now = now

    async def save_calendar(self, record: CalendarRecord) -> None:
        """Store a calendar version (and make it the current one)."""
        tenant_id = current_call().tenant_id
        calendar_id = record.calendar.calendar_id
        await self._save(
            "calendar",
            calendar_id,
            lambda tx: self.store.save_calendar(record, tenant_id, tx.session),
            events.calendar_changed(record),
        )

    async def save_policy(self, policy: SlaPolicy) -> None:
        """Store an SLA policy version."""
        tenant_id = current_call().tenant_id
        await self._save(
            "policy",
            policy.policy_id,
            lambda tx: self.store.save_versioned("policy", policy, tenant_id, tx.session),
            events.policy_changed(policy),
        )

    async def save_rule(self, rule: RoutingRule) -> None:
        """Store a routing rule version."""
        tenant_id = current_call().tenant_id
        await self._save(
            "rule",
            rule.rule_id,
            lambda tx: self.store.save_versioned("rule", rule, tenant_id, tx.session),
            events.rule_changed(rule),
        )

    async def put_agent(self, agent: Agent) -> None:
        """Create or replace an agent."""
        await self._save(
            "agent",
            scoped_id(agent.tenant_id, agent.agent_id),
            lambda tx: self.store.put_agent(agent, tx.session),
            events.agent_changed(agent),
        )

    async def _save(
        self,
        kind: str,
        doc_id: str,
        write: Callable[[Transaction], Awaitable[None]],
        payload: ProtoMessage,
    ) -> None:
        at = self.now()

        async def work(tx: Transaction) -> None:
            await write(tx)
            tx.publish([events.envelope(payload, doc_id, f"{kind}s/{doc_id}", at)])

        async def refused(error: Exception) -> None:
            raise FailedPrecondition(
                CONCURRENT_UPDATE, f"{kind}/{doc_id}", "changed meanwhile; read it again"
            ) from None

        await self.changes.commit(work, on_duplicate_key=refused)
