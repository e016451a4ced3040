"""Compare the Python (``secantusd-py``) and Rust (``secantusd-rs``) SecantusDB servers.

Each server is started as a separate process (SecantusDB is GPL-2.0: it is never
imported here) on a free 127.0.0.1 port with a fresh temporary storage directory,
then driven with ``pymongo.AsyncMongoClient`` through the workloads a CRM service
does:

* ``create``   multi-document transaction: contact doc (~1 KB) + outbox doc
* ``get``      ``find_one({tenant_id, _id})``
* ``scan``     outbox relay: find 100 unsent by sequence, then ``update_many`` sent
* ``cstream``  change-stream latency, insert -> event seen by a watcher
* ``create+sync`` the ``create`` workload on a server started with ``--sync-on-commit``

each at concurrency 1 and ``--concurrency`` (asyncio tasks), reporting ops/s,
p50/p99 latency and the CPU used by the server and by this (client) process.

A semantics check verifies what the service relies on: commit/abort atomicity,
isolation, duplicate-key and write-conflict aborts (TransientTransactionError),
change streams showing committed writes only, with lsid/txnNumber, and resuming.

A durability check writes acknowledged transactions, ``kill -9``s the server
right after the last acknowledgement, restarts it on the same storage and counts
what survived: default flags, ``j:true`` on ``commitTransaction``, plain ``j:true``
inserts, and ``--sync-on-commit``.

``--profile WORKLOAD`` runs the Python server under a thread-aware cProfile
wrapper (plain ``python -m cProfile`` only sees the main thread, which just waits:
the server handles every connection on its own thread) and prints the top entries.

Usage::

    .venv/bin/python bench/secantus_compare.py [--ops N] [--concurrency C] [--only py|rs]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import itertools
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.write_concern import WriteConcern

REPO = Path(__file__).resolve().parents[1]
CRM_HOME = Path(os.environ.get("CRM_HOME", REPO / ".crm"))
DEFAULT_PY_BIN = Path(sys.executable).parent / "secantusd-py"
DEFAULT_RS_BIN = CRM_HOME / "tools" / "bin" / "secantusd-rs"  # linked by make setup
DB_NAME = "crm_bench"
N_TENANTS = 20
CLK_TCK = os.sysconf("SC_CLK_TCK")

Doc = dict[str, Any]

# Thread-aware cProfile bootstrap for the Python server: every thread started
# after it (accept loop, one per connection) gets its own profiler; the stats
# are merged and dumped at exit (SIGTERM -> the cli's handler -> sys.exit).
# Clock "cpu" (per-thread CPU time) shows where the server burns CPU; "wall"
# also counts blocking in recv() and waiting for locks / the GIL.
_PROFILE_BOOTSTRAP = r"""
import atexit, cProfile, pstats, sys, threading, time
out = sys.argv.pop(1)
timer = time.thread_time if sys.argv.pop(1) == "cpu" else time.perf_counter
profiles = []
lock = threading.Lock()
orig_run = threading.Thread.run
def run(self):
    prof = cProfile.Profile(timer)
    prof.enable()
    try:
        orig_run(self)
    finally:
        prof.disable()
        with lock:
            profiles.append(prof)
threading.Thread.run = run
main_prof = cProfile.Profile(timer)
def dump():
    main_prof.disable()
    with lock:
        st = pstats.Stats(main_prof)
        for p in profiles:
            st.add(p)
    st.dump_stats(out)
atexit.register(dump)
from secantus.cli import main
sys.argv[0] = "secantusd-py"
main_prof.enable()
sys.exit(main())
"""


# --------------------------------------------------------------------------- servers


@dataclass(frozen=True)
class ServerSpec:
    name: str  # "py" | "rs"
    argv: tuple[str, ...]  # command up to (not including) the common flags
    version: str


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_cpu_seconds(pid: int) -> float:
    """utime+stime of a process (and its reaped children) from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    # fields[0] is state (field 3); utime/stime are fields 14/15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


_LIVE: set[subprocess.Popen[bytes]] = set()


