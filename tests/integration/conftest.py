"""Fixtures of the cross-service tests: the whole platform behind the gateway, as real processes.

Each stack is started once per session, on first use, on the session's Kafka and database (the
``infra`` fixture of ``crm_devstack.pytest_plugin``). The client's tests have a stack of their
own, so that their rate limits and data do not meet the gateway tests'.
"""

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


@pytest.fixture(scope="session")
async def client_gateway_stack(infra: Infra) -> AsyncIterator[GatewayStack]:
    """Contacts, service desk, metrics and the gateway, as real processes (the client's own)."""
    stack = await start_gateway_stack(infra, infra.workdir / "client")
    try:
        yield stack
    finally:
        await stack.close()
        for process in stack.services.values():
            await process.stop()
