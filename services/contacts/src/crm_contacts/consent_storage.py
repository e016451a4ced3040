"""Consent history in the contacts database: collection ``consent_history``, one document per
entry, never updated (append-only), always queried with ``tenant_id`` and ``contact_id``.

The current state is derived from the entries (:func:`crm_contacts.domain.consent.current_states`):
a contact's history is short (a few entries per purpose and channel), so reading it whole is
cheaper than keeping and guarding a second copy of the state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from crm_contacts.domain.consent import (
    ConsentChannel,
    ConsentEntry,
    ConsentPurpose,
    ConsentStatus,
)
from crm_platform.mongo import Document

COLLECTION = "consent_history"


def _utc(value: datetime) -> datetime:
    # BSON dates come back naive unless the client is tz-aware; entries compare as UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def entry_to_document(entry: ConsentEntry) -> Document:
    """The stored form of an entry."""
    return {
        "_id": entry.id,
        "tenant_id": entry.tenant_id,
        "contact_id": entry.contact_id,
        "purpose": entry.purpose.value,
        "channel": entry.channel.value,
        "status": entry.status.value,
        "time": entry.time,
        "source": entry.source,
        "record_time": entry.record_time,
    }


def entry_from_document(doc: Mapping[str, Any]) -> ConsentEntry:
    """An entry from its stored form."""
    return ConsentEntry(
        id=doc["_id"],
        tenant_id=doc["tenant_id"],
        contact_id=doc["contact_id"],
        purpose=ConsentPurpose(doc["purpose"]),
        channel=ConsentChannel(doc["channel"]),
        status=ConsentStatus(doc["status"]),
        time=_utc(doc["time"]),
        source=doc["source"],
        record_time=_utc(doc["record_time"]),
    )


class ConsentStore:
    """The consent history repository."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.entries: AsyncCollection[Document] = db[COLLECTION]

    async def ensure_indexes(self) -> None:
        """History pages are in recording order (``record_time``, ``_id``) per contact."""
        await self.entries.create_index(
            [
                ("tenant_id", ASCENDING),
                ("contact_id", ASCENDING),
                ("record_time", ASCENDING),
                ("_id", ASCENDING),
            ]
        )

    async def append(
        self, entries: Sequence[ConsentEntry], session: AsyncClientSession | None
    ) -> None:
        """Add entries to the history (in the caller's transaction)."""
        if entries:
            await self.entries.insert_many(
                [entry_to_document(entry) for entry in entries], session=session
            )

    async def get_entry(
        self, tenant_id: str, entry_id: str, session: AsyncClientSession | None = None
    ) -> ConsentEntry | None:
        """One entry by id, or ``None``."""
        query = {"_id": entry_id, "tenant_id": tenant_id}
        doc = await self.entries.find_one(query, session=session)
        return None if doc is None else entry_from_document(doc)

    async def contact_history(
        self,
        tenant_id: str,
        contact_id: str,
        session: AsyncClientSession | None = None,
        *,
        after: tuple[datetime, str] | None = None,
        limit: int = 0,
    ) -> list[ConsentEntry]:
        """The contact's entries in recording order, after the ``(record_time, id)`` cursor;
        ``limit`` 0 means all."""
        query: dict[str, Any] = {"tenant_id": tenant_id, "contact_id": contact_id}
        if after is not None:
            time, entry_id = after
            query["$or"] = [
                {"record_time": {"$gt": time}},
                {"record_time": time, "_id": {"$gt": entry_id}},
            ]
        cursor = self.entries.find(query, session=session).sort(
            [("record_time", ASCENDING), ("_id", ASCENDING)]
        )
        if limit:
            cursor = cursor.limit(limit)
        return [entry_from_document(doc) async for doc in cursor]
