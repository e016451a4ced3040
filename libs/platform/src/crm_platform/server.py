"""Run a service: the one way every CRM service starts, serves and stops.

A service's entrypoint calls :func:`run` with its settings type and a ``bootstrap`` coroutine that
builds its dependencies and returns a :class:`ServiceParts`. The runner adds what every service has:

* ``grpc.health.v1`` health: ``""`` is liveness (SERVING while the process serves), ``readiness``
  reflects the database and the Kafka producer, checked periodically;
* server reflection (so ``grpcurl`` works), the OpenTelemetry gRPC server interceptor and the
  :class:`~crm_platform.interceptors.ServiceInterceptor` (left out for a service that
  authenticates its callers itself, the gateway: ``ServiceParts.trusts_call_metadata``);
* other listeners beside gRPC (the gateway's JSON/HTTP API, ``ServiceParts.listeners``), started
  before the health says SERVING and drained together with gRPC;
* SIGTERM/SIGINT → every health status NOT_SERVING (and every listener unready) → keep serving
  for ``SHUTDOWN_DELAY_SECONDS`` (load balancers notice) → stop accepting calls and drain
  in-flight ones on gRPC and every listener for up to ``SHUTDOWN_GRACE_SECONDS`` → stop
  background work (the outbox relay flushes) → close the database or the clients
  (``ServiceParts.close``) → flush telemetry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry.instrumentation.grpc import aio_server_interceptor

from crm_platform.interceptors import ServiceInterceptor
from crm_platform.logging import configure_logging
from crm_platform.settings import ServerSettings, load_settings
from crm_platform.telemetry import configure_telemetry, shutdown_telemetry

log = logging.getLogger(__name__)

READINESS = "readiness"

SettingsT = TypeVar("SettingsT", bound=ServerSettings)  # narrower than settings.SettingsT


class BackgroundWork(Protocol):
    """Something that runs beside the server (outbox relay, consumer) and stops on shutdown."""

    def start(self) -> None: ...

    async def stop(self, timeout: float = ...) -> None: ...


class Listener(Protocol):
    """A server beside gRPC (the gateway's JSON/HTTP API), on the runner's start and shutdown."""

    async def start(self) -> None:
        """Bind and serve (before the health says SERVING)."""
        ...

    def enter_graceful_shutdown(self) -> None:
        """Report unready (when the gRPC health goes NOT_SERVING), keep serving."""
        ...

    async def stop(self, grace: float) -> None:
        """Stop accepting, let calls in flight finish for up to ``grace`` seconds, close."""
        ...


ReadinessCheck = Callable[[], Awaitable[bool]]


@dataclass
class ServiceParts:
    """What a service's bootstrap hands to the runner."""

    register: Sequence[Callable[[grpc.aio.Server], None]]
    service_names: Sequence[str]
    readiness_checks: Sequence[ReadinessCheck] = ()
    background: Sequence[BackgroundWork] = ()
    close: Sequence[Callable[[], Awaitable[None]]] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    listeners: Sequence[Listener] = ()
    trusts_call_metadata: bool = True
    """False for a service that authenticates callers itself (the gateway): the
    ServiceInterceptor, which takes tenant and actor from ``x-tenant-id`` metadata, is left out."""


class RunningService:
    """A started gRPC server with its health, background work and shutdown sequence."""

    def __init__(self, settings: ServerSettings, parts: ServiceParts) -> None:
        self.settings = settings
        self.parts = parts
        self.health = health.aio.HealthServicer()  # type: ignore[attr-defined]  # public alias
        otel_interceptor = aio_server_interceptor()  # type: ignore[no-untyped-call]
        interceptors: list[Any] = [otel_interceptor]
        if parts.trusts_call_metadata:
            interceptors.append(ServiceInterceptor())
        self.server = grpc.aio.server(
            interceptors=interceptors,
            options=[
                ("grpc.max_receive_message_length", settings.max_request_bytes),
                ("grpc.so_reuseport", 0),
            ],
        )
        self.port = 0
        self._readiness_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Bind, register every servicer, start background work; liveness becomes SERVING."""
        for register in self.parts.register:
            register(self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        names = [
            *self.parts.service_names,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
        ]
        reflection.enable_server_reflection([*names, reflection.SERVICE_NAME], self.server)
        self.port = self.server.add_insecure_port(self.settings.grpc_listen_address)
        if self.port == 0:
            raise RuntimeError(f"cannot bind {self.settings.grpc_listen_address}")
        for listener in self.parts.listeners:
            await listener.start()
        await self.server.start()
        for work in self.parts.background:
            work.start()
        serving = health_pb2.HealthCheckResponse.SERVING
        await self.health.set("", serving)
        await self.check_readiness()
        self._readiness_task = asyncio.create_task(self._watch_readiness(), name="readiness")
        log.info(
            "serving %s on %s",
            ", ".join(self.parts.service_names),
            self.settings.grpc_listen_address,
        )

    async def check_readiness(self) -> bool:
        """Run every readiness check once and publish the result on the ``readiness`` entry."""
        results = await asyncio.gather(*(check() for check in self.parts.readiness_checks))
        ready = all(results)
        status = health_pb2.HealthCheckResponse
        value = status.SERVING if ready else status.NOT_SERVING
        await self.health.set(READINESS, value)
        for name in self.parts.service_names:
            await self.health.set(name, value)
        return ready

    async def _watch_readiness(self) -> None:
        while True:
            await asyncio.sleep(self.settings.readiness_interval_seconds)
            try:
                await self.check_readiness()
            except Exception:
                log.exception("readiness check failed")

    async def stop(self) -> None:
        """The graceful shutdown sequence (see the module docstring)."""
        started = time.monotonic()
        await self.health.enter_graceful_shutdown()
        for listener in self.parts.listeners:
            listener.enter_graceful_shutdown()
        if self._readiness_task is not None:
            self._readiness_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._readiness_task
        await asyncio.sleep(self.settings.shutdown_delay_seconds)
        grace = self.settings.shutdown_grace_seconds
        await asyncio.gather(
            self.server.stop(grace), *(listener.stop(grace) for listener in self.parts.listeners)
        )
        for work in self.parts.background:
            try:
                await work.stop(timeout=10.0)
            except Exception:
                log.exception("stopping %s failed", type(work).__name__)
        for close in self.parts.close:
            try:
                await close()
            except Exception:
                log.exception("closing failed")
        log.info("stopped after %.1fs", time.monotonic() - started)


async def until_stop_requested(grace_seconds: float) -> None:
    """Return once SIGTERM or SIGINT arrives (logging the drain that follows)."""
    stop_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop_requested.set)
    await stop_requested.wait()
    log.info("shutdown requested: draining for up to %.0fs", grace_seconds)


async def serve(
    settings: SettingsT, bootstrap: Callable[[SettingsT], Awaitable[ServiceParts]]
) -> None:
    """Build the service, serve until SIGTERM/SIGINT, then shut down gracefully."""
    parts = await bootstrap(settings)
    service = RunningService(settings, parts)
    await service.start()
    await until_stop_requested(settings.shutdown_grace_seconds)
    await service.stop()


def run(
    settings_type: type[SettingsT],
    bootstrap: Callable[[SettingsT], Awaitable[ServiceParts]],
    **overrides: object,
) -> None:
    """Process entrypoint: settings (fail fast), logging, telemetry, serve, flush telemetry.

    ``overrides`` take precedence over the environment (tests and tools use them).
    """
    settings = load_settings(settings_type, **overrides)
    configure_logging(settings.service_name, settings.log_level)
    configure_telemetry(settings.service_name)
    try:
        asyncio.run(serve(settings, bootstrap))
    finally:
        shutdown_telemetry()
