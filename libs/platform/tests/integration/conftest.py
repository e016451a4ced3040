"""Fixtures for the runtime's integration tests: a fresh database and topics per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from crm_platform.mongo import MongoStore


@pytest.fixture
async def store(infra: Any) -> AsyncIterator[MongoStore]:
    """A MongoStore on a database of its own (dropped afterwards)."""
    mongo = MongoStore(infra.mongodb_uri, f"test_{uuid.uuid4().hex[:12]}")
    yield mongo
    await mongo.client.drop_database(mongo.db.name)
    await mongo.close()


@pytest.fixture
async def topic(infra: Any) -> str:
    """A fresh topic and its dead-letter topic."""
    name = f"test.{uuid.uuid4().hex[:10]}.v1"
    await infra.ensure_topics([name, f"{name}.dlq"], partitions=3)
    return name
