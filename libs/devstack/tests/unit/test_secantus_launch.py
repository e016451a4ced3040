"""SecantusServer reports a server that cannot start, with its output."""

from __future__ import annotations

from pathlib import Path

import pytest

from crm_devstack.errors import LaunchError
from crm_devstack.procs import free_ports
from crm_devstack.secantus import SecantusServer


async def test_server_that_exits_is_reported_with_its_output(tmp_path: Path) -> None:
    fake = tmp_path / "secantusd-fake"
    fake.write_text('#!/bin/sh\necho "cannot open storage: $*"\nexit 4\n')
    fake.chmod(0o755)
    (port,) = free_ports(1)
    server = SecantusServer(tmp_path / "data", tmp_path / "logs", port=port, executable=str(fake))
    with pytest.raises(LaunchError, match=r"status 4(.|\n)*cannot open storage: --config"):
        await server.start()
    assert f"--port {port}" in (tmp_path / "logs" / "secantus.log").read_text()
    assert server.uri == f"mongodb://127.0.0.1:{port}/?directConnection=true"
