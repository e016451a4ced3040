"""Fixtures of the client's integration tests: the real platform behind the real gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from crm_devstack.pytest_plugin import Infra
from crm_testing.gateway import GatewayStack, start_gateway_stack


@pytest.fixture(scope="session")
async def client_gateway_stack(infra: Infra) -> AsyncIterator[GatewayStack]:
    """Contacts, service desk, metrics and the gateway, as real processes (this folder's own)."""
    stack = await start_gateway_stack(infra, infra.workdir / "client")
    try:
        yield stack
    finally:
        await stack.close()
        for process in stack.services.values():
            await process.stop()
