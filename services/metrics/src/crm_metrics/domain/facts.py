"""Facts: what the events say about one ticket, mention or calendar, independent of their order.

Every fact is stored under the id of the event that stated it (dicts and sets), and whatever is
"the latest" is chosen by a version or a time carried in the payload, never by arrival order.
So applying the same events in any order, any number of times, gives equal facts — the property
the KPIs rest on (late and out-of-order events, duplicates from an at-least-once relay).

Times are integer milliseconds since the epoch (UTC): exact, cheap to compare and to store.
Facts of one ticket at one instant keep the ticket version of the service desk's change that
stated them (``seq``), so clocks order them the way the desk made them, never by id or arrival.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from crm_calendar.business_calendar import BusinessCalendar


@dataclass(slots=True)
class MessageFact:
    """A conversation message."""

    event_id: str
    send_ms: int
    author: str  # "customer" | "agent" | "bot"
    public: bool
    # The ticket version of the change that added it (MessageAdded.ticket_version; 0 unknown).
    seq: int = 0


@dataclass(slots=True)
class TransitionFact:
    """A status change."""

    event_id: str
    at_ms: int
    from_status: str
    to_status: str
    reopen: bool
    # The ticket version of the change (its snapshot's Ticket.version; 0 unknown).
    seq: int = 0


@dataclass(slots=True)
class SlaOutcomeFact:
    """An SLA target met or breached."""

    event_id: str
    target: str  # "first_response" | "next_response" | "resolution"
    met: bool
    due_ms: int
    at_ms: int  # when it was met (or the breach fired)


@dataclass(slots=True)
class SurveyFact:
    """A survey sent for the ticket, and its answer once given."""

    survey_id: str
    sent_event_id: str = ""
    send_ms: int | None = None
    answer_event_id: str = ""
    answer_ms: int | None = None
    scores: dict[str, int] = field(default_factory=dict)
    comment_sentiment: float | None = None


@dataclass(slots=True)
class MentionLink:
    """A mention linked to a ticket (its post is a first touch; its sentiment a signal)."""

    event_id: str
    posted_ms: int
    sentiment: float


@dataclass(slots=True)
class TicketFacts:
    """Everything the events said about one ticket."""

    tenant: str
    ticket_id: str
    contact_id: str = ""
    applied: set[str] = field(default_factory=set)
    created_event_id: str = ""
    create_ms: int | None = None
    # Dimensions and SLA calendar from the ticket snapshot with the highest version.
    snapshot_version: int = -1
    snapshot_event_id: str = ""
    dims: dict[str, str] = field(default_factory=dict)
    calendar: tuple[str, int] | None = None
    # First-touch candidates: event id -> (time, what).
    touches: dict[str, tuple[int, str]] = field(default_factory=dict)
    messages: dict[str, MessageFact] = field(default_factory=dict)
    # message id -> (earliest delivery time, receipt event id)
    deliveries: dict[str, tuple[int, str]] = field(default_factory=dict)
    transitions: dict[str, TransitionFact] = field(default_factory=dict)
    sla: dict[str, SlaOutcomeFact] = field(default_factory=dict)
    surveys: dict[str, SurveyFact] = field(default_factory=dict)
    mentions: dict[str, MentionLink] = field(default_factory=dict)
    # The newest event time applied (for explanations and watermarks).
    last_event_ms: int = 0

    def touch(self, event_id: str, at_ms: int, what: str) -> None:
        """Record a first-touch candidate (the earliest wins when clocks are derived)."""
        self.touches[event_id] = (at_ms, what)

    def deliver(self, message_id: str, at_ms: int, event_id: str) -> None:
        """Record a delivery receipt; the earliest one counts."""
        known = self.deliveries.get(message_id)
        if known is None or (at_ms, event_id) < known:
            self.deliveries[message_id] = (at_ms, event_id)

    def to_doc(self) -> dict[str, Any]:
        """A BSON-friendly document (checkpoints)."""
        return {
            "tenant": self.tenant,
            "ticket_id": self.ticket_id,
            "contact_id": self.contact_id,
            "applied": sorted(self.applied),
            "created": [self.created_event_id, self.create_ms],
            "snapshot": [self.snapshot_version, self.snapshot_event_id, self.dims],
            "calendar": list(self.calendar) if self.calendar else None,
            "touches": {k: list(v) for k, v in self.touches.items()},
            "messages": {
                k: [m.event_id, m.send_ms, m.author, m.public, m.seq]
                for k, m in self.messages.items()
            },
            "deliveries": {k: list(v) for k, v in self.deliveries.items()},
            "transitions": {
                k: [t.at_ms, t.from_status, t.to_status, t.reopen, t.seq]
                for k, t in self.transitions.items()
            },
            "sla": {k: [s.target, s.met, s.due_ms, s.at_ms] for k, s in self.sla.items()},
            "surveys": {
                k: [
                    s.sent_event_id,
                    s.send_ms,
                    s.answer_event_id,
                    s.answer_ms,
                    s.scores,
                    s.comment_sentiment,
                ]
                for k, s in self.surveys.items()
            },
            "mentions": {
                k: [m.event_id, m.posted_ms, m.sentiment] for k, m in self.mentions.items()
            },
            "last_event_ms": self.last_event_ms,
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> TicketFacts:
        """The inverse of :meth:`to_doc`."""
        facts = cls(doc["tenant"], doc["ticket_id"], doc["contact_id"])
        facts.applied = set(doc["applied"])
        facts.created_event_id, facts.create_ms = doc["created"]
        facts.snapshot_version, facts.snapshot_event_id, facts.dims = doc["snapshot"]
        facts.calendar = (doc["calendar"][0], doc["calendar"][1]) if doc["calendar"] else None
        facts.touches = {k: (v[0], v[1]) for k, v in doc["touches"].items()}
        # A document written before the ticket versions were kept has 4 items (seq 0).
        facts.messages = {k: MessageFact(*v) for k, v in doc["messages"].items()}
        facts.deliveries = {k: (v[0], v[1]) for k, v in doc["deliveries"].items()}
        facts.transitions = {k: TransitionFact(k, *v) for k, v in doc["transitions"].items()}
        facts.sla = {k: SlaOutcomeFact(k, v[0], v[1], v[2], v[3]) for k, v in doc["sla"].items()}
        facts.surveys = {
            k: SurveyFact(k, v[0], v[1], v[2], v[3], v[4], v[5]) for k, v in doc["surveys"].items()
        }
        facts.mentions = {k: MentionLink(v[0], v[1], v[2]) for k, v in doc["mentions"].items()}
        facts.last_event_ms = doc["last_event_ms"]
        return facts


@dataclass(slots=True)
class MentionFacts:
    """A social mention (its own KPIs: mentions, reach, sentiment, share of voice)."""

    tenant: str
    mention_id: str
    event_id: str
    posted_ms: int
    network: str
    brand: str
    followers: int
    sentiment: float

    def to_doc(self) -> dict[str, Any]:
        """A BSON-friendly document."""
        return {
            "tenant": self.tenant,
            "mention_id": self.mention_id,
            "event_id": self.event_id,
            "posted_ms": self.posted_ms,
            "network": self.network,
            "brand": self.brand,
            "followers": self.followers,
            "sentiment": self.sentiment,
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> MentionFacts:
        """The inverse of :meth:`to_doc`."""
        return cls(
            doc["tenant"],
            doc["mention_id"],
            doc["event_id"],
            doc["posted_ms"],
            doc["network"],
            doc["brand"],
            doc["followers"],
            doc["sentiment"],
        )


class CalendarDirectory:
    """Every version of every business calendar seen, by (tenant, calendar id, version)."""

    def __init__(self) -> None:
        self._calendars: dict[tuple[str, str, int], BusinessCalendar] = {}

    def put(self, tenant: str, calendar: BusinessCalendar) -> bool:
        """Add a calendar version; False if it was known already."""
        key = (tenant, calendar.calendar_id, calendar.version)
        if key in self._calendars:
            return False
        self._calendars[key] = calendar
        return True

    def get(self, tenant: str, calendar_id: str, version: int) -> BusinessCalendar | None:
        """The calendar version, or None if it has not been seen (yet)."""
        return self._calendars.get((tenant, calendar_id, version))

    def __len__(self) -> int:
        return len(self._calendars)
