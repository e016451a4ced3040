"""Appointments: work calendars of reps and teams, free slots, and the bookings that take them.

A rep (or a team) takes appointments inside a **work calendar**: weekly working hours in an
IANA time zone, minus explicit holidays and a country's public holidays, with the DST rules of
:class:`crm_calendar.BusinessCalendar` (a wall-clock time that does not happen on a spring-
forward day is never open; a repeated hour is open twice). A team's calendar also lists its
member reps; a member is free for the team inside the team's calendar **and** inside the
member's own calendar, if the member has one.

Time is cut into 5-minute **granules** (UTC). An appointment starts and ends on granule marks,
and it holds the granules of ``[start, end + buffer)``, the buffer being the minutes its calendar
keeps free after each appointment. A **free slot** of length L is ``[s, s + L)`` such that every
instant of it is open, ``s`` is not in the past and ``[s, s + L + buffer)`` meets no granule an
appointment holds. Slot starts are aligned to the start of each open span (a local opening
time), rounded up to a granule mark, then every ``step``.

Status: BOOKED → CONFIRMED; BOOKED or CONFIRMED → CANCELLED; a reschedule keeps the status and
moves the times (its iCalendar ``sequence`` goes up, as it does on cancel). Anything else is
FAILED_PRECONDITION ``ILLEGAL_APPOINTMENT_TRANSITION``.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from crm_calendar import BusinessCalendar, OpeningInterval
from crm_platform.errors import FailedPrecondition, InvalidArgument
from crm_sales.domain._checks import Violations, check_version

GRANULE = timedelta(minutes=5)
GRANULE_MINUTES = 5
MAX_RANGE = timedelta(days=62)
MAX_APPOINTMENT = timedelta(hours=8)
MAX_BUFFER_MINUTES = 240
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)
"""Appointments and searches lie in [EARLIEST, LATEST): far enough for any diary, and well away
from the ends of ``datetime``."""

ILLEGAL_APPOINTMENT_TRANSITION = "ILLEGAL_APPOINTMENT_TRANSITION"
SLOT_TAKEN = "SLOT_TAKEN"
NO_FREE_MEMBER = "NO_FREE_MEMBER"

_OWNER_ID = re.compile(r"^[A-Za-z0-9_.@:-]{1,128}$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Span = tuple[datetime, datetime]


class OwnerKind(StrEnum):
    """Whose work calendar."""

    REP = "rep"
    TEAM = "team"


class AppointmentStatus(StrEnum):
    """Where an appointment is."""

    BOOKED = "booked"
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"


class SlotTaken(FailedPrecondition):
    """The slot, or the buffer after it, overlaps an appointment already booked."""

    def __init__(self, rep_id: str, start: datetime, end: datetime) -> None:
        super().__init__(
            SLOT_TAKEN,
            f"reps/{rep_id}",
            f"is not free from {start.isoformat()} to {end.isoformat()}: the slot (or the "
            "buffer kept after it) overlaps another appointment; search the free slots again",
        )


def known_time_zone(name: str) -> bool:
    """Whether ``name`` is an IANA time zone this machine's tz database knows."""
    if not name or name != name.strip() or len(name) > 64:
        return False
    try:
        ZoneInfo(name)
    except (KeyError, ValueError, OSError):  # not found, malformed, absurd path
        return False
    return True


def check_time_zone(name: str, field: str, violations: Violations) -> None:
    """A violation on ``field`` unless ``name`` is a known IANA time zone."""
    if not known_time_zone(name):
        violations.add(field, f"unknown IANA time zone {name[:64]!r} (e.g. 'Europe/Berlin')")


def on_granule(at: datetime) -> bool:
    """Whether ``at`` is on a 5-minute mark (UTC; zero seconds)."""
    return (at - _EPOCH) % GRANULE == timedelta(0)


def granule_ceil(at: datetime) -> datetime:
    """The first 5-minute mark at or after ``at``."""
    rest = (at - _EPOCH) % GRANULE
    return at if not rest else at + (GRANULE - rest)


