"""The service desk's use cases, by what they serve; the API handlers translate protobuf to
their arguments and back, the durable SLA timers call :meth:`SlaTimers.fire`.

* :mod:`.tickets` — opening, changing and moving tickets along their lifecycle;
* :mod:`.conversation` — messages and their receipts;
* :mod:`.sla` — SLA policies, the facts of clock changes, the timers; :mod:`.sla_timers` —
  what a fired timer does;
* :mod:`.routing` — routing rules applied to tickets;
* :mod:`.surveys`, :mod:`.social`, :mod:`.configuration`;
* :mod:`.changes` — the shared commit/publish step: every ticket change reads the ticket,
  applies a pure domain function, writes the new version, derives the SLA facts and timers from
  the difference and publishes the events, in one unit of work
  (:class:`crm_platform.unit_of_work.UnitOfWork`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from crm_platform.timers import TimerStore
from crm_platform.unit_of_work import UnitOfWork
from crm_servicedesk.storage import ServiceDeskStore
from crm_servicedesk.use_cases.changes import TicketChanges, utc_now
from crm_servicedesk.use_cases.configuration import Configuration
from crm_servicedesk.use_cases.contacts import ContactDirectory
from crm_servicedesk.use_cases.conversation import Conversation
from crm_servicedesk.use_cases.routing import Router
from crm_servicedesk.use_cases.sla import ServiceLevels
from crm_servicedesk.use_cases.sla_timers import SlaTimers
from crm_servicedesk.use_cases.social import SocialListening
from crm_servicedesk.use_cases.surveys import Surveys
from crm_servicedesk.use_cases.tickets import Tickets


@dataclass(frozen=True, slots=True)
class ServiceDesk:
    """The use cases, wired to one store, unit of work and timer store."""

    changes: TicketChanges
    tickets: Tickets
    conversation: Conversation
    surveys: Surveys
    social: SocialListening
    configuration: Configuration
    sla_timers: SlaTimers

    @classmethod
    def build(
        cls,
        store: ServiceDeskStore,
        uow: UnitOfWork,
        timers: TimerStore,
        contacts: ContactDirectory,
        *,
        survey_valid_for: timedelta = timedelta(days=7),
        now: Callable[[], datetime] = utc_now,
    ) -> ServiceDesk:
        """Wire the use cases."""
        sla = ServiceLevels(store, timers)
        changes = TicketChanges(store, uow, sla, now)
        router = Router(store)
        surveys = Surveys(store, changes, now, valid_for=survey_valid_for)
        tickets = Tickets(store, changes, router, sla, surveys, now)
        return cls(
            changes=changes,
            tickets=tickets,
            conversation=Conversation(store, changes, tickets, now),
            surveys=surveys,
            social=SocialListening(store, changes, tickets, contacts, now),
            configuration=Configuration(store, changes, now),
            sla_timers=SlaTimers(store, changes, router, sla, now),
        )
