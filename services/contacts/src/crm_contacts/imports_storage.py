"""The external ids of imported records: collection ``external_ids``.

``_id`` = ``<tenant>|<kind>|<external id>`` (kind ``contact`` or ``organization``) → the
record's id, so one external id names at most one record per tenant (the primary key is the
unique index). The entry is written in the same transaction as the record it names, so an
imported record always carries its external id and a re-import finds it.
"""

from __future__ import annotations

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from crm_platform.mongo import Document


def external_key(tenant_id: str, kind: str, external_id: str) -> str:
    """The stored key of an external id."""
    return f"{tenant_id}|{kind}|{external_id}"


class ExternalIds:
    """Reads and writes of the external id → record id map."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection: AsyncCollection[Document] = db["external_ids"]

    async def find(self, tenant_id: str, kind: str, external_id: str) -> str | None:
        """The id of the tenant's record of ``kind`` carrying ``external_id``, if any."""
        doc = await self.collection.find_one(
            {"_id": external_key(tenant_id, kind, external_id), "tenant_id": tenant_id},
            {"record_id": 1},
        )
        return None if doc is None else str(doc["record_id"])

    async def insert(
        self,
        tenant_id: str,
        kind: str,
        external_id: str,
        record_id: str,
        session: AsyncClientSession,
    ) -> None:
        """Record that ``record_id`` carries ``external_id``; a ``DuplicateKeyError`` when a
        record of the tenant already does (a concurrent import of the same row)."""
        await self.collection.insert_one(
            {
                "_id": external_key(tenant_id, kind, external_id),
                "tenant_id": tenant_id,
                "kind": kind,
                "external_id": external_id,
                "record_id": record_id,
            },
            session=session,
        )
