"""Circuit breakers and the round-robin targets of the backends."""

from __future__ import annotations

import pytest

from crm_gateway.backends import BreakerState, CircuitBreaker, channel_target


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_breaker_opens_after_consecutive_failures_and_half_opens_after_the_wait() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failures=3, reset_seconds=5, clock=clock)
    for _ in range(2):
        breaker.record(False)
    breaker.record(True)  # a success resets the count
    for _ in range(2):
        breaker.record(False)
    assert breaker.state.value == BreakerState.CLOSED.value
    breaker.record(False)
    assert breaker.state.value == "open"
    assert not breaker.allow()
    clock.now = 5
    assert breaker.state.value == BreakerState.HALF_OPEN.value
    assert breaker.allow()  # one trial
    assert not breaker.allow()  # and only one
    breaker.record(False)  # the trial failed: open again, for another wait
    assert breaker.state.value == BreakerState.OPEN.value
    clock.now = 10
    assert breaker.allow()
    breaker.record(True)
    assert breaker.state.value == BreakerState.CLOSED.value
    assert breaker.allow()


@pytest.mark.parametrize(
    ("addresses", "target"),
    [
        (["127.0.0.1:1", "127.0.0.1:2"], "ipv4:127.0.0.1:1,127.0.0.1:2"),
        (["[::1]:1", "[::1]:2"], "ipv6:[::1]:1,[::1]:2"),
        (["contacts:50051"], "dns:///contacts:50051"),
        (["dns:///contacts-headless:50051"], "dns:///contacts-headless:50051"),
    ],
)
def test_backend_addresses_become_one_balanced_target(addresses: list[str], target: str) -> None:
    assert channel_target(addresses) == target


def test_several_host_names_are_refused() -> None:
    with pytest.raises(ValueError, match="dns:///"):
        channel_target(["a:1", "b:2"])
