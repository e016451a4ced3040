"""Durable timers: "at this time, do this", kept in the database, fired once.

A service schedules a :class:`Timer` in the transaction of the change that makes it necessary
(:meth:`TimerStore.schedule`), e.g. an SLA's at-risk and breach moments when a ticket is opened.
Scheduling a timer id again re-arms it (new due time and payload); :meth:`TimerStore.cancel`
disarms it. The :class:`TimerWorker` sleeps until the earliest pending timer is due, or until a
commit in its process schedules an earlier one (:meth:`TimerWorker.notify`), but no longer than
``max_idle_seconds`` (timers scheduled by other replicas), then fires the due timers.

Firing is exactly once: one database transaction reads the timer, marks it fired if it is still
pending and due, runs the service's fire handler (which may change domain state through the same
session) and adds the events the handler returns to the outbox. A crash before the commit leaves
the timer pending, so it fires after a restart; after the commit it never fires again. The read
and the mark see one snapshot: a re-arm or cancel committed in between makes the firing
transaction conflict and retry with what is stored now, so a stale arming never fires. Every
re-arm or cancel starts a new generation of the timer; failures are recorded against one.

Timers due together fire in batches, one transaction per batch (a transaction per timer would
cap a burst at the database's commit rate). When a fire handler raises, the batch's transaction
is aborted; that timer's error and attempt count are recorded and it is retried later with
exponential backoff, without end (an SLA event must not be lost; the ``crm.timers.failed``
counter and the log show it), while the rest of the batch fires again without it. A timer that
failed before fires in a transaction of its own. The database being unreachable is nobody's
fault: the worker waits and retries without counting attempts.

Only one replica's worker fires at a time (a :class:`~crm_platform.lease.Lease`); a standby takes
over when the lease expires, or at once when its holder stops. The lease saves work; exactly-once
does not depend on it.

Due times are on the service's :class:`~crm_platform.clock.Clock` (an accelerated clock in a
simulation): the worker compares them with that clock and sleeps the wall time it takes the
clock to reach them. The lease and the audit times of scheduling keep the wall clock.

Fired and cancelled timers stay in the collection, with ``fired_at`` or ``cancelled_at``, for
audit and measurement, and are deleted by a TTL index ``retention`` after they closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from opentelemetry import metrics, trace
from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConnectionFailure, PyMongoError

from crm_platform import errors
from crm_platform.clock import Clock, process_clock
from crm_platform.context import Actor, ActorType, CallContext, reset_call, set_call
from crm_platform.events import Event
from crm_platform.lease import Lease
from crm_platform.mongo import Document, MongoStore
from crm_platform.outbox import Outbox

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)
meter = metrics.get_meter(__name__)
_fired = meter.create_counter("crm.timers.fired", unit="{timer}")
_failed = meter.create_counter("crm.timers.failed", unit="{attempt}")
_lateness = meter.create_histogram(
    "crm.timers.lateness",
    unit="s",
    description="When a timer's firing committed, minus its due time",
    explicit_bucket_boundaries_advisory=[
        *(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0),
        *(2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
    ],
)

TIMER_ACTOR = Actor(ActorType.SYSTEM, "timers")
"""The actor of what fire handlers do, unless the worker is given another."""

_NEVER = datetime.min.replace(tzinfo=UTC)
_BATCHES_PER_READ = 5
_FAILURES_PER_BATCH = 3


def _utc_ms_ceiling(value: datetime) -> datetime:
    """``value`` in UTC, rounded up to whole milliseconds (what BSON dates hold)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"due_at must be timezone-aware, got {value!r}")
    value = value.astimezone(UTC)
    extra = value.microsecond % 1000
    return value if extra == 0 else value + timedelta(microseconds=1000 - extra)


class TimerState(StrEnum):
    """Where a timer is in its life; scheduling again makes any timer pending."""

    PENDING = "pending"
    FIRED = "fired"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class Timer:
    """A timer as the caller schedules it.

    ``timer_id`` is the caller's deterministic name, unique per tenant (e.g.
    ``ticket-123:resolution:breach``), so scheduling again re-arms the same timer. ``due_at``
    must be timezone-aware; it is kept in UTC rounded up to the millisecond (BSON's precision),
    so a timer never fires before the time it was given and reads back equal. ``payload`` is a
    small BSON-able mapping that the fire handler receives back.
    """

    timer_id: str
    tenant_id: str
    due_at: datetime
    kind: str
    payload: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "due_at", _utc_ms_ceiling(self.due_at))


