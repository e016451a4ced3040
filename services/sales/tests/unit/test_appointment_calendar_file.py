"""The .ics file of an appointment, parsed back with the icalendar library."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from icalendar import Calendar

from crm_sales.appointment_calendar_file import content_type, file_name, render_ics, uid
from crm_sales.domain.appointments import Appointment, AppointmentStatus, BookingInput

NOW = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
START = datetime(2026, 5, 4, 7, 30, tzinfo=UTC)


def _booked() -> Appointment:
    fields = BookingInput(
        rep_id="alice",
        team_id="",
        start=START,
        end=START + timedelta(minutes=45),
        customer_name="Jürgen Ünal",
        customer_email="j@example.com",
        customer_time_zone="Europe/Berlin",
        subject="Demo: CRM für 20 Plätze",
    )
    return Appointment.book(
        id="a-1",
        tenant_id="acme",
        rep_id="alice",
        fields=fields,
        lead_id="l-1",
        lead_created=True,
        buffer_minutes=15,
        event_key="l-1",
        now=NOW,
    )


def _event(content: bytes) -> tuple[Calendar, object]:
    calendar = Calendar.from_ical(content)
    events = calendar.walk("VEVENT")
    assert len(events) == 1
    return calendar, events[0]


def test_a_booked_appointment_is_a_request_with_its_times_in_utc() -> None:
    appointment = _booked()
    calendar, event = _event(render_ics(appointment))
    assert str(calendar["METHOD"]) == "REQUEST"
    assert str(calendar["VERSION"]) == "2.0"
    assert str(event["UID"]) == uid(appointment) == "appointment-a-1@crm-sales"  # type: ignore[index]
    assert event["DTSTART"].dt == START  # type: ignore[index]
    assert event["DTEND"].dt == START + timedelta(minutes=45)  # type: ignore[index]
    assert event["DTSTART"].dt.utcoffset() == timedelta(0)  # type: ignore[index]
    assert int(event["SEQUENCE"]) == 0  # type: ignore[index]
    assert str(event["STATUS"]) == "TENTATIVE"  # type: ignore[index]
    assert str(event["SUMMARY"]) == "Demo: CRM für 20 Plätze"  # type: ignore[index]
    attendee = event["ATTENDEE"]  # type: ignore[index]
    assert str(attendee) == "mailto:j@example.com"
    assert attendee.params["CN"] == "Jürgen Ünal"
    assert content_type(appointment) == "text/calendar; charset=utf-8; method=REQUEST"
    assert file_name(appointment) == "appointment-a-1.ics"


def test_rescheduling_keeps_the_uid_and_raises_the_sequence() -> None:
    first = _booked()
    moved = first.reschedule(START + timedelta(days=1), START + timedelta(days=1, hours=1), 1, NOW)
    _, event = _event(render_ics(moved))
    assert str(event["UID"]) == uid(first)  # type: ignore[index]
    assert int(event["SEQUENCE"]) == 1  # type: ignore[index]
    assert event["DTSTART"].dt == START + timedelta(days=1)  # type: ignore[index]


def test_a_cancelled_appointment_is_a_cancel_with_a_higher_sequence() -> None:
    cancelled = _booked().confirm(1, NOW).cancel("customer ill", 2, NOW)
    calendar, event = _event(render_ics(cancelled))
    assert str(calendar["METHOD"]) == "CANCEL"
    assert str(event["STATUS"]) == "CANCELLED"  # type: ignore[index]
    assert int(event["SEQUENCE"]) == 1  # type: ignore[index]
    assert content_type(cancelled).endswith("method=CANCEL")


def test_one_version_renders_to_the_same_bytes_and_a_phone_only_customer_is_a_tel_attendee() -> (
    None
):
    phone_only = replace(_booked(), customer_email="", customer_phone="+49 30 1234")
    assert render_ics(phone_only) == render_ics(phone_only)
    _, event = _event(render_ics(phone_only))
    assert str(event["ATTENDEE"]).startswith("tel:+49")  # type: ignore[index]
    assert AppointmentStatus.BOOKED is phone_only.status
