"""Sales benchmark: opportunity create and stage change, quote PDF rendering.

Starts its own stack (Kafka, SecantusDB, the contacts and sales services as real processes, as
``bench/servicedesk_bench.py`` does) on free ports in a temporary folder, drives the sales
service over gRPC on 127.0.0.1 from this process, prints the figures, and stops. Every loop is
bounded in count; nothing leaves the machine.

``opportunities``
    Closed loop: C callers create ``--creates`` opportunities (each an outbox event in the same
    transaction), then move each once to another open stage (``MoveOpportunityStage`` with
    ``expected_version``: read the version, check, write the stage history, the event):
    throughput, p50/p99 latency and the services' CPU per operation.
``pdf``
    A sent quote of 3 lines and one of 50: ``--renders`` sequential ``GetQuoteDocument`` calls
    each (the service reads the quote and its opportunity and renders the PDF with fpdf2 on
    every call), p50/p99; and the rendering alone (``crm_sales.quote_document.render_pdf`` in
    this process on the same quotes), p50/p99.

    .venv/bin/python bench/sales_bench.py [all|opportunities|pdf] [options]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import platform
import shutil
import statistics
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from crm.sales.v1 import sales_pb2 as pb
from crm.sales.v1 import sales_pb2_grpc
from crm_devstack.procs import free_ports
from crm_devstack.secantus import secantus_executable
from crm_devstack.stack import Stack, StackConfig
from crm_sales.domain.quote import Quote, QuoteLine, QuoteStatus, line_amounts, totals_of
from crm_sales.quote_document import render_pdf

SALES = "sales"
CONTACTS = "contacts"
DB = "secantus"
TENANT = f"bench-{uuid.uuid4().hex[:6]}"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: Sequence[float], p: float) -> float:
    """The ``p`` quantile (0..1) of sorted ``values`` (nearest rank below)."""
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(p * len(values)))]


def loadavg() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


OPS_HEADER = (
    "| workload | ops | errors | throughput | p50 ms | p99 ms | mean ms | sales CPU ms/op "
    "| database CPU ms/op |\n|---|---|---|---|---|---|---|---|---|"
)


@dataclass
class Recorder:
    """Latencies and error codes of one kind of call."""

    name: str
    latencies_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)

    async def call(self, call: Callable[[], Awaitable[Any]]) -> Any | None:
        started = time.perf_counter()
        try:
            result = await call()
        except grpc.aio.AioRpcError as exc:
            self.errors[exc.code().name] += 1
            return None
        self.latencies_ms.append((time.perf_counter() - started) * 1000)
        return result

    def row(self, seconds: float, cpu_s: dict[str, float]) -> str:
        lat = sorted(self.latencies_ms)
        count = len(lat) + sum(self.errors.values())
        errors = ", ".join(f"{n} {code}" for code, n in self.errors.most_common()) or "0"
        mean = statistics.fmean(lat) if lat else float("nan")

        def cpu(name: str) -> str:
            return f"{cpu_s[name] * 1000 / count:.2f}" if name in cpu_s and count else ""

        return (
            f"| {self.name} | {len(lat)} | {errors} | {len(lat) / seconds:,.0f}/s | "
            f"{pct(lat, 0.5):.1f} | {pct(lat, 0.99):.1f} | {mean:.1f} | {cpu(SALES)} | {cpu(DB)} |"
        )


def md(actor: str = "bench") -> tuple[tuple[str, str], ...]:
    return (("x-tenant-id", TENANT), ("x-actor-id", actor), ("x-actor-type", "agent"))


@dataclass
class Rig:
    stack: Stack
    pids: dict[str, int]
    sales: sales_pb2_grpc.SalesServiceAsyncStub

    def cpu(self) -> dict[str, float]:
        return {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def used(self, before: dict[str, float]) -> dict[str, float]:
        return {name: cpu_seconds(pid) - before[name] for name, pid in self.pids.items()}


@contextlib.asynccontextmanager
async def running_stack() -> AsyncIterator[Rig]:
    """Kafka, SecantusDB (``--sync-on-commit``), contacts and sales as processes."""
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
    stack = Stack(config, services=[CONTACTS, SALES])
    async with stack:
        sales_pid = stack.services[SALES].pid
        db_pid = stack.secantus.pid
        assert sales_pid is not None
        assert db_pid is not None
        async with grpc.aio.insecure_channel(stack.services[SALES].address) as channel:
            yield Rig(
                stack, {SALES: sales_pid, DB: db_pid}, sales_pb2_grpc.SalesServiceStub(channel)
            )
    shutil.rmtree(config.data_dir, ignore_errors=True)
    print(f"logs in {config.logs_dir}", flush=True)


async def in_parallel(count: int, concurrency: int, make: Callable[[int], Awaitable[Any]]) -> None:
    """``make(i)`` for i in range(count), at most ``concurrency`` at a time."""
    numbers = iter(range(count))

    async def worker() -> None:
        for i in numbers:
            await make(i)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def _stages() -> list[pb.Stage]:
    return [
        pb.Stage(id="qualify", name="Qualify", win_probability_percent=10, kind=pb.STAGE_KIND_OPEN),
        pb.Stage(
            id="proposal", name="Proposal", win_probability_percent=60, kind=pb.STAGE_KIND_OPEN
        ),
        pb.Stage(id="won", name="Won", win_probability_percent=100, kind=pb.STAGE_KIND_WON),
        pb.Stage(id="lost", name="Lost", win_probability_percent=0, kind=pb.STAGE_KIND_LOST),
    ]


async def bench_opportunities(rig: Rig, args: argparse.Namespace) -> list[str]:
    pipeline = (
        await rig.sales.CreatePipeline(
            pb.CreatePipelineRequest(pipeline=pb.Pipeline(name="Bench", stages=_stages())),
            metadata=md(),
            timeout=30,
        )
    ).pipeline
    created: list[tuple[str, int]] = []
    create = Recorder("CreateOpportunity")

    async def one_create(i: int) -> None:
        request = pb.CreateOpportunityRequest(
            opportunity=pb.Opportunity(
                name=f"Deal {i}",
                pipeline_id=pipeline.id,
                amount_minor=100_000 + i,
                currency="EUR",
                primary_contact_id=f"contact-{i % args.contacts}",
                account_id=f"org-{i % args.contacts}",
                owner_id=f"rep-{i % 7}",
            )
        )
        reply = await create.call(
            lambda: rig.sales.CreateOpportunity(request, metadata=md(), timeout=30)
        )
        if reply is not None:
            created.append((reply.opportunity.id, reply.opportunity.version))

    before = rig.cpu()
    started = time.perf_counter()
    await in_parallel(args.creates, args.concurrency, one_create)
    create_seconds = time.perf_counter() - started
    create_cpu = rig.used(before)

    move = Recorder("MoveOpportunityStage")

    async def one_move(i: int) -> None:
        opportunity_id, version = created[i]
        request = pb.MoveOpportunityStageRequest(
            id=opportunity_id, stage_id="proposal", expected_version=version
        )
        await move.call(lambda: rig.sales.MoveOpportunityStage(request, metadata=md(), timeout=30))

    before = rig.cpu()
    started = time.perf_counter()
    await in_parallel(len(created), args.concurrency, one_move)
    move_seconds = time.perf_counter() - started
    move_cpu = rig.used(before)
    return [
        f"opportunities: {args.creates} creates, then one stage change each, "
        f"{args.concurrency} concurrent callers",
        OPS_HEADER,
        create.row(create_seconds, create_cpu),
        move.row(move_seconds, move_cpu),
    ]


def _until(days: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(datetime.now(UTC) + timedelta(days=days))
    return stamp


async def _sent_quote(rig: Rig, lines: int) -> pb.Quote:
    pipeline = (
        await rig.sales.CreatePipeline(
            pb.CreatePipelineRequest(pipeline=pb.Pipeline(name="PDF", stages=_stages())),
            metadata=md(),
            timeout=30,
        )
    ).pipeline
    products = []
    for n in range(min(lines, 10)):
        products.append(
            (
                await rig.sales.CreateProduct(
                    pb.CreateProductRequest(
                        product=pb.Product(
                            sku=f"SKU-{uuid.uuid4().hex[:8]}",
                            name=f"Product number {n} with a longer name",
                            active=True,
                            prices=[pb.Price(currency="EUR", unit_price_minor=1234 + 100 * n)],
                        )
                    ),
                    metadata=md(),
                    timeout=30,
                )
            ).product
        )
    opportunity = (
        await rig.sales.CreateOpportunity(
            pb.CreateOpportunityRequest(
                opportunity=pb.Opportunity(
                    name=f"{lines}-line deal",
                    pipeline_id=pipeline.id,
                    amount_minor=1,
                    currency="EUR",
                )
            ),
            metadata=md(),
            timeout=30,
        )
    ).opportunity
    quote_lines = [
        pb.QuoteLine(
            product_id=products[n % len(products)].id,
            quantity=1 + n,
            discount_basis_points=(n % 4) * 250,
            tax_rate_basis_points=1900 if n % 3 else 700,
        )
        for n in range(lines)
    ]
    draft = (
        await rig.sales.CreateQuote(
            pb.CreateQuoteRequest(
                quote=pb.Quote(
                    opportunity_id=opportunity.id,
                    currency="EUR",
                    lines=quote_lines,
                    valid_until=_until(30),
                )
            ),
            metadata=md(),
            timeout=30,
        )
    ).quote
    sent: pb.Quote = (
        await rig.sales.SendQuote(pb.SendQuoteRequest(id=draft.id), metadata=md(), timeout=30)
    ).quote
    return sent


def _domain_quote(quote: pb.Quote) -> Quote:
    """The same quote as the service's domain object (for rendering in this process)."""
    lines = []
    for line in quote.lines:
        net, tax = line_amounts(
            line.quantity,
            line.unit_price_minor,
            line.discount_basis_points,
            line.tax_rate_basis_points,
        )
        lines.append(
            QuoteLine(
                line.product_id,
                line.sku,
                line.name,
                line.quantity,
                line.unit_price_minor,
                line.discount_basis_points,
                line.tax_rate_basis_points,
                net,
                tax,
            )
        )
    now = datetime.now(UTC)
    return Quote(
        id=quote.id,
        tenant_id=TENANT,
        opportunity_id=quote.opportunity_id,
        revision=quote.revision,
        currency=quote.currency,
        lines=tuple(lines),
        totals=totals_of(lines),
        valid_until=now + timedelta(days=30),
        status=QuoteStatus.SENT,
        reason="",
        send_time=now,
        close_time=None,
        event_key=quote.opportunity_id,
        version=quote.version,
        create_time=now,
        update_time=now,
    )


