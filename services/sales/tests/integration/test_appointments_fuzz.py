"""Property: random requests to every writing RPC of AppointmentService (and its reads) never
come back as UNKNOWN or INTERNAL, whether they name existing reps, teams and appointments or
not, with times anywhere a Timestamp can be."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

import grpc
import pytest
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm.sales.v1 import appointments_pb2 as apb
from crm.sales.v1 import appointments_pb2_grpc
from crm_testing.appointments import (
    appointment_stub,
    booking,
    local,
    monday_ahead,
    set_calendar,
    stamp,
)
from crm_testing.sales import SalesUnderTest, metadata, unique_id

if TYPE_CHECKING:
    Stub = appointments_pb2_grpc.AppointmentServiceAsyncStub

TENANT = "fuzz"


@dataclass
class Targets:
    """Reps, teams and appointments of the fuzz tenant that random requests may name."""

    reps: list[str]
    teams: list[str]
    appointment_ids: list[str]
    marks: list[Timestamp]
    """Future 5-minute marks inside and outside the reps' hours."""


@pytest.fixture(scope="module")
async def stub(sales: SalesUnderTest) -> AsyncIterator[Stub]:
    async with appointment_stub(sales) as opened:
        yield opened


@pytest.fixture(scope="module")
async def targets(stub: Stub) -> Targets:
    rep = (await set_calendar(stub, tenant=TENANT, buffer_minutes=10)).owner_id
    other = (await set_calendar(stub, tenant=TENANT, holiday_country="DE")).owner_id
    team = (
        await set_calendar(
            stub,
            unique_id("team"),
            tenant=TENANT,
            kind=apb.CALENDAR_OWNER_KIND_TEAM,
            members=[rep, other, "nobody"],
        )
    ).owner_id
    monday = monday_ahead()
    booked = await stub.BookAppointment(booking(rep, local(monday, 10)), metadata=metadata(TENANT))
    cancelled = await stub.BookAppointment(
        booking(other, local(monday, 11)), metadata=metadata(TENANT)
    )
    await stub.CancelAppointment(
        apb.CancelAppointmentRequest(id=cancelled.appointment.id), metadata=metadata(TENANT)
    )
    marks = [stamp(local(monday, 0) + timedelta(minutes=5 * k)) for k in range(0, 7 * 288, 7)]
    return Targets(
        [rep, other, "nobody"],
        [team],
        [booked.appointment.id, cancelled.appointment.id],
        marks,
    )


_text = st.text(max_size=80)
_version = st.integers(-1, 4)
_enum = st.integers(-2, 5)
_zone = st.sampled_from(
    ["Europe/Berlin", "America/New_York", "UTC", "Mars/Base", "", "../x", "Etc/GMT+14", "EST5EDT"]
) | st.text(max_size=70)
_stamp = st.builds(
    Timestamp,
    seconds=st.integers(-62135596800, 253402300799),
    nanos=st.integers(0, 999_999_999),
)
_minutes = st.integers(-10, 1500)
_hours = st.builds(
    apb.WorkingHours, weekday=st.integers(-1, 8), start_minute=_minutes, end_minute=_minutes
)
_day = st.sampled_from(["2026-12-25", "2026-02-30", "2026-1-1", ""]) | st.text(max_size=12)


def _requests(ids: Targets) -> st.SearchStrategy[Message]:
    rep = st.sampled_from(ids.reps) | _text
    team = st.sampled_from(ids.teams) | st.just("") | _text
    appointment = st.sampled_from(ids.appointment_ids) | _text
    when = st.sampled_from(ids.marks) | _stamp
    calendar = st.builds(
        apb.WorkCalendar,
        owner_kind=_enum,
        owner_id=rep | team,
        time_zone=_zone,
        working_hours=st.lists(_hours, max_size=5),
        holidays=st.lists(_day, max_size=3),
        holiday_country=st.sampled_from(["DE", "US", "ZZ", "de", ""]) | st.text(max_size=8),
        holiday_subdivision=st.sampled_from(["BY", "NY", "XX", ""]) | st.text(max_size=16),
        buffer_minutes=st.integers(-5, 300),
        member_rep_ids=st.lists(rep, max_size=4),
    )
    near_valid_booking = st.builds(
        apb.BookAppointmentRequest,
        rep_id=st.sampled_from(ids.reps) | st.just(""),
        team_id=st.sampled_from([*ids.teams, ""]),
        start_time=st.sampled_from(ids.marks),
        end_time=st.sampled_from(ids.marks),
        customer_name=st.text(min_size=1, max_size=200),
        customer_email=st.sampled_from(["x@example.com", "", "@", "a@b"]) | st.text(max_size=30),
        customer_phone=st.text(max_size=20),
        customer_time_zone=st.sampled_from(["Europe/Berlin", "Asia/Kathmandu", "Nowhere/Zone"]),
        subject=st.text(max_size=200),
        contact_id=st.just("") | _text,
        lead_id=st.just("") | _text,
        opportunity_id=st.just("") | _text,
        request_id=st.just("") | _text,
    )
    return st.one_of(
        st.builds(apb.SetWorkCalendarRequest, calendar=calendar, expected_version=_version),
        st.builds(apb.GetWorkCalendarRequest, owner_kind=_enum, owner_id=rep | team),
        st.builds(
            apb.FindFreeSlotsRequest,
            rep_id=rep | st.just(""),
            team_id=team,
            range_start=when,
            range_end=when,
            slot_minutes=st.integers(-5, 500),
            step_minutes=st.integers(-5, 500),
            customer_time_zone=_zone,
            page_size=st.integers(-5, 600),
            page_token=_text,
        ),
        near_valid_booking,
        st.builds(
            apb.BookAppointmentRequest,
            rep_id=rep,
            team_id=team,
            start_time=when,
            end_time=when,
            customer_name=_text,
            customer_email=_text,
            customer_time_zone=_zone,
            contact_id=_text,
            lead_id=_text,
            opportunity_id=_text,
            request_id=_text,
        ),
        st.builds(apb.GetAppointmentRequest, id=appointment),
        st.builds(
            apb.ListAppointmentsRequest,
            page_size=st.integers(-5, 600),
            page_token=_text,
            rep_id=rep | st.just(""),
            status=_enum,
        ),
        st.builds(apb.ConfirmAppointmentRequest, id=appointment, expected_version=_version),
        st.builds(
            apb.RescheduleAppointmentRequest,
            id=appointment,
            start_time=when,
            end_time=when,
            expected_version=_version,
        ),
        st.builds(
            apb.CancelAppointmentRequest, id=appointment, reason=_text, expected_version=_version
        ),
        st.builds(apb.GetAppointmentCalendarFileRequest, id=appointment),
    )


def _method(request: Message) -> str:
    return type(request).__name__.removesuffix("Request")


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_random_appointment_requests_never_yield_unknown_or_internal(
    stub: Stub, targets: Targets, data: st.DataObject
) -> None:
    request = data.draw(_requests(targets))
    method = getattr(stub, _method(request))
    try:
        await method(request, metadata=metadata(TENANT), timeout=10)
    except grpc.aio.AioRpcError as error:
        assert error.code() not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL), (
            error.code(),
            error.details(),
        )
