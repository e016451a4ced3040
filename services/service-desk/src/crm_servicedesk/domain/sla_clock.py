"""SLA clocks: how much of a target has elapsed, with pauses, and when it comes due.

A clock runs from ``started_at`` on either the **wall** clock (real time) or the **business**
clock (open time of a :class:`~crm_calendar.business_calendar.BusinessCalendar`). Pauses (e.g.
while a ticket waits on the customer) are measured on the same clock, so a pause that lies
entirely outside business hours moves nothing on the business clock. A clock is an immutable
value: :meth:`SlaClock.paused` and :meth:`SlaClock.resumed` return new clocks.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from crm_calendar.business_calendar import BusinessCalendar

_ZERO = timedelta(0)


class ClockKind(StrEnum):
    """Which time an SLA target counts."""

    BUSINESS = "business"
    WALL = "wall"


@dataclass(frozen=True, slots=True)
class Pause:
    """A stretch during which the clock does not run; ``end`` is ``None`` while still paused."""

    start: datetime
    end: datetime | None = None

    def __post_init__(self) -> None:
        _require_aware(self.start, "pause start")
        if self.end is not None:
            _require_aware(self.end, "pause end")
            # In UTC: two times of one zone compare by wall clock, ignoring fold.
            if self.end.astimezone(UTC) < self.start.astimezone(UTC):
                raise ValueError(f"pause ends ({self.end}) before it starts ({self.start})")


@dataclass(frozen=True, slots=True)
class SlaClock:
    """The clock of one SLA target (first response, next response, resolution)."""

    kind: ClockKind
    started_at: datetime
    target: timedelta
    pauses: tuple[Pause, ...] = ()

    def __post_init__(self) -> None:
        _require_aware(self.started_at, "started_at")
        if self.target < _ZERO:
            raise ValueError(f"target must not be negative, got {self.target}")
        # Accept "business"/"wall" and lists as rebuilt from stored events.
        object.__setattr__(self, "kind", ClockKind(self.kind))
        object.__setattr__(self, "pauses", tuple(self.pauses))

    @property
    def is_paused(self) -> bool:
        """Whether a pause is open (the clock is stopped now)."""
        return any(pause.end is None for pause in self.pauses)

    def elapsed(self, calendar: BusinessCalendar | None, now: datetime) -> timedelta:
        """Clock time in ``[started_at, now)`` outside the pauses (an open pause lasts until now).

        ``calendar`` is required for a business clock and ignored for a wall clock.
        """
        now_utc = _require_aware(now, "now").astimezone(UTC)
        measure = _Measure(self.kind, calendar)
        total = _ZERO
        for run_start, run_end in self._runs():
            if run_start >= now_utc:
                break
            total += measure.between(
                run_start, now_utc if run_end is None else min(run_end, now_utc)
            )
        return total

    def due_at(self, calendar: BusinessCalendar | None) -> datetime | None:
        """The earliest instant (UTC) at which :meth:`elapsed` reaches the target.

        Takes the recorded pauses into account; ``None`` while paused (an open pause), because
        the due time depends on when the clock resumes. A zero target is due at ``started_at``.
        """
        return self._reaches(calendar, self.target)

    def at_risk_at(
        self, calendar: BusinessCalendar | None, fraction: float = 0.8
    ) -> datetime | None:
        """The earliest instant (UTC) at which ``fraction`` of the target has elapsed.

        ``None`` while paused, like :meth:`due_at`.
        """
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"fraction must be between 0 and 1, got {fraction}")
        return self._reaches(calendar, self.target * fraction)

    def paused(self, at: datetime) -> SlaClock:
        """This clock paused at ``at``; already paused: unchanged (pausing is idempotent).

        A pause is never recorded before the clock started or before the end of an earlier pause
        (``at`` is clamped), so the pauses stay ordered and disjoint.
        """
        if self.is_paused:
            return self
        at_utc = _require_aware(at, "at").astimezone(UTC)
        earliest = max(
            [self.started_at.astimezone(UTC)]
            + [pause.end.astimezone(UTC) for pause in self.pauses if pause.end is not None]
        )
        return replace(self, pauses=(*self.pauses, Pause(max(at_utc, earliest))))

    def resumed(self, at: datetime) -> SlaClock:
        """This clock resumed at ``at``; already running: unchanged (resuming is idempotent).

        A resume before the pause began closes the pause at its start (a zero-length pause).
        """
        at_utc = _require_aware(at, "at").astimezone(UTC)
        pauses = list(self.pauses)
        for index, pause in enumerate(pauses):
            if pause.end is None:
                pauses[index] = Pause(pause.start, max(at_utc, pause.start.astimezone(UTC)))
                return replace(self, pauses=tuple(pauses))
        return self

    def _reaches(self, calendar: BusinessCalendar | None, amount: timedelta) -> datetime | None:
        measure = _Measure(self.kind, calendar)
        if self.is_paused:
            # Even a target reached before the pause reports None: one rule for callers, who
            # recompute due times on resume anyway.
            return None
        remaining = amount
        for run_start, run_end in self._runs():
            if run_end is None:
                return measure.advance(run_start, remaining)
            available = measure.between(run_start, run_end)
            if available >= remaining:
                return measure.advance(run_start, remaining)
            remaining -= available
        return None  # pragma: no cover - without an open pause the last run is open-ended

    def _runs(self) -> Iterator[tuple[datetime, datetime | None]]:
        """The stretches (UTC) during which the clock runs, in order; ``None`` = open-ended.

        Pauses are clamped to ``started_at`` and merged when they overlap, so clocks rebuilt
        from events in any shape measure the union of their pauses once.
        """
        cursor = self.started_at.astimezone(UTC)
        for start, end in _merged_pauses(self.pauses):
            if end is not None and end <= cursor:
                continue
            if start > cursor:
                yield cursor, start
            if end is None:
                return
            cursor = max(cursor, end)
        yield cursor, None


def _merged_pauses(pauses: tuple[Pause, ...]) -> list[tuple[datetime, datetime | None]]:
    ordered = sorted(
        (
            (pause.start.astimezone(UTC), None if pause.end is None else pause.end.astimezone(UTC))
            for pause in pauses
        ),
        key=lambda p: p[0],
    )
    merged: list[tuple[datetime, datetime | None]] = []
    for start, end in ordered:
        if merged:
            last_start, last_end = merged[-1]
            if last_end is None:
                break  # an open pause swallows everything after it
            if start <= last_end:
                merged[-1] = (last_start, None if end is None else max(last_end, end))
                continue
        merged.append((start, end))
    return merged


class _Measure:
    """Length of a stretch and "time after a stretch" on the clock's kind of time."""

    __slots__ = ("calendar", "kind")

    def __init__(self, kind: ClockKind, calendar: BusinessCalendar | None) -> None:
        if kind is ClockKind.BUSINESS and calendar is None:
            raise ValueError("a business clock needs a business calendar")
        self.kind = kind
        self.calendar = calendar

    def between(self, start: datetime, end: datetime) -> timedelta:
        if self.calendar is not None and self.kind is ClockKind.BUSINESS:
            return self.calendar.business_time(start, end)
        return max(end - start, _ZERO)

    def advance(self, start: datetime, amount: timedelta) -> datetime:
        if self.calendar is not None and self.kind is ClockKind.BUSINESS:
            return self.calendar.add_business_time(start, amount)
        return start + amount


def _require_aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got naive {value!r}")
    return value
