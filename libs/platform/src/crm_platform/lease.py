"""A lease in the database: at most one live holder of a named role among a service's replicas.

Background work that must run in one replica at a time (the outbox relay, the timer worker) takes
the lease before each unit of work. The holder renews it; when the holder dies, the lease expires
after its TTL and a standby takes over; a holder that stops releases it so a standby takes over
at once. A lease only keeps replicas from doing the same work side by side: the work itself must
stay correct if two holders overlap briefly (a paused holder whose lease expired).
"""

from __future__ import annotations

import os
import socket
import time
from datetime import UTC, datetime, timedelta

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from crm_platform.mongo import Document


class Lease:
    """The lease ``name`` in ``collection``; one document per lease, keyed by name."""

    def __init__(
        self,
        db: AsyncDatabase[Document],
        name: str,
        ttl_seconds: float,
        *,
        collection: str = "leases",
    ) -> None:
        self.collection = db[collection]
        self.name = name
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.ttl = timedelta(seconds=ttl_seconds)
        self._renew_after = 0.0  # monotonic time after which the lease is renewed in the DB

    async def acquire(self) -> bool:
        """Take or renew the lease; false while another live holder has it.

        Renewed in the database only once half the TTL has passed, so a busy holder does not
        pay a write per unit of work for it.
        """
        if time.monotonic() < self._renew_after:
            return True
        started = time.monotonic()
        now = datetime.now(UTC)
        try:
            doc = await self.collection.find_one_and_update(
                {"_id": self.name, "$or": [{"owner": self.owner}, {"expires_at": {"$lt": now}}]},
                {"$set": {"owner": self.owner, "expires_at": now + self.ttl}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:  # the lease exists and is held by a live holder
            return False
        held = doc is not None and doc.get("owner") == self.owner
        if held:
            self._renew_after = started + self.ttl.total_seconds() / 2
        return held

    async def release(self) -> None:
        """Give the lease up so a peer can take over at once."""
        self._renew_after = 0.0
        await self.collection.delete_one({"_id": self.name, "owner": self.owner})
