"""Business calendars for the business clock, shared by every partition of a process.

Calendar events are keyed by calendar id, so they arrive on whichever partition that id hashes
to, while the tickets using the calendar are on others — possibly in another process. Every
partition engine therefore registers with its process's :class:`CalendarHub`; a calendar version
seen anywhere (an event, or the database where a partition stored it) is announced to all
engines *before* it becomes visible, so each can remember what its waiting tickets contributed
without it. Engines tell the hub which versions they wait for (:meth:`CalendarHub.wanted`), so
the process can look for them in the database, where other processes' partitions store them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any, Protocol

from crm_calendar.business_calendar import BusinessCalendar, OpeningInterval
from crm_metrics.domain.facts import CalendarDirectory

CalendarKey = tuple[str, str, int]
"""(tenant, calendar id, version)."""


class CalendarListener(Protocol):
    """What the hub needs of a partition engine."""

    def before_calendar(self, tenant: str, calendar: BusinessCalendar) -> None:
        """The calendar version is about to become visible."""

    def waiting_for(self) -> Iterable[CalendarKey]:
        """The calendar versions some of the engine's tickets wait for."""


class CalendarHub:
    """The calendar directory of a process, and the engines to tell about new versions."""

    def __init__(self, directory: CalendarDirectory | None = None) -> None:
        self.directory = directory or CalendarDirectory()
        self.engines: set[CalendarListener] = set()

    def add(self, tenant: str, calendar: BusinessCalendar) -> bool:
        """Make a calendar version visible; False if it already was."""
        if self.directory.get(tenant, calendar.calendar_id, calendar.version) is not None:
            return False
        for engine in self.engines:
            engine.before_calendar(tenant, calendar)
        self.directory.put(tenant, calendar)
        return True

    def wanted(self) -> set[CalendarKey]:
        """The versions some engine's tickets wait for that the process does not know."""
        keys = {key for engine in self.engines for key in engine.waiting_for()}
        return {key for key in keys if self.directory.get(*key) is None}


def calendar_to_doc(calendar: BusinessCalendar) -> dict[str, Any]:
    """A BSON-friendly document of a calendar version."""
    return {
        "calendar_id": calendar.calendar_id,
        "version": calendar.version,
        "timezone": calendar.timezone,
        "intervals": [[i.weekday, i.start_minute, i.end_minute] for i in calendar.intervals],
        "holidays": sorted(day.isoformat() for day in calendar.holidays),
        "holiday_country": calendar.holiday_country,
        "holiday_subdivision": calendar.holiday_subdivision,
    }


def calendar_from_doc(doc: dict[str, Any]) -> BusinessCalendar:
    """The inverse of :func:`calendar_to_doc`."""
    return BusinessCalendar.create(
        calendar_id=doc["calendar_id"],
        version=doc["version"],
        timezone=doc["timezone"],
        intervals=[OpeningInterval(w, s, e) for w, s, e in doc["intervals"]],
        holidays=[date.fromisoformat(text) for text in doc["holidays"]],
        holiday_country=doc.get("holiday_country"),
        holiday_subdivision=doc.get("holiday_subdivision"),
    )
