"""The transactional outbox and its relay.

A service writes its state change and the events describing it in one database transaction
(:meth:`Outbox.add`). The :class:`OutboxRelay` publishes pending events to Kafka in the order they
were written, with an idempotent producer (``acks=all``), then deletes them from the outbox. While
Kafka is down writes keep succeeding and events wait in the outbox; nothing is lost when it comes
back. Delivery is at least once (a crash between publish and delete re-publishes); consumers
dedupe by event id.

Per-key order: each event carries the caller's sequence for its key (the aggregate version);
changes of one aggregate are serialised by their transactions, and the relay publishes each key's
events in sequence order, which the idempotent producer keeps per partition. Only one relay per
service publishes at a time (a lease in the database), so replicas do not interleave.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from bson import ObjectId
from opentelemetry import context as otel_context
from opentelemetry import metrics, propagate
from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from crm_platform.events import Event
from crm_platform.lease import Lease
from crm_platform.mongo import Document

log = logging.getLogger(__name__)
meter = metrics.get_meter(__name__)
_published = meter.create_counter("crm.outbox.published", unit="{event}")
_lag = meter.create_histogram("crm.outbox.relay_lag", unit="s")


# What a record needs to become a Kafka record.
_RECORD_FIELDS = ("topic", "payload", "key", "headers", "created_at")


class Outbox:
    """The outbox collection of one service; events go to ``topic``."""

    def __init__(self, db: AsyncDatabase[Document], topic: str) -> None:
        self.collection = db["outbox"]
        self.topic = topic
        self._committed = asyncio.Event()

    async def add(
        self, events: Sequence[Event], session: AsyncClientSession, *, sequence: int = 0
    ) -> None:
        """Store events in the caller's transaction; they are published after it commits.

        ``sequence`` orders one key's events (e.g. the aggregate's version after the change):
        ObjectIds from different processes do not sort in commit order, sequences do.
        """
        carrier: dict[str, str] = {}
        propagate.inject(carrier)  # the request's trace continues in the relay and consumers
        docs = [
            {
                "_id": ObjectId(),
                "topic": self.topic,
                "event_id": event.id,
                "seq": sequence,
                "key": event.key,
                "headers": [[name, value] for name, value in event.kafka_headers()],
                "payload": event.payload,
                "trace": carrier,
                "created_at": datetime.now(UTC),
            }
            for event in events
        ]
        if docs:
            await self.collection.insert_many(docs, session=session)

    def notify_committed(self) -> None:
        """Wake this process's relay now rather than at its next poll (call after commit)."""
        self._committed.set()

    async def wait_for_work(self, timeout: float) -> None:
        """Sleep until a local commit is notified or ``timeout`` passes."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._committed.wait(), timeout)
        self._committed.clear()

    async def pending(self, limit: int) -> list[Document]:
        """The oldest pending events, each key's in sequence order.

        Writes to one aggregate are serialised by their transactions, so when an event of a key
        is visible every earlier one of that key is too. A batch cut at ``limit`` may still
        leave out an earlier event of a key it holds (``_id`` order is not commit order across
        processes): those are fetched as well.
        """
        batch = await self.collection.find({}).sort("_id", ASCENDING).limit(limit).to_list(limit)
        if len(batch) == limit:
            ids = [doc["_id"] for doc in batch]
            keys = list({doc["key"] for doc in batch})
            batch += await self.collection.find(
                {"key": {"$in": keys}, "_id": {"$nin": ids}}
            ).to_list(None)
        return sorted(batch, key=lambda doc: (doc["key"], doc.get("seq", 0), doc["_id"]))

    async def remove_published(self, ids: Sequence[ObjectId]) -> None:
        """Forget events that are on Kafka. By id, not by ``_id`` range: a slower transaction
        may still commit an event whose ObjectId sorts before the ones just published."""
        await self.collection.delete_many({"_id": {"$in": list(ids)}})

    async def set_aside(self, doc: Document) -> None:
        """Keep an unpublishable record in ``outbox_malformed`` and out of the outbox."""
        kept = self.collection.database["outbox_malformed"]
        await kept.replace_one({"_id": doc["_id"]}, doc, upsert=True)
        await self.collection.delete_one({"_id": doc["_id"]})

    async def count_pending(self) -> int:
        """How many events wait to be published."""
        return await self.collection.count_documents({})


class RelayLease(Lease):
    """The relay's lease (see :class:`~crm_platform.lease.Lease`), in the ``outbox_lease``
    collection, so that only one relay of a service publishes at a time."""

    def __init__(self, db: AsyncDatabase[Document], name: str, ttl_seconds: float) -> None:
        super().__init__(db, name, ttl_seconds, collection="outbox_lease")


class OutboxRelay:
    """Publishes the outbox to Kafka; runs as a background task of the service."""

    def __init__(
        self,
        outbox: Outbox,
        lease: Lease,
        *,
        bootstrap_servers: str,
        client_id: str,
        batch_size: int = 500,
        poll_interval: float = 1.0,
        request_timeout_ms: int = 10_000,
    ) -> None:
        self.outbox = outbox
        self.lease = lease
        self.bootstrap_servers = bootstrap_servers
        self.client_id = client_id
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.request_timeout_ms = request_timeout_ms
        self._producer: AIOKafkaProducer | None = None
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.kafka_down_since: float | None = time.monotonic()

    @property
    def producer_connected(self) -> bool:
        """Whether the last attempt to reach Kafka succeeded."""
        return self.kafka_down_since is None

    def start(self) -> None:
        """Start publishing in the background (again, after :meth:`stop`)."""
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self, timeout: float = 10.0) -> None:
        """Publish what is pending (bounded by ``timeout``), then flush and close the producer."""
        self._stopping.set()
        self.outbox.notify_committed()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        await self._close_producer()
        with contextlib.suppress(PyMongoError):
            await self.lease.release()

    async def _producer_ready(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap_servers,
                client_id=self.client_id,
                enable_idempotence=True,
                acks="all",
                linger_ms=2,
                request_timeout_ms=self.request_timeout_ms,
            )
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def _close_producer(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            # stop() flushes; while the broker is down that would wait forever. Whatever the
            # abandoned producer still delivers later is a duplicate consumers drop.
            with contextlib.suppress(KafkaError, OSError, TimeoutError):
                await asyncio.wait_for(producer.stop(), 5.0)

    async def _run(self) -> None:
        backoff = 0.2
        while True:
            try:
                published = await self.publish_once()
                backoff = 0.2
            except (KafkaError, OSError, TimeoutError) as exc:
                if self.kafka_down_since is None:
                    self.kafka_down_since = time.monotonic()
                    log.warning("kafka unreachable, events wait in the outbox: %s", exc)
                # A fresh producer (new idempotence epoch) resends from the oldest pending event,
                # so per-key order holds across the outage.
                await self._close_producer()
                published = -1
            except PyMongoError as exc:
                log.warning("outbox read failed, retrying: %s", exc)
                published = -1
            except Exception:  # a malformed outbox document, a bug: keep the relay alive
                log.exception("outbox relay failed, retrying")
                published = -1
            if self._stopping.is_set() and published <= 0:
                return  # drained (or Kafka is down: the rest waits in the outbox for a restart)
            if published == 0:
                await self.outbox.wait_for_work(self.poll_interval)
            elif published < 0:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def publish_once(self) -> int:
        """Publish one batch of pending events; returns how many were published.

        A relay that does not hold the lease still checks that Kafka answers, so that every
        replica's readiness reflects the broker, not only the publishing one's.
        """
        producer = await self._producer_ready()
        if not await self.lease.acquire():
            await asyncio.wait_for(
                producer.client.fetch_all_metadata(), self.request_timeout_ms / 1000
            )
            self._kafka_reachable()
            return 0
        batch = await self.outbox.pending(self.batch_size)
        self._kafka_reachable()
        batch = await self._set_aside_malformed(batch)
        if not batch:
            return 0
        deliveries = []
        for doc in batch:
            # The request's trace continues here: the instrumented send span is its child.
            token = otel_context.attach(propagate.extract(doc.get("trace") or {}))
            try:
                deliveries.append(
                    await producer.send(
                        doc["topic"],
                        value=doc["payload"],
                        key=doc["key"].encode(),
                        headers=[(name, bytes(value)) for name, value in doc["headers"]],
                    )
                )
            finally:
                otel_context.detach(token)
        # With idempotence aiokafka retries an unreachable broker without end: bound the wait.
        await asyncio.wait_for(asyncio.gather(*deliveries), self.request_timeout_ms / 1000 + 5)
        await self.outbox.remove_published([doc["_id"] for doc in batch])
        now = datetime.now(UTC)
        for doc in batch:
            _lag.record((now - doc["created_at"]).total_seconds(), {"topic": doc["topic"]})
        _published.add(len(batch), {"topic": self.outbox.topic})
        return len(batch)

    async def _set_aside_malformed(self, batch: list[Document]) -> list[Document]:
        """Move records that cannot be published (written by an older or foreign writer) to
        ``outbox_malformed``: one of them must not stop every later event of the service."""
        good: list[Document] = []
        for doc in batch:
            if all(field in doc for field in _RECORD_FIELDS):
                good.append(doc)
                continue
            log.error("outbox record %s cannot be published; moved to outbox_malformed", doc["_id"])
            await self.outbox.set_aside(doc)
        return good

    def _kafka_reachable(self) -> None:
        if self.kafka_down_since is not None:
            log.info("kafka reachable")
            self.kafka_down_since = None
