"""One fire handler for the sales service's one timer worker, dispatching on the timer's kind.

The platform's :class:`~crm_platform.timers.TimerWorker` fires every due timer of its collection
with one handler, so the sales service runs one worker (one lease) over its ``timers`` collection
and routes each timer by ``Timer.kind`` (the quotes' expiry, the activities' follow-up call).
A timer of a kind no handler knows fails its firing (retried later, logged), never fires
silently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pymongo.asynchronous.client_session import AsyncClientSession

from crm_platform.events import Event
from crm_platform.timers import FireHandler, Timer, TimerEvents


def dispatch_on_kind(handlers: Mapping[str, FireHandler]) -> FireHandler:
    """A fire handler that runs ``handlers[timer.kind]``."""

    async def fire(timer: Timer, session: AsyncClientSession) -> TimerEvents | Sequence[Event]:
        handler = handlers.get(timer.kind)
        if handler is None:
            raise LookupError(f"no fire handler for timers of kind {timer.kind!r}")
        return await handler(timer, session)

    return fire
