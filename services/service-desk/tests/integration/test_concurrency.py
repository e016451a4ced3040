"""Concurrent writers on one ticket, one survey, one post and one team: no lost update, no double
count, every refusal a clean status."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message as ProtoMessage
from google.protobuf.timestamp_pb2 import Timestamp

from crm.servicedesk.v1 import events_pb2
from crm.servicedesk.v1 import servicedesk_pb2 as pb
from crm_testing.servicedesk import DeskUnderTest, Stubs, new_tenant, of_type, read_events

pytestmark = pytest.mark.integration

R = TypeVar("R")
Events = list[tuple[dict[str, str], ProtoMessage]]

# What a call that lost a race may answer: refused as stale or illegal now, or "try again".
CLEAN_REFUSALS = frozenset(
    {grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.ABORTED, grpc.StatusCode.UNAVAILABLE}
)
TIMEOUT = 30.0
MANUAL = "concurrent transition"


async def _all(calls: Sequence[Awaitable[R]]) -> list[R | grpc.aio.AioRpcError]:
    """Every call's response or RPC error, the calls running at the same time."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    outcomes: list[R | grpc.aio.AioRpcError] = []
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, grpc.aio.AioRpcError):
            raise result
        outcomes.append(result)
    return outcomes


def _refusals(outcomes: Sequence[object]) -> list[grpc.aio.AioRpcError]:
    errors = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    unclean = [(e.code(), e.details()) for e in errors if e.code() not in CLEAN_REFUSALS]
    assert not unclean, unclean
    return errors


async def _outbox_drained(desk: DeskUnderTest, timeout: float = 20.0) -> None:
    """Wait until the relay has published every committed event."""
    outbox = desk.mongo.db["outbox"]
    async with asyncio.timeout(timeout):
        while await outbox.count_documents({}):
            await asyncio.sleep(0.1)


async def _events(desk: DeskUnderTest, done: Callable[[Events], bool]) -> Events:
    await _outbox_drained(desk)
    return await read_events(desk.kafka_bootstrap, done, timeout=TIMEOUT, linger=0.6)


def _stamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


async def _wall_policy(stubs: Stubs) -> None:
    specs = [
        pb.SlaTargetSpec(
            target=target, clock=pb.CLOCK_KIND_WALL, duration=Duration(seconds=seconds)
        )
        for target, seconds in (
            (pb.SLA_TARGET_FIRST_RESPONSE, 3600),
            (pb.SLA_TARGET_NEXT_RESPONSE, 3600),
            (pb.SLA_TARGET_RESOLUTION, 8 * 3600),
        )
    ]
    await stubs.config.CreateSlaPolicy(
        pb.CreateSlaPolicyRequest(policy=pb.SlaPolicy(name="wall", targets=specs, enabled=True)),
        metadata=stubs.md,
    )


