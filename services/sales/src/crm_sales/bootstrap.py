"""Build the sales service from its settings: database, outbox relay, use cases, handlers."""

from __future__ import annotations

import grpc

from crm.sales.v1 import sales_pb2, sales_pb2_grpc
from crm_platform.clock import process_clock
from crm_platform.idempotency import RequestLog
from crm_platform.mongo import MongoStore
from crm_platform.outbox import Outbox, OutboxRelay, RelayLease
from crm_platform.readiness import database_ready, producer_ready
from crm_platform.server import ServiceParts
from crm_platform.unit_of_work import UnitOfWork
from crm_sales.api.service import SalesService
from crm_sales.contacts_directory import GrpcContactDirectory
from crm_sales.settings import TOPIC, SalesSettings
from crm_sales.storage import SalesStore
from crm_sales.use_cases import LeadConversions, Leads, Opportunities, Pipelines

SERVICE_NAME = sales_pb2.DESCRIPTOR.services_by_name["SalesService"].full_name


async def bootstrap(settings: SalesSettings) -> ServiceParts:
    """Wire the service's collaborators and hand them to the shared runner."""
    mongo = MongoStore(settings.mongodb_uri, settings.database_name, app_name="crm-sales")
    outbox = Outbox(mongo.db, TOPIC)
    requests = RequestLog(mongo.db)
    unit_of_work = UnitOfWork(mongo, outbox, requests)
    store = SalesStore(mongo.db)
    await store.ensure_indexes()
    await requests.ensure_indexes()
    relay = OutboxRelay(
        outbox,
        RelayLease(mongo.db, "sales-relay", ttl_seconds=15),
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=settings.kafka_client_id or "crm-sales",
        batch_size=settings.outbox_batch_size,
        poll_interval=settings.outbox_poll_interval_seconds,
    )
    clock = process_clock()
    contacts = GrpcContactDirectory(settings.contacts_address)
    service = SalesService(
        Pipelines(store, unit_of_work, clock),
        Opportunities(store, unit_of_work, clock),
        Leads(store, unit_of_work, clock),
        LeadConversions(store, unit_of_work, clock, contacts),
    )

    def register(server: grpc.aio.Server) -> None:
        sales_pb2_grpc.add_SalesServiceServicer_to_server(service, server)

    return ServiceParts(
        register=[register],
        service_names=[SERVICE_NAME],
        readiness_checks=[database_ready(mongo), producer_ready(relay, settings)],
        background=[relay],
        close=[contacts.close, mongo.close],
        extra={"store": store, "relay": relay, "mongo": mongo},
    )
