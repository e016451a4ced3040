"""Properties of business calendars over random calendars and instants around clock changes.

The oracle walks a range minute by minute in UTC and asks a separately written wall-clock check
whether each minute is open: the local date is not a holiday and the local time lies in an
opening interval of that weekday. It shares no code with the calendar's per-day computation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import holidays as holidays_lib
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_calendar.business_calendar import BusinessCalendar, OpeningInterval

MINUTE = timedelta(minutes=1)
MICROSECOND = timedelta(microseconds=1)
ZERO = timedelta(0)

# Zone -> (holiday country, subdivision) that fits it.
ZONES: dict[str, tuple[str, str | None]] = {
    "Europe/Berlin": ("DE", "BY"),
    "America/New_York": ("US", "NY"),
    "Australia/Lord_Howe": ("AU", "NSW"),  # DST of 30 minutes
    "Asia/Kolkata": ("IN", None),  # +05:30, no DST
    "UTC": ("GB", None),
}


def _transitions(zone: str, year: int) -> list[datetime]:
    """Instants (to the hour) around which the zone's UTC offset changes in ``year``."""
    tz = ZoneInfo(zone)
    found = []
    at = datetime(year, 1, 1, tzinfo=UTC)
    previous = at.astimezone(tz).utcoffset()
    while at.year == year:
        offset = at.astimezone(tz).utcoffset()
        if offset != previous:
            found.append(at)
            previous = offset
        at += timedelta(hours=1)
    return found


# Instants that make ranges interesting, per zone: its clock changes, a year end, a plain day.
ZONE_ANCHORS = {
    zone: sorted(
        {t for year in (2026, 2027) for t in _transitions(zone, year)}
        | {datetime(2026, 12, 31, 22, tzinfo=UTC), datetime(2026, 6, 15, tzinfo=UTC)}
    )
    for zone in ZONES
}

# Interval boundaries: around the hours clocks change (00:00-03:00), and on a quarter-hour grid.
_boundaries = st.one_of(
    st.sampled_from([0, 60, 90, 120, 150, 180, 210, 1440]),
    st.integers(0, 96).map(lambda quarter: quarter * 15),
)


@st.composite
def weekly_intervals(draw: st.DrawFn) -> list[OpeningInterval]:
    """Random split shifts: per weekday, up to three disjoint (sometimes adjacent) intervals."""
    intervals: list[OpeningInterval] = []
    for weekday in range(7):
        points = sorted(set(draw(st.lists(_boundaries, max_size=6))))
        pairs = list(pairwise(points))  # adjacent intervals...
        if draw(st.booleans()):
            pairs = pairs[::2]  # ...or with gaps between them
        intervals += [OpeningInterval(weekday, start, end) for start, end in pairs]
    if not intervals:
        intervals.append(OpeningInterval(draw(st.integers(0, 6)), 9 * 60, 17 * 60))
    return intervals


@dataclass(frozen=True)
class Case:
    """A random calendar, the definition the oracle reads, and an instant to test around."""

    calendar: BusinessCalendar
    zone: str
    intervals: list[OpeningInterval]
    closed_dates: frozenset[date]
    anchor: datetime


def _country_dates(country: str, subdivision: str | None) -> frozenset[date]:
    generated = holidays_lib.country_holidays(country, subdiv=subdivision, years=range(2025, 2029))
    return frozenset(generated)


_COUNTRY_DATES = {zone: _country_dates(*rule) for zone, rule in ZONES.items()}


def _country_holiday_anchors(zone: str) -> list[datetime]:
    # Local noon of the country's 2026 holidays, so that ranges meet them.
    tz = ZoneInfo(zone)
    return [
        datetime(day.year, day.month, day.day, 12, tzinfo=tz).astimezone(UTC)
        for day in sorted(_COUNTRY_DATES[zone])
        if day.year == 2026
    ]


@st.composite
def cases(draw: st.DrawFn) -> Case:
    """A calendar in a random zone, with explicit holidays near the anchor it is tested around."""
    zone = draw(st.sampled_from(sorted(ZONES)))
    intervals = draw(weekly_intervals())
    use_country = draw(st.booleans())
    anchors = ZONE_ANCHORS[zone] + (_country_holiday_anchors(zone) if use_country else [])
    anchor = draw(st.sampled_from(anchors))
    explicit = frozenset(
        anchor.date() + timedelta(days=shift)
        for shift in draw(st.lists(st.integers(-4, 4), max_size=3))
    )
    country, subdivision = ZONES[zone] if use_country else (None, None)
    calendar = BusinessCalendar.create(
        calendar_id="prop",
        version=1,
        timezone=zone,
        intervals=intervals,
        holidays=explicit,
        holiday_country=country,
        holiday_subdivision=subdivision,
    )
    closed = explicit | (_COUNTRY_DATES[zone] if use_country else frozenset())
    return Case(calendar, zone, intervals, closed, anchor)


def minute_near(anchor: datetime, days: int = 3) -> st.SearchStrategy[datetime]:
    """Whole-minute instants within ``days`` of the anchor."""
    return st.integers(-days * 1440, days * 1440).map(lambda minutes: anchor + minutes * MINUTE)


