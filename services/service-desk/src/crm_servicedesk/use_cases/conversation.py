"""A ticket's conversation: messages (which move its SLA clocks and may reopen it) and the
delivery and read receipts of outbound ones."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from crm_calendar.business_calendar import BusinessCalendar
from crm_platform.context import current_call
from crm_platform.errors import FailedPrecondition, InvalidArgument
from crm_platform.idempotency import IdempotentRequest
from crm_platform.unit_of_work import Transaction
from crm_servicedesk import events
from crm_servicedesk.domain.ticket import Message, Ticket
from crm_servicedesk.domain.values import AuthorType, Channel, Visibility
from crm_servicedesk.storage import ServiceDeskStore
from crm_servicedesk.use_cases.changes import TicketChange, TicketChanges, new_id
from crm_servicedesk.use_cases.tickets import Tickets


@dataclass(frozen=True, slots=True)
class MessageDraft:
    """What a caller gives to add a message."""

    author_type: AuthorType
    author_id: str
    visibility: Visibility
    channel: Channel | None
    body: str
    sent_at: datetime | None


class Conversation:
    """The conversation use cases of the caller's tenant."""

    def __init__(
        self,
        store: ServiceDeskStore,
        changes: TicketChanges,
        tickets: Tickets,
        now: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.changes = changes
        self.tickets = tickets
        self.now = now

    async def add_message(
        self, ticket_id: str, draft: MessageDraft, *, request: IdempotentRequest | None = None
    ) -> tuple[Message, Ticket]:
        """Add a message; a public agent reply stops the response clocks, a customer message
        may start a next-response clock or reopen the ticket. A retried request (same
        ``request``) answers with the message it added."""
        call = current_call()
        created: list[Message] = []

        async def edit(
            ticket: Ticket, calendar: BusinessCalendar | None, tx: Transaction, change: TicketChange
        ) -> Ticket:
            created.clear()
            earlier = await tx.earlier_result(request)
            if earlier is not None:
                created.append(
                    await self.store.message(call.tenant_id, ticket_id, earlier, tx.session)
                )
                return ticket
            now = self.now()
            message = Message(
                message_id=new_id(),
                ticket_id=ticket.ticket_id,
                tenant_id=ticket.tenant_id,
                author_type=draft.author_type,
                author_id=draft.author_id
                or (ticket.contact_id if draft.author_type is AuthorType.CUSTOMER else ""),
                visibility=draft.visibility,
                channel=draft.channel or ticket.channel,
                body=draft.body,
                sent_at=min(draft.sent_at or now, now),
            )
            after, status_change, first_response = ticket.add_message(message, calendar)
            created.append(message)
            change.messages.append(message)
            # The version this change gives the ticket (see TicketChanges.change).
            added = events.message_added(
                message, ticket.contact_id, ticket.version + 1, first_response=first_response
            )
            change.add(added, message.sent_at)
            if status_change is not None:
                await self.tickets.status_changed(ticket, after, status_change, tx.session, change)
            await tx.remember(request, message.message_id, now)
            return after

        ticket = await self.changes.change(ticket_id, edit, 0)
        return created[0], ticket

    async def list_messages(self, ticket_id: str, include_internal: bool) -> list[Message]:
        """A ticket's conversation (NOT_FOUND for another tenant's ticket)."""
        tenant_id = current_call().tenant_id
        await self.store.ticket(tenant_id, ticket_id)
        return await self.store.ticket_messages(tenant_id, ticket_id, include_internal)

    async def record_receipt(
        self, ticket_id: str, message_id: str, kind: str, at: datetime
    ) -> Message:
        """Record a delivery or read receipt of an outbound message (the earliest one wins)."""
        call = current_call()
        if at > self.now() + timedelta(minutes=5):
            raise InvalidArgument.single("time", "must not be in the future")

        async def work(tx: Transaction) -> Message:
            ticket = await self.store.ticket(call.tenant_id, ticket_id, tx.session)
            message = await self.store.message(call.tenant_id, ticket_id, message_id, tx.session)
            if message.author_type is AuthorType.CUSTOMER:
                raise FailedPrecondition(
                    "NOT_OUTBOUND", f"message/{message_id}", "receipts are for outbound messages"
                )
            if at < message.sent_at:
                raise InvalidArgument.single("time", "must not be before the message was sent")
            current = message.delivered_at if kind == "delivered" else message.read_at
            if current is not None and current <= at:
                return message
            updated = (
                replace(message, delivered_at=at)
                if kind == "delivered"
                else replace(message, read_at=at, delivered_at=message.delivered_at or at)
            )
            await self.store.replace_message(updated, tx.session)
            event = events.envelope(
                events.receipt_recorded(ticket, message_id, kind, at),
                ticket.contact_id,
                f"tickets/{ticket_id}",
                at,
            )
            tx.publish([event], sequence=ticket.version)
            return updated

        return await self.changes.commit(work)