async def test_concurrent_replies_messages_and_transitions_lose_nothing(
    desk: DeskUnderTest,
) -> None:
    stubs = desk.stubs(new_tenant())
    await _wall_policy(stubs)
    ticket = await stubs.new_ticket(await stubs.new_contact())
    assert ticket.version == 1

    def say(author: Any, index: int) -> Awaitable[pb.AddMessageResponse]:
        message = pb.Message(
            author_type=author,
            author_id=f"author-{index}",
            visibility=pb.VISIBILITY_PUBLIC,
            body=f"{pb.AuthorType.Name(author)} {index}",
        )
        return stubs.tickets.AddMessage(
            pb.AddMessageRequest(ticket_id=ticket.id, message=message),
            metadata=stubs.md,
            timeout=TIMEOUT,
        )

    targets = [
        pb.TICKET_STATUS_OPEN,
        pb.TICKET_STATUS_PENDING_CUSTOMER,
        pb.TICKET_STATUS_ON_HOLD,
        pb.TICKET_STATUS_RESOLVED,
    ]
    calls: list[tuple[str, Awaitable[Any]]] = []
    for index in range(10):
        calls.append(("agent", say(pb.AUTHOR_TYPE_AGENT, index)))
        calls.append(("customer", say(pb.AUTHOR_TYPE_CUSTOMER, index)))
        transition = pb.TransitionTicketRequest(
            id=ticket.id, status=targets[index % len(targets)], reason=f"{MANUAL} {index}"
        )
        calls.append(
            (
                "transition",
                stubs.tickets.TransitionTicket(transition, metadata=stubs.md, timeout=TIMEOUT),
            )
        )
    random.Random(7).shuffle(calls)
    outcomes = await _all([call for _, call in calls])
    kinds = [kind for kind, _ in calls]

    refused = _refusals(outcomes)
    added: list[pb.AddMessageResponse] = [
        o for o in outcomes if isinstance(o, pb.AddMessageResponse)
    ]
    assert added, [(e.code(), e.details()) for e in refused]
    agent_replies = [
        o.message
        for kind, o in zip(kinds, outcomes, strict=True)
        if kind == "agent" and isinstance(o, pb.AddMessageResponse)
    ]

    # Every message that was acknowledged is stored, and nothing else.
    listed = await stubs.tickets.ListMessages(
        pb.ListMessagesRequest(ticket_id=ticket.id, include_internal=True), metadata=stubs.md
    )
    assert sorted(m.id for m in listed.messages) == sorted(a.message.id for a in added)
    assert {m.id: m.body for m in listed.messages} == {a.message.id: a.message.body for a in added}

    final = (
        await stubs.tickets.GetTicket(pb.GetTicketRequest(id=ticket.id), metadata=stubs.md)
    ).ticket
    events = await _events(
        desk, lambda evs: len(of_type(evs, events_pb2.MessageAdded, ticket.id)) >= len(added)
    )
    changes = sorted(
        (e for _, e in of_type(events, events_pb2.TicketStatusChanged, ticket.id)),
        key=lambda e: e.ticket.version,
    )
    manual = [c for c in changes if c.reason.startswith(MANUAL)]
    published = [e for _, e in of_type(events, events_pb2.MessageAdded, ticket.id)]

    # One version per change that succeeded: no lost update, no change counted twice.
    assert sorted(m.message.id for m in published) == sorted(a.message.id for a in added)
    assert final.version == 1 + len(added) + len(manual), (
        final.version,
        len(added),
        len(manual),
    )
    versions = [a.ticket.version for a in added] + [c.ticket.version for c in manual]
    assert sorted(versions) == list(range(2, final.version + 1))

    # The status changes, manual and automatic, form one chain that ends in the status stored.
    status = pb.TICKET_STATUS_NEW
    for change in changes:
        assert change.from_status == status, changes
        status = change.to_status
    assert final.status == status
    assert final.reopen_count == sum(c.reopen for c in changes)

    # The first response is the earliest public agent reply, flagged once, met once.
    if agent_replies:
        earliest = min(agent_replies, key=lambda m: m.send_time.ToDatetime())
        assert final.first_response_time == earliest.send_time
        flagged = [m for m in published if m.first_response]
        assert [m.message.id for m in flagged] == [earliest.id]
        met = [
            e
            for _, e in of_type(events, events_pb2.SlaTargetMet, ticket.id)
            if e.target == pb.SLA_TARGET_FIRST_RESPONSE
        ]
        assert len(met) == 1
        assert met[0].met_time == earliest.send_time
    else:
        assert not final.HasField("first_response_time")


async def test_concurrent_answers_to_one_survey_record_exactly_one(desk: DeskUnderTest) -> None:
    stubs = desk.stubs(new_tenant())
    ticket = await stubs.new_ticket(await stubs.new_contact())
    surveys = [
        (
            await stubs.surveys.SendSurvey(
                pb.SendSurveyRequest(ticket_id=ticket.id), metadata=stubs.md
            )
        ).survey
        for _ in range(3)
    ]

    def answer(survey: pb.Survey, csat: int) -> Awaitable[pb.AnswerSurveyResponse]:
        return stubs.surveys.AnswerSurvey(
            pb.AnswerSurveyRequest(survey_id=survey.id, answer=pb.SurveyAnswer(csat=csat)),
            metadata=stubs.md,
            timeout=TIMEOUT,
        )

    outcomes = await _all([answer(s, csat) for s in surveys for csat in (1, 5)])
    for index, survey in enumerate(surveys):
        pair = outcomes[2 * index : 2 * index + 2]
        answered = [o for o in pair if isinstance(o, pb.AnswerSurveyResponse)]
        refused = [o for o in pair if isinstance(o, grpc.aio.AioRpcError)]
        assert len(answered) == 1, [(e.code(), e.details()) for e in refused]
        (error,) = refused
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error.details()
        stored = (
            await stubs.surveys.GetSurvey(pb.GetSurveyRequest(id=survey.id), metadata=stubs.md)
        ).survey
        assert stored.status == pb.SURVEY_STATUS_ANSWERED
        assert stored.answer.csat == answered[0].survey.answer.csat

    ids = {s.id for s in surveys}
    events = await _events(
        desk,
        lambda evs: {e.survey.id for _, e in of_type(evs, events_pb2.SurveyAnswered)} >= ids,
    )
    published = Counter(
        e.survey.id for _, e in of_type(events, events_pb2.SurveyAnswered) if e.survey.id in ids
    )
    assert published == dict.fromkeys(ids, 1)


