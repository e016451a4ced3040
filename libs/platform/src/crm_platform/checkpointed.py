"""The checkpointed consumer: per-partition state, saved together with the consumed offsets.

The consumer of the platform: it keeps each assigned partition's state in
memory and periodically writes it *together with the partition's next offset* in one database
transaction. The database, not Kafka's committed offset, says where a partition resumes. So:

- a crash at any point resumes from the last checkpoint: records after it are read again and
  applied to the state as it was then — nothing lost, nothing counted twice;
- a rebalance checkpoints the partitions being revoked before they are handed over, and the new
  owner loads that checkpoint;
- a member that lost its partitions without knowing (a "zombie" after a long pause) cannot
  overwrite the new owner's progress: a checkpoint is a conditional write on the checkpoint it was
  based on (:class:`LostOwnershipError`), after which the partition is loaded again;
- a state is used by one task at a time: aiokafka runs the rebalance callbacks in its own task,
  so they wait for the loop's batch or checkpoint in flight (and the loop for them).

The steps, one method each: :meth:`CheckpointedConsumer._assign` (load and seek),
:meth:`CheckpointedConsumer._process` (decode → state, poison → dead-letter topic) and
:meth:`CheckpointedConsumer._checkpoint` (state + offset, then Kafka's offset for lag metrics).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.structs import OffsetAndMetadata
from opentelemetry import metrics

from crm_platform.dead_letters import DeadLetterPolicy, DeadLetterQueue
from crm_platform.events import Event, MalformedEvent

log = logging.getLogger(__name__)
meter = metrics.get_meter(__name__)
_records = meter.create_counter("crm.checkpointed.records", unit="{record}")
_checkpoints = meter.create_histogram("crm.checkpointed.checkpoint.duration", unit="s")


class PoisonRecordError(ValueError):
    """Raised by a state for a record that can never be applied: it is dead-lettered."""


class LostOwnershipError(RuntimeError):
    """A checkpoint found another owner's progress: the partition is loaded again."""


class PartitionState(Protocol):
    """The state of one assigned partition."""

    async def load(self) -> int | None:
        """Load the last checkpoint; return the next offset to read, or None for none."""

    def process(self, event: Event, offset: int) -> None:
        """Apply one event (raise :class:`PoisonRecordError` if it never can be)."""

    def skip(self, offset: int) -> None:
        """Move past a record that was dead-lettered (so the checkpoint includes it)."""

    @property
    def pending(self) -> int:
        """How much work the next checkpoint has to write (e.g. changed entities)."""

    async def checkpoint(self) -> int:
        """Write the state and the next offset atomically; return that offset.

        Raise :class:`LostOwnershipError` if the stored checkpoint is not the one this state was
        loaded from or last wrote."""

    def close(self) -> None:
        """The partition was revoked; drop the state."""


StateFactory = Callable[[TopicPartition], PartitionState]


