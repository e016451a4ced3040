"""``crm-dev`` (also ``python -m crm_devstack``): run the local stack.

* ``up``      start Kafka, SecantusDB and the services in the background
* ``down``    stop them
* ``status``  show what runs where and whether it is healthy
* ``run``     start everything in the foreground until Ctrl-C (``--no-services``:
  infrastructure only). ``--demo``: a simulated company lives ``--days`` days (default 3) at
  accelerated time through the gateway (the services run on an accelerated clock, see
  :mod:`crm_platform.clock`), then a KPI summary, then a gentle live trickle; with
  ``--no-simulate``: a contact and a ticket flowing to Kafka and the metrics service instead.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import timedelta

from crm_devstack.demo import (
    DEMO_TENANT,
    CompanyRun,
    plan_company_run,
    run_company_demo,
    run_demo,
)
from crm_devstack.errors import LaunchError
from crm_devstack.kafka import kafka_ready
from crm_devstack.procs import pid_alive, terminate, wait_until_gone
from crm_devstack.secantus import mongo_ready
from crm_devstack.services import grpc_health
from crm_devstack.stack import Stack, StackConfig
from crm_devstack.state import ProcessRecord, StackState, state_file

_INTERRUPTED = 130


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``crm-dev``; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="crm-dev",
        description="Run the CRM's local stack: Apache Kafka (KRaft), SecantusDB and the "
        "services, on 127.0.0.1. Data, logs and state live under $CRM_HOME (default .crm/).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("up", help="start the stack in the background")
    commands.add_parser("down", help="stop the stack")
    commands.add_parser("status", help="show what runs where and whether it is healthy")
    run = commands.add_parser("run", help="start the stack in the foreground until Ctrl-C")
    run.add_argument(
        "--demo",
        action="store_true",
        help="play a simulated company through the gateway, then show its KPIs",
    )
    run.add_argument(
        "--no-simulate",
        action="store_true",
        help="with --demo: no simulated company; show one contact and one ticket instead",
    )
    run.add_argument("--days", type=float, default=3.0, help="simulated days to play (default 3)")
    run.add_argument(
        "--history-minutes",
        type=float,
        default=2.0,
        help="wall-clock minutes the simulated days take (default 2)",
    )
    run.add_argument("--seed", type=int, default=7, help="the simulated company's seed")
    run.add_argument("--no-services", action="store_true", help="only Kafka and SecantusDB")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    handlers: dict[str, Callable[[argparse.Namespace], Awaitable[int]]] = {
        "up": _up,
        "down": _down,
        "status": _status,
        "run": _run,
    }
    try:
        return asyncio.run(_interruptible(handlers[args.command](args)))
    except LaunchError as exc:
        print(f"crm-dev: {exc}", file=sys.stderr)
        return 1


async def _interruptible(command: Awaitable[int]) -> int:
    """Run ``command``; the first SIGINT/SIGTERM cancels it (so it can clean up), later
    ones are ignored while it does."""
    task = asyncio.current_task()
    assert task is not None
    with _cancel_on_signals(task):
        try:
            return await command
        except asyncio.CancelledError:
            print("crm-dev: interrupted", file=sys.stderr)
            return _INTERRUPTED


@contextlib.contextmanager
def _cancel_on_signals(task: asyncio.Task[int]) -> Iterator[None]:
    loop = asyncio.get_running_loop()

    def on_signal(name: str) -> None:
        if task.cancelling():
            print(f"crm-dev: {name} again; still stopping, please wait", file=sys.stderr)
        else:
            print(f"\ncrm-dev: {name}: stopping", file=sys.stderr)
            task.cancel()

    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, on_signal, sig.name)
    try:
        yield
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


def _current_state(config: StackConfig) -> StackState | None:
    """The state of the running stack; a stale state file (nothing alive) is removed."""
    path = state_file(config.run_dir)
    state = StackState.load(path)
    if state is None:
        return None
    if state.launcher_alive() or any(record.alive() for record in state.processes):
        return state
    path.unlink(missing_ok=True)
    return None


def _refuse_if_running(config: StackConfig) -> None:
    state = _current_state(config)
    if state is not None:
        raise LaunchError(
            f"the local stack is already running (crm-dev {state.mode}, since {state.started}); "
            "see `make status`, stop it with `make down`"
        )


def _print_endpoints(stack: Stack, seconds: float, tenant: str = DEMO_TENANT) -> None:
    """What runs where; with the gateway, where the CRM's API and dashboard are, with
    development tokens of ``tenant``."""
    print(f"local stack ready in {seconds:.1f} s:")
    for name, address in stack.endpoints():
        print(f"  {name:<12} {address}")
    print(f"  {'logs':<12} {stack.config.logs_dir}")
    gateway = stack.gateway
    if gateway is None:
        return
    admin = stack.credentials.token(tenant, "admin", "dev-admin")
    analyst = stack.credentials.token(tenant, "analyst", "dev-analyst")
    print(f"the CRM's API (tenant {tenant}; development tokens, valid 8 h):")
    print(f"  {'gRPC':<12} {gateway.address}  (crm.gateway.v1, metadata authorization: Bearer …)")
    if gateway.http_url:
        print(f"  {'JSON/HTTP':<12} {gateway.http_url}")
        print(f"  {'OpenAPI':<12} {gateway.http_url}/openapi.json")
        print(f"  {'dashboard':<12} {gateway.http_url}/dashboard#token={analyst}")
    print(f"  {'admin token':<12} {admin}")


async def _up(_: argparse.Namespace) -> int:
    config = StackConfig.from_env()
    _refuse_if_running(config)
    stack = Stack(config, detach=True)
    began = time.monotonic()
    await stack.start()
    StackState.of(stack, "up").save(state_file(config.run_dir))
    _print_endpoints(stack, time.monotonic() - began)
    print("stop it with `make down` (crm-dev down)")
    return 0


async def _run(args: argparse.Namespace) -> int:
    config = StackConfig.from_env()
    _refuse_if_running(config)
    company: CompanyRun | None = None
    if args.demo and not args.no_simulate and not args.no_services:
        company = plan_company_run(
            days=args.days, wall=timedelta(minutes=args.history_minutes), seed=args.seed
        )
    stack = Stack(
        config,
        services=[] if args.no_services else None,
        service_env=company.service_env if company is not None else None,
    )
    path = state_file(config.run_dir)
    began = time.monotonic()
    try:
        await stack.start()
        StackState.of(stack, "run").save(path)
        _print_endpoints(
            stack, time.monotonic() - began, company.tenant if company else DEMO_TENANT
        )
        if company is not None:
            await run_company_demo(stack, company)
        elif args.demo:
            await run_demo(stack)
        print("running; press Ctrl-C to stop")
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        pass  # Ctrl-C or SIGTERM: the normal way to end `run`
    finally:
        await stack.stop()
        path.unlink(missing_ok=True)
        print("local stack stopped")
    return 0


async def _down(_: argparse.Namespace) -> int:
    config = StackConfig.from_env()
    state = _current_state(config)
    if state is None:
        print("the local stack is not running")
        return 0
    if state.mode == "run" and state.launcher_alive():
        # The foreground launcher stops its children itself, in order.
        print(f"asking the crm-dev run launcher (pid {state.launcher_pid}) to stop")
        await terminate(state.launcher_pid, state.launcher_alive, grace=120.0, group=False)
    else:
        services = [r for r in state.processes if r.kind == "service"]
        infrastructure = [r for r in state.processes if r.kind != "service"]
        await asyncio.gather(*(_stop_record(r, grace=40.0) for r in services))
        await asyncio.gather(*(_stop_record(r, grace=30.0) for r in infrastructure))
    state_file(config.run_dir).unlink(missing_ok=True)
    print("local stack stopped")
    return 0


async def _stop_record(record: ProcessRecord, grace: float) -> None:
    if record.alive():
        began = time.monotonic()
        await terminate(record.pid, record.alive, grace)
        # A stopped child of no one is reaped by init; give it a moment to disappear.
        await wait_until_gone(lambda: pid_alive(record.pid), 5.0)
        print(f"  stopped {record.name} (pid {record.pid}) in {time.monotonic() - began:.1f} s")


async def _status(_: argparse.Namespace) -> int:
    config = StackConfig.from_env()
    state = _current_state(config)
    if state is None:
        print("the local stack is not running (start it with `make up` or `make run`)")
        return 0
    print(f"local stack (crm-dev {state.mode}, since {state.started}):")
    healths = await asyncio.gather(*(_health(record) for record in state.processes))
    for record, health in zip(state.processes, healths, strict=True):
        pid = f"pid {record.pid}" if record.alive() else "not running"
        print(f"  {record.name:<10} {health:<12} {pid:<12} {record.address}")
        print(f"  {'':<10} log: {record.log}")
    return 0 if all(health == "SERVING" for health in healths) else 1


async def _health(record: ProcessRecord) -> str:
    """``SERVING`` if the process answers as it should, otherwise a word saying why not."""
    if not record.alive():
        return "DOWN"
    if record.kind == "service":
        return await grpc_health(record.address)
    ready = kafka_ready if record.kind == "kafka" else mongo_ready
    return "SERVING" if await ready(record.address) else "NOT_SERVING"
