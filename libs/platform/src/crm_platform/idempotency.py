"""Idempotent requests: a retried create returns what the first one made, instead of a second.

A create that carries a client's ``request_id`` records, in the transaction that creates, one
document in the service's ``idempotency`` collection::

    {"_id": "<tenant>|<operation>|<request id>", "tenant_id": ..., "fingerprint": ...,
     "result_id": <the id created>, "created_at": <when>}

A later request with the same ``_id`` and the same fingerprint (a digest of the whole request)
is a retry: it answers with ``result_id``'s current state. The same ``request_id`` with another
request is refused with FAILED_PRECONDITION ``REQUEST_ID_REUSED``. Records expire after a week
(:meth:`RequestLog.ensure_indexes`).

A use case uses it through its :class:`~crm_platform.unit_of_work.Transaction`::

    request = IdempotentRequest.of(tenant, "contact", pb_request.request_id, pb_request)

    async def create(tx: Transaction) -> Contact:
        if (earlier := await tx.earlier_result(request)) is not None:
            return await contacts.get(tenant, earlier, tx.session)  # a retry: the first result
        await contacts.insert(contact, tx.session)
        await tx.remember(request, contact.id, at=contact.create_time)
        ...

Two concurrent creates with one ``request_id`` both miss the record; the second one's insert of
the record fails with a duplicate key and aborts its transaction: run the use case once more
(``Retries(duplicate_keys=1)``) and it finds the winner's record.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from google.protobuf.message import Message
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from crm_platform.errors import FailedPrecondition
from crm_platform.mongo import Document

REQUEST_ID_REUSED = "REQUEST_ID_REUSED"
RETENTION = timedelta(days=7)


def fingerprint(request: Message) -> str:
    """What a request asked for (SHA-256 of its deterministic encoding), to tell a retry from a
    reuse of its ``request_id``."""
    return hashlib.sha256(request.SerializeToString(deterministic=True)).hexdigest()


@dataclass(frozen=True, slots=True)
class IdempotentRequest:
    """A create's idempotency key (tenant, operation, the client's request id) and a fingerprint
    of the request."""

    tenant_id: str
    operation: str
    """What the request creates, e.g. ``contact``: one request id may be used once per kind."""
    request_id: str
    fingerprint: str

    @classmethod
    def of(
        cls, tenant_id: str, operation: str, request_id: str, request: Message
    ) -> IdempotentRequest | None:
        """The key of a request, or ``None`` when it carries no ``request_id``."""
        if not request_id:
            return None
        return cls(tenant_id, operation, request_id, fingerprint(request))

    @property
    def record_id(self) -> str:
        """The ``_id`` of its record: ``<tenant>|<operation>|<request id>``."""
        return f"{self.tenant_id}|{self.operation}|{self.request_id}"

    def record(self, result_id: str, at: datetime) -> Document:
        """The document that remembers this request made ``result_id``."""
        return {
            "_id": self.record_id,
            "tenant_id": self.tenant_id,
            "fingerprint": self.fingerprint,
            "result_id": result_id,
            "created_at": at,
        }

    def replayed_result(self, record: Document) -> str:
        """The id the request of ``record`` made, if this request is a retry of it; otherwise
        FAILED_PRECONDITION ``REQUEST_ID_REUSED``."""
        if record.get("fingerprint") != self.fingerprint:
            raise FailedPrecondition(
                REQUEST_ID_REUSED,
                f"request_id/{self.request_id}",
                "was already used for a different request; use a new request_id",
            )
        return str(record["result_id"])


class RequestLog:
    """The service's ``idempotency`` collection: what each idempotent request created."""

    def __init__(self, db: AsyncDatabase[Document], *, collection: str = "idempotency") -> None:
        self.collection: AsyncCollection[Document] = db[collection]

    async def ensure_indexes(self) -> None:
        """Records expire :data:`RETENTION` after their ``created_at`` (a TTL index)."""
        await self.collection.create_index(
            "created_at", expireAfterSeconds=int(RETENTION.total_seconds())
        )

    async def earlier_result(
        self, request: IdempotentRequest | None, session: AsyncClientSession
    ) -> str | None:
        """The id an earlier run of this request created, or ``None`` if it did not run (or
        ``request`` is ``None``); ``REQUEST_ID_REUSED`` if its id was used for another request.
        """
        if request is None:
            return None
        record = await self.collection.find_one({"_id": request.record_id}, session=session)
        return None if record is None else request.replayed_result(record)

    async def remember(
        self,
        request: IdempotentRequest | None,
        result_id: str,
        at: datetime,
        session: AsyncClientSession,
    ) -> None:
        """Record, in the caller's transaction, that ``request`` created ``result_id`` (nothing
        for ``None``). A concurrent run of the same request makes this a ``DuplicateKeyError``.
        """
        if request is not None:
            await self.collection.insert_one(request.record(result_id, at), session=session)
