"""The service desk's own database: one collection per aggregate, events in the outbox.

Collections (database ``crm_servicedesk`` by default), every document with ``tenant_id`` and
every query scoped by it:

* ``tickets`` (``_id`` = ticket id, ``version`` guards each replace), ``messages``;
* ``calendars`` (the current version) and ``calendar_versions`` (every version, immutable:
  a ticket's due times name the version they were computed with);
* ``sla_policies``, ``routing_rules``, ``agents`` (with an ``open_tickets`` counter kept in
  the same transaction as the ticket change that moves it), ``routing_cursors``
  (round-robin position per team);
* ``mentions`` (``_id`` = ``<tenant>|<network>:<post id>``: the database enforces one per
  post), ``surveys``;
* ``idempotency`` (crm_platform.idempotency), ``timers`` (crm_platform.timers) and ``outbox``
  (crm_platform.outbox).

The use cases see only :class:`ServiceDeskStore`'s methods; this is the one module of the service
that knows the collections (and PyMongo).

Aggregates are frozen dataclasses; :class:`Codec` maps them to documents and back with
pydantic (validated on the way in, so a corrupt document fails loudly, not later).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from enum import Enum
from typing import Any, Generic, TypeVar

from pydantic import TypeAdapter
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from crm_calendar.business_calendar import BusinessCalendar, OpeningInterval
from crm_platform.errors import NotFound, Unavailable
from crm_platform.mongo import Document, MongoStore, replace_version
from crm_servicedesk.domain.configuration import Agent, CalendarRecord
from crm_servicedesk.domain.mention import Mention
from crm_servicedesk.domain.routing import RoutingRule
from crm_servicedesk.domain.sla_policy import SlaPolicy
from crm_servicedesk.domain.survey import Survey
from crm_servicedesk.domain.ticket import Message, Ticket

A = TypeVar("A")
Session = AsyncClientSession
"""A database session: the transaction a write (or a consistent read) belongs to."""


def _bson(value: Any) -> Any:
    """Python values the BSON encoder does not take, as ones it does."""
    if isinstance(value, dict):
        return {key: _bson(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_bson(item) for item in value]
    if isinstance(value, set | frozenset):
        return sorted(_bson(item) for item in value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Enum):
        return value.value
    return value


class Codec(Generic[A]):
    """One aggregate type ↔ its document; ``_id`` is the value of ``id_field``."""

    def __init__(self, kind: type[A], id_field: str) -> None:
        self._adapter: TypeAdapter[A] = TypeAdapter(kind)
        self._id_field = id_field

    def to_document(self, aggregate: A, *, doc_id: str | None = None) -> Document:
        """The document for ``aggregate``."""
        doc: Document = _bson(self._adapter.dump_python(aggregate))
        doc["_id"] = doc_id or doc[self._id_field]
        return doc

    def from_document(self, doc: Mapping[str, Any]) -> A:
        """The aggregate stored in ``doc``."""
        data = {key: value for key, value in doc.items() if key != "_id"}
        return self._adapter.validate_python(data)


TICKETS = Codec(Ticket, "ticket_id")
MESSAGES = Codec(Message, "message_id")
POLICIES = Codec(SlaPolicy, "policy_id")
RULES = Codec(RoutingRule, "rule_id")
MENTIONS = Codec(Mention, "mention_id")
SURVEYS = Codec(Survey, "survey_id")


AGENTS = Codec(Agent, "agent_id")


def calendar_to_document(record: CalendarRecord, tenant_id: str) -> Document:
    """The document of a calendar version (dates as ISO strings, intervals as triples)."""
    calendar = record.calendar
    return {
        "_id": calendar.calendar_id,
        "tenant_id": tenant_id,
        "calendar_id": calendar.calendar_id,
        "version": calendar.version,
        "name": record.name,
        "timezone": calendar.timezone,
        "intervals": [[i.weekday, i.start_minute, i.end_minute] for i in calendar.intervals],
        "holidays": sorted(day.isoformat() for day in calendar.holidays),
        "holiday_country": calendar.holiday_country,
        "holiday_subdivision": calendar.holiday_subdivision,
        "updated_at": record.updated_at,
    }


def calendar_from_document(doc: Mapping[str, Any]) -> CalendarRecord:
    """A calendar version from its document (validated again, like any construction)."""
    calendar = BusinessCalendar(
        calendar_id=doc["calendar_id"],
        version=doc["version"],
        timezone=doc["timezone"],
        intervals=tuple(OpeningInterval(*triple) for triple in doc["intervals"]),
        holidays=frozenset(date.fromisoformat(day) for day in doc["holidays"]),
        holiday_country=doc.get("holiday_country"),
        holiday_subdivision=doc.get("holiday_subdivision"),
    )
    return CalendarRecord(calendar, doc["name"], doc["updated_at"])


def scoped_id(tenant_id: str, ident: str) -> str:
    """Document id of a tenant's resource whose id is chosen outside (mentions, agents)."""
    return f"{tenant_id}|{ident}"


