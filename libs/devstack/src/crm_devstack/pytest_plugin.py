"""pytest plugin of the project (``pytest -p crm_devstack.pytest_plugin``, as ``make test`` does).

* The session fixture ``infra``: a real Kafka broker and a real MongoDB-protocol server for
  integration tests, started only when a test asks for it. ``CRM_TEST_INFRA`` chooses them:

  - ``local``: the embedded processes (Kafka from its jars, SecantusDB) on free ports, in a
    fresh folder ``$CRM_HOME/test/<id>`` removed afterwards (``CRM_TEST_KEEP=1`` keeps it);
  - ``docker``: testcontainers' ``KafkaContainer`` and ``MongoDbContainer`` (a replica set);
  - ``external``: what ``KAFKA_BOOTSTRAP_SERVERS`` and ``MONGODB_URI`` point to;
  - ``auto`` (default): ``docker`` if a Docker engine answers, else ``local``.

* Tests that use ``infra`` get the ``integration`` marker (``-m "not integration"`` skips them).
* A run that collects no test fails (exit status 1 instead of pytest's 5).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path
from typing import Literal

import pytest
import pytest_asyncio

from crm_devstack.kafka import DEFAULT_PARTITIONS, KafkaBroker, ensure_topics
from crm_devstack.paths import crm_home
from crm_devstack.procs import free_ports, start_together
from crm_devstack.secantus import SecantusServer
from crm_devstack.services import ServiceProcess, service_spec

Mode = Literal["local", "docker", "external"]

KAFKA_IMAGE = "confluentinc/cp-kafka:7.9.0"
"""Confluent Platform 7.9 ships Apache Kafka 3.9, the release the local stack runs."""
MONGO_IMAGE = "mongo:8.0"


class Infra:
    """The infrastructure integration tests run against (the ``infra`` fixture)."""

    def __init__(
        self,
        mode: Mode,
        *,
        kafka_bootstrap: str,
        mongodb_uri: str,
        workdir: Path,
        kafka: KafkaBroker | None = None,
    ) -> None:
        self.mode: Mode = mode
        self.kafka_bootstrap = kafka_bootstrap
        """``host:port`` of the Kafka broker (``KAFKA_BOOTSTRAP_SERVERS``)."""
        self.mongodb_uri = mongodb_uri
        """Connection string of the MongoDB-protocol server (``MONGODB_URI``)."""
        self.kafka = kafka
        """The broker process, in ``local`` mode only: tests may stop and start it."""
        self.workdir = workdir
        """This session's folder; service logs go to ``workdir/logs``."""
        self._services: list[ServiceProcess] = []

    async def ensure_topics(
        self, names: Iterable[str], partitions: int = DEFAULT_PARTITIONS
    ) -> None:
        """Create the topics that do not exist yet and wait until they have leaders."""
        await ensure_topics(self.kafka_bootstrap, names, partitions)

    async def start_service(
        self, name: str, *, env: Mapping[str, str] | None = None, timeout: float = 60.0
    ) -> ServiceProcess:
        """Start the service ``name`` (see :data:`crm_devstack.services.SERVICES`) as a real
        process on a free port, against this infrastructure, with extra environment ``env``;
        return once it is ready. Still running at the end of the session, it is stopped."""
        spec = service_spec(name)
        await self.ensure_topics(spec.topics)
        port, http_port = free_ports(2)
        process = ServiceProcess(
            spec,
            port=port,
            mongodb_uri=self.mongodb_uri,
            kafka_bootstrap_servers=self.kafka_bootstrap,
            log_dir=self.workdir / "logs",
            env=env,
            http_port=http_port if spec.http_port_env else 0,
        )
        self._services.append(process)
        await process.start(timeout)
        return process

    @contextlib.asynccontextmanager
    async def kafka_down(self, *, crash: bool = False) -> AsyncIterator[KafkaBroker]:
        """Stop the broker for the ``async with`` block (gracefully, or with ``crash`` by
        SIGKILL) and start it again on the same data and port afterwards, even if the block
        fails. Skips the test unless the mode is ``local``."""
        if self.kafka is None:
            pytest.skip(f"needs the Kafka broker's process (CRM_TEST_INFRA=local, not {self.mode})")
        await (self.kafka.kill() if crash else self.kafka.stop())
        try:
            yield self.kafka
        finally:
            await self.kafka.start()

    async def stop_services(self) -> None:
        """Stop every service this object started."""
        for process in self._services:
            await process.stop()


def infra_mode() -> Mode:
    """The mode ``CRM_TEST_INFRA`` asks for, with ``auto`` resolved."""
    wanted = os.environ.get("CRM_TEST_INFRA", "auto").strip().lower() or "auto"
    if wanted == "auto":
        return "docker" if _docker_answers() else "local"
    if wanted in ("local", "docker", "external"):
        return wanted  # type: ignore[return-value]
    raise pytest.UsageError(f"CRM_TEST_INFRA={wanted!r}: use auto, local, docker or external")


