"""Business-clock KPIs survive every restore point between a calendar and the tickets using it.

Calendar events are keyed by calendar id and tickets by customer, so a calendar version and the
tickets that wait for it live on different partitions, checkpointed in different transactions
and possibly owned by different processes. These tests drive real ``MetricsPartition`` states
on the real database through chosen schedules — read so many records of a partition, checkpoint
it, crash (drop every in-memory state), move a partition to another process, poll the stored
calendars — and then compare the cells with those of one engine that saw every event once.
Nothing depends on timing: the schedule is the whole story.

Partition 0 holds the calendar events, partition 1 everything else.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest
from aiokafka import TopicPartition

from crm.servicedesk.v1 import events_pb2
from crm_calendar import BusinessCalendar, OpeningInterval
from crm_devstack.pytest_plugin import Infra
from crm_metrics.calendars import CalendarHub
from crm_metrics.checkpoint import MetricsPartition, poll_calendars
from crm_metrics.domain.catalog import Definitions
from crm_metrics.domain.clocks import Settings
from crm_metrics.domain.cube import aggregate_class
from crm_metrics.engine import PartitionEngine
from crm_platform.context import Actor, ActorType, CallContext
from crm_platform.events import Event
from crm_platform.mongo import MongoStore
from crm_testing.histories import (
    business_calendar,
    calendar_to_proto,
    generate,
    round_the_clock_calendar,
)
from crm_testing.metrics import scratch_database

TOPIC = "crm.servicedesk.v1"
CALENDARS, TICKETS = 0, 1
BUSINESS = ("frt_business", "nrt_business", "resolution_business", "company_frt")


@pytest.fixture
async def store(infra: Infra) -> AsyncIterator[MongoStore]:
    async with scratch_database(infra, "calendars") as mongo:
        yield mongo


def _calendar_event(calendar: BusinessCalendar, tenant: str, at: datetime) -> Event:
    call = CallContext(tenant, Actor(ActorType.AGENT, "admin"))
    payload = events_pb2.CalendarChanged(calendar=calendar_to_proto(calendar))
    return Event.of(
        payload,
        source="crm.servicedesk",
        subject=f"calendars/{calendar.calendar_id}",
        key=calendar.calendar_id,
        call=call,
        time=at,
    )


@dataclass
class Log:
    """The topic: the records of each partition, and the engine that saw them all once."""

    records: dict[int, list[Event]]
    settings: Settings
    expected: dict[Any, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, events: list[Event], settings: Settings) -> Log:
        records: dict[int, list[Event]] = {CALENDARS: [], TICKETS: []}
        calendar_type = events_pb2.CalendarChanged.DESCRIPTOR.full_name
        for event in events:
            records[CALENDARS if event.type == calendar_type else TICKETS].append(event)
        reference = PartitionEngine(TOPIC, 0, settings, CalendarHub())
        for offset, event in enumerate(events):
            reference.process(event, event.decode(), offset)
        reference.flush()
        expected = {key: aggregate.to_doc() for key, aggregate in reference.cube.items()}
        return cls(records, settings, expected)


class Instance:
    """One metrics process: its calendar hub and the partitions it owns."""

    def __init__(self, store: MongoStore, log: Log, namespace: str = "live") -> None:
        self.store = store
        self.log = log
        self.namespace = namespace
        self.hub = CalendarHub()
        self.parts: dict[int, MetricsPartition] = {}

    async def own(self, *partitions: int) -> None:
        for p in partitions:
            tp = TopicPartition(TOPIC, p)
            part = MetricsPartition(self.store, self.namespace, tp, self.log.settings, self.hub)
            await part.load()
            self.parts[p] = part

    def read(self, p: int, count: int | None = None) -> None:
        """Apply the next ``count`` records of partition ``p`` (all the rest by default)."""
        part = self.parts[p]
        records = self.log.records[p]
        start = part.engine.next_offset
        end = len(records) if count is None else min(len(records), start + count)
        for offset in range(start, end):
            part.process(records[offset], offset)

    async def checkpoint(self, *partitions: int) -> None:
        for p in partitions or tuple(self.parts):
            await self.parts[p].checkpoint()

    async def revoke(self, p: int) -> None:
        """Hand the partition over, as a rebalance does: checkpoint it, then drop it."""
        await self.parts[p].checkpoint()
        self.parts.pop(p).close()

    async def poll(self) -> None:
        """Look for calendar versions other processes stored (what the service does while
        tickets wait)."""
        await poll_calendars(self.store, self.hub)

    def crash(self) -> None:
        """SIGKILL: everything in memory is gone, nothing more is written."""
        for part in self.parts.values():
            part.close()
        self.parts.clear()

    async def finish(self) -> None:
        """Read every partition to its end and checkpoint until nothing is pending."""
        for p in self.parts:
            self.read(p)
        await self.checkpoint()
        await self.poll()
        await self.checkpoint()

    def cells(self) -> dict[Any, Any]:
        cells: dict[Any, Any] = {}
        for part in self.parts.values():
            for key, aggregate in part.engine.cube.items():
                assert key not in cells, f"{key} in two partitions"
                cells[key] = aggregate.to_doc()
        return cells


def _same(actual: Any, expected: Any) -> bool:
    if isinstance(expected, float) or isinstance(actual, float):
        return math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-6)
    if isinstance(expected, dict) and isinstance(actual, dict):
        return actual.keys() == expected.keys() and all(
            _same(actual[k], expected[k]) for k in expected
        )
    if isinstance(expected, list) and isinstance(actual, list):
        return len(actual) == len(expected) and all(map(_same, actual, expected))
    return bool(actual == expected)


def _count(cells: dict[Any, Any], kpi: str) -> int:
    """A KPI's count over the whole population (the per-hour cells)."""
    cls = aggregate_class(kpi)
    return sum(
        cls.from_doc(doc).count  # type: ignore[attr-defined]
        for (_t, k, _h, cell), doc in cells.items()
        if k == kpi and not cell
    )