@dataclass(frozen=True, slots=True)
class StoredTimer:
    """A timer as stored: its state, its arming (generation) and its firing attempts."""

    timer: Timer
    state: TimerState
    generation: int
    """How many times the timer was scheduled or cancelled: a firing matches one generation."""
    attempts: int
    """Failed firing attempts of this generation."""
    fire_at: datetime | None
    """When the next firing attempt is due (the due time, later after failures); pending only."""
    fired_at: datetime | None
    last_error: str | None
    record_id: Any = field(default=None, repr=False, compare=False)
    """The record's ``_id`` (the worker addresses the record it read)."""


@dataclass(frozen=True, slots=True)
class TimerEvents:
    """What a fire handler publishes: events for the outbox, with their ``sequence`` for their
    key as in :meth:`~crm_platform.outbox.Outbox.add` (the aggregate's version after the change
    when the handler changed one, so the events sort after the aggregate's earlier events)."""

    events: Sequence[Event] = ()
    sequence: int = 0


FireHandler = Callable[[Timer, AsyncClientSession], Awaitable[TimerEvents | Sequence[Event]]]
"""Runs inside the firing transaction for the timer's tenant (the call context is set, with the
worker's actor): may change domain state through the session, returns the events to publish (a
plain sequence is published with sequence 0). Raising (a :class:`~crm_platform.errors.DomainError`
such as ``Unavailable`` included) aborts the firing and retries this timer later; the database's
own connection failures and write conflicts retry the whole batch."""


