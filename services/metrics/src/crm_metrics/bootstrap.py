"""Build the metrics service from its settings: database, the checkpointed consumer computing
KPIs for its namespace, the query views and the handlers."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import grpc
from aiokafka import TopicPartition

from crm.metrics.v1 import metrics_pb2, metrics_pb2_grpc
from crm_metrics.api.metrics import MetricsService
from crm_metrics.calendars import CalendarHub
from crm_metrics.checkpoint import (
    LIVE,
    NAMESPACES,
    CalendarPoller,
    MetricsPartition,
    ensure_indexes,
)
from crm_metrics.settings import MetricsSettings
from crm_metrics.telemetry import KpiGauges
from crm_metrics.view import KpiViews
from crm_platform.checkpointed import CheckpointedConsumer
from crm_platform.errors import FailedPrecondition
from crm_platform.mongo import MongoStore
from crm_platform.readiness import database_ready
from crm_platform.server import ServiceParts

log = logging.getLogger(__name__)

SERVICE_NAMES = [metrics_pb2.DESCRIPTOR.services_by_name["MetricsService"].full_name]


def group_id(settings: MetricsSettings) -> str:
    """The consumer group of a namespace (the live one, or a replay's own)."""
    if settings.namespace == LIVE:
        return settings.consumer_group
    return f"{settings.consumer_group}-{settings.namespace}"


async def register_namespace(mongo: MongoStore, settings: MetricsSettings) -> list[str]:
    """Record the namespace's definitions.

    A replay's namespace is computed under one definition set for good: a process with other
    definitions is refused. The live namespace follows the release: when its definitions change
    the record is replaced, and each partition recomputes from the topic as it loads (its
    checkpoint says which definitions its cells were derived under).
    """
    labels = settings.kpi_settings().definitions.labels()
    existing = await mongo.db[NAMESPACES].find_one({"_id": settings.namespace})
    if existing is None:
        await mongo.db[NAMESPACES].update_one(
            {"_id": settings.namespace}, {"$setOnInsert": {"definitions": labels}}, upsert=True
        )
    elif existing["definitions"] != labels and settings.namespace == LIVE:
        added = sorted(set(labels) - set(existing["definitions"]))
        dropped = sorted(set(existing["definitions"]) - set(labels))
        log.warning(
            "the live namespace's KPI definitions change (new: %s; gone: %s); "
            "its partitions recompute from the topic as they load",
            ", ".join(added) or "-",
            ", ".join(dropped) or "-",
        )
        await mongo.db[NAMESPACES].update_one(
            {"_id": settings.namespace}, {"$set": {"definitions": labels}}
        )
    elif existing["definitions"] != labels:
        raise FailedPrecondition(
            "NAMESPACE_DEFINITIONS",
            settings.namespace,
            "the namespace was computed under other definitions; replay into a new namespace",
        )
    return labels


def build_consumer(
    mongo: MongoStore, settings: MetricsSettings, hub: CalendarHub
) -> CheckpointedConsumer:
    """The consumer computing the namespace's state."""
    kpi_settings = settings.kpi_settings()

    def state(tp: TopicPartition) -> MetricsPartition:
        return MetricsPartition(
            mongo,
            settings.namespace,
            tp,
            kpi_settings,
            hub,
            snapshot_min_cells=settings.cell_snapshot_min_cells,
        )

    return CheckpointedConsumer(
        state,
        topics=settings.topics,
        group_id=group_id(settings),
        bootstrap_servers=settings.kafka_bootstrap_servers,
        checkpoint_interval=settings.checkpoint_interval_seconds,
    )


def consumer_ready(consumer: CheckpointedConsumer) -> Callable[[], Awaitable[bool]]:
    """Ready while the consumer loop runs (it stops at the dead-letter limit)."""

    async def check() -> bool:
        return consumer.running

    return check


async def bootstrap(settings: MetricsSettings) -> ServiceParts:
    """Wire the service's collaborators and hand them to the shared runner."""
    mongo = MongoStore(settings.mongodb_uri, settings.database_name, app_name="crm-metrics")
    await ensure_indexes(mongo)
    await register_namespace(mongo, settings)
    hub = CalendarHub()
    consumer = build_consumer(mongo, settings, hub)
    poller = CalendarPoller(mongo, hub, settings.calendar_poll_seconds)
    views = KpiViews(mongo, settings.reporting_timezone, settings.view_refresh_seconds)
    service = MetricsService(views, mongo, hub, settings)
    views.watch(LIVE)
    KpiGauges(views)  # registers the gauges with the meter provider

    def register(server: grpc.aio.Server) -> None:
        metrics_pb2_grpc.add_MetricsServiceServicer_to_server(service, server)

    return ServiceParts(
        register=[register],
        service_names=SERVICE_NAMES,
        readiness_checks=[database_ready(mongo), consumer_ready(consumer)],
        background=[consumer, poller, views],
        close=[mongo.close],
        extra={"consumer": consumer, "views": views, "mongo": mongo, "service": service},
    )
