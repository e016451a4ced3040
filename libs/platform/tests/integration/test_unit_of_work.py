"""The unit of work against the real database: rollback, rerun on a lost race, idempotent replay."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from google.protobuf import wrappers_pb2

from crm_platform.context import Actor, ActorType, CallContext
from crm_platform.errors import FailedPrecondition
from crm_platform.events import Event
from crm_platform.idempotency import IdempotentRequest, RequestLog
from crm_platform.mongo import MongoStore, replace_version
from crm_platform.outbox import Outbox
from crm_platform.unit_of_work import Retries, Transaction, UnitOfWork

CALL = CallContext("acme", Actor(ActorType.AGENT, "alice"))
AT = datetime(2026, 1, 2, tzinfo=UTC)


def _event(value: int) -> Event:
    return Event.of(
        wrappers_pb2.Int64Value(value=value), source="/test", subject="things/1", key="1", call=CALL
    )


def _unit(store: MongoStore) -> tuple[UnitOfWork, Outbox]:
    outbox = Outbox(store.db, "test.things.v1")
    return UnitOfWork.of(store, outbox), outbox


async def test_a_failing_use_case_leaves_neither_state_nor_events(store: MongoStore) -> None:
    uow, outbox = _unit(store)
    woken: list[str] = []

    async def use_case(tx: Transaction) -> None:
        await store.db["things"].insert_one({"_id": "1", "version": 1}, session=tx.session)
        tx.publish([_event(1)], sequence=1)
        tx.after_commit(lambda: woken.append("timer"))
        raise FailedPrecondition("NOT_ALLOWED", "things/1", "refused after writing")

    with pytest.raises(FailedPrecondition):
        await uow.run(use_case)
    assert await store.db["things"].count_documents({}) == 0
    assert await outbox.count_pending() == 0
    assert woken == []


async def test_state_and_events_commit_together(store: MongoStore) -> None:
    uow, outbox = _unit(store)
    woken: list[str] = []

    async def use_case(tx: Transaction) -> None:
        await store.db["things"].insert_one({"_id": "1", "version": 1}, session=tx.session)
        tx.publish([_event(1)], sequence=1)
        tx.after_commit(lambda: woken.append("timer"))

    await uow.run(use_case)
    assert await store.db["things"].count_documents({}) == 1
    [pending] = await outbox.pending(10)
    assert pending["seq"] == 1
    assert woken == ["timer"]


async def test_a_use_case_that_lost_a_race_runs_again_on_the_winners_state(
    store: MongoStore,
) -> None:
    """Another writer commits between the use case's read and its conditional replace: the
    database refuses the replace (a write conflict, or CONCURRENT_UPDATE), and the rerun reads
    the winner's version and applies the change on top of it."""
    uow, outbox = _unit(store)
    things = store.db["things"]
    await things.insert_one({"_id": "1", "tenant_id": "acme", "version": 1, "count": 0})
    runs = 0

    async def increment(tx: Transaction) -> int:
        nonlocal runs
        runs += 1
        doc = await things.find_one({"_id": "1"}, session=tx.session)
        assert doc is not None
        if runs == 1:  # the concurrent writer wins, outside this transaction
            await things.update_one({"_id": "1"}, {"$inc": {"count": 1, "version": 1}})
        new = doc | {"count": doc["count"] + 1, "version": doc["version"] + 1}
        await replace_version(things, "things", doc["version"], new, tx.session)
        tx.publish([_event(new["count"])], sequence=new["version"])
        return int(new["count"])

    assert await uow.run(increment, retries=Retries(concurrent_updates=4)) == 2
    assert runs == 2
    assert await things.find_one({"_id": "1"}) == {
        "_id": "1",
        "tenant_id": "acme",
        "version": 3,
        "count": 2,
    }
    [pending] = await outbox.pending(10)  # only the committed run's event
    assert pending["seq"] == 3


async def _create_thing(uow: UnitOfWork, store: MongoStore, request: IdempotentRequest) -> str:
    async def create(tx: Transaction) -> str:
        if (earlier := await tx.earlier_result(request)) is not None:
            return earlier
        count = await store.db["things"].count_documents({}, session=tx.session)
        thing_id = f"thing-{count + 1}-{request.fingerprint}"
        await store.db["things"].insert_one({"_id": thing_id}, session=tx.session)
        await tx.remember(request, thing_id, AT)
        tx.publish([_event(count + 1)])
        return thing_id

    return await uow.run(create, retries=Retries(duplicate_keys=1))


async def test_a_retried_create_returns_the_first_result_and_creates_once(
    store: MongoStore,
) -> None:
    uow, outbox = _unit(store)
    request = IdempotentRequest("acme", "thing", "r-1", "f1")
    first = await _create_thing(uow, store, request)
    assert await _create_thing(uow, store, request) == first
    assert await store.db["things"].count_documents({}) == 1
    assert await outbox.count_pending() == 1
    record = await store.db["idempotency"].find_one({"_id": "acme|thing|r-1"})
    assert record is not None
    assert record["fingerprint"] == "f1"
    assert record["result_id"] == first
    assert record["tenant_id"] == "acme"
    assert record["created_at"] == AT


async def test_concurrent_runs_of_one_request_create_once(store: MongoStore) -> None:
    uow, outbox = _unit(store)
    request = IdempotentRequest("acme", "thing", "r-1", "f1")
    results = await asyncio.gather(*(_create_thing(uow, store, request) for _ in range(4)))
    assert len(set(results)) == 1
    assert await store.db["things"].count_documents({}) == 1
    assert await outbox.count_pending() == 1


async def test_a_request_id_reused_for_another_request_is_refused(store: MongoStore) -> None:
    uow, _ = _unit(store)
    await _create_thing(uow, store, IdempotentRequest("acme", "thing", "r-1", "f1"))
    with pytest.raises(FailedPrecondition) as caught:
        await _create_thing(uow, store, IdempotentRequest("acme", "thing", "r-1", "f2"))
    assert caught.value.violation_type == "REQUEST_ID_REUSED"
    # Another tenant, or another kind of resource, may use the same request id.
    await _create_thing(uow, store, IdempotentRequest("other", "thing", "r-1", "f2"))
    await _create_thing(uow, store, IdempotentRequest("acme", "widget", "r-1", "f2"))


async def test_records_expire_after_a_week(store: MongoStore) -> None:
    log = RequestLog(store.db)
    await log.ensure_indexes()
    indexes = await store.db["idempotency"].index_information()
    assert indexes["created_at_1"]["expireAfterSeconds"] == 7 * 24 * 3600
