"""The unit of work: one use case's writes, events and notifications, committed together.

A use case is an async function of a :class:`Transaction`. It reads and writes through
``tx.session``, queues the events that describe its change (:meth:`Transaction.publish`), and
registers what may only happen once the change is durable (:meth:`Transaction.after_commit`,
e.g. waking a timer worker). :meth:`UnitOfWork.run` runs it in one database transaction, writes
the queued events to the outbox in that same transaction, commits, then wakes the outbox relay
and runs the after-commit callbacks. A failed attempt leaves nothing behind: its writes are
rolled back, and its events and callbacks are dropped with the :class:`Transaction` object.

Retries, from the inside out:

* transient transaction errors (a write conflict, an unknown commit result) are retried by the
  driver's ``with_transaction`` (:meth:`crm_platform.mongo.MongoStore.in_transaction`), which
  runs the use case again on a fresh :class:`Transaction`;
* a lost optimistic-concurrency race (FAILED_PRECONDITION ``CONCURRENT_UPDATE``, see
  :func:`crm_platform.mongo.replace_version`) runs it again up to
  ``Retries.concurrent_updates`` times, then reaches the caller;
* a duplicate key (a unique index, or a concurrent run of the same idempotent request) is first
  shown to ``on_duplicate_key``, which may turn it into a domain error (``AlreadyExists``); if
  it does not, the use case runs again up to ``Retries.duplicate_keys`` times (the rerun sees
  the winner's writes), then the ``DuplicateKeyError`` reaches the caller.

A service builds one :class:`UnitOfWork` at start-up and its use cases call it::

    uow = UnitOfWork.of(mongo, outbox)

    async def update_contact(command: UpdateContact) -> Contact:
        async def change(tx: Transaction) -> Contact:
            current = await contacts.get(command.tenant_id, command.contact_id, tx.session)
            update = current.apply_update(command.changes, command.paths, command.now)
            if not update.changed_paths:
                return current
            await contacts.replace(current.version, update.contact, tx.session)
            tx.publish([contact_updated(update)], sequence=update.contact.version)
            return update.contact

        return await uow.run(change)

Idempotent creates use :meth:`Transaction.earlier_result` and :meth:`Transaction.remember`
(see :mod:`crm_platform.idempotency`) and run with ``Retries(duplicate_keys=1)``.

Nothing here imports gRPC: domain errors raised by the use case reach the caller unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, TypeVar

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from crm_platform.errors import FailedPrecondition
from crm_platform.events import Event
from crm_platform.idempotency import IdempotentRequest, RequestLog
from crm_platform.mongo import CONCURRENT_UPDATE, MongoStore
from crm_platform.outbox import Outbox

log = logging.getLogger(__name__)

T = TypeVar("T")


class TransactionRunner(Protocol):
    """Runs work in one database transaction (:class:`crm_platform.mongo.MongoStore`)."""

    async def in_transaction(self, work: Callable[[AsyncClientSession], Awaitable[T]]) -> T:
        """Run ``work`` in a transaction, retried on transient errors; its result."""
        ...


class EventOutbox(Protocol):
    """Where committed events wait to be published (:class:`crm_platform.outbox.Outbox`)."""

    async def add(
        self, events: Sequence[Event], session: AsyncClientSession, *, sequence: int = 0
    ) -> None:
        """Store events in the caller's transaction."""
        ...

    def notify_committed(self) -> None:
        """Wake the relay after a commit."""
        ...


class RequestRecords(Protocol):
    """What idempotent requests created (:class:`crm_platform.idempotency.RequestLog`)."""

    async def earlier_result(
        self, request: IdempotentRequest | None, session: AsyncClientSession
    ) -> str | None:
        """The id an earlier run of the request created, if any."""
        ...

    async def remember(
        self,
        request: IdempotentRequest | None,
        result_id: str,
        at: datetime,
        session: AsyncClientSession,
    ) -> None:
        """Record what the request created."""
        ...


@dataclass(frozen=True, slots=True)
class Retries:
    """How many more times a use case runs after a failure the next run may not repeat (beyond
    the driver's retries of transient transaction errors, which always apply)."""

    concurrent_updates: int = 0
    """After FAILED_PRECONDITION ``CONCURRENT_UPDATE`` (another writer changed what was read)."""
    duplicate_keys: int = 0
    """After a ``DuplicateKeyError`` (a concurrent insert of the same key won)."""


