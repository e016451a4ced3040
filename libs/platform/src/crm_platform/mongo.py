"""MongoDB access through PyMongo's native async API (Motor is deprecated); one database each."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.cursor import AsyncCursor
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from crm_platform.errors import FailedPrecondition

Document = dict[str, Any]
T = TypeVar("T")

CONCURRENT_UPDATE = "CONCURRENT_UPDATE"
"""The FAILED_PRECONDITION of a write that lost an optimistic-concurrency race."""


class MongoStore:
    """The service's database: a client, its database, and transactions with automatic retry."""

    def __init__(self, uri: str, database: str, *, app_name: str = "crm") -> None:
        self.client: AsyncMongoClient[Document] = AsyncMongoClient(
            uri,
            appname=app_name,
            tz_aware=True,
            serverSelectionTimeoutMS=5_000,
            uuidRepresentation="standard",
        )
        self.db: AsyncDatabase[Document] = self.client.get_database(
            database, write_concern=WriteConcern(w="majority")
        )

    async def ping(self) -> bool:
        """Whether the database answers (used by readiness)."""
        try:
            await self.db.command("ping")
        except PyMongoError:
            return False
        return True

    async def in_transaction(self, work: Callable[[AsyncClientSession], Awaitable[T]]) -> T:
        """Run ``work`` in one multi-document transaction, retried on transient errors.

        State and outbox events written through the given session commit together or not at all.
        """
        async with self.client.start_session() as session:
            return await session.with_transaction(
                work,
                read_concern=ReadConcern("snapshot"),
                write_concern=WriteConcern(w="majority"),
            )

    async def close(self) -> None:
        """Close the client's connections."""
        await self.client.close()


async def replace_version(
    collection: AsyncCollection[Document],
    kind: str,
    read_version: int,
    doc: Document,
    session: AsyncClientSession,
) -> None:
    """Replace an aggregate only if it is still at the version that was read (optimistic
    concurrency); otherwise FAILED_PRECONDITION ``CONCURRENT_UPDATE``."""
    result = await collection.replace_one(
        {"_id": doc["_id"], "tenant_id": doc["tenant_id"], "version": read_version},
        doc,
        session=session,
    )
    if result.matched_count != 1:  # a concurrent writer won (normally a write conflict)
        raise FailedPrecondition(
            CONCURRENT_UPDATE, f"{kind}/{doc['_id']}", "changed meanwhile; read it again"
        )


def tenant_page(
    collection: AsyncCollection[Document],
    tenant_id: str,
    filters: Mapping[str, object],
    after_id: str | None,
    limit: int,
) -> AsyncCursor[Document]:
    """One keyset page of a tenant's documents: those matching every filter with an ``_id``
    after ``after_id`` (the last one of the previous page), in ``_id`` order, at most ``limit``
    (see :mod:`crm_platform.paging` for the page tokens that carry ``after_id``)."""
    query: dict[str, Any] = {"tenant_id": tenant_id, **filters}
    if after_id is not None:
        query["_id"] = {"$gt": after_id}
    return collection.find(query).sort("_id", ASCENDING).limit(limit)
