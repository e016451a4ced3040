"""Slot finding against an independent oracle, across DST changes and public holidays.

The oracle knows nothing of :mod:`crm_calendar` or the slot code: it walks every 5-minute mark
of the range and accepts a start when every minute of the slot is, converted with ``zoneinfo``,
on a local date that is neither an explicit holiday nor one of the ``holidays`` library's, at a
local wall-clock time inside a working interval of that local weekday, and the slot plus the
buffer meets no appointment."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import holidays as holidays_lib
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm_calendar import BusinessCalendar, OpeningInterval
from crm_sales.appointments_contract import local_text
from crm_sales.domain.appointments import (
    Busy,
    MemberGroup,
    Slot,
    SlotQuery,
    free_slots,
    group_members,
    open_spans,
    team_free_slots,
)

MINUTE = timedelta(minutes=1)
GRANULE = timedelta(minutes=5)

# (zone, country, subdivision): the rep's calendar, and the DST switch dates of 2026 in it.
PLACES = {
    "Europe/Berlin": ("DE", "BY", [date(2026, 3, 29), date(2026, 10, 25)]),
    "America/New_York": ("US", "NY", [date(2026, 3, 8), date(2026, 11, 1)]),
}
HOLIDAY_DAYS = [date(2026, 12, 25), date(2026, 7, 4), date(2026, 10, 3), date(2026, 11, 26)]


def _oracle_open(
    at: datetime,
    zone: ZoneInfo,
    week: dict[int, list[tuple[int, int]]],
    closed: set[date],
) -> bool:
    local = at.astimezone(zone)
    if local.date() in closed:
        return False
    minute = local.hour * 60 + local.minute
    return any(start <= minute < end for start, end in week.get(local.weekday(), []))


def oracle_slots(
    *,
    zone_name: str,
    intervals: list[OpeningInterval],
    closed: set[date],
    busy: list[Busy],
    query: SlotQuery,
    buffer: timedelta,
) -> list[datetime]:
    """Every free 5-minute-mark start, by brute force."""
    zone = ZoneInfo(zone_name)
    week: dict[int, list[tuple[int, int]]] = {}
    for interval in intervals:
        week.setdefault(interval.weekday, []).append((interval.start_minute, interval.end_minute))
    lowest = max(query.range_start, query.not_before)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    rest = (lowest - epoch) % GRANULE
    start = lowest if not rest else lowest + GRANULE - rest
    found = []
    while start + query.length <= query.range_end:
        minutes = int(query.length / MINUTE)
        inside = all(_oracle_open(start + MINUTE * m, zone, week, closed) for m in range(minutes))
        claim_end = start + query.length + buffer
        clear = all(b.end <= start or b.start >= claim_end for b in busy)
        if inside and clear:
            found.append(start)
        start += GRANULE
    return found


def granule_floor(at: datetime) -> datetime:
    """The 5-minute mark at or before ``at``."""
    return at - (at - datetime(1970, 1, 1, tzinfo=UTC)) % GRANULE


def _closed_days(country: str, subdivision: str, explicit: set[date]) -> set[date]:
    public = holidays_lib.country_holidays(country, subdiv=subdivision, years=range(2025, 2028))
    return set(public) | explicit


_DAY_SHAPES = [
    [(8 * 60, 18 * 60)],  # a working day
    [(60, 240)],  # over the night's DST hour
    [(9 * 60, 12 * 60), (13 * 60, 17 * 60 + 30)],  # a lunch break
    [(0, 1440)],  # open all day
    [],  # closed
]


@st.composite
def week_hours(draw: st.DrawFn) -> list[OpeningInterval]:
    """Per weekday a usual shape or random intervals on 5-minute marks (some over the DST
    hours)."""
    intervals: list[OpeningInterval] = []
    for weekday in range(7):
        shape = draw(st.sampled_from([*_DAY_SHAPES, None]))
        if shape is None:
            marks = draw(
                st.lists(
                    st.integers(0, 288).map(lambda g: g * 5)
                    | st.sampled_from([60, 120, 150, 180, 240, 540, 1020]),
                    min_size=2,
                    max_size=4,
                    unique=True,
                )
            )
            marks.sort()
            shape = [(a, b) for a, b in zip(marks[0::2], marks[1::2], strict=False) if a < b]
        intervals.extend(OpeningInterval(weekday, a, b) for a, b in shape)
    if not intervals:
        intervals.append(OpeningInterval(6, 60, 240))  # Sunday night: the DST switches
    return intervals


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, object]:
    zone = draw(st.sampled_from(sorted(PLACES)))
    country, subdivision, switches = PLACES[zone]
    day = draw(st.sampled_from(switches + HOLIDAY_DAYS))
    range_start = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(
        minutes=draw(st.integers(-36 * 60, 12 * 60))
    )
    range_end = range_start + timedelta(minutes=draw(st.integers(12 * 60, 4 * 24 * 60)))
    length = timedelta(minutes=5 * draw(st.integers(1, 36)))
    step = timedelta(minutes=5 * draw(st.integers(1, 24)))
    buffer = timedelta(minutes=5 * draw(st.integers(0, 6)))
    not_before = range_start + timedelta(minutes=draw(st.integers(-60, 180)))
    explicit = set(draw(st.lists(st.sampled_from([day, day + timedelta(days=1)]), max_size=1)))
    # Appointments: non-overlapping holdings on 5-minute marks from just before the range.
    pieces = draw(
        st.lists(st.tuples(st.integers(0, 120), st.integers(1, 36)), min_size=0, max_size=10)
    )
    busy = []
    at = granule_floor(range_start) - timedelta(hours=2)
    for gap, size in pieces:
        at += GRANULE * gap
        busy.append(Busy(at, at + GRANULE * size))
        at += GRANULE * size
    return {
        "zone": zone,
        "country": country,
        "subdivision": subdivision,
        "intervals": draw(week_hours()),
        "explicit": explicit,
        "query": SlotQuery(range_start, range_end, length, step, not_before),
        "buffer": buffer,
        "busy": busy,
    }


def _calendar(s: dict[str, object]) -> BusinessCalendar:
    return BusinessCalendar.create(
        calendar_id="rep:test",
        version=1,
        timezone=str(s["zone"]),
        intervals=s["intervals"],  # type: ignore[arg-type]
        holidays=s["explicit"],  # type: ignore[arg-type]
        holiday_country=str(s["country"]),
        holiday_subdivision=str(s["subdivision"]),
    )


def _found(s: dict[str, object], query: SlotQuery | None = None) -> list[tuple[datetime, datetime]]:
    q = query or s["query"]
    assert isinstance(q, SlotQuery)
    spans = open_spans(
        [_calendar(s)], q.range_start - timedelta(days=1), q.range_end + timedelta(days=1)
    )
    return list(free_slots(spans, s["busy"], q, s["buffer"]))  # type: ignore[arg-type]


def _oracle(s: dict[str, object], query: SlotQuery | None = None) -> list[datetime]:
    q = query or s["query"]
    assert isinstance(q, SlotQuery)
    return oracle_slots(
        zone_name=str(s["zone"]),
        intervals=s["intervals"],  # type: ignore[arg-type]
        closed=_closed_days(str(s["country"]), str(s["subdivision"]), s["explicit"]),  # type: ignore[arg-type]
        busy=s["busy"],  # type: ignore[arg-type]
        query=q,
        buffer=s["buffer"],  # type: ignore[arg-type]
    )


PROPERTY = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(scenarios())
def test_every_slot_is_free_inside_working_hours_and_off_holidays(s: dict[str, object]) -> None:
    query = s["query"]
    assert isinstance(query, SlotQuery)
    valid = set(_oracle(s))
    found = _found(s)
    for start, end in found:
        assert end - start == query.length
        assert start in valid, (start, end)
    starts = [start for start, _ in found]
    assert starts == sorted(set(starts))  # in order, no repeats


@PROPERTY
@given(scenarios())
def test_with_a_five_minute_step_the_slots_are_exactly_the_oracles(s: dict[str, object]) -> None:
    query = s["query"]
    assert isinstance(query, SlotQuery)
    fine = SlotQuery(query.range_start, query.range_end, query.length, GRANULE, query.not_before)
    assert [start for start, _ in _found(s, fine)] == _oracle(s, fine)


@PROPERTY
@given(scenarios(), st.sampled_from(["Asia/Kolkata", "America/New_York", "Australia/Lord_Howe"]))
def test_slots_shown_in_another_zone_are_the_same_instants(
    s: dict[str, object], customer_zone: str
) -> None:
    for start, _ in _found(s):
        shown = datetime.fromisoformat(local_text(start, customer_zone))
        assert shown == start
        assert shown.utcoffset() == start.astimezone(ZoneInfo(customer_zone)).utcoffset()


def _weekdays_nine_to_five(zone: str, country: str | None = None) -> BusinessCalendar:
    return BusinessCalendar.create(
        calendar_id="rep:x",
        version=1,
        timezone=zone,
        intervals=[OpeningInterval(d, 9 * 60, 17 * 60) for d in range(7)],
        holiday_country=country,
    )


def _query(start: datetime, end: datetime, minutes: int, step: int = 0) -> SlotQuery:
    return SlotQuery(
        start, end, timedelta(minutes=minutes), timedelta(minutes=step or minutes), start
    )


def test_no_slot_on_christmas_in_berlin() -> None:
    calendar = _weekdays_nine_to_five("Europe/Berlin", "DE")
    start = datetime(2026, 12, 24, tzinfo=UTC)
    end = datetime(2026, 12, 28, tzinfo=UTC)
    spans = open_spans([calendar], start - timedelta(days=1), end + timedelta(days=1))
    slots = list(free_slots(spans, [], _query(start, end, 60), timedelta(0)))
    days = {s.astimezone(ZoneInfo("Europe/Berlin")).date() for s, _ in slots}
    # 24 December is no public holiday in Germany; 25 and 26 are; the 27th is a Sunday, open here.
    assert days == {date(2026, 12, 24), date(2026, 12, 27)}
    assert len(slots) == 16


def test_spring_forward_night_offers_the_real_hours_only() -> None:
    # Berlin, Sunday 2026-03-29: 02:00-03:00 local does not happen; 01:00-04:00 is two hours.
    calendar = BusinessCalendar.create(
        calendar_id="rep:x",
        version=1,
        timezone="Europe/Berlin",
        intervals=[OpeningInterval(6, 60, 240)],
    )
    start = datetime(2026, 3, 28, 12, tzinfo=UTC)
    end = datetime(2026, 3, 29, 12, tzinfo=UTC)
    spans = open_spans([calendar], start - timedelta(days=1), end + timedelta(days=1))
    slots = list(free_slots(spans, [], _query(start, end, 60), timedelta(0)))
    assert [local_text(s, "Europe/Berlin") for s, _ in slots] == [
        "2026-03-29T01:00:00+01:00",
        "2026-03-29T03:00:00+02:00",
    ]


def test_fall_back_night_offers_the_repeated_hour_twice() -> None:
    calendar = BusinessCalendar.create(
        calendar_id="rep:x",
        version=1,
        timezone="America/New_York",
        intervals=[OpeningInterval(6, 0, 180)],
    )
    start = datetime(2026, 11, 1, tzinfo=UTC)
    end = datetime(2026, 11, 2, tzinfo=UTC)
    spans = open_spans([calendar], start - timedelta(days=1), end + timedelta(days=1))
    slots = list(free_slots(spans, [], _query(start, end, 60), timedelta(0)))
    assert [local_text(s, "America/New_York") for s, _ in slots] == [
        "2026-11-01T00:00:00-04:00",
        "2026-11-01T01:00:00-04:00",
        "2026-11-01T01:00:00-05:00",
        "2026-11-01T02:00:00-05:00",
    ]


def test_appointments_and_their_buffers_are_left_out() -> None:
    calendar = _weekdays_nine_to_five("UTC")
    day = datetime(2026, 5, 4, tzinfo=UTC)
    busy = [Busy(day + timedelta(hours=10), day + timedelta(hours=11, minutes=15))]
    query = _query(day, day + timedelta(days=1), 60)
    spans = open_spans([calendar], day - timedelta(days=1), day + timedelta(days=2))
    starts = [s.hour * 60 + s.minute for s, _ in free_slots(spans, busy, query, GRANULE * 3)]
    # 09:00 would end at 10:00 but its buffer runs to 10:15, into the appointment; after it the
    # grid goes on at the next hour mark past 11:15.
    assert starts == [12 * 60, 13 * 60, 14 * 60, 15 * 60, 16 * 60]


def test_a_team_offers_each_start_once_with_the_first_free_member() -> None:
    day = datetime(2026, 5, 4, tzinfo=UTC)
    hour = timedelta(hours=1)
    nine = day + 9 * hour
    query = _query(day, day + timedelta(days=1), 60)
    # Ann and Bob share the team's hours (9-17); Cem has his own, 9-11 only. Ann is busy at
    # 9:00 and Bob at 9:00 and 10:00, so 9:00 goes to Cem and 10:00 to Ann.
    team = _weekdays_nine_to_five("UTC")
    own = BusinessCalendar.create(
        calendar_id="rep:cem",
        version=1,
        timezone="UTC",
        intervals=[OpeningInterval(d, 9 * 60, 11 * 60) for d in range(7)],
    )
    window = (day - timedelta(days=1), day + timedelta(days=2))
    shared = MemberGroup(
        open_spans([team], *window),
        [
            (0, "ann", [Busy(nine, nine + hour)]),
            (2, "bob", [Busy(nine, nine + 2 * hour)]),
        ],
    )
    narrow = MemberGroup(open_spans([team, own], *window), [(1, "cem", [])])
    offer = team_free_slots([shared, narrow], query, timedelta(0))
    assert [(s.start.hour, s.rep_id) for s in offer] == [
        (9, "cem"),
        (10, "ann"),
        *((h, "ann") for h in range(11, 17)),
    ]
    # Cem is earlier in the team's order than Bob: at 10:00 Ann (0) wins over Cem (1).
    assert offer[1] == Slot(nine + hour, nine + 2 * hour, "ann")


def test_a_team_members_own_calendar_narrows_the_teams() -> None:
    team = _weekdays_nine_to_five("Europe/Berlin")
    own = BusinessCalendar.create(
        calendar_id="rep:ann",
        version=1,
        timezone="America/New_York",
        intervals=[OpeningInterval(d, 8 * 60, 12 * 60) for d in range(7)],
    )
    day = datetime(2026, 5, 4, tzinfo=UTC)
    spans = open_spans([team, own], day, day + timedelta(days=1))
    # Berlin 09:00-17:00 is 07:00-15:00 UTC; New York 08:00-12:00 is 12:00-16:00 UTC.
    assert spans == [(day + timedelta(hours=12), day + timedelta(hours=15))]


def test_members_whose_calendars_have_the_same_rules_share_one_group() -> None:
    team = _weekdays_nine_to_five("Europe/Berlin")
    same = BusinessCalendar.create(
        calendar_id="rep:ann",
        version=3,
        timezone="Europe/Berlin",
        intervals=[OpeningInterval(d, 9 * 60, 17 * 60) for d in range(7)],
    )
    narrower = _weekdays_nine_to_five("America/New_York")
    day = datetime(2026, 5, 4, tzinfo=UTC)
    groups = group_members(
        [("ann", [team, same], []), ("bob", [team], []), ("cem", [team, narrower], [])],
        day,
        day + timedelta(days=1),
    )
    assert [[rep for _, rep, _ in g.members] for g in groups] == [["ann", "bob"], ["cem"]]
    assert [[index for index, _, _ in g.members] for g in groups] == [[0, 1], [2]]
    assert groups[1].spans == open_spans([team, narrower], day, day + timedelta(days=1))
