"""The service desk's vocabulary: ticket types, channels, priorities, statuses, SLA targets."""

from __future__ import annotations

from enum import StrEnum


class TicketType(StrEnum):
    """What kind of ticket (issue frequency is reported by type)."""

    SERVICE_REQUEST = "service_request"
    COMPLAINT = "complaint"
    PRODUCT_RETURN = "product_return"
    INFORMATION_REQUEST = "information_request"
    INCIDENT = "incident"


class Channel(StrEnum):
    """Where a customer reached the company."""

    PHONE = "phone"
    EMAIL = "email"
    WEB_FORM = "web_form"
    LIVE_CHAT = "live_chat"
    SOCIAL = "social"
    MOBILE = "mobile"
    IN_PERSON = "in_person"
    PARTNER = "partner"


class Priority(StrEnum):
    """Ticket priority; :data:`PRIORITY_ORDER` gives the escalation order."""

    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"

    def raised(self) -> Priority:
        """One level up (urgent stays urgent): what an escalation does."""
        index = PRIORITY_ORDER.index(self)
        return PRIORITY_ORDER[min(index + 1, len(PRIORITY_ORDER) - 1)]


PRIORITY_ORDER: tuple[Priority, ...] = (
    Priority.LOW,
    Priority.NORMAL,
    Priority.HIGH,
    Priority.URGENT,
)


class TicketStatus(StrEnum):
    """The ticket lifecycle: new → open → pending_customer / on_hold → resolved → closed."""

    NEW = "new"
    OPEN = "open"
    PENDING_CUSTOMER = "pending_customer"
    ON_HOLD = "on_hold"
    RESOLVED = "resolved"
    CLOSED = "closed"

    @property
    def is_open(self) -> bool:
        """Whether the ticket is in the backlog (counts as an agent's open ticket)."""
        return self not in (TicketStatus.RESOLVED, TicketStatus.CLOSED)


class SlaTarget(StrEnum):
    """The three SLA targets of KPIS.md."""

    FIRST_RESPONSE = "first_response"
    NEXT_RESPONSE = "next_response"
    RESOLUTION = "resolution"


class AuthorType(StrEnum):
    """Who wrote a message. Only AGENT replies count as responses."""

    CUSTOMER = "customer"
    AGENT = "agent"
    BOT = "bot"


class Visibility(StrEnum):
    """Public messages reach the customer; internal notes do not."""

    PUBLIC = "public"
    INTERNAL = "internal"


class InteractionKind(StrEnum):
    """Earlier interactions that can set a ticket's first touch."""

    MISSED_CALL = "missed_call"
    VOICEMAIL = "voicemail"
    CHAT_ABANDONED = "chat_abandoned"
    EMAIL_OTHER_ADDRESS = "email_other_address"
    SOCIAL_MENTION = "social_mention"
    OTHER = "other"


DEFAULT_PAUSE_STATUSES: tuple[TicketStatus, ...] = (
    TicketStatus.PENDING_CUSTOMER,
    TicketStatus.ON_HOLD,
)