async def bench_pdf(rig: Rig, args: argparse.Namespace) -> list[str]:
    lines = [
        f"quote PDF: {args.renders} sequential GetQuoteDocument calls per quote, and as many "
        "renders in this process (render_pdf alone)",
        "| quote | PDF bytes | GetQuoteDocument p50 ms | p99 ms | render_pdf p50 ms | p99 ms |",
        "|---|---|---|---|---|---|",
    ]
    for size in (3, 50):
        quote = await _sent_quote(rig, size)
        record = Recorder(f"{size} lines")
        fetch = functools.partial(
            rig.sales.GetQuoteDocument,
            pb.GetQuoteDocumentRequest(id=quote.id),
            metadata=md(),
            timeout=30,
        )
        pdf_bytes = 0
        for _ in range(args.renders):
            reply = await record.call(fetch)
            if reply is not None:
                pdf_bytes = len(reply.content)
        domain = _domain_quote(quote)
        local: list[float] = []
        for _ in range(args.renders):
            started = time.perf_counter()
            render_pdf(domain, f"{size}-line deal")
            local.append((time.perf_counter() - started) * 1000)
        rpc = sorted(record.latencies_ms)
        local.sort()
        errors = f" ({dict(record.errors)})" if record.errors else ""
        lines.append(
            f"| {size} lines{errors} | {pdf_bytes:,} | {pct(rpc, 0.5):.1f} | "
            f"{pct(rpc, 0.99):.1f} | {pct(local, 0.5):.1f} | {pct(local, 0.99):.1f} |"
        )
    return lines


