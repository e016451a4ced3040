"""The idempotent consumer: at-least-once delivery from Kafka, exactly-once effect in the database.

Each record goes through three steps, visible as three methods:

1. :meth:`IdempotentConsumer.decode` — Kafka record → :class:`ReceivedEvent`. A record that is not
   a valid event is poison: it goes straight to the dead-letter topic.
2. :meth:`IdempotentConsumer.apply` — in one database transaction, record the event id as
   processed (a duplicate id means it was already applied: skip) and run the handler. Handler
   failures are retried a bounded number of times, then the record is dead-lettered.
3. :meth:`IdempotentConsumer.commit` — offsets are committed only after the effects of every
   record before them are durable (or dead-lettered).

If more than ``DeadLetterPolicy.max_dead_letters`` records are dead-lettered within its window, the
consumer stops with :class:`DeadLetterLimitExceededError` instead of dead-lettering everything (e.g.
after a bad deploy); offsets of the failing record are not committed, so a fixed deploy resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.structs import OffsetAndMetadata
from google.protobuf.message import Message
from opentelemetry import metrics, propagate, trace
from opentelemetry.trace import SpanKind
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import ConnectionFailure, DuplicateKeyError

from crm_platform import errors
from crm_platform.context import CallContext, reset_call, set_call
from crm_platform.events import Event, MalformedEvent
from crm_platform.mongo import MongoStore

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)
meter = metrics.get_meter(__name__)
_processed = meter.create_counter("crm.consumer.processed", unit="{event}")
_dead_lettered = meter.create_counter("crm.consumer.dead_lettered", unit="{event}")

DLQ_SUFFIX = ".dlq"


@dataclass(frozen=True, slots=True)
class ReceivedEvent:
    """A decoded event and where it came from."""

    event: Event
    payload: Message
    topic: str
    partition: int
    offset: int


Handler = Callable[[ReceivedEvent, AsyncClientSession], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class DeadLetterPolicy:
    """Where poison records go, and when to stop rather than dead-letter more."""

    max_dead_letters: int = 100
    window_seconds: float = 60.0
    topic_suffix: str = DLQ_SUFFIX


class DeadLetterLimitExceededError(RuntimeError):
    """Too many records were dead-lettered in the window: the consumer stops."""


class _PoisonError(Exception):
    """A record that cannot be processed (after retries): dead-letter it."""

    def __init__(self, reason: str, error: str) -> None:
        super().__init__(f"{reason}: {error}")
        self.reason = reason
        self.error = error


class IdempotentConsumer:
    """Consumes topics in a consumer group and applies each event once to the database."""

    def __init__(
        self,
        store: MongoStore,
        handler: Handler,
        *,
        topics: Sequence[str],
        group_id: str,
        bootstrap_servers: str,
        max_attempts: int = 5,
        retry_backoff_seconds: float = 0.1,
        dead_letter: DeadLetterPolicy | None = None,
        dedupe_retention_days: int = 14,
    ) -> None:
        self.store = store
        self.handler = handler
        self.topics = list(topics)
        self.group_id = group_id
        self.bootstrap_servers = bootstrap_servers
        self.max_attempts = max_attempts
        self.retry_backoff = retry_backoff_seconds
        self.dead_letter = dead_letter or DeadLetterPolicy()
        self.dedupe_retention = timedelta(days=dedupe_retention_days)
        self.processed = store.db["processed_events"]
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._dead_letters: DeadLetterQueue | None = None
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        """Consume until :meth:`stop`; raises :class:`DeadLetterLimitExceededError` at the limit."""
        await self.processed.create_index(
            "processed_at",
            name="processed_ttl",
            expireAfterSeconds=int(self.dedupe_retention.total_seconds()),
        )
        consumer = AIOKafkaConsumer(
            *self.topics,
            bootstrap_servers=self.bootstrap_servers,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
        )
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap_servers, enable_idempotence=True, acks="all"
        )
        self._stopping.clear()
        try:
            await consumer.start()
            await producer.start()
            self._consumer, self._producer = consumer, producer
            self._dead_letters = DeadLetterQueue(producer, self.dead_letter, self.group_id)
            while not self._stopping.is_set():
                batches = await consumer.getmany(timeout_ms=200, max_records=500)
                for tp, records in batches.items():
                    for record in records:
                        await self.process(record)
                    await self.commit(tp, records[-1].offset + 1)
        finally:
            self._consumer = self._producer = None
            with contextlib.suppress(Exception):
                await consumer.stop()
            with contextlib.suppress(Exception):
                await producer.stop()

    def start(self) -> None:
        """Consume in the background (the runner's ``BackgroundWork``)."""
        self._task = asyncio.create_task(self.run(), name=f"consumer-{self.group_id}")

    async def stop(self, timeout: float = 10.0) -> None:
        """Ask the loop to end after the record in hand; with a background task, wait for it
        (the batch's offsets are committed and the group is left) for up to ``timeout``, and
        re-raise why it ended if it failed (e.g. the dead-letter limit), so the runner logs it."""
        self._stopping.set()
        task = self._task
        if task is None or task is asyncio.current_task():
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            task.cancel()

    async def process(self, record: ConsumerRecord[bytes, bytes]) -> None:
        """Decode and apply one record, dead-lettering it if it is poison."""
        try:
            received = self.decode(record)
        except MalformedEvent as exc:
            await self.send_to_dead_letter(record, _PoisonError("malformed", str(exc)))
            return
        parent = propagate.extract(
            {name: value.decode(errors="replace") for name, value in record.headers if value}
        )
        with tracer.start_as_current_span(
            f"{record.topic} process",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.destination.name": record.topic,
                "messaging.consumer.group.name": self.group_id,
                "messaging.message.id": received.event.id,
                "messaging.kafka.offset": record.offset,
            },
        ):
            try:
                await self.apply(received)
            except _PoisonError as poison:
                await self.send_to_dead_letter(record, poison)

    def decode(self, record: ConsumerRecord[bytes, bytes]) -> ReceivedEvent:
        """Rebuild the envelope and parse the payload; raises :class:`MalformedEvent`."""
        event = Event.from_kafka(record.key, record.value, list(record.headers))
        return ReceivedEvent(event, event.decode(), record.topic, record.partition, record.offset)

    async def apply(self, received: ReceivedEvent) -> bool:
        """Apply the handler once per event id; returns False for an already-applied duplicate."""
        marker = {
            "_id": f"{self.group_id}|{received.event.id}",
            "topic": received.topic,
            "processed_at": datetime.now(UTC),
        }

        async def effect(session: AsyncClientSession) -> None:
            await self.processed.insert_one(marker, session=session)
            # Handlers act for the event's tenant and actor, as request handlers do.
            token = set_call(CallContext(received.event.tenant_id, received.event.actor))
            try:
                await self.handler(received, session)
            finally:
                reset_call(token)

        attempt = 0
        while attempt < self.max_attempts:
            attempt += 1
            try:
                await self.store.in_transaction(effect)
            except DuplicateKeyError as exc:
                if await self.processed.count_documents({"_id": marker["_id"]}, limit=1):
                    _processed.add(1, {"topic": received.topic, "outcome": "duplicate"})
                    return False
                error: Exception = exc  # a unique index of the handler's own, not the marker
            except (ConnectionFailure, errors.Unavailable) as exc:
                # The database (or a dependency) is down: not this event's fault. Wait and retry
                # without spending an attempt, so an outage does not dead-letter good events.
                log.warning("dependency unavailable, retrying: %s", exc)
                attempt -= 1
                if self._stopping.is_set():
                    raise
                await asyncio.sleep(min(5.0, self.retry_backoff * 20))
                continue
            except Exception as exc:  # the handler's own bug, or bad data in the event
                error = exc
            else:
                _processed.add(1, {"topic": received.topic, "outcome": "applied"})
                return True
            if attempt == self.max_attempts:
                raise _PoisonError("handler_failed", f"{type(error).__name__}: {error}") from error
            log.warning("handler failed (attempt %d), retrying: %s", attempt, error)
            await asyncio.sleep(self.retry_backoff * 2 ** (attempt - 1))
        return False  # pragma: no cover - the loop always returns or raises

    async def commit(self, tp: TopicPartition, next_offset: int) -> None:
        """Commit the offset after the effects before it are durable.

        If the partition was handed to another member meanwhile (rebalance), the commit is
        refused; the new owner re-reads those records and the dedupe makes that harmless.
        """
        if self._consumer is None:
            return
        try:
            await self._consumer.commit({tp: OffsetAndMetadata(next_offset, "")})
        except (CommitFailedError, IllegalStateError) as exc:
            log.warning("offset commit for %s refused after a rebalance: %s", tp, exc)

    async def send_to_dead_letter(
        self, record: ConsumerRecord[bytes, bytes], poison: _PoisonError
    ) -> None:
        """Publish the record unchanged to ``<topic>.dlq`` with the reason in headers."""
        assert self._dead_letters is not None
        try:
            await self._dead_letters.send(record, poison.reason, poison.error)
        except DeadLetterLimitExceededError:
            await self.stop()
            raise


