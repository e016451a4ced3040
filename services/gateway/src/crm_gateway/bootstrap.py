"""Build the gateway from its settings: credentials, backend pools, gRPC and JSON/HTTP handlers.

The platform's runner (:mod:`crm_platform.server`) serves it like every service (health,
reflection, telemetry, graceful shutdown), with two differences the gateway declares: it
authenticates callers itself instead of trusting ``x-tenant-id`` (``trusts_call_metadata``), and
its JSON/HTTP API is a second listener, unready and drained together with gRPC.
"""

from __future__ import annotations

import logging
from typing import Any

import grpc
from aiohttp import web

from crm_gateway.api.customers import CustomerView
from crm_gateway.api.grpc_api import GatewayHandler
from crm_gateway.api.http_api import HttpApi
from crm_gateway.auth import Authenticator
from crm_gateway.backends import BackendPool, Backends
from crm_gateway.dispatch import Dispatcher, RateLimiter
from crm_gateway.routes import GATEWAY_SERVICES, Backend
from crm_gateway.settings import GatewaySettings
from crm_platform.server import ServiceParts

log = logging.getLogger(__name__)


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


class HttpListener:
    """The JSON/HTTP API (OpenAPI document, dashboard, ``/healthz``, ``/readyz``) beside gRPC;
    a :class:`crm_platform.server.Listener`."""

    def __init__(self, settings: GatewaySettings, dispatcher: Dispatcher) -> None:
        self.address = settings.http_listen_address
        self.draining = False
        api = HttpApi(
            dispatcher,
            max_request_bytes=settings.max_request_bytes,
            openapi=_openapi,
            readiness=lambda: (not self.draining, {"backends": dispatcher.backends.describe()}),
        )
        self.runner = web.AppRunner(
            api.app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=settings.shutdown_grace_seconds,
        )

    async def start(self) -> None:
        """Bind and serve."""
        await self.runner.setup()
        host, _, port = self.address.rpartition(":")
        await web.TCPSite(self.runner, host, int(port), reuse_port=False).start()
        log.info("serving JSON/HTTP on %s", self.address)

    def enter_graceful_shutdown(self) -> None:
        """``/readyz`` answers 503 from now on; calls are still served."""
        self.draining = True

    async def stop(self, grace: float) -> None:
        """Stop accepting, finish calls in flight (up to the runner's shutdown timeout)."""
        await self.runner.cleanup()


def _openapi() -> dict[str, Any]:
    from crm_gateway.openapi import openapi_document  # built on the first request

    return openapi_document(server_url=None)


async def bootstrap(settings: GatewaySettings) -> ServiceParts:
    """Wire the gateway's collaborators and hand them to the shared runner."""
    dispatcher, _ = build_dispatcher(settings)

    def register(server: grpc.aio.Server) -> None:
        server.add_generic_rpc_handlers([GatewayHandler(dispatcher)])

    return ServiceParts(
        register=[register],
        service_names=list(GATEWAY_SERVICES),
        listeners=[HttpListener(settings, dispatcher)],
        close=[dispatcher.backends.close],
        trusts_call_metadata=False,
        extra={"dispatcher": dispatcher},
    )
