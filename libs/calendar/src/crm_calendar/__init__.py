"""Business calendars shared by the services that count business time (service desk, metrics)."""

from crm_calendar.business_calendar import BusinessCalendar, OpeningInterval

__all__ = ["BusinessCalendar", "OpeningInterval"]
