"""Where the local stack keeps things: the repository, ``$CRM_HOME`` and the Kafka jars."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from crm_devstack.errors import LaunchError

#: The Apache Kafka release the local stack runs; keep in step with deploy/local/pom.xml.
DEFAULT_KAFKA_VERSION = "3.9.2"

_FETCH_SCRIPT = Path("deploy") / "local" / "fetch-kafka.sh"


def repo_root() -> Path:
    """The repository's root: the first folder above the working directory or this package
    that holds ``deploy/local/fetch-kafka.sh``."""
    for start in (Path.cwd(), Path(__file__).resolve().parent):
        for folder in (start, *start.parents):
            if (folder / _FETCH_SCRIPT).is_file():
                return folder
    raise LaunchError(
        "cannot find the repository (no deploy/local/fetch-kafka.sh above the working "
        "directory or the crm_devstack package); run from inside the repository"
    )


def crm_home() -> Path:
    """``$CRM_HOME`` (default ``<repo>/.crm``): tools, Kafka jars, data, logs, run state."""
    configured = os.environ.get("CRM_HOME")
    return Path(configured).resolve() if configured else repo_root() / ".crm"


def kafka_version() -> str:
    """The Kafka release to run: ``$CRM_KAFKA_VERSION`` or :data:`DEFAULT_KAFKA_VERSION`."""
    return os.environ.get("CRM_KAFKA_VERSION") or DEFAULT_KAFKA_VERSION


def kafka_home(version: str) -> Path:
    """``$CRM_HOME/kafka/<version>``: the broker's jars (``libs/``) and class-data archive."""
    return crm_home() / "kafka" / version


def deploy_local() -> Path:
    """``<repo>/deploy/local``: the Maven pom and the broker's logging configuration."""
    return repo_root() / "deploy" / "local"


def ensure_kafka_jars(version: str) -> Path:
    """Return the folder with Kafka's jars, fetching them first (through
    ``deploy/local/fetch-kafka.sh``, idempotent and quick when done) if they are missing."""
    libs = kafka_home(version) / "libs"
    if not (kafka_home(version) / ".fetched").is_file():
        script = repo_root() / _FETCH_SCRIPT
        env = {**os.environ, "CRM_HOME": str(crm_home()), "CRM_KAFKA_VERSION": version}
        result = subprocess.run(
            ["bash", str(script)], env=env, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise LaunchError(
                f"fetching the Kafka {version} jars failed (bash {script}):\n"
                f"{result.stdout}{result.stderr}"
            )
    if not any(libs.glob("kafka_2.13-*.jar")):
        raise LaunchError(f"no Kafka jars in {libs}; run `make kafka-jars`")
    return libs
