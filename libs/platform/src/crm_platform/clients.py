"""Calling another CRM service: the one way to open a channel, forward the caller, map failures.

A service opens one channel per callee at start-up and closes it on shutdown::

    channel = open_channel(settings.contacts_address, retry_idempotent=[CONTACTS_SERVICE])
    contacts = ContactsServiceStub(channel)
    ...
    try:
        reply = await contacts.GetContact(GetContactRequest(id=contact_id))
    except grpc.aio.AioRpcError as exc:
        raise error_from_rpc(exc) from exc

Every call on such a channel carries

* the current call context (:mod:`crm_platform.context`): tenant and actor as the same
  ``x-tenant-id`` / ``x-actor-id`` / ``x-actor-type`` metadata the callee's interceptor reads
  (metadata the call sets explicitly wins);
* a deadline: what is left of the current server call's deadline (so the callee gives up when
  our caller has; once it has passed, the call fails at once with DEADLINE_EXCEEDED), capped by
  the call's own ``timeout``; outside a server call (consumers,
  background work) or when the caller set none, the call's ``timeout`` or the channel's
  ``default_timeout``, so that no call waits forever;
* the trace context: the OpenTelemetry gRPC client instrumentation that
  :func:`crm_platform.telemetry.configure_telemetry` installs wraps ``grpc.aio.insecure_channel``
  and ``grpc.aio.secure_channel``, which :func:`open_channel` calls (at call time, so channels
  opened after the telemetry set-up, as in :func:`crm_platform.server.run`, are traced).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, TypeVar

import grpc
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import DecodeError, Message
from google.rpc import error_details_pb2, status_pb2

from crm_platform import errors
from crm_platform.context import (
    ACTOR_ID_HEADER,
    ACTOR_TYPE_HEADER,
    TENANT_HEADER,
    current_call_or_none,
    deadline_remaining,
)

DEFAULT_TIMEOUT_SECONDS = 10.0
"""Deadline of a call made outside a server call (or under a caller without a deadline)."""

_IDEMPOTENT = (
    descriptor_pb2.MethodOptions.NO_SIDE_EFFECTS,
    descriptor_pb2.MethodOptions.IDEMPOTENT,
)
_STATUS_DETAILS_KEY = "grpc-status-details-bin"

M = TypeVar("M", bound=Message)


def retry_service_config(
    services: Sequence[ServiceDescriptor], *, max_attempts: int = 3
) -> dict[str, Any]:
    """A gRPC service config retrying the idempotent methods of ``services`` on UNAVAILABLE.

    Idempotent means declared ``NO_SIDE_EFFECTS`` or ``IDEMPOTENT`` in the proto, so repeating
    the call is safe. Only UNAVAILABLE (the callee was not reached, or is going away) is retried:
    DEADLINE_EXCEEDED is not, since the deadline covers every attempt. Retry throttling stops
    retries when most calls fail, so an outage is not multiplied by ``max_attempts``.
    """
    names = [
        {"service": service.full_name, "method": method.name}
        for service in services
        for method in service.methods
        if method.GetOptions().idempotency_level in _IDEMPOTENT
    ]
    if not names:
        return {}
    return {
        "methodConfig": [
            {
                "name": names,
                "retryPolicy": {
                    "maxAttempts": max_attempts,
                    "initialBackoff": "0.1s",
                    "maxBackoff": "1s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ],
        "retryThrottling": {"maxTokens": 10, "tokenRatio": 0.1},
    }


def open_channel(
    target: str,
    *,
    retry_idempotent: Sequence[ServiceDescriptor] = (),
    default_timeout: float | None = DEFAULT_TIMEOUT_SECONDS,
    credentials: grpc.ChannelCredentials | None = None,
    options: Sequence[tuple[str, Any]] = (),
) -> grpc.aio.Channel:
    """A channel to another service (``host:port`` or any gRPC target) that forwards the call
    context and deadline on every call (see the module docstring); the caller closes it.

    ``retry_idempotent``: services whose idempotent methods are retried on UNAVAILABLE (see
    :func:`retry_service_config`); other calls are never retried. ``default_timeout``: the
    deadline of calls made without one to inherit or pass (``None``: no deadline).
    ``credentials``: TLS; plaintext without. ``options``: further gRPC channel arguments.
    """
    channel_options = list(options)
    config = retry_service_config(retry_idempotent)
    if config:
        channel_options += [("grpc.service_config", json.dumps(config)), ("grpc.enable_retries", 1)]
    interceptors = [CallContextInterceptor(default_timeout)]
    # Looked up at call time: telemetry replaces these functions with instrumented ones.
    if credentials is None:
        return grpc.aio.insecure_channel(
            target,
            options=channel_options,
            interceptors=interceptors,  # type: ignore[arg-type]  # the stubs miss multi-kind ones
        )
    return grpc.aio.secure_channel(
        target,
        credentials,
        options=channel_options,
        interceptors=interceptors,  # type: ignore[arg-type]
    )


class CallContextInterceptor(
    grpc.aio.UnaryUnaryClientInterceptor,  # type: ignore[type-arg]
    grpc.aio.UnaryStreamClientInterceptor,  # type: ignore[type-arg]
    grpc.aio.StreamUnaryClientInterceptor,  # type: ignore[type-arg]
    grpc.aio.StreamStreamClientInterceptor,  # type: ignore[type-arg]
):
    """Adds the current call context's metadata and the inherited deadline to outgoing calls."""

    def __init__(self, default_timeout: float | None = DEFAULT_TIMEOUT_SECONDS) -> None:
        self.default_timeout = default_timeout

    def forward(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        """The call details to send: call context metadata added, deadline settled."""
        metadata = grpc.aio.Metadata(*tuple(details.metadata or ()))
        call = current_call_or_none()
        if call is not None:
            for key, value in (
                (TENANT_HEADER, call.tenant_id),
                (ACTOR_ID_HEADER, call.actor.id),
                (ACTOR_TYPE_HEADER, call.actor.type.value),
            ):
                if key not in metadata:
                    metadata.add(key, value)
        return grpc.aio.ClientCallDetails(
            method=details.method,
            timeout=self._timeout(details.timeout),
            metadata=metadata,
            credentials=details.credentials,
            wait_for_ready=details.wait_for_ready,
        )

    def _timeout(self, explicit: float | None) -> float | None:
        remaining = deadline_remaining()
        if remaining is None:
            return self.default_timeout if explicit is None else explicit
        if remaining <= 0:
            # Our caller has given up: fail here, as the channel would on an expired deadline
            # (grpc does not reliably fail a call whose timeout is 0).
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                grpc.aio.Metadata(),
                grpc.aio.Metadata(),
                "the deadline of the call being served has passed",
                None,
            )
        return remaining if explicit is None else min(explicit, remaining)

    async def intercept_unary_unary(
        self, continuation: Any, client_call_details: Any, request: Any
    ) -> Any:
        return await continuation(self.forward(client_call_details), request)

    async def intercept_unary_stream(
        self, continuation: Any, client_call_details: Any, request: Any
    ) -> Any:
        return await continuation(self.forward(client_call_details), request)

    async def intercept_stream_unary(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return await continuation(self.forward(client_call_details), request_iterator)

    async def intercept_stream_stream(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return await continuation(self.forward(client_call_details), request_iterator)


# --- failures of the callee ---------------------------------------------------------------------


class RemoteCallFailed(errors.DomainError):
    """Another service failed in a way the caller cannot act on (INTERNAL, UNKNOWN,
    UNIMPLEMENTED, RESOURCE_EXHAUSTED, ...). Not re-raised as such, it answers the caller's own
    caller with INTERNAL and is logged by the server interceptor."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        self.code = code
        super().__init__(f"{code.name}: {message}" if message else code.name)


def error_from_rpc(exc: grpc.aio.AioRpcError) -> errors.DomainError:
    """The domain error for a failed call to another CRM service.

    NOT_FOUND → :class:`~crm_platform.errors.NotFound` and ALREADY_EXISTS →
    :class:`~crm_platform.errors.AlreadyExists` (resource from ``ResourceInfo``),
    INVALID_ARGUMENT → :class:`~crm_platform.errors.InvalidArgument` (violations from
    ``BadRequest``), FAILED_PRECONDITION → :class:`~crm_platform.errors.FailedPrecondition`
    (from ``PreconditionFailure``), PERMISSION_DENIED, UNAUTHENTICATED, UNAVAILABLE and
    DEADLINE_EXCEEDED → the errors of the same names; anything else → :class:`RemoteCallFailed`.
    The callee's message and ``ErrorInfo.metadata`` are kept. Field paths of an InvalidArgument
    name the callee's request: re-raise it only if the caller's request carried those fields
    as they were, otherwise the bad request is the calling service's own bug.
    """
    code = exc.code()
    message = exc.details() or ""
    details = _status_details(exc)
    error: errors.DomainError
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        bad_request = _detail(details, error_details_pb2.BadRequest)
        violations = [
            errors.FieldViolation(v.field, v.description)
            for v in (bad_request.field_violations if bad_request else ())
        ]
        error = errors.InvalidArgument(violations, message or None)
    elif code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.ALREADY_EXISTS):
        resource = _detail(details, error_details_pb2.ResourceInfo)
        kind = errors.NotFound if code == grpc.StatusCode.NOT_FOUND else errors.AlreadyExists
        error = kind(
            resource.resource_type if resource else "resource",
            resource.resource_name if resource else "",
        )
    elif code == grpc.StatusCode.FAILED_PRECONDITION:
        failure = _detail(details, error_details_pb2.PreconditionFailure)
        if failure is not None and failure.violations:
            first = failure.violations[0]
            error = errors.FailedPrecondition(first.type, first.subject, first.description)
        else:
            info = _detail(details, error_details_pb2.ErrorInfo)
            error = errors.FailedPrecondition(
                info.reason if info and info.reason else "FAILED_PRECONDITION", "", message
            )
    elif code in _PLAIN_ERRORS:
        error = _PLAIN_ERRORS[code](message or code.name)
    else:
        return RemoteCallFailed(code, message)
    if message:
        error.message = message
        error.args = (message,)
    info = _detail(details, error_details_pb2.ErrorInfo)
    if info is not None:
        error.metadata.update(info.metadata)
    return error


_PLAIN_ERRORS: dict[grpc.StatusCode, type[errors.DomainError]] = {
    grpc.StatusCode.PERMISSION_DENIED: errors.PermissionDenied,
    grpc.StatusCode.UNAUTHENTICATED: errors.Unauthenticated,
    grpc.StatusCode.UNAVAILABLE: errors.Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: errors.DeadlineExceeded,
}


def _status_details(exc: grpc.aio.AioRpcError) -> list[Any]:
    """The ``google.rpc.Status`` details the callee sent (``grpc-status-details-bin``)."""
    trailers: Any = exc.trailing_metadata() or ()  # aio Metadata: (key, value) pairs
    for key, value in trailers:
        if key == _STATUS_DETAILS_KEY and isinstance(value, bytes):
            try:
                return list(status_pb2.Status.FromString(value).details)
            except DecodeError:
                return []
    return []


def _detail(details: Sequence[Any], kind: type[M]) -> M | None:
    """The first detail of type ``kind``, if any."""
    for packed in details:
        message = kind()
        if packed.Unpack(message):
            return message
    return None
