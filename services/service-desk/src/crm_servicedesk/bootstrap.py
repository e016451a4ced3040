"""Build the service-desk service from its settings: database, outbox relay, SLA timers,
the contacts client and the handlers."""

from __future__ import annotations

from datetime import timedelta

import grpc

from crm.servicedesk.v1 import servicedesk_pb2, servicedesk_pb2_grpc
from crm_platform.clock import process_clock
from crm_platform.mongo import MongoStore
from crm_platform.outbox import Outbox, OutboxRelay, RelayLease
from crm_platform.readiness import database_ready, producer_ready
from crm_platform.server import ServiceParts
from crm_platform.timers import TimerStore, TimerWorker
from crm_platform.unit_of_work import UnitOfWork
from crm_servicedesk.api.config import ServiceDeskConfigService
from crm_servicedesk.api.social import SocialListeningService
from crm_servicedesk.api.surveys import SurveyService
from crm_servicedesk.api.tickets import TicketService
from crm_servicedesk.contacts_directory import GrpcContactDirectory
from crm_servicedesk.settings import TOPIC, ServiceDeskSettings
from crm_servicedesk.storage import ServiceDeskStore
from crm_servicedesk.use_cases import ServiceDesk
from crm_servicedesk.use_cases.changes import utc_now

SERVICE_NAMES = [
    servicedesk_pb2.DESCRIPTOR.services_by_name[name].full_name
    for name in (
        "TicketService",
        "ServiceDeskConfigService",
        "SocialListeningService",
        "SurveyService",
    )
]


async def bootstrap(settings: ServiceDeskSettings) -> ServiceParts:
    """Wire the service's collaborators and hand them to the shared runner."""
    mongo = MongoStore(settings.mongodb_uri, settings.database_name, app_name="crm-servicedesk")
    outbox = Outbox(mongo.db, TOPIC)
    store = ServiceDeskStore(mongo)
    await store.ensure_indexes()
    timers = TimerStore(mongo.db)
    await timers.ensure_indexes()
    contacts = GrpcContactDirectory(settings.contacts_address)
    # The timers compare due times with the clock the desk stamps its facts on (the process
    # clock, accelerated in a simulation; a malformed CRM_CLOCK_* fails the start).
    clock = process_clock()
    desk = ServiceDesk.build(
        store,
        UnitOfWork.of(mongo, outbox),
        timers,
        contacts,
        survey_valid_for=timedelta(days=settings.survey_valid_days),
        now=lambda: utc_now(clock),
    )
    worker = TimerWorker(
        mongo,
        timers,
        outbox,
        desk.sla_timers.fire,
        lease_name="servicedesk-sla-timers",
        lease_ttl_seconds=settings.timer_lease_ttl_seconds,
        max_idle_seconds=min(settings.timer_max_idle_seconds, settings.timer_lease_ttl_seconds / 2),
        clock=clock,
    )
    desk.changes.timer_armed = worker.notify
    relay = OutboxRelay(
        outbox,
        RelayLease(mongo.db, "servicedesk-relay", ttl_seconds=15),
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=settings.kafka_client_id or "crm-servicedesk",
        batch_size=settings.outbox_batch_size,
        poll_interval=settings.outbox_poll_interval_seconds,
    )

    def register(server: grpc.aio.Server) -> None:
        servicedesk_pb2_grpc.add_TicketServiceServicer_to_server(
            TicketService(desk.tickets, desk.conversation, contacts), server
        )
        servicedesk_pb2_grpc.add_ServiceDeskConfigServiceServicer_to_server(
            ServiceDeskConfigService(desk.configuration), server
        )
        servicedesk_pb2_grpc.add_SocialListeningServiceServicer_to_server(
            SocialListeningService(desk.social), server
        )
        servicedesk_pb2_grpc.add_SurveyServiceServicer_to_server(
            SurveyService(desk.surveys), server
        )

    return ServiceParts(
        register=[register],
        service_names=SERVICE_NAMES,
        readiness_checks=[database_ready(mongo), producer_ready(relay, settings)],
        background=[relay, worker],
        close=[contacts.close, mongo.close],
        extra={"store": store, "desk": desk, "relay": relay, "timers": worker, "mongo": mongo},
    )
