"""Build the sales service from its settings: database, outbox relay, quote-expiry timers, use
cases, handlers."""

from __future__ import annotations

import grpc

from crm.sales.v1 import (
    activities_pb2,
    activities_pb2_grpc,
    appointments_pb2,
    appointments_pb2_grpc,
    campaigns_pb2,
    campaigns_pb2_grpc,
    orders_pb2,
    orders_pb2_grpc,
    sales_pb2,
    sales_pb2_grpc,
    territories_pb2,
    territories_pb2_grpc,
)
from crm_platform.clock import process_clock
from crm_platform.idempotency import RequestLog
from crm_platform.mongo import MongoStore
from crm_platform.outbox import Outbox, OutboxRelay, RelayLease
from crm_platform.readiness import database_ready, producer_ready
from crm_platform.server import ServiceParts
from crm_platform.timers import TimerStore, TimerWorker
from crm_platform.unit_of_work import UnitOfWork
from crm_sales.activities_storage import ActivitiesStore
from crm_sales.api.activities import ActivityService
from crm_sales.api.appointments import AppointmentService
from crm_sales.api.campaigns import CampaignService
from crm_sales.api.orders import OrderService
from crm_sales.api.service import SalesService
from crm_sales.api.territories import TerritoryService
from crm_sales.appointments_storage import AppointmentStore
from crm_sales.campaigns_consent import GrpcConsentDirectory
from crm_sales.campaigns_storage import CampaignStore
from crm_sales.contacts_directory import GrpcContactDirectory
from crm_sales.orders_storage import OrdersStore
from crm_sales.settings import TOPIC, SalesSettings
from crm_sales.storage import SalesStore
from crm_sales.territories_storage import TerritoryStore
from crm_sales.timer_dispatch import dispatch_on_kind
from crm_sales.use_cases import (
    LeadConversions,
    Leads,
    Opportunities,
    Pipelines,
    Products,
    Quotes,
    TerritoryAssigner,
    TerritoryRules,
)
from crm_sales.use_cases.activities import FOLLOW_UP, Activities, FollowUps
from crm_sales.use_cases.appointments import Appointments
from crm_sales.use_cases.campaign_interactions import CampaignInteractions
from crm_sales.use_cases.campaigns import Campaigns
from crm_sales.use_cases.orders import Currencies, Orders
from crm_sales.use_cases.quotes import EXPIRY

SERVICE_NAME = sales_pb2.DESCRIPTOR.services_by_name["SalesService"].full_name
TERRITORY_SERVICE_NAME = territories_pb2.DESCRIPTOR.services_by_name["TerritoryService"].full_name
ORDER_SERVICE_NAME = orders_pb2.DESCRIPTOR.services_by_name["OrderService"].full_name
ACTIVITY_SERVICE_NAME = activities_pb2.DESCRIPTOR.services_by_name["ActivityService"].full_name
APPOINTMENT_SERVICE_NAME = appointments_pb2.DESCRIPTOR.services_by_name[
    "AppointmentService"
].full_name
CAMPAIGN_SERVICE_NAME = campaigns_pb2.DESCRIPTOR.services_by_name["CampaignService"].full_name


async def bootstrap(settings: SalesSettings) -> ServiceParts:
    """Wire the service's collaborators and hand them to the shared runner."""
    mongo = MongoStore(settings.mongodb_uri, settings.database_name, app_name="crm-sales")
    outbox = Outbox(mongo.db, TOPIC)
    requests = RequestLog(mongo.db)
    unit_of_work = UnitOfWork(mongo, outbox, requests)
    store = SalesStore(mongo.db)
    await store.ensure_indexes()
    orders_store = OrdersStore(mongo.db)
    await orders_store.ensure_indexes()
    activities_store = ActivitiesStore(mongo.db)
    await activities_store.ensure_indexes()
    appointment_store = AppointmentStore(mongo.db)
    await appointment_store.ensure_indexes()
    campaign_store = CampaignStore(mongo.db, store)
    await campaign_store.ensure_indexes()
    await requests.ensure_indexes()
    territory_rules = TerritoryStore(mongo.db)
    await territory_rules.ensure_indexes()
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
    follow_ups = FollowUps(store, activities_store, unit_of_work, timers, clock)
    # One worker (one lease) fires every timer of the collection, routed by kind.
    worker = TimerWorker(
        mongo,
        timers,
        outbox,
        dispatch_on_kind({EXPIRY: quotes.fire, FOLLOW_UP: follow_ups.fire}),
        lease_name="sales-quote-timers",
        lease_ttl_seconds=settings.timer_lease_ttl_seconds,
        max_idle_seconds=min(settings.timer_max_idle_seconds, settings.timer_lease_ttl_seconds / 2),
        clock=clock,
    )
    quotes.timer_armed = worker.notify
    assigner = TerritoryAssigner(territory_rules, store, unit_of_work, clock)
    territories = TerritoryService(TerritoryRules(territory_rules, unit_of_work, clock), assigner)
    follow_ups.timer_armed = worker.notify
    opportunities = Opportunities(store, unit_of_work, clock, assigner)
    opportunities.on_won = follow_ups.after_win
    order_service = OrderService(
        Orders(store, orders_store, unit_of_work, clock, follow_ups),
        Currencies(store, orders_store, unit_of_work, clock),
    )
    activity_service = ActivityService(
        Activities(store, activities_store, unit_of_work, clock), follow_ups
    )
    appointment_service = AppointmentService(
        Appointments(store, appointment_store, unit_of_work, clock, contacts)
    )
    service = SalesService(
        Pipelines(store, unit_of_work, clock),
        opportunities,
        Leads(store, unit_of_work, clock, assigner),
        LeadConversions(store, unit_of_work, clock, contacts),
        Products(store, unit_of_work, clock),
        quotes,
    )
    campaign_service = CampaignService(
        Campaigns(campaign_store, unit_of_work, clock),
        CampaignInteractions(
            campaign_store, unit_of_work, clock, GrpcConsentDirectory(contacts.stub)
        ),
    )

    def register(server: grpc.aio.Server) -> None:
        sales_pb2_grpc.add_SalesServiceServicer_to_server(service, server)
        territories_pb2_grpc.add_TerritoryServiceServicer_to_server(territories, server)
        orders_pb2_grpc.add_OrderServiceServicer_to_server(order_service, server)
        activities_pb2_grpc.add_ActivityServiceServicer_to_server(activity_service, server)
        appointments_pb2_grpc.add_AppointmentServiceServicer_to_server(appointment_service, server)
        campaigns_pb2_grpc.add_CampaignServiceServicer_to_server(campaign_service, server)

    return ServiceParts(
        register=[register],
        service_names=[
            SERVICE_NAME,
            TERRITORY_SERVICE_NAME,
            ORDER_SERVICE_NAME,
            ACTIVITY_SERVICE_NAME,
            APPOINTMENT_SERVICE_NAME,
            CAMPAIGN_SERVICE_NAME,
        ],
        readiness_checks=[database_ready(mongo), producer_ready(relay, settings)],
        background=[relay, worker],
        close=[contacts.close, mongo.close],
        extra={
            "store": store,
            "territory_rules": territory_rules,
            "relay": relay,
            "timers": worker,
            "mongo": mongo,
            "campaign_store": campaign_store,
        },
    )