def _kill_all_live() -> None:
    for p in list(_LIVE):
        with contextlib.suppress(ProcessLookupError):
            p.kill()
        with contextlib.suppress(Exception):
            p.wait(timeout=10)
        _LIVE.discard(p)


class Server:
    """One server process on a given storage dir; restartable on the same storage."""

    def __init__(
        self,
        spec: ServerSpec,
        storage: Path,
        extra: list[str] | None = None,
        profile_out: Path | None = None,
        profile_clock: str = "cpu",
    ) -> None:
        self.spec = spec
        self.storage = storage
        self.extra = extra or []
        self.profile_out = profile_out
        self.profile_clock = profile_clock
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = storage.parent / f"{storage.name}.{spec.name}.log"

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu_seconds(self) -> float:
        return proc_cpu_seconds(self.pid) if self.proc is not None else 0.0

    def _spawn(self) -> None:
        self.port = free_port()
        argv = list(self.spec.argv)
        if self.profile_out is not None:
            argv = [sys.executable, "-c", _PROFILE_BOOTSTRAP, str(self.profile_out)]
            argv.append(self.profile_clock)
        argv += [
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--storage-path", str(self.storage),
            "--cache-size", "1G",
            "--log-level", "WARNING",
            *self.extra,
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            log.write(f"\n=== {' '.join(argv)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.storage.parent
            )
        _LIVE.add(self.proc)

    async def start(self, wait_s: float = 90.0) -> None:
        self._spawn()
        assert self.proc is not None
        deadline = time.monotonic() + wait_s
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.spec.name} server exited early, see {self.log_path}")
            client: AsyncMongoClient[Doc] = AsyncMongoClient(self.uri, serverSelectionTimeoutMS=500)
            try:
                await client.admin.command("ping")
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
            finally:
                await client.close()

    def kill9(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        _LIVE.discard(self.proc)
        self.proc = None

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        _LIVE.discard(self.proc)
        self.proc = None


def discover_servers(only: str | None, py_bin: Path, rs_bin: Path) -> list[ServerSpec]:
    specs: list[ServerSpec] = []
    if only in (None, "py"):
        ver = importlib.metadata.version("secantusdb")
        specs.append(ServerSpec("py", (str(py_bin),), f"secantusdb {ver} (PyPI)"))
    if only in (None, "rs"):
        if rs_bin.exists():
            out = subprocess.run(
                [str(rs_bin), "--version"], capture_output=True, text=True, timeout=30
            )
            ver = (out.stdout or out.stderr).strip().splitlines()[0] if out.returncode == 0 else "?"
            specs.append(ServerSpec("rs", (str(rs_bin),), ver))
        else:
            print(f"[skip] Rust server not built ({rs_bin}); run deploy/local/build-secantus-rs.sh")
    return specs


# --------------------------------------------------------------------------- documents

_seq = itertools.count(1)


def contact_doc(tenant: str, cid: str, extra: Doc | None = None) -> Doc:
    """A ~1 KB contact document."""
    first, last = random.choice(["Ada", "Grace", "Alan", "Edsger"]), f"Surname{cid[-6:]}"
    doc: Doc = {
        "_id": cid,
        "tenant_id": tenant,
        "first_name": first,
        "last_name": last,
        "emails": [f"{first.lower()}.{cid[-8:]}@example.com", f"{cid[-8:]}@work.example.org"],
        "phones": [{"type": "mobile", "number": "+44 7700 900123"}],
        "company": {"name": "Example Ltd", "domain": "example.com", "size": "51-200"},
        "title": "Head of Procurement",
        "address": {
            "street": "1 Example Street",
            "city": "Cambridge",
            "postcode": "CB1 1AA",
            "country": "GB",
        },
        "tags": ["lead", "newsletter", "q4-campaign"],
        "owner_id": f"user-{random.randint(1, 50)}",
        "lifecycle_stage": "lead",
        "custom": {f"field_{i}": f"value-{i}-{cid[-4:]}" for i in range(8)},
        "notes": "x" * 380,
        "version": 1,
        "created_at": time.time(),
        "updated_at": time.time(),
    }
    if extra:
        doc.update(extra)
    return doc


def outbox_doc(tenant: str, aggregate_id: str, partitions: int = 16) -> Doc:
    seq = next(_seq)
    return {
        "_id": ObjectId(),
        "tenant_id": tenant,
        "aggregate_id": aggregate_id,
        "event_type": "crm.contact.created.v1",
        "sequence": seq,
        "partition": seq % partitions,
        "sent": False,
        "payload": {"contact_id": aggregate_id, "tenant_id": tenant},
        "created_at": time.time(),
    }


def new_contact_key() -> tuple[str, str]:
    return f"t{random.randrange(N_TENANTS)}", f"c-{uuid.uuid4().hex}"


# --------------------------------------------------------------------------- measurement


@dataclass
class Result:
    server: str
    workload: str
    concurrency: int
    ops: int
    seconds: float
    ops_per_s: float
    p50_ms: float
    p99_ms: float
    server_cpu_pct: float
    client_cpu_pct: float
    errors: int = 0
    note: str = ""


def percentile(sorted_vals: list[float], q: float) -> float:
    if not sorted_vals:
        return float("nan")
    idx = min(len(sorted_vals) - 1, max(0, round(q * (len(sorted_vals) - 1))))
    return sorted_vals[idx]


@dataclass
class Meter:
    server: Server
    t0: float = 0.0
    srv0: float = 0.0
    cli0: float = 0.0
    wall: float = 0.0
    srv_pct: float = 0.0
    cli_pct: float = 0.0

    def __enter__(self) -> Meter:
        self.t0 = time.perf_counter()
        self.srv0 = self.server.cpu_seconds()
        self.cli0 = time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.t0
        self.srv_pct = 100.0 * (self.server.cpu_seconds() - self.srv0) / self.wall
        self.cli_pct = 100.0 * (time.process_time() - self.cli0) / self.wall


async def run_workload(
    server: Server,
    name: str,
    concurrency: int,
    ops: int,
    op: Callable[[int, int], Awaitable[None]],
    per_worker: bool = False,
) -> Result:
    """Run ``ops`` calls of ``op(worker, i)`` spread over ``concurrency`` tasks.

    Tasks take the next op from a shared counter, or with ``per_worker`` each
    does exactly ``ops // concurrency``.
    """
    counter = itertools.count()
    latencies: list[float] = []
    errors = 0

    async def worker(w: int) -> None:
        nonlocal errors
        mine = itertools.count() if per_worker else counter
        limit = ops // concurrency if per_worker else ops
        while (i := next(mine)) < limit:
            t = time.perf_counter()
            try:
                await op(w, i)
            except Exception as exc:  # count and keep going; reported in the table
                errors += 1
                if errors <= 3:
                    print(f"  [{server.spec.name} {name}] error: {exc!r}")
                continue
            latencies.append(time.perf_counter() - t)

    with Meter(server) as m:
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
    latencies.sort()
    return Result(
        server=server.spec.name,
        workload=name,
        concurrency=concurrency,
        ops=len(latencies),
        seconds=m.wall,
        ops_per_s=len(latencies) / m.wall,
        p50_ms=percentile(latencies, 0.50) * 1e3,
        p99_ms=percentile(latencies, 0.99) * 1e3,
        server_cpu_pct=m.srv_pct,
        client_cpu_pct=m.cli_pct,
        errors=errors,
    )


# --------------------------------------------------------------------------- workloads


@dataclass
class Crm:
    client: AsyncMongoClient[Doc]
    contacts: AsyncCollection[Doc]
    outbox: AsyncCollection[Doc]
    created: list[tuple[str, str]] = field(default_factory=list)


async def setup_db(client: AsyncMongoClient[Doc]) -> Crm:
    db = client[DB_NAME]
    await client.drop_database(DB_NAME)
    contacts = await db.create_collection("contacts")
    outbox = await db.create_collection("outbox")
    await contacts.create_index([("tenant_id", ASCENDING), ("_id", ASCENDING)], unique=True)
    await contacts.create_index([("tenant_id", ASCENDING), ("emails", ASCENDING)])
    await outbox.create_index(
        [("partition", ASCENDING), ("sent", ASCENDING), ("sequence", ASCENDING)]
    )
    await outbox.create_index([("sequence", ASCENDING)], unique=True)
    return Crm(client, contacts, outbox)


async def create_contact(
    crm: Crm, tenant: str, cid: str, wc: WriteConcern | None = None, extra: Doc | None = None
) -> None:
    doc = contact_doc(tenant, cid, extra)
    event = outbox_doc(tenant, cid)

    async def txn(s: AsyncClientSession) -> None:
        await crm.contacts.insert_one(doc, session=s)
        await crm.outbox.insert_one(event, session=s)

    async with crm.client.start_session() as session:
        await session.with_transaction(txn, write_concern=wc)


async def wl_create(server: Server, crm: Crm, conc: int, ops: int) -> Result:
    async def op(_w: int, _i: int) -> None:
        tenant, cid = new_contact_key()
        await create_contact(crm, tenant, cid)
        crm.created.append((tenant, cid))

    return await run_workload(server, "create", conc, ops, op)


async def wl_get(server: Server, crm: Crm, conc: int, ops: int) -> Result:
    missing = 0

    async def op(_w: int, _i: int) -> None:
        nonlocal missing
        tenant, cid = random.choice(crm.created)
        if await crm.contacts.find_one({"tenant_id": tenant, "_id": cid}) is None:
            missing += 1

    res = await run_workload(server, "get", conc, ops, op)
    if missing:
        res.note = f"{missing} not found"
    return res


async def wl_scan(server: Server, crm: Crm, conc: int, scans: int, batch: int = 100) -> Result:
    """Outbox relay: each task owns one partition (like one relay per shard)."""
    await crm.outbox.update_many({"sent": False}, {"$set": {"sent": True}})
    per_worker = -(-scans // conc)
    prefill: list[Doc] = []
    for w in range(conc):
        for _ in range(per_worker * batch):
            d = outbox_doc("t0", "c-prefill")
            d["partition"] = w
            prefill.append(d)
    for i in range(0, len(prefill), 1000):
        await crm.outbox.insert_many(prefill[i : i + 1000], ordered=False)
    short = 0

    async def op(w: int, _i: int) -> None:
        nonlocal short
        cursor = crm.outbox.find(
            {"partition": w, "sent": False}, sort=[("sequence", ASCENDING)], limit=batch
        )
        docs = await cursor.to_list()
        if len(docs) < batch:
            short += 1
        if docs:
            await crm.outbox.update_many(
                {"_id": {"$in": [d["_id"] for d in docs]}},
                {"$set": {"sent": True, "sent_at": time.time()}},
            )

    # Each task does exactly per_worker scans of its own partition.
    res = await run_workload(server, "scan", conc, per_worker * conc, op, per_worker=True)
    res.note = f"batch={batch}" + (f", {short} short batches" if short else "")
    return res


async def wl_cstream(server: Server, crm: Crm, conc: int, ops: int) -> Result:
    """Insert -> change event latency, ``conc`` concurrent writers, one watcher."""
    run_id = uuid.uuid4().hex
    latencies: list[float] = []
    ready = asyncio.Event()
    done = asyncio.Event()
    pipeline = [{"$match": {"operationType": "insert", "fullDocument.cs_run": run_id}}]

    async def watcher() -> None:
        async with await crm.contacts.watch(pipeline, max_await_time_ms=500) as stream:
            ready.set()
            async for ev in stream:
                latencies.append(time.perf_counter() - ev["fullDocument"]["cs_t0"])
                if len(latencies) >= ops:
                    done.set()
                    return

    counter = itertools.count()

    async def writer() -> None:
        while next(counter) < ops:
            tenant, cid = new_contact_key()
            doc = contact_doc(tenant, cid, {"cs_run": run_id, "cs_t0": time.perf_counter()})
            await crm.contacts.insert_one(doc)

    wtask = asyncio.create_task(watcher())
    await asyncio.wait_for(ready.wait(), 30)
    note = ""
    with Meter(server) as m:
        await asyncio.gather(*(writer() for _ in range(conc)))
        try:
            await asyncio.wait_for(done.wait(), timeout=60)
        except TimeoutError:
            note = f"timeout: {len(latencies)}/{ops} events seen"
    wtask.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await wtask
    latencies.sort()
    return Result(
        server=server.spec.name,
        workload="cstream",
        concurrency=conc,
        ops=len(latencies),
        seconds=m.wall,
        ops_per_s=len(latencies) / m.wall,
        p50_ms=percentile(latencies, 0.50) * 1e3,
        p99_ms=percentile(latencies, 0.99) * 1e3,
        server_cpu_pct=m.srv_pct,
        client_cpu_pct=m.cli_pct,
        note=note,
    )


async def warmup(crm: Crm, n: int) -> None:
    for _ in range(n):
        tenant, cid = new_contact_key()
        await create_contact(crm, tenant, cid)
        crm.created.append((tenant, cid))
        await crm.contacts.find_one({"tenant_id": tenant, "_id": cid})


@contextlib.contextmanager
def temp_storage(prefix: str) -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix=f"secantus-bench-{prefix}-"))
    try:
        yield base / "data"
    finally:
        shutil.rmtree(base, ignore_errors=True)


