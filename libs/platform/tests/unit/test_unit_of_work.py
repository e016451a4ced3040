"""The unit of work against in-memory fakes of the store, the outbox and the request log."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar, cast

import pytest
from google.protobuf import wrappers_pb2
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from crm_platform.context import Actor, ActorType, CallContext
from crm_platform.errors import AlreadyExists, FailedPrecondition, StaleVersion
from crm_platform.events import Event
from crm_platform.idempotency import IdempotentRequest
from crm_platform.mongo import CONCURRENT_UPDATE
from crm_platform.unit_of_work import Retries, Transaction, UnitOfWork

T = TypeVar("T")
CALL = CallContext("acme", Actor(ActorType.AGENT, "alice"))
AT = datetime(2026, 1, 2, tzinfo=UTC)


def _event(value: str) -> Event:
    return Event.of(
        wrappers_pb2.StringValue(value=value), source="/test", subject="t/1", key="c1", call=CALL
    )


@dataclass(eq=False)
class _Session:
    """Stands for one attempt's database session; ``committed`` once the fake store commits."""

    number: int
    committed: bool = False


class FakeStore:
    """Runs work like ``with_transaction``: ``transient_failures`` times it discards the attempt
    and runs the work again (as after a write conflict), then commits."""

    def __init__(self, transient_failures: int = 0) -> None:
        self.transient_failures = transient_failures
        self.sessions: list[_Session] = []

    async def in_transaction(self, work: Callable[[AsyncClientSession], Awaitable[T]]) -> T:
        while True:
            session = _Session(len(self.sessions))
            self.sessions.append(session)
            result = await work(cast(AsyncClientSession, session))
            if self.transient_failures:
                self.transient_failures -= 1
                continue
            session.committed = True
            return result


@dataclass
class FakeOutbox:
    """Keeps what was added with its session; only committed sessions' events count."""

    added: list[tuple[list[Event], _Session, int]] = field(default_factory=list)
    wake_ups: int = 0

    async def add(
        self, events: Sequence[Event], session: AsyncClientSession, *, sequence: int = 0
    ) -> None:
        self.added.append((list(events), cast(_Session, session), sequence))

    def notify_committed(self) -> None:
        self.wake_ups += 1

    def committed(self) -> list[tuple[list[str], int]]:
        return [
            ([event.id for event in events], sequence)
            for events, session, sequence in self.added
            if session.committed
        ]


@dataclass
class FakeRequestLog:
    """Records in a dict, written only when the writing session commits."""

    records: dict[str, tuple[dict[str, object], _Session]] = field(default_factory=dict)

    async def earlier_result(
        self, request: IdempotentRequest | None, session: AsyncClientSession
    ) -> str | None:
        if request is None or request.record_id not in self.records:
            return None
        record, writer = self.records[request.record_id]
        return request.replayed_result(record) if writer.committed else None

    async def remember(
        self,
        request: IdempotentRequest | None,
        result_id: str,
        at: datetime,
        session: AsyncClientSession,
    ) -> None:
        if request is not None:
            self.records[request.record_id] = (
                request.record(result_id, at),
                cast(_Session, session),
            )


def _unit(
    store: FakeStore | None = None,
) -> tuple[UnitOfWork, FakeStore, FakeOutbox, FakeRequestLog]:
    store = store or FakeStore()
    outbox, requests = FakeOutbox(), FakeRequestLog()
    return UnitOfWork(store, outbox, requests), store, outbox, requests


def _duplicate() -> DuplicateKeyError:
    return DuplicateKeyError("E11000 duplicate key", 11000, {"keyValue": {"_id": "x"}})


async def test_events_are_written_in_the_use_cases_transaction_then_the_relay_is_woken() -> None:
    uow, store, outbox, _ = _unit()
    first, second = _event("a"), _event("b")

    async def use_case(tx: Transaction) -> str:
        tx.publish([first], sequence=3)
        tx.publish([second], sequence=4)
        assert outbox.added == []  # written at the end of the use case, before the commit
        return "done"

    assert await uow.run(use_case) == "done"
    assert outbox.committed() == [([first.id], 3), ([second.id], 4)]
    assert [session for _, session, _ in outbox.added] == store.sessions * 2
    assert outbox.wake_ups == 1


