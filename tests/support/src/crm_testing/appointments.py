"""Shared pieces of the appointment tests: a stub onto the sales service's AppointmentService,
work calendars, and future local times to book."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import grpc
import holidays as holidays_lib
from google.protobuf.timestamp_pb2 import Timestamp

from crm.sales.v1 import appointments_pb2 as apb
from crm.sales.v1 import appointments_pb2_grpc
from crm_testing.sales import TENANT, SalesUnderTest, metadata, unique_id

BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"


@asynccontextmanager
async def appointment_stub(
    sales: SalesUnderTest,
) -> AsyncIterator[appointments_pb2_grpc.AppointmentServiceAsyncStub]:
    """A stub onto the running sales service's AppointmentService."""
    async with grpc.aio.insecure_channel(sales.address) as channel:
        yield appointments_pb2_grpc.AppointmentServiceStub(channel)


def office_hours(
    days: Sequence[int] = (1, 2, 3, 4, 5), start: int = 9 * 60, end: int = 17 * 60
) -> list[apb.WorkingHours]:
    """Working hours on ISO weekdays ``days`` (default Monday to Friday, 09:00-17:00)."""
    return [apb.WorkingHours(weekday=d, start_minute=start, end_minute=end) for d in days]


async def set_calendar(
    stub: appointments_pb2_grpc.AppointmentServiceAsyncStub,
    owner_id: str | None = None,
    *,
    kind: apb.CalendarOwnerKind.ValueType = apb.CALENDAR_OWNER_KIND_REP,
    tenant: str = TENANT,
    time_zone: str = BERLIN,
    hours: Sequence[apb.WorkingHours] | None = None,
    buffer_minutes: int = 0,
    members: Sequence[str] = (),
    holiday_country: str = "",
    holidays: Sequence[str] = (),
) -> apb.WorkCalendar:
    """Set a rep's (or team's) calendar; a fresh rep id unless ``owner_id``."""
    reply = await stub.SetWorkCalendar(
        apb.SetWorkCalendarRequest(
            calendar=apb.WorkCalendar(
                owner_kind=kind,
                owner_id=owner_id or unique_id("rep"),
                time_zone=time_zone,
                working_hours=list(hours if hours is not None else office_hours()),
                buffer_minutes=buffer_minutes,
                member_rep_ids=list(members),
                holiday_country=holiday_country,
                holidays=list(holidays),
            )
        ),
        metadata=metadata(tenant),
    )
    calendar: apb.WorkCalendar = reply.calendar
    return calendar


def monday_ahead(weeks: int = 1, today: date | None = None) -> date:
    """A Monday at least ``weeks`` weeks from ``today`` that is not a public holiday in Germany
    or the US (the tests set calendars without holidays, but keep clear of them anyway)."""
    day = (today or datetime.now(UTC).date()) + timedelta(weeks=weeks)
    day += timedelta(days=(7 - day.weekday()) % 7)
    closed = holidays_lib.country_holidays("DE", years=day.year) | holidays_lib.country_holidays(
        "US", years=day.year
    )
    while day in closed or (day + timedelta(days=1)) in closed:
        day += timedelta(weeks=1)
    return day


def local(day: date, hour: int, minute: int = 0, zone: str = BERLIN) -> datetime:
    """``hour:minute`` on ``day`` in ``zone``, as UTC."""
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=ZoneInfo(zone)).astimezone(
        UTC
    )


def stamp(at: datetime) -> Timestamp:
    """A protobuf timestamp."""
    value = Timestamp()
    value.FromDatetime(at)
    return value


def booking(
    rep_id: str,
    start: datetime,
    minutes: int = 30,
    *,
    team_id: str = "",
    name: str = "Dana Prospect",
    email: str = "",
    zone: str = NEW_YORK,
    **fields: object,
) -> apb.BookAppointmentRequest:
    """A booking by an unknown person (name + e-mail) unless ``fields`` say otherwise."""
    values: dict[str, object] = {
        "rep_id": rep_id,
        "team_id": team_id,
        "start_time": stamp(start),
        "end_time": stamp(start + timedelta(minutes=minutes)),
        "customer_name": name,
        "customer_email": email or f"{unique_id('dana')}@example.com",
        "customer_time_zone": zone,
    }
    values.update(fields)
    return apb.BookAppointmentRequest(**values)  # type: ignore[arg-type]


def slots_request(
    start: datetime,
    end: datetime,
    *,
    rep_id: str = "",
    team_id: str = "",
    minutes: int = 30,
    step: int = 0,
    zone: str = NEW_YORK,
    page_size: int = 500,
) -> apb.FindFreeSlotsRequest:
    """A FindFreeSlots request."""
    return apb.FindFreeSlotsRequest(
        rep_id=rep_id,
        team_id=team_id,
        range_start=stamp(start),
        range_end=stamp(end),
        slot_minutes=minutes,
        step_minutes=step,
        customer_time_zone=zone,
        page_size=page_size,
    )


def starts(slots: Sequence[apb.Slot]) -> list[datetime]:
    """The slots' starts, as UTC datetimes."""
    return [s.start_time.ToDatetime(tzinfo=UTC) for s in slots]
