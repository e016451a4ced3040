"""The one server interceptor every service runs: call context, validation, errors, RED metrics.

For each RPC of a CRM service (not the standard ``grpc.*`` services) it

* reads the tenant and actor from metadata into the call context (missing tenant → UNAUTHENTICATED),
* validates the request against the rules declared in the protos (protovalidate) before the handler
  runs, so no handler sees an invalid request → INVALID_ARGUMENT with field violations,
* maps domain errors to status codes with rich details, and anything unexpected to INTERNAL
  (logged with the trace id) — bad input never surfaces as UNKNOWN,
* records duration per method and status code.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import protovalidate
import pymongo
from google.protobuf.message import Message
from google.rpc import code_pb2, status_pb2
from opentelemetry import metrics
from pymongo.errors import ConnectionFailure, PyMongoError, ServerSelectionTimeoutError

from crm_platform import errors
from crm_platform.context import call_from_metadata, reset_call, set_call
from crm_platform.grpc_errors import abort_with, to_status, violations_from_protovalidate

log = logging.getLogger(__name__)
meter = metrics.get_meter(__name__)
_duration = meter.create_histogram("rpc.server.duration", unit="ms")

Context = grpc.aio.ServicerContext[Any, Any]


def _metadata(context: Context) -> dict[str, str]:
    return {
        key: value for key, value in (context.invocation_metadata() or ()) if isinstance(value, str)
    }


class ServiceInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """See the module docstring; ``exempt_prefixes`` skip tenant checks (health, reflection)."""

    def __init__(self, exempt_prefixes: tuple[str, ...] = ("/grpc.",)) -> None:
        self.exempt_prefixes = exempt_prefixes

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or method.startswith(self.exempt_prefixes):
            return handler
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(method, handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(method, handler.unary_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    async def _enter(self, request: Message, context: Context) -> object:
        call = call_from_metadata(_metadata(context))
        try:
            if isinstance(request, Message):
                protovalidate.validate(request)
        except protovalidate.ValidationError as exc:
            raise errors.InvalidArgument(violations_from_protovalidate(exc.violations)) from None
        return set_call(call)

    async def _fail(self, method: str, exc: BaseException, context: Context) -> None:
        exc = _infrastructure_error(exc)
        if isinstance(exc, errors.DomainError):
            status = to_status(exc)
        else:
            log.exception("unhandled error in %s", method)
            status = status_pb2.Status(code=code_pb2.INTERNAL, message="internal error")
        await abort_with(context, status)

    def _wrap_unary(
        self, method: str, behaviour: Callable[[Message, Context], Awaitable[Message]]
    ) -> Callable[[Message, Context], Awaitable[Message]]:
        async def wrapped(request: Message, context: Context) -> Message:
            started = time.perf_counter()
            code = "OK"
            token: object | None = None
            try:
                token = await self._enter(request, context)
                remaining = context.time_remaining()
                # The caller's deadline bounds every database command of the call too.
                with pymongo.timeout(remaining):
                    return await behaviour(request, context)
            except grpc.aio.AbortError:
                code = str(getattr(context.code(), "name", "UNKNOWN"))
                raise
            except asyncio.CancelledError:
                code = "CANCELLED"
                raise
            except Exception as exc:
                code = _code(_status_code(_infrastructure_error(exc))).name
                await self._fail(method, exc, context)
                raise  # pragma: no cover - abort raises
            finally:
                if token is not None:
                    reset_call(token)
                elapsed_ms = (time.perf_counter() - started) * 1000
                _duration.record(elapsed_ms, {"rpc.method": method, "rpc.grpc.status_code": code})

        return wrapped

    def _wrap_stream(
        self, method: str, behaviour: Callable[[Message, Context], AsyncIterator[Message]]
    ) -> Callable[[Message, Context], AsyncIterator[Message]]:
        async def wrapped(request: Message, context: Context) -> AsyncIterator[Message]:
            token: object | None = None
            try:
                token = await self._enter(request, context)
                async for response in behaviour(request, context):
                    yield response
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                await self._fail(method, exc, context)
            finally:
                if token is not None:
                    reset_call(token)

        return wrapped


def _infrastructure_error(exc: BaseException) -> BaseException:
    """Database failures as the domain errors clients can act on (retry, or give up)."""
    if (
        isinstance(exc, PyMongoError)
        and exc.timeout
        and not isinstance(exc, ServerSelectionTimeoutError)
    ):
        return errors.DeadlineExceeded(f"database: {exc}")
    if isinstance(exc, ConnectionFailure) or (
        isinstance(exc, PyMongoError) and exc.has_error_label("TransientTransactionError")
    ):
        return errors.Unavailable(f"database unavailable: {exc}")
    return exc


def _status_code(exc: BaseException) -> int:
    if isinstance(exc, errors.DomainError):
        return int(to_status(exc).code)
    return int(code_pb2.INTERNAL)


def _code(value: int) -> grpc.StatusCode:
    for code in grpc.StatusCode:
        if code.value[0] == value:
            return code
    return grpc.StatusCode.UNKNOWN
