"""One call through the gateway, whatever the protocol: admit, then forward or answer.

Admission is the same for gRPC and HTTP: authenticate the credential, check the role's
permission for the operation, count the call against the credential's rate limit. Forwarding
sends the request bytes unchanged to the backend, with the caller's tenant and actor as
metadata and what is left of the caller's deadline, through the backend's circuit breaker.
Failures become a :class:`GatewayError` carrying the gRPC status (and the backend's status
details, such as field violations), which each protocol renders its way.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import DecodeError, Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from crm_gateway.auth import AuthenticationError, Authenticator, Principal
from crm_gateway.backends import BACKEND_FAILURES, Backends
from crm_gateway.domain.roles import allows
from crm_gateway.routes import Route
from crm_platform.context import ACTOR_ID_HEADER, ACTOR_TYPE_HEADER, TENANT_HEADER

STATUS_DETAILS_KEY = "grpc-status-details-bin"
RETRY_AFTER_KEY = "retry-after"
_DOMAIN = "gateway.crm"

LocalHandler = Callable[[Principal, Any, float], Awaitable[Message]]
"""An operation the gateway answers itself: (caller, request message, seconds left) → reply."""


class GatewayError(Exception):
    """A failed call: its gRPC status, the status details (serialized google.rpc.Status), and
    for rate limits the seconds to wait."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        details: bytes | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details
        self.retry_after = retry_after

    @classmethod
    def with_info(
        cls,
        code: grpc.StatusCode,
        message: str,
        reason: str,
        metadata: Mapping[str, str] | None = None,
        retry_after: int | None = None,
    ) -> GatewayError:
        """An error with a google.rpc.ErrorInfo (and RetryInfo for ``retry_after``)."""
        status = status_pb2.Status(code=code.value[0], message=message)
        info = any_pb2.Any()
        info.Pack(error_details_pb2.ErrorInfo(reason=reason, domain=_DOMAIN, metadata=metadata))
        status.details.append(info)
        if retry_after is not None:
            retry = any_pb2.Any()
            retry.Pack(error_details_pb2.RetryInfo(retry_delay={"seconds": retry_after}))
            status.details.append(retry)
        return cls(code, message, details=status.SerializeToString(), retry_after=retry_after)

    @classmethod
    def invalid(cls, message: str, field: str, description: str) -> GatewayError:
        """INVALID_ARGUMENT with one field violation."""
        status = status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=message)
        bad = any_pb2.Any()
        bad.Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=field, description=description
                    )
                ]
            )
        )
        status.details.append(bad)
        return cls(grpc.StatusCode.INVALID_ARGUMENT, message, details=status.SerializeToString())

    @classmethod
    def from_rpc(cls, exc: grpc.aio.AioRpcError) -> GatewayError:
        """The backend's error, as the backend said it."""
        details = None
        trailers: Any = exc.trailing_metadata() or ()
        for key, value in trailers:
            if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
                details = value
        return cls(exc.code(), exc.details() or exc.code().name, details=details)

    def trailing_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        """What a gRPC abort carries besides code and message."""
        out: list[tuple[str, str | bytes]] = []
        if self.details is not None:
            out.append((STATUS_DETAILS_KEY, self.details))
        if self.retry_after is not None:
            out.append((RETRY_AFTER_KEY, str(self.retry_after)))
        return tuple(out)

    def status(self) -> status_pb2.Status | None:
        """The parsed status details, if any."""
        if self.details is None:
            return None
        status = status_pb2.Status()
        try:
            status.ParseFromString(self.details)
        except DecodeError:
            return None
        return status


class RateLimiter:
    """Per-credential moving-window limits (per gateway replica)."""

    def __init__(self, default: str) -> None:
        self.default = parse(default)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._items: dict[str, RateLimitItem] = {}

    def check(self, principal: Principal) -> None:
        """Count one call; raise RESOURCE_EXHAUSTED (with the seconds to wait) past the limit."""
        item = self.default
        if principal.rate_limit:  # the credential's own limit, parsed once
            item = self._items.get(principal.rate_limit) or parse(principal.rate_limit)
            self._items[principal.rate_limit] = item
        if self._limiter.hit(item, principal.credential_id):
            return
        reset = self._limiter.get_window_stats(item, principal.credential_id).reset_time
        wait = max(1, math.ceil(reset - time.time()))
        raise GatewayError.with_info(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"rate limit of {item} per credential exceeded; retry after {wait} s",
            "RATE_LIMITED",
            {"limit": str(item)},
            retry_after=wait,
        )


