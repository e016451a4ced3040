"""A minimal service on the shared runner, for the graceful-shutdown test.

``test.Sleeper/Sleep`` takes a number of seconds (as raw bytes) and answers after sleeping them.
Run: ``python sleeper_service.py`` with ``GRPC_LISTEN_ADDRESS`` set.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc

from crm_platform.server import ServiceParts, run
from crm_platform.settings import ServiceSettings


async def _sleep(request: bytes, context: Any) -> bytes:
    await asyncio.sleep(float(request.decode()))
    return b"done"


def _register(server: grpc.aio.Server) -> None:
    handler = grpc.method_handlers_generic_handler(
        "test.Sleeper", {"Sleep": grpc.unary_unary_rpc_method_handler(_sleep)}
    )
    server.add_generic_rpc_handlers((handler,))


async def _bootstrap(settings: ServiceSettings) -> ServiceParts:
    return ServiceParts(register=[_register], service_names=["test.Sleeper"])


if __name__ == "__main__":
    run(
        ServiceSettings,
        _bootstrap,
        service_name="sleeper",
        mongodb_uri="mongodb://127.0.0.1:1",
        kafka_bootstrap_servers="127.0.0.1:1",
    )
