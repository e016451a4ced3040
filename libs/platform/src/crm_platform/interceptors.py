"""The one server interceptor every service runs: call context, validation, errors, RED metrics.

For each RPC of a CRM service (not the standard ``grpc.*`` services), of any of the four kinds
(unary or streaming requests, unary or streaming responses), it

* reads the tenant and actor from metadata into the call context (missing tenant → UNAUTHENTICATED),
  and the caller's deadline into the call's deadline (calls to other services inherit it, see
  :mod:`crm_platform.clients`; every database command of the call is bounded by it too),
* validates the request against the rules declared in the protos (protovalidate) before the handler
  runs, so no handler sees an invalid request → INVALID_ARGUMENT with field violations. Streamed
  requests are validated one by one as the handler reads them (by iterating, or by
  ``context.read()``); the first invalid one ends the call with INVALID_ARGUMENT whose field paths
  are those of the message type, as for a unary call, while the message's 0-based position in the
  stream is in ``ErrorInfo.metadata["stream_index"]`` and in the status message,
* maps domain errors to status codes with rich details, and anything unexpected to INTERNAL
  (logged with the trace id) — bad input never surfaces as UNKNOWN,
* records duration per method and status code (``rpc.server.duration``; for a streaming call,
  the whole stream).

Handlers are coroutines, or async generators for streaming responses; a streaming-response
handler may also be a coroutine that writes with ``context.write()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import Any, cast

import grpc
import protovalidate
import pymongo
from google.protobuf.message import Message
from google.rpc import code_pb2, status_pb2
from opentelemetry import metrics
from pymongo.errors import ConnectionFailure, PyMongoError, ServerSelectionTimeoutError

from crm_platform import errors
from crm_platform.context import (
    call_from_metadata,
    reset_call,
    reset_deadline,
    set_call,
    set_deadline,
)
from crm_platform.grpc_errors import abort_with, to_status, violations_from_protovalidate

log = logging.getLogger(__name__)
meter = metrics.get_meter(__name__)
_duration = meter.create_histogram("rpc.server.duration", unit="ms")

Context = grpc.aio.ServicerContext[Any, Any]
Behaviour = Callable[[Any, Context], Any]
"""A handler as grpc calls it: (request or request stream, context) → awaitable or stream."""

STREAM_INDEX = "stream_index"
"""``ErrorInfo.metadata`` key: the 0-based position of the invalid message in a request stream."""


def _metadata(context: Context) -> dict[str, str]:
    return {
        key: value for key, value in (context.invocation_metadata() or ()) if isinstance(value, str)
    }


def _validate(request: object, stream_index: int | None = None) -> None:
    """Check ``request`` against its proto rules; ``InvalidArgument`` listing every violation."""
    if not isinstance(request, Message):
        return
    try:
        protovalidate.validate(request)
    except protovalidate.ValidationError as exc:
        violations = violations_from_protovalidate(exc.violations)
        if stream_index is None:
            raise errors.InvalidArgument(violations) from None
        summary = errors.InvalidArgument(violations).message
        error = errors.InvalidArgument(violations, f"stream message {stream_index}: {summary}")
        error.metadata[STREAM_INDEX] = str(stream_index)
        raise error from None


class _RequestStream:
    """The requests of a client-streaming call, each validated as the handler reads it."""

    def __init__(self, requests: AsyncIterable[Any], context: Context) -> None:
        self._requests = requests
        self._read = 0
        self.context = cast(Context, _StreamContext(context, self))

    def check(self, request: object) -> None:
        """Validate the next message of the stream (counted, so a violation names its index)."""
        index = self._read
        self._read += 1
        _validate(request, stream_index=index)

    async def messages(self) -> AsyncIterator[Any]:
        """The validated requests, in order."""
        async for request in self._requests:
            self.check(request)
            yield request


class _StreamContext:
    """The servicer context a client-streaming handler gets: ``read()`` validates as well."""

    def __init__(self, context: Context, stream: _RequestStream) -> None:
        self._context = context
        self._stream = stream

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)

    async def read(self) -> Any:
        request = await self._context.read()
        if request is not grpc.aio.EOF:  # type: ignore[attr-defined]  # missing in the stubs
            self._stream.check(request)
        return request


class _ServedCall:
    """One call of a service method, as an ``async with`` block around its handler.

    Entering starts the clock; :meth:`begin` sets the call context and deadline and validates
    (mapped like every other failure, so it runs inside the block); leaving maps the handler's
    exception to a status, records the duration and restores the context variables.
    """

    def __init__(self, method: str, context: Context) -> None:
        self.method = method
        self.context = context
        self._started = 0.0
        self._scope = contextlib.ExitStack()

    async def __aenter__(self) -> _ServedCall:
        self._started = time.perf_counter()
        return self

    def begin(self, request: Any, *, streaming: bool) -> tuple[Any, Context]:
        """Enter the call: the (request, context) to hand to the handler."""
        call = call_from_metadata(_metadata(self.context))
        context = self.context
        if streaming:
            stream = _RequestStream(request, context)
            request, context = stream.messages(), stream.context
        else:
            _validate(request)
        remaining = self.context.time_remaining()
        self._scope.callback(reset_call, set_call(call))
        self._scope.callback(reset_deadline, set_deadline(remaining))
        # The caller's deadline bounds every database command of the call too.
        self._scope.enter_context(pymongo.timeout(remaining))
        return request, context

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        code = "OK"
        try:
            if isinstance(exc, grpc.aio.AbortError):
                code = str(getattr(self.context.code(), "name", "UNKNOWN"))
            elif isinstance(exc, asyncio.CancelledError | GeneratorExit):
                code = "CANCELLED"
            elif isinstance(exc, Exception):
                mapped = _infrastructure_error(exc)
                code = _code(_status_code(mapped)).name
                await self._abort(mapped)  # raises AbortError in place of exc
        finally:
            self._scope.close()
            elapsed_ms = (time.perf_counter() - self._started) * 1000
            _duration.record(elapsed_ms, {"rpc.method": self.method, "rpc.grpc.status_code": code})

    async def _abort(self, exc: BaseException) -> None:
        if isinstance(exc, errors.DomainError):
            status = to_status(exc)
            if status.code == code_pb2.INTERNAL:
                # A domain error without a code of its own, e.g. another service's failure.
                log.error("%s failed: %s", self.method, exc)
        else:
            log.error("unhandled error in %s", self.method, exc_info=exc)
            status = status_pb2.Status(code=code_pb2.INTERNAL, message="internal error")
        await abort_with(self.context, status)


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
        codec = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary is not None:
            behaviour = _unary_response(method, handler.unary_unary, streaming=False)
            return grpc.unary_unary_rpc_method_handler(behaviour, **codec)
        if handler.unary_stream is not None:
            behaviour = _stream_response(method, handler.unary_stream, streaming=False)
            return grpc.unary_stream_rpc_method_handler(behaviour, **codec)
        if handler.stream_unary is not None:
            behaviour = _unary_response(method, handler.stream_unary, streaming=True)
            return grpc.stream_unary_rpc_method_handler(behaviour, **codec)
        if handler.stream_stream is not None:
            behaviour = _stream_response(method, handler.stream_stream, streaming=True)
            return grpc.stream_stream_rpc_method_handler(behaviour, **codec)
        return handler


def _unary_response(method: str, behaviour: Behaviour, *, streaming: bool) -> Behaviour:
    """Wrap a handler that answers with one message (unary or client-streaming)."""

    async def wrapped(request: Any, context: Context) -> Message:
        async with _ServedCall(method, context) as call:
            response: Message = await behaviour(*call.begin(request, streaming=streaming))
            return response

    return wrapped


def _stream_response(method: str, behaviour: Behaviour, *, streaming: bool) -> Behaviour:
    """Wrap a handler that answers with a stream (server- or bidirectional streaming)."""
    if inspect.isasyncgenfunction(behaviour):

        async def generate(request: Any, context: Context) -> AsyncIterator[Message]:
            async with _ServedCall(method, context) as call:
                async for response in behaviour(*call.begin(request, streaming=streaming)):
                    yield response

        return generate

    async def write(request: Any, context: Context) -> None:
        # A coroutine handler answers with context.write(); grpc tells the two kinds apart by
        # the function's type, so the wrapper has to be of the same kind.
        async with _ServedCall(method, context) as call:
            await behaviour(*call.begin(request, streaming=streaming))

    return write


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
