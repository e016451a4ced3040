"""Calls to other services: what they carry, which are retried, how their failures map back."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from google.rpc import status_pb2

from crm.contacts.v1 import contacts_pb2
from crm_platform import errors
from crm_platform.clients import (
    CallContextInterceptor,
    RemoteCallFailed,
    error_from_rpc,
    retry_service_config,
)
from crm_platform.context import (
    Actor,
    ActorType,
    CallContext,
    reset_call,
    reset_deadline,
    set_call,
    set_deadline,
)
from crm_platform.grpc_errors import to_status

CONTACTS = contacts_pb2.DESCRIPTOR.services_by_name["ContactsService"]


@pytest.fixture
def serving_alice() -> Iterator[None]:
    """Inside a server call of agent alice of tenant acme."""
    token = set_call(CallContext("acme", Actor(ActorType.AGENT, "alice")))
    yield
    reset_call(token)


@pytest.fixture
def deadline_in_2s() -> Iterator[None]:
    """Inside a server call whose caller gave it 2 seconds."""
    token = set_deadline(2.0)
    yield
    reset_deadline(token)


def _details(
    timeout: float | None = None, metadata: grpc.aio.Metadata | None = None
) -> grpc.aio.ClientCallDetails:
    return grpc.aio.ClientCallDetails(
        "/crm.contacts.v1.ContactsService/GetContact", timeout, metadata, None, None
    )


# --- what an outgoing call carries --------------------------------------------------------------


@pytest.mark.usefixtures("serving_alice")
def test_outgoing_call_carries_the_tenant_and_actor_being_served() -> None:
    sent = CallContextInterceptor().forward(_details())
    assert sent.metadata is not None
    assert dict(sent.metadata) == {
        "x-tenant-id": "acme",
        "x-actor-id": "alice",
        "x-actor-type": "agent",
    }


@pytest.mark.usefixtures("serving_alice")
def test_metadata_set_on_the_call_wins() -> None:
    given = grpc.aio.Metadata(("x-actor-type", "system"), ("x-request-id", "r1"))
    sent = CallContextInterceptor().forward(_details(metadata=given))
    assert sent.metadata is not None
    assert sent.metadata["x-actor-type"] == "system"
    assert sent.metadata["x-request-id"] == "r1"
    assert sent.metadata["x-tenant-id"] == "acme"


def test_outside_a_call_nothing_is_added_and_the_default_timeout_applies() -> None:
    sent = CallContextInterceptor(default_timeout=7.0).forward(_details())
    assert not sent.metadata
    assert sent.timeout == 7.0
    assert CallContextInterceptor().forward(_details(timeout=1.5)).timeout == 1.5


@pytest.mark.usefixtures("deadline_in_2s")
def test_outgoing_call_inherits_what_is_left_of_the_callers_deadline() -> None:
    interceptor = CallContextInterceptor(default_timeout=30.0)
    inherited = interceptor.forward(_details()).timeout
    assert inherited is not None
    assert 1.9 < inherited <= 2.0
    assert interceptor.forward(_details(timeout=0.5)).timeout == 0.5
    capped = interceptor.forward(_details(timeout=60)).timeout
    assert capped is not None
    assert capped <= 2.0


def test_call_under_a_passed_deadline_is_not_made() -> None:
    token = set_deadline(-1.0)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            CallContextInterceptor().forward(_details())
    finally:
        reset_deadline(token)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


# --- retries ------------------------------------------------------------------------------------


def test_only_methods_without_side_effects_are_retried() -> None:
    config = retry_service_config([CONTACTS])
    [method_config] = config["methodConfig"]
    retried = {name["method"] for name in method_config["name"]}
    assert retried == {
        "GetContact",
        "ListContacts",
        "SearchContacts",
        "LookupContactByIdentity",
        "BatchLookupContactsByIdentity",
        "GetOrganization",
        "ListOrganizations",
    }
    assert method_config["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]
    assert retry_service_config([]) == {}


# --- failures of the callee ---------------------------------------------------------------------


def _rpc_error(status: status_pb2.Status, code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    """The error a stub raises when the callee aborted with ``status`` (as abort_with sends it)."""
    trailers = grpc.aio.Metadata(("grpc-status-details-bin", status.SerializeToString()))
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailers, status.message, None)


def _round_trip(error: errors.DomainError, code: grpc.StatusCode) -> errors.DomainError:
    return error_from_rpc(_rpc_error(to_status(error), code))


def test_not_found_names_the_callees_resource() -> None:
    error = _round_trip(errors.NotFound("contact", "c1"), grpc.StatusCode.NOT_FOUND)
    assert isinstance(error, errors.NotFound)
    assert (error.resource_type, error.resource_name) == ("contact", "c1")
    assert error.message == "contact 'c1' not found"


def test_invalid_argument_keeps_every_violation_and_the_error_info_metadata() -> None:
    sent = errors.InvalidArgument(
        [errors.FieldViolation("id", "is required"), errors.FieldViolation("x", "too long")]
    )
    sent.metadata["stream_index"] = "3"
    error = _round_trip(sent, grpc.StatusCode.INVALID_ARGUMENT)
    assert isinstance(error, errors.InvalidArgument)
    assert error.violations == sent.violations
    assert error.message == sent.message
    assert error.metadata == {"stream_index": "3"}


def test_stale_version_stays_a_failed_precondition_of_the_same_type() -> None:
    error = _round_trip(
        errors.StaleVersion("contacts/c1", expected=1, actual=2),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert isinstance(error, errors.FailedPrecondition)
    assert (error.violation_type, error.subject) == ("STALE_VERSION", "contacts/c1")
    assert error.description == "expected version 1, current version is 2"


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (grpc.StatusCode.PERMISSION_DENIED, errors.PermissionDenied),
        (grpc.StatusCode.UNAUTHENTICATED, errors.Unauthenticated),
        (grpc.StatusCode.UNAVAILABLE, errors.Unavailable),
        (grpc.StatusCode.DEADLINE_EXCEEDED, errors.DeadlineExceeded),
        (grpc.StatusCode.ALREADY_EXISTS, errors.AlreadyExists),
        (grpc.StatusCode.NOT_FOUND, errors.NotFound),
        (grpc.StatusCode.INVALID_ARGUMENT, errors.InvalidArgument),
        (grpc.StatusCode.FAILED_PRECONDITION, errors.FailedPrecondition),
    ],
)
def test_status_without_details_still_maps_by_code(
    code: grpc.StatusCode, kind: type[errors.DomainError]
) -> None:
    # E.g. UNAVAILABLE from the channel itself (callee down), or a callee that is not ours.
    error = error_from_rpc(
        grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), "went wrong", None)
    )
    assert type(error) is kind
    assert error.message == "went wrong"


@pytest.mark.parametrize(
    "code",
    [grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.UNIMPLEMENTED],
)
def test_failure_the_caller_cannot_act_on_is_a_remote_call_failure(code: grpc.StatusCode) -> None:
    error = error_from_rpc(
        grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), "boom", None)
    )
    assert isinstance(error, RemoteCallFailed)
    assert error.code == code
    assert to_status(error).code == grpc.StatusCode.INTERNAL.value[0]
