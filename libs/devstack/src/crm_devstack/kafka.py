"""The embedded Apache Kafka broker: KRaft, one combined broker+controller on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import shutil
import signal
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from crm_devstack.errors import LaunchError
from crm_devstack.paths import deploy_local, ensure_kafka_jars, kafka_home, kafka_version
from crm_devstack.procs import HOST, ManagedProcess, ensure_port_free, port_open

DEFAULT_PARTITIONS = 6
"""Every topic gets the same partition count, so that topics keyed by contact id are
co-partitioned."""

_NODE_ID = 1


def new_cluster_id() -> str:
    """A random Kafka cluster id, as ``kafka-storage random-uuid`` makes them: 16 random bytes,
    URL-safe base64 without padding, never starting with '-'."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def broker_properties(
    *, log_dir: Path, port: int, controller_port: int, partitions: int = DEFAULT_PARTITIONS
) -> dict[str, str]:
    """The ``server.properties`` of a single-node KRaft broker+controller for development:
    replication factor 1 everywhere, topics created explicitly (see :func:`ensure_topics`),
    no rebalance delay, quick recovery after a crash, small thread pools."""
    return {
        "process.roles": "broker,controller",
        "node.id": str(_NODE_ID),
        "controller.quorum.voters": f"{_NODE_ID}@{HOST}:{controller_port}",
        "listeners": f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{port}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(log_dir),
        "auto.create.topics.enable": "false",
        "num.partitions": str(partitions),
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "10",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "10",
        "group.initial.rebalance.delay.ms": "0",
        # After a crash the restarted broker cannot register until its previous registration's
        # session has expired (default 9 s): keep that short for a local single node.
        "broker.heartbeat.interval.ms": "500",
        "broker.session.timeout.ms": "3000",
        "num.network.threads": "2",
        "num.io.threads": "4",
        "num.recovery.threads.per.data.dir": "1",
    }