NO_RETRIES = Retries()

DuplicateKeyHandler = Callable[[DuplicateKeyError], Awaitable[None]]
"""Sees a duplicate key before any retry; raises the domain error it stands for, if any."""


@dataclass(slots=True)
class Transaction:
    """One attempt of a use case: its database session, and what to do when it commits."""

    session: AsyncClientSession
    _requests: RequestRecords
    _events: list[tuple[list[Event], int]] = field(default_factory=list)
    _after_commit: list[Callable[[], None]] = field(default_factory=list)

    def publish(self, events: Sequence[Event], *, sequence: int = 0) -> None:
        """Queue events for the outbox, written in this transaction before it commits.

        ``sequence`` orders one key's events (the aggregate's version after the change, see
        :meth:`crm_platform.outbox.Outbox.add`); groups are written in the order published.
        """
        if events:
            self._events.append((list(events), sequence))

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once this transaction has committed (never if it does not)."""
        self._after_commit.append(callback)

    @property
    def events(self) -> list[Event]:
        """The events published so far, in order."""
        return [event for group, _ in self._events for event in group]

    async def earlier_result(self, request: IdempotentRequest | None) -> str | None:
        """The id an earlier run of this idempotent request created, or ``None`` (always for
        ``None``); FAILED_PRECONDITION ``REQUEST_ID_REUSED`` if its id named another request."""
        return await self._requests.earlier_result(request, self.session)

    async def remember(
        self, request: IdempotentRequest | None, result_id: str, at: datetime
    ) -> None:
        """Record in this transaction that ``request`` created ``result_id`` (a no-op for
        ``None``)."""
        await self._requests.remember(request, result_id, at, self.session)

    async def _write_events(self, outbox: EventOutbox) -> None:
        for events, sequence in self._events:
            await outbox.add(events, self.session, sequence=sequence)

    def _committed(self, outbox: EventOutbox) -> None:
        if self._events:
            outbox.notify_committed()
        for callback in self._after_commit:
            try:
                callback()
            except Exception:  # the change is durable: a failed wake-up must not undo the answer
                log.exception("after-commit callback failed")


UseCase = Callable[[Transaction], Awaitable[T]]


class UnitOfWork:
    """Runs use cases in transactions of ``store``, their events going to ``outbox``."""

    def __init__(
        self, store: TransactionRunner, outbox: EventOutbox, requests: RequestRecords
    ) -> None:
        self.store = store
        self.outbox = outbox
        self.requests = requests

    @classmethod
    def of(cls, mongo: MongoStore, outbox: Outbox) -> UnitOfWork:
        """The unit of work of a service's database and outbox, idempotent requests recorded in
        its ``idempotency`` collection."""
        return cls(mongo, outbox, RequestLog(mongo.db))

    async def run(
        self,
        use_case: UseCase[T],
        *,
        retries: Retries = NO_RETRIES,
        on_duplicate_key: DuplicateKeyHandler | None = None,
    ) -> T:
        """Run ``use_case`` in one transaction with its events; after the commit, wake the relay
        and run its after-commit callbacks; return its result (see the module for retries)."""
        conflicts = duplicates = 0
        while True:
            try:
                result, tx = await self._attempt(use_case)
            except FailedPrecondition as exc:
                if (
                    exc.violation_type != CONCURRENT_UPDATE
                    or conflicts >= retries.concurrent_updates
                ):
                    raise
                conflicts += 1
                continue
            except DuplicateKeyError as exc:
                if on_duplicate_key is not None:
                    await on_duplicate_key(exc)
                if duplicates >= retries.duplicate_keys:
                    raise
                duplicates += 1
                continue
            tx._committed(self.outbox)
            return result

    async def _attempt(self, use_case: UseCase[T]) -> tuple[T, Transaction]:
        last: list[Transaction] = []

        async def work(session: AsyncClientSession) -> T:
            # A fresh Transaction per run: a rerun after a transient error starts clean.
            tx = Transaction(session, self.requests)
            result = await use_case(tx)
            await tx._write_events(self.outbox)
            last[:] = [tx]
            return result

        result = await self.store.in_transaction(work)
        return result, last[0]
