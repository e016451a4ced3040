"""``crm.servicedesk.v1.ServiceDeskConfigService``: calendars, SLA policies, rules, agents.

Every change is a new version of the item and a ``*Changed`` event; tickets keep the calendar
and policy versions their due times were computed with.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from crm.servicedesk.v1 import servicedesk_pb2 as pb
from crm.servicedesk.v1 import servicedesk_pb2_grpc
from crm_calendar.business_calendar import BusinessCalendar
from crm_platform.context import current_call
from crm_platform.errors import FieldViolation, InvalidArgument, StaleVersion
from crm_servicedesk import contract
from crm_servicedesk.api import convert
from crm_servicedesk.domain.configuration import Agent, CalendarRecord
from crm_servicedesk.domain.routing import RoutingRule
from crm_servicedesk.domain.sla_clock import ClockKind
from crm_servicedesk.domain.sla_policy import SlaPolicy
from crm_servicedesk.use_cases.changes import new_id
from crm_servicedesk.use_cases.configuration import Configuration

Context = Any


def _check_version(kind: str, ident: str, expected: int, actual: int) -> None:
    if expected and expected != actual:
        raise StaleVersion(f"{kind}/{ident}", expected, actual)


def _require_id(ident: str, field: str) -> None:
    if not ident:
        raise InvalidArgument.single(field, "is required")


def _check_reachable(policy: SlaPolicy, calendar: BusinessCalendar, now: datetime) -> None:
    """A business-clock target must fall due within a year: more business time than the
    calendar opens in a year is a mistake (and would make every due-time computation scan
    years of calendar)."""
    yearly = calendar.business_time(now, now + timedelta(days=365))
    violations = [
        FieldViolation(
            f"policy.targets[{index}].duration",
            f"is more business time than calendar {calendar.calendar_id} opens in a year",
        )
        for index, spec in enumerate(policy.targets)
        if spec.clock is ClockKind.BUSINESS and timedelta(seconds=spec.seconds) > yearly
    ]
    if violations:
        raise InvalidArgument(violations)


class ServiceDeskConfigService(servicedesk_pb2_grpc.ServiceDeskConfigServiceServicer):
    """The configuration handlers."""

    def __init__(self, configuration: Configuration) -> None:
        self.configuration = configuration

    # -- calendars -------------------------------------------------------------------------

    async def _save_calendar(
        self, message: pb.BusinessCalendar, ident: str, version: int
    ) -> pb.BusinessCalendar:
        calendar = convert.calendar_from_proto(message, ident, version)
        record = CalendarRecord(calendar, message.name.strip(), self.configuration.now())
        await self.configuration.save_calendar(record)
        return contract.calendar_to_proto(calendar, record.name, record.updated_at)

    async def CreateCalendar(
        self, request: pb.CreateCalendarRequest, context: Context
    ) -> pb.CreateCalendarResponse:
        """A new calendar, version 1."""
        calendar = await self._save_calendar(request.calendar, new_id(), 1)
        return pb.CreateCalendarResponse(calendar=calendar)

    async def GetCalendar(
        self, request: pb.GetCalendarRequest, context: Context
    ) -> pb.GetCalendarResponse:
        """The current version of a calendar."""
        record = await self.configuration.calendar(request.id)
        return pb.GetCalendarResponse(
            calendar=contract.calendar_to_proto(record.calendar, record.name, record.updated_at)
        )

    async def UpdateCalendar(
        self, request: pb.UpdateCalendarRequest, context: Context
    ) -> pb.UpdateCalendarResponse:
        """The next version of a calendar."""
        _require_id(request.calendar.id, "calendar.id")
        current = await self.configuration.calendar(request.calendar.id)
        version = current.calendar.version
        _check_version("calendar", request.calendar.id, request.expected_version, version)
        calendar = await self._save_calendar(request.calendar, request.calendar.id, version + 1)
        return pb.UpdateCalendarResponse(calendar=calendar)

    async def ListCalendars(
        self, request: pb.ListCalendarsRequest, context: Context
    ) -> pb.ListCalendarsResponse:
        """Every calendar of the tenant."""
        records = await self.configuration.calendars()
        return pb.ListCalendarsResponse(
            calendars=[
                contract.calendar_to_proto(r.calendar, r.name, r.updated_at) for r in records
            ]
        )

    # -- SLA policies ----------------------------------------------------------------------

    async def _save_policy(self, message: pb.SlaPolicy, ident: str, version: int) -> pb.SlaPolicy:
        tenant_id = current_call().tenant_id
        policy = convert.policy_from_proto(
            message,
            policy_id=ident,
            tenant_id=tenant_id,
            version=version,
            at=self.configuration.now(),
        )
        if policy.calendar_id:
            record = await self.configuration.calendar(policy.calendar_id)  # or NOT_FOUND
            _check_reachable(policy, record.calendar, self.configuration.now())
        await self.configuration.save_policy(policy)
        return contract.policy_to_proto(policy)

    async def CreateSlaPolicy(
        self, request: pb.CreateSlaPolicyRequest, context: Context
    ) -> pb.CreateSlaPolicyResponse:
        """A new SLA policy (applies to tickets opened from now on)."""
        return pb.CreateSlaPolicyResponse(
            policy=await self._save_policy(request.policy, new_id(), 1)
        )

    async def UpdateSlaPolicy(
        self, request: pb.UpdateSlaPolicyRequest, context: Context
    ) -> pb.UpdateSlaPolicyResponse:
        """The next version of an SLA policy."""
        _require_id(request.policy.id, "policy.id")
        current = await self.configuration.sla_policy(request.policy.id)
        _check_version("policy", request.policy.id, request.expected_version, current.version)
        policy = await self._save_policy(request.policy, request.policy.id, current.version + 1)
        return pb.UpdateSlaPolicyResponse(policy=policy)

    async def ListSlaPolicies(
        self, request: pb.ListSlaPoliciesRequest, context: Context
    ) -> pb.ListSlaPoliciesResponse:
        """Policies in matching order."""
        policies = await self.configuration.sla_policies()
        return pb.ListSlaPoliciesResponse(policies=[contract.policy_to_proto(p) for p in policies])

    # -- routing rules ---------------------------------------------------------------------

    async def CreateRoutingRule(
        self, request: pb.CreateRoutingRuleRequest, context: Context
    ) -> pb.CreateRoutingRuleResponse:
        """A new rule, version 1."""
        message = request.rule
        rule = RoutingRule.create(
            rule_id=new_id(),
            name=message.name,
            triggers=[contract.TRIGGER_OF[t] for t in message.triggers],
            actions=[convert.action_from_proto(a) for a in message.actions],
            now=self.configuration.now(),
            condition=convert.condition_from_proto(message.condition),
            position=message.position,
            enabled=message.enabled,
            stop_processing=message.stop_processing,
        )
        await self.configuration.save_rule(rule)
        return pb.CreateRoutingRuleResponse(rule=contract.rule_to_proto(rule))

    async def UpdateRoutingRule(
        self, request: pb.UpdateRoutingRuleRequest, context: Context
    ) -> pb.UpdateRoutingRuleResponse:
        """The next version of a rule."""
        message = request.rule
        _require_id(message.id, "rule.id")
        current = await self.configuration.routing_rule(message.id)
        _check_version("rule", message.id, request.expected_version, current.version)
        rule = current.revised(
            now=self.configuration.now(),
            name=message.name,
            position=message.position,
            enabled=message.enabled,
            triggers=[contract.TRIGGER_OF[t] for t in message.triggers],
            condition=convert.condition_from_proto(message.condition),
            actions=[convert.action_from_proto(a) for a in message.actions],
            stop_processing=message.stop_processing,
        )
        if rule.version != current.version:
            await self.configuration.save_rule(rule)
        return pb.UpdateRoutingRuleResponse(rule=contract.rule_to_proto(rule))

    async def ListRoutingRules(
        self, request: pb.ListRoutingRulesRequest, context: Context
    ) -> pb.ListRoutingRulesResponse:
        """Rules in evaluation order."""
        rules = await self.configuration.routing_rules()
        return pb.ListRoutingRulesResponse(rules=[contract.rule_to_proto(r) for r in rules])

    # -- agents ----------------------------------------------------------------------------

    async def PutAgent(self, request: pb.PutAgentRequest, context: Context) -> pb.PutAgentResponse:
        """Create or replace an agent; the open-ticket count is the server's."""
        tenant_id = current_call().tenant_id
        message = request.agent
        existing = await self.configuration.agent(message.id)
        agent = Agent(
            agent_id=message.id,
            tenant_id=tenant_id,
            display_name=message.display_name,
            team_ids=tuple(message.team_ids),
            skills=tuple(message.skills),
            available=message.available,
            open_tickets=existing.open_tickets if existing else 0,
        )
        await self.configuration.put_agent(agent)
        return pb.PutAgentResponse(agent=contract.agent_to_proto(agent))

    async def ListAgents(
        self, request: pb.ListAgentsRequest, context: Context
    ) -> pb.ListAgentsResponse:
        """Agents (of one team), with their open-ticket counts."""
        agents = await self.configuration.agents(request.team_id)
        return pb.ListAgentsResponse(agents=[contract.agent_to_proto(a) for a in agents])
