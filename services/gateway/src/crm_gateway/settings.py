"""Configuration of the gateway (environment variables, validated at start-up).

The gateway has no database and no Kafka: its state is its configuration (the keys that sign
tokens, the hashed API keys) and per-replica counters (rate limits, circuit breakers).
"""

from __future__ import annotations

from pathlib import Path

from limits import parse
from pydantic import Field, field_validator

from crm_platform.settings import ServerSettings


def _addresses(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


class GatewaySettings(ServerSettings):
    """Everything the gateway reads from its environment."""

    service_name: str = "gateway"
    grpc_listen_address: str = Field(default="127.0.0.1:50050", min_length=3)
    http_listen_address: str = Field(default="127.0.0.1:8080", min_length=3)
    # Backends: comma-separated host:port lists, called round-robin (client-side), or one
    # gRPC target such as dns:///contacts-headless:50051 (round-robin over what DNS returns).
    contacts_addresses: str = Field(min_length=3)
    servicedesk_addresses: str = Field(min_length=3)
    metrics_addresses: str = Field(min_length=3)
    sales_addresses: str = Field(min_length=3)
    # Identity.
    jwt_issuer: str = Field(default="crm-dev", min_length=1)
    jwt_audience: str = Field(default="crm-gateway", min_length=1)
    jwks_file: Path | None = Field(default=None, description="public keys that sign tokens")
    api_keys_file: Path | None = Field(default=None, description="hashed API keys (JSON)")
    jwt_leeway_seconds: float = Field(default=30.0, ge=0, le=300)
    # Protection.
    rate_limit: str = Field(default="100/second", description="per credential, e.g. 100/second")
    max_request_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    backend_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    read_retries: int = Field(default=3, ge=1, le=5, description="attempts of idempotent reads")
    breaker_failures: int = Field(default=5, ge=1, le=1000)
    breaker_reset_seconds: float = Field(default=5.0, gt=0, le=600)
    customer360_deadline_seconds: float = Field(default=1.5, gt=0, le=30)
    # Process (the rest as every server has them, see ServerSettings).
    shutdown_grace_seconds: float = Field(default=10.0, ge=0, le=300)
    shutdown_delay_seconds: float = Field(default=1.0, ge=0, le=60)

    @field_validator("rate_limit")
    @classmethod
    def _rate(cls, value: str) -> str:
        parse(value)  # "100/second", "6000 per minute"...
        return value

    def backend_addresses(self, backend: str) -> list[str]:
        """The addresses of a backend ("contacts", "servicedesk", "metrics", "sales")."""
        return _addresses(str(getattr(self, f"{backend}_addresses")))
