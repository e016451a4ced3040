"""SecantusDB, the embedded MongoDB-wire-protocol server, as a separate process.

SecantusDB is GPL-2.0-only: the project only runs its server through the command line (the
Rust build ``secantusd-rs`` that ``make setup`` links into ``$CRM_HOME/tools/bin``, else
``secantusd-py`` from the venv; see :func:`secantus_executable`) and talks to it over the MongoDB
protocol; it never imports it.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from crm_devstack.errors import LaunchError
from crm_devstack.paths import crm_home
from crm_devstack.procs import HOST, ManagedProcess, ensure_port_free, port_open

_CONFIG = """\
# Written by crm-dev. Passing this file with --config stops secantusd from picking up a
# ./secantusd.toml or ~/.secantus/secantusd.toml; the launcher's flags set everything else.
"""


def secantus_executable() -> str:
    """Which SecantusDB server to run.

    ``$CRM_SECANTUS_BIN`` if set; else the Rust server ``secantusd-rs`` that ``make setup``
    builds and links into ``$CRM_HOME/tools/bin`` (several times faster, see
    docs/benchmarks.md) unless ``CRM_SECANTUS=py``; else ``secantusd-py`` from the venv.
    """
    configured = os.environ.get("CRM_SECANTUS_BIN")
    if configured:
        return configured
    rust = crm_home() / "tools" / "bin" / "secantusd-rs"
    if os.environ.get("CRM_SECANTUS", "auto") != "py" and rust.exists():
        return str(rust)
    beside = Path(sys.executable).parent / "secantusd-py"
    if beside.is_file():
        return str(beside)
    found = shutil.which("secantusd-py")
    if found is None:
        raise LaunchError("secantusd-py not found: run `make setup` (or set CRM_SECANTUS_BIN)")
    return found


class SecantusServer(ManagedProcess):
    """A SecantusDB server on 127.0.0.1 with its WiredTiger files in ``data_dir/wiredtiger``.

    Durable by default: ``sync_on_commit`` makes the server fsync its log on every commit.
    Without it an acknowledged write can be lost even when only the server process dies
    (measured: SIGKILL right after 1,000 acknowledged writes lost the last 10), which would
    break the transactional outbox's promise; it costs throughput (about 750 -> 200 small
    transactions/s on this machine), so benchmarks may turn it off.
    """

    def __init__(
        self,
        data_dir: Path,
        log_dir: Path,
        *,
        port: int = 27117,
        sync_on_commit: bool = True,
        cache_size: str = "256M",
        executable: str | None = None,
        detach: bool = False,
    ) -> None:
        super().__init__("secantus", log_dir / "secantus.log", detach=detach, stop_grace=30.0)
        self.data_dir = data_dir
        self.port = port
        self.sync_on_commit = sync_on_commit
        self.cache_size = cache_size
        self.executable = executable

    @property
    def uri(self) -> str:
        """The connection string to hand to services (``MONGODB_URI``)."""
        return f"mongodb://{HOST}:{self.port}/?directConnection=true"

    async def start(self, timeout: float = 60.0) -> None:
        """Start the server and wait until a ``ping`` succeeds; raise :class:`LaunchError`
        (with the log's tail) if it does not come up."""
        self._refuse_if_running()
        ensure_port_free(self.port, "SecantusDB")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "secantusd.toml"
        config.write_text(_CONFIG)
        argv = [
            self.executable or secantus_executable(),
            "--config",
            str(config),
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--storage-path",
            str(self.data_dir / "wiredtiger"),
            "--cache-size",
            self.cache_size,
        ]
        if self.sync_on_commit:
            argv.append("--sync-on-commit")
        self._spawn(argv, cwd=self.data_dir)
        await self._wait_ready(self._ready, timeout)

    async def _ready(self) -> bool:
        return await mongo_ready(self.uri, self.port)


async def mongo_ready(uri: str, port: int | None = None) -> bool:
    """True if a ``ping`` through ``uri`` succeeds (``port``: check the socket first)."""
    if port is not None and not await port_open(port):
        return False
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
        uri, serverSelectionTimeoutMS=1000, connectTimeoutMS=1000
    )
    try:
        await client.admin.command("ping")
        return True
    except PyMongoError:
        return False
    finally:
        await client.close()