def _aware(value: datetime) -> datetime:
    """Dates read through a client without ``tz_aware`` come back naive in UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _stored(doc: Document) -> StoredTimer:
    fire_at = doc.get("fire_at")
    fired_at = doc.get("fired_at")
    return StoredTimer(
        timer=Timer(
            timer_id=doc["timer_id"],
            tenant_id=doc["tenant_id"],
            due_at=_aware(doc["due_at"]),
            kind=doc["kind"],
            payload=doc.get("payload") or {},
        ),
        state=TimerState(doc["state"]),
        generation=doc["generation"],
        attempts=doc.get("attempts", 0),
        fire_at=_aware(fire_at) if fire_at is not None else None,
        fired_at=_aware(fired_at) if fired_at is not None else None,
        last_error=doc.get("last_error"),
        record_id=doc["_id"],
    )


class TimerStore:
    """The timers collection of one service.

    ``fire_at`` exists only on pending timers, so the index on it holds exactly the work to do.
    """

    def __init__(
        self,
        db: AsyncDatabase[Document],
        collection: str = "timers",
        *,
        retention: timedelta = timedelta(days=7),
    ) -> None:
        self.collection = db[collection]
        self.retention = retention

    async def ensure_indexes(self) -> None:
        """Create the collection's indexes (idempotent; call in the service's bootstrap)."""
        await self.collection.create_index(
            [("tenant_id", ASCENDING), ("timer_id", ASCENDING)], name="timer_id", unique=True
        )
        await self.collection.create_index("fire_at", name="pending_by_fire_at")
        await self.collection.create_index(
            "closed_at",
            name="closed_ttl",
            expireAfterSeconds=int(self.retention.total_seconds()),
        )

    async def schedule(self, timers: Sequence[Timer], session: AsyncClientSession | None) -> None:
        """Arm each timer, or re-arm it with its new due time, kind and payload, whatever its
        state (a fired or cancelled timer fires again). In the caller's transaction if
        ``session`` is in one; call :meth:`TimerWorker.notify` after the commit.

        Re-arming starts a new generation with no failed attempts: a firing of the previous one
        that has not committed yet cannot commit any more.
        """
        if not timers:
            return
        now = datetime.now(UTC)
        operations = []
        for timer in timers:
            operations.append(
                UpdateOne(
                    {"tenant_id": timer.tenant_id, "timer_id": timer.timer_id},
                    {
                        "$set": {
                            "kind": timer.kind,
                            "payload": dict(timer.payload),
                            "due_at": timer.due_at,
                            "fire_at": timer.due_at,
                            "state": TimerState.PENDING.value,
                            "attempts": 0,
                            "scheduled_at": now,
                        },
                        "$unset": {
                            "fired_at": "",
                            "cancelled_at": "",
                            "closed_at": "",
                            "last_error": "",
                        },
                        "$inc": {"generation": 1},
                    },
                    upsert=True,
                )
            )
        await self.collection.bulk_write(operations, ordered=True, session=session)

    async def cancel(
        self, tenant_id: str, timer_ids: Sequence[str], session: AsyncClientSession | None
    ) -> int:
        """Disarm the pending timers among ``timer_ids``; returns how many were pending.

        Fired timers keep their record; unknown ids are ignored.
        """
        if not timer_ids:
            return 0
        now = datetime.now(UTC)
        # Look the records up by the unique index first, then update them by _id: a filter
        # that also names `state` makes SecantusDB scan the collection (24 ms at 10k timers,
        # 268 ms at 200k; this way 0.8 ms at 200k).
        found = self.collection.find(
            {"tenant_id": tenant_id, "timer_id": {"$in": list(dict.fromkeys(timer_ids))}},
            {"_id": 1},
            session=session,
        )
        record_ids = [doc["_id"] async for doc in found]
        if not record_ids:
            return 0
        result = await self.collection.update_many(
            {"_id": {"$in": record_ids}, "state": TimerState.PENDING.value},
            {
                "$set": {
                    "state": TimerState.CANCELLED.value,
                    "cancelled_at": now,
                    "closed_at": now,
                },
                "$unset": {"fire_at": ""},
                "$inc": {"generation": 1},
            },
            session=session,
        )
        return result.modified_count

    async def get(self, tenant_id: str, timer_id: str) -> StoredTimer | None:
        """The timer's record, in whatever state (fired and cancelled ones until retention)."""
        doc = await self.collection.find_one({"tenant_id": tenant_id, "timer_id": timer_id})
        return _stored(doc) if doc is not None else None

    async def due(self, now: datetime, limit: int) -> list[StoredTimer]:
        """Pending timers whose (next) firing is due at ``now``, earliest first."""
        docs = (
            await self.collection.find({"fire_at": {"$lte": now}})
            .sort("fire_at", ASCENDING)
            .limit(limit)
            .to_list(limit)
        )
        return [_stored(doc) for doc in docs]

    async def next_due_at(self, before: datetime) -> datetime | None:
        """When the earliest pending timer is due, if that is before ``before``.

        Bounded because the worker never sleeps longer than its idle limit anyway, and because
        SecantusDB reads the whole index range of a sorted, limited query: with 100,000 pending
        timers an unbounded query took 0.1-0.5 s here, one bounded by a second about 10 ms.
        """
        doc = (
            await self.collection.find({"fire_at": {"$lt": before}}, {"fire_at": 1, "_id": 0})
            .sort("fire_at", ASCENDING)
            .limit(1)
            .to_list(1)
        )
        return _aware(doc[0]["fire_at"]) if doc else None

    async def count_pending(self) -> int:
        """How many timers are armed (a collection scan: for tests and tools)."""
        return await self.collection.count_documents({"state": TimerState.PENDING.value})

    async def mark_fired(
        self, candidates: Sequence[StoredTimer], now: datetime, session: AsyncClientSession
    ) -> list[StoredTimer]:
        """In the firing transaction: mark fired those of ``candidates`` that are still
        pending and due at ``now`` as read in this transaction, and return them as read (a
        timer re-armed since ``candidates`` were read fires with its new payload if it is due,
        not at all if not).

        The read and the update see one snapshot; a re-arm, cancel or firing of one of these
        timers committed meanwhile makes the update conflict and the transaction retry, so a
        stale arming never fires. (The count check aborts the transaction on a server that let
        such a change through anyway.) Due-ness is checked here rather than in the query: a
        filter on ``fire_at`` may lead the planner into the whole due range of that index.
        """
        if not candidates:
            return []
        ids = [stored.record_id for stored in candidates]
        docs = [
            doc
            for doc in await self.collection.find({"_id": {"$in": ids}}, session=session).to_list(
                None
            )
            if doc.get("fire_at") is not None and _aware(doc["fire_at"]) <= now
        ]
        if not docs:
            return []
        result = await self.collection.update_many(
            {"_id": {"$in": [doc["_id"] for doc in docs]}, "state": TimerState.PENDING.value},
            {
                "$set": {"state": TimerState.FIRED.value, "fired_at": now, "closed_at": now},
                "$unset": {"fire_at": ""},
            },
            session=session,
        )
        if result.modified_count != len(docs):
            raise RuntimeError(
                f"{len(docs) - result.modified_count} timers changed under the firing "
                "transaction; retrying"
            )
        fired = []
        for doc in docs:
            doc.update(state=TimerState.FIRED.value, fired_at=now)
            del doc["fire_at"]
            fired.append(_stored(doc))
        return fired

    async def record_failure(self, stored: StoredTimer, error: str, retry_at: datetime) -> bool:
        """Count a failed firing of this generation and move its next attempt to
        ``retry_at``; false if the timer was re-armed, cancelled or fired meanwhile."""
        result = await self.collection.update_one(
            {
                "_id": stored.record_id,
                "generation": stored.generation,
                "state": TimerState.PENDING.value,
            },
            {
                "$set": {"fire_at": retry_at, "last_error": error[:2000]},
                "$inc": {"attempts": 1},
            },
        )
        return result.modified_count == 1


