"""Build the sales service from its settings: database, outbox relay, quote-expiry timers, use
cases, handlers."""

from __future__ import annotations

import grpc

from crm.sales.v1 import appointments_pb2, appointments_pb2_grpc, sales_pb2, sales_pb2_grpc
from crm_platform.clock import process_clock
from crm_platform.idempotency import RequestLog
from crm_platform.mongo import MongoStore
from crm_platform.outbox import Outbox, OutboxRelay, RelayLease
from crm_platform.readiness import database_ready, producer_ready
from crm_platform.server import ServiceParts
from crm_platform.timers import TimerStore, TimerWorker
from crm_platform.unit_of_work import UnitOfWork
from crm_sales.api.appointments import AppointmentService
from crm_sales.api.service import SalesService
from crm_sales.appointments_storage import AppointmentStore
from crm_sales.contacts_directory import GrpcContactDirectory
from crm_sales.settings import TOPIC, SalesSettings
from crm_sales.storage import SalesStore
from crm_sales.use_cases import LeadConversions, Leads, Opportunities, Pipelines, Products, Quotes
from crm_sales.use_cases.appointments import Appointments

SERVICE_NAME = sales_pb2.DESCRIPTOR.services_by_name["SalesService"].full_name
APPOINTMENT_SERVICE_NAME = appointments_pb2.DESCRIPTOR.services_by_name[
    "AppointmentService"
].full_name


async def bootstrap(settings: SalesSettings) -> ServiceParts:
    """Wire the service's collaborators and hand them to the shared runner."""
    mongo = MongoStore(settings.mongodb_uri, settings.database_name, app_name="crm-sales")
    outbox = Outbox(mongo.db, TOPIC)
    requests = RequestLog(mongo.db)
    unit_of_work = UnitOfWork(mongo, outbox, requests)
    store = SalesStore(mongo.db)
    await store.ensure_indexes()
    await requests.ensure_indexes()
    timers = TimerStore(mongo.db)
    await timers.ensure_indexes()
    relay = OutboxRelay(
        outbox,
        RelayLease(mongo.db, "sales-relay", ttl_seconds=15),
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=settings.kafka_client_id or "crm-sales",
        batch_size=settings.outbox_batch_size,
        poll_interval=settings.outbox_poll_interval_seconds,
    )
    # Facts are stamped, and quote expiry timers are due, on the process clock (accelerated in a
    # simulation; a malformed CRM_CLOCK_* fails the start).
    clock = process_clock()
    contacts = GrpcContactDirectory(settings.contacts_address)
    quotes = Quotes(store, unit_of_work, timers, clock)
    worker = TimerWorker(
        mongo,
        timers,
        outbox,
        quotes.fire,
        lease_name="sales-quote-timers",
        lease_ttl_seconds=settings.timer_lease_ttl_seconds,
        max_idle_seconds=min(settings.timer_max_idle_seconds, settings.timer_lease_ttl_seconds / 2),
        clock=clock,
    )
    quotes.timer_armed = worker.notify
    service = SalesService(
        Pipelines(store, unit_of_work, clock),
        Opportunities(store, unit_of_work, clock),
        Leads(store, unit_of_work, clock),
        LeadConversions(store, unit_of_work, clock, contacts),
        Products(store, unit_of_work, clock),
        quotes,
    )
    appointment_store = AppointmentStore(mongo.db)
    await appointment_store.ensure_indexes()
    appointment_service = AppointmentService(
        Appointments(store, appointment_store, unit_of_work, clock, contacts)
    )

    def register(server: grpc.aio.Server) -> None:
        sales_pb2_grpc.add_SalesServiceServicer_to_server(service, server)

    def register_appointments(server: grpc.aio.Server) -> None:
        appointments_pb2_grpc.add_AppointmentServiceServicer_to_server(appointment_service, server)

    return ServiceParts(
        register=[register, register_appointments],
        service_names=[SERVICE_NAME, APPOINTMENT_SERVICE_NAME],
        readiness_checks=[database_ready(mongo), producer_ready(relay, settings)],
        background=[relay, worker],
        close=[contacts.close, mongo.close],
        extra={"store": store, "relay": relay, "timers": worker, "mongo": mongo},
    )
