"""The process clock: what "now" is for the facts a service records.

In production it is the wall clock (UTC). For a demonstration or a simulation it can run ahead of
itself: it starts some time in the past and runs fast until it has caught up with real time,
then it *is* real time. So a few simulated days of a company's life can be played in minutes
while every service stamps its facts (events, SLA due times, timers) on the same simulated
clock, and the numbers end in the present, continuous with live traffic.

Configured by three environment variables, all or none:

``CRM_CLOCK_START``
    The simulated instant the clock reads at ``CRM_CLOCK_ORIGIN`` (ISO-8601 with a UTC offset,
    e.g. ``2026-03-02T09:00:00+00:00``).
``CRM_CLOCK_ORIGIN``
    Unix seconds of the wall-clock instant at which the clock reads ``CRM_CLOCK_START`` (every
    process of a stack is given the same origin, so they all read the same time).
``CRM_CLOCK_RATE``
    How many simulated seconds pass per wall second until it catches up (e.g. ``1440``: one
    simulated day per wall minute); a positive number.

The reading is ``min(START + RATE * (wall - ORIGIN), wall)``: monotone, continuous, never in the
future. Unset, the clock is the wall clock. :func:`accelerated_env` computes the variables for a
stack (the dev stack and the simulator use the same formula: :class:`Clock`).

Leases, outbox bookkeeping and TTLs keep the wall clock: they coordinate processes in real time.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

START_VAR = "CRM_CLOCK_START"
ORIGIN_VAR = "CRM_CLOCK_ORIGIN"
RATE_VAR = "CRM_CLOCK_RATE"
CLOCK_VARS = (START_VAR, ORIGIN_VAR, RATE_VAR)

WallClock = Callable[[], float]
"""Unix seconds of real time (``time.time``; tests give a fake)."""


def _aware_utc(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must carry a UTC offset, got {value.isoformat()}")
    return value.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Acceleration:
    """Where the simulated clock starts and how fast it runs until it meets real time."""

    start: datetime
    """The simulated instant read at ``origin``."""
    origin: float
    """Unix seconds (wall) at which the clock reads ``start``."""
    rate: float
    """Simulated seconds per wall second."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", _aware_utc(self.start, "start"))
        if not self.rate > 0 or self.rate == float("inf"):
            raise ValueError(f"rate must be a positive finite number, got {self.rate}")

    def simulated(self, wall: float) -> datetime:
        """The fast line: the simulated instant at wall time ``wall``, before the ``min``."""
        return self.start + timedelta(seconds=self.rate * (wall - self.origin))

    def wall_when_simulated(self, instant: datetime) -> float:
        """The wall time at which the fast line reaches ``instant``."""
        return self.origin + (instant - self.start).total_seconds() / self.rate

    def caught_up_at(self) -> float | None:
        """The wall time at which the clock becomes real time; None if it never does (a rate of
        at most 1 starting in the past)."""
        behind = self.origin - self.start.timestamp()  # how far in the past it starts
        if behind <= 0:
            return self.origin  # starts at (or, clamped, after) real time
        if self.rate <= 1:
            return None
        return self.origin + behind / (self.rate - 1)


