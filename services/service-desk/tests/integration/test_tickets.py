"""Tickets, SLA clocks, routing, mentions and surveys through gRPC on the real database and
broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from crm.servicedesk.v1 import events_pb2
from crm.servicedesk.v1 import servicedesk_pb2 as pb
from crm_testing.servicedesk import DeskUnderTest, Stubs, new_tenant, of_type, read_events

pytestmark = pytest.mark.integration


def _ts(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def _clock(ticket: pb.Ticket, target: int) -> pb.SlaClock:
    return next(c for c in ticket.sla.clocks if c.target == target)


async def _wall_policy(stubs: Stubs, **targets: int) -> pb.SlaPolicy:
    specs = [
        pb.SlaTargetSpec(
            target=pb.SlaTarget.Value(f"SLA_TARGET_{name.upper()}"),
            clock=pb.CLOCK_KIND_WALL,
            duration=Duration(seconds=seconds),
        )
        for name, seconds in targets.items()
    ]
    response = await stubs.config.CreateSlaPolicy(
        pb.CreateSlaPolicyRequest(policy=pb.SlaPolicy(name="wall", targets=specs, enabled=True)),
        metadata=stubs.md,
    )
    return response.policy


async def test_pause_and_resume_move_the_resolution_due_time(desk: DeskUnderTest) -> None:
    stubs = desk.stubs(new_tenant())
    await _wall_policy(stubs, first_response=3600, resolution=8 * 3600)
    contact = await stubs.new_contact()
    ticket = await stubs.new_ticket(contact)
    created = ticket.create_time.ToDatetime(tzinfo=UTC)
    resolution = _clock(ticket, pb.SLA_TARGET_RESOLUTION)
    assert resolution.due_time.ToDatetime(tzinfo=UTC) == created + timedelta(hours=8)
    assert resolution.state == pb.SLA_CLOCK_STATE_RUNNING

    opened = await stubs.tickets.TransitionTicket(
        pb.TransitionTicketRequest(id=ticket.id, status=pb.TICKET_STATUS_OPEN), metadata=stubs.md
    )
    paused = await stubs.tickets.TransitionTicket(
        pb.TransitionTicketRequest(
            id=ticket.id, status=pb.TICKET_STATUS_PENDING_CUSTOMER, reason="asked for photos"
        ),
        metadata=stubs.md,
    )
    assert opened.ticket.status == pb.TICKET_STATUS_OPEN
    clock = _clock(paused.ticket, pb.SLA_TARGET_RESOLUTION)
    assert clock.state == pb.SLA_CLOCK_STATE_PAUSED
    assert not clock.HasField("due_time")
    paused_at = paused.ticket.update_time.ToDatetime(tzinfo=UTC)

    # The customer's answer resumes the ticket (and the clock) automatically.
    answered = await stubs.tickets.AddMessage(
        pb.AddMessageRequest(
            ticket_id=ticket.id,
            message=pb.Message(
                author_type=pb.AUTHOR_TYPE_CUSTOMER,
                visibility=pb.VISIBILITY_PUBLIC,
                body="Here are the photos",
            ),
        ),
        metadata=stubs.md,
    )
    resumed = answered.ticket
    resumed_at = answered.message.send_time.ToDatetime(tzinfo=UTC)
    assert resumed.status == pb.TICKET_STATUS_OPEN
    clock = _clock(resumed, pb.SLA_TARGET_RESOLUTION)
    assert clock.state == pb.SLA_CLOCK_STATE_RUNNING
    moved = created + timedelta(hours=8) + (resumed_at - paused_at)
    assert clock.due_time.ToDatetime(tzinfo=UTC) == moved

    events = await read_events(
        desk.kafka_bootstrap,
        lambda evs: len(of_type(evs, events_pb2.TicketStatusChanged, ticket.id)) >= 3,
    )
    changes = [e for _, e in of_type(events, events_pb2.TicketStatusChanged, ticket.id)]
    assert [(c.from_status, c.to_status) for c in changes] == [
        (pb.TICKET_STATUS_NEW, pb.TICKET_STATUS_OPEN),
        (pb.TICKET_STATUS_OPEN, pb.TICKET_STATUS_PENDING_CUSTOMER),
        (pb.TICKET_STATUS_PENDING_CUSTOMER, pb.TICKET_STATUS_OPEN),
    ]
    sla_changes = [e for _, e in of_type(events, events_pb2.SlaClocksChanged, ticket.id)]
    assert sla_changes, "every clock change is an event"


async def test_first_public_agent_reply_meets_first_response_and_bot_reply_does_not(
    desk: DeskUnderTest,
) -> None:
    stubs = desk.stubs(new_tenant())
    await _wall_policy(stubs, first_response=3600)
    ticket = await stubs.new_ticket(await stubs.new_contact())

    async def say(author: Any, visibility: Any, body: str) -> pb.AddMessageResponse:
        message = pb.Message(author_type=author, visibility=visibility, body=body, author_id="x")
        return await stubs.tickets.AddMessage(
            pb.AddMessageRequest(ticket_id=ticket.id, message=message), metadata=stubs.md
        )

    bot = await say(pb.AUTHOR_TYPE_BOT, pb.VISIBILITY_PUBLIC, "We got your message")
    note = await say(pb.AUTHOR_TYPE_AGENT, pb.VISIBILITY_INTERNAL, "customer is VIP")
    assert _clock(note.ticket, pb.SLA_TARGET_FIRST_RESPONSE).state == pb.SLA_CLOCK_STATE_RUNNING
    assert bot.ticket.status == pb.TICKET_STATUS_NEW
    reply = await say(pb.AUTHOR_TYPE_AGENT, pb.VISIBILITY_PUBLIC, "Sorry, resending today")
    clock = _clock(reply.ticket, pb.SLA_TARGET_FIRST_RESPONSE)
    assert clock.state == pb.SLA_CLOCK_STATE_MET
    assert reply.ticket.first_response_time == reply.message.send_time
    assert reply.ticket.status == pb.TICKET_STATUS_OPEN

    events = await read_events(
        desk.kafka_bootstrap,
        lambda evs: bool(of_type(evs, events_pb2.SlaTargetMet, ticket.id)),
    )
    added = [e for _, e in of_type(events, events_pb2.MessageAdded, ticket.id)]
    assert [m.first_response for m in added] == [False, False, True]
    (met,) = [e for _, e in of_type(events, events_pb2.SlaTargetMet, ticket.id)]
    assert met.target == pb.SLA_TARGET_FIRST_RESPONSE


async def test_messages_carry_the_ticket_version_that_orders_them_among_status_changes(
    desk: DeskUnderTest,
) -> None:
    stubs = desk.stubs(new_tenant())
    ticket = await stubs.new_ticket(await stubs.new_contact())

    async def say(author: Any) -> pb.AddMessageResponse:
        message = pb.Message(author_type=author, visibility=pb.VISIBILITY_PUBLIC, body="hi")
        return await stubs.tickets.AddMessage(
            pb.AddMessageRequest(ticket_id=ticket.id, message=message), metadata=stubs.md
        )

    reply = await say(pb.AUTHOR_TYPE_AGENT)  # opens the NEW ticket
    resolved = await stubs.tickets.TransitionTicket(
        pb.TransitionTicketRequest(id=ticket.id, status=pb.TICKET_STATUS_RESOLVED),
        metadata=stubs.md,
    )
    again = await say(pb.AUTHOR_TYPE_CUSTOMER)  # reopens it

    events = await read_events(
        desk.kafka_bootstrap,
        lambda evs: len(of_type(evs, events_pb2.TicketStatusChanged, ticket.id)) >= 3,
    )
    added = [e for _, e in of_type(events, events_pb2.MessageAdded, ticket.id)]
    changes = [e for _, e in of_type(events, events_pb2.TicketStatusChanged, ticket.id)]
    assert [m.ticket_version for m in added] == [reply.ticket.version, again.ticket.version]
    assert [(c.ticket.version, c.to_status) for c in changes] == [
        (reply.ticket.version, pb.TICKET_STATUS_OPEN),  # caused by the reply
        (resolved.ticket.version, pb.TICKET_STATUS_RESOLVED),
        (again.ticket.version, pb.TICKET_STATUS_OPEN),  # caused by the customer's message
    ]
    assert ticket.version < reply.ticket.version < resolved.ticket.version
    assert resolved.ticket.version < again.ticket.version


async def test_routing_assigns_round_robin_and_records_the_rule(desk: DeskUnderTest) -> None:
    stubs = desk.stubs(new_tenant())
    for agent in ("agent-a", "agent-b", "agent-c"):
        await stubs.config.PutAgent(
            pb.PutAgentRequest(
                agent=pb.Agent(id=agent, team_ids=["billing"], available=agent != "agent-c")
            ),
            metadata=stubs.md,
        )
    rule = (
        await stubs.config.CreateRoutingRule(
            pb.CreateRoutingRuleRequest(
                rule=pb.RoutingRule(
                    name="e-mail complaints to billing",
                    enabled=True,
                    triggers=[pb.RULE_TRIGGER_TICKET_CREATED],
                    condition=pb.RuleCondition(channels=[pb.CHANNEL_EMAIL]),
                    actions=[
                        pb.RuleAction(
                            kind=pb.RULE_ACTION_KIND_ASSIGN_AGENT,
                            team_id="billing",
                            strategy=pb.ASSIGN_STRATEGY_ROUND_ROBIN,
                        ),
                        pb.RuleAction(kind=pb.RULE_ACTION_KIND_ADD_TAG, tag="billing"),
                    ],
                )
            ),
            metadata=stubs.md,
        )
    ).rule
    contact = await stubs.new_contact()
    first = await stubs.new_ticket(contact)
    second = await stubs.new_ticket(contact)
    third = await stubs.new_ticket(contact)
    phone = await stubs.new_ticket(contact, channel=pb.CHANNEL_PHONE)

    assert [t.assignee_id for t in (first, second, third)] == ["agent-a", "agent-b", "agent-a"]
    assert first.team_id == "billing"
    assert "billing" in first.tags
    decision = first.routing_decisions[0]
    assert (decision.rule_id, decision.rule_version) == (rule.id, 1)
    assert decision.assigned_agent_id == "agent-a"
    assert not phone.assignee_id
    assert not phone.routing_decisions

    agents = await stubs.config.ListAgents(
        pb.ListAgentsRequest(team_id="billing"), metadata=stubs.md
    )
    assert {a.id: a.open_tickets for a in agents.agents} == {
        "agent-a": 2,
        "agent-b": 1,
        "agent-c": 0,
    }
    events = await read_events(
        desk.kafka_bootstrap,
        lambda evs: bool(of_type(evs, events_pb2.TicketRouted, third.id)),
    )
    headers, routed = of_type(events, events_pb2.TicketRouted, first.id)[0]
    assert headers["ce_actor"] == f"rule:{rule.id}"
    assert routed.decisions[0].rule_id == rule.id


async def test_same_mention_twice_is_one_mention_and_one_ticket(desk: DeskUnderTest) -> None:
    stubs = desk.stubs(new_tenant())
    await stubs.config.CreateRoutingRule(
        pb.CreateRoutingRuleRequest(
            rule=pb.RoutingRule(
                name="angry posts become complaints",
                enabled=True,
                triggers=[pb.RULE_TRIGGER_MENTION_RECEIVED],
                condition=pb.RuleCondition(sentiment_below=-0.3),
                actions=[pb.RuleAction(kind=pb.RULE_ACTION_KIND_OPEN_TICKET)],
            )
        ),
        metadata=stubs.md,
    )
    posted = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=8)
    mention = pb.Mention(
        network="x",
        post_id="1790000000000000001",
        author_handle="@Traveller42",
        author_followers=12_000,
        text="@acme missed my connection AGAIN. Worst airline ever, nobody answers!!!",
        posted_time=_ts(posted),
    )
    first = await stubs.social.IngestMention(
        pb.IngestMentionRequest(mention=mention), metadata=stubs.md
    )
    second = await stubs.social.IngestMention(
        pb.IngestMentionRequest(mention=mention), metadata=stubs.md
    )
    streamed = await stubs.social.IngestMentions(
        iter([pb.IngestMentionsRequest(mentions=[mention, mention])]), metadata=stubs.md
    )
    assert not first.duplicate
    assert second.duplicate
    assert first.mention.sentiment < -0.3
    assert first.mention.ticket_id
    assert first.mention.author_contact_id, "an unknown author becomes a contact"
    assert second.mention.ticket_id == first.mention.ticket_id
    assert (streamed.accepted, streamed.duplicates, streamed.tickets_opened) == (0, 2, 0)

    ticket = (
        await stubs.tickets.GetTicket(
            pb.GetTicketRequest(id=first.mention.ticket_id), metadata=stubs.md
        )
    ).ticket
    assert ticket.first_touch_time.ToDatetime(tzinfo=UTC) == posted
    assert ticket.channel == pb.CHANNEL_SOCIAL
    assert ticket.source_mention_id == first.mention.id
    listed = await stubs.tickets.ListTickets(pb.ListTicketsRequest(), metadata=stubs.md)
    assert len(listed.tickets) == 1
    mentions = await stubs.social.ListMentions(pb.ListMentionsRequest(), metadata=stubs.md)
    assert len(mentions.mentions) == 1


async def test_resolving_sends_a_survey_that_takes_one_answer(desk: DeskUnderTest) -> None:
    stubs = desk.stubs(new_tenant())
    ticket = await stubs.new_ticket(await stubs.new_contact())
    await stubs.tickets.TransitionTicket(
        pb.TransitionTicketRequest(id=ticket.id, status=pb.TICKET_STATUS_RESOLVED),
        metadata=stubs.md,
    )
    surveys = await stubs.surveys.ListSurveys(
        pb.ListSurveysRequest(ticket_id=ticket.id), metadata=stubs.md
    )
    (survey,) = surveys.surveys
    assert survey.status == pb.SURVEY_STATUS_SENT
    answer = pb.SurveyAnswer(
        csat=2,
        nps=3,
        perceived_wait_minutes=600,
        expected_wait_minutes=120,
        comment="Took forever, really frustrating",
    )
    answered = await stubs.surveys.AnswerSurvey(
        pb.AnswerSurveyRequest(survey_id=survey.id, answer=answer), metadata=stubs.md
    )
    assert answered.survey.status == pb.SURVEY_STATUS_ANSWERED
    assert answered.survey.answer.comment_sentiment < 0
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stubs.surveys.AnswerSurvey(
            pb.AnswerSurveyRequest(survey_id=survey.id, answer=pb.SurveyAnswer(csat=5)),
            metadata=stubs.md,
        )
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    stored = await stubs.surveys.GetSurvey(pb.GetSurveyRequest(id=survey.id), metadata=stubs.md)
    assert stored.survey.answer.csat == 2

    events = await read_events(
        desk.kafka_bootstrap,
        lambda evs: any(
            e.survey.id == survey.id for _, e in of_type(evs, events_pb2.SurveyAnswered)
        ),
    )
    assert [e for _, e in of_type(events, events_pb2.SurveySent) if e.survey.id == survey.id]
    answers = [e for _, e in of_type(events, events_pb2.SurveyAnswered) if e.survey.id == survey.id]
    assert len(answers) == 1


async def test_reopen_restarts_the_resolution_clock(desk: DeskUnderTest) -> None:
    stubs = desk.stubs(new_tenant())
    await _wall_policy(stubs, resolution=3600)
    ticket = await stubs.new_ticket(await stubs.new_contact())
    resolved = await stubs.tickets.TransitionTicket(
        pb.TransitionTicketRequest(id=ticket.id, status=pb.TICKET_STATUS_RESOLVED),
        metadata=stubs.md,
    )
    assert _clock(resolved.ticket, pb.SLA_TARGET_RESOLUTION).state == pb.SLA_CLOCK_STATE_MET
    reopened = await stubs.tickets.AddMessage(
        pb.AddMessageRequest(
            ticket_id=ticket.id,
            message=pb.Message(
                author_type=pb.AUTHOR_TYPE_CUSTOMER,
                visibility=pb.VISIBILITY_PUBLIC,
                body="Still broken",
            ),
        ),
        metadata=stubs.md,
    )
    assert reopened.ticket.status == pb.TICKET_STATUS_OPEN
    assert reopened.ticket.reopen_count == 1
    clock = _clock(reopened.ticket, pb.SLA_TARGET_RESOLUTION)
    assert clock.state == pb.SLA_CLOCK_STATE_RUNNING
    resolved_at = resolved.ticket.update_time.ToDatetime(tzinfo=UTC)
    reopened_at = reopened.message.send_time.ToDatetime(tzinfo=UTC)
    created = ticket.create_time.ToDatetime(tzinfo=UTC)
    expected = created + timedelta(hours=1) + (reopened_at - resolved_at)
    assert clock.due_time.ToDatetime(tzinfo=UTC) == expected