async def bench_server(spec: ServerSpec, ops: int, levels: list[int]) -> list[Result]:
    results: list[Result] = []
    with temp_storage(spec.name) as storage:
        server = Server(spec, storage)
        await server.start()
        client: AsyncMongoClient[Doc] = AsyncMongoClient(server.uri, maxPoolSize=64)
        try:
            crm = await setup_db(client)
            await warmup(crm, 50)
            scans = max(10, ops // 20)
            for conc in levels:
                results.append(await wl_create(server, crm, conc, ops))
                print_result(results[-1])
            for conc in levels:
                results.append(await wl_get(server, crm, conc, ops))
                print_result(results[-1])
            for conc in levels:
                results.append(await wl_scan(server, crm, conc, scans))
                print_result(results[-1])
            for conc in levels:
                results.append(await wl_cstream(server, crm, conc, max(100, ops // 2)))
                print_result(results[-1])
        finally:
            await client.close()
            server.stop()
    # Same "create" workload with fsync-per-commit.
    with temp_storage(spec.name + "-sync") as storage:
        server = Server(spec, storage, ["--sync-on-commit"])
        await server.start()
        client = AsyncMongoClient(server.uri, maxPoolSize=64)
        try:
            crm = await setup_db(client)
            await warmup(crm, 20)
            for conc in levels:
                res = await wl_create(server, crm, conc, max(100, ops // 4))
                res.workload = "create+sync"
                results.append(res)
                print_result(res)
        finally:
            await client.close()
            server.stop()
    return results


# --------------------------------------------------------------------------- durability


# "default"/"txn j:true"/"sync-on-commit" use the create transaction (commit write
# concern j:true for the second); "insert j:true" does two plain j:true inserts.
DURABILITY_MODES = ("default", "txn j:true", "insert j:true", "sync-on-commit")


@dataclass
class DurabilityResult:
    server: str
    mode: str
    acked: int
    contacts_found: int
    outbox_found: int
    restart_s: float

    @property
    def ok(self) -> bool:
        return self.contacts_found == self.acked and self.outbox_found == self.acked


async def durability_check(
    spec: ServerSpec, mode: str, n: int = 400, conc: int = 8
) -> DurabilityResult:
    extra = ["--sync-on-commit"] if mode == "sync-on-commit" else []
    wc = WriteConcern(w=1, j=True) if mode == "txn j:true" else None
    with temp_storage(f"{spec.name}-dur") as storage:
        server = Server(spec, storage, extra)
        await server.start()
        client: AsyncMongoClient[Doc] = AsyncMongoClient(server.uri, maxPoolSize=32)
        acked: list[str] = []
        try:
            crm = await setup_db(client)
            j = WriteConcern(w=1, j=True)
            contacts_j = crm.contacts.with_options(write_concern=j)
            outbox_j = crm.outbox.with_options(write_concern=j)
            counter = itertools.count()

            async def writer() -> None:
                while next(counter) < n:
                    _tenant, cid = new_contact_key()
                    if mode == "insert j:true":  # two plain writes, no transaction
                        await contacts_j.insert_one(contact_doc("dur", cid))
                        await outbox_j.insert_one(outbox_doc("dur", cid))
                    else:
                        await create_contact(crm, "dur", cid, wc)
                    acked.append(cid)

            await asyncio.gather(*(writer() for _ in range(conc)))
            server.kill9()  # immediately after the last acknowledgement
        finally:
            await client.close()
        t = time.perf_counter()
        await server.start()
        restart_s = time.perf_counter() - t
        client = AsyncMongoClient(server.uri)
        try:
            db = client[DB_NAME]
            found_c = await db.contacts.count_documents({"tenant_id": "dur"})
            ids = [d["aggregate_id"] async for d in db.outbox.find({"tenant_id": "dur"})]
            found_o = len(set(ids) & set(acked))
        finally:
            await client.close()
            server.stop()
    return DurabilityResult(spec.name, mode, len(acked), found_c, found_o, restart_s)


# --------------------------------------------------------------------------- semantics


async def semantics_check(spec: ServerSpec) -> list[tuple[str, bool, str]]:
    """Transactions + change streams behave as a CRM service relies on."""
    checks: list[tuple[str, bool, str]] = []
    with temp_storage(f"{spec.name}-sem") as storage:
        server = Server(spec, storage)
        await server.start()
        client: AsyncMongoClient[Doc] = AsyncMongoClient(server.uri)
        try:
            crm = await setup_db(client)
            events: list[Doc] = []
            ready = asyncio.Event()

            async def watch() -> None:
                async with await crm.outbox.watch(max_await_time_ms=200) as stream:
                    ready.set()
                    async for ev in stream:
                        events.append(ev)

            wtask = asyncio.create_task(watch())
            await asyncio.wait_for(ready.wait(), 30)

            # 1. commit: both docs visible, one change event per doc, same txn.
            await create_contact(crm, "sem", "c-commit")
            c = await crm.contacts.find_one({"tenant_id": "sem", "_id": "c-commit"})
            o = await crm.outbox.find_one({"aggregate_id": "c-commit"})
            checks.append(("commit: contact + outbox visible", c is not None and o is not None, ""))

            # 2. isolation + abort: uncommitted writes invisible outside, gone after abort.
            async with client.start_session() as s:
                await s.start_transaction()
                await crm.contacts.insert_one(contact_doc("sem", "c-abort"), session=s)
                await crm.outbox.insert_one(outbox_doc("sem", "c-abort"), session=s)
                inside = await crm.contacts.find_one({"_id": "c-abort"}, session=s)
                outside = await crm.contacts.find_one({"_id": "c-abort"})
                await s.abort_transaction()
            after = await crm.contacts.count_documents({"_id": "c-abort"})
            after += await crm.outbox.count_documents({"aggregate_id": "c-abort"})
            checks.append(("read-own-writes inside txn", inside is not None, ""))
            checks.append(("uncommitted write invisible outside", outside is None, ""))
            checks.append(("abort discards both docs", after == 0, f"left={after}"))

            # 3. a duplicate key after an earlier write aborts the txn as a whole.
            async def dup_txn(s: AsyncClientSession) -> None:
                await crm.outbox.insert_one(outbox_doc("sem", "c-dup"), session=s)
                await crm.contacts.insert_one(contact_doc("sem", "c-commit"), session=s)

            err = ""
            try:
                async with client.start_session() as s:
                    await s.with_transaction(dup_txn)
            except Exception as exc:
                err = type(exc).__name__
            orphans = await crm.outbox.count_documents({"aggregate_id": "c-dup"})
            checks.append(("dup key aborts whole txn", bool(err) and orphans == 0, err))

            # 4. write-write conflict between two open transactions.
            async with client.start_session() as s1, client.start_session() as s2:
                await s1.start_transaction()
                await s2.start_transaction()
                await crm.contacts.update_one(
                    {"_id": "c-commit"}, {"$inc": {"version": 1}}, session=s1
                )
                conflict = ""
                try:
                    await crm.contacts.update_one(
                        {"_id": "c-commit"}, {"$inc": {"version": 1}}, session=s2
                    )
                except Exception as exc:
                    conflict = type(exc).__name__
                    labels = getattr(exc, "_error_labels", set()) or set()
                    conflict += " " + ",".join(sorted(labels))
                await s1.commit_transaction()
                with contextlib.suppress(Exception):
                    await s2.abort_transaction()
            checks.append(
                ("write conflict -> TransientTransactionError", "Transient" in conflict, conflict)
            )

            # 5. change stream: committed txn events only, with lsid/txnNumber.
            await asyncio.sleep(1.0)
            wtask.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await wtask
            ids = [e.get("fullDocument", {}).get("aggregate_id") for e in events]
            txn_tagged = all("txnNumber" in e and "lsid" in e for e in events)
            checks.append(
                (
                    "change stream: committed only (1 event)",
                    ids == ["c-commit"],
                    f"events={ids}",
                )
            )
            checks.append(("change event carries lsid+txnNumber", bool(events) and txn_tagged, ""))

            # 6. resume after the first event: nothing missed, nothing repeated.
            if events:
                await create_contact(crm, "sem", "c-after")
                stream = await crm.outbox.watch(
                    resume_after=events[0]["_id"], max_await_time_ms=500
                )
                nxt = await asyncio.wait_for(stream.try_next(), 10)
                while nxt is None:
                    nxt = await asyncio.wait_for(stream.try_next(), 10)
                await stream.close()
                got = nxt["fullDocument"]["aggregate_id"]
                checks.append(("resumeAfter token resumes", got == "c-after", got))
        finally:
            await client.close()
            server.stop()
    return checks


# --------------------------------------------------------------------------- profile


async def profile_py(spec: ServerSpec, workload: str, ops: int, conc: int, clock: str) -> None:
    import pstats

    with temp_storage("py-prof") as storage:
        out = storage.parent / "server.prof"
        server = Server(spec, storage, profile_out=out, profile_clock=clock)
        await server.start()
        client: AsyncMongoClient[Doc] = AsyncMongoClient(server.uri, maxPoolSize=64)
        try:
            crm = await setup_db(client)
            await warmup(crm, 50)
            if workload in ("get", "scan"):
                await wl_create(server, crm, conc, ops)
            fn: dict[str, Callable[[Server, Crm, int, int], Awaitable[Result]]] = {
                "create": wl_create,
                "get": wl_get,
                "scan": wl_scan,
                "cstream": wl_cstream,
            }
            n = max(10, ops // 20) if workload == "scan" else ops
            print_result(await fn[workload](server, crm, conc, n))
        finally:
            await client.close()
            await asyncio.sleep(1.0)  # let connection threads see EOF and store their stats
            server.stop()
        if not out.exists():
            print(f"no profile written, see {server.log_path}")
            return
        keep = Path(tempfile.gettempdir()) / f"secantus-py-{workload}-{clock}.prof"
        shutil.copy(out, keep)
        st = pstats.Stats(str(out))
        st.strip_dirs().sort_stats("tottime").print_stats(25)
        st.sort_stats("cumulative").print_stats(40)
        print(f"profile kept at {keep}")


# --------------------------------------------------------------------------- output


HEADER = (
    f"{'server':6} {'workload':12} {'conc':>4} {'ops':>6} {'ops/s':>9} {'p50 ms':>8} "
    f"{'p99 ms':>8} {'srv CPU%':>8} {'cli CPU%':>8}  note"
)


def print_result(r: Result) -> None:
    note = r.note + (f" errors={r.errors}" if r.errors else "")
    print(
        f"{r.server:6} {r.workload:12} {r.concurrency:>4} {r.ops:>6} {r.ops_per_s:>9.1f} "
        f"{r.p50_ms:>8.2f} {r.p99_ms:>8.2f} {r.server_cpu_pct:>8.0f} {r.client_cpu_pct:>8.0f}  "
        f"{note}",
        flush=True,
    )


def print_table(results: list[Result]) -> None:
    print("\n" + HEADER)
    print("-" * len(HEADER))
    for r in sorted(results, key=lambda r: (r.workload, r.concurrency, r.server)):
        print_result(r)


# --------------------------------------------------------------------------- main


def write_json(path: Path, payload: Doc) -> None:
    path.write_text(json.dumps(payload, indent=2))


async def amain(args: argparse.Namespace) -> int:
    specs = discover_servers(args.only, Path(args.py_bin), Path(args.rs_bin))
    if not specs:
        print("no server to benchmark")
        return 1
    for s in specs:
        print(f"{s.name}: {s.version}  ({' '.join(s.argv)})")
    if args.profile:
        py = [s for s in specs if s.name == "py"]
        if not py:
            print("--profile needs the Python server")
            return 1
        await profile_py(py[0], args.profile, args.ops, args.concurrency, args.profile_clock)
        return 0

    levels = sorted({1, args.concurrency})
    results: list[Result] = []
    durability: list[DurabilityResult] = []
    if not args.skip_bench:
        print("\n" + HEADER)
        for spec in specs:
            results += await bench_server(spec, args.ops, levels)
        print_table(results)
    semantics: dict[str, list[tuple[str, bool, str]]] = {}
    if not args.skip_semantics:
        print("\nsemantics (transactions + change streams):")
        for spec in specs:
            semantics[spec.name] = await semantics_check(spec)
            for label, ok, detail in semantics[spec.name]:
                print(f"  {spec.name:3} {'PASS' if ok else 'FAIL'}  {label}  {detail}", flush=True)
    if not args.skip_durability:
        print("\ndurability (acked create-transactions, then kill -9, restart, count):")
        for spec in specs:
            for mode in DURABILITY_MODES:
                for _ in range(args.durability_trials):
                    d = await durability_check(spec, mode)
                    durability.append(d)
                    print(
                        f"  {d.server:3} {d.mode:15} acked={d.acked:4} "
                        f"contacts={d.contacts_found:4} outbox={d.outbox_found:4} "
                        f"restart={d.restart_s:.2f}s {'OK' if d.ok else 'LOST WRITES'}",
                        flush=True,
                    )
    if args.json:
        payload = {
            "servers": [asdict(s) for s in specs],
            "results": [asdict(r) for r in results],
            "durability": [asdict(d) for d in durability],
            "semantics": semantics,
            "args": vars(args),
        }
        write_json(Path(args.json), payload)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ops", type=int, default=2000, help="ops per workload and level")
    ap.add_argument("--concurrency", type=int, default=16, help="high concurrency level")
    ap.add_argument("--only", choices=["py", "rs"], help="benchmark one build only")
    ap.add_argument("--py-bin", default=str(DEFAULT_PY_BIN))
    ap.add_argument("--rs-bin", default=str(DEFAULT_RS_BIN))
    ap.add_argument("--skip-bench", action="store_true", help="durability check only")
    ap.add_argument("--skip-durability", action="store_true")
    ap.add_argument("--skip-semantics", action="store_true")
    ap.add_argument("--durability-trials", type=int, default=1)
    ap.add_argument(
        "--profile",
        choices=["create", "get", "scan", "cstream"],
        help="profile the Python server (thread-aware cProfile) on one workload",
    )
    ap.add_argument(
        "--profile-clock",
        choices=["cpu", "wall"],
        default="cpu",
        help="cProfile timer: per-thread CPU time (default) or wall clock",
    )
    ap.add_argument("--json", help="also write the results as JSON to this path")
    args = ap.parse_args()
    try:
        return asyncio.run(amain(args))
    finally:
        _kill_all_live()


if __name__ == "__main__":
    raise SystemExit(main())
