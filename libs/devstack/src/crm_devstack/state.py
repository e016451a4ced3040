"""The state file of a running local stack (``$CRM_HOME/run/stack.json``): what runs where,
so that ``crm-dev status`` and ``crm-dev down`` work from another process."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from crm_devstack.procs import ManagedProcess, pid_runs
from crm_devstack.stack import Stack

Kind = Literal["kafka", "secantus", "service"]
Mode = Literal["up", "run"]


@dataclass(frozen=True)
class ProcessRecord:
    """One process of the stack."""

    name: str
    kind: Kind
    pid: int
    argv: list[str]
    address: str
    log: str

    def alive(self) -> bool:
        """True if the process still runs (and the pid was not reused by another program)."""
        return pid_runs(self.pid, self.argv)


@dataclass(frozen=True)
class StackState:
    """A running stack: who started it, how, and its processes in start order."""

    mode: Mode
    """``up``: detached, stopped by ``down``; ``run``: the launcher is in the foreground."""
    launcher_pid: int
    launcher_argv: list[str]
    started: str
    processes: list[ProcessRecord]

    @classmethod
    def of(cls, stack: Stack, mode: Mode) -> StackState:
        """The state of a started ``stack``, launched by this process."""
        records = [
            _record(stack.kafka, "kafka", stack.kafka.bootstrap_servers),
            _record(stack.secantus, "secantus", stack.secantus.uri),
            *(_record(s, "service", s.address) for s in stack.services.values()),
        ]
        argv = Path("/proc/self/cmdline").read_bytes().decode().split("\0")
        return cls(
            mode=mode,
            launcher_pid=os.getpid(),
            launcher_argv=[arg for arg in argv if arg],
            started=time.strftime("%Y-%m-%d %H:%M:%S"),
            processes=records,
        )

    def launcher_alive(self) -> bool:
        """True if the launcher of a ``run`` stack is still there."""
        return pid_runs(self.launcher_pid, self.launcher_argv)

    def save(self, path: Path) -> None:
        """Write the state file (atomically)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        draft.write_text(json.dumps(asdict(self), indent=2) + "\n")
        draft.replace(path)

    @classmethod
    def load(cls, path: Path) -> StackState | None:
        """Read the state file; None if there is none."""
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        processes = [ProcessRecord(**record) for record in data.pop("processes")]
        return cls(processes=processes, **data)


def _record(process: ManagedProcess, kind: Kind, address: str) -> ProcessRecord:
    return ProcessRecord(
        name=process.name,
        kind=kind,
        pid=process.pid or 0,
        argv=list(process.argv),
        address=address,
        log=str(process.log_files()[-1]),
    )


def state_file(run_dir: Path) -> Path:
    """Where the state of the stack whose run folder is ``run_dir`` is kept."""
    return run_dir / "stack.json"
