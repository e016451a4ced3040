"""Sales appointments benchmark: free-slot search for 50 reps x 30 days, and booking throughput.

Starts its own stack (Kafka, SecantusDB, the contacts and sales services as real processes, as
``bench/servicedesk_bench.py`` does) on free ports of 127.0.0.1 in a temporary folder, drives
the sales service's ``AppointmentService`` over gRPC from this process, prints the figures and
stops. Every loop is bounded in count and time.

Set-up: ``--reps`` reps (default 50), each with a work calendar (Europe/Berlin, Monday to Friday
09:00-12:00 and 13:00-17:00, German public holidays, a 10-minute buffer), and one team of all of
them. Then three scenarios:

``booking``
    Closed loop: ``--concurrency`` callers book ``--bookings`` appointments of 30 minutes at
    distinct free times of distinct reps over the next 30 days (each by an unknown person, so
    each booking also creates a lead, in the same transaction): bookings/s, p50/p99. Then a
    contended round: ``--race`` callers at a time book the same slot, ``--race-rounds`` times:
    exactly one wins each round (checked), the others get SLOT_TAKEN.
``rep-search``
    ``FindFreeSlots`` of one rep over 30 days (30-minute slots), for each rep in turn,
    ``--rounds`` rounds, one call at a time: p50/p99 per search, with the target p99 < 50 ms.
``team-search``
    ``FindFreeSlots`` of the team of all reps over 30 days: one call covers 50 reps x 30 days
    (each start offered once, with its first free member): p50/p99, target p99 < 50 ms. Also the
    same 50 one-rep searches issued concurrently, as a batch (wall time of the batch).

    .venv/bin/python bench/sales_appointments_bench.py [--reps 50] [--bookings 1000] ...

``CRM_SECANTUS_BIN=/path/to/secantusd-rs`` (or ``CRM_SECANTUS=py``) chooses the database server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import random
import shutil
import statistics
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import grpc
import holidays as holidays_lib
from google.protobuf.timestamp_pb2 import Timestamp

from crm.sales.v1 import appointments_pb2 as apb
from crm.sales.v1 import appointments_pb2_grpc
from crm_devstack.procs import free_ports
from crm_devstack.secantus import secantus_executable
from crm_devstack.stack import Stack, StackConfig
from crm_platform.mongo import MongoStore
from crm_sales.appointments_storage import AppointmentStore
from crm_sales.domain.appointments import (
    OwnerKind,
    SlotQuery,
    group_members,
    team_free_slots,
)

SALES = "sales"
CONTACTS = "contacts"
TENANT = "bench"
BERLIN = ZoneInfo("Europe/Berlin")
TARGET_P99_MS = 50.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: Sequence[float], p: float) -> float:
    """The ``p`` quantile (0..1) of sorted ``values`` (nearest rank below)."""
    return values[min(len(values) - 1, int(len(values) * p))] if values else float("nan")


def loadavg() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def md(actor: str = "bench") -> tuple[tuple[str, str], ...]:
    return (("x-tenant-id", TENANT), ("x-actor-id", actor), ("x-actor-type", "agent"))


def stamp(at: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(at)
    return value


HEADER = (
    "| workload | calls | errors | throughput | p50 ms | p99 ms | mean ms | target | "
    "sales CPU ms/call |\n|---|---|---|---|---|---|---|---|---|"
)


@dataclass
class Recorder:
    """Latencies and error codes of one kind of call."""

    name: str
    latencies_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    cpu_s: float = 0.0
    target_ms: float | None = None

    async def call(self, call: Awaitable[Any]) -> Any | None:
        started = time.perf_counter()
        try:
            result = await call
        except grpc.aio.AioRpcError as exc:
            self.errors[exc.code().name] += 1
            return None
        self.latencies_ms.append((time.perf_counter() - started) * 1000)
        return result

    def row(self) -> str:
        lat = sorted(self.latencies_ms)
        count = len(lat) + sum(self.errors.values())
        errors = ", ".join(f"{n} {code}" for code, n in self.errors.most_common()) or "0"
        mean = statistics.fmean(lat) if lat else float("nan")
        p99 = pct(lat, 0.99)
        target = ""
        if self.target_ms is not None:
            verdict = "met" if p99 < self.target_ms else "MISSED"
            target = f"p99 < {self.target_ms:.0f} ms: {verdict}"
        return (
            f"| {self.name} | {count} | {errors} | {len(lat) / self.seconds:,.1f}/s | "
            f"{pct(lat, 0.5):.1f} | {p99:.1f} | {mean:.1f} | {target} | "
            f"{self.cpu_s * 1000 / max(count, 1):.2f} |"
        )


@dataclass
class Rig:
    stack: Stack
    stub: appointments_pb2_grpc.AppointmentServiceAsyncStub
    sales_pid: int
    mongo: MongoStore

    async def outbox_drained(self, timeout: float = 180.0) -> float:
        """Wait until the relay has published everything (so that its work does not count in
        the next scenario's CPU and latency); the seconds waited."""
        started = time.perf_counter()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while await self.mongo.db["outbox"].count_documents({}):
                    await asyncio.sleep(0.2)
        return time.perf_counter() - started


@contextlib.asynccontextmanager
async def running_stack() -> AsyncIterator[Rig]:
    home = Path(tempfile.mkdtemp(prefix="crm-bench-", dir=os.environ.get("CRM_HOME")))
    kafka_port, controller_port, mongo_port, contacts_port, sales_port = free_ports(5)
    config = StackConfig(
        home=home,
        kafka_port=kafka_port,
        kafka_controller_port=controller_port,
        mongodb_port=mongo_port,
        service_ports={CONTACTS: contacts_port, SALES: sales_port},
    )
    print(f"starting the stack under {home} ...", flush=True)
    async with Stack(config, services=[CONTACTS, SALES]) as stack:
        pid = stack.services[SALES].pid
        assert pid is not None
        mongo = MongoStore(stack.secantus.uri, "crm_sales", app_name="bench")
        try:
            async with grpc.aio.insecure_channel(stack.services[SALES].address) as channel:
                yield Rig(stack, appointments_pb2_grpc.AppointmentServiceStub(channel), pid, mongo)
        finally:
            await mongo.close()
    shutil.rmtree(config.data_dir, ignore_errors=True)
    print(f"logs in {config.logs_dir}", flush=True)


async def in_parallel(count: int, concurrency: int, make: Callable[[int], Awaitable[Any]]) -> None:
    """Run ``make(0..count-1)`` with at most ``concurrency`` at a time."""
    queue = iter(range(count))

    async def worker() -> None:
        for index in queue:
            await make(index)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def first_monday() -> date:
    day = datetime.now(UTC).date() + timedelta(days=7)
    return day + timedelta(days=(7 - day.weekday()) % 7)


async def set_up(rig: Rig, reps: int) -> tuple[list[str], str]:
    hours = [
        apb.WorkingHours(weekday=d, start_minute=s, end_minute=e)
        for d in range(1, 6)
        for s, e in ((9 * 60, 12 * 60), (13 * 60, 17 * 60))
    ]
    names = [f"rep-{i:03d}-{uuid.uuid4().hex[:6]}" for i in range(reps)]
    for name in names:
        await rig.stub.SetWorkCalendar(
            apb.SetWorkCalendarRequest(
                calendar=apb.WorkCalendar(
                    owner_kind=apb.CALENDAR_OWNER_KIND_REP,
                    owner_id=name,
                    time_zone="Europe/Berlin",
                    working_hours=hours,
                    holiday_country="DE",
                    buffer_minutes=10,
                )
            ),
            metadata=md(),
        )
    team = f"team-{uuid.uuid4().hex[:6]}"
    await rig.stub.SetWorkCalendar(
        apb.SetWorkCalendarRequest(
            calendar=apb.WorkCalendar(
                owner_kind=apb.CALENDAR_OWNER_KIND_TEAM,
                owner_id=team,
                time_zone="Europe/Berlin",
                working_hours=hours,
                holiday_country="DE",
                buffer_minutes=10,
                member_rep_ids=names,
            )
        ),
        metadata=md(),
    )
    return names, team


def booking_request(rep: str, start: datetime, index: int) -> apb.BookAppointmentRequest:
    return apb.BookAppointmentRequest(
        rep_id=rep,
        start_time=stamp(start),
        end_time=stamp(start + timedelta(minutes=30)),
        customer_name=f"Prospect {index}",
        customer_email=f"prospect-{index}-{uuid.uuid4().hex[:6]}@example.com",
        customer_time_zone="America/New_York",
        subject="Discovery call",
    )


async def bench_booking(rig: Rig, reps: list[str], args: argparse.Namespace) -> list[str]:
    monday = first_monday()
    # Distinct (rep, local time) pairs: weekday mornings and afternoons on the hour, spread
    # over the reps and the 30 days (public holidays left out: they are closed).
    closed = holidays_lib.country_holidays("DE", years=range(monday.year, monday.year + 2))
    times = [
        datetime.combine(monday + timedelta(days=d), datetime.min.time(), BERLIN).replace(hour=h)
        for d in range(30)
        if (monday + timedelta(days=d)).weekday() < 5 and monday + timedelta(days=d) not in closed
        for h in (9, 10, 11, 13, 14, 15, 16)
    ]
    plan = [(rep, at.astimezone(UTC)) for at in times for rep in reps]
    random.Random(7).shuffle(plan)
    plan = plan[: args.bookings]
    recorder = Recorder("BookAppointment (distinct slots, each makes a lead)")
    cpu = cpu_seconds(rig.sales_pid)
    started = time.perf_counter()
    async with asyncio.timeout(args.timeout):

        async def book(index: int) -> None:
            rep, at = plan[index]
            await recorder.call(
                rig.stub.BookAppointment(booking_request(rep, at, index), metadata=md())
            )

        await in_parallel(len(plan), args.concurrency, book)
    recorder.seconds = time.perf_counter() - started
    recorder.cpu_s = cpu_seconds(rig.sales_pid) - cpu

    race = Recorder(f"BookAppointment ({args.race} racing for one slot)")
    wins = Counter[int]()
    cpu = cpu_seconds(rig.sales_pid)
    started = time.perf_counter()
    # The race: weekdays after the plan's 30 days (no public holiday), 10:00, one per round.
    race_days = [
        day
        for day in (monday + timedelta(days=35 + d) for d in range(4 * args.race_rounds))
        if day.weekday() < 5 and day not in closed
    ][: args.race_rounds]
    race_times = [
        datetime.combine(day, datetime.min.time(), BERLIN).replace(hour=10) for day in race_days
    ]
    async with asyncio.timeout(args.timeout):
        for round_index, at in enumerate(race_times):
            rep = reps[round_index % len(reps)]
            results = await asyncio.gather(
                *(
                    race.call(
                        rig.stub.BookAppointment(
                            booking_request(rep, at.astimezone(UTC), 10_000 + i), metadata=md()
                        )
                    )
                    for i in range(args.race)
                )
            )
            wins[sum(1 for r in results if r is not None)] += 1
    race.seconds = time.perf_counter() - started
    race.cpu_s = cpu_seconds(rig.sales_pid) - cpu
    outcome = ", ".join(f"{n} rounds with {w} winner(s)" for w, n in sorted(wins.items()))
    return [
        "### booking",
        HEADER,
        recorder.row(),
        race.row(),
        f"contended rounds: {outcome} (must be exactly 1 winner each; the others SLOT_TAKEN)",
    ]


async def bench_search(rig: Rig, reps: list[str], team: str, args: argparse.Namespace) -> list[str]:
    start = datetime.combine(first_monday(), datetime.min.time(), BERLIN).astimezone(UTC)
    end = start + timedelta(days=30)

    def request(rep: str = "", team_id: str = "") -> apb.FindFreeSlotsRequest:
        return apb.FindFreeSlotsRequest(
            rep_id=rep,
            team_id=team_id,
            range_start=stamp(start),
            range_end=stamp(end),
            slot_minutes=30,
            customer_time_zone="America/New_York",
            page_size=500,
        )

    # Warm-up: the first search of a calendar computes its days (then cached in the process).
    for rep in reps:
        await rig.stub.FindFreeSlots(request(rep), metadata=md())
    await rig.stub.FindFreeSlots(request(team_id=team), metadata=md())

    per_rep = Recorder(
        f"FindFreeSlots, one rep x 30 days ({len(reps)} reps in turn)", target_ms=TARGET_P99_MS
    )
    slots_per_rep: list[int] = []
    cpu = cpu_seconds(rig.sales_pid)
    started = time.perf_counter()
    async with asyncio.timeout(args.timeout):
        for _ in range(args.rounds):
            for rep in reps:
                reply = await per_rep.call(rig.stub.FindFreeSlots(request(rep), metadata=md()))
                if reply is not None:
                    slots_per_rep.append(len(reply.slots))
    per_rep.seconds = time.perf_counter() - started
    per_rep.cpu_s = cpu_seconds(rig.sales_pid) - cpu

    team_search = Recorder(
        f"FindFreeSlots, team of {len(reps)} reps x 30 days (one call)", target_ms=TARGET_P99_MS
    )
    team_slots = 0
    cpu = cpu_seconds(rig.sales_pid)
    started = time.perf_counter()
    async with asyncio.timeout(args.timeout):
        for _ in range(args.team_rounds):
            reply = await team_search.call(
                rig.stub.FindFreeSlots(request(team_id=team), metadata=md())
            )
            if reply is not None:
                team_slots = len(reply.slots)
    team_search.seconds = time.perf_counter() - started
    team_search.cpu_s = cpu_seconds(rig.sales_pid) - cpu

    batch = Recorder(f"{len(reps)} one-rep searches at once (latency of each)")
    walls: list[float] = []
    cpu = cpu_seconds(rig.sales_pid)
    started = time.perf_counter()
    async with asyncio.timeout(args.timeout):
        for _ in range(args.batch_rounds):
            began = time.perf_counter()
            await asyncio.gather(
                *(batch.call(rig.stub.FindFreeSlots(request(rep), metadata=md())) for rep in reps)
            )
            walls.append((time.perf_counter() - began) * 1000)
    batch.seconds = time.perf_counter() - started
    batch.cpu_s = cpu_seconds(rig.sales_pid) - cpu
    walls.sort()
    compute = await compute_only(rig, reps, team, start, end, args.team_rounds)
    median = statistics.median(slots_per_rep) if slots_per_rep else 0
    return [
        "### slot search (30-minute slots, 30 days from a Monday, after the bookings above)",
        HEADER,
        per_rep.row(),
        team_search.row(),
        batch.row(),
        f"slots per one-rep search: median {median:.0f}; "
        f"team offer: {team_slots} slots; a batch of {len(reps)} concurrent searches takes "
        f"p50 {pct(walls, 0.5):.0f} ms, p99 {pct(walls, 0.99):.0f} ms wall",
        compute,
    ]


async def compute_only(
    rig: Rig, reps: list[str], team: str, start: datetime, end: datetime, rounds: int
) -> str:
    """The team search's slot computation alone, in this process on the same calendars and
    holdings (read once from the service's database): what the search costs without the RPC,
    the queries and the response."""
    store = AppointmentStore(rig.mongo.db)
    team_calendar = await store.get_calendar(TENANT, OwnerKind.TEAM, team)
    own = await store.rep_calendars(TENANT, reps)
    buffer = team_calendar.buffer
    busy = await store.busy(TENANT, reps, start, end + buffer)
    now = datetime.now(UTC)
    query = SlotQuery(start, end, timedelta(minutes=30), timedelta(minutes=30), now)
    window = (start - timedelta(days=1), end + timedelta(days=1))
    took: list[float] = []
    slots = 0
    for _ in range(rounds):
        began = time.perf_counter()
        member_groups = group_members(
            (
                (
                    rep,
                    [team_calendar.calendar] + ([own[rep].calendar] if rep in own else []),
                    busy[rep],
                )
                for rep in reps
            ),
            *window,
        )
        slots = len(team_free_slots(member_groups, query, buffer))
        took.append((time.perf_counter() - began) * 1000)
    took.sort()
    holdings = sum(len(b) for b in busy.values())
    return (
        f"slot computation alone (team of {len(reps)} x 30 days, {holdings} holdings, "
        f"{slots} slots, no I/O, members grouped by calendar rules): p50 {pct(took, 0.5):.2f} ms, "
        f"p99 {pct(took, 0.99):.2f} ms"
    )


def header() -> list[str]:
    return [
        f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"machine: {platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"grpcio {grpc.__version__}",
        f"database: {secantus_executable()} (as crm_devstack starts it)",
        "sales: separate process (python -m crm_sales), contacts likewise; client in this process",
        f"load average at the start: {loadavg()}",
    ]


async def main(args: argparse.Namespace) -> None:
    head = header()
    print("\n".join(head), flush=True)
    reports: list[list[str]] = []
    async with running_stack() as rig:
        reps, team = await set_up(rig, args.reps)
        print(f"{len(reps)} rep calendars and a team set", flush=True)
        scenarios: list[tuple[str, Callable[[], Awaitable[list[str]]]]] = [
            ("booking", lambda: bench_booking(rig, reps, args)),
            ("search", lambda: bench_search(rig, reps, team, args)),
        ]
        for name, scenario in scenarios:
            waited = await rig.outbox_drained()
            print(f"\n== {name} (outbox drained in {waited:.1f}s; load {loadavg()}) ==", flush=True)
            started = time.perf_counter()
            lines = await scenario()
            lines.append(f"({name}: {time.perf_counter() - started:.0f}s, load {loadavg()})")
            print("\n".join(lines), flush=True)
            reports.append(lines)
    print("\n" + "\n".join(head))
    print(f"load average at the end: {loadavg()}")
    for lines in reports:
        print()
        print("\n".join(lines))


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=50)
    parser.add_argument("--bookings", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--race", type=int, default=8, help="callers racing for one slot")
    parser.add_argument("--race-rounds", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=4, help="rounds of the one-rep searches")
    parser.add_argument("--team-rounds", type=int, default=100)
    parser.add_argument("--batch-rounds", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per scenario step")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse()))