class ServiceDeskStore:
    """The repository of the service desk's aggregates; writes take the caller's session (the
    unit of work's transaction), reads may."""

    def __init__(self, store: MongoStore) -> None:
        db = store.db
        self.tickets: AsyncCollection[Document] = db["tickets"]
        self.messages: AsyncCollection[Document] = db["messages"]
        self.calendars: AsyncCollection[Document] = db["calendars"]
        self.calendar_versions: AsyncCollection[Document] = db["calendar_versions"]
        self.policies: AsyncCollection[Document] = db["sla_policies"]
        self.rules: AsyncCollection[Document] = db["routing_rules"]
        self.agents: AsyncCollection[Document] = db["agents"]
        self.cursors: AsyncCollection[Document] = db["routing_cursors"]
        self.mentions: AsyncCollection[Document] = db["mentions"]
        self.surveys: AsyncCollection[Document] = db["surveys"]

    async def ensure_indexes(self) -> None:
        """Create the indexes the queries rely on (idempotent)."""
        await self.tickets.create_index([("tenant_id", ASCENDING), ("created_at", DESCENDING)])
        await self.tickets.create_index(
            [("tenant_id", ASCENDING), ("contact_id", ASCENDING), ("created_at", DESCENDING)]
        )
        await self.tickets.create_index([("tenant_id", ASCENDING), ("assignee_id", ASCENDING)])
        await self.tickets.create_index(
            [("tenant_id", ASCENDING), ("source_mention_id", ASCENDING)],
            unique=True,
            partialFilterExpression={"source_mention_id": {"$gt": ""}},
        )
        await self.messages.create_index(
            [("tenant_id", ASCENDING), ("ticket_id", ASCENDING), ("sent_at", ASCENDING)]
        )
        await self.mentions.create_index(
            [("tenant_id", ASCENDING), ("author_contact_id", ASCENDING), ("posted_at", DESCENDING)]
        )
        await self.surveys.create_index(
            [("tenant_id", ASCENDING), ("ticket_id", ASCENDING), ("sent_at", DESCENDING)]
        )
        await self.agents.create_index([("tenant_id", ASCENDING), ("team_ids", ASCENDING)])

    # -- generic ---------------------------------------------------------------------------

    @staticmethod
    async def _find(
        collection: AsyncCollection[Document],
        codec: Codec[A],
        kind: str,
        tenant_id: str,
        ident: str,
        session: Session | None = None,
        *,
        doc_id: str | None = None,
    ) -> A:
        """One aggregate of the tenant; NOT_FOUND (also for another tenant's id)."""
        doc = await collection.find_one(
            {"_id": doc_id or ident, "tenant_id": tenant_id}, session=session
        )
        if doc is None:
            raise NotFound(kind, ident)
        return codec.from_document(doc)

    # -- configuration ---------------------------------------------------------------------

    async def calendar_version(
        self,
        tenant_id: str,
        calendar_id: str,
        version: int,
        session: Session | None = None,
    ) -> BusinessCalendar:
        """A calendar as it was at ``version``."""
        doc = await self.calendar_versions.find_one(
            {"_id": f"{calendar_id}@{version}", "tenant_id": tenant_id}, session=session
        )
        if doc is None:
            raise NotFound("calendar", f"{calendar_id}@{version}")
        return calendar_from_document(doc).calendar

    async def calendar(
        self, tenant_id: str, calendar_id: str, session: Session | None = None
    ) -> CalendarRecord:
        """The current version of a calendar."""
        doc = await self.calendars.find_one(
            {"_id": calendar_id, "tenant_id": tenant_id}, session=session
        )
        if doc is None:
            raise NotFound("calendar", calendar_id)
        return calendar_from_document(doc)

    async def list_calendars(self, tenant_id: str) -> list[CalendarRecord]:
        """A tenant's calendars (current versions)."""
        cursor = self.calendars.find({"tenant_id": tenant_id}).sort("_id", ASCENDING)
        return [calendar_from_document(doc) async for doc in cursor.limit(10_000)]

    async def save_calendar(self, record: CalendarRecord, tenant_id: str, session: Session) -> None:
        """Store a new calendar version (and make it the current one)."""
        calendar = record.calendar
        doc = calendar_to_document(record, tenant_id)
        if calendar.version == 1:
            await self.calendars.insert_one(doc, session=session)
        else:
            await replace_version(self.calendars, "calendar", calendar.version - 1, doc, session)
        versioned = dict(doc, _id=f"{calendar.calendar_id}@{calendar.version}")
        await self.calendar_versions.insert_one(versioned, session=session)

    @staticmethod
    async def _list_all(
        collection: AsyncCollection[Document],
        codec: Codec[A],
        tenant_id: str,
        session: Session | None = None,
    ) -> list[A]:
        """Every configuration item of a kind (calendars, policies, rules) of a tenant."""
        cursor = collection.find({"tenant_id": tenant_id}, session=session).sort("_id", ASCENDING)
        return [codec.from_document(doc) async for doc in cursor.limit(10_000)]

    async def sla_policies(self, tenant_id: str, session: Session | None = None) -> list[SlaPolicy]:
        """A tenant's SLA policies (in id order)."""
        return await self._list_all(self.policies, POLICIES, tenant_id, session)

    async def sla_policy(self, tenant_id: str, policy_id: str) -> SlaPolicy:
        """One SLA policy (its current version)."""
        return await self._find(self.policies, POLICIES, "policy", tenant_id, policy_id)

    async def routing_rules(
        self, tenant_id: str, session: Session | None = None
    ) -> list[RoutingRule]:
        """A tenant's routing rules (in id order)."""
        return await self._list_all(self.rules, RULES, tenant_id, session)

    async def routing_rule(self, tenant_id: str, rule_id: str) -> RoutingRule:
        """One routing rule (its current version)."""
        return await self._find(self.rules, RULES, "routing rule", tenant_id, rule_id)

    async def save_versioned(
        self, kind: str, item: SlaPolicy | RoutingRule, tenant_id: str, session: Session
    ) -> None:
        """Insert version 1 of a policy or rule, or replace the version before this one (a
        concurrent writer of that version makes it CONCURRENT_UPDATE or a duplicate key)."""
        if isinstance(item, SlaPolicy):
            collection, doc = self.policies, POLICIES.to_document(item)
        else:
            collection, doc = self.rules, RULES.to_document(item)
        doc |= {"tenant_id": tenant_id}
        if item.version <= 1:
            await collection.insert_one(doc, session=session)
        else:
            await replace_version(collection, kind, item.version - 1, doc, session)

    async def agent(self, tenant_id: str, agent_id: str) -> Agent | None:
        """An agent, if the tenant has one of this id."""
        doc = await self.agents.find_one({"_id": scoped_id(tenant_id, agent_id)})
        return None if doc is None else AGENTS.from_document(doc)

    async def has_agent(self, tenant_id: str, agent_id: str, session: Session | None) -> bool:
        """Whether the tenant has an agent of this id."""
        found = await self.agents.find_one(
            {"_id": scoped_id(tenant_id, agent_id)}, {"_id": 1}, session=session
        )
        return found is not None

    async def put_agent(self, agent: Agent, session: Session) -> None:
        """Create or replace an agent."""
        doc_id = scoped_id(agent.tenant_id, agent.agent_id)
        doc = AGENTS.to_document(agent, doc_id=doc_id) | {"tenant_id": agent.tenant_id}
        await self.agents.replace_one({"_id": doc_id}, doc, upsert=True, session=session)

    async def list_agents(self, tenant_id: str, team_id: str = "") -> list[Agent]:
        """A tenant's agents (of one team), in id order."""
        query: dict[str, Any] = {"tenant_id": tenant_id}
        if team_id:
            query["team_ids"] = team_id
        cursor = self.agents.find(query).sort("_id", ASCENDING).limit(10_000)
        return [AGENTS.from_document(doc) async for doc in cursor]

    async def team_agents(
        self, tenant_id: str, team_id: str, session: Session | None = None
    ) -> list[Agent]:
        """The agents of a team."""
        cursor = self.agents.find({"tenant_id": tenant_id, "team_ids": team_id}, session=session)
        return [AGENTS.from_document(doc) async for doc in cursor.limit(10_000)]

    async def next_turn(self, tenant_id: str, team_id: str) -> int:
        """Take the team's next round-robin turn (0, 1, 2, ...), atomically and on its own,
        outside any transaction."""
        key = {"_id": f"{tenant_id}|{team_id}"}
        for _ in range(3):
            doc = await self.cursors.find_one_and_update(
                key, {"$inc": {"turn": 1}}, return_document=ReturnDocument.AFTER
            )
            if doc is not None:
                return int(doc["turn"]) - 1
            # The team's first turn: create the counter, then take a turn. (Not one upsert:
            # SecantusDB may answer racing upserts without the document, and a retry would
            # then skip a turn.)
            with contextlib.suppress(DuplicateKeyError):  # a concurrent first turn made it
                await self.cursors.update_one(
                    key, {"$setOnInsert": {"turn": 0, "tenant_id": tenant_id}}, upsert=True
                )
        raise Unavailable(f"round-robin counter of team {team_id} is contended; try again")

    async def move_open_count(
        self, tenant_id: str, before: str, after: str, session: Session
    ) -> None:
        """Keep agents' open-ticket counters in step with a ticket change."""
        if before == after:
            return
        if before:
            await self.agents.update_one(
                {"_id": scoped_id(tenant_id, before)},
                {"$inc": {"open_tickets": -1}},
                session=session,
            )
        if after:
            await self.agents.update_one(
                {"_id": scoped_id(tenant_id, after)},
                {"$inc": {"open_tickets": 1}},
                session=session,
            )

    # -- tickets and messages --------------------------------------------------------------

    async def ticket(
        self, tenant_id: str, ticket_id: str, session: Session | None = None
    ) -> Ticket:
        """A ticket of the tenant."""
        return await self._find(self.tickets, TICKETS, "ticket", tenant_id, ticket_id, session)

    async def save_ticket(self, before: Ticket | None, after: Ticket, session: Session) -> None:
        """Insert a new ticket or replace the version that was read; counters follow."""
        doc = TICKETS.to_document(after)
        if before is None:
            await self.tickets.insert_one(doc, session=session)
        else:
            await replace_version(self.tickets, "ticket", before.version, doc, session)
        await self.move_open_count(
            after.tenant_id,
            before.counts_as_open_for if before else "",
            after.counts_as_open_for,
            session,
        )

    async def ticket_calendar(
        self, ticket: Ticket, session: Session | None
    ) -> BusinessCalendar | None:
        """The calendar version a ticket's due times were computed with (None: wall clocks)."""
        if ticket.sla is None or not ticket.sla.calendar_id:
            return None
        return await self.calendar_version(
            ticket.tenant_id, ticket.sla.calendar_id, ticket.sla.calendar_version, session
        )

    async def list_tickets(
        self,
        tenant_id: str,
        filters: Mapping[str, Any],
        limit: int,
        after: tuple[datetime, str] | None,
    ) -> list[Ticket]:
        """Tickets newest first, from the keyset position ``after``."""
        query: dict[str, Any] = {"tenant_id": tenant_id, **filters}
        if after is not None:
            created, ident = after
            query["$or"] = [
                {"created_at": {"$lt": created}},
                {"created_at": created, "_id": {"$lt": ident}},
            ]
        cursor = self.tickets.find(query).sort([("created_at", DESCENDING), ("_id", DESCENDING)])
        return [TICKETS.from_document(doc) async for doc in cursor.limit(limit)]

    async def message(
        self, tenant_id: str, ticket_id: str, message_id: str, session: Session
    ) -> Message:
        """A message of a ticket."""
        doc = await self.messages.find_one(
            {"_id": message_id, "tenant_id": tenant_id, "ticket_id": ticket_id}, session=session
        )
        if doc is None:
            raise NotFound("message", message_id)
        return MESSAGES.from_document(doc)

    async def ticket_messages(
        self, tenant_id: str, ticket_id: str, include_internal: bool
    ) -> list[Message]:
        """A ticket's conversation in send order."""
        query: dict[str, Any] = {"tenant_id": tenant_id, "ticket_id": ticket_id}
        if not include_internal:
            query["visibility"] = "public"
        cursor = self.messages.find(query).sort([("sent_at", ASCENDING), ("_id", ASCENDING)])
        return [MESSAGES.from_document(doc) async for doc in cursor.limit(10_000)]

    async def insert_messages(self, messages: Sequence[Message], session: Session) -> None:
        """Store new messages."""
        if messages:
            await self.messages.insert_many(
                [MESSAGES.to_document(m) | {"tenant_id": m.tenant_id} for m in messages],
                session=session,
            )

    async def replace_message(self, message: Message, session: Session) -> None:
        """Store a message's new state (its receipts)."""
        await self.messages.replace_one(
            {"_id": message.message_id, "tenant_id": message.tenant_id},
            MESSAGES.to_document(message) | {"tenant_id": message.tenant_id},
            session=session,
        )

    # -- mentions and surveys --------------------------------------------------------------

    async def existing_mentions(
        self, tenant_id: str, mention_ids: Sequence[str], session: Session | None
    ) -> dict[str, Mention]:
        """The mentions among ``mention_ids`` that were ingested before."""
        ids = [scoped_id(tenant_id, ident) for ident in mention_ids]
        cursor = self.mentions.find({"_id": {"$in": ids}}, session=session)
        found = [MENTIONS.from_document(doc) async for doc in cursor]
        return {mention.mention_id: mention for mention in found}

    async def insert_mentions(self, mentions: Sequence[Mention], session: Session) -> None:
        """Store new mentions (a duplicate id aborts the transaction: the caller retries)."""
        if mentions:
            docs = [
                MENTIONS.to_document(m, doc_id=scoped_id(m.tenant_id, m.mention_id))
                for m in mentions
            ]
            await self.mentions.insert_many(docs, ordered=True, session=session)

    async def survey_for_ticket(
        self, tenant_id: str, ticket_id: str, reason: str, session: Session
    ) -> Survey | None:
        """The ticket's survey sent for ``reason``, if one was."""
        doc = await self.surveys.find_one(
            {"tenant_id": tenant_id, "ticket_id": ticket_id, "reason": reason}, session=session
        )
        return None if doc is None else SURVEYS.from_document(doc)

    async def mention(self, tenant_id: str, mention_id: str) -> Mention:
        """A mention of the tenant."""
        return await self._find(
            self.mentions,
            MENTIONS,
            "mention",
            tenant_id,
            mention_id,
            doc_id=scoped_id(tenant_id, mention_id),
        )

    async def list_mentions(
        self,
        tenant_id: str,
        author_contact_id: str,
        limit: int,
        after: tuple[datetime, str] | None,
    ) -> list[Mention]:
        """Mentions newest first (by post time), from the keyset position ``after`` (a post
        time and a mention id)."""
        query: dict[str, Any] = {"tenant_id": tenant_id}
        if author_contact_id:
            query["author_contact_id"] = author_contact_id
        if after is not None:
            posted, ident = after
            doc_id = scoped_id(tenant_id, ident)
            query["$or"] = [
                {"posted_at": {"$lt": posted}},
                {"posted_at": posted, "_id": {"$lt": doc_id}},
            ]
        cursor = self.mentions.find(query).sort([("posted_at", DESCENDING), ("_id", DESCENDING)])
        return [MENTIONS.from_document(doc) async for doc in cursor.limit(limit)]

    async def survey(
        self, tenant_id: str, survey_id: str, session: Session | None = None
    ) -> Survey:
        """A survey of the tenant."""
        return await self._find(self.surveys, SURVEYS, "survey", tenant_id, survey_id, session)

    async def insert_surveys(self, surveys: Sequence[Survey], session: Session) -> None:
        """Store new surveys."""
        if surveys:
            await self.surveys.insert_many(
                [SURVEYS.to_document(s) | {"tenant_id": s.tenant_id} for s in surveys],
                session=session,
            )

    async def record_answer(self, answered: Survey, session: Session) -> bool:
        """Store a survey's answer unless it was answered already; whether it was stored."""
        result = await self.surveys.replace_one(
            {"_id": answered.survey_id, "tenant_id": answered.tenant_id, "answered": False},
            SURVEYS.to_document(answered) | {"tenant_id": answered.tenant_id},
            session=session,
        )
        return result.matched_count == 1

    async def list_surveys(self, tenant_id: str, ticket_id: str, contact_id: str) -> list[Survey]:
        """Surveys newest first (at most 500), of a ticket or a contact."""
        query: dict[str, Any] = {"tenant_id": tenant_id}
        if ticket_id:
            query["ticket_id"] = ticket_id
        if contact_id:
            query["contact_id"] = contact_id
        cursor = self.surveys.find(query).sort("sent_at", DESCENDING).limit(500)
        return [SURVEYS.from_document(doc) async for doc in cursor]
