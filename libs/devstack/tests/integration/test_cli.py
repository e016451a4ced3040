"""``crm-dev up``, ``status`` and ``down`` on a stack of its own (own $CRM_HOME and ports)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from crm_devstack.paths import crm_home
from crm_devstack.procs import free_ports, pid_alive
from crm_devstack.state import StackState, state_file

pytestmark = pytest.mark.integration


def _crm_dev(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crm_devstack", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_up_status_down(tmp_path: Path) -> None:
    kafka, controller, mongo, contacts, servicedesk, sales, metrics, gateway, http = free_ports(9)
    home = tmp_path / "crm"
    # Reuse the fetched jars (and the class-data archive) instead of fetching them again.
    (crm_home() / "kafka").mkdir(parents=True, exist_ok=True)
    home.mkdir()
    (home / "kafka").symlink_to(crm_home() / "kafka")
    env = {
        **os.environ,
        "CRM_HOME": str(home),
        "CRM_KAFKA_PORT": str(kafka),
        "CRM_KAFKA_CONTROLLER_PORT": str(controller),
        "CRM_MONGODB_PORT": str(mongo),
        "CRM_CONTACTS_PORT": str(contacts),
        "CRM_SERVICEDESK_PORT": str(servicedesk),
        "CRM_SALES_PORT": str(sales),
        "CRM_METRICS_PORT": str(metrics),
        "CRM_GATEWAY_PORT": str(gateway),
        "CRM_GATEWAY_HTTP_PORT": str(http),
    }
    up = _crm_dev(env, "up")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert f"127.0.0.1:{kafka}" in up.stdout
        assert f"127.0.0.1:{contacts}" in up.stdout
        assert f"127.0.0.1:{servicedesk}" in up.stdout
        assert f"127.0.0.1:{sales}" in up.stdout
        assert f"127.0.0.1:{metrics}" in up.stdout
        assert f"127.0.0.1:{gateway}" in up.stdout
        assert f"http://127.0.0.1:{http}" in up.stdout
        state = StackState.load(state_file(home / "run"))
        assert state is not None
        assert [p.name for p in state.processes] == [
            "kafka",
            "secantus",
            "contacts",
            "servicedesk",
            "sales",
            "metrics",
            "gateway",
        ]

        again = _crm_dev(env, "up")
        assert again.returncode == 1
        assert "already running" in again.stderr

        status = _crm_dev(env, "status")
        assert status.returncode == 0, status.stdout + status.stderr
        assert status.stdout.count("SERVING") == 7
    finally:
        down = _crm_dev(env, "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert not any(pid_alive(p.pid) for p in state.processes)
    assert "not running" in _crm_dev(env, "status").stdout
    assert (home / "logs" / "kafka.log").is_file()
