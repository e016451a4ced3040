"""Service settings from the environment, validated at start-up (fail fast, one clear message)."""

from __future__ import annotations

import sys
from typing import TypeVar

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServerSettings(BaseSettings):
    """Settings every server process has (the runner, :mod:`crm_platform.server`, reads these).

    Field names are the environment variables, case-insensitive (``GRPC_LISTEN_ADDRESS``...).
    Telemetry is configured separately by the standard ``OTEL_*`` variables.
    """

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True)

    service_name: str = Field(min_length=1, description="logical service name, e.g. 'contacts'")
    grpc_listen_address: str = Field(
        default="127.0.0.1:50051",
        pattern=r"^[^\s:]+:\d{1,5}$",
        description="host:port the gRPC server binds (use 0.0.0.0:50051 in a container)",
    )
    shutdown_grace_seconds: float = Field(default=20.0, ge=0, le=300)
    # After SIGTERM the service reports NOT_SERVING but keeps serving this long, so that load
    # balancers and readiness probes stop sending calls before the listener closes.
    shutdown_delay_seconds: float = Field(default=2.0, ge=0, le=60)
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    readiness_interval_seconds: float = Field(default=2.0, gt=0, le=60)
    max_request_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)


class ServiceSettings(ServerSettings):
    """Settings every service with a database and Kafka has. Services subclass it to add their
    own."""

    mongodb_uri: str = Field(pattern=r"^mongodb(\+srv)?://", description="MongoDB connection URI")
    mongodb_database: str = Field(default="", description="database name; default crm_<service>")
    kafka_bootstrap_servers: str = Field(min_length=1, description="comma-separated host:port list")
    kafka_client_id: str = ""
    outbox_batch_size: int = Field(default=500, ge=1, le=10_000)
    outbox_poll_interval_seconds: float = Field(default=1.0, gt=0, le=60)
    readiness_kafka_grace_seconds: float = Field(default=30.0, ge=0, le=3600)

    @property
    def database_name(self) -> str:
        """The service's own database (every service owns its data)."""
        return self.mongodb_database or f"crm_{self.service_name.replace('-', '_')}"


SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def load_settings(settings_type: type[SettingsT], **overrides: object) -> SettingsT:
    """Read settings from the environment; on error print every problem and exit with status 2."""
    try:
        return settings_type(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = [f"invalid configuration for {settings_type.__name__}:"]
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"]).upper()
            lines.append(f"  {name}: {error['msg']}")
        print("\n".join(lines), file=sys.stderr)
        raise SystemExit(2) from None
