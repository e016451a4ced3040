"""Appointments on the real Kafka and database: work calendars, free slots shown in the
customer's zone, booking (an unknown person becomes a lead), confirm, reschedule, cancel, the
.ics file, team bookings, and every event on Kafka in order per key."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import grpc
import pytest
from icalendar import Calendar

from crm.contacts.v1 import contacts_pb2 as cpb
from crm.sales.v1 import appointments_events_pb2 as aev
from crm.sales.v1 import appointments_pb2 as apb
from crm.sales.v1 import appointments_pb2_grpc
from crm.sales.v1 import events_pb2 as sev
from crm.sales.v1 import sales_pb2 as pb
from crm_testing.appointments import (
    NEW_YORK,
    appointment_stub,
    booking,
    local,
    monday_ahead,
    office_hours,
    set_calendar,
    slots_request,
    starts,
)
from crm_testing.sales import (
    SalesUnderTest,
    events_for,
    metadata,
    precondition_types,
    refused,
    unique_id,
)

if TYPE_CHECKING:
    Stub = appointments_pb2_grpc.AppointmentServiceAsyncStub


@pytest.fixture(scope="module")
async def stub(sales: SalesUnderTest) -> AsyncIterator[Stub]:
    async with appointment_stub(sales) as opened:
        yield opened


def _ics(content: bytes) -> tuple[Calendar, object]:
    calendar = Calendar.from_ical(content)
    (event,) = calendar.walk("VEVENT")
    return calendar, event


async def test_book_confirm_reschedule_cancel_with_slots_ics_and_events_in_order(
    sales: SalesUnderTest, stub: Stub, infra: Any
) -> None:
    calendar = await set_calendar(stub, buffer_minutes=15)
    rep = calendar.owner_id
    assert calendar.version == 1
    assert calendar.time_zone == "Europe/Berlin"
    monday = monday_ahead()
    week = (local(monday, 0), local(monday, 0) + timedelta(days=7))

    found = (await stub.FindFreeSlots(slots_request(*week, rep_id=rep), metadata=metadata())).slots
    # Monday to Friday 09:00-17:00 Berlin in 30-minute slots: 16 a day.
    assert len(found) == 5 * 16
    first = found[0]
    assert first.start_time.ToDatetime(tzinfo=UTC) == local(monday, 9)
    assert first.rep_id == rep
    shown = datetime.fromisoformat(first.customer_local_start)
    assert shown == local(monday, 9)
    assert shown.utcoffset() == local(monday, 9).astimezone(ZoneInfo(NEW_YORK)).utcoffset()

    # An unknown person books Monday 10:00: a lead (source APPOINTMENT) is made with it.
    booked = await stub.BookAppointment(
        booking(rep, local(monday, 10), name="Dana Prospect", email="dana@example.com"),
        metadata=metadata(),
    )
    appointment = booked.appointment
    lead = booked.created_lead
    assert lead.id
    assert lead.source == pb.LEAD_SOURCE_APPOINTMENT
    assert lead.person_name == "Dana Prospect"
    assert lead.owner_id == rep
    assert appointment.lead_id == lead.id
    assert appointment.event_key == lead.id
    assert appointment.status == apb.APPOINTMENT_STATUS_BOOKED
    assert appointment.buffer_minutes == 15
    assert datetime.fromisoformat(appointment.customer_local_start) == local(monday, 10)
    stored = (await sales.stub.GetLead(pb.GetLeadRequest(id=lead.id), metadata=metadata())).lead
    assert stored.source == pb.LEAD_SOURCE_APPOINTMENT

    # 10:00 is taken, and 09:30 too (its buffer would run into 10:00), and 10:30 (10:00's buffer).
    after = starts(
        (await stub.FindFreeSlots(slots_request(*week, rep_id=rep), metadata=metadata())).slots
    )
    taken = {local(monday, 9, 30), local(monday, 10), local(monday, 10, 30)}
    assert set(starts(found)) - set(after) == taken

    confirmed = await stub.ConfirmAppointment(
        apb.ConfirmAppointmentRequest(id=appointment.id, expected_version=1), metadata=metadata()
    )
    assert confirmed.appointment.status == apb.APPOINTMENT_STATUS_CONFIRMED

    moved = (
        await stub.RescheduleAppointment(
            apb.RescheduleAppointmentRequest(
                id=appointment.id,
                start_time=booking(rep, local(monday, 14)).start_time,
                end_time=booking(rep, local(monday, 14)).end_time,
                expected_version=2,
            ),
            metadata=metadata(),
        )
    ).appointment
    assert moved.sequence == 1
    assert moved.status == apb.APPOINTMENT_STATUS_CONFIRMED
    after_move = set(
        starts(
            (await stub.FindFreeSlots(slots_request(*week, rep_id=rep), metadata=metadata())).slots
        )
    )
    assert taken <= after_move  # the old slot is free again
    assert local(monday, 14) not in after_move

    ics = await stub.GetAppointmentCalendarFile(
        apb.GetAppointmentCalendarFileRequest(id=appointment.id), metadata=metadata()
    )
    assert ics.content_type == "text/calendar; charset=utf-8; method=REQUEST"
    parsed, event = _ics(ics.content)
    assert str(parsed["METHOD"]) == "REQUEST"
    assert str(event["UID"]) == f"appointment-{appointment.id}@crm-sales"  # type: ignore[index]
    assert int(event["SEQUENCE"]) == 1  # type: ignore[index]
    assert event["DTSTART"].dt == local(monday, 14)  # type: ignore[index]
    assert event["DTEND"].dt == local(monday, 14, 30)  # type: ignore[index]
    assert str(event["ATTENDEE"]) == "mailto:dana@example.com"  # type: ignore[index]

    cancelled = (
        await stub.CancelAppointment(
            apb.CancelAppointmentRequest(id=appointment.id, reason="travel", expected_version=3),
            metadata=metadata(),
        )
    ).appointment
    assert cancelled.status == apb.APPOINTMENT_STATUS_CANCELLED
    assert cancelled.sequence == 2
    final = (await stub.FindFreeSlots(slots_request(*week, rep_id=rep), metadata=metadata())).slots
    assert starts(final) == starts(found)  # everything free again
    parsed, event = _ics(
        (
            await stub.GetAppointmentCalendarFile(
                apb.GetAppointmentCalendarFileRequest(id=appointment.id), metadata=metadata()
            )
        ).content
    )
    assert str(parsed["METHOD"]) == "CANCEL"
    assert int(event["SEQUENCE"]) == 2  # type: ignore[index]
    assert str(event["UID"]) == f"appointment-{appointment.id}@crm-sales"  # type: ignore[index]

    seen = await events_for(infra.kafka_bootstrap, lead.id, 5)
    assert [e.type for e in seen] == [
        "crm.sales.v1.LeadCreated",
        "crm.sales.v1.AppointmentBooked",
        "crm.sales.v1.AppointmentConfirmed",
        "crm.sales.v1.AppointmentRescheduled",
        "crm.sales.v1.AppointmentCancelled",
    ]
    assert {str(e.actor) for e in seen} == {"agent:alice"}
    created = sev.LeadCreated.FromString(seen[0].payload)
    assert created.lead.id == lead.id
    booked_event = aev.AppointmentBooked.FromString(seen[1].payload)
    assert booked_event.lead_created
    assert booked_event.appointment.rep_id == rep
    assert booked_event.appointment.lead_id == lead.id
    assert booked_event.appointment.start_time.ToDatetime(tzinfo=UTC) == local(monday, 10)
    rescheduled = aev.AppointmentRescheduled.FromString(seen[3].payload)
    assert rescheduled.previous_start_time.ToDatetime(tzinfo=UTC) == local(monday, 10)
    assert rescheduled.appointment.start_time.ToDatetime(tzinfo=UTC) == local(monday, 14)
    assert rescheduled.previous_version == 2
    cancelled_event = aev.AppointmentCancelled.FromString(seen[4].payload)
    assert cancelled_event.previous_status == apb.APPOINTMENT_STATUS_CONFIRMED
    assert cancelled_event.appointment.cancel_reason == "travel"

    (calendar_set,) = await events_for(infra.kafka_bootstrap, f"rep:{rep}", 1)
    assert calendar_set.type == "crm.sales.v1.WorkCalendarSet"
    assert aev.WorkCalendarSet.FromString(calendar_set.payload).calendar.owner_id == rep


async def test_a_known_contact_books_without_a_lead_and_is_the_events_key(
    sales: SalesUnderTest, stub: Stub, infra: Any
) -> None:
    contact = (
        await sales.contacts.CreateContact(
            cpb.CreateContactRequest(contact=cpb.Contact(given_name="Known")),
            metadata=metadata(),
        )
    ).contact
    rep = (await set_calendar(stub)).owner_id
    monday = monday_ahead()
    reply = await stub.BookAppointment(
        booking(rep, local(monday, 11), contact_id=contact.id, customer_name="", customer_email=""),
        metadata=metadata(),
    )
    assert not reply.HasField("created_lead")
    assert reply.appointment.contact_id == contact.id
    assert reply.appointment.lead_id == ""
    assert reply.appointment.event_key == contact.id
    (event,) = await events_for(infra.kafka_bootstrap, contact.id, 1)
    booked = aev.AppointmentBooked.FromString(event.payload)
    assert booked.appointment.contact_id == contact.id
    assert not booked.lead_created


async def test_a_retried_booking_answers_with_the_first_appointment_and_lead(
    stub: Stub,
) -> None:
    rep = (await set_calendar(stub)).owner_id
    request = booking(rep, local(monday_ahead(), 9), request_id=unique_id("req"))
    first = await stub.BookAppointment(request, metadata=metadata())
    again = await stub.BookAppointment(request, metadata=metadata())
    assert again.appointment == first.appointment
    assert again.created_lead == first.created_lead


async def test_a_team_books_its_first_free_member_inside_both_calendars(stub: Stub) -> None:
    ann, bob = unique_id("ann"), unique_id("bob")
    # Bob keeps his own, shorter hours: 13:00-17:00 Berlin.
    await set_calendar(stub, bob, hours=office_hours(start=13 * 60))
    team = await set_calendar(
        stub,
        unique_id("team"),
        kind=apb.CALENDAR_OWNER_KIND_TEAM,
        members=[ann, bob],
        buffer_minutes=0,
    )
    monday = monday_ahead()
    day = (local(monday, 0), local(monday, 23))
    offer = (
        await stub.FindFreeSlots(
            slots_request(*day, team_id=team.owner_id, minutes=60), metadata=metadata()
        )
    ).slots
    assert [s.rep_id for s in offer] == [ann] * 8
    assert {s.team_id for s in offer} == {team.owner_id}

    at_two = local(monday, 14)
    first = await stub.BookAppointment(
        booking("", at_two, 60, team_id=team.owner_id), metadata=metadata()
    )
    second = await stub.BookAppointment(
        booking("", at_two, 60, team_id=team.owner_id), metadata=metadata()
    )
    assert (first.appointment.rep_id, second.appointment.rep_id) == (ann, bob)
    assert first.appointment.team_id == team.owner_id
    error = await refused(
        stub.BookAppointment(booking("", at_two, 60, team_id=team.owner_id), metadata=metadata()),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert precondition_types(error) == {"NO_FREE_MEMBER"}

    # At 10:00 only Ann is in (Bob starts at 13:00): after her, nobody is free.
    await stub.BookAppointment(
        booking("", local(monday, 10), 60, team_id=team.owner_id), metadata=metadata()
    )
    error = await refused(
        stub.BookAppointment(
            booking(bob, local(monday, 11), 60, team_id=team.owner_id), metadata=metadata()
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "working hours" in (error.details() or "")
    offer = (
        await stub.FindFreeSlots(
            slots_request(*day, team_id=team.owner_id, minutes=60), metadata=metadata()
        )
    ).slots
    by_start = {s.start_time.ToDatetime(tzinfo=UTC): s.rep_id for s in offer}
    assert local(monday, 10) not in by_start
    assert at_two not in by_start
    assert by_start[local(monday, 15)] == ann
    listed = await stub.ListAppointments(
        apb.ListAppointmentsRequest(team_id=team.owner_id), metadata=metadata()
    )
    assert len(listed.appointments) == 3


async def test_slots_page_through_in_order(stub: Stub) -> None:
    rep = (await set_calendar(stub)).owner_id
    monday = monday_ahead()
    week = (local(monday, 0), local(monday, 0) + timedelta(days=7))
    every = starts(
        (await stub.FindFreeSlots(slots_request(*week, rep_id=rep), metadata=metadata())).slots
    )
    paged: list[datetime] = []
    token = ""
    while True:
        request = slots_request(*week, rep_id=rep, page_size=7)
        request.page_token = token
        reply = await stub.FindFreeSlots(request, metadata=metadata())
        paged.extend(starts(reply.slots))
        token = reply.next_page_token
        if not token:
            break
    assert paged == every


async def test_a_reschedule_may_overlap_its_own_old_slot(sales: SalesUnderTest, stub: Stub) -> None:
    rep = (await set_calendar(stub, buffer_minutes=10)).owner_id
    monday = monday_ahead()
    booked = await stub.BookAppointment(booking(rep, local(monday, 10)), metadata=metadata())
    moved = (
        await stub.RescheduleAppointment(
            apb.RescheduleAppointmentRequest(
                id=booked.appointment.id,
                start_time=booking(rep, local(monday, 10, 15)).start_time,
                end_time=booking(rep, local(monday, 10, 15)).end_time,
            ),
            metadata=metadata(),
        )
    ).appointment
    assert moved.start_time.ToDatetime(tzinfo=UTC) == local(monday, 10, 15)
    claims = [
        doc["_id"]
        async for doc in sales.mongo.db["appointment_claims"].find(
            {"appointment_id": booked.appointment.id}
        )
    ]
    # 10:15-10:45 plus 10 minutes of buffer: 8 granules, the old 10:00-10:15 ones released.
    assert len(claims) == 8
    error = await refused(
        stub.BookAppointment(booking(rep, local(monday, 10, 50)), metadata=metadata()),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert precondition_types(error) == {"SLOT_TAKEN"}
    assert (
        await stub.BookAppointment(booking(rep, local(monday, 9, 30), 30), metadata=metadata())
    ).appointment.rep_id == rep