class KafkaBroker(ManagedProcess):
    """Apache Kafka (from its Maven Central jars) as a single KRaft broker+controller.

    ``data_dir`` holds ``server.properties``, ``cluster.id`` and the broker's log dir
    (``logdir/``); the data dir is formatted once, so :meth:`start` after :meth:`stop` (or
    after a crash) reopens the same topics and messages. The broker writes its log to
    ``<log_dir>/kafka.log``; the JVM's own output goes to ``<log_dir>/kafka.out``.

    The first (not detached) start also records a class-data-sharing archive of the broker's
    classes, written when that broker stops; later starts load it and are ready 1-2 s sooner.
    """

    def __init__(
        self,
        data_dir: Path,
        log_dir: Path,
        *,
        port: int = 19092,
        controller_port: int = 19093,
        version: str | None = None,
        heap: str = "512m",
        partitions: int = DEFAULT_PARTITIONS,
        detach: bool = False,
    ) -> None:
        super().__init__("kafka", log_dir / "kafka.out", detach=detach, stop_grace=30.0)
        self.data_dir = data_dir
        self.log_dir = log_dir
        self.port = port
        self.controller_port = controller_port
        self.version = version or kafka_version()
        self.heap = heap
        self.partitions = partitions
        self._archive: tuple[Path, Path] | None = None  # (draft, final) while recording

    @property
    def bootstrap_servers(self) -> str:
        """``127.0.0.1:<port>``, for ``KAFKA_BOOTSTRAP_SERVERS``."""
        return f"{HOST}:{self.port}"

    def log_files(self) -> list[Path]:
        """The JVM's output, then the broker's own log."""
        return [self.log_path, self.log_dir / "kafka.log"]

    async def start(self, timeout: float = 90.0) -> None:
        """Format the data dir if new, start the broker and wait until a metadata request
        lists it; raise :class:`LaunchError` (with the log's tail) if it does not come up."""
        self._refuse_if_running()
        libs = await asyncio.to_thread(ensure_kafka_jars, self.version)
        ensure_port_free(self.port, "Kafka")
        ensure_port_free(self.controller_port, "the Kafka controller")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        properties = self.data_dir / "server.properties"
        logdir = self.data_dir / "logdir"
        config = broker_properties(
            log_dir=logdir,
            port=self.port,
            controller_port=self.controller_port,
            partitions=self.partitions,
        )
        properties.write_text("".join(f"{key}={value}\n" for key, value in config.items()))
        java = _java()
        if not (logdir / "meta.properties").is_file():
            await self._format(java, libs, properties)
        self._spawn(
            [
                java,
                *self._jvm_options(java),
                "-cp",
                f"{libs}/*",
                "kafka.Kafka",
                str(properties),
            ],
            cwd=self.data_dir,
        )
        try:
            await self._wait_ready(self._ready, timeout)
        except BaseException:
            self._settle_class_archive(keep=False)
            raise

    async def stop(self) -> None:
        """Graceful stop (SIGTERM; SIGKILL after 30 s), keeping the data."""
        await super().stop()
        self._settle_class_archive(keep=self.returncode != -signal.SIGKILL)

    async def kill(self) -> None:
        """Hard stop (SIGKILL, as in a crash); the data stays and :meth:`start` recovers it."""
        await super().kill()
        self._settle_class_archive(keep=False)

    async def ensure_topics(
        self, names: Iterable[str], partitions: int = DEFAULT_PARTITIONS
    ) -> None:
        """Create the topics that do not exist yet (see :func:`ensure_topics`)."""
        await ensure_topics(self.bootstrap_servers, names, partitions)

    async def _ready(self) -> bool:
        return await kafka_ready(self.bootstrap_servers)

    async def _format(self, java: str, libs: Path, properties: Path) -> None:
        """``kafka-storage format`` with the cluster id kept in ``data_dir/cluster.id``."""
        id_file = self.data_dir / "cluster.id"
        if not id_file.is_file():
            id_file.write_text(new_cluster_id() + "\n")
        cluster_id = id_file.read_text().strip()
        process = await asyncio.create_subprocess_exec(
            java,
            *self._log_options(),
            "-cp",
            f"{libs}/*",
            "kafka.tools.StorageTool",
            "format",
            "--ignore-formatted",
            "--cluster-id",
            cluster_id,
            "--config",
            str(properties),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await process.communicate()
        if process.returncode != 0:
            raise LaunchError(
                f"formatting the Kafka data dir {self.data_dir} failed "
                f"(status {process.returncode}):\n{output.decode(errors='replace')}"
            )

    def _log_options(self) -> list[str]:
        config = deploy_local() / "kafka"
        if self.version.startswith("3."):
            logging = f"-Dlog4j.configuration=file:{config / 'log4j.properties'}"
        else:
            logging = f"-Dlog4j2.configurationFile={config / 'log4j2.properties'}"
        return [f"-Dkafka.logs.dir={self.log_dir}", logging]

    def _jvm_options(self, java: str) -> list[str]:
        """Small heap, serial GC (2 cores, one small broker) and the class-data archive."""
        options = [
            "-Xms128m",
            f"-Xmx{self.heap}",
            "-XX:+UseSerialGC",
            "-Djava.awt.headless=true",
            "-Xlog:cds*=error",
            *self._log_options(),
        ]
        archive = self._class_archive(java)
        if archive.is_file():
            options.append(f"-XX:SharedArchiveFile={archive}")
        elif not self.detach:  # a detached broker's exit is not seen: it cannot settle it
            for stale in archive.parent.glob(f"{archive.name}.*.tmp"):
                with contextlib.suppress(FileNotFoundError):  # another launcher was quicker
                    if stale.stat().st_mtime < time.time() - 3600:  # its launcher died
                        stale.unlink()
            draft = archive.with_name(f"{archive.name}.{uuid.uuid4().hex}.tmp")
            self._archive = (draft, archive)
            options.append(f"-XX:ArchiveClassesAtExit={draft}")
        return options

    def _class_archive(self, java: str) -> Path:
        """Where the class-data archive lives. Its name changes with the JVM binary and with
        every fetch of the jars (the JVM ignores an archive whose jars have changed)."""
        real = Path(java).resolve()
        fetched = (kafka_home(self.version) / ".fetched").stat().st_mtime_ns
        key = hashlib.sha256(f"{real}:{real.stat().st_mtime_ns}:{fetched}".encode()).hexdigest()
        return kafka_home(self.version) / f"kafka-{key[:12]}.jsa"

    def _settle_class_archive(self, *, keep: bool) -> None:
        """Move the archive the JVM wrote at its exit into place (``keep``: it exited after a
        successful start, and cleanly), else drop the draft."""
        if self._archive is None:
            return
        (draft, final), self._archive = self._archive, None
        if keep and draft.is_file() and not final.exists():
            os.replace(draft, final)
            for outdated in final.parent.glob("kafka-*.jsa"):
                if outdated != final:
                    outdated.unlink(missing_ok=True)
        else:
            draft.unlink(missing_ok=True)


def _java() -> str:
    """``$JAVA_HOME/bin/java`` or ``java`` on the PATH."""
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java or not Path(java).is_file():
        raise LaunchError(
            "Java 17+ is needed for the Kafka broker (apt-get install openjdk-17-jre)"
        )
    return java


async def kafka_ready(bootstrap_servers: str) -> bool:
    """True if a metadata request to ``bootstrap_servers`` succeeds and lists a broker."""
    host, _, port = bootstrap_servers.split(",")[0].rpartition(":")
    if host == HOST and not await port_open(int(port)):
        return False  # not listening yet: spare aiokafka's connection-error log lines
    client = AIOKafkaClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=2000)
    try:
        await client.bootstrap()
        return bool(client.cluster.brokers())
    except KafkaError:
        return False
    finally:
        await client.close()


async def ensure_topics(
    bootstrap_servers: str,
    names: Iterable[str],
    partitions: int = DEFAULT_PARTITIONS,
    timeout: float = 30.0,
) -> None:
    """Create the topics that do not exist yet (replication factor 1) and wait until every
    partition has a leader. An existing topic with another partition count is an error:
    co-partitioning needs the same count everywhere."""
    wanted = sorted(set(names))
    if not wanted:
        return
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=10_000)
    await admin.start()
    try:
        response = await admin.create_topics([NewTopic(name, partitions, 1) for name in wanted])
        for topic, code, *message in response.topic_errors:
            if code not in (0, TopicAlreadyExistsError.errno):
                raise LaunchError(f"creating Kafka topic {topic} failed: error {code} {message}")
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            described = await admin.describe_topics(wanted)
            pending = [t["topic"] for t in described if not _has_leaders(t)]
            if not pending:
                break
            if asyncio.get_running_loop().time() > deadline:
                raise LaunchError(
                    f"Kafka topics without partition leaders after {timeout} s: {pending}"
                )
            await asyncio.sleep(0.1)
    finally:
        await admin.close()
    wrong = [
        f"{t['topic']} has {len(t['partitions'])}"
        for t in described
        if len(t["partitions"]) != partitions
    ]
    if wrong:
        raise LaunchError(f"topics exist with another partition count than {partitions}: {wrong}")


def _has_leaders(topic: dict[str, Any]) -> bool:
    partitions = topic["partitions"]
    return (
        topic["error_code"] == 0
        and isinstance(partitions, list)
        and bool(partitions)
        and all(p["error_code"] == 0 and p["leader"] >= 0 for p in partitions)
    )