def differences(actual: dict[Any, Any], expected: dict[Any, Any]) -> list[str]:
    """The business-clock counts first (the loss or double count, in words), then any cell."""
    problems = [
        f"{kpi}: count {_count(actual, kpi)} != {_count(expected, kpi)}"
        for kpi in BUSINESS
        if _count(actual, kpi) != _count(expected, kpi)
    ]
    keys = expected.keys() | actual.keys()
    wrong = [k for k in keys if not _same(actual.get(k), expected.get(k))]
    if wrong:
        problems.append(f"{len(wrong)} cells differ, e.g. {sorted(wrong, key=str)[:3]}")
    return problems


async def check(store: MongoStore, log: Log, *running: Instance) -> None:
    """The running processes' cells, and those of a process restoring everything from the
    database, equal the reference engine's."""
    for instance in running:
        await instance.finish()
    for instance in running:  # one more round: a calendar one stored may wake another's tickets
        await instance.poll()
        await instance.checkpoint()
    live: dict[Any, Any] = {}
    for instance in running:
        live.update(instance.cells())
    assert _count(log.expected, "frt_business") > 20, "the history must use business clocks"
    problems = differences(live, log.expected)
    assert not problems, "\n".join(problems)
    restored = Instance(store, log, running[0].namespace)
    await restored.own(CALENDARS, TICKETS)
    problems = differences(restored.cells(), log.expected)
    assert not problems, "restored: " + "\n".join(problems)


def _history(calendars: list[BusinessCalendar] | None = None) -> tuple[list[Event], Settings]:
    history = generate(20261207, 80, days=6, calendars=calendars)
    return history.events, Settings(own_brands=frozenset(history.own_brands))


@pytest.fixture(scope="module")
def plain() -> tuple[list[Event], Settings]:
    return _history()


@pytest.fixture(scope="module")
def versioned() -> tuple[list[Event], Settings]:
    """Tickets on version 2 of the business calendar; version 1 is published before it."""
    first = business_calendar()
    second = BusinessCalendar.create(
        calendar_id=first.calendar_id,
        version=2,
        timezone=first.timezone,
        intervals=[OpeningInterval(day, 8 * 60, 18 * 60) for day in range(5)],
        holidays=sorted(first.holidays),
        holiday_country=first.holiday_country,
        holiday_subdivision=first.holiday_subdivision,
    )
    events, settings = _history([second, round_the_clock_calendar()])
    old = _calendar_event(first, events[0].tenant_id, events[0].time.replace(year=2026, month=1))
    return [old, *events], settings