def granules(start: datetime, end: datetime) -> list[int]:
    """The granules of ``[start, end)`` (both on marks), as minutes since the epoch."""
    first = (start - _EPOCH) // timedelta(minutes=1)
    last = (end - _EPOCH) // timedelta(minutes=1)
    return list(range(first, last, GRANULE_MINUTES))


# --- work calendars ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorkCalendarInput:
    """What a caller sets on a work calendar (holidays as given, "YYYY-MM-DD")."""

    owner_kind: OwnerKind | None
    owner_id: str
    time_zone: str
    working_hours: tuple[OpeningInterval, ...]
    holidays: tuple[str, ...] = ()
    holiday_country: str = ""
    holiday_subdivision: str = ""
    buffer_minutes: int = 0
    member_rep_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class WorkCalendar:
    """A rep's or team's work calendar at one version."""

    tenant_id: str
    owner_kind: OwnerKind
    owner_id: str
    calendar: BusinessCalendar
    buffer_minutes: int
    member_rep_ids: tuple[str, ...]
    version: int
    update_time: datetime

    @property
    def key(self) -> str:
        """``rep:<id>`` or ``team:<id>``: its storage key in the tenant and its events' key."""
        return owner_key(self.owner_kind, self.owner_id)

    @property
    def buffer(self) -> timedelta:
        """The time kept free after each appointment."""
        return timedelta(minutes=self.buffer_minutes)

    @classmethod
    def define(
        cls,
        *,
        tenant_id: str,
        fields: WorkCalendarInput,
        current: WorkCalendar | None,
        expected_version: int | None,
        now: datetime,
        field_prefix: str = "calendar",
    ) -> WorkCalendar:
        """The calendar ``fields`` describe, as the next version of ``current`` (or version 1):
        ``InvalidArgument`` listing every bad field, then ``StaleVersion``."""
        violations = Violations()
        if fields.owner_kind is None:
            violations.add(f"{field_prefix}.owner_kind", "is required (rep or team)")
        if not _OWNER_ID.match(fields.owner_id):
            violations.add(
                f"{field_prefix}.owner_id", "must be 1-128 characters of A-Z, a-z, 0-9, _.@:-"
            )
        if fields.buffer_minutes % GRANULE_MINUTES or not (
            0 <= fields.buffer_minutes <= MAX_BUFFER_MINUTES
        ):
            violations.add(
                f"{field_prefix}.buffer_minutes",
                f"must be a multiple of {GRANULE_MINUTES} from 0 to {MAX_BUFFER_MINUTES}",
            )
        members = tuple(m.strip() for m in fields.member_rep_ids)
        if fields.owner_kind is OwnerKind.TEAM:
            if not members:
                violations.add(f"{field_prefix}.member_rep_ids", "a team needs at least one rep")
            for index, member in enumerate(members):
                if not _OWNER_ID.match(member):
                    violations.add(
                        f"{field_prefix}.member_rep_ids[{index}]",
                        "must be 1-128 characters of A-Z, a-z, 0-9, _.@:-",
                    )
            if len(set(members)) != len(members):
                violations.add(f"{field_prefix}.member_rep_ids", "must not repeat a rep")
        elif members:
            violations.add(f"{field_prefix}.member_rep_ids", "only a team has members")
        for index, interval in enumerate(fields.working_hours):
            for name in ("start_minute", "end_minute"):
                if getattr(interval, name) % GRANULE_MINUTES:
                    violations.add(
                        f"{field_prefix}.working_hours[{index}].{name}",
                        f"must be a multiple of {GRANULE_MINUTES} minutes",
                    )
        holidays: list[date] = []
        for index, text in enumerate(fields.holidays):
            try:
                holidays.append(date.fromisoformat(text))
            except ValueError:
                violations.add(
                    f"{field_prefix}.holidays[{index}]", f"{text[:16]!r} is not a date YYYY-MM-DD"
                )
        calendar: BusinessCalendar | None = None
        try:
            calendar = BusinessCalendar.create(
                calendar_id=owner_key(fields.owner_kind or OwnerKind.REP, fields.owner_id),
                version=(current.version + 1) if current else 1,
                timezone=fields.time_zone,
                intervals=fields.working_hours,
                holidays=holidays,
                holiday_country=fields.holiday_country,
                holiday_subdivision=fields.holiday_subdivision,
                field_path=field_prefix,
            )
        except InvalidArgument as exc:
            for violation in exc.violations:
                violations.add(
                    _calendar_path(violation.field, field_prefix),
                    _calendar_path(violation.description, field_prefix),
                )
        violations.raise_if_any()
        assert calendar is not None
        assert fields.owner_kind is not None
        if current is not None:
            check_version(f"calendars/{current.key}", expected_version, current.version)
        elif expected_version is not None:
            check_version(
                f"calendars/{owner_key(fields.owner_kind, fields.owner_id)}", expected_version, 0
            )
        return cls(
            tenant_id=tenant_id,
            owner_kind=fields.owner_kind,
            owner_id=fields.owner_id,
            calendar=calendar,
            buffer_minutes=fields.buffer_minutes,
            member_rep_ids=members,
            version=calendar.version,
            update_time=now,
        )


