"""The route table: every gateway operation reaches its backend, and roles name real rights."""

from __future__ import annotations

from crm.contacts.v1 import contacts_pb2
from crm.metrics.v1 import metrics_pb2
from crm.servicedesk.v1 import servicedesk_pb2
from crm_gateway.domain.roles import GRANTS, Role
from crm_gateway.routes import BY_PATH, PERMISSIONS, ROUTES, Backend


def test_every_backend_operation_is_exposed_exactly_once() -> None:
    backend_paths = {
        f"/{service.full_name}/{method.name}"
        for module in (contacts_pb2, servicedesk_pb2, metrics_pb2)
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }
    forwarded = [route.backend_path for route in ROUTES if route.backend is not None]
    assert sorted(forwarded) == sorted(backend_paths)


def test_reads_and_writes_get_read_and_write_permissions() -> None:
    assert BY_PATH["/crm.gateway.v1.ContactsService/GetContact"].permission == "contacts.read"
    assert BY_PATH["/crm.gateway.v1.ContactsService/CreateContact"].permission == "contacts.write"
    stream = BY_PATH["/crm.gateway.v1.MetricsService/StreamKpis"]
    assert stream.permission == "kpis.read"
    assert not stream.read_only  # reads, but is not retried
    assert BY_PATH["/crm.gateway.v1.TicketService/GetTicket"].backend is Backend.SERVICEDESK


def test_roles_grant_only_existing_permissions_and_admin_has_all() -> None:
    for role, granted in GRANTS.items():
        assert granted <= set(PERMISSIONS), role
    assert GRANTS[Role.ADMIN] == set(PERMISSIONS)
    assert not any(p.endswith(".write") for p in GRANTS[Role.ANALYST])