@pytest.mark.parametrize("restore_order", [(CALENDARS, TICKETS), (TICKETS, CALENDARS)])
async def test_tickets_checkpointed_waiting_for_a_calendar_stored_before_a_crash(
    store: MongoStore, plain: tuple[list[Event], Settings], restore_order: tuple[int, int]
) -> None:
    log = Log.of(*plain)
    first = Instance(store, log)
    await first.own(CALENDARS, TICKETS)
    first.read(TICKETS)
    await first.checkpoint(TICKETS)  # derived without the calendar: waiting
    first.read(CALENDARS)
    await first.checkpoint(CALENDARS)  # the calendar is stored; the tickets' re-derivation not
    first.crash()
    again = Instance(store, log)
    await again.own(*restore_order)
    await check(store, log, again)


async def test_tickets_checkpointed_on_a_calendar_whose_own_checkpoint_was_lost(
    store: MongoStore, plain: tuple[list[Event], Settings]
) -> None:
    log = Log.of(*plain)
    first = Instance(store, log)
    await first.own(CALENDARS, TICKETS)
    first.read(TICKETS)
    await first.checkpoint(TICKETS)
    first.read(CALENDARS)  # the calendar becomes known: the waiting tickets are re-derived...
    await first.checkpoint(TICKETS)  # ...and checkpointed, but the calendar's partition is not
    first.crash()
    again = Instance(store, log)
    await again.own(CALENDARS, TICKETS)  # the calendar event is read again
    await check(store, log, again)