@dataclass(frozen=True, slots=True)
class Clock:
    """A clock for facts: the wall clock, or an accelerated one catching up with it.

    ``now()`` is timezone-aware UTC. Services take one in their bootstrap
    (:meth:`from_env`) and hand its ``now`` to their use cases; tests build one directly,
    with a fake ``wall``.
    """

    acceleration: Acceleration | None = None
    wall: WallClock = field(default=time.time, compare=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Clock:
        """The clock the environment describes (see the module); the wall clock when none of
        the variables is set. Raises ``ValueError`` on a partial or malformed configuration
        (a service must not start on a clock it misread)."""
        env = os.environ if environ is None else environ
        values = {name: env.get(name, "").strip() for name in CLOCK_VARS}
        given = [name for name, value in values.items() if value]
        if not given:
            return cls()
        if len(given) != len(CLOCK_VARS):
            missing = ", ".join(name for name in CLOCK_VARS if name not in given)
            raise ValueError(f"the accelerated clock needs all of its variables; missing {missing}")
        try:
            start = datetime.fromisoformat(values[START_VAR].replace("Z", "+00:00"))
            origin = float(values[ORIGIN_VAR])
            rate = float(values[RATE_VAR])
        except ValueError as exc:
            raise ValueError(f"malformed clock variable: {exc}") from exc
        return cls(Acceleration(_aware_utc(start, START_VAR), origin, rate))

    @classmethod
    def accelerated(
        cls,
        start: datetime,
        rate: float,
        origin: float | None = None,
        *,
        wall: WallClock = time.time,
    ) -> Clock:
        """A clock reading ``start`` at wall time ``origin`` (default: now) and running
        ``rate`` times faster until it catches up with real time."""
        return cls(Acceleration(start, wall() if origin is None else origin, rate), wall)

    @property
    def is_accelerated(self) -> bool:
        """True while the clock is behind real time (running fast)."""
        if self.acceleration is None:
            return False
        wall = self.wall()
        return self.acceleration.simulated(wall).timestamp() < wall

    def now(self) -> datetime:
        """The current reading, timezone-aware in UTC."""
        return self.at_wall(self.wall())

    def at_wall(self, wall: float) -> datetime:
        """The reading at wall time ``wall`` (unix seconds)."""
        real = datetime.fromtimestamp(wall, UTC)
        if self.acceleration is None:
            return real
        return min(self.acceleration.simulated(wall), real)

    def wall_time_of(self, instant: datetime) -> float:
        """The wall time (unix seconds) at which the clock reads ``instant``."""
        instant = _aware_utc(instant, "instant")
        reached = instant.timestamp()  # the real-time line
        if self.acceleration is not None:
            reached = max(reached, self.acceleration.wall_when_simulated(instant))
        return reached

    def wall_seconds_until(self, instant: datetime) -> float:
        """Wall seconds until the clock reads ``instant`` (0 if it already does): how long to
        sleep for something due then."""
        return max(0.0, self.wall_time_of(instant) - self.wall())

    def after_wall_seconds(self, seconds: float) -> datetime:
        """What the clock will read ``seconds`` of wall time from now (a retry "in 5 s"
        expressed as a due time on this clock)."""
        return self.at_wall(self.wall() + seconds)

    def env(self) -> dict[str, str]:
        """The environment variables that give a process this clock (empty: the wall clock)."""
        if self.acceleration is None:
            return {}
        return accelerated_env(
            self.acceleration.start, self.acceleration.rate, self.acceleration.origin
        )


def accelerated_env(start: datetime, rate: float, origin: float | None = None) -> dict[str, str]:
    """The environment of a process whose clock reads ``start`` at wall time ``origin``
    (default: now) and runs ``rate`` times faster until it meets real time."""
    acceleration = Acceleration(start, time.time() if origin is None else origin, rate)
    return {
        START_VAR: acceleration.start.isoformat(),
        ORIGIN_VAR: repr(acceleration.origin),
        RATE_VAR: repr(acceleration.rate),
    }


def catch_up_rate(behind: timedelta, within: timedelta) -> float:
    """The rate at which a clock starting ``behind`` real time catches up ``within`` that much
    wall time (it must gain ``behind`` while real time moves on by ``within``)."""
    if behind <= timedelta(0) or within <= timedelta(0):
        raise ValueError("both durations must be positive")
    return 1.0 + behind / within


_process_clock: tuple[tuple[str, ...], Clock] | None = None


def process_clock() -> Clock:
    """The clock of this process, from its environment (re-read when the variables change, so
    a test may set them)."""
    global _process_clock
    key = tuple(os.environ.get(name, "") for name in CLOCK_VARS)
    cached = _process_clock
    if cached is not None and cached[0] == key:
        return cached[1]
    clock = Clock.from_env()
    _process_clock = (key, clock)
    return clock


def now() -> datetime:
    """Now on this process's clock (timezone-aware UTC)."""
    return process_clock().now()