def _docker_answers() -> bool:
    """True if a Docker engine answers a ping within 2 s (docker-py, as testcontainers uses)."""
    try:
        import docker  # type: ignore[import-untyped]
    except ImportError:
        return False
    try:
        client = docker.from_env(timeout=2)
    except docker.errors.DockerException:
        return False
    try:
        return bool(client.ping())
    except (docker.errors.DockerException, OSError):
        return False
    finally:
        client.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def infra() -> AsyncIterator[Infra]:
    """A real Kafka broker and MongoDB-protocol server for this test session."""
    mode = infra_mode()
    workdir = crm_home() / "test" / uuid.uuid4().hex
    workdir.mkdir(parents=True)
    async with contextlib.AsyncExitStack() as cleanup:
        if os.environ.get("CRM_TEST_KEEP") != "1":
            cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
        if mode == "local":
            session = await _local(workdir, cleanup)
        elif mode == "docker":
            session = await _docker(workdir, cleanup)
        else:
            session = _external(workdir)
        cleanup.push_async_callback(session.stop_services)
        yield session


async def _local(workdir: Path, cleanup: contextlib.AsyncExitStack) -> Infra:
    kafka_port, controller_port, mongo_port = free_ports(3)
    logs = workdir / "logs"
    kafka = KafkaBroker(workdir / "kafka", logs, port=kafka_port, controller_port=controller_port)
    secantus = SecantusServer(workdir / "secantus", logs, port=mongo_port)
    cleanup.push_async_callback(secantus.stop)
    cleanup.push_async_callback(kafka.stop)
    await start_together(kafka.start(), secantus.start())
    return Infra(
        "local",
        kafka_bootstrap=kafka.bootstrap_servers,
        mongodb_uri=secantus.uri,
        workdir=workdir,
        kafka=kafka,
    )


async def _docker(workdir: Path, cleanup: contextlib.AsyncExitStack) -> Infra:
    # testcontainers is a development dependency, and blocking: imported and run here only.
    from testcontainers.community.kafka import KafkaContainer
    from testcontainers.community.mongodb import MongoDbContainer

    class ReplicaSetMongo(MongoDbContainer):
        """MongoDB as a one-member replica set (transactions and change streams need one),
        without the root user (a replica set with authentication needs a key file)."""

        def _configure(self) -> None:
            self.with_command("--replSet rs0 --bind_ip_all")

        def get_connection_url(self) -> str:
            host = self.get_container_host_ip()
            port = self.get_exposed_port(self.port)
            return f"mongodb://{host}:{port}/?directConnection=true"

        def initiate(self) -> None:
            code, output = self.exec(
                [
                    "mongosh",
                    "--quiet",
                    "--eval",
                    "rs.initiate({_id: 'rs0', members: [{_id: 0, host: 'localhost:27017'}]}); "
                    "while (!db.hello().isWritablePrimary) { sleep(100); } print('primary')",
                ]
            )
            if code != 0 or b"primary" not in output:
                raise RuntimeError(f"rs.initiate failed ({code}): {output!r}")

    def start() -> tuple[str, str]:
        kafka = (
            KafkaContainer(KAFKA_IMAGE)
            .with_kraft()
            .with_env("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "false")
            .with_env("KAFKA_NUM_PARTITIONS", str(DEFAULT_PARTITIONS))
            .with_env("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
            .with_env("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
        )
        mongo = ReplicaSetMongo(MONGO_IMAGE)
        cleanup.callback(kafka.stop)
        kafka.start()
        cleanup.callback(mongo.stop)
        mongo.start()
        mongo.initiate()
        return kafka.get_bootstrap_server(), mongo.get_connection_url()

    kafka_bootstrap, mongodb_uri = await asyncio.to_thread(start)
    return Infra(
        "docker", kafka_bootstrap=kafka_bootstrap, mongodb_uri=mongodb_uri, workdir=workdir
    )


def _external(workdir: Path) -> Infra:
    missing = [
        name for name in ("KAFKA_BOOTSTRAP_SERVERS", "MONGODB_URI") if not os.environ.get(name)
    ]
    if missing:
        raise pytest.UsageError(f"CRM_TEST_INFRA=external needs {' and '.join(missing)}")
    return Infra(
        "external",
        kafka_bootstrap=os.environ["KAFKA_BOOTSTRAP_SERVERS"],
        mongodb_uri=os.environ["MONGODB_URI"],
        workdir=workdir,
    )


def pytest_configure(config: pytest.Config) -> None:
    """Declare the ``integration`` marker (also when the project's ini does not)."""
    config.addinivalue_line(
        "markers", "integration: needs the real Kafka broker and MongoDB-protocol server"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses ``infra`` (directly or through other fixtures) integration."""
    for item in items:
        if "infra" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Turn "no tests collected" (exit status 5) into a failure."""
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = "crm_devstack: no tests were collected; failing the run (exit status 1)"
        if reporter is not None:
            reporter.write_line(message, red=True)
