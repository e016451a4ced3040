"""Fixtures of the gateway's integration tests: one platform for the session."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from crm_devstack.pytest_plugin import Infra
from crm_testing.gateway import GatewayStack, start_gateway_stack


@pytest.fixture(scope="session")
async def gateway_stack(infra: Infra) -> AsyncIterator[GatewayStack]:
    """Contacts, service desk, metrics and the gateway, as real processes."""
    stack = await start_gateway_stack(infra, infra.workdir)
    try:
        yield stack
    finally:
        await stack.close()
        for process in stack.services.values():
            await process.stop()