def owner_key(kind: OwnerKind, owner_id: str) -> str:
    """``rep:<id>`` or ``team:<id>``."""
    return f"{kind.value}:{owner_id}"


def _calendar_path(path: str, prefix: str) -> str:
    # crm_calendar names its fields timezone/intervals; the API calls them time_zone and
    # working_hours.
    return path.replace(f"{prefix}.timezone", f"{prefix}.time_zone").replace(
        f"{prefix}.intervals", f"{prefix}.working_hours"
    )


# --- free slots -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Busy:
    """What an appointment holds: ``[start, end + its buffer)``."""

    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class Slot:
    """A free slot of one rep."""

    start: datetime
    end: datetime
    rep_id: str


@dataclass(frozen=True, slots=True)
class SlotQuery:
    """A search: the range, the slot length and step, and the earliest start (now)."""

    range_start: datetime
    range_end: datetime
    length: timedelta
    step: timedelta
    not_before: datetime

    @classmethod
    def of(
        cls,
        *,
        range_start: datetime,
        range_end: datetime,
        slot_minutes: int,
        step_minutes: int,
        customer_time_zone: str,
        now: datetime,
    ) -> SlotQuery:
        """A checked query (``InvalidArgument`` listing every bad field); a step of 0 is the
        slot length."""
        violations = Violations()
        for name, value in (("range_start", range_start), ("range_end", range_end)):
            if not EARLIEST <= value < LATEST:
                violations.add(name, "must be between the years 2000 and 2999")
        if range_end <= range_start:
            violations.add("range_end", "must be after range_start")
        elif range_end - range_start > MAX_RANGE:
            violations.add("range_end", f"the range must be at most {MAX_RANGE.days} days long")
        if slot_minutes <= 0 or slot_minutes % GRANULE_MINUTES or slot_minutes > 480:
            violations.add("slot_minutes", f"must be a multiple of {GRANULE_MINUTES} from 5 to 480")
        step = step_minutes or slot_minutes
        if step <= 0 or step % GRANULE_MINUTES or step > 480:
            violations.add(
                "step_minutes", f"must be 0 or a multiple of {GRANULE_MINUTES} up to 480"
            )
        check_time_zone(customer_time_zone, "customer_time_zone", violations)
        violations.raise_if_any()
        return cls(
            range_start,
            range_end,
            timedelta(minutes=slot_minutes),
            timedelta(minutes=step),
            now,
        )


def open_spans(calendars: Sequence[BusinessCalendar], start: datetime, end: datetime) -> list[Span]:
    """The time inside ``[start, end)`` when every one of ``calendars`` is open (UTC spans in
    order)."""
    spans: list[Span] = list(calendars[0].open_spans(start, end))
    for other in calendars[1:]:
        spans = _intersect(spans, list(other.open_spans(start, end)))
    return spans


def _intersect(first: list[Span], second: list[Span]) -> list[Span]:
    out: list[Span] = []
    i = j = 0
    while i < len(first) and j < len(second):
        lo = max(first[i][0], second[j][0])
        hi = min(first[i][1], second[j][1])
        if lo < hi:
            out.append((lo, hi))
        if first[i][1] <= second[j][1]:
            i += 1
        else:
            j += 1
    return out


