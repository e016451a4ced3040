"""The route table: every gateway operation reaches its backend, and roles name real rights."""

from __future__ import annotations

from crm.contacts.v1 import contacts_pb2
from crm.metrics.v1 import metrics_pb2
from crm.sales.v1 import (
    activities_pb2,
    appointments_pb2,
    campaigns_pb2,
    orders_pb2,
    sales_pb2,
    territories_pb2,
)
from crm.servicedesk.v1 import servicedesk_pb2
from crm_gateway.domain.roles import GRANTS, Role
from crm_gateway.routes import BY_PATH, PERMISSIONS, ROUTES, Backend


def test_every_backend_operation_is_exposed_exactly_once() -> None:
    backend_paths = {
        f"/{service.full_name}/{method.name}"
        for module in (
            contacts_pb2,
            servicedesk_pb2,
            metrics_pb2,
            sales_pb2,
            territories_pb2,
            orders_pb2,
            activities_pb2,
            appointments_pb2,
            campaigns_pb2,
        )
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
    document = BY_PATH["/crm.gateway.v1.SalesService/GetQuoteDocument"]
    assert (document.backend, document.permission) == (Backend.SALES, "sales.read")
    assert document.backend_path == "/crm.sales.v1.SalesService/GetQuoteDocument"


def test_sales_operations_have_the_sales_lead_and_configuration_areas() -> None:
    def permission(method: str) -> str:
        return BY_PATH[f"/crm.gateway.v1.SalesService/{method}"].permission

    assert permission("CreateOpportunity") == "sales.write"
    assert permission("ListOpportunities") == "sales.read"
    assert permission("SendQuote") == "sales.write"
    assert permission("ConvertLead") == "sales.write"  # it creates the opportunity
    assert permission("CreateLead") == "leads.write"
    assert permission("QualifyLead") == "leads.write"
    assert permission("ListLeads") == "leads.read"
    assert permission("CreatePipeline") == "sales_config.write"
    assert permission("ListProducts") == "sales_config.read"
    territory = "/crm.gateway.v1.TerritoryService/"
    assert BY_PATH[territory + "CreateTerritoryRule"].permission == "sales_config.write"
    assert BY_PATH[territory + "EvaluateTerritory"].permission == "sales_config.read"
    assert BY_PATH[territory + "AssignTerritory"].permission == "sales.write"
    assert BY_PATH[territory + "AssignTerritory"].backend is Backend.SALES
    assert BY_PATH["/crm.gateway.v1.OrderService/RecordOrder"].permission == "orders.write"
    assert BY_PATH["/crm.gateway.v1.OrderService/SetBaseCurrency"].permission == (
        "sales_config.write"
    )
    assert BY_PATH["/crm.gateway.v1.ActivityService/CompleteActivity"].permission == (
        "activities.write"
    )
    ingest = BY_PATH["/crm.gateway.v1.CampaignService/IngestCampaignInteractions"]
    assert (ingest.permission, ingest.client_streaming) == ("campaign_feed.write", True)
    ics = BY_PATH["/crm.gateway.v1.AppointmentService/GetAppointmentCalendarFile"]
    assert (ics.permission, ics.document_media_type) == ("appointments.read", "text/calendar")
    sales_routes = [route for route in ROUTES if route.service == "SalesService"]
    assert len(sales_routes) == len(sales_pb2.DESCRIPTOR.services_by_name["SalesService"].methods)
    assert {route.permission.partition(".")[0] for route in sales_routes} == {
        "sales",
        "leads",
        "sales_config",
    }


def test_the_sales_role_matrix() -> None:
    sales = GRANTS[Role.SALES]
    assert {"sales.read", "sales.write", "leads.read", "leads.write"} <= sales
    assert "sales_config.write" not in sales
    assert "sales.write" not in GRANTS[Role.AGENT]
    assert {"sales.read", "leads.write"} <= GRANTS[Role.AGENT]
    assert {"sales.read", "leads.read", "sales_config.read"} <= GRANTS[Role.ANALYST]
    assert {"leads.write", "sales_config.read"} <= GRANTS[Role.INTEGRATION]
    assert "sales.write" not in GRANTS[Role.INTEGRATION]
    assert "sales.read" not in GRANTS[Role.INTEGRATION]
    assert {"orders.write", "activities.write"} <= GRANTS[Role.INTEGRATION]
    assert "orders.write" not in GRANTS[Role.SALES]
    assert "activities.write" in GRANTS[Role.SALES]


def test_roles_grant_only_existing_permissions_and_admin_has_all() -> None:
    for role, granted in GRANTS.items():
        assert granted <= set(PERMISSIONS), role
    assert GRANTS[Role.ADMIN] == set(PERMISSIONS)
    assert not any(p.endswith(".write") for p in GRANTS[Role.ANALYST])