async def test_concurrent_ingests_of_one_post_store_one_mention_and_one_ticket(
    desk: DeskUnderTest,
) -> None:
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
    mention = pb.Mention(
        network="x",
        post_id=f"post-{stubs.tenant}",
        author_handle=f"@Angry{stubs.tenant[1:9]}",  # X handles: at most 15 characters
        author_followers=250,
        text="@acme lost my luggage AGAIN. Worst airline ever, nobody answers!!!",
        posted_time=_stamp(datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)),
    )
    outcomes = await _all(
        [
            stubs.social.IngestMention(
                pb.IngestMentionRequest(mention=mention), metadata=stubs.md, timeout=TIMEOUT
            )
            for _ in range(5)
        ]
    )
    errors = [(o.code(), o.details()) for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert not errors, "a repeated post is answered as a duplicate, not refused"
    responses = [o for o in outcomes if isinstance(o, pb.IngestMentionResponse)]
    assert [r.duplicate for r in responses].count(False) == 1
    assert len({r.mention.id for r in responses}) == 1
    ticket_ids = {r.mention.ticket_id for r in responses}
    assert len(ticket_ids) == 1, ticket_ids
    assert "" not in ticket_ids, "the rule opens a ticket from the post"

    mentions = await stubs.social.ListMentions(pb.ListMentionsRequest(), metadata=stubs.md)
    assert [m.id for m in mentions.mentions] == [responses[0].mention.id]
    tickets = await stubs.tickets.ListTickets(pb.ListTicketsRequest(), metadata=stubs.md)
    assert [t.id for t in tickets.tickets] == list(ticket_ids)
    assert tickets.tickets[0].source_mention_id == responses[0].mention.id

    mention_id = responses[0].mention.id
    events = await _events(
        desk,
        lambda evs: any(
            e.mention.id == mention_id for _, e in of_type(evs, events_pb2.MentionReceived)
        ),
    )
    received = [
        e for _, e in of_type(events, events_pb2.MentionReceived) if e.mention.id == mention_id
    ]
    created = [
        e
        for _, e in of_type(events, events_pb2.TicketCreated)
        if e.ticket.source_mention_id == mention_id
    ]
    assert (len(received), len(created)) == (1, 1)


async def test_concurrent_round_robin_gives_each_agent_its_share(desk: DeskUnderTest) -> None:
    stubs = desk.stubs(new_tenant())
    for agent, available in (("rr-a", True), ("rr-b", True), ("rr-c", True), ("rr-d", False)):
        await stubs.config.PutAgent(
            pb.PutAgentRequest(agent=pb.Agent(id=agent, team_ids=["rr"], available=available)),
            metadata=stubs.md,
        )
    await stubs.config.CreateRoutingRule(
        pb.CreateRoutingRuleRequest(
            rule=pb.RoutingRule(
                name="everything round robin",
                enabled=True,
                triggers=[pb.RULE_TRIGGER_TICKET_CREATED],
                actions=[
                    pb.RuleAction(
                        kind=pb.RULE_ACTION_KIND_ASSIGN_AGENT,
                        team_id="rr",
                        strategy=pb.ASSIGN_STRATEGY_ROUND_ROBIN,
                    )
                ],
            )
        ),
        metadata=stubs.md,
    )
    contact = await stubs.new_contact()
    request = pb.CreateTicketRequest(
        ticket=pb.Ticket(
            type=pb.TICKET_TYPE_SERVICE_REQUEST,
            channel=pb.CHANNEL_WEB_FORM,
            subject="Please change my address",
            contact_id=contact,
        )
    )
    outcomes = await _all(
        [stubs.tickets.CreateTicket(request, metadata=stubs.md, timeout=TIMEOUT) for _ in range(6)]
    )
    errors = [(o.code(), o.details()) for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert not errors
    created = [o.ticket for o in outcomes if isinstance(o, pb.CreateTicketResponse)]
    assert len({t.id for t in created}) == 6
    assignees = Counter(t.assignee_id for t in created)
    assert assignees == {"rr-a": 2, "rr-b": 2, "rr-c": 2}, assignees
    for ticket in created:
        (decision,) = ticket.routing_decisions
        assert decision.assigned_agent_id == ticket.assignee_id

    agents = await stubs.config.ListAgents(pb.ListAgentsRequest(team_id="rr"), metadata=stubs.md)
    assert {a.id: a.open_tickets for a in agents.agents} == {
        "rr-a": 2,
        "rr-b": 2,
        "rr-c": 2,
        "rr-d": 0,
    }
