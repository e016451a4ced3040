"""The route table: every public operation of the gateway, derived from `crm.gateway.v1`.

One table serves the gRPC proxy, the JSON/HTTP API, the OpenAPI document and the role checks,
so nothing is listed twice. Each operation of a forwarding service in ``gateway.proto`` (the
services named after a backend's) goes to the backend method of the same name; the request
and response messages are the backend's own, so the gateway forwards the bytes unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from crm.contacts.v1 import contacts_pb2
from crm.gateway.v1 import gateway_pb2
from crm.metrics.v1 import metrics_pb2
from crm.servicedesk.v1 import servicedesk_pb2


class Backend(StrEnum):
    """The services behind the gateway."""

    CONTACTS = "contacts"
    SERVICEDESK = "servicedesk"
    METRICS = "metrics"


# Which backend (and proto package) serves each forwarding service of the gateway.
_BACKEND_SERVICES: Mapping[str, tuple[Backend, ServiceDescriptor]] = {
    "ContactsService": (
        Backend.CONTACTS,
        contacts_pb2.DESCRIPTOR.services_by_name["ContactsService"],
    ),
    **{
        name: (Backend.SERVICEDESK, servicedesk_pb2.DESCRIPTOR.services_by_name[name])
        for name in (
            "TicketService",
            "ServiceDeskConfigService",
            "SocialListeningService",
            "SurveyService",
        )
    },
    "MetricsService": (Backend.METRICS, metrics_pb2.DESCRIPTOR.services_by_name["MetricsService"]),
}

# Operations the gateway answers itself.
LOCAL_SERVICES = ("CustomerService", "IdentityService")

_READ = (
    descriptor_pb2.MethodOptions.NO_SIDE_EFFECTS,
    descriptor_pb2.MethodOptions.IDEMPOTENT,
)

# The permission of each operation: "<area>.<read|write>". Roles grant permissions
# (crm_gateway.domain.roles). Areas group operations an organisation would grant together.
_AREAS: Mapping[str, str] = {
    "ContactsService": "contacts",
    "TicketService": "tickets",
    "ServiceDeskConfigService": "config",
    "SocialListeningService": "social",
    "SurveyService": "surveys",
    "MetricsService": "kpis",
    "CustomerService": "customers",
    "IdentityService": "identity",
}


@dataclass(frozen=True, slots=True)
class Route:
    """One public operation."""

    service: str  # the gateway service's short name, e.g. "ContactsService"
    method: str  # e.g. "CreateContact"
    backend: Backend | None  # None: answered by the gateway itself
    backend_path: str  # the backend's gRPC path ("" for local operations)
    read_only: bool  # declared NO_SIDE_EFFECTS / IDEMPOTENT: safe to retry
    client_streaming: bool
    server_streaming: bool
    request_type: type[Message]
    response_type: type[Message]

    @property
    def path(self) -> str:
        """The gateway's gRPC path, e.g. ``/crm.gateway.v1.ContactsService/CreateContact``."""
        return f"/{gateway_pb2.DESCRIPTOR.package}.{self.service}/{self.method}"

    @property
    def http_path(self) -> str:
        """The JSON/HTTP route (always POST), e.g. ``/v1/ContactsService/CreateContact``."""
        return f"/v1/{self.service}/{self.method}"

    @property
    def permission(self) -> str:
        """The permission a role needs to call it (a server stream, like StreamKpis, reads)."""
        reads = self.read_only or (self.server_streaming and not self.client_streaming)
        return f"{_AREAS[self.service]}.{'read' if reads else 'write'}"


def _route(service: ServiceDescriptor, method: MethodDescriptor) -> Route:
    read_only = method.GetOptions().idempotency_level in _READ
    backend: Backend | None = None
    backend_path = ""
    if service.name in _BACKEND_SERVICES:
        backend, backend_service = _BACKEND_SERVICES[service.name]
        target = backend_service.methods_by_name[method.name]
        if (target.input_type, target.output_type) != (method.input_type, method.output_type):
            raise RuntimeError(f"{service.name}.{method.name} does not match {target.full_name}")
        backend_path = f"/{backend_service.full_name}/{method.name}"
    elif service.name not in LOCAL_SERVICES:
        raise RuntimeError(f"gateway service {service.name} has no backend")
    return Route(
        service=service.name,
        method=method.name,
        backend=backend,
        backend_path=backend_path,
        read_only=read_only,
        client_streaming=method.client_streaming,
        server_streaming=method.server_streaming,
        request_type=GetMessageClass(method.input_type),
        response_type=GetMessageClass(method.output_type),
    )


def _all_routes() -> Iterator[Route]:
    for service in gateway_pb2.DESCRIPTOR.services_by_name.values():
        for method in service.methods:
            yield _route(service, method)


ROUTES: tuple[Route, ...] = tuple(_all_routes())
"""Every public operation, in the order of ``gateway.proto``."""

BY_PATH: Mapping[str, Route] = {route.path: route for route in ROUTES}
BY_HTTP_PATH: Mapping[str, Route] = {route.http_path: route for route in ROUTES}
PERMISSIONS: tuple[str, ...] = tuple(sorted({route.permission for route in ROUTES}))
GATEWAY_SERVICES: tuple[str, ...] = tuple(
    service.full_name for service in gateway_pb2.DESCRIPTOR.services_by_name.values()
)