@dataclass
class Dispatcher:
    """Admits calls and carries them to the backends (or the gateway's own operations)."""

    authenticator: Authenticator
    backends: Backends
    limiter: RateLimiter
    backend_timeout: float
    local: Mapping[str, LocalHandler]

    def admit(self, route: Route, authorization: str | None, api_key: str | None) -> Principal:
        """Authenticate, authorize and rate-limit one call to ``route``."""
        try:
            principal = self.authenticator.authenticate(authorization, api_key)
        except AuthenticationError as exc:
            raise GatewayError.with_info(
                grpc.StatusCode.UNAUTHENTICATED, str(exc), "UNAUTHENTICATED"
            ) from None
        if not allows(principal.role, route.permission):
            raise GatewayError.with_info(
                grpc.StatusCode.PERMISSION_DENIED,
                f"role {principal.role.value!r} may not call {route.service}.{route.method}"
                f" (needs {route.permission})",
                "PERMISSION_DENIED",
                {"permission": route.permission, "role": principal.role.value},
            )
        self.limiter.check(principal)
        return principal

    def timeout(self, remaining: float | None) -> float:
        """The deadline of a backend call: the caller's remaining time, capped."""
        if remaining is None:
            return self.backend_timeout
        if remaining <= 0:
            raise GatewayError(grpc.StatusCode.DEADLINE_EXCEEDED, "the caller's deadline passed")
        return min(remaining, self.backend_timeout)

    @staticmethod
    def metadata(principal: Principal) -> tuple[tuple[str, str], ...]:
        """What the backends learn about the caller."""
        return (
            (TENANT_HEADER, principal.tenant_id),
            (ACTOR_ID_HEADER, principal.actor.id),
            (ACTOR_TYPE_HEADER, principal.actor.type.value),
        )

    def _pool(self, route: Route) -> Any:
        assert route.backend is not None
        pool = self.backends[route.backend]
        if not pool.breaker.allow():
            raise GatewayError.with_info(
                grpc.StatusCode.UNAVAILABLE,
                f"the {route.backend.value} service is unavailable (circuit open); retry later",
                "CIRCUIT_OPEN",
                {"backend": route.backend.value},
            )
        return pool

    async def unary(
        self, route: Route, principal: Principal, request: bytes, remaining: float | None
    ) -> bytes:
        """Forward (or answer) a unary call; returns the reply's bytes."""
        timeout = self.timeout(remaining)
        if route.backend is None:
            message = route.request_type()
            try:
                message.ParseFromString(request)
            except DecodeError:
                raise GatewayError.invalid("malformed request", "", "not a valid message") from None
            answer = await self.local[route.method](principal, message, timeout)
            return bytes(answer.SerializeToString())
        pool = self._pool(route)
        try:
            reply: bytes = await pool.unary_unary(route.backend_path)(
                request, timeout=timeout, metadata=self.metadata(principal)
            )
        except grpc.aio.AioRpcError as exc:
            pool.breaker.record(exc.code() not in BACKEND_FAILURES)
            raise GatewayError.from_rpc(exc) from None
        pool.breaker.record(True)
        return reply

    async def call(
        self, route: Route, principal: Principal, request: Message, timeout: float
    ) -> Message:
        """A typed backend call (the gateway's own operations use it)."""
        reply = await self.unary(route, principal, request.SerializeToString(), timeout)
        message = route.response_type()
        message.ParseFromString(reply)
        return message

    async def server_stream(
        self, route: Route, principal: Principal, request: bytes, remaining: float | None
    ) -> AsyncGenerator[bytes, None]:
        """Forward a server-streaming call; yields the replies' bytes.

        Streams (StreamKpis) live as long as the caller keeps them: no backend timeout unless
        the caller set a deadline.
        """
        pool = self._pool(route)
        call = pool.unary_stream(route.backend_path)(
            request, timeout=remaining, metadata=self.metadata(principal)
        )
        try:
            async for reply in call:
                pool.breaker.record(True)
                yield reply
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                pool.breaker.record(exc.code() not in BACKEND_FAILURES)
            raise GatewayError.from_rpc(exc) from None
        finally:
            call.cancel()

    async def client_stream(
        self,
        route: Route,
        principal: Principal,
        requests: AsyncIterator[bytes],
        remaining: float | None,
    ) -> bytes:
        """Forward a client-streaming call; returns the reply's bytes."""
        pool = self._pool(route)
        try:
            reply: bytes = await pool.stream_unary(route.backend_path)(
                requests, timeout=self.timeout(remaining), metadata=self.metadata(principal)
            )
        except grpc.aio.AioRpcError as exc:
            pool.breaker.record(exc.code() not in BACKEND_FAILURES)
            raise GatewayError.from_rpc(exc) from None
        pool.breaker.record(True)
        return reply
