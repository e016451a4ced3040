"""Bad input gets a clear error (code + field violations) and writes nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2, status_pb2

from crm.servicedesk.v1 import servicedesk_pb2 as pb
from crm_testing.servicedesk import DeskUnderTest, Stubs, metadata, new_tenant

pytestmark = pytest.mark.integration


def _violations(error: grpc.aio.AioRpcError) -> dict[str, str]:
    trailers: Any = error.trailing_metadata() or ()
    for key, value in trailers:
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                    request = error_details_pb2.BadRequest()
                    detail.Unpack(request)
                    return {v.field: v.description for v in request.field_violations}
    return {}


async def _fails(call: Any, code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == code, caught.value.details()
    return caught.value


async def _counts(desk: DeskUnderTest, tenant: str) -> dict[str, int]:
    db = desk.mongo.db
    names = ["tickets", "messages", "mentions", "surveys", "calendars", "sla_policies", "timers"]
    return {name: await db[name].count_documents({"tenant_id": tenant}) for name in names}


async def test_unknown_contact_is_not_found_and_writes_nothing(desk: DeskUnderTest) -> None:
    stubs = desk.stubs(new_tenant())
    before = await _counts(desk, stubs.tenant)
    error = await _fails(stubs.new_ticket("no-such-contact"), grpc.StatusCode.NOT_FOUND)
    assert "no-such-contact" in (error.details() or "")
    by_identity = stubs.tickets.CreateTicket(
        pb.CreateTicketRequest(
            ticket=pb.Ticket(type=pb.TICKET_TYPE_INCIDENT, channel=pb.CHANNEL_EMAIL, subject="x"),
            requester_identity=pb.RequesterIdentity(kind="email", value="nobody@example.com"),
        ),
        metadata=stubs.md,
    )
    await _fails(by_identity, grpc.StatusCode.NOT_FOUND)
    assert await _counts(desk, stubs.tenant) == before


async def test_requester_by_identity_is_resolved(desk: DeskUnderTest) -> None:
    stubs = desk.stubs(new_tenant())
    contact = await stubs.new_contact(email="Ada@Example.com")
    response = await stubs.tickets.CreateTicket(
        pb.CreateTicketRequest(
            ticket=pb.Ticket(type=pb.TICKET_TYPE_INCIDENT, channel=pb.CHANNEL_EMAIL, subject="x"),
            requester_identity=pb.RequesterIdentity(kind="email", value="ada@example.com"),
        ),
        metadata=stubs.md,
    )
    assert response.ticket.contact_id == contact


async def test_other_tenants_ticket_is_not_found(desk: DeskUnderTest) -> None:
    owner = desk.stubs(new_tenant())
    ticket = await owner.new_ticket(await owner.new_contact())
    intruder = metadata(new_tenant())
    await _fails(
        owner.tickets.GetTicket(pb.GetTicketRequest(id=ticket.id), metadata=intruder),
        grpc.StatusCode.NOT_FOUND,
    )
    await _fails(
        owner.tickets.TransitionTicket(
            pb.TransitionTicketRequest(id=ticket.id, status=pb.TICKET_STATUS_RESOLVED),
            metadata=intruder,
        ),
        grpc.StatusCode.NOT_FOUND,
    )
    # A contact of another tenant cannot be a requester either.
    await _fails(desk.stubs(new_tenant()).new_ticket(ticket.contact_id), grpc.StatusCode.NOT_FOUND)
    stored = await owner.tickets.GetTicket(pb.GetTicketRequest(id=ticket.id), metadata=owner.md)
    assert stored.ticket.status == pb.TICKET_STATUS_NEW
    assert stored.ticket.version == ticket.version


async def test_illegal_transition_is_failed_precondition(desk: DeskUnderTest) -> None:
    stubs = desk.stubs(new_tenant())
    ticket = await stubs.new_ticket(await stubs.new_contact())
    error = await _fails(
        stubs.tickets.TransitionTicket(
            pb.TransitionTicketRequest(id=ticket.id, status=pb.TICKET_STATUS_CLOSED),
            metadata=stubs.md,
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert "new ticket cannot move to closed" in (error.details() or "")
    await _fails(
        stubs.tickets.TransitionTicket(
            pb.TransitionTicketRequest(
                id=ticket.id, status=pb.TICKET_STATUS_OPEN, expected_version=ticket.version + 5
            ),
            metadata=stubs.md,
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    stored = await stubs.tickets.GetTicket(pb.GetTicketRequest(id=ticket.id), metadata=stubs.md)
    assert stored.ticket.version == ticket.version


async def test_survey_score_out_of_range_is_invalid(desk: DeskUnderTest) -> None:
    stubs = desk.stubs(new_tenant())
    ticket = await stubs.new_ticket(await stubs.new_contact())
    survey = (
        await stubs.surveys.SendSurvey(pb.SendSurveyRequest(ticket_id=ticket.id), metadata=stubs.md)
    ).survey
    error = await _fails(
        stubs.surveys.AnswerSurvey(
            pb.AnswerSurveyRequest(survey_id=survey.id, answer=pb.SurveyAnswer(csat=6, nps=11)),
            metadata=stubs.md,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert set(_violations(error)) == {"answer.csat", "answer.nps"}
    await _fails(
        stubs.surveys.AnswerSurvey(
            pb.AnswerSurveyRequest(survey_id=survey.id, answer=pb.SurveyAnswer()),
            metadata=stubs.md,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    stored = await stubs.surveys.GetSurvey(pb.GetSurveyRequest(id=survey.id), metadata=stubs.md)
    assert stored.survey.status == pb.SURVEY_STATUS_SENT


async def test_mention_without_post_id_is_invalid(desk: DeskUnderTest) -> None:
    stubs = desk.stubs(new_tenant())
    posted = Timestamp()
    posted.FromDatetime(datetime.now(UTC))
    good = pb.Mention(network="x", post_id="1", author_handle="a", text="hi", posted_time=posted)
    bad = pb.Mention(network="x", author_handle="b", text="hello", posted_time=posted)
    before = await _counts(desk, stubs.tenant)
    error = await _fails(
        stubs.social.IngestMention(pb.IngestMentionRequest(mention=bad), metadata=stubs.md),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "mention.post_id" in _violations(error)
    # In a stream, the batch with the bad mention is refused as a whole.
    await _fails(
        stubs.social.IngestMentions(
            iter([pb.IngestMentionsRequest(mentions=[good, bad])]), metadata=stubs.md
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert await _counts(desk, stubs.tenant) == before


async def test_calendar_with_overlapping_intervals_is_invalid(desk: DeskUnderTest) -> None:
    stubs = desk.stubs(new_tenant())
    calendar = pb.BusinessCalendar(
        name="support",
        timezone="Europe/Berlin",
        intervals=[
            pb.OpeningInterval(weekday=1, start_minute=9 * 60, end_minute=13 * 60),
            pb.OpeningInterval(weekday=1, start_minute=12 * 60, end_minute=17 * 60),
        ],
    )
    before = await _counts(desk, stubs.tenant)
    error = await _fails(
        stubs.config.CreateCalendar(pb.CreateCalendarRequest(calendar=calendar), metadata=stubs.md),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert any(path.startswith("calendar.intervals[") for path in _violations(error))
    unknown_zone = pb.BusinessCalendar(
        name="x", timezone="Mars/Olympus", intervals=[pb.OpeningInterval(weekday=1, end_minute=60)]
    )
    error = await _fails(
        stubs.config.CreateCalendar(
            pb.CreateCalendarRequest(calendar=unknown_zone), metadata=stubs.md
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "calendar.timezone" in _violations(error)
    assert await _counts(desk, stubs.tenant) == before


async def test_policy_on_unknown_calendar_is_not_found(desk: DeskUnderTest) -> None:
    stubs = desk.stubs(new_tenant())
    policy = pb.SlaPolicy(
        name="x",
        enabled=True,
        calendar_id="nope",
        targets=[
            pb.SlaTargetSpec(
                target=pb.SLA_TARGET_RESOLUTION,
                clock=pb.CLOCK_KIND_BUSINESS,
                duration=Duration(seconds=3600),
            )
        ],
    )
    await _fails(
        stubs.config.CreateSlaPolicy(pb.CreateSlaPolicyRequest(policy=policy), metadata=stubs.md),
        grpc.StatusCode.NOT_FOUND,
    )


async def test_missing_tenant_is_unauthenticated(desk: DeskUnderTest) -> None:
    stubs: Stubs = desk.stubs(new_tenant())
    await _fails(
        stubs.tickets.GetTicket(pb.GetTicketRequest(id="x")), grpc.StatusCode.UNAUTHENTICATED
    )
