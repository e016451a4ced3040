"""SIGTERM drains in-flight calls: the shared runner's shutdown sequence, in a real process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from crm_devstack.procs import free_ports

HERE = Path(__file__).parent
TENANT = (("x-tenant-id", "acme"), ("x-actor-id", "alice"))


async def _wait_serving(stub: health_pb2_grpc.HealthStub) -> None:
    for _ in range(100):
        try:
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.aio.AioRpcError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError("service did not become SERVING")


async def test_sigterm_drains_an_in_flight_call_then_exits_cleanly() -> None:
    (port,) = free_ports(1)
    env = {
        **os.environ,
        "GRPC_LISTEN_ADDRESS": f"127.0.0.1:{port}",
        "SHUTDOWN_GRACE_SECONDS": "10",
        "SHUTDOWN_DELAY_SECONDS": "1",
    }
    proc = subprocess.Popen([sys.executable, str(HERE / "sleeper_service.py")], env=env)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            await _wait_serving(health)
            sleep = channel.unary_unary("/test.Sleeper/Sleep")  # type: ignore[call-arg]  # raw bytes
            in_flight = asyncio.ensure_future(sleep(b"1.5", metadata=TENANT, timeout=10))
            await asyncio.sleep(0.3)  # the call is being served
            proc.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.2)
            status = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
            assert status.status == health_pb2.HealthCheckResponse.NOT_SERVING
            assert await in_flight == b"done"
            # After the delay the listener closes: new calls are refused, the process exits.
            await asyncio.sleep(1.5)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await sleep(b"0", metadata=TENANT, timeout=2)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert await asyncio.to_thread(proc.wait, 15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
