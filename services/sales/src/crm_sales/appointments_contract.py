"""Appointments in their protobuf form (``crm.sales.v1`` appointments.proto): domain → protobuf
for the responses and the event payloads, and the enum mappings."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from google.protobuf.timestamp_pb2 import Timestamp

from crm.sales.v1 import appointments_pb2 as apb
from crm_sales.contract import timestamp
from crm_sales.domain.appointments import (
    Appointment,
    AppointmentStatus,
    OwnerKind,
    Slot,
    WorkCalendar,
)

OWNER_KINDS: dict[apb.CalendarOwnerKind.ValueType, OwnerKind] = {
    apb.CALENDAR_OWNER_KIND_REP: OwnerKind.REP,
    apb.CALENDAR_OWNER_KIND_TEAM: OwnerKind.TEAM,
}
STATUSES: dict[apb.AppointmentStatus.ValueType, AppointmentStatus] = {
    apb.APPOINTMENT_STATUS_BOOKED: AppointmentStatus.BOOKED,
    apb.APPOINTMENT_STATUS_CONFIRMED: AppointmentStatus.CONFIRMED,
    apb.APPOINTMENT_STATUS_CANCELLED: AppointmentStatus.CANCELLED,
}
_OWNER_KIND_PB = {kind: number for number, kind in OWNER_KINDS.items()}
_STATUS_PB = {status: number for number, status in STATUSES.items()}


def owner_kind_to_pb(kind: OwnerKind) -> apb.CalendarOwnerKind.ValueType:
    """The proto value of an owner kind."""
    return _OWNER_KIND_PB[kind]


def status_to_pb(status: AppointmentStatus) -> apb.AppointmentStatus.ValueType:
    """The proto value of a status."""
    return _STATUS_PB[status]


def local_text(at: datetime, time_zone: str) -> str:
    """``at`` as local time in ``time_zone``, ISO 8601 with its offset (for display)."""
    return at.astimezone(ZoneInfo(time_zone)).isoformat()


def calendar_to_pb(calendar: WorkCalendar) -> apb.WorkCalendar:
    """The API form of a work calendar (weekdays ISO 1-7)."""
    business = calendar.calendar
    return apb.WorkCalendar(
        owner_kind=owner_kind_to_pb(calendar.owner_kind),
        owner_id=calendar.owner_id,
        time_zone=business.timezone,
        working_hours=[
            apb.WorkingHours(
                weekday=i.weekday + 1, start_minute=i.start_minute, end_minute=i.end_minute
            )
            for i in business.intervals
        ],
        holidays=sorted(day.isoformat() for day in business.holidays),
        holiday_country=business.holiday_country or "",
        holiday_subdivision=business.holiday_subdivision or "",
        buffer_minutes=calendar.buffer_minutes,
        member_rep_ids=list(calendar.member_rep_ids),
        version=calendar.version,
        update_time=timestamp(calendar.update_time),
    )


def appointment_to_pb(a: Appointment) -> apb.Appointment:
    """The API form of an appointment."""
    return apb.Appointment(
        id=a.id,
        tenant_id=a.tenant_id,
        rep_id=a.rep_id,
        team_id=a.team_id,
        start_time=timestamp(a.start),
        end_time=timestamp(a.end),
        buffer_minutes=a.buffer_minutes,
        status=status_to_pb(a.status),
        contact_id=a.contact_id,
        lead_id=a.lead_id,
        opportunity_id=a.opportunity_id,
        customer_name=a.customer_name,
        customer_email=a.customer_email,
        customer_phone=a.customer_phone,
        customer_time_zone=a.customer_time_zone,
        subject=a.subject,
        cancel_reason=a.cancel_reason,
        sequence=a.sequence,
        version=a.version,
        create_time=timestamp(a.create_time),
        update_time=timestamp(a.update_time),
        event_key=a.event_key,
        customer_local_start=local_text(a.start, a.customer_time_zone),
        customer_local_end=local_text(a.end, a.customer_time_zone),
    )


def slot_to_pb(slot: Slot, team_id: str, time_zone: str) -> apb.Slot:
    """The API form of a free slot, shown in the customer's ``time_zone``."""
    # Slots are whole seconds (5-minute marks): a Timestamp of the POSIX seconds, without the
    # general (slower) FromDatetime.
    return apb.Slot(
        start_time=Timestamp(seconds=int(slot.start.timestamp())),
        end_time=Timestamp(seconds=int(slot.end.timestamp())),
        rep_id=slot.rep_id,
        team_id=team_id,
        customer_local_start=local_text(slot.start, time_zone),
        customer_local_end=local_text(slot.end, time_zone),
    )
