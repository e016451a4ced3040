"""Shared pieces of the contacts integration tests."""

from __future__ import annotations

import socket
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from crm.contacts.v1 import contacts_pb2_grpc
from crm_platform.mongo import MongoStore
from crm_platform.server import RunningService

TENANT = "acme"


def metadata(tenant: str = TENANT, actor: str = "alice") -> tuple[tuple[str, str], ...]:
    """Request metadata of an authenticated agent of ``tenant``."""
    return (("x-tenant-id", tenant), ("x-actor-id", actor), ("x-actor-type", "agent"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def ensure_topic(bootstrap_servers: str, name: str, partitions: int = 6) -> None:
    """Create a topic if it does not exist yet."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        await admin.close()


@dataclass
class ContactsUnderTest:
    """A running contacts service, a stub to call it, and its database."""

    stub: contacts_pb2_grpc.ContactsServiceStub
    mongo: MongoStore
    service: RunningService
    address: str
