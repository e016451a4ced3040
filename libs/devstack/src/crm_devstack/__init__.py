"""The embedded local stack: Apache Kafka (KRaft, from its Maven Central jars), SecantusDB (a
MongoDB-protocol server, run as a separate process) and the CRM services, on 127.0.0.1.

``crm-dev`` / ``python -m crm_devstack`` is the command line; :class:`Stack` the whole stack;
:class:`KafkaBroker`, :class:`SecantusServer` and :class:`ServiceProcess` its parts; the pytest
plugin ``crm_devstack.pytest_plugin`` gives integration tests the ``infra`` fixture.
"""

from crm_devstack.errors import LaunchError
from crm_devstack.kafka import DEFAULT_PARTITIONS, KafkaBroker, ensure_topics, kafka_ready
from crm_devstack.procs import ManagedProcess, free_ports
from crm_devstack.secantus import SecantusServer, mongo_ready
from crm_devstack.services import SERVICES, ServiceProcess, ServiceSpec, grpc_health, service_spec
from crm_devstack.stack import Stack, StackConfig

__all__ = [
    "DEFAULT_PARTITIONS",
    "SERVICES",
    "KafkaBroker",
    "LaunchError",
    "ManagedProcess",
    "SecantusServer",
    "ServiceProcess",
    "ServiceSpec",
    "Stack",
    "StackConfig",
    "ensure_topics",
    "free_ports",
    "grpc_health",
    "kafka_ready",
    "mongo_ready",
    "service_spec",
]
