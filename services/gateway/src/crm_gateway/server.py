"""The gateway process: gRPC and HTTP on one event loop, health, reflection, graceful stop.

The gateway does not use the services' runner (:mod:`crm_platform.server`): it has no database
or Kafka to check, and it authenticates callers itself instead of trusting ``x-tenant-id``. It
uses the platform's logging and telemetry set-up, and the same shutdown order: NOT_SERVING,
a short delay for load balancers to notice, drain, close the backend channels.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import grpc
from aiohttp import web
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry.instrumentation.grpc import aio_server_interceptor

from crm_gateway.api.customers import CustomerView
from crm_gateway.api.grpc_api import GatewayHandler
from crm_gateway.api.http_api import HttpApi
from crm_gateway.auth import Authenticator
from crm_gateway.backends import BackendPool, Backends
from crm_gateway.dispatch import Dispatcher, RateLimiter
from crm_gateway.routes import GATEWAY_SERVICES, Backend
from crm_gateway.settings import GatewaySettings
from crm_platform.logging import configure_logging
from crm_platform.server import until_stop_requested
from crm_platform.telemetry import configure_telemetry, shutdown_telemetry

log = logging.getLogger(__name__)
READINESS = "readiness"
SHUTDOWN_DELAY_SECONDS = 1.0


def build_dispatcher(settings: GatewaySettings) -> tuple[Dispatcher, CustomerView]:
    """The gateway's parts, from its settings."""
    authenticator = Authenticator.from_files(
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        jwks_file=settings.jwks_file,
        api_keys_file=settings.api_keys_file,
        leeway_seconds=settings.jwt_leeway_seconds,
    )
    backends = Backends(
        {
            backend: BackendPool.open(
                backend,
                settings.backend_addresses(backend.value),
                read_attempts=settings.read_retries,
                breaker_failures=settings.breaker_failures,
                breaker_reset_seconds=settings.breaker_reset_seconds,
                max_message_bytes=settings.max_request_bytes,
            )
            for backend in Backend
        }
    )
    local: dict[str, Any] = {}
    dispatcher = Dispatcher(
        authenticator=authenticator,
        backends=backends,
        limiter=RateLimiter(settings.rate_limit),
        backend_timeout=settings.backend_timeout_seconds,
        local=local,
    )
    view = CustomerView(dispatcher, settings.customer360_deadline_seconds)
    local["GetCustomer360"] = view.get_customer_360
    local["GetCaller"] = view.get_caller
    return dispatcher, view


@dataclass
class RunningGateway:
    """A started gateway (tests start it in-process too)."""

    settings: GatewaySettings
    dispatcher: Dispatcher
    server: grpc.aio.Server
    health: Any
    http: web.AppRunner
    grpc_port: int
    http_port: int
    draining: bool = False

    @classmethod
    async def start(cls, settings: GatewaySettings) -> RunningGateway:
        dispatcher, _ = build_dispatcher(settings)
        server = grpc.aio.server(
            interceptors=[aio_server_interceptor()],  # type: ignore[no-untyped-call]
            options=[
                ("grpc.max_receive_message_length", settings.max_request_bytes),
                ("grpc.so_reuseport", 0),
            ],
        )
        server.add_generic_rpc_handlers([GatewayHandler(dispatcher)])
        health_servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        names = [
            *GATEWAY_SERVICES,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ]
        reflection.enable_server_reflection(names, server)
        grpc_port = server.add_insecure_port(settings.grpc_listen_address)
        if grpc_port == 0:
            raise RuntimeError(f"cannot bind {settings.grpc_listen_address}")
        gateway: RunningGateway

        def readiness() -> tuple[bool, dict[str, Any]]:
            return not gateway.draining, {"backends": dispatcher.backends.describe()}

        api = HttpApi(
            dispatcher,
            max_request_bytes=settings.max_request_bytes,
            openapi=_openapi,
            readiness=readiness,
        )
        runner = web.AppRunner(
            api.app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=settings.shutdown_grace_seconds,
        )
        await runner.setup()
        host, _, port = settings.http_listen_address.rpartition(":")
        site = web.TCPSite(runner, host, int(port), reuse_port=False)
        await site.start()
        http_port = int(runner.addresses[0][1]) if runner.addresses else int(port)
        await server.start()
        serving = health_pb2.HealthCheckResponse.SERVING
        for name in ("", READINESS, *GATEWAY_SERVICES):
            await health_servicer.set(name, serving)
        gateway = cls(settings, dispatcher, server, health_servicer, runner, grpc_port, http_port)
        log.info(
            "gateway serving gRPC on %s and HTTP on %s",
            settings.grpc_listen_address,
            settings.http_listen_address,
        )
        return gateway

    async def stop(self, grace: float | None = None) -> None:
        """NOT_SERVING, a short delay, drain both servers, close the backend channels."""
        self.draining = True
        await self.health.enter_graceful_shutdown()
        await asyncio.sleep(SHUTDOWN_DELAY_SECONDS if grace is None else min(grace, 0.1))
        grace = self.settings.shutdown_grace_seconds if grace is None else grace
        await asyncio.gather(self.server.stop(grace), self.http.cleanup())
        await self.dispatcher.backends.close()


def _openapi() -> dict[str, Any]:
    from crm_gateway.openapi import openapi_document  # built on the first request

    return openapi_document(server_url=None)


async def serve(settings: GatewaySettings) -> None:
    """Serve until SIGTERM/SIGINT, then stop gracefully."""
    gateway = await RunningGateway.start(settings)
    await until_stop_requested(settings.shutdown_grace_seconds)
    await gateway.stop()


def run() -> None:
    """Process entrypoint: settings (fail fast), logging, telemetry, serve."""
    from crm_platform.settings import load_settings

    settings = load_settings(GatewaySettings)
    configure_logging(settings.service_name, settings.log_level)
    configure_telemetry(settings.service_name)
    try:
        asyncio.run(serve(settings))
    finally:
        shutdown_telemetry()
