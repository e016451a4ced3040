"""The route table: every public operation of the gateway, derived from `crm.gateway.v1`.

One table serves the gRPC proxy, the JSON/HTTP API, the OpenAPI document and the role checks,
so nothing is listed twice. Each operation of a forwarding service in ``gateway.proto`` or
another file of ``crm.gateway.v1`` (:data:`GATEWAY_FILES`; the services named after a backend's)
goes to the backend method of the same name: the backend is the one serving the proto package
of the operation's request message (:data:`BACKEND_PACKAGES`), and the request and response
messages are the backend's own, so the gateway forwards the bytes unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum

from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import FileDescriptor, MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from crm.gateway.v1 import gateway_pb2
from crm.gateway.v1 import sales_pb2 as gateway_sales_pb2


class Backend(StrEnum):
    """The services behind the gateway."""

    CONTACTS = "contacts"
    SERVICEDESK = "servicedesk"
    METRICS = "metrics"
    SALES = "sales"


GATEWAY_FILES: tuple[FileDescriptor, ...] = (
    gateway_pb2.DESCRIPTOR,
    gateway_sales_pb2.DESCRIPTOR,
)
"""The files of ``crm.gateway.v1`` whose services the gateway serves, in order."""

BACKEND_PACKAGES: Mapping[str, Backend] = {
    "crm.contacts.v1": Backend.CONTACTS,
    "crm.servicedesk.v1": Backend.SERVICEDESK,
    "crm.metrics.v1": Backend.METRICS,
    "crm.sales.v1": Backend.SALES,
}
"""Which backend serves each proto package: a forwarding service ``X`` of the gateway whose
requests are messages of package ``P`` forwards to the service ``P.X``."""

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
    # Sales: opportunities and quotes ("sales") by default; below, per operation, leads
    # ("leads": what web forms and social listening feed in) and the configuration of the
    # sales process, pipelines and products ("sales_config").
    "SalesService": "sales",
    # Territory rules are configuration of the sales process; re-assigning a lead or an
    # opportunity by them is sales work (below).
    "TerritoryService": "sales_config",
    # Orders, returns and costs from the ERP; the currency settings below are configuration.
    "OrderService": "orders",
    # Calls, meetings, e-mails, tasks; the follow-up rule below is configuration.
    "ActivityService": "activities",
    # Booking a rep's or team's free time; the reps' work calendars below are configuration.
    "AppointmentService": "appointments",
    # Campaigns; what the e-mail, ad and event tools feed in (interactions, costs) below.
    "CampaignService": "campaigns",
}
_METHOD_AREAS: Mapping[tuple[str, str], str] = {
    **{
        ("SalesService", method): "leads"
        for method in (
            "CreateLead",
            "GetLead",
            "ListLeads",
            "UpdateLead",
            "StartWorkingLead",
            "QualifyLead",
            "DisqualifyLead",
        )
    },
    ("TerritoryService", "AssignTerritory"): "sales",
    **{
        ("OrderService", method): "sales_config"
        for method in (
            "SetBaseCurrency",
            "GetCurrencySettings",
            "RecordExchangeRate",
            "ListExchangeRates",
            "ConvertAmount",
        )
    },
    ("AppointmentService", "SetWorkCalendar"): "sales_config",
    ("AppointmentService", "GetWorkCalendar"): "sales_config",
    ("CampaignService", "IngestCampaignInteractions"): "campaign_feed",
    ("CampaignService", "RecordCampaignCost"): "campaign_feed",
    ("ActivityService", "SetFollowUpRule"): "sales_config",
    ("ActivityService", "GetFollowUpRule"): "sales_config",
    # ConvertLead creates the opportunity (and contact): "sales", by the service's default.
    **{
        ("SalesService", method): "sales_config"
        for method in (
            "CreatePipeline",
            "GetPipeline",
            "ListPipelines",
            "UpdatePipeline",
            "CreateProduct",
            "GetProduct",
            "ListProducts",
            "UpdateProduct",
        )
    },
}

# Operations whose answer is a file (a message with `content`, `content_type` and `file_name`):
# over JSON/HTTP they may also be fetched as the file itself (GET, or POST with this media type
# in `Accept`). Keyed by the response message's full name.
DOCUMENT_MEDIA_TYPES: Mapping[str, str] = {
    "crm.sales.v1.GetQuoteDocumentResponse": "application/pdf",
    "crm.sales.v1.GetAppointmentCalendarFileResponse": "text/calendar",
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
        area = _METHOD_AREAS.get((self.service, self.method)) or _AREAS[self.service]
        return f"{area}.{'read' if reads else 'write'}"

    @property
    def document_media_type(self) -> str:
        """The media type of the file this operation answers with ("" if it answers none)."""
        if self.client_streaming or self.server_streaming:
            return ""
        return DOCUMENT_MEDIA_TYPES.get(self.response_type.DESCRIPTOR.full_name, "")


def backend_service(service: ServiceDescriptor) -> tuple[Backend, ServiceDescriptor] | None:
    """The backend and backend service a forwarding service of the gateway carries (None for
    the gateway's own services)."""
    if service.name in LOCAL_SERVICES:
        return None
    packages = {m.input_type.file.package for m in service.methods}
    if len(packages) != 1 or (package := packages.pop()) not in BACKEND_PACKAGES:
        raise RuntimeError(f"gateway service {service.name} has no backend")
    try:
        target = descriptor_pool.Default().FindServiceByName(f"{package}.{service.name}")
    except KeyError:
        raise RuntimeError(f"gateway service {service.name} has no backend") from None
    return BACKEND_PACKAGES[package], target


def _route(service: ServiceDescriptor, method: MethodDescriptor) -> Route:
    read_only = method.GetOptions().idempotency_level in _READ
    backend: Backend | None = None
    backend_path = ""
    forwarded = backend_service(service)
    if forwarded is not None:
        backend, backend_service_ = forwarded
        if method.name not in backend_service_.methods_by_name:
            raise RuntimeError(
                f"{service.name}.{method.name} is not in {backend_service_.full_name}"
            )
        target = backend_service_.methods_by_name[method.name]
        if (target.input_type, target.output_type) != (method.input_type, method.output_type):
            raise RuntimeError(f"{service.name}.{method.name} does not match {target.full_name}")
        backend_path = f"/{backend_service_.full_name}/{method.name}"
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


def _gateway_services() -> Iterator[ServiceDescriptor]:
    for file in GATEWAY_FILES:
        yield from file.services_by_name.values()


def _all_routes() -> Iterator[Route]:
    for service in _gateway_services():
        for method in service.methods:
            yield _route(service, method)


ROUTES: tuple[Route, ...] = tuple(_all_routes())
"""Every public operation, in the order of the files of :data:`GATEWAY_FILES`."""

BY_PATH: Mapping[str, Route] = {route.path: route for route in ROUTES}
BY_HTTP_PATH: Mapping[str, Route] = {route.http_path: route for route in ROUTES}
PERMISSIONS: tuple[str, ...] = tuple(sorted({route.permission for route in ROUTES}))
GATEWAY_SERVICES: tuple[str, ...] = tuple(service.full_name for service in _gateway_services())
BACKEND_SERVICES: Mapping[Backend, tuple[ServiceDescriptor, ...]] = {
    backend: tuple(
        dict.fromkeys(
            forwarded[1]
            for service in _gateway_services()
            if (forwarded := backend_service(service)) is not None and forwarded[0] is backend
        )
    )
    for backend in Backend
}
"""The backend services each backend serves for the gateway (for its retry policy)."""
