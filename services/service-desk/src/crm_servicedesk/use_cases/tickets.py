"""Tickets: opening one (routing, SLA policy and timers, the first message), changing its
fields, moving it along its lifecycle, linking earlier interactions."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from crm_calendar.business_calendar import BusinessCalendar
from crm_platform.context import current_call
from crm_platform.idempotency import IdempotentRequest
from crm_platform.unit_of_work import Transaction
from crm_servicedesk import events
from crm_servicedesk.domain.routing import Trigger
from crm_servicedesk.domain.ticket import Interaction, Message, StatusChange, Ticket
from crm_servicedesk.domain.values import (
    AuthorType,
    Channel,
    Priority,
    TicketStatus,
    TicketType,
    Visibility,
)
from crm_servicedesk.storage import ServiceDeskStore, Session
from crm_servicedesk.use_cases.changes import TicketChange, TicketChanges, new_id
from crm_servicedesk.use_cases.contacts import ContactRef
from crm_servicedesk.use_cases.routing import Router
from crm_servicedesk.use_cases.sla import ServiceLevels
from crm_servicedesk.use_cases.surveys import Surveys


@dataclass(frozen=True, slots=True)
class TicketDraft:
    """What a caller gives to open a ticket."""

    type: TicketType
    channel: Channel
    priority: Priority | None
    subject: str
    description: str
    assignee_id: str
    team_id: str
    tags: tuple[str, ...]
    category: str
    product: str
    first_touch_at: datetime | None
    interactions: tuple[Interaction, ...]
    first_message: str = ""


def routed_fields(before: Ticket, after: Ticket) -> set[str]:
    """The fields routing changed."""
    return {
        name
        for name in ("priority", "team_id", "assignee_id", "tags")
        if getattr(before, name) != getattr(after, name)
    }


class Tickets:
    """The ticket use cases of the caller's tenant."""

    def __init__(
        self,
        store: ServiceDeskStore,
        changes: TicketChanges,
        router: Router,
        sla: ServiceLevels,
        surveys: Surveys,
        now: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.changes = changes
        self.router = router
        self.sla = sla
        self.surveys = surveys
        self.now = now

    async def create_ticket(
        self,
        draft: TicketDraft,
        requester: ContactRef,
        *,
        request: IdempotentRequest | None = None,
        source_mention_id: str = "",
    ) -> Ticket:
        """Open a ticket: routing rules, the SLA policy and its timers, the first message; a
        retried request (same ``request``) answers with the ticket it opened."""
        call = current_call()
        at = self.now()

        async def work(tx: Transaction) -> Ticket:
            earlier = await tx.earlier_result(request)
            if earlier is not None:
                return await self.store.ticket(call.tenant_id, earlier, tx.session)
            change = TicketChange()
            ticket = await self.open_ticket(
                draft, requester, at, source_mention_id, tx.session, change
            )
            await tx.remember(request, ticket.ticket_id, at)
            await self.changes.record(tx, None, ticket, change)
            return ticket

        return await self.changes.commit(work)

    async def open_ticket(
        self,
        draft: TicketDraft,
        requester: ContactRef,
        at: datetime,
        source_mention_id: str,
        session: Session,
        change: TicketChange,
    ) -> Ticket:
        """A new ticket, routed and on its SLA policy, with its facts in ``change`` (not yet
        written: see :meth:`TicketChanges.record`)."""
        tenant_id = current_call().tenant_id
        ticket = Ticket.open(
            ticket_id=new_id(),
            tenant_id=tenant_id,
            type_=draft.type,
            channel=draft.channel,
            priority=draft.priority,
            subject=draft.subject,
            description=draft.description,
            contact_id=requester.contact_id,
            customer_tier=requester.tier,
            assignee_id=draft.assignee_id,
            team_id=draft.team_id,
            tags=draft.tags,
            category=draft.category,
            product=draft.product,
            first_touch_at=draft.first_touch_at,
            interactions=draft.interactions,
            source_mention_id=source_mention_id,
            at=at,
        )
        if ticket.assignee_id:
            await self.router.require_agent(tenant_id, ticket.assignee_id, session)
        ticket = await self.router.route(ticket, Trigger.TICKET_CREATED, at, session, change)
        ticket = await self.sla.apply_policy(ticket, session)
        # First on the topic: the routing decisions taken while opening it follow it.
        change.facts.insert(0, (events.ticket_created(ticket), at, None))
        if draft.first_message.strip():
            message = Message(
                message_id=new_id(),
                ticket_id=ticket.ticket_id,
                tenant_id=tenant_id,
                author_type=AuthorType.CUSTOMER,
                author_id=requester.contact_id,
                visibility=Visibility.PUBLIC,
                channel=ticket.channel,
                body=draft.first_message,
                sent_at=at,
            )
            change.messages.append(message)
            change.add(events.message_added(message, ticket.contact_id, ticket.version), at)
        return ticket

    async def get_ticket(self, ticket_id: str) -> Ticket:
        """A ticket of the caller's tenant."""
        return await self.store.ticket(current_call().tenant_id, ticket_id)

    async def list_tickets(
        self, filters: Mapping[str, Any], limit: int, after: tuple[datetime, str] | None
    ) -> list[Ticket]:
        """The caller's tenant's tickets newest first, from the keyset position ``after``."""
        return await self.store.list_tickets(current_call().tenant_id, filters, limit, after)

    async def update_ticket(
        self, ticket_id: str, changes: Mapping[str, Any], expected_version: int
    ) -> Ticket:
        """Change ticket fields; TICKET_UPDATED rules run, a new priority re-selects the SLA."""

        async def edit(
            ticket: Ticket, calendar: BusinessCalendar | None, tx: Transaction, change: TicketChange
        ) -> Ticket:
            at = self.now()
            if changes.get("assignee_id"):
                await self.router.require_agent(
                    ticket.tenant_id, str(changes["assignee_id"]), tx.session
                )
            updated, changed = ticket.update(changes, at)
            if not changed:
                return ticket
            updated = await self.router.route(
                updated, Trigger.TICKET_UPDATED, at, tx.session, change
            )
            if {"priority", "type"} & set(changed) or updated.priority != ticket.priority:
                updated = await self.sla.apply_policy(updated, tx.session, at)
            paths = sorted(set(changed) | routed_fields(ticket, updated))
            next_version = replace(updated, version=ticket.version + 1)
            change.add(events.ticket_updated(next_version, paths, ticket.version), at)
            return updated

        return await self.changes.change(ticket_id, edit, expected_version)

    async def transition(
        self, ticket_id: str, status: TicketStatus, reason: str, expected_version: int
    ) -> Ticket:
        """Move a ticket along its lifecycle; resolving it sends the survey."""

        async def edit(
            ticket: Ticket, calendar: BusinessCalendar | None, tx: Transaction, change: TicketChange
        ) -> Ticket:
            at = self.now()
            moved, status_change = ticket.transition(status, at, calendar, reason)
            if status_change is not None:
                await self.status_changed(ticket, moved, status_change, tx.session, change)
            return moved

        return await self.changes.change(ticket_id, edit, expected_version)

    async def link_interaction(self, ticket_id: str, interaction: Interaction) -> Ticket:
        """Link an earlier interaction; the first touch can only move earlier."""

        async def edit(
            ticket: Ticket, calendar: BusinessCalendar | None, tx: Transaction, change: TicketChange
        ) -> Ticket:
            at = self.now()
            linked = ticket.link_interaction(interaction, at)
            change.add(events.interaction_linked(ticket, interaction, linked.first_touch_at), at)
            return linked

        return await self.changes.change(ticket_id, edit, 0)

    async def status_changed(
        self,
        before: Ticket,
        after: Ticket,
        status_change: StatusChange,
        session: Session,
        change: TicketChange,
    ) -> None:
        """Publish a status change; the first resolution of a ticket sends its survey."""
        next_version = replace(after, version=before.version + 1)
        change.add(events.ticket_status_changed(next_version, status_change), status_change.at)
        if status_change.to_status is TicketStatus.RESOLVED:
            sent = await self.store.survey_for_ticket(
                after.tenant_id, after.ticket_id, "resolved", session
            )
            if sent is None:
                survey = self.surveys.new_survey(after, status_change.at, "resolved")
                change.surveys.append(survey)
                change.add(events.survey_sent(survey, status_change.at), status_change.at)
