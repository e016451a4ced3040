"""The CRM services the launcher knows, and one running as ``python -m <module>``."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from crm_devstack.errors import LaunchError
from crm_devstack.procs import HOST, ManagedProcess, ensure_port_free, port_open

READINESS = "readiness"
"""The health-service entry a service sets SERVING once its database and Kafka producer work
(liveness is the server-wide entry, ``""``)."""


@dataclass(frozen=True)
class ServiceSpec:
    """How to run one service locally."""

    name: str
    """Short name, also ``SERVICE_NAME`` and the log file's name."""
    module: str
    """Started as ``python -m <module>``."""
    port_env: str
    """Environment variable that overrides the local gRPC port."""
    default_port: int
    topics: tuple[str, ...]
    """Kafka topics it produces (created before it starts)."""
    peers: tuple[tuple[str, str], ...] = ()
    """``(environment variable, service name)``: the addresses of the services it calls."""
    http_port_env: str = ""
    """Environment variable that overrides its local HTTP port (``""``: it serves no HTTP)."""
    default_http_port: int = 0


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("contacts", "crm_contacts", "CRM_CONTACTS_PORT", 50051, ("crm.contacts.v1",)),
    ServiceSpec(
        "servicedesk",
        "crm_servicedesk",
        "CRM_SERVICEDESK_PORT",
        50052,
        ("crm.servicedesk.v1",),
        peers=(("CONTACTS_ADDRESS", "contacts"),),
    ),
    ServiceSpec(
        "sales",
        "crm_sales",
        "CRM_SALES_PORT",
        50054,
        ("crm.sales.v1",),
        peers=(("CONTACTS_ADDRESS", "contacts"),),
    ),
    # The metrics service produces only dead letters; the topics it consumes must exist too.
    ServiceSpec(
        "metrics",
        "crm_metrics",
        "CRM_METRICS_PORT",
        50053,
        ("crm.contacts.v1", "crm.servicedesk.v1", "crm.contacts.v1.dlq", "crm.servicedesk.v1.dlq"),
    ),
    # The gateway: gRPC and JSON/HTTP in front of the others (it has no database or topics).
    ServiceSpec(
        "gateway",
        "crm_gateway",
        "CRM_GATEWAY_PORT",
        50050,
        (),
        peers=(
            ("CONTACTS_ADDRESSES", "contacts"),
            ("SERVICEDESK_ADDRESSES", "servicedesk"),
            ("METRICS_ADDRESSES", "metrics"),
            ("SALES_ADDRESSES", "sales"),
        ),
        http_port_env="CRM_GATEWAY_HTTP_PORT",
        default_http_port=8080,
    ),
)
"""The services of the local stack, in start order. Adding one is one line."""


def service_spec(name: str) -> ServiceSpec:
    """The entry of :data:`SERVICES` called ``name``."""
    for spec in SERVICES:
        if spec.name == name:
            return spec
    known = ", ".join(spec.name for spec in SERVICES)
    raise LaunchError(f"unknown service {name!r} (known: {known})")


class ServiceProcess(ManagedProcess):
    """A CRM service as a child process, configured through its environment
    (``GRPC_LISTEN_ADDRESS``, ``MONGODB_URI``, ``KAFKA_BOOTSTRAP_SERVERS``, ``SERVICE_NAME``
    plus ``env``), logging to ``<log_dir>/<name>.log``. Ready when gRPC health answers
    SERVING for ``""`` and for ``"readiness"`` (NOT_FOUND for the latter is accepted)."""

    def __init__(
        self,
        spec: ServiceSpec,
        *,
        port: int,
        mongodb_uri: str,
        kafka_bootstrap_servers: str,
        log_dir: Path,
        env: Mapping[str, str] | None = None,
        detach: bool = False,
        stop_grace: float = 40.0,
        http_port: int = 0,
    ) -> None:
        super().__init__(
            spec.name, log_dir / f"{spec.name}.log", detach=detach, stop_grace=stop_grace
        )
        self.spec = spec
        self.port = port
        self.mongodb_uri = mongodb_uri
        self.kafka_bootstrap_servers = kafka_bootstrap_servers
        self.env = dict(env or {})
        self.http_port = http_port
        if http_port:
            self.env.setdefault("HTTP_LISTEN_ADDRESS", f"{HOST}:{http_port}")

    @property
    def address(self) -> str:
        """``127.0.0.1:<port>``, where its gRPC server listens."""
        return f"{HOST}:{self.port}"

    @property
    def http_url(self) -> str:
        """``http://127.0.0.1:<port>`` of its HTTP server (``""`` if it serves none)."""
        return f"http://{HOST}:{self.http_port}" if self.http_port else ""

    async def start(self, timeout: float = 60.0) -> None:
        """Start the service and wait until it is ready; raise :class:`LaunchError` (with the
        log's tail) if it exits or does not become ready in time."""
        self._refuse_if_running()
        ensure_port_free(self.port, f"the {self.name} service")
        if self.http_port:
            ensure_port_free(self.http_port, f"the {self.name} service's HTTP")
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "SERVICE_NAME": self.spec.name,
            "GRPC_LISTEN_ADDRESS": self.address,
            "MONGODB_URI": self.mongodb_uri,
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap_servers,
            **self.env,
        }
        self._spawn([sys.executable, "-m", self.spec.module], env=env)
        await self._wait_ready(self._ready, timeout)

    async def _ready(self) -> bool:
        return await grpc_health(self.address) == "SERVING"


async def grpc_health(address: str, timeout: float = 1.0) -> str:
    """The service's health as one word: ``SERVING`` if liveness (``""``) and readiness
    (``"readiness"``, if registered) both serve; otherwise the first health status or gRPC
    error code that says otherwise (``NOT_SERVING``, ``UNAVAILABLE``...), or ``UNREACHABLE``
    when nothing listens."""
    host, _, port = address.rpartition(":")
    if host == HOST and not await port_open(int(port)):
        return "UNREACHABLE"
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", READINESS):
            try:
                reply = await stub.Check(
                    health_pb2.HealthCheckRequest(service=service), timeout=timeout
                )
            except grpc.aio.AioRpcError as exc:
                if service == READINESS and exc.code() == grpc.StatusCode.NOT_FOUND:
                    break
                return str(exc.code().name)
            if reply.status != health_pb2.HealthCheckResponse.SERVING:
                return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
    return "SERVING"
