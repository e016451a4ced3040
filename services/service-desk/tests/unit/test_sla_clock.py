"""SLA clocks: elapsed time, pauses and due times on the wall and the business clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_calendar.business_calendar import BusinessCalendar, OpeningInterval
from crm_servicedesk.domain.sla_clock import ClockKind, Pause, SlaClock

BERLIN = ZoneInfo("Europe/Berlin")
MINUTE = timedelta(minutes=1)
MICROSECOND = timedelta(microseconds=1)
ZERO = timedelta(0)
H = 60


def hours(value: float) -> timedelta:
    return timedelta(hours=value)


def berlin(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=BERLIN)


OFFICE = BusinessCalendar.create(
    calendar_id="office",
    version=1,
    timezone="Europe/Berlin",
    intervals=[OpeningInterval(day, 9 * H, 17 * H) for day in range(5)],
    holidays=[date(2026, 1, 7)],
)
MONDAY_9 = berlin(2026, 1, 12, 9)


def business(target: timedelta, started_at: datetime = MONDAY_9) -> SlaClock:
    return SlaClock(ClockKind.BUSINESS, started_at, target)


def wall(target: timedelta, started_at: datetime = MONDAY_9) -> SlaClock:
    return SlaClock(ClockKind.WALL, started_at, target)


# --- elapsed and due ----------------------------------------------------------------------------


def test_wall_clock_counts_real_time_and_ignores_the_calendar() -> None:
    clock = wall(hours(4))
    assert clock.elapsed(None, MONDAY_9 + hours(30)) == hours(30)
    assert clock.elapsed(OFFICE, MONDAY_9 + hours(30)) == hours(30)
    assert clock.due_at(None) == MONDAY_9 + hours(4)


def test_business_clock_counts_only_opening_hours() -> None:
    clock = business(hours(8))
    assert clock.elapsed(OFFICE, berlin(2026, 1, 13, 12)) == hours(11)
    assert clock.due_at(OFFICE) == berlin(2026, 1, 12, 17)


def test_business_clock_requires_a_calendar() -> None:
    with pytest.raises(ValueError, match="calendar"):
        business(hours(1)).elapsed(None, MONDAY_9 + hours(1))
    with pytest.raises(ValueError, match="calendar"):
        business(hours(1)).due_at(None)


def test_ticket_opened_friday_evening_is_due_monday() -> None:
    clock = business(hours(4), started_at=berlin(2026, 1, 16, 20))
    assert clock.elapsed(OFFICE, berlin(2026, 1, 19, 9)) == ZERO
    assert clock.due_at(OFFICE) == berlin(2026, 1, 19, 13)


def test_clock_not_started_yet_has_nothing_elapsed() -> None:
    assert business(hours(1)).elapsed(OFFICE, MONDAY_9 - hours(5)) == ZERO
    assert wall(hours(1)).elapsed(None, MONDAY_9 - hours(5)) == ZERO


def test_zero_target_is_due_when_the_clock_starts() -> None:
    assert business(ZERO, started_at=berlin(2026, 1, 17, 3)).due_at(OFFICE) == berlin(
        2026, 1, 17, 3
    )


def test_at_risk_at_is_eighty_percent_of_the_target_by_default() -> None:
    clock = business(hours(10))
    assert clock.at_risk_at(OFFICE) == berlin(2026, 1, 12, 17)  # 8 h = all of Monday
    assert clock.at_risk_at(OFFICE, 0.5) == berlin(2026, 1, 12, 14)
    with pytest.raises(ValueError, match="fraction"):
        clock.at_risk_at(OFFICE, 1.5)


def test_due_time_skips_holidays() -> None:
    clock = business(hours(10), started_at=berlin(2026, 1, 6, 9))  # 7 January is a holiday
    assert clock.due_at(OFFICE) == berlin(2026, 1, 8, 11)


# --- pauses -------------------------------------------------------------------------------------


def test_pause_inside_business_hours_pushes_the_due_time() -> None:
    clock = business(hours(4)).paused(berlin(2026, 1, 12, 10)).resumed(berlin(2026, 1, 12, 12))
    assert clock.elapsed(OFFICE, berlin(2026, 1, 12, 13)) == hours(2)
    assert clock.due_at(OFFICE) == berlin(2026, 1, 12, 15)


def test_pause_outside_business_hours_moves_nothing_on_the_business_clock() -> None:
    plain = business(hours(10))
    paused = plain.paused(berlin(2026, 1, 12, 18)).resumed(berlin(2026, 1, 13, 8))
    assert paused.due_at(OFFICE) == plain.due_at(OFFICE)
    # ... but on the wall clock the same pause counts.
    assert wall(hours(30)).paused(berlin(2026, 1, 12, 18)).resumed(berlin(2026, 1, 13, 8)).due_at(
        None
    ) == MONDAY_9 + hours(44)


def test_target_used_up_as_a_pause_begins_is_due_then() -> None:
    clock = business(hours(1)).paused(berlin(2026, 1, 12, 10)).resumed(berlin(2026, 1, 12, 11))
    assert clock.due_at(OFFICE) == berlin(2026, 1, 12, 10)


def test_due_at_is_unknown_while_paused() -> None:
    clock = business(hours(4)).paused(berlin(2026, 1, 12, 10))
    assert clock.is_paused
    assert clock.due_at(OFFICE) is None
    assert clock.at_risk_at(OFFICE) is None
    # ... even when the target was reached before the pause began: one rule, no exceptions.
    late = business(hours(1)).paused(berlin(2026, 1, 12, 11))
    assert late.due_at(OFFICE) is None


def test_open_pause_stops_elapsed_time() -> None:
    clock = business(hours(4)).paused(berlin(2026, 1, 12, 10))
    assert clock.elapsed(OFFICE, berlin(2026, 1, 14, 12)) == hours(1)


def test_pausing_a_paused_clock_is_a_no_op() -> None:
    clock = business(hours(4)).paused(berlin(2026, 1, 12, 10))
    assert clock.paused(berlin(2026, 1, 12, 11)) is clock


def test_resuming_a_running_clock_is_a_no_op() -> None:
    clock = business(hours(4))
    assert clock.resumed(berlin(2026, 1, 12, 11)) is clock


def test_pause_before_the_start_is_clamped_to_the_start() -> None:
    clock = business(hours(4)).paused(MONDAY_9 - hours(2))
    assert clock.pauses == (Pause(MONDAY_9.astimezone(UTC)),)
    resumed = clock.resumed(MONDAY_9 + hours(1))
    assert resumed.due_at(OFFICE) == MONDAY_9 + hours(5)


def test_pause_never_starts_before_the_previous_one_ended() -> None:
    clock = business(hours(4)).paused(berlin(2026, 1, 12, 10)).resumed(berlin(2026, 1, 12, 11))
    again = clock.paused(berlin(2026, 1, 12, 10, 30))  # an out-of-order event
    assert again.pauses[-1].start == berlin(2026, 1, 12, 11)


def test_resume_before_the_pause_began_closes_it_empty() -> None:
    clock = business(hours(4)).paused(berlin(2026, 1, 12, 10)).resumed(berlin(2026, 1, 12, 9))
    assert clock.pauses[-1].end == clock.pauses[-1].start
    assert clock.due_at(OFFICE) == berlin(2026, 1, 12, 13)


def test_overlapping_recorded_pauses_count_once() -> None:
    clock = SlaClock(
        ClockKind.WALL,
        MONDAY_9,
        hours(4),
        (
            Pause(berlin(2026, 1, 12, 10), berlin(2026, 1, 12, 12)),
            Pause(berlin(2026, 1, 12, 11), berlin(2026, 1, 12, 13)),
        ),
    )
    assert clock.elapsed(None, berlin(2026, 1, 12, 14)) == hours(2)
    assert clock.due_at(None) == berlin(2026, 1, 12, 16)


# --- construction -------------------------------------------------------------------------------


def test_naive_instants_are_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        SlaClock(ClockKind.WALL, datetime(2026, 1, 12, 9), hours(1))
    with pytest.raises(ValueError, match="timezone-aware"):
        wall(hours(1)).elapsed(None, datetime(2026, 1, 12, 9))
    with pytest.raises(ValueError, match="timezone-aware"):
        Pause(datetime(2026, 1, 12, 9))


def test_negative_target_is_rejected() -> None:
    with pytest.raises(ValueError, match="target"):
        wall(hours(-1))


def test_pause_ending_before_it_starts_is_rejected() -> None:
    with pytest.raises(ValueError, match="before it starts"):
        Pause(berlin(2026, 1, 12, 10), berlin(2026, 1, 12, 9))


def test_pause_order_is_checked_in_real_time_not_wall_time() -> None:
    # 02:30 CET happens after 02:45 CEST on the day clocks go back.
    first = datetime(2026, 10, 25, 2, 45, tzinfo=BERLIN)
    second = datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=BERLIN)
    assert Pause(first, second).end == second


def test_kind_can_be_given_as_its_stored_string() -> None:
    clock = SlaClock("wall", MONDAY_9, hours(1))  # type: ignore[arg-type]
    assert clock.kind is ClockKind.WALL


# --- properties ---------------------------------------------------------------------------------

ZONES = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "UTC"]
# Near clock changes: Berlin, New York and Lord Howe in spring and autumn 2026.
ANCHORS = [
    datetime(2026, 3, 29, 1, tzinfo=UTC),
    datetime(2026, 10, 25, 1, tzinfo=UTC),
    datetime(2026, 3, 8, 7, tzinfo=UTC),
    datetime(2026, 11, 1, 6, tzinfo=UTC),
    datetime(2026, 4, 4, 15, tzinfo=UTC),
    datetime(2026, 10, 3, 15, 30, tzinfo=UTC),
]
_boundaries = st.one_of(
    st.sampled_from([0, 60, 90, 120, 150, 180, 1440]),
    st.integers(0, 48).map(lambda half_hour: half_hour * 30),
)


@st.composite
def calendars(draw: st.DrawFn) -> tuple[BusinessCalendar, list[OpeningInterval], frozenset[date]]:
    """A random split-shift calendar with a few holidays near the anchors."""
    intervals: list[OpeningInterval] = []
    for weekday in range(7):
        points = sorted(set(draw(st.lists(_boundaries, max_size=4))))
        intervals += [OpeningInterval(weekday, s, e) for s, e in list(pairwise(points))[::2]]
    if not intervals:
        intervals.append(OpeningInterval(draw(st.integers(0, 6)), 9 * H, 17 * H))
    holidays = frozenset(
        draw(st.lists(st.dates(date(2026, 3, 1), date(2026, 11, 10)), max_size=30))
    )
    calendar = BusinessCalendar.create(
        calendar_id="prop",
        version=1,
        timezone=draw(st.sampled_from(ZONES)),
        intervals=intervals,
        holidays=holidays,
    )
    return calendar, intervals, holidays


def oracle_elapsed(
    timezone: str,
    intervals: list[OpeningInterval],
    holidays: frozenset[date] | None,
    clock: SlaClock,
    now: datetime,
) -> timedelta:
    """Minutes in ``[started_at, now)`` outside every recorded pause that are open.

    Counted one UTC minute at a time with a plain wall-clock check; ``holidays=None`` means the
    wall clock (every minute counts).
    """
    zone = ZoneInfo(timezone)
    total = ZERO
    at = clock.started_at.astimezone(UTC)
    while at < now:
        paused = any(
            p.start.astimezone(UTC) <= at and (p.end is None or at < p.end.astimezone(UTC))
            for p in clock.pauses
        )
        if not paused:
            if holidays is None:
                total += MINUTE
            else:
                local = at.astimezone(zone)
                minute = local.hour * 60 + local.minute
                if local.date() not in holidays and any(
                    iv.weekday == local.weekday() and iv.start_minute <= minute < iv.end_minute
                    for iv in intervals
                ):
                    total += MINUTE
        at += MINUTE
    return total


@st.composite
def clocks(draw: st.DrawFn, kind: ClockKind) -> SlaClock:
    """A clock started near a clock change, paused and resumed a few times (whole minutes)."""
    started_at = draw(st.sampled_from(ANCHORS)) + draw(st.integers(-2 * 1440, 1440)) * MINUTE
    clock = SlaClock(kind, started_at, draw(st.integers(0, 2 * 1440)) * MINUTE)
    at = started_at - draw(st.integers(0, 120)) * MINUTE  # the first pause may come too early
    for _ in range(draw(st.integers(0, 4))):
        at += draw(st.integers(0, 720)) * MINUTE
        clock = clock.paused(at)
        if draw(st.integers(0, 4)) == 0:
            break  # left paused
        at += draw(st.integers(0, 720)) * MINUTE
        clock = clock.resumed(at)
    return clock


@settings(max_examples=100, deadline=None)
@given(
    calendar=calendars(),
    clock=clocks(ClockKind.BUSINESS),
    minutes=st.integers(0, 3 * 1440),
)
def test_business_elapsed_is_open_time_outside_pauses(
    calendar: tuple[BusinessCalendar, list[OpeningInterval], frozenset[date]],
    clock: SlaClock,
    minutes: int,
) -> None:
    business_calendar, intervals, holidays = calendar
    now = clock.started_at.astimezone(UTC) + minutes * MINUTE
    expected = oracle_elapsed(business_calendar.timezone, intervals, holidays, clock, now)
    assert clock.elapsed(business_calendar, now) == expected


@settings(max_examples=100, deadline=None)
@given(clock=clocks(ClockKind.WALL), minutes=st.integers(0, 3 * 1440))
def test_wall_elapsed_is_real_time_outside_pauses(clock: SlaClock, minutes: int) -> None:
    now = clock.started_at.astimezone(UTC) + minutes * MINUTE
    assert clock.elapsed(None, now) == oracle_elapsed("UTC", [], None, clock, now)


@settings(max_examples=150, deadline=None)
@given(
    calendar=calendars(),
    clock=clocks(ClockKind.BUSINESS),
    kind=st.sampled_from(ClockKind),
    fraction=st.sampled_from([0.0, 0.5, 0.8, 1.0]),
    target_at_a_pause=st.booleans(),
)
def test_elapsed_reaches_the_target_exactly_at_the_due_time(
    calendar: tuple[BusinessCalendar, list[OpeningInterval], frozenset[date]],
    clock: SlaClock,
    kind: ClockKind,
    fraction: float,
    target_at_a_pause: bool,
) -> None:
    business_calendar = calendar[0]
    clock = SlaClock(kind, clock.started_at, clock.target, clock.pauses)
    if clock.is_paused:
        assert clock.due_at(business_calendar) is None
        assert clock.at_risk_at(business_calendar, fraction) is None
        clock = clock.resumed(max(p.start for p in clock.pauses) + hours(3))
    if target_at_a_pause and clock.pauses:
        # The edge case: the target is used up exactly when a pause begins.
        clock = replace(clock, target=clock.elapsed(business_calendar, clock.pauses[-1].start))
    due = clock.due_at(business_calendar)
    assert due is not None
    assert clock.elapsed(business_calendar, due) == clock.target
    if clock.target > ZERO:
        # The earliest such instant.
        assert clock.elapsed(business_calendar, due - MICROSECOND) < clock.target
    at_risk = clock.at_risk_at(business_calendar, fraction)
    assert at_risk is not None
    assert at_risk <= due
    assert clock.elapsed(business_calendar, at_risk) == clock.target * fraction
