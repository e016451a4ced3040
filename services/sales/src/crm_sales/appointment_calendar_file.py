"""The iCalendar (RFC 5545) file of an appointment, made with ``icalendar`` (a maintained
library), as an iTIP (RFC 5546) message a calendar program can import.

One ``VCALENDAR`` with ``METHOD:REQUEST`` (or ``METHOD:CANCEL`` once cancelled) and one
``VEVENT``: ``UID`` ``appointment-<id>@crm-sales`` (stable for the appointment's life, so a
calendar program updates its copy instead of adding one), ``SEQUENCE`` (0 when booked, +1 per
reschedule and on cancel), ``DTSTART``/``DTEND`` in UTC, ``DTSTAMP`` = the appointment's last
change (one version always renders to the same bytes), ``STATUS`` TENTATIVE (booked), CONFIRMED or
CANCELLED, the rep as ``ORGANIZER`` (``urn:crm:rep:<id>``: reps have no address here) and the
customer as ``ATTENDEE`` (``mailto:`` the e-mail address, else ``tel:`` the phone number).
"""

from __future__ import annotations

from urllib.parse import quote

from icalendar import Calendar, Event, vCalAddress, vText

from crm_sales.domain.appointments import Appointment, AppointmentStatus

PRODUCT_ID = "-//CRM//Sales appointments//EN"

_STATUS = {
    AppointmentStatus.BOOKED: "TENTATIVE",
    AppointmentStatus.CONFIRMED: "CONFIRMED",
    AppointmentStatus.CANCELLED: "CANCELLED",
}


def method(appointment: Appointment) -> str:
    """The iTIP method: CANCEL once cancelled, else REQUEST."""
    return "CANCEL" if appointment.status is AppointmentStatus.CANCELLED else "REQUEST"


def content_type(appointment: Appointment) -> str:
    """The file's media type, with its method (RFC 5545 section 8.1)."""
    return f"text/calendar; charset=utf-8; method={method(appointment)}"


def file_name(appointment: Appointment) -> str:
    """``appointment-<id>.ics``."""
    return f"appointment-{appointment.id}.ics"


def uid(appointment: Appointment) -> str:
    """The event's UID: the same for every version of one appointment."""
    return f"appointment-{appointment.id}@crm-sales"


def render_ics(appointment: Appointment) -> bytes:
    """The appointment as an iCalendar file (UTF-8, CRLF line ends, folded lines)."""
    calendar = Calendar()
    calendar.add("prodid", PRODUCT_ID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", method(appointment))
    event = Event()
    event.add("uid", uid(appointment))
    event.add("dtstamp", appointment.update_time)
    event.add("created", appointment.create_time)
    event.add("last-modified", appointment.update_time)
    event.add("dtstart", appointment.start)
    event.add("dtend", appointment.end)
    event.add("sequence", appointment.sequence)
    event.add("status", _STATUS[appointment.status])
    event.add("summary", appointment.subject or "Appointment")
    organizer = vCalAddress(f"urn:crm:rep:{quote(appointment.rep_id, safe='@.:-_')}")
    organizer.params["cn"] = vText(appointment.rep_id)
    event.add("organizer", organizer)
    attendee = _attendee(appointment)
    if attendee is not None:
        event.add("attendee", attendee)
    if appointment.cancel_reason:
        event.add("comment", appointment.cancel_reason)
    calendar.add_component(event)
    content: bytes = calendar.to_ical()
    return content


def _attendee(appointment: Appointment) -> vCalAddress | None:
    if appointment.customer_email:
        address = vCalAddress(f"mailto:{appointment.customer_email}")
    elif appointment.customer_phone:
        address = vCalAddress(f"tel:{quote(appointment.customer_phone, safe='+-')}")
    else:
        return None
    if appointment.customer_name:
        address.params["cn"] = vText(appointment.customer_name)
    address.params["role"] = vText("REQ-PARTICIPANT")
    accepted = appointment.status is AppointmentStatus.CONFIRMED
    address.params["partstat"] = vText("ACCEPTED" if accepted else "NEEDS-ACTION")
    return address
