"""The whole local stack: Kafka, SecantusDB and the services, started and stopped in order."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from crm_devstack.credentials import DevCredentials
from crm_devstack.errors import LaunchError
from crm_devstack.kafka import KafkaBroker
from crm_devstack.paths import crm_home
from crm_devstack.procs import ManagedProcess, start_together
from crm_devstack.secantus import SecantusServer
from crm_devstack.services import SERVICES, ServiceProcess, service_spec


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise LaunchError(f"{name}={text!r} is not a port number") from None
    if not 1 <= value <= 65535:
        raise LaunchError(f"{name}={value} is not a port number (1-65535)")
    return value


def _env_flag(name: str, default: bool) -> bool:
    text = os.environ.get(name, "").strip().lower()
    if not text:
        return default
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise LaunchError(f"{name}={text!r} is not a boolean (1/0, true/false)")


@dataclass(frozen=True)
class StackConfig:
    """Ports and folders of the local stack."""

    home: Path
    kafka_port: int = 19092
    kafka_controller_port: int = 19093
    mongodb_port: int = 27117
    service_ports: dict[str, int] = field(
        default_factory=lambda: {spec.name: spec.default_port for spec in SERVICES}
    )
    http_ports: dict[str, int] = field(
        default_factory=lambda: {s.name: s.default_http_port for s in SERVICES if s.http_port_env}
    )
    secantus_sync_on_commit: bool = True

    @classmethod
    def from_env(cls) -> StackConfig:
        """Read ``CRM_HOME``, ``CRM_KAFKA_PORT``, ``CRM_KAFKA_CONTROLLER_PORT``,
        ``CRM_MONGODB_PORT``, each service's port variables (``CRM_CONTACTS_PORT``,
        ``CRM_GATEWAY_HTTP_PORT``...) and
        ``CRM_SECANTUS_SYNC_ON_COMMIT`` (default on)."""
        return cls(
            home=crm_home(),
            kafka_port=_env_int("CRM_KAFKA_PORT", 19092),
            kafka_controller_port=_env_int("CRM_KAFKA_CONTROLLER_PORT", 19093),
            mongodb_port=_env_int("CRM_MONGODB_PORT", 27117),
            service_ports={
                spec.name: _env_int(spec.port_env, spec.default_port) for spec in SERVICES
            },
            http_ports={
                spec.name: _env_int(spec.http_port_env, spec.default_http_port)
                for spec in SERVICES
                if spec.http_port_env
            },
            secantus_sync_on_commit=_env_flag("CRM_SECANTUS_SYNC_ON_COMMIT", True),
        )

    @property
    def data_dir(self) -> Path:
        """``$CRM_HOME/data``: ``kafka/`` and ``secantus/``."""
        return self.home / "data"

    @property
    def logs_dir(self) -> Path:
        """``$CRM_HOME/logs``: ``kafka.log``, ``secantus.log``, ``<service>.log``."""
        return self.home / "logs"

    @property
    def run_dir(self) -> Path:
        """``$CRM_HOME/run``: the state file of a running stack."""
        return self.home / "run"

    @property
    def credentials_dir(self) -> Path:
        """``$CRM_HOME/credentials``: the local gateway's signing key, JWKS and API keys."""
        return self.home / "credentials"


class Stack:
    """Kafka and SecantusDB (started side by side), then the topics, then the services.

    Use ``async with Stack() as stack:`` or :meth:`start` / :meth:`stop`. ``services``
    chooses which services of :data:`~crm_devstack.services.SERVICES` run (default: all;
    ``[]``: infrastructure only). ``detach`` lets the processes outlive the launcher
    (``crm-dev up``).
    """

    def __init__(
        self,
        config: StackConfig | None = None,
        *,
        services: Sequence[str] | None = None,
        detach: bool = False,
        service_env: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config or StackConfig.from_env()
        data, logs = self.config.data_dir, self.config.logs_dir
        self.kafka = KafkaBroker(
            data / "kafka",
            logs,
            port=self.config.kafka_port,
            controller_port=self.config.kafka_controller_port,
            detach=detach,
        )
        self.secantus = SecantusServer(
            data / "secantus",
            logs,
            port=self.config.mongodb_port,
            sync_on_commit=self.config.secantus_sync_on_commit,
            detach=detach,
        )
        names = [spec.name for spec in SERVICES] if services is None else list(services)
        self.services = {
            name: ServiceProcess(
                service_spec(name),
                port=self.config.service_ports[name],
                mongodb_uri=self.secantus.uri,
                kafka_bootstrap_servers=self.kafka.bootstrap_servers,
                log_dir=logs,
                detach=detach,
                env=service_env,
                http_port=self.config.http_ports.get(name, 0),
            )
            for name in names
        }
        for process in self.services.values():
            for variable, peer in process.spec.peers:
                if peer in self.services:
                    process.env.setdefault(variable, self.services[peer].address)
        self.credentials = DevCredentials.ensure(self.config.credentials_dir)
        gateway = self.services.get("gateway")
        if gateway is not None:
            gateway.env.setdefault("JWKS_FILE", str(self.credentials.jwks_file))
            gateway.env.setdefault("API_KEYS_FILE", str(self.credentials.api_keys_file))

    @property
    def gateway(self) -> ServiceProcess | None:
        """The gateway's process, if the stack runs it."""
        return self.services.get("gateway")

    @property
    def processes(self) -> list[ManagedProcess]:
        """Every process of the stack, in start order."""
        return [self.kafka, self.secantus, *self.services.values()]

    def endpoints(self) -> list[tuple[str, str]]:
        """``(name, where it listens)`` for every process, in start order."""
        return [
            (self.kafka.name, self.kafka.bootstrap_servers),
            (self.secantus.name, self.secantus.uri),
            *((s.name, s.address) for s in self.services.values()),
            *((f"{s.name} http", s.http_url) for s in self.services.values() if s.http_url),
        ]

    async def start(self) -> None:
        """Start everything and wait until each part is ready. On any failure (or
        cancellation) stop what was started and raise :class:`LaunchError`."""
        try:
            await start_together(self.kafka.start(), self.secantus.start())
            topics = [topic for s in self.services.values() for topic in s.spec.topics]
            await self.kafka.ensure_topics(topics)
            await start_together(*(s.start() for s in self.services.values()))
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop the services (they drain and flush to Kafka), then Kafka and SecantusDB."""
        await asyncio.gather(*(s.stop() for s in self.services.values()))
        await asyncio.gather(self.kafka.stop(), self.secantus.stop())

    async def __aenter__(self) -> Stack:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()
