"""Bad appointment input gets the right status with field violations and writes nothing: slots
outside the calendar (after hours, a weekend, a public holiday), an overlapping booking, an
unknown time zone, bad calendars, illegal transitions, stale versions, and another tenant's ids
(NOT_FOUND)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

import grpc
import holidays as holidays_lib
import pytest

from crm.contacts.v1 import contacts_pb2 as cpb
from crm.sales.v1 import appointments_pb2 as apb
from crm.sales.v1 import appointments_pb2_grpc
from crm.sales.v1 import sales_pb2 as pb
from crm_testing.appointments import (
    appointment_stub,
    booking,
    local,
    monday_ahead,
    office_hours,
    set_calendar,
    slots_request,
    stamp,
)
from crm_testing.sales import (
    OTHER_TENANT,
    SalesUnderTest,
    create_opportunity,
    create_pipeline,
    metadata,
    precondition_types,
    refused,
    violations,
)

if TYPE_CHECKING:
    Stub = appointments_pb2_grpc.AppointmentServiceAsyncStub

COLLECTIONS = (
    "work_calendars",
    "appointments",
    "appointment_claims",
    "leads",
    "idempotency",
    "outbox",
    "key_sequences",
)
INVALID = grpc.StatusCode.INVALID_ARGUMENT
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
NOT_FOUND = grpc.StatusCode.NOT_FOUND


def _next_weekday_holiday() -> date:
    """The next German public holiday on a weekday, at least a week ahead."""
    start = datetime.now(UTC).date() + timedelta(days=7)
    for year in (start.year, start.year + 1):
        for day in sorted(holidays_lib.country_holidays("DE", years=year)):
            if day >= start and day.weekday() < 5:
                return day
    raise AssertionError("no holiday found")


@dataclass
class World:
    """What the refused requests are aimed at, made before the counting starts."""

    rep: str
    holiday_rep: str
    monday: date
    booked: apb.Appointment
    cancelled: apb.Appointment
    other_tenant_rep: str
    other_tenant_appointment: apb.Appointment
    other_tenant_lead: pb.Lead
    other_tenant_opportunity: pb.Opportunity
    other_tenant_contact: str


@pytest.fixture(scope="module")
async def stub(sales: SalesUnderTest) -> AsyncIterator[Stub]:
    async with appointment_stub(sales) as opened:
        yield opened


@pytest.fixture(scope="module")
async def world(sales: SalesUnderTest, stub: Stub) -> World:
    rep = (await set_calendar(stub, buffer_minutes=15)).owner_id
    holiday_rep = (await set_calendar(stub, holiday_country="DE")).owner_id
    monday = monday_ahead()
    booked = await stub.BookAppointment(booking(rep, local(monday, 10)), metadata=metadata())
    cancelled = (
        await stub.BookAppointment(booking(rep, local(monday, 15)), metadata=metadata())
    ).appointment
    cancelled = (
        await stub.CancelAppointment(
            apb.CancelAppointmentRequest(id=cancelled.id), metadata=metadata()
        )
    ).appointment
    other = metadata(OTHER_TENANT)
    other_rep = (await set_calendar(stub, tenant=OTHER_TENANT)).owner_id
    other_booked = await stub.BookAppointment(booking(other_rep, local(monday, 9)), metadata=other)
    pipeline = await create_pipeline(sales, tenant=OTHER_TENANT)
    opportunity = await create_opportunity(sales, pipeline.id, tenant=OTHER_TENANT)
    contact = (
        await sales.contacts.CreateContact(
            cpb.CreateContactRequest(contact=cpb.Contact(given_name="Elsewhere")), metadata=other
        )
    ).contact
    return World(
        rep,
        holiday_rep,
        monday,
        booked.appointment,
        cancelled,
        other_rep,
        other_booked.appointment,
        other_booked.created_lead,
        opportunity,
        contact.id,
    )


async def _counts(sales: SalesUnderTest) -> dict[str, int]:
    db = sales.mongo.db
    return {name: await db[name].count_documents({}) for name in COLLECTIONS}


@pytest.fixture
async def unchanged(sales: SalesUnderTest, world: World) -> AsyncIterator[None]:
    """Asserts that the test left every collection, the outbox included, as it found it (the
    relay is paused meanwhile)."""
    relay = sales.service.parts.extra["relay"]
    await relay.stop()
    try:
        before = await _counts(sales)
        yield
        assert await _counts(sales) == before
    finally:
        relay.start()


async def _invalid(call: object) -> dict[str, str]:
    return violations(await refused(call, INVALID))


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(
    ("hour", "day_offset", "why"),
    [
        (18, 0, "after hours"),
        (8, 0, "before hours"),
        (10, 5, "a Saturday"),
        (16, 0, "runs past 17:00"),
    ],
)
async def test_a_booking_outside_the_calendar_is_invalid_on_start_time(
    stub: Stub, world: World, hour: int, day_offset: int, why: str
) -> None:
    start = local(
        world.monday + timedelta(days=day_offset), hour, 45 if why.startswith("runs") else 0
    )
    found = await _invalid(stub.BookAppointment(booking(world.rep, start), metadata=metadata()))
    assert "working hours" in found["start_time"], why


@pytest.mark.usefixtures("unchanged")
async def test_no_booking_and_no_slot_on_a_public_holiday(stub: Stub, world: World) -> None:
    holiday = _next_weekday_holiday()
    found = await _invalid(
        stub.BookAppointment(booking(world.holiday_rep, local(holiday, 10)), metadata=metadata())
    )
    assert "working hours" in found["start_time"]
    slots = await stub.FindFreeSlots(
        slots_request(local(holiday, 0), local(holiday, 23, 55), rep_id=world.holiday_rep),
        metadata=metadata(),
    )
    assert list(slots.slots) == []


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(
    ("hour", "minute", "minutes"),
    [(10, 0, 30), (10, 15, 30), (9, 30, 30), (10, 30, 30), (9, 0, 120)],
)
async def test_an_overlapping_booking_is_slot_taken_and_writes_nothing(
    stub: Stub, world: World, hour: int, minute: int, minutes: int
) -> None:
    # 10:00-10:30 is booked with a 15-minute buffer: 10:30 falls in the buffer, 09:30 would
    # run its own buffer into 10:00.
    error = await refused(
        stub.BookAppointment(
            booking(world.rep, local(world.monday, hour, minute), minutes), metadata=metadata()
        ),
        PRECONDITION,
    )
    assert precondition_types(error) == {"SLOT_TAKEN"}
    assert "not free" in (error.details() or "")


@pytest.mark.usefixtures("unchanged")
async def test_unknown_time_zones_are_invalid(stub: Stub, world: World) -> None:
    week = (local(world.monday, 0), local(world.monday, 0) + timedelta(days=5))
    for zone in ("Mars/Olympus_Mons", "../etc/passwd", "Europe/berlin "):
        found = await _invalid(
            stub.FindFreeSlots(
                slots_request(*week, rep_id=world.rep, zone=zone), metadata=metadata()
            )
        )
        assert "customer_time_zone" in found
        found = await _invalid(
            stub.BookAppointment(
                booking(world.rep, local(world.monday, 11), zone=zone), metadata=metadata()
            )
        )
        assert "customer_time_zone" in found


@pytest.mark.usefixtures("unchanged")
async def test_bad_booking_fields_are_each_named(stub: Stub, world: World) -> None:
    yesterday = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(days=1)
    past = yesterday - timedelta(minutes=yesterday.minute % 5)
    cases: list[tuple[apb.BookAppointmentRequest, set[str]]] = [
        (booking(world.rep, local(world.monday, 11, 7)), {"start_time", "end_time"}),
        (booking(world.rep, past), {"start_time"}),
        (booking(world.rep, local(world.monday, 11), 0), {"end_time"}),
        (booking(world.rep, local(world.monday, 9), 9 * 60), {"end_time"}),
        (
            booking(world.rep, local(world.monday, 11), name="", customer_email=""),
            {"contact_id"},
        ),
        (booking("", local(world.monday, 11)), {"rep_id"}),
        (
            booking(world.rep, local(world.monday, 11), customer_email="no-at-sign"),
            {"customer_email"},
        ),
    ]
    for request, fields in cases:
        found = await _invalid(stub.BookAppointment(request, metadata=metadata()))
        assert set(found) >= fields, (request, found)


@pytest.mark.usefixtures("unchanged")
async def test_bad_slot_searches_are_each_named(stub: Stub, world: World) -> None:
    start = local(world.monday, 0)
    cases: list[tuple[apb.FindFreeSlotsRequest, str]] = [
        (slots_request(start, start - timedelta(hours=1), rep_id=world.rep), "range_end"),
        (slots_request(start, start + timedelta(days=63), rep_id=world.rep), "range_end"),
        (
            slots_request(start, start + timedelta(days=1), rep_id=world.rep, minutes=7),
            "slot_minutes",
        ),
        (slots_request(start, start + timedelta(days=1), rep_id=world.rep, step=3), "step_minutes"),
        (slots_request(start, start + timedelta(days=1)), "rep_id"),
        (slots_request(start, start + timedelta(days=1), rep_id=world.rep, team_id="t"), "rep_id"),
    ]
    for request, field in cases:
        found = await _invalid(stub.FindFreeSlots(request, metadata=metadata()))
        assert field in found, (request, found)


@pytest.mark.usefixtures("unchanged")
async def test_bad_calendars_name_every_field(stub: Stub) -> None:
    request = apb.SetWorkCalendarRequest(
        calendar=apb.WorkCalendar(
            owner_kind=apb.CALENDAR_OWNER_KIND_REP,
            owner_id="rep-bad",
            time_zone="Europe/Atlantis",
            working_hours=[
                apb.WorkingHours(weekday=1, start_minute=540, end_minute=720),
                apb.WorkingHours(weekday=1, start_minute=600, end_minute=800),
                apb.WorkingHours(weekday=2, start_minute=543, end_minute=600),
            ],
            holidays=["2026-02-30"],
            holiday_country="ZZ",
            buffer_minutes=7,
            member_rep_ids=["someone"],
        )
    )
    found = await _invalid(stub.SetWorkCalendar(request, metadata=metadata()))
    assert set(found) >= {
        "calendar.time_zone",
        "calendar.working_hours[1]",
        "calendar.working_hours[2].start_minute",
        "calendar.holidays[0]",
        "calendar.holiday_country",
        "calendar.buffer_minutes",
        "calendar.member_rep_ids",
    }, found
    assert found["calendar.working_hours[1]"].startswith("overlaps calendar.working_hours[0]")
    team = apb.SetWorkCalendarRequest(
        calendar=apb.WorkCalendar(
            owner_kind=apb.CALENDAR_OWNER_KIND_TEAM,
            owner_id="team-bad",
            time_zone="Europe/Berlin",
            working_hours=office_hours(),
        )
    )
    assert "calendar.member_rep_ids" in await _invalid(
        stub.SetWorkCalendar(team, metadata=metadata())
    )


@pytest.mark.usefixtures("unchanged")
async def test_illegal_transitions_and_stale_versions_are_failed_preconditions(
    stub: Stub, world: World
) -> None:
    error = await refused(
        stub.ConfirmAppointment(
            apb.ConfirmAppointmentRequest(id=world.cancelled.id), metadata=metadata()
        ),
        PRECONDITION,
    )
    assert precondition_types(error) == {"ILLEGAL_APPOINTMENT_TRANSITION"}
    error = await refused(
        stub.RescheduleAppointment(
            apb.RescheduleAppointmentRequest(
                id=world.cancelled.id,
                start_time=stamp(local(world.monday, 16)),
                end_time=stamp(local(world.monday, 16, 30)),
            ),
            metadata=metadata(),
        ),
        PRECONDITION,
    )
    assert precondition_types(error) == {"ILLEGAL_APPOINTMENT_TRANSITION"}
    error = await refused(
        stub.CancelAppointment(
            apb.CancelAppointmentRequest(id=world.booked.id, expected_version=7),
            metadata=metadata(),
        ),
        PRECONDITION,
    )
    assert precondition_types(error) == {"STALE_VERSION"}
    error = await refused(
        stub.SetWorkCalendar(
            apb.SetWorkCalendarRequest(
                calendar=apb.WorkCalendar(
                    owner_kind=apb.CALENDAR_OWNER_KIND_REP,
                    owner_id=world.rep,
                    time_zone="Europe/Berlin",
                    working_hours=office_hours(),
                ),
                expected_version=9,
            ),
            metadata=metadata(),
        ),
        PRECONDITION,
    )
    assert precondition_types(error) == {"STALE_VERSION"}


@pytest.mark.usefixtures("unchanged")
async def test_a_reschedule_onto_a_taken_or_closed_slot_changes_nothing(
    stub: Stub, world: World
) -> None:
    other = (
        await stub.GetAppointment(
            apb.GetAppointmentRequest(id=world.booked.id), metadata=metadata()
        )
    ).appointment
    error = await refused(
        stub.RescheduleAppointment(
            apb.RescheduleAppointmentRequest(
                id=world.booked.id,
                start_time=stamp(local(world.monday, 20)),
                end_time=stamp(local(world.monday, 20, 30)),
            ),
            metadata=metadata(),
        ),
        INVALID,
    )
    assert "start_time" in violations(error)
    after = (
        await stub.GetAppointment(
            apb.GetAppointmentRequest(id=world.booked.id), metadata=metadata()
        )
    ).appointment
    assert after == other


@pytest.mark.usefixtures("unchanged")
async def test_another_tenants_ids_are_not_found(stub: Stub, world: World) -> None:
    appointment_id = world.other_tenant_appointment.id
    calls = [
        stub.GetAppointment(apb.GetAppointmentRequest(id=appointment_id), metadata=metadata()),
        stub.ConfirmAppointment(
            apb.ConfirmAppointmentRequest(id=appointment_id), metadata=metadata()
        ),
        stub.CancelAppointment(
            apb.CancelAppointmentRequest(id=appointment_id), metadata=metadata()
        ),
        stub.RescheduleAppointment(
            apb.RescheduleAppointmentRequest(
                id=appointment_id,
                start_time=stamp(local(world.monday, 11)),
                end_time=stamp(local(world.monday, 11, 30)),
            ),
            metadata=metadata(),
        ),
        stub.GetAppointmentCalendarFile(
            apb.GetAppointmentCalendarFileRequest(id=appointment_id), metadata=metadata()
        ),
        stub.GetWorkCalendar(
            apb.GetWorkCalendarRequest(
                owner_kind=apb.CALENDAR_OWNER_KIND_REP, owner_id=world.other_tenant_rep
            ),
            metadata=metadata(),
        ),
        stub.FindFreeSlots(
            slots_request(
                local(world.monday, 0), local(world.monday, 23), rep_id=world.other_tenant_rep
            ),
            metadata=metadata(),
        ),
        stub.BookAppointment(
            booking(world.other_tenant_rep, local(world.monday, 11)), metadata=metadata()
        ),
        stub.BookAppointment(
            booking(world.rep, local(world.monday, 11), lead_id=world.other_tenant_lead.id),
            metadata=metadata(),
        ),
        stub.BookAppointment(
            booking(
                world.rep,
                local(world.monday, 11),
                opportunity_id=world.other_tenant_opportunity.id,
            ),
            metadata=metadata(),
        ),
        stub.BookAppointment(
            booking(world.rep, local(world.monday, 11), contact_id=world.other_tenant_contact),
            metadata=metadata(),
        ),
    ]
    for call in calls:
        await refused(call, NOT_FOUND)
