"""Configuration the service desk keeps besides rules and policies: agents and calendar versions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from crm_calendar.business_calendar import BusinessCalendar
from crm_servicedesk.domain.routing import AgentLoad


@dataclass(frozen=True, slots=True)
class Agent:
    """An agent as stored: who they are, their teams and skills, and their open tickets."""

    agent_id: str
    tenant_id: str
    display_name: str
    team_ids: tuple[str, ...]
    skills: tuple[str, ...]
    available: bool
    open_tickets: int = 0

    def load(self) -> AgentLoad:
        """The view of the agent that assignment strategies decide on."""
        return AgentLoad(
            agent_id=self.agent_id,
            team_ids=frozenset(self.team_ids),
            skills=frozenset(self.skills),
            open_tickets=self.open_tickets,
            available=self.available,
        )


@dataclass(frozen=True, slots=True)
class CalendarRecord:
    """A calendar version as stored: the rules, and their name and change time."""

    calendar: BusinessCalendar
    name: str
    updated_at: datetime