async def end_offsets(bootstrap_servers: str, topics: Sequence[str]) -> dict[TopicPartition, int]:
    """The topics' end offsets now, per partition (where "caught up" is)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        described = await admin.describe_topics(list(topics))
    finally:
        await admin.close()
    partitions = [
        TopicPartition(topic["topic"], partition["partition"])
        for topic in described
        for partition in topic["partitions"]
    ]
    if not partitions:
        return {}
    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    await probe.start()
    try:
        return dict(await probe.end_offsets(partitions))
    finally:
        try:
            await probe.stop()
        except asyncio.CancelledError:
            # aiokafka 0.14 cancels its own committed-offsets task on stop and lets the
            # cancellation escape when no group was used; only a real cancellation propagates.
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: CheckpointedConsumer) -> None:
        self.owner = owner

    # aiokafka logs and swallows a listener's exception; the consumer must not carry on with
    # partitions it failed to load or save, so the failure is handed to its loop to raise.
    # The callbacks run in aiokafka's coordinator task, concurrently with the consumer's loop:
    # they wait for the loop's batch or checkpoint in flight (the consumer's lock), so a
    # partition is never checkpointed twice at once nor revoked in the middle of a checkpoint.
    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        try:
            async with self.owner._lock:
                await self.owner._revoke(list(revoked))
        except Exception as exc:
            self.owner._failure = exc

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        try:
            async with self.owner._lock:
                await self.owner._assign(list(assigned))
        except Exception as exc:
            self.owner._failure = exc


class CheckpointedConsumer:
    """Consumes topics in a group; each partition's state is checkpointed with its offset."""

    def __init__(
        self,
        factory: StateFactory,
        *,
        topics: Sequence[str],
        group_id: str,
        bootstrap_servers: str,
        checkpoint_interval: float = 0.2,
        catch_up_interval: float = 2.0,
        max_pending: int = 200,
        catch_up_pending: int = 5_000,
        start_time: datetime | None = None,
        dead_letter: DeadLetterPolicy | None = None,
        max_records: int = 2000,
    ) -> None:
        self.factory = factory
        self.topics = list(topics)
        self.group_id = group_id
        self.bootstrap_servers = bootstrap_servers
        self.checkpoint_interval = checkpoint_interval
        self.catch_up_interval = max(catch_up_interval, checkpoint_interval)
        self._behind = False
        self.max_pending = max_pending
        self.catch_up_pending = max(catch_up_pending, max_pending)
        self.start_time = start_time
        self.dead_letter = dead_letter or DeadLetterPolicy()
        self.max_records = max_records
        self.states: dict[TopicPartition, PartitionState] = {}
        self._last_checkpoint: dict[TopicPartition, float] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._dead_letters: DeadLetterQueue | None = None
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failure: Exception | None = None
        # Held while the states are used or changed: by the loop for a batch and for the
        # checkpoints due, by the rebalance callbacks (another task) to revoke or assign. Without
        # it a revocation could checkpoint a partition while the loop's checkpoint of it is in
        # flight: one of the two loses the fence, and if it is the loop's, the cells and facts
        # it had flushed are lost while the offset the other wrote moves past their records.
        self._lock = asyncio.Lock()
        self.records = 0

    async def run(self) -> None:
        """Consume until :meth:`stop` (or the dead-letter limit)."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            # Co-partitioning: partition n of every topic goes to the same member.
            partition_assignment_strategy=(RangePartitionAssignor,),
            max_partition_fetch_bytes=4 * 1024 * 1024,
            fetch_max_bytes=16 * 1024 * 1024,
        )
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap_servers, enable_idempotence=True, acks="all"
        )
        self._stopping.clear()
        try:
            await consumer.start()
            await producer.start()
            self._consumer = consumer
            self._dead_letters = DeadLetterQueue(producer, self.dead_letter, self.group_id)
            consumer.subscribe(self.topics, listener=_Rebalance(self))
            while not self._stopping.is_set():
                batches = await consumer.getmany(timeout_ms=100, max_records=self.max_records)
                if self._failure is not None:
                    raise self._failure
                # A full batch means the consumer is behind (a replay, a backlog): checkpoint
                # less often then, so more changes to the same aggregates coalesce per write.
                self._behind = sum(len(r) for r in batches.values()) >= self.max_records
                fetched_for = dict(self.states)
                async with self._lock:
                    for tp, records in batches.items():
                        state = self.states.get(tp)
                        if state is None or state is not fetched_for.get(tp):
                            # Revoked (and maybe loaded again, seeking to its checkpoint) while
                            # the loop waited for the lock: these records are not its next ones.
                            continue
                        for record in records:
                            await self._process(state, record)
                await self._checkpoint_due()
            async with self._lock:
                await self._revoke(list(self.states))
        finally:
            self._consumer = None
            with contextlib.suppress(Exception):
                await consumer.stop()
            with contextlib.suppress(Exception):
                await producer.stop()

    def start(self) -> None:
        """Consume in the background; a failure is logged at once (readiness turns false)."""
        self._task = asyncio.create_task(self.run(), name=f"checkpointed-{self.group_id}")
        self._task.add_done_callback(self._log_failure)

    @staticmethod
    def _log_failure(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("the consumer stopped", exc_info=task.exception())

    async def stop(self, timeout: float = 15.0) -> None:
        """Checkpoint every partition, leave the group and end; re-raise why the loop failed."""
        self._stopping.set()
        task = self._task
        if task is None or task is asyncio.current_task():
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            task.cancel()

    @property
    def running(self) -> bool:
        """Whether the background loop is alive."""
        return self._task is not None and not self._task.done()

    # -- partitions ---------------------------------------------------------------------------

    async def _assign(self, assigned: list[TopicPartition]) -> None:
        consumer = self._consumer
        assert consumer is not None
        for tp in assigned:
            if tp in self.states:
                continue
            await self._load(consumer, tp)

    async def _load(self, consumer: AIOKafkaConsumer, tp: TopicPartition) -> None:
        state = self.factory(tp)
        offset = await state.load()
        self.states[tp] = state
        self._last_checkpoint[tp] = time.monotonic()
        if offset is not None:
            consumer.seek(tp, offset)
        elif self.start_time is not None:
            found = await consumer.offsets_for_times({tp: int(self.start_time.timestamp() * 1000)})
            position = found.get(tp)
            if position is None:
                await consumer.seek_to_end(tp)
            else:
                consumer.seek(tp, position.offset)
        else:
            await consumer.seek_to_beginning(tp)
        log.info("partition %s assigned, resuming at %s", tp, offset)

    async def _revoke(self, revoked: list[TopicPartition]) -> None:
        for tp in revoked:
            state = self.states.get(tp)
            if state is None:
                continue
            with contextlib.suppress(LostOwnershipError):
                await self._save(tp, state)
            state.close()
            del self.states[tp]

    # -- records ------------------------------------------------------------------------------

    async def _process(self, state: PartitionState, record: ConsumerRecord[bytes, bytes]) -> None:
        try:
            event = Event.from_kafka(record.key, record.value, list(record.headers))
            event.decode()  # a payload that does not parse is poison too
        except MalformedEvent as exc:
            await self._dead_letter(state, record, "malformed", str(exc))
            return
        try:
            state.process(event, record.offset)
        except PoisonRecordError as exc:
            await self._dead_letter(state, record, "poison", str(exc))
            return
        self.records += 1
        _records.add(1, {"topic": record.topic})

    async def _dead_letter(
        self, state: PartitionState, record: ConsumerRecord[bytes, bytes], reason: str, error: str
    ) -> None:
        assert self._dead_letters is not None
        await self._dead_letters.send(record, reason, error)
        state.skip(record.offset)

    # -- checkpoints --------------------------------------------------------------------------

    async def _checkpoint_due(self) -> None:
        async with self._lock:
            now = time.monotonic()
            behind = self._behind
            interval = self.catch_up_interval if behind else self.checkpoint_interval
            limit = self.catch_up_pending if behind else self.max_pending
            for tp, state in list(self.states.items()):
                due = now - self._last_checkpoint.get(tp, 0.0) >= interval
                if state.pending and (due or state.pending >= limit):
                    await self._checkpoint(tp, state)

    async def _checkpoint(self, tp: TopicPartition, state: PartitionState) -> None:
        try:
            await self._save(tp, state)
        except LostOwnershipError as exc:
            # Someone else wrote this partition's progress: start again from theirs.
            log.warning("partition %s: %s; loading it again", tp, exc)
            state.close()
            self.states.pop(tp, None)
            consumer = self._consumer
            if consumer is not None and tp in consumer.assignment():
                await self._load(consumer, tp)

    async def _save(self, tp: TopicPartition, state: PartitionState) -> None:
        started = time.monotonic()
        offset = await state.checkpoint()
        self._last_checkpoint[tp] = time.monotonic()
        _checkpoints.record(self._last_checkpoint[tp] - started, {"topic": tp.topic})
        # Kafka's committed offset is informational (lag dashboards); the database decides.
        if self._consumer is not None and offset > 0:
            try:
                await self._consumer.commit({tp: OffsetAndMetadata(offset, "")})
            except (CommitFailedError, IllegalStateError) as exc:
                log.info("offset commit for %s skipped: %s", tp, exc)
