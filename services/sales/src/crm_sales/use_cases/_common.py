"""What every sales use case shares: new ids, the time of a change, how writes retry, paging,
and the order of the events on a customer's key."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from crm_platform.clock import Clock
from crm_platform.events import Event
from crm_platform.paging import PageQuery
from crm_platform.unit_of_work import Retries, Transaction
from crm_sales.storage import SalesStore

WRITE_RETRIES = Retries(duplicate_keys=1)
"""A duplicate key is a concurrent create with the same request id: the rerun returns the
winner's result. A lost update race (``CONCURRENT_UPDATE``) is the caller's to retry: it reads
again, and may have asked for an ``expected_version``."""


def new_id() -> str:
    """A new aggregate id."""
    return str(uuid.uuid4())


def now_ms(clock: Clock) -> datetime:
    """Now on ``clock`` at millisecond precision, as stored (BSON dates): the response, the event
    and a later read carry the same timestamps."""
    now = clock.now()
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def after_id(query: PageQuery) -> str | None:
    """The id a keyset page in id order continues after."""
    return str(query.after[0]) if query.after else None


async def publish_on_key(tx: Transaction, store: SalesStore, events: Sequence[Event]) -> None:
    """Queue ``events`` (all of one key: a contact's, an account's, a deal's) with the key's
    next sequence, so that the relay publishes the key's events in commit order even when they
    come from several aggregates (a lead, an opportunity, its quotes)."""
    keys = {event.key for event in events}
    assert len(keys) == 1, keys
    tx.publish(events, sequence=await store.next_key_sequence(keys.pop(), tx.session))
