"""Build the contacts service from its settings: database, outbox relay, use cases, handlers."""

from __future__ import annotations

import grpc

from crm.contacts.v1 import contacts_pb2, contacts_pb2_grpc, imports_pb2, imports_pb2_grpc
from crm_contacts.api.imports import ContactImportService
from crm_contacts.api.service import ContactsService
from crm_contacts.imports_storage import ExternalIds
from crm_contacts.settings import TOPIC, ContactsSettings
from crm_contacts.storage import ContactStore
from crm_contacts.use_cases import Contacts, Organizations
from crm_contacts.use_cases.imports import ContactImports
from crm_platform.clock import process_clock
from crm_platform.idempotency import RequestLog
from crm_platform.mongo import MongoStore
from crm_platform.outbox import Outbox, OutboxRelay, RelayLease
from crm_platform.readiness import database_ready, producer_ready
from crm_platform.server import ServiceParts
from crm_platform.unit_of_work import UnitOfWork

SERVICE_NAME = contacts_pb2.DESCRIPTOR.services_by_name["ContactsService"].full_name
IMPORT_SERVICE_NAME = imports_pb2.DESCRIPTOR.services_by_name["ContactImportService"].full_name


async def bootstrap(settings: ContactsSettings) -> ServiceParts:
    """Wire the service's collaborators and hand them to the shared runner."""
    mongo = MongoStore(settings.mongodb_uri, settings.database_name, app_name="crm-contacts")
    outbox = Outbox(mongo.db, TOPIC)
    requests = RequestLog(mongo.db)
    unit_of_work = UnitOfWork(mongo, outbox, requests)
    store = ContactStore(mongo.db)
    await store.ensure_indexes()
    await requests.ensure_indexes()
    relay = OutboxRelay(
        outbox,
        RelayLease(mongo.db, "contacts-relay", ttl_seconds=15),
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=settings.kafka_client_id or "crm-contacts",
        batch_size=settings.outbox_batch_size,
        poll_interval=settings.outbox_poll_interval_seconds,
    )
    clock = process_clock()
    region = settings.default_phone_region
    contacts = Contacts(store, unit_of_work, clock, default_region=region)
    organizations = Organizations(store, unit_of_work, clock)
    service = ContactsService(contacts, organizations, default_phone_region=region)
    imports = ContactImportService(ContactImports(contacts, organizations, ExternalIds(mongo.db)))

    def register(server: grpc.aio.Server) -> None:
        contacts_pb2_grpc.add_ContactsServiceServicer_to_server(service, server)
        imports_pb2_grpc.add_ContactImportServiceServicer_to_server(imports, server)

    return ServiceParts(
        register=[register],
        service_names=[SERVICE_NAME, IMPORT_SERVICE_NAME],
        readiness_checks=[database_ready(mongo), producer_ready(relay, settings)],
        background=[relay],
        close=[mongo.close],
        extra={"store": store, "relay": relay, "mongo": mongo},
    )