def slot_grid(spans: Sequence[Span], query: SlotQuery) -> Iterator[datetime]:
    """The candidate starts, in order: from each span's start rounded up to a granule mark,
    every ``query.step``, while the slot fits in the span and in the range, none before the
    range start or ``query.not_before``. ``spans`` may extend beyond the query's range (the
    alignment is to each span's real start)."""
    lowest = max(query.range_start, query.not_before)
    length, step = query.length, query.step
    for span_start, span_end in spans:
        origin = granule_ceil(span_start)
        last_end = min(span_end, query.range_end)
        candidate = origin
        if candidate < lowest:
            candidate = origin + step * -((origin - lowest) // step)  # first grid point >= lowest
        while candidate + length <= last_end:
            yield candidate
            candidate += step


class Holdings:
    """One rep's holdings, for "is ``[start, end)`` clear of them?" in logarithmic time.

    A rep's holdings never overlap (the claims forbid it), so sorted by start they are sorted
    by end too."""

    __slots__ = ("ends", "starts")

    def __init__(self, busy: Iterable[Busy]) -> None:
        ordered = sorted(busy, key=lambda b: b.start)
        self.starts = [b.start for b in ordered]
        self.ends = [b.end for b in ordered]

    def clear(self, start: datetime, end: datetime) -> bool:
        """Whether ``[start, end)`` meets no holding."""
        first_after = bisect.bisect_right(self.ends, start)  # the first holding ending later
        return first_after == len(self.ends) or self.starts[first_after] >= end


def free_slots(
    spans: Sequence[Span],
    busy: Iterable[Busy],
    query: SlotQuery,
    buffer: timedelta,
) -> Iterator[tuple[datetime, datetime]]:
    """The free slots of one rep, in start order: the :func:`slot_grid` starts whose
    ``[start, start + length + buffer)`` is clear of every ``busy``."""
    holdings = Holdings(busy)
    held_for = query.length + buffer
    for start in slot_grid(spans, query):
        if holdings.clear(start, start + held_for):
            yield start, start + query.length


@dataclass(frozen=True, slots=True)
class MemberGroup:
    """Team members who share their open spans (the team's calendar, and the same own one or
    none): one grid serves them all. ``members`` are (index in the team, rep id, busy)."""

    spans: Sequence[Span]
    members: Sequence[tuple[int, str, Iterable[Busy]]]


def calendar_rules(calendar: BusinessCalendar) -> tuple[object, ...]:
    """What decides a calendar's open time (not its id or version)."""
    return (
        calendar.timezone,
        calendar.intervals,
        calendar.holidays,
        calendar.holiday_country,
        calendar.holiday_subdivision,
    )


def group_members(
    members: Iterable[tuple[str, Sequence[BusinessCalendar], Sequence[Busy]]],
    start: datetime,
    end: datetime,
) -> list[MemberGroup]:
    """Team members (rep, the calendars it must be inside, its holdings), in team order, grouped
    by the rules of their calendars: one set of open spans in ``[start, end)`` per group (usually
    one for the whole team: a member's own calendar like the team's changes nothing)."""
    grouped: dict[frozenset[object], list[tuple[int, str, Sequence[Busy]]]] = {}
    calendars_of: dict[frozenset[object], list[BusinessCalendar]] = {}
    for index, (rep, calendars, busy) in enumerate(members):
        by_rules = {calendar_rules(c): c for c in calendars}
        key = frozenset(by_rules)
        grouped.setdefault(key, []).append((index, rep, busy))
        calendars_of[key] = list(by_rules.values())
    return [
        MemberGroup(open_spans(calendars_of[key], start, end), listed)
        for key, listed in grouped.items()
    ]


def team_free_slots(
    groups: Iterable[MemberGroup], query: SlotQuery, buffer: timedelta
) -> list[Slot]:
    """A team's offer, in start order: each start once, with the first member (in team order)
    free then."""
    chosen: dict[datetime, tuple[int, Slot]] = {}
    held_for = query.length + buffer
    for group in groups:
        members = [(index, rep, Holdings(busy)) for index, rep, busy in group.members]
        for start in slot_grid(group.spans, query):
            end = start + held_for
            for index, rep, holdings in members:
                if holdings.clear(start, end):
                    if start not in chosen or chosen[start][0] > index:
                        chosen[start] = (index, Slot(start, start + query.length, rep))
                    break
    return [chosen[start][1] for start in sorted(chosen)]


def outside_calendar(
    calendars: Sequence[tuple[str, BusinessCalendar]], start: datetime, end: datetime
) -> str | None:
    """Why ``[start, end)`` is not wholly inside every calendar, or ``None`` if it is."""
    for name, calendar in calendars:
        if calendar.business_time(start, end) != end - start:
            return (
                f"is outside the working hours of {name} ({calendar.timezone}; holidays and "
                "closed days count as outside): search the free slots"
            )
    return None


# --- appointments -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BookingInput:
    """What a booking asks for."""

    rep_id: str
    team_id: str
    start: datetime
    end: datetime
    contact_id: str = ""
    lead_id: str = ""
    opportunity_id: str = ""
    customer_name: str = ""
    customer_email: str = ""
    customer_phone: str = ""
    customer_time_zone: str = ""
    subject: str = ""

    def cleaned(self) -> BookingInput:
        """Surrounding blanks removed from the text fields."""
        return replace(
            self,
            **{
                name: getattr(self, name).strip()
                for name in (
                    "rep_id",
                    "team_id",
                    "contact_id",
                    "lead_id",
                    "opportunity_id",
                    "customer_name",
                    "customer_email",
                    "customer_phone",
                    "subject",
                )
            },
        )

    def check(self, now: datetime) -> None:
        """``InvalidArgument`` listing every bad field (not yet the calendar)."""
        violations = Violations()
        if not self.rep_id and not self.team_id:
            violations.add("rep_id", "give a rep_id, a team_id, or both")
        for name in ("rep_id", "team_id"):
            value = getattr(self, name)
            if value and not _OWNER_ID.match(value):
                violations.add(name, "must be 1-128 characters of A-Z, a-z, 0-9, _.@:-")
        check_times(self.start, self.end, now, violations)
        check_time_zone(self.customer_time_zone, "customer_time_zone", violations)
        if not self.contact_id and not (
            self.customer_name and (self.customer_email or self.customer_phone)
        ):
            violations.add(
                "contact_id",
                "without a contact_id, give customer_name and customer_email or customer_phone "
                "(a lead is made from them)",
            )
        if self.customer_email and "@" not in self.customer_email:
            violations.add("customer_email", "must be an e-mail address")
        violations.raise_if_any()


def check_times(
    start: datetime,
    end: datetime,
    now: datetime,
    violations: Violations,
    *,
    start_field: str = "start_time",
    end_field: str = "end_time",
) -> None:
    """Violations for times that are off the 5-minute marks, not in the future, out of order,
    too long, or out of the supported years."""
    in_years = True
    for name, value in ((start_field, start), (end_field, end)):
        if not EARLIEST <= value < LATEST:
            violations.add(name, "must be between the years 2000 and 2999")
            in_years = False
        elif not on_granule(value):
            violations.add(name, "must be on a 5-minute mark (hh:00, hh:05, ..., zero seconds)")
    if not in_years:
        return
    if start < now:
        violations.add(start_field, "must be in the future")
    if end <= start:
        violations.add(end_field, "must be after start_time")
    elif end - start > MAX_APPOINTMENT:
        violations.add(end_field, "an appointment lasts at most 8 hours")


_TRANSITIONS: dict[AppointmentStatus, frozenset[AppointmentStatus]] = {
    AppointmentStatus.BOOKED: frozenset({AppointmentStatus.CONFIRMED, AppointmentStatus.CANCELLED}),
    AppointmentStatus.CONFIRMED: frozenset({AppointmentStatus.CANCELLED}),
    AppointmentStatus.CANCELLED: frozenset(),
}


@dataclass(frozen=True, slots=True)
class Appointment:
    """An appointment at one version."""

    id: str
    tenant_id: str
    rep_id: str
    team_id: str
    start: datetime
    end: datetime
    buffer_minutes: int
    status: AppointmentStatus
    contact_id: str
    lead_id: str
    lead_created: bool
    """Whether the booking created ``lead_id`` (an unknown person)."""
    opportunity_id: str
    customer_name: str
    customer_email: str
    customer_phone: str
    customer_time_zone: str
    subject: str
    cancel_reason: str
    sequence: int
    event_key: str
    """The Kafka key of its events (see appointments_events.proto), chosen at booking."""
    version: int
    create_time: datetime
    update_time: datetime

    @classmethod
    def book(
        cls,
        *,
        id: str,
        tenant_id: str,
        rep_id: str,
        fields: BookingInput,
        lead_id: str,
        lead_created: bool,
        buffer_minutes: int,
        event_key: str,
        now: datetime,
    ) -> Appointment:
        """Version 1, BOOKED, sequence 0 (``fields`` already checked)."""
        return cls(
            id=id,
            tenant_id=tenant_id,
            rep_id=rep_id,
            team_id=fields.team_id,
            start=fields.start,
            end=fields.end,
            buffer_minutes=buffer_minutes,
            status=AppointmentStatus.BOOKED,
            contact_id=fields.contact_id,
            lead_id=lead_id,
            lead_created=lead_created,
            opportunity_id=fields.opportunity_id,
            customer_name=fields.customer_name,
            customer_email=fields.customer_email,
            customer_phone=fields.customer_phone,
            customer_time_zone=fields.customer_time_zone,
            subject=fields.subject,
            cancel_reason="",
            sequence=0,
            event_key=event_key,
            version=1,
            create_time=now,
            update_time=now,
        )

    @property
    def subject_name(self) -> str:
        """The aggregate's name in errors and events."""
        return f"appointments/{self.id}"

    @property
    def claim_end(self) -> datetime:
        """The end of what it holds: its end plus its buffer."""
        return self.end + timedelta(minutes=self.buffer_minutes)

    @property
    def holds(self) -> bool:
        """Whether it holds its slot (not cancelled)."""
        return self.status is not AppointmentStatus.CANCELLED

    def granules(self) -> list[int]:
        """The granules it holds."""
        return granules(self.start, self.claim_end)

    def confirm(self, expected_version: int | None, now: datetime) -> Appointment:
        """BOOKED → CONFIRMED."""
        return self._become(AppointmentStatus.CONFIRMED, expected_version, now)

    def cancel(self, reason: str, expected_version: int | None, now: datetime) -> Appointment:
        """BOOKED or CONFIRMED → CANCELLED (sequence + 1)."""
        cancelled = self._become(AppointmentStatus.CANCELLED, expected_version, now)
        return replace(cancelled, cancel_reason=reason.strip(), sequence=self.sequence + 1)

    def reschedule(
        self, start: datetime, end: datetime, expected_version: int | None, now: datetime
    ) -> Appointment:
        """The same appointment at new times (status kept, sequence + 1): ``InvalidArgument``
        for bad times, then ``StaleVersion``, then FAILED_PRECONDITION once cancelled."""
        violations = Violations()
        check_times(start, end, now, violations)
        violations.raise_if_any()
        check_version(self.subject_name, expected_version, self.version)
        if not self.holds:
            raise FailedPrecondition(
                ILLEGAL_APPOINTMENT_TRANSITION,
                self.subject_name,
                "is cancelled: book a new appointment instead",
            )
        return replace(
            self,
            start=start,
            end=end,
            sequence=self.sequence + 1,
            version=self.version + 1,
            update_time=now,
        )

    def _become(
        self, status: AppointmentStatus, expected_version: int | None, now: datetime
    ) -> Appointment:
        check_version(self.subject_name, expected_version, self.version)
        if status not in _TRANSITIONS[self.status]:
            raise FailedPrecondition(
                ILLEGAL_APPOINTMENT_TRANSITION,
                self.subject_name,
                f"is {self.status.value}: cannot become {status.value}",
            )
        return replace(self, status=status, version=self.version + 1, update_time=now)