def header() -> list[str]:
    return [
        f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"machine: {platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"grpcio {grpc.__version__}",
        f"database: {secantus_executable()} (--sync-on-commit)",
        "sales: separate process (python -m crm_sales), contacts likewise; called directly",
        f"load average at the start: {loadavg()}",
    ]


async def main(args: argparse.Namespace) -> None:
    head = header()
    print("\n".join(head), flush=True)
    scenarios: list[tuple[str, Callable[[Rig, argparse.Namespace], Awaitable[list[str]]]]] = []
    if args.scenario in ("all", "opportunities"):
        scenarios.append(("opportunities", bench_opportunities))
    if args.scenario in ("all", "pdf"):
        scenarios.append(("pdf", bench_pdf))
    reports: list[list[str]] = []
    async with running_stack() as rig:
        for name, scenario in scenarios:
            print(f"\n== {name} (load average {loadavg()}) ==", flush=True)
            started = time.perf_counter()
            async with asyncio.timeout(args.max_seconds):
                lines = await scenario(rig, args)
            lines.append(f"({name}: {time.perf_counter() - started:.0f}s, load {loadavg()})")
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
    parser.add_argument(
        "scenario", nargs="?", default="all", choices=["all", "opportunities", "pdf"]
    )
    parser.add_argument("--creates", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--contacts", type=int, default=200, help="distinct contact keys")
    parser.add_argument("--renders", type=int, default=200, help="PDF renders per quote size")
    parser.add_argument(
        "--max-seconds", type=float, default=600.0, help="a scenario gives up after this long"
    )
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse()))
