"""A fake gateway for the client's unit tests: a real gRPC server on 127.0.0.1 (a free port)
that serves every method of ``crm.gateway.v1`` generically from the descriptors.

Each call is recorded (method, request, metadata, deadline); the answer is the response the test
set for the method (default: an empty response), or the failure it set (status code, message,
``google.rpc`` details in ``grpc-status-details-bin`` and extra trailers such as ``retry-after``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from google.protobuf import any_pb2, message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from google.rpc import status_pb2

from crm.gateway.v1 import gateway_pb2
from crm.gateway.v1 import sales_pb2 as gateway_sales_pb2

CODE_NUMBERS = {code: code.value[0] for code in grpc.StatusCode}


@dataclass
class RecordedCall:
    """One call the fake gateway answered."""

    method: str
    request: Any
    metadata: dict[str, str]
    time_remaining: float | None


@dataclass
class Failure:
    """How the fake gateway fails a method."""

    code: grpc.StatusCode
    message: str
    details: Sequence[Message] = ()
    trailers: Sequence[tuple[str, str]] = ()


@dataclass
class FakeGateway:
    """The state of the fake gateway; tests set ``responses`` and ``failures`` by method name
    (``"GetCaller"``, ``"CreateContact"``...)."""

    target: str
    calls: list[RecordedCall] = field(default_factory=list)
    responses: dict[str, Any] = field(default_factory=dict)
    failures: dict[str, Failure] = field(default_factory=dict)

    def reset(self) -> None:
        self.calls.clear()
        self.responses.clear()
        self.failures.clear()

    def fail(
        self,
        method: str,
        code: grpc.StatusCode,
        message: str,
        *details: Message,
        trailers: Sequence[tuple[str, str]] = (),
    ) -> None:
        """Make ``method`` fail with ``code``, ``message`` and rich ``details``."""
        self.failures[method] = Failure(code, message, details, trailers)

    def last(self, method: str | None = None) -> RecordedCall:
        """The most recent call (of ``method``)."""
        calls = [c for c in self.calls if method is None or c.method == method]
        assert calls, f"no call of {method or 'any method'}; calls: {self.calls}"
        return calls[-1]


def _abort(context: grpc.ServicerContext, failure: Failure) -> None:
    packed = []
    for detail in failure.details:
        holder = any_pb2.Any()
        holder.Pack(detail)
        packed.append(holder)
    status = status_pb2.Status(
        code=CODE_NUMBERS[failure.code], message=failure.message, details=packed
    )
    context.set_trailing_metadata(
        (("grpc-status-details-bin", status.SerializeToString()), *failure.trailers)
    )
    context.abort(failure.code, failure.message)


def _handler(state: FakeGateway, method: MethodDescriptor) -> grpc.RpcMethodHandler[Any, Any]:
    request_class = message_factory.GetMessageClass(method.input_type)
    response_class = message_factory.GetMessageClass(method.output_type)

    def answer(request: Any, context: grpc.ServicerContext) -> Any:
        metadata = {str(k): str(v) for k, v in context.invocation_metadata()}
        state.calls.append(RecordedCall(method.name, request, metadata, context.time_remaining()))
        failure = state.failures.get(method.name)
        if failure is not None:
            _abort(context, failure)
        return state.responses.get(method.name, response_class())

    def unary_unary(request: Any, context: grpc.ServicerContext) -> Any:
        return answer(request, context)

    def unary_stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        responses = answer(request, context)
        yield from responses if isinstance(responses, list) else [responses]

    def stream_unary(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
        return answer(list(requests), context)

    deserialize: Callable[[bytes], Any] = request_class.FromString
    serialize: Callable[[Any], bytes] = response_class.SerializeToString
    if method.server_streaming:
        return grpc.unary_stream_rpc_method_handler(unary_stream, deserialize, serialize)
    if method.client_streaming:
        return grpc.stream_unary_rpc_method_handler(stream_unary, deserialize, serialize)
    return grpc.unary_unary_rpc_method_handler(unary_unary, deserialize, serialize)


@pytest.fixture(scope="session")
def _fake_gateway_server() -> Iterator[FakeGateway]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    port = server.add_insecure_port("127.0.0.1:0")
    state = FakeGateway(target=f"127.0.0.1:{port}")
    services = [
        service
        for file in (gateway_pb2.DESCRIPTOR, gateway_sales_pb2.DESCRIPTOR)
        for service in file.services_by_name.values()
    ]
    for service in services:
        handlers = {m.name: _handler(state, m) for m in service.methods}
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(service.full_name, handlers),)
        )
    server.start()
    yield state
    server.stop(grace=None)


@pytest.fixture
def gateway(_fake_gateway_server: FakeGateway) -> Iterator[FakeGateway]:
    """The fake gateway, with no calls, responses or failures."""
    _fake_gateway_server.reset()
    yield _fake_gateway_server
    _fake_gateway_server.reset()


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No credentials or gateway from the developer's shell; wide, colourless tables."""
    for name in ("CRM_GATEWAY", "CRM_TOKEN", "CRM_API_KEY", "CRM_TIMEOUT", "FORCE_COLOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("NO_COLOR", "1")
