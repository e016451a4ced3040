"""What every contacts use case shares: new ids, the time of a change, and how writes retry."""

from __future__ import annotations

import uuid
from datetime import datetime

from crm_platform.clock import Clock
from crm_platform.unit_of_work import Retries

WRITE_RETRIES = Retries(duplicate_keys=1)
"""A duplicate key that is not a taken identity is a concurrent create with the same request id:
the rerun returns the winner's result. A lost update race (``CONCURRENT_UPDATE``) is the
caller's to retry: it reads again, and may have asked for an ``expected_version``."""


def new_id() -> str:
    """A new aggregate id."""
    return str(uuid.uuid4())


def now_ms(clock: Clock) -> datetime:
    """Now on ``clock``, at millisecond precision, as stored (BSON dates): the response, the
    event and a later read all carry the same timestamps."""
    now = clock.now()
    return now.replace(microsecond=now.microsecond // 1000 * 1000)