async def test_a_use_case_without_events_does_not_wake_the_relay() -> None:
    uow, _, outbox, _ = _unit()

    async def use_case(tx: Transaction) -> None:
        tx.publish([])

    await uow.run(use_case)
    assert outbox.added == []
    assert outbox.wake_ups == 0


async def test_after_commit_callbacks_run_after_the_commit_in_order() -> None:
    uow, store, _, _ = _unit()
    seen: list[tuple[str, bool]] = []

    async def use_case(tx: Transaction) -> None:
        tx.after_commit(lambda: seen.append(("timer", store.sessions[-1].committed)))
        tx.after_commit(lambda: seen.append(("second", store.sessions[-1].committed)))
        assert seen == []

    await uow.run(use_case)
    assert seen == [("timer", True), ("second", True)]


async def test_a_failing_use_case_publishes_nothing_and_notifies_nobody() -> None:
    uow, _, outbox, _ = _unit()
    woken: list[str] = []

    async def use_case(tx: Transaction) -> None:
        tx.publish([_event("a")])
        tx.after_commit(lambda: woken.append("timer"))
        raise StaleVersion("things/1", 1, 2)

    with pytest.raises(StaleVersion):
        await uow.run(use_case, retries=Retries(concurrent_updates=3))
    assert outbox.added == []
    assert outbox.wake_ups == 0
    assert woken == []


async def test_a_rerun_after_a_transient_error_starts_from_a_fresh_transaction() -> None:
    uow, store, outbox, _ = _unit(FakeStore(transient_failures=2))
    woken: list[int] = []
    published: list[str] = []

    async def use_case(tx: Transaction) -> int:
        run = len(store.sessions)
        assert tx.events == []  # nothing of the discarded attempts
        event = _event(str(run))
        published.append(event.id)
        tx.publish([event], sequence=run)
        tx.after_commit(lambda: woken.append(run))
        return run

    assert await uow.run(use_case) == 3
    assert outbox.committed() == [([published[-1]], 3)]
    assert woken == [3]
    assert outbox.wake_ups == 1


async def test_a_lost_concurrent_update_runs_the_use_case_again_up_to_the_limit() -> None:
    uow, store, outbox, _ = _unit()

    async def use_case(tx: Transaction) -> int:
        tx.publish([_event("x")])
        if len(store.sessions) < 3:
            raise FailedPrecondition(CONCURRENT_UPDATE, "things/1", "changed meanwhile")
        return len(store.sessions)

    assert await uow.run(use_case, retries=Retries(concurrent_updates=4)) == 3
    assert len(outbox.committed()) == 1


async def test_concurrent_update_reaches_the_caller_once_retries_are_spent() -> None:
    uow, store, _, _ = _unit()

    async def use_case(tx: Transaction) -> None:
        raise FailedPrecondition(CONCURRENT_UPDATE, "things/1", "changed meanwhile")

    with pytest.raises(FailedPrecondition) as caught:
        await uow.run(use_case, retries=Retries(concurrent_updates=4))
    assert caught.value.violation_type == CONCURRENT_UPDATE
    assert len(store.sessions) == 5  # the first run and four more

    store.sessions.clear()
    with pytest.raises(FailedPrecondition):
        await uow.run(use_case)  # no retries unless asked for
    assert len(store.sessions) == 1


async def test_other_failed_preconditions_are_not_retried() -> None:
    uow, store, _, _ = _unit()

    async def use_case(tx: Transaction) -> None:
        raise StaleVersion("things/1", 1, 2)

    with pytest.raises(StaleVersion):
        await uow.run(use_case, retries=Retries(concurrent_updates=4))
    assert len(store.sessions) == 1


