"""Child processes with a log file, a readiness wait and a graceful stop; ports on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any

from crm_devstack.errors import LaunchError

HOST = "127.0.0.1"
"""Everything the launcher starts binds to this address only."""

_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True)  # the C library Python itself is linked with
_POLL_SECONDS = 0.1
_SETPRIV = shutil.which("setpriv")  # util-linux, on every Debian system


def _terminate_with_parent() -> None:
    """Run in the child between fork and exec: get SIGTERM when the launcher's thread dies.
    Only where ``setpriv`` is missing (see :meth:`ManagedProcess._spawn`)."""
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def with_parent_death_signal(argv: Sequence[str]) -> tuple[list[str], Callable[[], None] | None]:
    """The command line and ``preexec_fn`` that make a child get SIGTERM when the launcher's
    thread dies.

    ``setpriv --pdeathsig`` sets the signal and then executes the command (it survives the
    exec), so the launcher needs no ``preexec_fn``: a ``preexec_fn`` forces a real ``fork()``
    and runs Python in the child, and ``fork()`` runs the ``pthread_atfork`` handlers of every
    library loaded — gRPC's among them, which in a launcher with live gRPC threads (the tests,
    the demo) print "Other threads are currently calling into gRPC, skipping fork() handlers"
    and can leave the core's epoll state broken ("epoll_wait error: Bad file descriptor",
    SIGABRT). Without ``preexec_fn`` the child is started with ``vfork()``, which runs no
    handlers and no Python.
    """
    if _SETPRIV is None:
        return list(argv), _terminate_with_parent
    return [_SETPRIV, "--pdeathsig", "TERM", "--", *argv], None


class ManagedProcess:
    """One child process of the launcher: output appended to a log file, started in its own
    session (so a Ctrl-C in the terminal reaches only the launcher, which then stops the
    children in order), stopped with SIGTERM and, after a grace period, SIGKILL.

    Unless ``detach`` is set the child also gets SIGTERM if the launcher dies without
    cleaning up (Linux ``PR_SET_PDEATHSIG``; it follows the *thread* that started the child,
    so start children from the event loop's thread, not from a worker thread).
    """

    def __init__(
        self, name: str, log_path: Path, *, detach: bool = False, stop_grace: float = 30.0
    ) -> None:
        self.name = name
        self.log_path = log_path
        self.detach = detach
        self.stop_grace = stop_grace
        self._proc: subprocess.Popen[bytes] | None = None
        self._argv: tuple[str, ...] = ()

    @property
    def pid(self) -> int | None:
        """The process id of the last start, or None if never started."""
        return self._proc.pid if self._proc else None

    @property
    def argv(self) -> tuple[str, ...]:
        """The command line of the last start."""
        return self._argv

    @property
    def running(self) -> bool:
        """True while the process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        """The exit status once it has ended (negative: killed by that signal), else None."""
        return self._proc.poll() if self._proc else None

    def _refuse_if_running(self) -> None:
        if self.running:
            raise LaunchError(f"{self.name} is already running (pid {self.pid})")

    def _spawn(
        self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> None:
        """Start the process; its stdout and stderr are appended to :attr:`log_path`."""
        self._refuse_if_running()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._argv = tuple(argv)
        with self.log_path.open("ab") as log:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            log.write(f"--- {stamp} crm-dev starts {self.name}: {' '.join(argv)}\n".encode())
            log.flush()
            command, preexec = (list(argv), None) if self.detach else with_parent_death_signal(argv)
            self._proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=None if env is None else dict(env),
                cwd=cwd,
                start_new_session=True,
                preexec_fn=preexec,
            )

    async def _wait_ready(self, probe: Callable[[], Awaitable[bool]], timeout: float) -> None:
        """Poll ``probe`` until it answers True. If the process exits first or the time runs
        out, stop it and raise :class:`LaunchError` with the tail of its log."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            code = self.returncode
            if code is not None:
                raise LaunchError(
                    f"{self.name} exited with status {code} while starting{self.log_tail()}"
                )
            remaining = deadline - loop.time()
            with contextlib.suppress(TimeoutError):
                if await asyncio.wait_for(probe(), timeout=max(1.0, min(5.0, remaining))):
                    return
            if loop.time() >= deadline:
                await self.stop()
                raise LaunchError(
                    f"{self.name} was not ready within {timeout:.0f} s{self.log_tail()}"
                )
            await asyncio.sleep(_POLL_SECONDS)

    def log_files(self) -> list[Path]:
        """The files worth showing when something goes wrong, most telling last."""
        return [self.log_path]

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the log files, formatted to append to an error message."""
        parts = []
        for path in self.log_files():
            text = tail_lines(path, lines)
            if text:
                parts.append(f"\n--- last lines of {path} ---\n{text}")
        return "".join(parts) or f"\n(no output in {', '.join(map(str, self.log_files()))})"

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` to the process's group (no-op if it is not running)."""
        if self._proc is not None and self.running:
            signal_group(self._proc.pid, sig)

    async def wait_exit(self, timeout: float) -> int:
        """Wait until the process has ended and return its exit status;
        raise TimeoutError if it is still running after ``timeout`` seconds."""
        if self._proc is None:
            raise LaunchError(f"{self.name} was never started")
        if not await wait_until_gone(lambda: self.running, timeout):
            raise TimeoutError(f"{self.name} still running after {timeout} s")
        return self._proc.wait()

    async def stop(self) -> None:
        """Graceful stop: SIGTERM, wait up to ``stop_grace`` seconds, then SIGKILL."""
        if self._proc is not None and self.running:
            await terminate(self._proc.pid, lambda: self.running, self.stop_grace)

    async def kill(self) -> None:
        """Hard stop (SIGKILL, as in a crash), then wait until the process is gone."""
        if self._proc is not None and self.running:
            await terminate(self._proc.pid, lambda: self.running, 0.0)


async def start_together(*steps: Coroutine[Any, Any, None]) -> None:
    """Run start-up steps concurrently; if one fails, cancel the others and raise one
    :class:`LaunchError` that carries every failure's message."""
    try:
        async with asyncio.TaskGroup() as group:
            for step in steps:
                group.create_task(step)
    except BaseExceptionGroup as failed:
        if all(isinstance(exc, LaunchError) for exc in failed.exceptions):
            raise LaunchError("\n\n".join(map(str, failed.exceptions))) from None
        raise


def tail_lines(path: Path, lines: int) -> str:
    """The last ``lines`` lines of a text file ('' if it is missing or empty)."""
    try:
        with path.open("rb") as file:
            file.seek(0, os.SEEK_END)
            file.seek(max(0, file.tell() - 200 * lines))
            data = file.read()
    except FileNotFoundError:
        return ""
    return "\n".join(data.decode(errors="replace").splitlines()[-lines:])


def signal_group(pid: int, sig: int) -> None:
    """Signal the process group led by ``pid`` (every child here leads its own session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _signal_one(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


async def wait_until_gone(alive: Callable[[], bool], timeout: float) -> bool:
    """Poll ``alive`` until it says False; return False if it still says True after timeout."""
    deadline = time.monotonic() + timeout
    while alive():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(_POLL_SECONDS)
    return True


async def terminate(
    pid: int, alive: Callable[[], bool], grace: float, *, group: bool = True
) -> bool:
    """SIGTERM the process group of ``pid`` (``group=False``: only the process); SIGKILL it
    if it is still alive after ``grace`` seconds. Return True if it ended within the grace
    period."""
    send = signal_group if group else _signal_one
    if grace > 0:
        send(pid, signal.SIGTERM)
        if await wait_until_gone(alive, grace):
            return True
    send(pid, signal.SIGKILL)
    if not await wait_until_gone(alive, 10.0):
        raise LaunchError(f"process {pid} survived SIGKILL")
    return False


def pid_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie (for processes that are not our children)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def pid_runs(pid: int, argv: Sequence[str]) -> bool:
    """True if ``pid`` is alive and still runs ``argv`` (guards against reused pids).
    The program name is not compared: a script's interpreter shows in front of it."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (FileNotFoundError, ProcessLookupError):
        return False
    wanted = [arg.encode() for arg in argv[1:]]
    running = [arg for arg in cmdline if arg]
    return pid_alive(pid) and running[len(running) - len(wanted) :] == wanted


def free_ports(count: int) -> list[int]:
    """``count`` different TCP ports on 127.0.0.1 that are free right now."""
    with contextlib.ExitStack() as sockets:
        ports = []
        for _ in range(count):
            sock = sockets.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((HOST, 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def ensure_port_free(port: int, what: str) -> None:
    """Raise :class:`LaunchError` if something already listens on 127.0.0.1:``port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError as exc:
            raise LaunchError(
                f"port {port} for {what} is in use ({exc.strerror}): is the stack already "
                "running (`make status`, `make down`)? Otherwise choose another port "
                "(CRM_*_PORT environment variables)"
            ) from None


async def port_open(port: int, timeout: float = 1.0) -> bool:
    """True if a TCP connection to 127.0.0.1:``port`` succeeds."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), timeout)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True
