"""The events of appointments and work calendars (``crm.sales.v1``, appointments_events.proto).

Keys (documented in that file's header): an appointment's events carry its ``event_key``, chosen
at booking and kept — the contact id the booking named, else the named lead's key, else the
named opportunity's key, else the id of the lead the booking created (whose ``LeadCreated`` is
on the same key, before ``AppointmentBooked``). A work calendar's events carry ``rep:<id>`` or
``team:<id>``: a calendar is about no customer.
"""

from __future__ import annotations

from google.protobuf.message import Message

from crm.sales.v1 import appointments_events_pb2 as events
from crm_platform.context import CallContext
from crm_platform.events import Event
from crm_sales.appointments_contract import appointment_to_pb, calendar_to_pb, status_to_pb
from crm_sales.contract import timestamp
from crm_sales.domain.appointments import Appointment, WorkCalendar
from crm_sales.events import sales_event


def _appointment_event(payload: Message, appointment: Appointment, call: CallContext) -> Event:
    return sales_event(
        payload, appointment.subject_name, appointment.event_key, call, appointment.update_time
    )


def work_calendar_set(calendar: WorkCalendar, previous_version: int, call: CallContext) -> Event:
    """``WorkCalendarSet``, keyed ``rep:<id>`` / ``team:<id>``."""
    payload = events.WorkCalendarSet(
        calendar=calendar_to_pb(calendar), previous_version=previous_version
    )
    return sales_event(
        payload, f"calendars/{calendar.key}", calendar.key, call, calendar.update_time
    )


def appointment_booked(appointment: Appointment, lead_created: bool, call: CallContext) -> Event:
    """``AppointmentBooked``."""
    payload = events.AppointmentBooked(
        appointment=appointment_to_pb(appointment), lead_created=lead_created
    )
    return _appointment_event(payload, appointment, call)


def appointment_confirmed(
    appointment: Appointment, previous: Appointment, call: CallContext
) -> Event:
    """``AppointmentConfirmed``."""
    payload = events.AppointmentConfirmed(
        appointment=appointment_to_pb(appointment), previous_version=previous.version
    )
    return _appointment_event(payload, appointment, call)


def appointment_rescheduled(
    appointment: Appointment, previous: Appointment, call: CallContext
) -> Event:
    """``AppointmentRescheduled``, with the times before."""
    payload = events.AppointmentRescheduled(
        appointment=appointment_to_pb(appointment),
        previous_start_time=timestamp(previous.start),
        previous_end_time=timestamp(previous.end),
        previous_version=previous.version,
    )
    return _appointment_event(payload, appointment, call)


def appointment_cancelled(
    appointment: Appointment, previous: Appointment, call: CallContext
) -> Event:
    """``AppointmentCancelled``."""
    payload = events.AppointmentCancelled(
        appointment=appointment_to_pb(appointment),
        previous_status=status_to_pb(previous.status),
        previous_version=previous.version,
    )
    return _appointment_event(payload, appointment, call)
