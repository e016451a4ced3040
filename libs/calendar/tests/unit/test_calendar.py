"""Business calendars: validation, opening hours, holidays and the days clocks change."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from crm_calendar.business_calendar import (
    SEARCH_HORIZON_DAYS,
    BusinessCalendar,
    OpeningInterval,
)
from crm_platform.errors import InvalidArgument

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
MON, TUE, WED, THU, FRI, SAT, SUN = range(7)
H = 60  # minutes per hour, for readable intervals


def hours(value: float) -> timedelta:
    return timedelta(hours=value)


def weekdays(*shifts: tuple[int, int]) -> list[OpeningInterval]:
    """The same shifts (start, end minute) Monday to Friday."""
    return [OpeningInterval(day, start, end) for day in range(MON, SAT) for start, end in shifts]


def make(
    intervals: list[OpeningInterval],
    timezone: str = "Europe/Berlin",
    holidays: tuple[date, ...] = (),
    country: str | None = None,
    subdivision: str | None = None,
) -> BusinessCalendar:
    return BusinessCalendar.create(
        calendar_id="support",
        version=1,
        timezone=timezone,
        intervals=intervals,
        holidays=holidays,
        holiday_country=country,
        holiday_subdivision=subdivision,
    )


def berlin(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=BERLIN)


OFFICE = make(weekdays((9 * H, 17 * H)))
SPLIT = make(weekdays((9 * H, 12 * H), (13 * H, 17 * H)))


# --- validation ---------------------------------------------------------------------------


def test_valid_calendar_is_normalised() -> None:
    calendar = BusinessCalendar.create(
        calendar_id="c",
        version=3,
        timezone="Europe/Berlin",
        intervals=[OpeningInterval(TUE, 9 * H, 17 * H), OpeningInterval(MON, 9 * H, 17 * H)],
        holidays=[date(2026, 12, 24)],
        holiday_country="de",
        holiday_subdivision="",
    )
    assert calendar.intervals[0].weekday == MON
    assert calendar.holiday_country == "DE"
    assert calendar.holiday_subdivision is None
    assert calendar.holidays == frozenset({date(2026, 12, 24)})


def test_overlapping_intervals_are_rejected_with_every_violation() -> None:
    with pytest.raises(InvalidArgument) as raised:
        make(
            [
                OpeningInterval(MON, 9 * H, 12 * H),
                OpeningInterval(MON, 11 * H, 14 * H),  # overlaps [0]
                OpeningInterval(MON, 10 * H, 11 * H),  # inside [0]
                OpeningInterval(TUE, 9 * H, 12 * H),
                OpeningInterval(TUE, 9 * H, 12 * H),  # duplicate of [3]
                OpeningInterval(WED, 9 * H, 12 * H),
                OpeningInterval(WED, 12 * H, 17 * H),  # adjacent: fine
            ]
        )
    fields = [v.field for v in raised.value.violations]
    assert fields == ["calendar.intervals[1]", "calendar.intervals[2]", "calendar.intervals[4]"]
    assert "calendar.intervals[0]" in raised.value.violations[0].description


def test_every_kind_of_violation_is_reported_at_once() -> None:
    with pytest.raises(InvalidArgument) as raised:
        BusinessCalendar.create(
            calendar_id="c",
            version=1,
            timezone="Mars/Olympus_Mons",
            intervals=[
                OpeningInterval(7, 9 * H, 17 * H),
                OpeningInterval(MON, 1440, 1441),
                OpeningInterval(TUE, 17 * H, 9 * H),
                OpeningInterval(WED, 9 * H, 9 * H),
            ],
            holidays=[date(2026, 1, 1), datetime(2026, 1, 2, tzinfo=UTC)],
            holiday_country="XX",
        )
    assert [v.field for v in raised.value.violations] == [
        "calendar.timezone",
        "calendar.intervals[0].weekday",
        "calendar.intervals[1].start_minute",
        "calendar.intervals[1].end_minute",
        "calendar.intervals[2].end_minute",
        "calendar.intervals[3].end_minute",
        "calendar.holidays[1]",
        "calendar.holiday_country",
    ]


def test_calendar_without_intervals_is_rejected() -> None:
    with pytest.raises(InvalidArgument) as raised:
        make([])
    assert [v.field for v in raised.value.violations] == ["calendar.intervals"]


@pytest.mark.parametrize("timezone", ["", "europe/berlin", "../etc/passwd", "/etc/localtime"])
def test_unknown_or_malformed_timezone_is_rejected(timezone: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        make(weekdays((9 * H, 17 * H)), timezone=timezone)
    assert [v.field for v in raised.value.violations] == ["calendar.timezone"]


def test_unknown_subdivision_is_rejected() -> None:
    with pytest.raises(InvalidArgument) as raised:
        make(weekdays((9 * H, 17 * H)), country="DE", subdivision="XX")
    assert [v.field for v in raised.value.violations] == ["calendar.holiday_subdivision"]


def test_subdivision_without_country_is_rejected() -> None:
    with pytest.raises(InvalidArgument) as raised:
        make(weekdays((9 * H, 17 * H)), subdivision="BY")
    assert [v.field for v in raised.value.violations] == ["calendar.holiday_subdivision"]


def test_field_paths_follow_the_requested_prefix() -> None:
    with pytest.raises(InvalidArgument) as raised:
        BusinessCalendar.create(
            calendar_id="c",
            version=1,
            timezone="UTC",
            intervals=[OpeningInterval(MON, 0, 0)],
            field_path="policy.calendar",
        )
    assert raised.value.violations[0].field == "policy.calendar.intervals[0].end_minute"


def test_direct_construction_validates_too() -> None:
    with pytest.raises(InvalidArgument):
        BusinessCalendar("c", 1, "Nowhere/Land", (OpeningInterval(MON, 0, 60),), frozenset())


def test_naive_datetimes_are_rejected() -> None:
    naive = datetime(2026, 1, 5, 10)
    with pytest.raises(ValueError, match="timezone-aware"):
        OFFICE.business_time(naive, naive + hours(1))
    with pytest.raises(ValueError, match="timezone-aware"):
        OFFICE.is_open(naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        OFFICE.add_business_time(naive, hours(1))


# --- opening hours --------------------------------------------------------------------------


def test_split_shift_counts_both_intervals() -> None:
    monday = berlin(2026, 1, 5)
    assert SPLIT.business_time(monday, monday + timedelta(days=1)) == hours(7)
    assert SPLIT.business_time(berlin(2026, 1, 5, 11), berlin(2026, 1, 5, 14)) == hours(2)


def test_lunch_break_is_closed() -> None:
    assert SPLIT.is_open(berlin(2026, 1, 5, 11, 59))
    assert not SPLIT.is_open(berlin(2026, 1, 5, 12, 0))
    assert not SPLIT.is_open(berlin(2026, 1, 5, 12, 59))
    assert SPLIT.is_open(berlin(2026, 1, 5, 13, 0))


def test_interval_end_is_exclusive() -> None:
    assert OFFICE.is_open(berlin(2026, 1, 5, 16, 59, 59, 999_999))
    assert not OFFICE.is_open(berlin(2026, 1, 5, 17))


def test_weekend_is_closed() -> None:
    saturday = berlin(2026, 1, 10)
    assert OFFICE.business_time(saturday, saturday + timedelta(days=2)) == timedelta(0)


def test_week_of_office_hours_is_forty_hours() -> None:
    monday = berlin(2026, 1, 12)
    assert OFFICE.business_time(monday, monday + timedelta(days=7)) == hours(40)


def test_business_time_is_zero_for_empty_or_reversed_range() -> None:
    at = berlin(2026, 1, 5, 10)
    assert OFFICE.business_time(at, at) == timedelta(0)
    assert OFFICE.business_time(at, at - hours(1)) == timedelta(0)


def test_instants_in_other_zones_are_the_same_instants() -> None:
    start = datetime(2026, 1, 5, 8, tzinfo=UTC)  # 09:00 in Berlin
    end = datetime(2026, 1, 5, 6, tzinfo=NEW_YORK)  # 12:00 in Berlin
    assert OFFICE.business_time(start, end) == hours(3)


def test_adjacent_intervals_behave_as_one() -> None:
    joined = make(weekdays((9 * H, 12 * H), (12 * H, 17 * H)))
    monday = berlin(2026, 1, 5)
    assert list(joined.open_spans(monday, monday + timedelta(days=1))) == list(
        OFFICE.open_spans(monday, monday + timedelta(days=1))
    )
    assert joined.business_time(monday, monday + timedelta(days=1)) == hours(8)


def test_interval_ending_at_midnight_runs_into_next_day_opening() -> None:
    always = make([OpeningInterval(day, 0, 1440) for day in range(7)], timezone="UTC")
    start = datetime(2026, 1, 5, 12, tzinfo=UTC)
    spans = list(always.open_spans(start, start + timedelta(days=3)))
    assert spans == [(start, start + timedelta(days=3))]
    assert always.is_open(datetime(2026, 1, 5, 23, 59, 59, tzinfo=UTC))


def test_late_shift_until_midnight() -> None:
    late = make([OpeningInterval(MON, 18 * H, 1440)])
    monday = berlin(2026, 1, 5)
    assert late.business_time(monday, monday + timedelta(days=2)) == hours(6)
    assert late.next_open(berlin(2026, 1, 5, 23, 59, 59)) == berlin(2026, 1, 5, 23, 59, 59)
    assert late.next_open(berlin(2026, 1, 6)) == berlin(2026, 1, 12, 18)


def test_open_spans_are_utc_and_clipped_to_the_range() -> None:
    spans = list(SPLIT.open_spans(berlin(2026, 1, 5, 10), berlin(2026, 1, 6, 10)))
    assert spans == [
        (datetime(2026, 1, 5, 9, tzinfo=UTC), datetime(2026, 1, 5, 11, tzinfo=UTC)),
        (datetime(2026, 1, 5, 12, tzinfo=UTC), datetime(2026, 1, 5, 16, tzinfo=UTC)),
        (datetime(2026, 1, 6, 8, tzinfo=UTC), datetime(2026, 1, 6, 9, tzinfo=UTC)),
    ]
    assert all(s.tzinfo is UTC and e.tzinfo is UTC for s, e in spans)


def test_local_day_is_the_calendar_timezone_date() -> None:
    late_evening_utc = datetime(2026, 1, 5, 23, 30, tzinfo=UTC)  # already Tuesday in Berlin
    assert OFFICE.local_day(late_evening_utc) == date(2026, 1, 6)


# --- holidays --------------------------------------------------------------------------------


def test_explicit_holiday_closes_day() -> None:
    calendar = make(weekdays((9 * H, 17 * H)), holidays=(date(2026, 1, 7),))
    assert calendar.is_holiday(date(2026, 1, 7))
    assert not calendar.is_open(berlin(2026, 1, 7, 10))
    monday = berlin(2026, 1, 5)
    assert calendar.business_time(monday, monday + timedelta(days=7)) == hours(32)


def test_holiday_country_closes_day() -> None:
    bavaria = make(weekdays((9 * H, 17 * H)), country="DE", subdivision="BY")
    # Epiphany (6 January) is a public holiday in Bavaria, not in Berlin.
    assert bavaria.is_holiday(date(2026, 1, 6))
    assert not bavaria.is_open(berlin(2026, 1, 6, 10))
    assert OFFICE.is_open(berlin(2026, 1, 6, 10))
    monday = berlin(2026, 1, 5)
    assert bavaria.business_time(monday, monday + timedelta(days=7)) == hours(32)


def test_observed_holiday_in_previous_year_closes_day() -> None:
    # 1 January 2022 was a Saturday; the US observed New Year's Day on Friday 31 December 2021.
    us = make(weekdays((9 * H, 17 * H)), timezone="America/New_York", country="US")
    assert us.is_holiday(date(2021, 12, 31))


def test_is_holiday_rejects_datetimes() -> None:
    with pytest.raises(ValueError, match="date"):
        OFFICE.is_holiday(berlin(2026, 1, 1))


def test_holiday_is_a_local_date() -> None:
    calendar = make(
        [OpeningInterval(day, 0, 1440) for day in range(7)], holidays=(date(2026, 1, 7),)
    )
    # 23:30 UTC on 6 January is already 7 January in Berlin.
    assert not calendar.is_open(datetime(2026, 1, 6, 23, 30, tzinfo=UTC))
    assert calendar.is_open(datetime(2026, 1, 6, 22, 30, tzinfo=UTC))


# --- adding business time --------------------------------------------------------------------


def test_ticket_opened_outside_hours_starts_at_next_opening() -> None:
    friday_evening = berlin(2026, 1, 9, 19)
    assert OFFICE.add_business_time(friday_evening, hours(1)) == berlin(2026, 1, 12, 10)
    assert OFFICE.next_open(friday_evening) == berlin(2026, 1, 12, 9)


def test_forty_business_hours_is_one_office_week() -> None:
    monday = berlin(2026, 1, 12, 9)
    assert OFFICE.add_business_time(monday, hours(40)) == berlin(2026, 1, 16, 17)


def test_adding_business_time_skips_lunch_and_holidays() -> None:
    calendar = make(weekdays((9 * H, 12 * H), (13 * H, 17 * H)), country="DE", subdivision="BY")
    monday_11 = berlin(2026, 1, 5, 11)
    # Monday gives 1 h before lunch and 4 h after; Tuesday is Epiphany; 2 h more on Wednesday.
    assert calendar.add_business_time(monday_11, hours(7)) == berlin(2026, 1, 7, 11)
    assert calendar.add_business_time(monday_11, hours(1)) == berlin(2026, 1, 5, 12)


def test_adding_zero_returns_start_even_when_closed() -> None:
    sunday = berlin(2026, 1, 11, 3)
    assert OFFICE.add_business_time(sunday, timedelta(0)) == sunday
    assert OFFICE.add_business_time(sunday, timedelta(0)).tzinfo is UTC


def test_exact_fill_ends_at_closing_time_not_next_opening() -> None:
    assert OFFICE.add_business_time(berlin(2026, 1, 5, 9), hours(8)) == berlin(2026, 1, 5, 17)


def test_negative_amount_is_rejected() -> None:
    with pytest.raises(ValueError, match="negative"):
        OFFICE.add_business_time(berlin(2026, 1, 5, 9), hours(-1))


def test_calendar_that_never_opens_fails_instead_of_looping() -> None:
    # Open on Mondays only, and every Monday for more than the search horizon is a holiday.
    closed = make(
        [OpeningInterval(MON, 9 * H, 17 * H)],
        timezone="UTC",
        holidays=tuple(
            date(2026, 1, 5) + timedelta(weeks=week) for week in range(SEARCH_HORIZON_DAYS // 7 + 2)
        ),
    )
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="no opening time"):
        closed.add_business_time(start, hours(1))
    assert closed.next_open(start) is None


def test_calendars_with_same_rules_share_computed_days() -> None:
    first = make(weekdays((9 * H, 17 * H)))
    second = BusinessCalendar.create(
        calendar_id="other",
        version=7,
        timezone="Europe/Berlin",
        intervals=weekdays((9 * H, 17 * H)),
    )
    assert first._schedule is second._schedule


# --- the days clocks change ------------------------------------------------------------------


def sunday_only(start: int, end: int, timezone: str) -> BusinessCalendar:
    return make([OpeningInterval(SUN, start, end)], timezone=timezone)


def whole_day(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=tz)
    return start, datetime.combine(day + timedelta(days=1), datetime.min.time(), tz)


@pytest.mark.parametrize(
    ("timezone", "day", "start", "end", "expected"),
    [
        # Europe/Berlin, spring forward 2026-03-29: 02:00 CET -> 03:00 CEST.
        ("Europe/Berlin", date(2026, 3, 29), 1 * H, 4 * H, hours(2)),
        ("Europe/Berlin", date(2026, 3, 29), 2 * H, 3 * H, hours(0)),
        ("Europe/Berlin", date(2026, 3, 29), 2 * H + 30, 4 * H, hours(1)),
        ("Europe/Berlin", date(2026, 3, 29), 1 * H, 2 * H + 30, hours(1)),
        ("Europe/Berlin", date(2026, 3, 29), 0, 1440, hours(23)),
        # Europe/Berlin, fall back 2026-10-25: 03:00 CEST -> 02:00 CET, 02:00-03:00 twice.
        ("Europe/Berlin", date(2026, 10, 25), 1 * H, 4 * H, hours(4)),
        ("Europe/Berlin", date(2026, 10, 25), 2 * H, 3 * H, hours(2)),
        ("Europe/Berlin", date(2026, 10, 25), 2 * H + 30, 3 * H, hours(1)),
        ("Europe/Berlin", date(2026, 10, 25), 0, 1440, hours(25)),
        # America/New_York: spring forward 2026-03-08 02:00 -> 03:00, fall back 2026-11-01
        # 02:00 -> 01:00 (01:00-02:00 twice).
        ("America/New_York", date(2026, 3, 8), 1 * H, 4 * H, hours(2)),
        ("America/New_York", date(2026, 3, 8), 2 * H, 3 * H, hours(0)),
        ("America/New_York", date(2026, 11, 1), 0, 3 * H, hours(4)),
        ("America/New_York", date(2026, 11, 1), 1 * H, 2 * H, hours(2)),
        ("America/New_York", date(2026, 11, 1), 0, 1440, hours(25)),
    ],
)
def test_dst_day_counts_real_elapsed_time(
    timezone: str, day: date, start: int, end: int, expected: timedelta
) -> None:
    calendar = sunday_only(start, end, timezone)
    day_start, day_end = whole_day(day, ZoneInfo(timezone))
    assert calendar.business_time(day_start, day_end) == expected
    assert (
        sum((hi - lo for lo, hi in calendar.open_spans(day_start, day_end)), timedelta(0))
        == expected
    )


def test_spring_forward_gap_endpoint_maps_to_end_of_gap() -> None:
    calendar = sunday_only(2 * H + 30, 4 * H, "Europe/Berlin")
    assert list(calendar.open_spans(berlin(2026, 3, 29), berlin(2026, 3, 30))) == [
        (berlin(2026, 3, 29, 3), berlin(2026, 3, 29, 4)),
    ]
    assert calendar.next_open(berlin(2026, 3, 29)) == berlin(2026, 3, 29, 3)


def test_repeated_hour_is_open_both_times() -> None:
    calendar = sunday_only(2 * H, 3 * H, "Europe/Berlin")
    first = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 02:30 CEST
    second = datetime(2026, 10, 25, 1, 30, tzinfo=UTC)  # 02:30 CET
    assert calendar.is_open(first)
    assert calendar.is_open(second)
    assert calendar.add_business_time(first, hours(1.5)) == datetime(2026, 10, 25, 2, tzinfo=UTC)


def test_office_week_across_spring_forward_is_still_forty_hours() -> None:
    # The change happens on Sunday; office hours on either side are unaffected.
    monday = berlin(2026, 3, 23)
    assert OFFICE.business_time(monday, berlin(2026, 4, 3)) == hours(72)  # 9 office days
    assert OFFICE.add_business_time(berlin(2026, 3, 27, 16), hours(2)) == berlin(2026, 3, 30, 10)
