"""ManagedProcess: log file, readiness wait, graceful and hard stop; port helpers."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import pytest

from crm_devstack.errors import LaunchError
from crm_devstack.procs import (
    HOST,
    ManagedProcess,
    ensure_port_free,
    free_ports,
    pid_alive,
    pid_runs,
    tail_lines,
)

# Says hello, then exits 0 on SIGTERM (or, with IGNORE, ignores it).
_CHILD = """
import signal, sys, time
if sys.argv[1] == "IGNORE":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
else:
    signal.signal(signal.SIGTERM, lambda *_: (print("bye", flush=True), sys.exit(0)))
print("hello", flush=True)
time.sleep(60)
"""


class Child(ManagedProcess):
    """A small Python child, ready once it said hello."""

    def __init__(self, tmp_path: Path, *, mode: str = "TERM", stop_grace: float = 5.0) -> None:
        super().__init__("child", tmp_path / "child.log", stop_grace=stop_grace)
        self.mode = mode

    async def start(self, timeout: float = 10.0) -> None:
        self._spawn([sys.executable, "-c", _CHILD, self.mode])
        await self._wait_ready(self._said_hello, timeout)

    async def _said_hello(self) -> bool:
        return "hello" in self.log_path.read_text().splitlines()


async def test_start_and_graceful_stop(tmp_path: Path) -> None:
    child = Child(tmp_path)
    await child.start()
    assert child.running
    assert child.pid is not None
    assert pid_runs(child.pid, child.argv)
    await child.stop()
    assert not child.running
    assert child.returncode == 0
    assert tail_lines(child.log_path, 2).splitlines() == ["hello", "bye"]


async def test_stop_escalates_to_sigkill(tmp_path: Path) -> None:
    child = Child(tmp_path, mode="IGNORE", stop_grace=0.5)
    await child.start()
    await child.stop()
    assert child.returncode == -signal.SIGKILL


async def test_kill_and_wait_exit(tmp_path: Path) -> None:
    child = Child(tmp_path)
    await child.start()
    child.send_signal(signal.SIGTERM)
    assert await child.wait_exit(5.0) == 0
    await child.kill()  # already gone: nothing to do
    assert child.returncode == 0


async def test_start_again_appends_to_the_log(tmp_path: Path) -> None:
    child = Child(tmp_path)
    await child.start()
    await child.stop()
    await child.start()
    await child.kill()
    assert child.returncode == -signal.SIGKILL
    assert child.log_path.read_text().count("crm-dev starts child") == 2


async def test_not_ready_in_time_stops_it_and_shows_the_log(tmp_path: Path) -> None:
    child = Child(tmp_path)

    async def never() -> bool:
        return False

    child._spawn([sys.executable, "-c", _CHILD, "TERM"])
    with pytest.raises(LaunchError, match=r"child was not ready within 1 s(.|\n)*hello"):
        await child._wait_ready(never, 1.0)
    assert not child.running


async def test_exit_during_start_up_is_reported_with_the_log(tmp_path: Path) -> None:
    child = Child(tmp_path)
    child._spawn([sys.executable, "-c", "import sys; print('no config'); sys.exit(3)"])
    with pytest.raises(LaunchError, match=r"exited with status 3 while starting(.|\n)*no config"):
        await child._wait_ready(child._said_hello, 10.0)


def test_free_ports_are_distinct_and_free() -> None:
    ports = free_ports(5)
    assert len(set(ports)) == 5
    for port in ports:
        ensure_port_free(port, "test")


def test_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(LaunchError, match=f"port {port} for Kafka is in use"):
            ensure_port_free(port, "Kafka")


def test_tail_of_a_missing_file_is_empty(tmp_path: Path) -> None:
    assert tail_lines(tmp_path / "missing.log", 10) == ""


# A launcher with gRPC threads busy (a server answering a client in a loop, as in the tests and
# the demo) that starts children, then exits without stopping the last one.
_GRPC_LAUNCHER = """
import asyncio, sys, threading
from concurrent import futures
from pathlib import Path
import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from crm_devstack.procs import ManagedProcess

server = grpc.server(futures.ThreadPoolExecutor(4))
health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
port = server.add_insecure_port("127.0.0.1:0")
server.start()
stop = threading.Event()

def busy():
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        check = health_pb2_grpc.HealthStub(channel).Check
        while not stop.is_set():
            check(health_pb2.HealthCheckRequest())

threads = [threading.Thread(target=busy) for _ in range(3)]
for thread in threads:
    thread.start()

async def main():
    folder = Path(sys.argv[1])
    for n in range(int(sys.argv[2])):
        child = ManagedProcess(f"c{n}", folder / f"c{n}.log", stop_grace=5)
        child._spawn([sys.executable, "-c", "import time; time.sleep(60)"])
        if n + 1 < int(sys.argv[2]):
            await child.stop()
    (folder / "last.pid").write_text(str(child.pid))

asyncio.run(main())
stop.set()
for thread in threads:
    thread.join()
server.stop(0)
"""


async def test_children_of_a_launcher_with_live_grpc_threads_run_no_fork_handlers(
    tmp_path: Path,
) -> None:
    """Starting a child must not fork() the launcher: gRPC's fork handlers would run while its
    threads are busy (the "skipping fork() handlers" warning, and once a SIGABRT in epoll)."""
    launcher = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _GRPC_LAUNCHER,
        str(tmp_path),
        "20",
        env={k: v for k, v in os.environ.items() if k != "GRPC_ENABLE_FORK_SUPPORT"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(launcher.communicate(), 120)
    finally:
        if launcher.returncode is None:  # hung (a fork in the middle of gRPC's work): end it
            launcher.kill()
            await launcher.wait()
    text = output.decode()
    assert launcher.returncode == 0, text[-3000:]
    assert "fork" not in text.lower(), text[-3000:]
    # The launcher is gone without stopping its last child: the child got SIGTERM with it.
    last = int((tmp_path / "last.pid").read_text())
    async with asyncio.timeout(30):
        while pid_alive(last):
            await asyncio.sleep(0.05)
