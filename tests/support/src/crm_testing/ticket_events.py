"""Hand-made service-desk events for metrics tests: the KPIS.md worked example and builders.

(Shared by the unit tests, which need no infrastructure, and the integration tests.)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from crm.servicedesk.v1 import events_pb2 as ev
from crm.servicedesk.v1 import servicedesk_pb2 as pb
from crm_platform.context import Actor, ActorType, CallContext
from crm_platform.events import Event

TENANT = "t1"
DAY = datetime(2026, 11, 18, tzinfo=UTC)  # a Wednesday
CALL = CallContext(TENANT, Actor(ActorType.SYSTEM, "test"))


def ts(at: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(at)
    return out


def at(hour: float) -> datetime:
    return DAY + timedelta(hours=hour)


def event(payload: Message, when: datetime, key: str = "c1") -> Event:
    return Event.of(payload, source="test", subject="s", key=key, call=CALL, time=when)


def calendar(open_from: int = 8, open_to: int = 20) -> pb.BusinessCalendar:
    return pb.BusinessCalendar(
        id="cal",
        name="Office",
        timezone="UTC",
        version=1,
        intervals=[
            pb.OpeningInterval(weekday=d, start_minute=open_from * 60, end_minute=open_to * 60)
            for d in range(1, 6)
        ],
    )


def ticket(
    status: pb.TicketStatus.ValueType = pb.TICKET_STATUS_NEW,
    version: int = 1,
    channel: pb.Channel.ValueType = pb.CHANNEL_SOCIAL,
    created: float = 17,
    **extra: object,
) -> pb.Ticket:
    return pb.Ticket(
        id="T1",
        tenant_id=TENANT,
        type=pb.TICKET_TYPE_COMPLAINT,
        channel=channel,
        priority=pb.PRIORITY_NORMAL,
        status=status,
        subject="missed connection",
        contact_id="c1",
        assignee_id="alice",
        team_id="care",
        create_time=ts(at(created)),
        version=version,
        sla=pb.TicketSla(policy_id="p", policy_version=1, calendar_id="cal", calendar_version=1),
        **extra,  # type: ignore[arg-type]
    )


def message(
    mid: str,
    author: pb.AuthorType.ValueType,
    hour: float,
    public: bool = True,
    version: int = 0,
) -> ev.MessageAdded:
    """A message; ``version``: the ticket version of the change that added it (0: unknown)."""
    return ev.MessageAdded(
        message=pb.Message(
            id=mid,
            ticket_id="T1",
            author_type=author,
            visibility=pb.VISIBILITY_PUBLIC if public else pb.VISIBILITY_INTERNAL,
            body="x",
            send_time=ts(at(hour)),
        ),
        contact_id="c1",
        ticket_version=version,
    )


def worked_example() -> list[Event]:
    """KPIS.md: mention 09:00, ticket 17:00, human reply 19:00 delivered 19:00, SLA 4 h met."""
    mention = pb.Mention(
        id="m1",
        network="x",
        post_id="p1",
        author_handle="@ann",
        posted_time=ts(at(9)),
        sentiment=-0.6,
        ticket_id="T1",
        author_contact_id="c1",
    )
    return [
        event(ev.CalendarChanged(calendar=calendar()), at(0), key="cal"),
        event(ev.MentionReceived(mention=mention), at(9)),
        event(ev.TicketCreated(ticket=ticket(source_mention_id="m1")), at(17)),
        event(message("bot", pb.AUTHOR_TYPE_BOT, 17.01), at(17.01)),
        event(message("note", pb.AUTHOR_TYPE_AGENT, 18, public=False), at(18)),
        event(message("r1", pb.AUTHOR_TYPE_AGENT, 19), at(19)),
        event(
            ev.ReceiptRecorded(
                ticket_id="T1",
                contact_id="c1",
                message_id="r1",
                kind=pb.RECEIPT_KIND_DELIVERED,
                time=ts(at(19)),
            ),
            at(19),
        ),
        event(
            ev.SlaTargetMet(
                ticket_id="T1",
                contact_id="c1",
                target=pb.SLA_TARGET_FIRST_RESPONSE,
                due_time=ts(at(21)),
                met_time=ts(at(19)),
            ),
            at(19),
        ),
    ]
