"""SLA breaches fire from durable timers: when due, with nobody touching the ticket, once —
also across a restart of the service."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from google.protobuf.duration_pb2 import Duration

from crm.servicedesk.v1 import events_pb2
from crm.servicedesk.v1 import servicedesk_pb2 as pb
from crm_testing.servicedesk import DeskUnderTest, new_tenant, of_type, read_events, start_desk

pytestmark = pytest.mark.integration


async def test_breach_fires_on_time_and_once_across_a_restart(desk: DeskUnderTest) -> None:
    stubs = desk.stubs(new_tenant())
    await stubs.config.CreateSlaPolicy(
        pb.CreateSlaPolicyRequest(
            policy=pb.SlaPolicy(
                name="live chat",
                enabled=True,
                targets=[
                    pb.SlaTargetSpec(
                        target=pb.SLA_TARGET_FIRST_RESPONSE,
                        clock=pb.CLOCK_KIND_WALL,
                        duration=Duration(seconds=4),
                    )
                ],
                at_risk_fraction=0.5,
            )
        ),
        metadata=stubs.md,
    )
    contact = await stubs.new_contact()
    # One ticket breaches while the service runs, one while it is down.
    live = await stubs.new_ticket(contact)
    await asyncio.sleep(1.5)
    during_restart = await stubs.new_ticket(contact)
    due_live = live.sla.clocks[0].due_time.ToDatetime(tzinfo=UTC)

    def breached(ticket_id: str):  # type: ignore[no-untyped-def]
        return lambda events: bool(of_type(events, events_pb2.SlaBreached, ticket_id))

    await read_events(desk.kafka_bootstrap, breached(live.id), timeout=20)

    # Stop the service before the second ticket's due time; it falls due while nobody runs.
    await desk.service.stop()
    await asyncio.sleep(4)
    desk.service, extra = await start_desk(desk.settings)
    desk.mongo = extra["mongo"]
    events = await read_events(
        desk.kafka_bootstrap, breached(during_restart.id), timeout=20, linger=2
    )
    # A second restart must not fire anything again.
    await desk.service.stop()
    desk.service, extra = await start_desk(desk.settings)
    desk.mongo = extra["mongo"]
    events = await read_events(
        desk.kafka_bootstrap, breached(during_restart.id), timeout=20, linger=3
    )

    for ticket in (live, during_restart):
        breaches = [e for _, e in of_type(events, events_pb2.SlaBreached, ticket.id)]
        assert len(breaches) == 1, f"exactly one breach for {ticket.id}: {breaches}"
        warnings = [e for _, e in of_type(events, events_pb2.SlaAtRisk, ticket.id)]
        assert len(warnings) == 1
        breach = breaches[0]
        assert breach.target == pb.SLA_TARGET_FIRST_RESPONSE
        assert breach.fire_time.ToDatetime(tzinfo=UTC) >= breach.due_time.ToDatetime(tzinfo=UTC)
    live_breach = of_type(events, events_pb2.SlaBreached, live.id)[0]
    assert live_breach[1].due_time.ToDatetime(tzinfo=UTC) == due_live
    assert live_breach[0]["ce_actor"] == "system:sla-timer"
    assert live_breach[0]["ce_time"].startswith(due_live.strftime("%Y-%m-%dT%H:%M:%S"))

    stored = await stubs.tickets.GetTicket(pb.GetTicketRequest(id=live.id), metadata=stubs.md)
    assert stored.ticket.sla.clocks[0].state == pb.SLA_CLOCK_STATE_BREACHED
    # A late reply does not turn a breach into "met".
    reply = await stubs.tickets.AddMessage(
        pb.AddMessageRequest(
            ticket_id=live.id,
            message=pb.Message(
                author_type=pb.AUTHOR_TYPE_AGENT, visibility=pb.VISIBILITY_PUBLIC, body="Hi!"
            ),
        ),
        metadata=stubs.md,
    )
    assert reply.ticket.sla.clocks[0].state == pb.SLA_CLOCK_STATE_BREACHED
    assert datetime.now(UTC) > due_live


async def test_escalation_rule_fires_on_breach(desk: DeskUnderTest) -> None:
    stubs = desk.stubs(new_tenant())
    await stubs.config.CreateSlaPolicy(
        pb.CreateSlaPolicyRequest(
            policy=pb.SlaPolicy(
                name="fast",
                enabled=True,
                targets=[
                    pb.SlaTargetSpec(
                        target=pb.SLA_TARGET_FIRST_RESPONSE,
                        clock=pb.CLOCK_KIND_WALL,
                        duration=Duration(seconds=2),
                    )
                ],
            )
        ),
        metadata=stubs.md,
    )
    rule = (
        await stubs.config.CreateRoutingRule(
            pb.CreateRoutingRuleRequest(
                rule=pb.RoutingRule(
                    name="escalate breached first responses",
                    enabled=True,
                    triggers=[pb.RULE_TRIGGER_SLA_BREACHED],
                    condition=pb.RuleCondition(sla_targets=[pb.SLA_TARGET_FIRST_RESPONSE]),
                    actions=[pb.RuleAction(kind=pb.RULE_ACTION_KIND_ESCALATE)],
                )
            ),
            metadata=stubs.md,
        )
    ).rule
    ticket = await stubs.new_ticket(await stubs.new_contact())
    await read_events(
        desk.kafka_bootstrap,
        lambda evs: bool(of_type(evs, events_pb2.TicketRouted, ticket.id)),
        timeout=20,
    )
    stored = (
        await stubs.tickets.GetTicket(pb.GetTicketRequest(id=ticket.id), metadata=stubs.md)
    ).ticket
    assert stored.priority == pb.PRIORITY_HIGH
    assert "escalated" in stored.tags
    (decision,) = stored.routing_decisions
    assert decision.rule_id == rule.id
    assert decision.trigger == pb.RULE_TRIGGER_SLA_BREACHED