class _HandlerFailedError(Exception):
    """A fire handler raised: the firing transaction is aborted and the timer retried later."""

    def __init__(self, stored: StoredTimer, error: BaseException) -> None:
        super().__init__(f"{type(error).__name__}: {error}")
        self.stored = stored
        self.error = error


class TimerWorker:
    """Fires due timers; runs as a background task of the service (``BackgroundWork``).

    The service's bootstrap calls :meth:`TimerStore.ensure_indexes` first. ``clock`` is the
    clock the service computes due times on (default: the process clock).
    """

    def __init__(
        self,
        store: MongoStore,
        timers: TimerStore,
        outbox: Outbox,
        fire: FireHandler,
        *,
        lease_name: str,
        lease_ttl_seconds: float = 10.0,
        max_idle_seconds: float = 1.0,
        batch_size: int = 200,
        retry_initial_seconds: float = 1.0,
        retry_max_seconds: float = 60.0,
        actor: Actor = TIMER_ACTOR,
        clock: Clock | None = None,
    ) -> None:
        if max_idle_seconds > lease_ttl_seconds / 2:
            raise ValueError("max_idle_seconds must be at most half of lease_ttl_seconds")
        self.store = store
        self.timers = timers
        self.outbox = outbox
        self.fire = fire
        self.lease = Lease(store.db, lease_name, lease_ttl_seconds)
        self.max_idle = timedelta(seconds=max_idle_seconds)
        self.batch_size = batch_size
        self.retry_initial = retry_initial_seconds
        self.retry_max = retry_max_seconds
        self.actor = actor
        self.clock = clock if clock is not None else process_clock()
        self._wake = asyncio.Event()
        self._wake_at: datetime | None = None  # None while busy: any notify counts
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def notify(self, due_at: datetime) -> None:
        """Wake the worker now if ``due_at`` is before the time it sleeps until (call after
        a commit that scheduled a timer; a standby without the lease is not woken)."""
        if self._wake_at is None or due_at < self._wake_at:
            self._wake.set()

    def start(self) -> None:
        """Start firing in the background (again, after :meth:`stop`)."""
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name=f"timers-{self.lease.name}")

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop after the batch in hand (cancel it after ``timeout``: its timers stay pending)
        and give up the lease; re-raise why the task ended if it failed."""
        self._stopping.set()
        self._wake.set()
        task, self._task = self._task, None
        try:
            if task is not None and task is not asyncio.current_task():
                try:
                    await asyncio.wait_for(asyncio.shield(task), timeout)
                except TimeoutError:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        finally:
            with contextlib.suppress(PyMongoError):
                await self.lease.release()

    async def _run(self) -> None:
        backoff = 0.2
        while not self._stopping.is_set():
            self._wake.clear()
            self._wake_at = None
            try:
                if not await self.lease.acquire():
                    self._wake_at = _NEVER  # a standby only polls for the lease
                    delay = self.max_idle.total_seconds()
                elif await self.fire_due():
                    delay = 0.0  # there may be more due: look again at once
                else:
                    delay = await self._until_next_due()
                backoff = 0.2
            except (PyMongoError, errors.Unavailable) as exc:
                log.warning("timer worker: database error, retrying: %s", exc)
                delay, backoff = backoff, min(backoff * 2, 5.0)
            except Exception:  # a bug or a malformed record: keep the worker alive
                log.exception("timer worker failed, retrying")
                delay, backoff = backoff, min(backoff * 2, 5.0)
            if delay > 0 and not self._stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)

    async def _until_next_due(self) -> float:
        """Wall seconds to sleep: until the next timer is due, at most the idle limit."""
        horizon = self.clock.after_wall_seconds(self.max_idle.total_seconds())
        next_due = await self.timers.next_due_at(horizon)
        self._wake_at = next_due or horizon
        # +1 ms: the loop may wake a little early, and a timer is not due before its time.
        return self.clock.wall_seconds_until(self._wake_at) + 0.001

    async def fire_due(self) -> int:
        """Fire the timers due now, a few batches at most; returns how many were due.

        The database's cost of finding due timers grows with how many are due, so after a
        burst a few batches are read at once (their records are read again when they fire).
        """
        due = await self.timers.due(self.clock.now(), self.batch_size * _BATCHES_PER_READ)
        for start in range(0, len(due), self.batch_size):
            if start and (self._stopping.is_set() or not await self.lease.acquire()):
                break
            await self._fire_batch(due[start : start + self.batch_size])
        return len(due)

    async def _fire_batch(self, due: Sequence[StoredTimer]) -> None:
        """Timers that have not failed fire together in one transaction. When a handler fails
        there, its failure is recorded and the others try again without it; after a few such
        failures (a bad deploy?) the rest fire one per transaction, as timers that failed
        before always do, so that one failing timer cannot hold back the others."""
        together = [stored for stored in due if stored.attempts == 0]
        alone = [stored for stored in due if stored.attempts > 0]
        failures = 0
        while together:
            if failures == _FAILURES_PER_BATCH:
                alone = together + alone
                break
            try:
                await self._fire(together)
            except _HandlerFailedError as failure:
                failures += 1
                await self._record_failure(failure)
                failed = failure.stored.record_id
                together = [stored for stored in together if stored.record_id != failed]
            else:
                break
        for stored in alone:
            try:
                await self._fire([stored])
            except _HandlerFailedError as failure:
                await self._record_failure(failure)

    async def _fire(self, candidates: Sequence[StoredTimer]) -> None:
        """One firing transaction: mark fired, run the handlers, add their events."""

        async def work(session: AsyncClientSession) -> list[StoredTimer]:
            fired = await self.timers.mark_fired(candidates, self.clock.now(), session)
            by_sequence: dict[int, list[Event]] = {}
            for stored in fired:
                result = await self._handle(stored, session)
                by_sequence.setdefault(result.sequence, []).extend(result.events)
            for sequence, events in by_sequence.items():
                await self.outbox.add(events, session, sequence=sequence)
            return fired

        with tracer.start_as_current_span(
            "timers fire", attributes={"crm.timers.candidates": len(candidates)}
        ):
            fired = await self.store.in_transaction(work)
        if not fired:
            return
        self.outbox.notify_committed()
        committed = self.clock.wall()
        for stored in fired:
            attributes = {"kind": stored.timer.kind}
            # In wall seconds: how long after the clock reached the due time it fired.
            lateness = committed - self.clock.wall_time_of(stored.timer.due_at)
            _lateness.record(lateness, attributes)
            _fired.add(1, attributes)

    async def _handle(self, stored: StoredTimer, session: AsyncClientSession) -> TimerEvents:
        """Run the fire handler for the timer's tenant; its failures become
        :class:`_HandlerFailedError`, except the database's transient ones (retried)."""
        token = set_call(CallContext(stored.timer.tenant_id, self.actor))
        try:
            result = await self.fire(stored.timer, session)
        except ConnectionFailure:
            raise  # the database is down: not this timer's fault
        except PyMongoError as exc:
            if exc.has_error_label("TransientTransactionError"):
                raise  # a write conflict: the transaction is retried as a whole
            raise _HandlerFailedError(stored, exc) from exc
        except Exception as exc:
            raise _HandlerFailedError(stored, exc) from exc
        finally:
            reset_call(token)
        return result if isinstance(result, TimerEvents) else TimerEvents(tuple(result))

    async def _record_failure(self, failure: _HandlerFailedError) -> None:
        stored = failure.stored
        attempt = stored.attempts + 1
        delay = min(self.retry_max, self.retry_initial * 2 ** (attempt - 1))
        retry_at = self.clock.after_wall_seconds(delay)
        recorded = await self.timers.record_failure(stored, str(failure), retry_at)
        _failed.add(1, {"kind": stored.timer.kind})
        message = "timer %s/%s (%s) failed (attempt %d), retrying in %.1fs: %s"
        args = (
            stored.timer.tenant_id,
            stored.timer.timer_id,
            stored.timer.kind,
            attempt,
            delay,
            failure,
        )
        if not recorded:
            log.info("timer %s/%s failed but changed meanwhile", *args[:2])
        elif isinstance(failure.error, errors.DomainError):
            log.warning(message, *args)
        else:
            log.error(message, *args, exc_info=failure.error)
