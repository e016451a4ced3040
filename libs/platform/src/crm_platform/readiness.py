"""Readiness checks shared by services: the database answers, the Kafka producer is connected."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from crm_platform.mongo import MongoStore
from crm_platform.outbox import OutboxRelay
from crm_platform.settings import ServiceSettings


def database_ready(store: MongoStore) -> Callable[[], Awaitable[bool]]:
    """Ready while the service's database answers a ping."""
    return store.ping


def producer_ready(relay: OutboxRelay, settings: ServiceSettings) -> Callable[[], Awaitable[bool]]:
    """Ready while the relay's producer reaches Kafka, or has been cut off for less than
    ``READINESS_KAFKA_GRACE_SECONDS``: writes keep succeeding into the outbox during a short
    broker outage, so one broker restart should not take every replica out of service."""

    async def check() -> bool:
        down_since = relay.kafka_down_since
        if down_since is None:
            return True
        return time.monotonic() - down_since < settings.readiness_kafka_grace_seconds

    return check
