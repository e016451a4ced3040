"""Satisfaction surveys: sent when a ticket is resolved or on demand, answered once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from crm_platform.context import Actor, ActorType, current_call
from crm_platform.errors import FailedPrecondition
from crm_platform.unit_of_work import Transaction
from crm_servicedesk import events
from crm_servicedesk.domain.survey import Survey, SurveyAnswer
from crm_servicedesk.domain.ticket import Ticket
from crm_servicedesk.storage import ServiceDeskStore
from crm_servicedesk.use_cases.changes import TicketChanges, new_id


class Surveys:
    """Sending, answering and reading surveys."""

    def __init__(
        self,
        store: ServiceDeskStore,
        changes: TicketChanges,
        now: Callable[[], datetime],
        *,
        valid_for: timedelta = timedelta(days=7),
    ) -> None:
        self.store = store
        self.changes = changes
        self.now = now
        self.valid_for = valid_for

    def new_survey(self, ticket: Ticket, at: datetime, reason: str) -> Survey:
        """A survey about ``ticket``, sent at ``at`` for ``reason``."""
        return Survey.send(
            survey_id=new_id(),
            tenant_id=ticket.tenant_id,
            ticket_id=ticket.ticket_id,
            contact_id=ticket.contact_id,
            channel=ticket.channel,
            at=at,
            valid_for=self.valid_for,
            reason=reason,
        )

    async def send_survey(self, ticket_id: str) -> Survey:
        """Send a survey about a ticket now."""
        tenant_id = current_call().tenant_id

        async def work(tx: Transaction) -> Survey:
            ticket = await self.store.ticket(tenant_id, ticket_id, tx.session)
            at = self.now()
            survey = self.new_survey(ticket, at, "on_demand")
            await self.store.insert_surveys([survey], tx.session)
            event = events.envelope(
                events.survey_sent(survey, at),
                ticket.contact_id,
                f"surveys/{survey.survey_id}",
                at,
            )
            tx.publish([event], sequence=ticket.version)
            return survey

        return await self.changes.commit(work)

    async def answer_survey(self, survey_id: str, answer: SurveyAnswer) -> Survey:
        """Record the answer; a second answer or a late one is refused."""
        tenant_id = current_call().tenant_id

        async def work(tx: Transaction) -> Survey:
            survey = await self.store.survey(tenant_id, survey_id, tx.session)
            at = self.now()
            answered = survey.answer_with(answer, at)
            if not await self.store.record_answer(answered, tx.session):
                raise FailedPrecondition(
                    "SURVEY_ANSWERED", f"survey/{survey_id}", "the survey was already answered"
                )
            event = events.envelope(
                events.survey_answered(answered, at),
                survey.contact_id,
                f"surveys/{survey_id}",
                at,
                Actor(ActorType.CUSTOMER, survey.contact_id),
            )
            tx.publish([event])
            return answered

        return await self.changes.commit(work)

    async def get_survey(self, survey_id: str) -> Survey:
        """A survey of the caller's tenant."""
        return await self.store.survey(current_call().tenant_id, survey_id)

    async def list_surveys(self, ticket_id: str, contact_id: str) -> list[Survey]:
        """Surveys newest first, of a ticket or a contact (at most 500)."""
        return await self.store.list_surveys(current_call().tenant_id, ticket_id, contact_id)
