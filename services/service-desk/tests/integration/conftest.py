"""The contacts and service-desk services running in this process on the real infrastructure."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from crm_testing.servicedesk import DeskUnderTest, running_desk


@pytest.fixture(scope="module")
async def desk(infra: Any) -> AsyncIterator[DeskUnderTest]:
    """A service desk (and the contacts service it resolves requesters with), each with a
    database of its own, dropped afterwards."""
    async with running_desk(infra, "servicedesk", timer_max_idle_seconds=0.5) as under_test:
        yield under_test
