"""Tenant and actor from request metadata."""

from __future__ import annotations

import pytest

from crm_platform.context import ActorType, call_from_metadata
from crm_platform.errors import InvalidArgument, Unauthenticated


def test_tenant_and_actor_are_read_from_metadata() -> None:
    call = call_from_metadata(
        {"x-tenant-id": "acme", "x-actor-id": "alice", "x-actor-type": "integration"}
    )
    assert call.tenant_id == "acme"
    assert call.actor.type is ActorType.INTEGRATION
    assert str(call.actor) == "integration:alice"


def test_missing_tenant_is_unauthenticated() -> None:
    with pytest.raises(Unauthenticated):
        call_from_metadata({"x-actor-id": "alice"})


@pytest.mark.parametrize("tenant", ["ACME", "-x", "a b", "x" * 64])
def test_malformed_tenant_is_invalid(tenant: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        call_from_metadata({"x-tenant-id": tenant})
    assert info.value.violations[0].field == "x-tenant-id"


def test_unknown_actor_type_is_invalid() -> None:
    with pytest.raises(InvalidArgument):
        call_from_metadata({"x-tenant-id": "acme", "x-actor-id": "alice", "x-actor-type": "robot"})


def test_missing_actor_is_unauthenticated() -> None:
    with pytest.raises(Unauthenticated):
        call_from_metadata({"x-tenant-id": "acme"})
