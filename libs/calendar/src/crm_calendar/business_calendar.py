"""Business calendars: weekly opening hours in a time zone, minus holidays, in real time.

A calendar says, for every instant, whether the business is open. The rule is the one a person
reading a wall clock would apply: an instant is open when its **local** date (in the calendar's
time zone) is not a holiday and its **local** wall-clock time falls inside one of the opening
intervals of that local weekday. Business time is the real (elapsed, UTC) length of the open
instants in a range. Consequences on the days clocks change (DST):

- spring forward: wall-clock times inside the gap never happen, so they are never open. An
  interval endpoint inside the gap behaves like the end of the gap (the first instant that
  exists after it): in Europe/Berlin on 2026-03-29, ``02:30-04:00`` is open from 03:00 to 04:00
  (one real hour) and ``02:00-03:00`` is not open at all;
- fall back: wall-clock times that happen twice are open both times, so an interval spanning
  the repeated hour contains the extra real hour (``01:00-04:00`` on Berlin's 2026-10-25 is four
  real hours; ``02:00-03:00`` is two).

This is the same rule :meth:`BusinessCalendar.is_open` applies to a single instant, so
``business_time``, ``open_spans``, ``next_open`` and ``add_business_time`` always agree with it.
(The usual alternative, converting each endpoint with ``fold=0``, would map ``02:30`` to 03:30
and count only half an hour of a range in which every minute is open.)

The work is done per local day: the open spans of a day are computed once (a few ``utcoffset``
calls; a short bisection on the rare days with a transition), cached, and shared by every
calendar with the same rules, so a 90-day ``business_time`` is a walk over ~90 cached entries.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TypeAlias
from zoneinfo import ZoneInfo

import holidays as holidays_lib

from crm_platform.errors import FieldViolation, InvalidArgument

MINUTES_PER_DAY = 1440
WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
# How far add_business_time / next_open look for opening time before giving up: a calendar that
# is closed for three years in a row is a configuration error, not a long wait.
SEARCH_HORIZON_DAYS = 3 * 366

_ZERO = timedelta(0)
_SECOND = timedelta(seconds=1)
_MINUTE = timedelta(minutes=1)
_DAY = timedelta(days=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Last ordinal whose next day still exists: the day walk looks one day ahead.
_MAX_ORDINAL = date.max.toordinal() - 1
# Bounds of the shared caches; beyond them a cache starts again empty (cheap to refill).
_MAX_CACHED_DAYS = 4_000  # about eleven years of days
_MAX_SCHEDULES = 128

_Span: TypeAlias = tuple[datetime, datetime]
_WeekRules: TypeAlias = tuple[tuple[tuple[int, int], ...], ...]


@dataclass(frozen=True, slots=True)
class OpeningInterval:
    """One weekly opening interval in local wall-clock time: ``[start_minute, end_minute)``.

    ``weekday`` is 0 (Monday) to 6 (Sunday); minutes count from local midnight, and an
    ``end_minute`` of 1440 means the next local midnight.
    """

    weekday: int
    start_minute: int
    end_minute: int


@dataclass(frozen=True, slots=True)
class BusinessCalendar:
    """Weekly opening intervals in an IANA time zone, closed on explicit and country holidays.

    Build one with :meth:`create` (validates and normalises). Direct construction validates
    too, so an invalid calendar cannot exist. Instants passed in must be timezone-aware (any
    zone); instants returned are UTC.
    """

    calendar_id: str
    version: int
    timezone: str
    intervals: tuple[OpeningInterval, ...]
    holidays: frozenset[date]
    holiday_country: str | None = None
    holiday_subdivision: str | None = None
    _schedule: _Schedule = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        # Tolerate lists/sets from callers; the stored form must be hashable.
        object.__setattr__(self, "intervals", tuple(self.intervals))
        object.__setattr__(self, "holidays", frozenset(self.holidays))
        violations = calendar_violations(
            timezone=self.timezone,
            intervals=self.intervals,
            holidays=self.holidays,
            holiday_country=self.holiday_country,
            holiday_subdivision=self.holiday_subdivision,
        )
        if violations:
            raise InvalidArgument(violations)
        object.__setattr__(self, "_schedule", _schedule_for(self))

    @classmethod
    def create(
        cls,
        *,
        calendar_id: str,
        version: int,
        timezone: str,
        intervals: Iterable[OpeningInterval],
        holidays: Iterable[date] = (),
        holiday_country: str | None = None,
        holiday_subdivision: str | None = None,
        field_path: str = "calendar",
    ) -> BusinessCalendar:
        """Validate and build a calendar; raise :class:`InvalidArgument` listing every problem.

        Empty strings for the country or subdivision mean "not set" (proto3 defaults); the
        country code is upper-cased. Intervals are stored sorted by weekday and start; adjacent
        intervals (``9-12`` and ``12-17``) are allowed and are merged when computing. Field paths
        in violations start with ``field_path`` and index ``intervals``/``holidays`` in the
        order given here, e.g. ``calendar.intervals[2].end_minute``.
        """
        interval_list = list(intervals)
        holiday_list = list(holidays)
        country = (holiday_country or "").strip().upper() or None
        subdivision = (holiday_subdivision or "").strip() or None
        violations = calendar_violations(
            timezone=timezone,
            intervals=interval_list,
            holidays=holiday_list,
            holiday_country=country,
            holiday_subdivision=subdivision,
            field_path=field_path,
        )
        if violations:
            raise InvalidArgument(violations)
        return cls(
            calendar_id=calendar_id,
            version=version,
            timezone=timezone,
            intervals=tuple(
                sorted(interval_list, key=lambda i: (i.weekday, i.start_minute, i.end_minute))
            ),
            holidays=frozenset(holiday_list),
            holiday_country=country,
            holiday_subdivision=subdivision,
        )

    def is_holiday(self, day: date) -> bool:
        """Whether the local date ``day`` is closed as an explicit or a country holiday."""
        if isinstance(day, datetime):
            raise ValueError("is_holiday takes a date; use local_day() to get an instant's date")
        return self._schedule.is_holiday(day)

    def is_open(self, at: datetime) -> bool:
        """Whether the business is open at the instant ``at`` (timezone-aware)."""
        local = _require_aware(at, "at").astimezone(self._schedule.tz)
        rules = self._schedule.week[local.weekday()]
        if not rules:
            return False
        # Interval bounds are whole minutes, so comparing the floored minute is exact.
        minute = local.hour * 60 + local.minute
        if not any(start <= minute < end for start, end in rules):
            return False
        return not self._schedule.is_holiday(local.date())

    def local_day(self, at: datetime) -> date:
        """The calendar-timezone date of the instant ``at`` (e.g. for same-day resolution)."""
        return _require_aware(at, "at").astimezone(self._schedule.tz).date()

    def open_spans(self, start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime]]:
        """The open time inside ``[start, end)`` as UTC ``(from, to)`` spans, in order.

        Touching spans (across local midnight, or an interval ending where the next begins) are
        yielded as one span.
        """
        start_utc = _utc(start, "start")
        end_utc = _utc(end, "end")
        return self._open_spans(start_utc, end_utc)

    def _open_spans(self, start: datetime, end: datetime) -> Iterator[_Span]:
        if end <= start:
            return
        sched = self._schedule
        pending: _Span | None = None
        for ordinal in range(sched.ordinal(start) - 1, sched.ordinal(end) + 2):
            for span_start, span_end in sched.day(ordinal)[0]:
                if span_end <= start:
                    continue
                if span_start >= end:
                    break
                lo = max(span_start, start)
                hi = min(span_end, end)
                if pending is not None and pending[1] == lo:
                    pending = (pending[0], hi)
                    continue
                if pending is not None:
                    yield pending
                pending = (lo, hi)
        if pending is not None:
            yield pending

    def business_time(self, start: datetime, end: datetime) -> timedelta:
        """Total open time in ``[start, end)``; zero when ``end <= start``."""
        start_utc = _utc(start, "start")
        end_utc = _utc(end, "end")
        if end_utc <= start_utc:
            return _ZERO
        sched = self._schedule
        total = _ZERO
        # One extra day on each side costs two cache hits and keeps the sum right even where a
        # transition makes the local date step backwards across midnight.
        for ordinal in range(sched.ordinal(start_utc) - 1, sched.ordinal(end_utc) + 2):
            spans, day_total = sched.day(ordinal)
            if not spans:
                continue
            if spans[0][0] >= start_utc and spans[-1][1] <= end_utc:
                total += day_total
                continue
            for span_start, span_end in spans:
                if span_end <= start_utc:
                    continue
                if span_start >= end_utc:
                    break
                total += min(span_end, end_utc) - max(span_start, start_utc)
        return total

    def add_business_time(self, start: datetime, amount: timedelta) -> datetime:
        """The earliest instant ``t >= start`` with ``business_time(start, t) == amount``.

        ``amount == 0`` returns ``start`` (in UTC) even when closed: nothing has to elapse. A
        positive amount therefore always ends inside (or at the end of) an open span. Raises
        ``ValueError`` for a negative amount, or when no opening time exists for
        :data:`SEARCH_HORIZON_DAYS` days in a row (e.g. every day is a holiday).
        """
        start_utc = _utc(start, "start")
        if amount < _ZERO:
            raise ValueError(f"amount must not be negative, got {amount}")
        if amount == _ZERO:
            return start_utc
        sched = self._schedule
        remaining = amount
        ordinal = sched.ordinal(start_utc) - 1
        closed_days = 0
        while True:
            if ordinal > _MAX_ORDINAL:
                raise ValueError("add_business_time runs past the last supported date")
            spans, day_total = sched.day(ordinal)
            ordinal += 1
            if not spans or spans[-1][1] <= start_utc:
                closed_days += 1
                if closed_days > SEARCH_HORIZON_DAYS:
                    raise ValueError(
                        f"calendar {self.calendar_id!r} has no opening time in "
                        f"{SEARCH_HORIZON_DAYS} days after {start_utc.isoformat()}"
                    )
                continue
            closed_days = 0
            if spans[0][0] >= start_utc and day_total < remaining:
                remaining -= day_total
                continue
            for span_start, span_end in spans:
                if span_end <= start_utc:
                    continue
                lo = max(span_start, start_utc)
                length = span_end - lo
                if length >= remaining:
                    return lo + remaining
                remaining -= length

    def next_open(self, at: datetime) -> datetime | None:
        """The earliest open instant at or after ``at`` (``at`` itself when open), in UTC.

        ``None`` when nothing opens within :data:`SEARCH_HORIZON_DAYS` days.
        """
        at_utc = _utc(at, "at")
        sched = self._schedule
        first = sched.ordinal(at_utc) - 1
        for ordinal in range(first, min(first + SEARCH_HORIZON_DAYS + 2, _MAX_ORDINAL + 1)):
            for span_start, span_end in sched.day(ordinal)[0]:
                if span_end > at_utc:
                    return max(span_start, at_utc)
        return None


def calendar_violations(
    *,
    timezone: str,
    intervals: Iterable[OpeningInterval],
    holidays: Iterable[date],
    holiday_country: str | None,
    holiday_subdivision: str | None,
    field_path: str = "calendar",
) -> list[FieldViolation]:
    """Every problem with a calendar definition, as field violations (empty when valid)."""
    violations: list[FieldViolation] = []
    if not _known_timezone(timezone):
        violations.append(
            FieldViolation(f"{field_path}.timezone", f"unknown IANA time zone {timezone[:64]!r}")
        )
    violations.extend(_interval_violations(list(intervals), field_path))
    for index, day in enumerate(holidays):
        # datetime is a date subclass, but as a holiday it would silently never match.
        if isinstance(day, datetime) or not isinstance(day, date):
            violations.append(
                FieldViolation(f"{field_path}.holidays[{index}]", "must be a calendar date")
            )
    violations.extend(_holiday_rule_violations(holiday_country, holiday_subdivision, field_path))
    return violations


def _interval_violations(intervals: list[OpeningInterval], field_path: str) -> list[FieldViolation]:
    path = f"{field_path}.intervals"
    if not intervals:
        return [FieldViolation(path, "at least one opening interval is required")]
    # Violations per interval index, so they come out in the order of the request.
    found: dict[int, list[FieldViolation]] = {}
    well_formed: list[tuple[int, int, int, int]] = []  # (weekday, start, end, index)
    for index, interval in enumerate(intervals):
        here = f"{path}[{index}]"
        problems: list[FieldViolation] = []
        if not 0 <= interval.weekday <= 6:
            problems.append(FieldViolation(f"{here}.weekday", "must be 0 (Monday) to 6 (Sunday)"))
        if not 0 <= interval.start_minute < MINUTES_PER_DAY:
            problems.append(FieldViolation(f"{here}.start_minute", "must be 0 to 1439"))
        if not 0 < interval.end_minute <= MINUTES_PER_DAY:
            problems.append(
                FieldViolation(f"{here}.end_minute", "must be 1 to 1440 (1440 = midnight)")
            )
        elif interval.end_minute <= interval.start_minute:
            problems.append(FieldViolation(f"{here}.end_minute", "must be after start_minute"))
        if problems:
            found[index] = problems
        else:
            well_formed.append(
                (interval.weekday, interval.start_minute, interval.end_minute, index)
            )
    # Overlaps per weekday: sweep in start order against the furthest-reaching interval so far,
    # so every interval that overlaps an earlier one is reported, not only the first pair.
    well_formed.sort()
    reach: tuple[int, int, int, int] | None = None
    for current in well_formed:
        weekday, start, end, index = current
        if reach is not None and reach[0] == weekday and start < reach[2]:
            found.setdefault(index, []).append(
                FieldViolation(
                    f"{path}[{index}]",
                    f"overlaps {path}[{reach[3]}] "
                    f"({WEEKDAY_NAMES[weekday]} {_hhmm(reach[1])}-{_hhmm(reach[2])})",
                )
            )
        if reach is None or reach[0] != weekday or end > reach[2]:
            reach = current
    return [violation for index in sorted(found) for violation in found[index]]


def _holiday_rule_violations(
    country: str | None, subdivision: str | None, field_path: str
) -> list[FieldViolation]:
    if country is None:
        if subdivision is not None:
            return [
                FieldViolation(
                    f"{field_path}.holiday_subdivision", "requires holiday_country to be set"
                )
            ]
        return []
    if country not in _supported_countries():
        return [
            FieldViolation(
                f"{field_path}.holiday_country",
                f"no public holidays known for country code {country[:16]!r}",
            )
        ]
    if subdivision is not None and not _known_subdivision(country, subdivision):
        known = ", ".join(_supported_countries()[country][:40])
        return [
            FieldViolation(
                f"{field_path}.holiday_subdivision",
                f"unknown subdivision {subdivision[:32]!r} of {country} (known: {known})",
            )
        ]
    return []


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


@functools.lru_cache(maxsize=512)
def _known_timezone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (KeyError, ValueError, OSError):
        # KeyError: ZoneInfoNotFoundError; ValueError: malformed key; OSError: absurd names.
        return False
    return True


@functools.cache
def _supported_countries() -> dict[str, list[str]]:
    return holidays_lib.list_supported_countries(include_aliases=True)


@functools.lru_cache(maxsize=512)
def _known_subdivision(country: str, subdivision: str) -> bool:
    # Asking the library accepts its aliases too ("Bayern" for "BY").
    try:
        holidays_lib.country_holidays(country, subdiv=subdivision, years=())
    except NotImplementedError:
        return False
    return True


@functools.lru_cache(maxsize=4096)
def _country_holidays(country: str, subdivision: str | None, year: int) -> frozenset[date]:
    """The holiday dates of one year (a frozenset: membership is a hash lookup)."""
    # The neighbouring years are generated too: an observed day can fall in the previous year
    # (New Year's Day on a Saturday is observed on Friday 31 December in the US).
    generated = holidays_lib.country_holidays(
        country, subdiv=subdivision, years=range(year - 1, year + 2)
    )
    return frozenset(day for day in generated if day.year == year)


class _Schedule:
    """The computing side of a calendar: weekly rules, holidays and the per-day span cache.

    Shared by every :class:`BusinessCalendar` with the same rules (id and version aside), so a
    calendar rebuilt per request still finds its days computed.
    """

    __slots__ = ("country", "days", "explicit_holidays", "subdivision", "tz", "week")

    def __init__(
        self,
        timezone: str,
        week: _WeekRules,
        explicit_holidays: frozenset[date],
        country: str | None,
        subdivision: str | None,
    ) -> None:
        self.tz = ZoneInfo(timezone)
        self.week = week
        self.explicit_holidays = explicit_holidays
        self.country = country
        self.subdivision = subdivision
        # ordinal of a local date -> (open spans in UTC, their total length)
        self.days: dict[int, tuple[tuple[_Span, ...], timedelta]] = {}

    def is_holiday(self, day: date) -> bool:
        if day in self.explicit_holidays:
            return True
        if self.country is None:
            return False
        return day in _country_holidays(self.country, self.subdivision, day.year)

    def ordinal(self, at_utc: datetime) -> int:
        """The ordinal of the local date of a UTC instant."""
        return at_utc.astimezone(self.tz).toordinal()

    def day(self, ordinal: int) -> tuple[tuple[_Span, ...], timedelta]:
        """The open spans (UTC, ordered, non-touching) of one local date, and their total."""
        cached = self.days.get(ordinal)
        if cached is not None:
            return cached
        if len(self.days) >= _MAX_CACHED_DAYS:
            self.days.clear()
        spans = self._compute_day(date.fromordinal(ordinal))
        entry = (spans, sum((end - start for start, end in spans), _ZERO))
        self.days[ordinal] = entry
        return entry

    def _compute_day(self, day: date) -> tuple[_Span, ...]:
        rules = self.week[day.weekday()]
        if not rules or self.is_holiday(day):
            return ()
        midnight = datetime(day.year, day.month, day.day)
        offsets = {_offset(midnight.replace(tzinfo=self.tz, fold=fold)) for fold in (0, 1)} | {
            _offset((midnight + _DAY).replace(tzinfo=self.tz, fold=fold)) for fold in (0, 1)
        }
        # The local date read as if it were UTC; subtracting an offset gives the real instant.
        base = midnight.replace(tzinfo=UTC)
        if len(offsets) == 1:
            # The common case: one offset the whole day, so local time maps linearly to UTC.
            shift = base - offsets.pop()
            return tuple((shift + _MINUTE * start, shift + _MINUTE * end) for start, end in rules)
        return self._compute_transition_day(base, rules, offsets)

    def _compute_transition_day(
        self, base: datetime, rules: tuple[tuple[int, int], ...], offsets: set[timedelta]
    ) -> tuple[_Span, ...]:
        # Every instant whose local date is this day lies in [lo, hi); split that window where
        # the offset changes, and within each piece local time is UTC plus a constant again.
        lo = base - max(offsets)
        hi = base + _DAY - min(offsets)
        spans: list[_Span] = []
        for piece_start, piece_end, offset in _offset_pieces(self.tz, lo, hi):
            shift = base - offset
            for start, end in rules:
                span_start = max(shift + _MINUTE * start, piece_start)
                span_end = min(shift + _MINUTE * end, piece_end)
                if span_start >= span_end:
                    continue  # the interval lies in a gap, or outside this piece
                if spans and spans[-1][1] == span_start:
                    spans[-1] = (spans[-1][0], span_end)  # one interval cut by the transition
                else:
                    spans.append((span_start, span_end))
        return tuple(spans)


def _offset_pieces(
    tz: ZoneInfo, lo: datetime, hi: datetime
) -> list[tuple[datetime, datetime, timedelta]]:
    """Split ``[lo, hi)`` into pieces of constant UTC offset (transitions found by bisection).

    Transitions fall on whole seconds, so bisecting over POSIX seconds finds them exactly. Two
    transitions that cancel out inside the window (no such day exists in tzdata) would be missed.
    """
    lo_s = (lo - _EPOCH) // _SECOND
    hi_s = -((_EPOCH - hi) // _SECOND)  # ceiling

    def offset_at(second: int) -> timedelta:
        return _offset(datetime.fromtimestamp(second, tz))

    pieces: list[tuple[datetime, datetime, timedelta]] = []
    piece_start = lo_s
    while piece_start < hi_s:
        offset = offset_at(piece_start)
        if offset_at(hi_s - 1) == offset:
            pieces.append((_from_seconds(piece_start), _from_seconds(hi_s), offset))
            break
        same, changed = piece_start, hi_s - 1  # offset_at(same) == offset != offset_at(changed)
        while changed - same > 1:
            middle = (same + changed) // 2
            if offset_at(middle) == offset:
                same = middle
            else:
                changed = middle
        pieces.append((_from_seconds(piece_start), _from_seconds(changed), offset))
        piece_start = changed
    return pieces


def _from_seconds(second: int) -> datetime:
    return _EPOCH + timedelta(seconds=second)


def _offset(aware: datetime) -> timedelta:
    offset = aware.utcoffset()
    if offset is None:  # pragma: no cover - ZoneInfo always answers
        raise ValueError(f"no UTC offset for {aware!r}")
    return offset


def _week_rules(intervals: Iterable[OpeningInterval]) -> _WeekRules:
    """Per weekday, the sorted intervals with adjacent ones merged (9-12 + 12-17 -> 9-17)."""
    week: list[list[tuple[int, int]]] = [[] for _ in range(7)]
    for interval in sorted(intervals, key=lambda i: (i.weekday, i.start_minute)):
        rules = week[interval.weekday]
        if rules and rules[-1][1] == interval.start_minute:
            rules[-1] = (rules[-1][0], interval.end_minute)
        else:
            rules.append((interval.start_minute, interval.end_minute))
    return tuple(tuple(rules) for rules in week)


_schedules: dict[tuple[str, _WeekRules, frozenset[date], str | None, str | None], _Schedule] = {}


def _schedule_for(calendar: BusinessCalendar) -> _Schedule:
    key = (
        calendar.timezone,
        _week_rules(calendar.intervals),
        calendar.holidays,
        calendar.holiday_country,
        calendar.holiday_subdivision,
    )
    schedule = _schedules.get(key)
    if schedule is None:
        if len(_schedules) >= _MAX_SCHEDULES:
            del _schedules[next(iter(_schedules))]  # drop the oldest
        schedule = _Schedule(*key)
        _schedules[key] = schedule
    return schedule


def _require_aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got naive {value!r}")
    return value


def _utc(value: datetime, name: str) -> datetime:
    return _require_aware(value, name).astimezone(UTC)