async def test_a_duplicate_key_runs_the_use_case_again_when_asked() -> None:
    uow, store, _, _ = _unit()
    seen: list[DuplicateKeyError] = []

    async def observe(exc: DuplicateKeyError) -> None:
        seen.append(exc)

    async def use_case(tx: Transaction) -> int:
        if len(store.sessions) == 1:
            raise _duplicate()
        return len(store.sessions)

    assert await uow.run(use_case, retries=Retries(duplicate_keys=1), on_duplicate_key=observe) == 2
    assert len(seen) == 1


async def test_a_duplicate_key_reaches_the_caller_once_retries_are_spent() -> None:
    uow, store, _, _ = _unit()

    async def use_case(tx: Transaction) -> None:
        raise _duplicate()

    with pytest.raises(DuplicateKeyError):
        await uow.run(use_case, retries=Retries(duplicate_keys=1))
    assert len(store.sessions) == 2
    store.sessions.clear()
    with pytest.raises(DuplicateKeyError):
        await uow.run(use_case)
    assert len(store.sessions) == 1


async def test_the_duplicate_key_handler_turns_it_into_a_domain_error_without_a_rerun() -> None:
    uow, store, _, _ = _unit()

    async def taken(exc: DuplicateKeyError) -> None:
        raise AlreadyExists("identity", "email:a@example.com") from None

    async def use_case(tx: Transaction) -> None:
        raise _duplicate()

    with pytest.raises(AlreadyExists):
        await uow.run(use_case, retries=Retries(duplicate_keys=1), on_duplicate_key=taken)
    assert len(store.sessions) == 1


async def test_an_idempotent_request_run_twice_returns_the_first_result() -> None:
    uow, _, outbox, requests = _unit()
    request = IdempotentRequest("acme", "thing", "r-1", "f" * 64)
    created: list[str] = []

    async def create(tx: Transaction) -> str:
        if (earlier := await tx.earlier_result(request)) is not None:
            return earlier
        thing_id = f"thing-{len(created)}"
        created.append(thing_id)
        await tx.remember(request, thing_id, AT)
        tx.publish([_event(thing_id)])
        return thing_id

    assert await uow.run(create) == "thing-0"
    assert await uow.run(create) == "thing-0"
    assert created == ["thing-0"]
    assert len(outbox.committed()) == 1
    assert set(requests.records) == {"acme|thing|r-1"}


async def test_a_request_id_reused_for_another_request_is_refused() -> None:
    uow, _, _, _ = _unit()
    first = IdempotentRequest("acme", "thing", "r-1", "a" * 64)
    other = IdempotentRequest("acme", "thing", "r-1", "b" * 64)

    async def create(request: IdempotentRequest) -> None:
        async def use_case(tx: Transaction) -> None:
            if await tx.earlier_result(request) is None:
                await tx.remember(request, "thing-1", AT)

        await uow.run(use_case)

    await create(first)
    with pytest.raises(FailedPrecondition) as caught:
        await create(other)
    assert caught.value.violation_type == "REQUEST_ID_REUSED"


async def test_no_request_id_means_no_record() -> None:
    uow, _, _, requests = _unit()

    async def use_case(tx: Transaction) -> str | None:
        await tx.remember(None, "thing-1", AT)
        return await tx.earlier_result(None)

    assert await uow.run(use_case) is None
    assert requests.records == {}


async def test_a_failing_after_commit_callback_does_not_fail_the_committed_use_case() -> None:
    uow, _, outbox, _ = _unit()
    later: list[str] = []

    def broken() -> None:
        raise RuntimeError("timer worker gone")

    async def use_case(tx: Transaction) -> str:
        tx.publish([_event("a")])
        tx.after_commit(broken)
        tx.after_commit(lambda: later.append("ran"))
        return "committed"

    assert await uow.run(use_case) == "committed"
    assert later == ["ran"]
    assert outbox.wake_ups == 1
