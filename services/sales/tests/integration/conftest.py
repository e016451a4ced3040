"""The sales service (and the contacts service it converts leads with) running in this process
on the real database and broker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from crm_testing.sales import SalesUnderTest, running_sales


@pytest.fixture(scope="module")
async def sales(infra: Any) -> AsyncIterator[SalesUnderTest]:
    """A sales and a contacts service, each with a database of its own (dropped afterwards)."""
    async with running_sales(infra, "sales") as under_test:
        yield under_test
