"""The whole platform as real processes for gateway tests: contacts, service desk, metrics, sales
and the gateway in front of them, on the test session's Kafka and database."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from crm.gateway.v1 import gateway_pb2_grpc
from crm.gateway.v1 import sales_pb2_grpc as gateway_sales_pb2_grpc
from crm_devstack.credentials import DevCredentials
from crm_devstack.pytest_plugin import Infra
from crm_devstack.services import ServiceProcess
from crm_platform.credentials import add_api_key, new_api_key

# API keys made before the gateway starts (it loads its keys file at start-up).
API_KEYS = {
    "acme-integration": ("acme", "integration", None),
    "globex-integration": ("globex", "integration", None),
    "acme-limited": ("acme", "integration", "5/minute"),
}


@dataclass
class GatewayStack:
    """The running platform and the means to call it."""

    services: dict[str, ServiceProcess]
    credentials: DevCredentials
    api_keys: dict[str, str]
    _channels: dict[str, grpc.aio.Channel] = field(default_factory=dict)

    @property
    def gateway(self) -> ServiceProcess:
        return self.services["gateway"]

    @property
    def http_url(self) -> str:
        return self.gateway.http_url

    @property
    def grpc_address(self) -> str:
        return self.gateway.address

    def token(self, tenant: str, role: str = "admin", subject: str = "alice") -> str:
        """A valid token of the local identity provider."""
        return self.credentials.token(tenant, role, subject)

    def channel(self) -> grpc.aio.Channel:
        """A channel to the gateway (kept open for the session)."""
        channel = self._channels.get(self.grpc_address)
        if channel is None:
            channel = self._channels[self.grpc_address] = grpc.aio.insecure_channel(
                self.grpc_address
            )
        return channel

    def stub(self, service: str) -> Any:
        """The (async) stub of a gateway service, e.g. ``stub("ContactsService")``."""
        for module in (gateway_pb2_grpc, gateway_sales_pb2_grpc):
            stub = getattr(module, f"{service}Stub", None)
            if stub is not None:
                return stub(self.channel())
        raise KeyError(f"the gateway has no service {service}")

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close(None)


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def start_gateway_stack(
    infra: Infra, folder: Path, every_env: Mapping[str, str] | None = None, **gateway_env: str
) -> GatewayStack:
    """Start the four backends and the gateway (own databases, fresh credentials);
    ``every_env`` goes to all five processes, ``gateway_env`` to the gateway."""
    common = dict(every_env or {})
    run = uuid.uuid4().hex[:6]
    credentials = DevCredentials.ensure(folder / f"credentials-{run}")
    keys: dict[str, str] = {}
    for name, (tenant, role, limit) in API_KEYS.items():
        made = new_api_key(tenant=tenant, role=role, name=name, rate_limit=limit)
        add_api_key(credentials.api_keys_file, made.entry)
        keys[name] = made.key
    contacts = await infra.start_service(
        "contacts", env={**common, "MONGODB_DATABASE": f"crm_gw_contacts_{run}"}
    )
    servicedesk = await infra.start_service(
        "servicedesk",
        env={
            **common,
            "MONGODB_DATABASE": f"crm_gw_servicedesk_{run}",
            "CONTACTS_ADDRESS": contacts.address,
        },
    )
    sales = await infra.start_service(
        "sales",
        env={
            **common,
            "MONGODB_DATABASE": f"crm_gw_sales_{run}",
            "CONTACTS_ADDRESS": contacts.address,
        },
    )
    metrics = await infra.start_service(
        "metrics",
        env={
            **common,
            "MONGODB_DATABASE": f"crm_gw_metrics_{run}",
            "CONSUMER_GROUP": f"crm-gw-metrics-{run}",
            "VIEW_REFRESH_SECONDS": "0.2",
            "CHECKPOINT_INTERVAL_SECONDS": "0.2",
        },
        timeout=90,
    )
    gateway = await infra.start_service(
        "gateway",
        env={
            **common,
            "CONTACTS_ADDRESSES": contacts.address,
            "SERVICEDESK_ADDRESSES": servicedesk.address,
            "METRICS_ADDRESSES": metrics.address,
            "SALES_ADDRESSES": sales.address,
            "JWKS_FILE": str(credentials.jwks_file),
            "API_KEYS_FILE": str(credentials.api_keys_file),
            "BREAKER_RESET_SECONDS": "1",
            **gateway_env,
        },
    )
    services = {
        "contacts": contacts,
        "servicedesk": servicedesk,
        "metrics": metrics,
        "sales": sales,
        "gateway": gateway,
    }
    return GatewayStack(services, credentials, keys)
