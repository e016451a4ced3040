"""The one timer worker's fire handler routes each timer by kind and refuses unknown kinds."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from crm_platform.events import Event
from crm_platform.timers import Timer, TimerEvents
from crm_sales.timer_dispatch import dispatch_on_kind

DUE = datetime(2026, 3, 1, tzinfo=UTC)


async def test_each_timer_goes_to_the_handler_of_its_kind() -> None:
    seen: list[tuple[str, str]] = []

    def handler(name: str) -> Any:
        async def fire(timer: Timer, session: Any) -> TimerEvents | Sequence[Event]:
            seen.append((name, timer.timer_id))
            return TimerEvents()

        return fire

    fire = dispatch_on_kind({"a": handler("A"), "b": handler("B")})
    await fire(Timer("t1", "acme", DUE, "b"), None)  # type: ignore[arg-type]
    await fire(Timer("t2", "acme", DUE, "a"), None)  # type: ignore[arg-type]
    assert seen == [("B", "t1"), ("A", "t2")]
    with pytest.raises(LookupError, match="'c'"):
        await fire(Timer("t3", "acme", DUE, "c"), None)  # type: ignore[arg-type]
