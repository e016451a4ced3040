"""A namespace's KPI definitions across restarts: the live one follows the release, a replay's
is fixed for good (on the real database)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from crm_devstack.pytest_plugin import Infra
from crm_metrics.bootstrap import register_namespace
from crm_metrics.checkpoint import NAMESPACES
from crm_metrics.settings import MetricsSettings
from crm_platform.errors import FailedPrecondition
from crm_platform.mongo import MongoStore
from crm_testing.metrics import scratch_database

OLDER = "nrt_wall@1,nrt_business@1,silence@1"


@pytest.fixture
async def store(infra: Infra) -> AsyncIterator[MongoStore]:
    async with scratch_database(infra, "namespaces") as mongo:
        yield mongo


def _settings(infra: Infra, namespace: str, definitions: str = "") -> MetricsSettings:
    return MetricsSettings(
        mongodb_uri=infra.mongodb_uri,
        kafka_bootstrap_servers=infra.kafka_bootstrap,
        namespace=namespace,
        definitions=definitions,
    )


async def _stored(store: MongoStore, namespace: str) -> list[str]:
    doc = await store.db[NAMESPACES].find_one({"_id": namespace})
    assert doc is not None
    return list(doc["definitions"])


async def test_the_live_namespace_takes_the_definitions_of_the_release(
    infra: Infra, store: MongoStore
) -> None:
    older = await register_namespace(store, _settings(infra, "live", OLDER))
    assert "nrt_wall@1" in older
    assert await _stored(store, "live") == older
    current = await register_namespace(store, _settings(infra, "live"))
    assert "nrt_wall@2" in current
    assert "nrt_wall@1" not in current
    assert await _stored(store, "live") == current
    assert await register_namespace(store, _settings(infra, "live")) == current


async def test_a_replay_namespace_refuses_other_definitions(
    infra: Infra, store: MongoStore
) -> None:
    older = await register_namespace(store, _settings(infra, "replay-old", OLDER))
    with pytest.raises(FailedPrecondition) as refused:
        await register_namespace(store, _settings(infra, "replay-old"))
    assert refused.value.violation_type == "NAMESPACE_DEFINITIONS"
    assert await _stored(store, "replay-old") == older
    assert await register_namespace(store, _settings(infra, "replay-old", OLDER)) == older
