"""What a ticket change publishes about its SLA clocks, and which timers it needs: the pure part
of the SLA use cases (crm_servicedesk.use_cases.sla), called directly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from crm.servicedesk.v1 import events_pb2
from crm_servicedesk.domain.sla_clock import ClockKind
from crm_servicedesk.domain.sla_policy import SlaPolicy, TargetSpec
from crm_servicedesk.domain.ticket import Message, Ticket
from crm_servicedesk.domain.values import (
    AuthorType,
    Channel,
    Priority,
    SlaTarget,
    TicketType,
    Visibility,
)
from crm_servicedesk.events import SLA_ACTOR
from crm_servicedesk.use_cases.sla import sla_facts, timer_plan

T0 = datetime(2026, 1, 12, 8, 0, tzinfo=UTC)
FR = SlaTarget.FIRST_RESPONSE
RES = SlaTarget.RESOLUTION
HOUR = 3600

POLICY = SlaPolicy.create(
    policy_id="policy-a",
    tenant_id="tenant-1",
    name="policy-a",
    position=0,
    priorities=(),
    types=(),
    channels=(),
    customer_tiers=(),
    calendar_id="",
    targets=(
        TargetSpec(target=FR, clock=ClockKind.WALL, seconds=HOUR),
        TargetSpec(target=RES, clock=ClockKind.WALL, seconds=8 * HOUR),
    ),
    pause_statuses=(),
    at_risk_fraction=0.8,
    enabled=True,
    version=1,
    updated_at=T0,
)


def on_policy() -> Ticket:
    ticket = Ticket.open(
        ticket_id="ticket-1",
        tenant_id="tenant-1",
        type_=TicketType.INCIDENT,
        channel=Channel.EMAIL,
        priority=Priority.HIGH,
        subject="Printer on fire",
        description="",
        contact_id="contact-1",
        customer_tier="gold",
        assignee_id="agent-1",
        team_id="team-1",
        tags=(),
        category="",
        product="",
        first_touch_at=None,
        interactions=(),
        source_mention_id="",
        at=T0,
    )
    return ticket.with_policy(POLICY, None)


def agent_reply(ticket: Ticket, at: datetime) -> Ticket:
    message = Message(
        message_id="m-1",
        ticket_id=ticket.ticket_id,
        tenant_id=ticket.tenant_id,
        author_type=AuthorType.AGENT,
        author_id="agent-1",
        visibility=Visibility.PUBLIC,
        channel=Channel.EMAIL,
        body="On it",
        sent_at=at,
    )
    after, _, _ = ticket.add_message(message, None)
    return after


def test_opening_on_a_policy_publishes_its_clocks_and_nothing_else() -> None:
    ticket = on_policy()
    breaches, later = sla_facts(None, ticket, T0)
    assert breaches == []
    assert [type(payload) for payload, _, _ in later] == [events_pb2.SlaClocksChanged]


def test_first_agent_reply_publishes_the_target_met_before_the_new_clocks() -> None:
    before = on_policy()
    replied = T0 + timedelta(minutes=10)
    breaches, later = sla_facts(before, agent_reply(before, replied), replied)
    assert breaches == []
    met, clocks = later
    assert isinstance(met[0], events_pb2.SlaTargetMet)
    assert met[1] == replied
    assert isinstance(clocks[0], events_pb2.SlaClocksChanged)


def test_breach_is_published_at_its_due_time_by_the_sla_timer() -> None:
    before = on_policy()
    noticed = T0 + timedelta(hours=1, seconds=5)
    breached = before.breach(FR, noticed)
    assert breached is not None
    breaches, _ = sla_facts(before, breached, noticed)
    ((payload, at, actor),) = breaches
    assert isinstance(payload, events_pb2.SlaBreached)
    assert at == T0 + timedelta(hours=1)
    assert actor == SLA_ACTOR


def test_timer_plan_arms_running_clocks_and_disarms_met_ones() -> None:
    ticket = on_policy()
    plan = timer_plan(ticket)
    assert plan["ticket-1:first_response:breach"] == T0 + timedelta(hours=1)
    assert plan["ticket-1:resolution:breach"] == T0 + timedelta(hours=8)
    replied = agent_reply(ticket, T0 + timedelta(minutes=10))
    after = timer_plan(replied)
    assert after["ticket-1:first_response:breach"] is None
    assert after["ticket-1:first_response:at_risk"] is None
    assert after["ticket-1:resolution:breach"] == T0 + timedelta(hours=8)