def instant_near(anchor: datetime, days: int = 20) -> st.SearchStrategy[datetime]:
    """Instants with microseconds within ``days`` of the anchor, expressed in a random zone."""
    return st.builds(
        lambda us, zone: (anchor + us * MICROSECOND).astimezone(ZoneInfo(zone)),
        st.integers(-days * 86_400_000_000, days * 86_400_000_000),
        st.sampled_from(sorted(ZONES)),
    )


def oracle_is_open(case: Case, at: datetime) -> bool:
    """The wall-clock rule, written without the calendar's code."""
    local = at.astimezone(ZoneInfo(case.zone))
    if local.date() in case.closed_dates:
        return False
    minute = local.hour * 60 + local.minute
    return any(
        interval.weekday == local.weekday()
        and interval.start_minute <= minute < interval.end_minute
        for interval in case.intervals
    )


def oracle_business_time(case: Case, start: datetime, end: datetime) -> timedelta:
    """Open minutes in [start, end) by walking every UTC minute (whole-minute instants only)."""
    total = ZERO
    at = start
    while at < end:
        if oracle_is_open(case, at):
            total += MINUTE
        at += MINUTE
    return total


@settings(max_examples=150, deadline=None)
@given(case=cases(), data=st.data())
def test_business_time_equals_minute_by_minute_oracle(case: Case, data: st.DataObject) -> None:
    start = data.draw(minute_near(case.anchor), label="start")
    end = start + data.draw(st.integers(0, 3 * 1440), label="minutes") * MINUTE
    assert case.calendar.business_time(start, end) == oracle_business_time(case, start, end)


@settings(max_examples=150, deadline=None)
@given(case=cases(), data=st.data())
def test_is_open_matches_oracle_and_open_spans(case: Case, data: st.DataObject) -> None:
    at = data.draw(minute_near(case.anchor), label="at")
    expected = oracle_is_open(case, at)
    assert case.calendar.is_open(at) == expected
    inside = any(
        lo <= at < hi for lo, hi in case.calendar.open_spans(at - timedelta(days=1), at + MINUTE)
    )
    assert inside == expected


@settings(max_examples=150, deadline=None)
@given(case=cases(), data=st.data())
def test_business_time_is_additive(case: Case, data: st.DataObject) -> None:
    # Sorted as instants: aware datetimes of one zone compare by wall time, ignoring fold.
    a, b, c = sorted(
        (data.draw(instant_near(case.anchor), label=label) for label in "abc"),
        key=lambda instant: instant.astimezone(UTC),
    )
    calendar = case.calendar
    assert calendar.business_time(a, c) == calendar.business_time(a, b) + calendar.business_time(
        b, c
    )


@settings(max_examples=150, deadline=None)
@given(case=cases(), data=st.data())
def test_open_spans_are_ordered_disjoint_and_sum_to_business_time(
    case: Case, data: st.DataObject
) -> None:
    start = data.draw(instant_near(case.anchor), label="start")
    end = data.draw(instant_near(case.anchor), label="end")
    spans = list(case.calendar.open_spans(start, end))
    assert all(lo < hi for lo, hi in spans)
    assert all(earlier[1] < later[0] for earlier, later in pairwise(spans))
    assert all(start <= lo and hi <= end for lo, hi in spans)
    assert all(lo.tzinfo is UTC and hi.tzinfo is UTC for lo, hi in spans)
    assert sum((hi - lo for lo, hi in spans), ZERO) == case.calendar.business_time(start, end)


@settings(max_examples=200, deadline=None)
@given(case=cases(), data=st.data())
def test_add_business_time_is_the_earliest_inverse_of_business_time(
    case: Case, data: st.DataObject
) -> None:
    calendar = case.calendar
    start = data.draw(instant_near(case.anchor), label="start")
    if data.draw(st.booleans(), label="amount up to an instant"):
        # Amounts that end exactly at a span's end (or a later opening) are the edge cases.
        until = data.draw(minute_near(case.anchor, days=20), label="until")
        amount = calendar.business_time(start, until)
    else:
        amount = data.draw(st.integers(0, 5 * 86_400_000_000), label="us") * MICROSECOND
    due = calendar.add_business_time(start, amount)
    assert due >= start.astimezone(UTC)
    assert due.tzinfo is UTC
    assert calendar.business_time(start, due) == amount
    if amount > ZERO:
        # Earliest: a microsecond sooner the amount has not elapsed yet, and the last
        # microsecond before it was open time.
        assert calendar.business_time(start, due - MICROSECOND) < amount
        assert calendar.is_open(due - MICROSECOND)


@settings(max_examples=150, deadline=None)
@given(case=cases(), data=st.data())
def test_next_open_is_the_first_open_instant(case: Case, data: st.DataObject) -> None:
    at = data.draw(instant_near(case.anchor), label="at")
    calendar = case.calendar
    opening = calendar.next_open(at)
    assert opening is not None
    assert opening >= at
    assert calendar.is_open(opening)
    assert calendar.business_time(at, opening) == ZERO
    # Compared in UTC: == between zones is always False for a time in a fold (PEP 495).
    assert (opening == at.astimezone(UTC)) == calendar.is_open(at)
