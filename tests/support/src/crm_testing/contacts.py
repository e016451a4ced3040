"""Shared pieces of the contacts integration tests."""

from __future__ import annotations

from dataclasses import dataclass

from crm.contacts.v1 import contacts_pb2_grpc
from crm_platform.mongo import MongoStore
from crm_platform.server import RunningService

TENANT = "acme"


def metadata(tenant: str = TENANT, actor: str = "alice") -> tuple[tuple[str, str], ...]:
    """Request metadata of an authenticated agent of ``tenant``."""
    return (("x-tenant-id", tenant), ("x-actor-id", actor), ("x-actor-type", "agent"))


@dataclass
class ContactsUnderTest:
    """A running contacts service, a stub to call it, and its database."""

    stub: contacts_pb2_grpc.ContactsServiceAsyncStub
    mongo: MongoStore
    service: RunningService
    address: str