async def test_the_calendar_seen_half_way_through_the_tickets(
    store: MongoStore, plain: tuple[list[Event], Settings]
) -> None:
    log = Log.of(*plain)
    first = Instance(store, log)
    await first.own(CALENDARS, TICKETS)
    half = len(log.records[TICKETS]) // 2
    first.read(TICKETS, half)
    await first.checkpoint(TICKETS)
    first.read(CALENDARS)
    first.read(TICKETS, 10)
    await first.checkpoint(CALENDARS)
    first.crash()
    again = Instance(store, log)
    await again.own(TICKETS)
    again.read(TICKETS, half // 2)
    await again.checkpoint(TICKETS)
    again.crash()
    third = Instance(store, log)
    await third.own(CALENDARS, TICKETS)
    await check(store, log, third)


@pytest.mark.parametrize("restore_order", [(CALENDARS, TICKETS), (TICKETS, CALENDARS)])
async def test_tickets_waiting_for_a_new_calendar_version_across_a_crash(
    store: MongoStore, versioned: tuple[list[Event], Settings], restore_order: tuple[int, int]
) -> None:
    log = Log.of(*versioned)
    first = Instance(store, log)
    await first.own(CALENDARS, TICKETS)
    first.read(CALENDARS, 1)  # version 1 only
    await first.checkpoint(CALENDARS)
    first.read(TICKETS)
    await first.checkpoint(TICKETS)  # they use version 2: waiting, with version 1 known
    first.read(CALENDARS)  # version 2 (and the round-the-clock calendar)
    await first.checkpoint(CALENDARS)
    first.crash()
    again = Instance(store, log)
    await again.own(*restore_order)
    await check(store, log, again)


async def test_a_new_calendar_version_re_derived_but_its_checkpoint_lost(
    store: MongoStore, versioned: tuple[list[Event], Settings]
) -> None:
    log = Log.of(*versioned)
    first = Instance(store, log)
    await first.own(CALENDARS, TICKETS)
    first.read(CALENDARS, 1)
    await first.checkpoint(CALENDARS)
    first.read(TICKETS)
    await first.checkpoint(TICKETS)
    first.read(CALENDARS)
    await first.checkpoint(TICKETS)  # re-derived on version 2; version 2 itself not stored
    first.crash()
    again = Instance(store, log)
    await again.own(TICKETS, CALENDARS)
    await check(store, log, again)


# -- rebalance: a partition moves between two processes ------------------------------------------


async def test_a_partition_moved_to_a_process_that_never_saw_its_calendar(
    store: MongoStore, plain: tuple[list[Event], Settings]
) -> None:
    log = Log.of(*plain)
    one = Instance(store, log)
    await one.own(CALENDARS, TICKETS)
    one.read(TICKETS)
    one.read(CALENDARS)
    await one.checkpoint(TICKETS)  # derived with the calendar; the calendar's partition not
    await one.revoke(TICKETS)
    other = Instance(store, log)
    await other.own(TICKETS)
    await one.checkpoint(CALENDARS)
    await check(store, log, one, other)


async def test_tickets_on_one_process_wait_for_a_calendar_read_by_another(
    store: MongoStore, versioned: tuple[list[Event], Settings]
) -> None:
    log = Log.of(*versioned)
    one = Instance(store, log)
    other = Instance(store, log)
    await one.own(CALENDARS)
    await other.own(TICKETS)
    one.read(CALENDARS, 1)
    await one.checkpoint()
    other.read(TICKETS)
    await other.checkpoint()  # waiting for version 2
    one.read(CALENDARS)
    await one.checkpoint()  # stored by the other process: only a poll can tell
    await other.poll()
    await other.checkpoint()
    await one.revoke(CALENDARS)  # and the calendars' partition moves over too
    await other.own(CALENDARS)
    await check(store, log, other)


async def test_a_partition_moved_back_and_forth_while_the_calendar_arrives(
    store: MongoStore, plain: tuple[list[Event], Settings]
) -> None:
    log = Log.of(*plain)
    one = Instance(store, log)
    other = Instance(store, log)
    await one.own(CALENDARS, TICKETS)
    third = len(log.records[TICKETS]) // 3
    one.read(TICKETS, third)
    await one.revoke(TICKETS)
    await other.own(TICKETS)
    one.read(CALENDARS)
    other.read(TICKETS, third)
    await other.revoke(TICKETS)  # the other process never heard of the calendar
    await one.own(TICKETS)  # back where the calendar is known in memory, but not stored
    one.read(TICKETS, 5)
    await one.checkpoint(TICKETS)
    one.crash()
    await other.own(CALENDARS, TICKETS)
    await check(store, log, other)


# -- replay into a namespace of its own ----------------------------------------------------------


async def test_a_replay_namespace_restored_mid_way_matches_on_the_business_clock(
    store: MongoStore, plain: tuple[list[Event], Settings]
) -> None:
    log = Log.of(*plain)
    live = Instance(store, log)
    await live.own(CALENDARS, TICKETS)
    await check(store, log, live)  # the live namespace has stored the calendars
    replay = Instance(store, log, namespace="replay-1")
    await replay.own(TICKETS, CALENDARS)
    replay.read(TICKETS, len(log.records[TICKETS]) // 2)
    await replay.checkpoint(TICKETS)
    replay.crash()
    resumed = Instance(store, log, namespace="replay-1")
    await resumed.own(TICKETS, CALENDARS)
    await check(store, log, resumed)


async def test_a_replay_that_sees_the_calendar_late_restored_mid_way(
    store: MongoStore, versioned: tuple[list[Event], Settings]
) -> None:
    log = Log.of(*versioned)
    replay = Instance(store, log, namespace="replay-2")
    await replay.own(TICKETS, CALENDARS)
    replay.read(CALENDARS, 1)
    replay.read(TICKETS)
    await replay.checkpoint()
    replay.read(CALENDARS)
    await replay.checkpoint(CALENDARS)
    replay.crash()
    resumed = Instance(store, log, namespace="replay-2")
    await resumed.own(TICKETS, CALENDARS)
    await check(store, log, resumed)
    live = Instance(store, log)  # the namespace's cells are its own: the live one is empty
    await live.own(CALENDARS, TICKETS)
    assert live.cells() == {}


async def test_state_of_other_definitions_is_recomputed_on_load(
    store: MongoStore, plain: tuple[list[Event], Settings]
) -> None:
    """An upgrade whose KPI definitions differ (a rule's new version made current) recomputes
    each partition from the topic, business clock included, instead of mixing two rules."""
    events, current = plain
    older = Settings(
        definitions=Definitions.parse(["nrt_wall@1", "nrt_business@1", "silence@1"]),
        own_brands=current.own_brands,
    )
    before, after = Log.of(events, older), Log.of(events, current)
    assert before.expected != after.expected, "the two definition sets must disagree here"
    first = Instance(store, before)
    await first.own(CALENDARS, TICKETS)
    await check(store, before, first)
    first.crash()
    same = MetricsPartition(store, "live", TopicPartition(TOPIC, TICKETS), older, CalendarHub())
    assert await same.load() == len(before.records[TICKETS])  # same definitions: restored
    same.close()
    upgraded = Instance(store, after)
    await upgraded.own(CALENDARS, TICKETS)
    assert all(part.engine.next_offset == 0 for part in upgraded.parts.values())
    assert upgraded.cells() == {}
    await check(store, after, upgraded)
