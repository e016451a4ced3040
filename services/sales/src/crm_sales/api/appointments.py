"""``crm.sales.v1.AppointmentService``: requests in (converted here), use cases
(:mod:`crm_sales.use_cases.appointments`), responses out.

Requests arrive already validated against the proto rules, with the caller's tenant and actor in
the call context; domain errors become gRPC statuses in the platform's interceptor.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from crm.sales.v1 import appointments_pb2 as apb
from crm.sales.v1 import appointments_pb2_grpc
from crm_calendar import OpeningInterval
from crm_platform.context import current_call
from crm_platform.errors import InvalidArgument
from crm_platform.idempotency import IdempotentRequest
from crm_sales import appointment_calendar_file, contract
from crm_sales.appointments_contract import (
    OWNER_KINDS,
    STATUSES,
    appointment_to_pb,
    calendar_to_pb,
    slot_to_pb,
)
from crm_sales.domain._checks import Violations
from crm_sales.domain.appointments import BookingInput, SlotQuery, WorkCalendarInput
from crm_sales.use_cases._common import now_ms
from crm_sales.use_cases.appointments import OPERATION as BOOKINGS
from crm_sales.use_cases.appointments import Appointments

Context = Any  # grpc.aio.ServicerContext; the handlers do not use it

_FAR_PAST = datetime(1, 1, 1, tzinfo=UTC)


def instant(stamp: Timestamp, field: str, violations: Violations) -> datetime:
    """A timestamp as an aware UTC datetime; a violation (and a placeholder far in the past)
    for one outside what ``datetime`` can hold."""
    try:
        return stamp.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        violations.add(field, "is not a valid timestamp")
        return _FAR_PAST


def calendar_input(message: apb.WorkCalendar) -> WorkCalendarInput:
    """The caller-settable fields of a work calendar (ISO weekdays 1-7 become 0-6)."""
    return WorkCalendarInput(
        owner_kind=OWNER_KINDS.get(message.owner_kind),
        owner_id=message.owner_id,
        time_zone=message.time_zone,
        working_hours=tuple(
            OpeningInterval(h.weekday - 1, h.start_minute, h.end_minute)
            for h in message.working_hours
        ),
        holidays=tuple(message.holidays),
        holiday_country=message.holiday_country,
        holiday_subdivision=message.holiday_subdivision,
        buffer_minutes=message.buffer_minutes,
        member_rep_ids=tuple(message.member_rep_ids),
    )


def booking_input(request: apb.BookAppointmentRequest) -> BookingInput:
    """What a booking asks for (``InvalidArgument`` for unreadable times)."""
    violations = Violations()
    start = instant(request.start_time, "start_time", violations)
    end = instant(request.end_time, "end_time", violations)
    violations.raise_if_any()
    return BookingInput(
        rep_id=request.rep_id,
        team_id=request.team_id,
        start=start,
        end=end,
        contact_id=request.contact_id,
        lead_id=request.lead_id,
        opportunity_id=request.opportunity_id,
        customer_name=request.customer_name,
        customer_email=request.customer_email,
        customer_phone=request.customer_phone,
        customer_time_zone=request.customer_time_zone,
        subject=request.subject,
    )


class AppointmentService(appointments_pb2_grpc.AppointmentServiceServicer):
    """The handlers: a request becomes domain inputs and one use case call, its result the
    response."""

    def __init__(self, appointments: Appointments) -> None:
        self.appointments = appointments

    async def SetWorkCalendar(
        self, request: apb.SetWorkCalendarRequest, context: Context
    ) -> apb.SetWorkCalendarResponse:
        saved = await self.appointments.set_calendar(
            current_call(), calendar_input(request.calendar), request.expected_version or None
        )
        return apb.SetWorkCalendarResponse(calendar=calendar_to_pb(saved))

    async def GetWorkCalendar(
        self, request: apb.GetWorkCalendarRequest, context: Context
    ) -> apb.GetWorkCalendarResponse:
        kind = OWNER_KINDS.get(request.owner_kind)
        if kind is None:
            raise InvalidArgument.single("owner_kind", "is required (rep or team)")
        found = await self.appointments.get_calendar(
            current_call().tenant_id, kind, request.owner_id
        )
        return apb.GetWorkCalendarResponse(calendar=calendar_to_pb(found))

    async def FindFreeSlots(
        self, request: apb.FindFreeSlotsRequest, context: Context
    ) -> apb.FindFreeSlotsResponse:
        violations = Violations()
        range_start = instant(request.range_start, "range_start", violations)
        range_end = instant(request.range_end, "range_end", violations)
        violations.raise_if_any()
        query = SlotQuery.of(
            range_start=range_start,
            range_end=range_end,
            slot_minutes=request.slot_minutes,
            step_minutes=request.step_minutes,
            customer_time_zone=request.customer_time_zone,
            now=now_ms(self.appointments.clock),
        )
        slots, token = await self.appointments.find_slots(
            current_call().tenant_id,
            request.rep_id,
            request.team_id,
            query,
            request.page_size,
            request.page_token,
        )
        team_id = request.team_id.strip()
        zone = request.customer_time_zone
        return apb.FindFreeSlotsResponse(
            slots=[slot_to_pb(s, team_id, zone) for s in slots], next_page_token=token
        )

    async def BookAppointment(
        self, request: apb.BookAppointmentRequest, context: Context
    ) -> apb.BookAppointmentResponse:
        call = current_call()
        booking = await self.appointments.book(
            call,
            booking_input(request),
            IdempotentRequest.of(call.tenant_id, BOOKINGS, request.request_id, request),
        )
        response = apb.BookAppointmentResponse(appointment=appointment_to_pb(booking.appointment))
        if booking.created_lead is not None:
            response.created_lead.CopyFrom(contract.lead_to_pb(booking.created_lead))
        return response

    async def GetAppointment(
        self, request: apb.GetAppointmentRequest, context: Context
    ) -> apb.GetAppointmentResponse:
        found = await self.appointments.get(current_call().tenant_id, request.id)
        return apb.GetAppointmentResponse(appointment=appointment_to_pb(found))

    async def ListAppointments(
        self, request: apb.ListAppointmentsRequest, context: Context
    ) -> apb.ListAppointmentsResponse:
        filters: dict[str, str] = {}
        if (status := STATUSES.get(request.status)) is not None:
            filters["status"] = status.value
        for name in ("rep_id", "team_id", "contact_id"):
            if value := getattr(request, name):
                filters[name] = value
        found, token = await self.appointments.list_appointments(
            current_call().tenant_id, filters, request.page_size, request.page_token
        )
        return apb.ListAppointmentsResponse(
            appointments=[appointment_to_pb(a) for a in found], next_page_token=token
        )

    async def ConfirmAppointment(
        self, request: apb.ConfirmAppointmentRequest, context: Context
    ) -> apb.ConfirmAppointmentResponse:
        saved = await self.appointments.confirm(
            current_call(), request.id, request.expected_version or None
        )
        return apb.ConfirmAppointmentResponse(appointment=appointment_to_pb(saved))

    async def RescheduleAppointment(
        self, request: apb.RescheduleAppointmentRequest, context: Context
    ) -> apb.RescheduleAppointmentResponse:
        violations = Violations()
        start = instant(request.start_time, "start_time", violations)
        end = instant(request.end_time, "end_time", violations)
        violations.raise_if_any()
        saved = await self.appointments.reschedule(
            current_call(), request.id, start, end, request.expected_version or None
        )
        return apb.RescheduleAppointmentResponse(appointment=appointment_to_pb(saved))

    async def CancelAppointment(
        self, request: apb.CancelAppointmentRequest, context: Context
    ) -> apb.CancelAppointmentResponse:
        saved = await self.appointments.cancel(
            current_call(), request.id, request.reason, request.expected_version or None
        )
        return apb.CancelAppointmentResponse(appointment=appointment_to_pb(saved))

    async def GetAppointmentCalendarFile(
        self, request: apb.GetAppointmentCalendarFileRequest, context: Context
    ) -> apb.GetAppointmentCalendarFileResponse:
        found = await self.appointments.get(current_call().tenant_id, request.id)
        return apb.GetAppointmentCalendarFileResponse(
            content=appointment_calendar_file.render_ics(found),
            content_type=appointment_calendar_file.content_type(found),
            file_name=appointment_calendar_file.file_name(found),
        )
