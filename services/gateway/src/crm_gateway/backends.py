"""The services behind the gateway: one channel each, round-robin, retried reads, a breaker.

* Client-side round-robin: a backend's channel balances over all its addresses (a list of
  ``host:port``, or a ``dns:///`` target resolving to every pod).
* Retries with backoff only for idempotent reads (the backend methods declared
  ``NO_SIDE_EFFECTS`` / ``IDEMPOTENT``), only on UNAVAILABLE, by gRPC's own retry policy.
* A circuit breaker per backend: after ``failures`` consecutive failures (unreachable,
  deadline) calls fail fast with UNAVAILABLE for ``reset_seconds``; then one
  trial call decides whether it closes again.
* Deadlines: every call's deadline is what is left of the caller's, capped by the backend
  timeout.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from ipaddress import ip_address
from typing import Any

import grpc

from crm_gateway.routes import BACKEND_SERVICES, Backend
from crm_platform.clients import retry_service_config

# Failures that say the backend (not the request) is in trouble. An INTERNAL answer to one
# odd request is that request's problem: counting it would let one caller open the circuit for
# every tenant.
BACKEND_FAILURES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass
class CircuitBreaker:
    """Consecutive-failure circuit breaker (closed → open → half-open → closed)."""

    failures: int
    reset_seconds: float
    clock: Any = time.monotonic
    _count: int = 0
    _opened_at: float | None = None
    _trial: bool = False

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self.clock() - self._opened_at >= self.reset_seconds:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def allow(self) -> bool:
        """Whether a call may go ahead now (in half-open state: one trial at a time)."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._trial:
            self._trial = True
            return True
        return False

    def record(self, ok: bool) -> None:
        """Record a call's outcome."""
        self._trial = False
        if ok:
            self._count = 0
            self._opened_at = None
            return
        self._count += 1
        if self._opened_at is not None or self._count >= self.failures:
            self._opened_at = self.clock()  # (re)open: a failed trial starts a new wait


def channel_target(addresses: Sequence[str]) -> str:
    """The gRPC target balancing over ``addresses``."""
    if len(addresses) == 1 and ("://" in addresses[0] or addresses[0].startswith("dns:")):
        return addresses[0]
    hosts = [address.rpartition(":")[0].strip("[]") for address in addresses]
    try:
        families = {ip_address(host).version for host in hosts}
    except ValueError:
        if len(addresses) == 1:
            return f"dns:///{addresses[0]}"
        raise ValueError(
            f"several backend addresses must be IP literals, or use one dns:/// target: {addresses}"
        ) from None
    if len(families) != 1:
        raise ValueError(f"backend addresses mix IPv4 and IPv6: {addresses}")
    scheme = "ipv4" if families == {4} else "ipv6"
    return f"{scheme}:{','.join(addresses)}"


@dataclass
class BackendPool:
    """One backend: its channel (round-robin, retried reads) and its breaker."""

    backend: Backend
    channel: grpc.aio.Channel
    breaker: CircuitBreaker
    target: str
    _unary: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def open(
        cls,
        backend: Backend,
        addresses: Sequence[str],
        *,
        read_attempts: int,
        breaker_failures: int,
        breaker_reset_seconds: float,
        max_message_bytes: int,
    ) -> BackendPool:
        target = channel_target(addresses)
        config: dict[str, Any] = {"loadBalancingConfig": [{"round_robin": {}}]}
        if read_attempts > 1:
            config |= retry_service_config(
                list(BACKEND_SERVICES[backend]), max_attempts=read_attempts
            )
        options = [
            ("grpc.service_config", json.dumps(config)),
            ("grpc.enable_retries", 1 if read_attempts > 1 else 0),
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.max_send_message_length", max_message_bytes + 1024),
            # Keepalive at the servers' default minimum ping interval (5 min): more often and
            # they answer too_many_pings and drop the connection (and open streams with it).
            ("grpc.keepalive_time_ms", 300_000),
        ]
        channel = grpc.aio.insecure_channel(target, options=options)
        return cls(
            backend, channel, CircuitBreaker(breaker_failures, breaker_reset_seconds), target
        )

    def unary_unary(self, path: str) -> Any:
        """A bytes-in, bytes-out callable for ``path`` (forwarded without re-encoding)."""
        call = self._unary.get(path)
        if call is None:
            call = self._unary[path] = self.channel.unary_unary(path, None, None)
        return call

    def unary_stream(self, path: str) -> Any:
        return self.channel.unary_stream(path, None, None)

    def stream_unary(self, path: str) -> Any:
        return self.channel.stream_unary(path, None, None)

    def connectivity(self) -> str:
        """The channel's state, e.g. ``READY`` or ``TRANSIENT_FAILURE``."""
        return str(self.channel.get_state(try_to_connect=True).name)


class Backends:
    """All backends of the gateway."""

    def __init__(self, pools: Mapping[Backend, BackendPool]) -> None:
        self.pools = dict(pools)

    def __getitem__(self, backend: Backend) -> BackendPool:
        return self.pools[backend]

    async def close(self) -> None:
        for pool in self.pools.values():
            await pool.channel.close(None)

    def describe(self) -> dict[str, dict[str, str]]:
        """Each backend's target, channel state and breaker state (for /readyz)."""
        return {
            str(name): {
                "target": pool.target,
                "channel": pool.connectivity(),
                "breaker": pool.breaker.state.value,
            }
            for name, pool in self.pools.items()
        }