class DeadLetterQueue:
    """Sends poison records to ``<topic>.dlq``, and stops the consumer past the policy's limit."""

    def __init__(self, producer: AIOKafkaProducer, policy: DeadLetterPolicy, group_id: str) -> None:
        self.producer = producer
        self.policy = policy
        self.group_id = group_id
        self._times: deque[float] = deque()

    async def send(self, record: ConsumerRecord[bytes, bytes], reason: str, error: str) -> None:
        """Publish the record unchanged with the reason in headers; raises
        :class:`DeadLetterLimitExceededError` (without sending) past the limit."""
        now = time.monotonic()
        window = self._times
        window.append(now)
        while window and window[0] < now - self.policy.window_seconds:
            window.popleft()
        if len(window) > self.policy.max_dead_letters:
            raise DeadLetterLimitExceededError(
                f"more than {self.policy.max_dead_letters} dead letters in "
                f"{self.policy.window_seconds:.0f}s; stopping at {record.topic}"
                f"[{record.partition}]@{record.offset}: {reason}: {error}"
            )
        headers = [
            *record.headers,
            ("dlq_reason", reason.encode()),
            ("dlq_error", error[:2000].encode()),
            ("dlq_topic", record.topic.encode()),
            ("dlq_partition", str(record.partition).encode()),
            ("dlq_offset", str(record.offset).encode()),
            ("dlq_group", self.group_id.encode()),
        ]
        await self.producer.send_and_wait(
            record.topic + self.policy.topic_suffix,
            value=record.value,
            key=record.key,
            headers=headers,
        )
        _dead_lettered.add(1, {"topic": record.topic, "reason": reason})
        log.error(
            "dead-lettered %s[%d]@%d: %s: %s",
            record.topic,
            record.partition,
            record.offset,
            reason,
            error,
        )
