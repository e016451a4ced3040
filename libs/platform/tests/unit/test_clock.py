"""The process clock: the wall clock by default, or an accelerated one catching up with it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm_platform import clock as clock_module
from crm_platform.clock import (
    CLOCK_VARS,
    ORIGIN_VAR,
    RATE_VAR,
    START_VAR,
    Clock,
    accelerated_env,
    catch_up_rate,
    now,
    process_clock,
)

ORIGIN = 1_780_000_000.0  # a wall instant (unix seconds) in 2026
DAY = 86_400.0


class FakeWall:
    """A wall clock the test moves."""

    def __init__(self, at: float) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at


def _accelerated(behind_days: float, rate: float, wall: FakeWall) -> Clock:
    start = datetime.fromtimestamp(ORIGIN - behind_days * DAY, UTC)
    return Clock.accelerated(start, rate, ORIGIN, wall=wall)


def test_unset_environment_gives_the_wall_clock() -> None:
    clock = Clock.from_env({})
    assert clock.acceleration is None
    before = datetime.now(UTC)
    reading = clock.now()
    assert before <= reading <= datetime.now(UTC)
    assert reading.tzinfo is UTC


def test_process_clock_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CLOCK_VARS:
        monkeypatch.delenv(name, raising=False)
    assert process_clock().acceleration is None
    start = datetime.now(UTC) - timedelta(days=3)
    for name, value in accelerated_env(start, 1440.0).items():
        monkeypatch.setenv(name, value)
    reading = now()
    assert start <= reading < start + timedelta(hours=1)
    assert process_clock() is process_clock()  # cached while the variables stay
    monkeypatch.delenv(START_VAR)
    monkeypatch.delenv(ORIGIN_VAR)
    monkeypatch.delenv(RATE_VAR)
    assert abs((now() - datetime.now(UTC)).total_seconds()) < 5
    clock_module._process_clock = None


def test_environment_round_trips() -> None:
    start = datetime(2026, 3, 2, 9, 0, tzinfo=timezone(timedelta(hours=1)))
    env = accelerated_env(start, 2160.5, ORIGIN)
    clock = Clock.from_env(env)
    assert clock.acceleration is not None
    assert clock.acceleration.start == start
    assert clock.acceleration.start.tzinfo is UTC
    assert clock.acceleration.origin == ORIGIN
    assert clock.acceleration.rate == 2160.5
    assert clock.env() == env


def test_a_z_suffix_is_accepted() -> None:
    clock = Clock.from_env(
        {START_VAR: "2026-03-02T08:00:00Z", ORIGIN_VAR: str(ORIGIN), RATE_VAR: "60"}
    )
    assert clock.acceleration is not None
    assert clock.acceleration.start == datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({START_VAR: "2026-03-02T08:00:00Z"}, "missing"),
        ({START_VAR: "yesterday", ORIGIN_VAR: "1", RATE_VAR: "2"}, "malformed"),
        ({START_VAR: "2026-03-02T08:00:00", ORIGIN_VAR: "1", RATE_VAR: "2"}, "UTC offset"),
        ({START_VAR: "2026-03-02T08:00:00Z", ORIGIN_VAR: "1", RATE_VAR: "0"}, "positive"),
        ({START_VAR: "2026-03-02T08:00:00Z", ORIGIN_VAR: "x", RATE_VAR: "2"}, "malformed"),
    ],
)
def test_a_partial_or_malformed_configuration_is_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Clock.from_env(env)


def test_runs_fast_then_is_real_time() -> None:
    wall = FakeWall(ORIGIN)
    clock = _accelerated(3, catch_up_rate(timedelta(days=3), timedelta(minutes=2)), wall)
    assert clock.now() == datetime.fromtimestamp(ORIGIN - 3 * DAY, UTC)
    assert clock.is_accelerated
    wall.at = ORIGIN + 60  # half-way: 1.5 simulated days in, 1.5 days + 1 min behind
    assert clock.now() == datetime.fromtimestamp(ORIGIN - 1.5 * DAY + 60, UTC)
    wall.at = ORIGIN + 120
    assert clock.now() == datetime.fromtimestamp(ORIGIN + 120, UTC)
    assert not clock.is_accelerated
    wall.at = ORIGIN + 3600
    assert clock.now() == datetime.fromtimestamp(ORIGIN + 3600, UTC)


def test_catch_up_instant() -> None:
    clock = _accelerated(2, 49.0, FakeWall(ORIGIN))
    assert clock.acceleration is not None
    caught_up = clock.acceleration.caught_up_at()
    assert caught_up == pytest.approx(ORIGIN + 2 * DAY / 48)
    assert _accelerated(2, 1.0, FakeWall(ORIGIN)).acceleration.caught_up_at() is None  # type: ignore[union-attr]


def test_catch_up_rate_needs_positive_durations() -> None:
    assert catch_up_rate(timedelta(days=1), timedelta(days=1)) == 2.0
    with pytest.raises(ValueError, match="positive"):
        catch_up_rate(timedelta(0), timedelta(minutes=1))


walls = st.floats(min_value=ORIGIN - DAY, max_value=ORIGIN + 10 * DAY, allow_nan=False)
rates = st.floats(min_value=0.5, max_value=100_000.0, allow_nan=False)
behind = st.floats(min_value=-1.0, max_value=30.0, allow_nan=False)


@given(behind, rates, walls, walls)
def test_the_reading_is_monotone_and_never_in_the_future(
    behind_days: float, rate: float, first: float, second: float
) -> None:
    clock = _accelerated(behind_days, rate, FakeWall(ORIGIN))
    early, late = sorted((first, second))
    assert clock.at_wall(early) <= clock.at_wall(late)
    assert clock.at_wall(late) <= datetime.fromtimestamp(late, UTC)


@given(behind, rates, walls, st.floats(min_value=0.0, max_value=3 * DAY, allow_nan=False))
def test_waiting_the_wall_seconds_until_an_instant_reaches_it(
    behind_days: float, rate: float, at: float, ahead_seconds: float
) -> None:
    wall = FakeWall(at)
    clock = _accelerated(behind_days, rate, wall)
    target = clock.now() + timedelta(seconds=ahead_seconds)
    wait = clock.wall_seconds_until(target)
    assert wait >= 0
    wall.at = at + wait + 1e-3  # the timer worker's margin
    assert clock.now() >= target
    if wait > 1e-2:  # not much earlier: the wait was not longer than needed
        wall.at = at + wait - 1e-2
        assert clock.now() < target


@given(behind, rates, walls, st.floats(min_value=0.0, max_value=DAY, allow_nan=False))
def test_after_wall_seconds_is_the_reading_then(
    behind_days: float, rate: float, at: float, seconds: float
) -> None:
    wall = FakeWall(at)
    clock = _accelerated(behind_days, rate, wall)
    expected = clock.at_wall(at + seconds)
    assert clock.after_wall_seconds(seconds) == expected
    assert expected >= clock.now()


def test_the_wall_clock_waits_in_real_time() -> None:
    wall = FakeWall(ORIGIN)
    clock = Clock(wall=wall)
    target = datetime.fromtimestamp(ORIGIN + 42, UTC)
    assert clock.wall_seconds_until(target) == pytest.approx(42)
    assert clock.wall_seconds_until(target - timedelta(days=1)) == 0
