"""``crm.servicedesk.v1.TicketService``: tickets and their conversations.

Requests arrive validated against the contract (protovalidate) with the caller's tenant and
actor in the call context; domain errors become gRPC statuses in the platform interceptor.
"""

from __future__ import annotations

from typing import Any

from crm.servicedesk.v1 import servicedesk_pb2 as pb
from crm.servicedesk.v1 import servicedesk_pb2_grpc
from crm_platform.context import current_call
from crm_platform.errors import InvalidArgument
from crm_platform.idempotency import IdempotentRequest
from crm_platform.paging import PageQuery
from crm_servicedesk import contract
from crm_servicedesk.api import convert
from crm_servicedesk.use_cases.contacts import ContactDirectory
from crm_servicedesk.use_cases.conversation import Conversation, MessageDraft
from crm_servicedesk.use_cases.tickets import TicketDraft, Tickets

Context = Any  # grpc.aio.ServicerContext; the handlers do not use it


class TicketService(servicedesk_pb2_grpc.TicketServiceServicer):
    """The ticket handlers."""

    def __init__(
        self, tickets: Tickets, conversation: Conversation, contacts: ContactDirectory
    ) -> None:
        self.tickets = tickets
        self.conversation = conversation
        self.contacts = contacts

    async def CreateTicket(
        self, request: pb.CreateTicketRequest, context: Context
    ) -> pb.CreateTicketResponse:
        """Resolve the requester with the contacts service, then open the ticket."""
        ticket = request.ticket
        if ticket.contact_id:
            requester = await self.contacts.get(ticket.contact_id)
        else:
            identity = request.requester_identity
            requester = await self.contacts.lookup(identity.kind, identity.value, identity.network)
        draft = TicketDraft(
            type=contract.TICKET_TYPE_OF[ticket.type],
            channel=contract.CHANNEL_OF[ticket.channel],
            priority=contract.PRIORITY_OF.get(ticket.priority),
            subject=ticket.subject,
            description=ticket.description,
            assignee_id=ticket.assignee_id,
            team_id=ticket.team_id,
            tags=tuple(ticket.tags),
            category=ticket.category,
            product=ticket.product,
            first_touch_at=convert.optional_time(
                ticket, "first_touch_time", "ticket.first_touch_time"
            ),
            interactions=tuple(
                convert.interaction_from_proto(item, f"interactions[{index}]")
                for index, item in enumerate(request.interactions)
            ),
            first_message=request.first_message,
        )
        idempotent = IdempotentRequest.of(
            current_call().tenant_id, "ticket", request.request_id, request
        )
        created = await self.tickets.create_ticket(draft, requester, request=idempotent)
        return pb.CreateTicketResponse(ticket=contract.ticket_to_proto(created))

    async def GetTicket(
        self, request: pb.GetTicketRequest, context: Context
    ) -> pb.GetTicketResponse:
        """One ticket."""
        ticket = await self.tickets.get_ticket(request.id)
        return pb.GetTicketResponse(ticket=contract.ticket_to_proto(ticket))

    async def ListTickets(
        self, request: pb.ListTicketsRequest, context: Context
    ) -> pb.ListTicketsResponse:
        """Tickets newest first, with keyset paging."""
        filters: dict[str, Any] = {}
        if request.statuses:
            filters["status"] = {
                "$in": [contract.TICKET_STATUS_OF[s].value for s in request.statuses]
            }
        for name in ("contact_id", "assignee_id", "team_id"):
            if getattr(request, name):
                filters[name] = getattr(request, name)
        query = PageQuery.of(
            {"op": "ListTickets", "tenant": current_call().tenant_id, "filters": filters},
            request.page_size,
            request.page_token,
        )
        tickets = await self.tickets.list_tickets(
            filters, query.limit, convert.keyset_position(query.after)
        )
        page, token = query.page(tickets, lambda t: [t.created_at, t.ticket_id])
        return pb.ListTicketsResponse(
            tickets=[contract.ticket_to_proto(t) for t in page], next_page_token=token
        )

    async def UpdateTicket(
        self, request: pb.UpdateTicketRequest, context: Context
    ) -> pb.UpdateTicketResponse:
        """Change the fields of the mask."""
        if not request.ticket.id:
            raise InvalidArgument.single("ticket.id", "is required")
        paths = list(dict.fromkeys(request.update_mask.paths))
        changes = convert.ticket_changes(request.ticket, paths)
        if "type" in changes and changes["type"] is None:
            raise InvalidArgument.single("ticket.type", "must be set when in the update mask")
        ticket = await self.tickets.update_ticket(
            request.ticket.id, changes, request.expected_version
        )
        return pb.UpdateTicketResponse(ticket=contract.ticket_to_proto(ticket))

    async def TransitionTicket(
        self, request: pb.TransitionTicketRequest, context: Context
    ) -> pb.TransitionTicketResponse:
        """Move the ticket along its lifecycle."""
        ticket = await self.tickets.transition(
            request.id,
            contract.TICKET_STATUS_OF[request.status],
            request.reason,
            request.expected_version,
        )
        return pb.TransitionTicketResponse(ticket=contract.ticket_to_proto(ticket))

    async def LinkInteraction(
        self, request: pb.LinkInteractionRequest, context: Context
    ) -> pb.LinkInteractionResponse:
        """Link an earlier interaction."""
        ticket = await self.tickets.link_interaction(
            request.ticket_id, convert.interaction_from_proto(request.interaction)
        )
        return pb.LinkInteractionResponse(ticket=contract.ticket_to_proto(ticket))

    async def AddMessage(
        self, request: pb.AddMessageRequest, context: Context
    ) -> pb.AddMessageResponse:
        """Add a message to the conversation."""
        message = request.message
        draft = MessageDraft(
            author_type=contract.AUTHOR_TYPE_OF[message.author_type],
            author_id=message.author_id,
            visibility=contract.VISIBILITY_OF[message.visibility],
            channel=contract.CHANNEL_OF.get(message.channel),
            body=message.body,
            sent_at=convert.optional_time(message, "send_time", "message.send_time"),
        )
        idempotent = IdempotentRequest.of(
            current_call().tenant_id, "message", request.request_id, request
        )
        added, ticket = await self.conversation.add_message(
            request.ticket_id, draft, request=idempotent
        )
        return pb.AddMessageResponse(
            message=contract.message_to_proto(added), ticket=contract.ticket_to_proto(ticket)
        )

    async def ListMessages(
        self, request: pb.ListMessagesRequest, context: Context
    ) -> pb.ListMessagesResponse:
        """The conversation in send order."""
        messages = await self.conversation.list_messages(
            request.ticket_id, request.include_internal
        )
        return pb.ListMessagesResponse(messages=[contract.message_to_proto(m) for m in messages])

    async def RecordReceipt(
        self, request: pb.RecordReceiptRequest, context: Context
    ) -> pb.RecordReceiptResponse:
        """A delivery or read receipt."""
        message = await self.conversation.record_receipt(
            request.ticket_id,
            request.message_id,
            contract.RECEIPT_KIND_OF[request.kind],
            convert.from_timestamp(request.time, "time"),
        )
        return pb.RecordReceiptResponse(message=contract.message_to_proto(message))
