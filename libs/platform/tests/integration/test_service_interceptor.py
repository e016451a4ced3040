"""The service interceptor on every kind of RPC: a real aio server on loopback (no infrastructure).

The test service ``test.Contacts`` speaks crm.contacts.v1 messages through generic handlers:
``GetContactRequest`` in (its ``id`` is required by the proto rules), ``GetContactResponse`` out,
with the serving tenant in ``contact.tenant_id``. A request id ``missing`` makes a handler raise
``NotFound``, ``db-down`` a database outage, ``bug`` an unexpected error.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from pymongo.errors import ServerSelectionTimeoutError

from crm.contacts.v1 import contacts_pb2 as pb
from crm_platform import errors, interceptors
from crm_platform.context import current_call, deadline_remaining
from crm_platform.interceptors import ServiceInterceptor

SERVICE = "test.Contacts"
METADATA = (("x-tenant-id", "acme"), ("x-actor-id", "alice"), ("x-actor-type", "agent"))


def _answer(request: pb.GetContactRequest, count: int = 1) -> pb.GetContactResponse:
    """The reply to one request, or the failure its id asks for."""
    if request.id == "missing":
        raise errors.NotFound("contact", request.id)
    if request.id == "db-down":
        raise ServerSelectionTimeoutError("no primary")
    if request.id == "bug":
        raise KeyError("oops")
    call = current_call()
    return pb.GetContactResponse(
        contact=pb.Contact(
            id=request.id, tenant_id=call.tenant_id, owner_id=str(call.actor), version=count
        )
    )


async def _get(request: pb.GetContactRequest, context: Any) -> pb.GetContactResponse:
    remaining = deadline_remaining()
    reply = _answer(request)
    reply.contact.job_title = "no deadline" if remaining is None else f"{remaining:.3f}"
    return reply


async def _repeat(request: pb.GetContactRequest, context: Any) -> AsyncIterator[Any]:
    for count in range(1, 4):
        yield _answer(request, count)


async def _count(requests: AsyncIterable[pb.GetContactRequest], context: Any) -> Any:
    """Client streaming: one answer naming every id received."""
    ids = [request.id async for request in requests]
    reply = _answer(pb.GetContactRequest(id=ids[-1] if ids else "none"), len(ids))
    reply.contact.display_name = ",".join(ids)
    return reply


async def _count_by_read(requests: AsyncIterable[Any], context: Any) -> Any:
    """Client streaming with the reader API instead of the iterator."""
    ids: list[str] = []
    while (request := await context.read()) is not grpc.aio.EOF:  # type: ignore[attr-defined]
        ids.append(request.id)
    reply = _answer(pb.GetContactRequest(id=ids[-1] if ids else "none"), len(ids))
    reply.contact.display_name = ",".join(ids)
    return reply


async def _echo(requests: AsyncIterable[pb.GetContactRequest], context: Any) -> AsyncIterator[Any]:
    """Bidirectional streaming: one answer per request, as it arrives."""
    count = 0
    async for request in requests:
        count += 1
        yield _answer(request, count)


async def _echo_by_write(requests: AsyncIterable[pb.GetContactRequest], context: Any) -> None:
    """Bidirectional streaming with the writer API (a coroutine, not a generator)."""
    count = 0
    async for request in requests:
        count += 1
        await context.write(_answer(request, count))


def _handlers() -> grpc.GenericRpcHandler[Any, Any]:
    codec: dict[str, Any] = {
        "request_deserializer": pb.GetContactRequest.FromString,
        "response_serializer": pb.GetContactResponse.SerializeToString,
    }
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Get": grpc.unary_unary_rpc_method_handler(_get, **codec),
            "Repeat": grpc.unary_stream_rpc_method_handler(_repeat, **codec),
            "Count": grpc.stream_unary_rpc_method_handler(_count, **codec),
            "CountByRead": grpc.stream_unary_rpc_method_handler(_count_by_read, **codec),
            "Echo": grpc.stream_stream_rpc_method_handler(_echo, **codec),
            "EchoByWrite": grpc.stream_stream_rpc_method_handler(_echo_by_write, **codec),
        },
    )


@pytest.fixture(scope="module")
async def channel() -> AsyncIterator[grpc.aio.Channel]:
    """A channel to the test service behind the ServiceInterceptor."""
    server = grpc.aio.server(interceptors=[ServiceInterceptor()])
    server.add_generic_rpc_handlers((_handlers(),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield channel
    await server.stop(None)


def _method(channel: grpc.aio.Channel, kind: str, name: str) -> Any:
    factory = getattr(channel, kind)
    return factory(
        f"/{SERVICE}/{name}",
        request_serializer=pb.GetContactRequest.SerializeToString,
        response_deserializer=pb.GetContactResponse.FromString,
    )


def _requests(*ids: str) -> Iterator[pb.GetContactRequest]:
    return (pb.GetContactRequest(id=i) for i in ids)


def _details(error: grpc.aio.AioRpcError) -> tuple[dict[str, str], dict[str, str]]:
    """The BadRequest violations (field → description) and the ErrorInfo metadata."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, "no rich status details"
    violations: dict[str, str] = {}
    info_metadata: dict[str, str] = {}
    for detail in status.details:
        bad_request = error_details_pb2.BadRequest()
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(bad_request):
            violations = {v.field: v.description for v in bad_request.field_violations}
        elif detail.Unpack(info):
            info_metadata = dict(info.metadata)
    return violations, info_metadata


# --- client streaming ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Count", "CountByRead"])
async def test_client_stream_handler_reads_every_message_in_the_callers_context(
    channel: grpc.aio.Channel, name: str
) -> None:
    count = _method(channel, "stream_unary", name)
    reply = await count(_requests("a", "b", "c"), metadata=METADATA, timeout=5)
    assert reply.contact.display_name == "a,b,c"
    assert reply.contact.version == 3
    assert (reply.contact.tenant_id, reply.contact.owner_id) == ("acme", "agent:alice")


@pytest.mark.parametrize("name", ["Count", "CountByRead"])
async def test_invalid_message_in_a_client_stream_is_refused_with_its_position(
    channel: grpc.aio.Channel, name: str
) -> None:
    count = _method(channel, "stream_unary", name)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await count(_requests("a", "b", "", "d"), metadata=METADATA, timeout=5)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations, metadata = _details(info.value)
    assert list(violations) == ["id"]  # a path in the message, as for a unary call
    assert metadata == {"stream_index": "2"}
    assert (info.value.details() or "").startswith("stream message 2: invalid request: id:")


async def test_client_stream_without_tenant_is_unauthenticated(channel: grpc.aio.Channel) -> None:
    count = _method(channel, "stream_unary", "Count")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await count(_requests("a"), timeout=5)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    ("last_id", "code"),
    [
        ("missing", grpc.StatusCode.NOT_FOUND),
        ("db-down", grpc.StatusCode.UNAVAILABLE),
        ("bug", grpc.StatusCode.INTERNAL),
    ],
)
async def test_client_stream_failures_map_like_unary_ones(
    channel: grpc.aio.Channel, last_id: str, code: grpc.StatusCode
) -> None:
    count = _method(channel, "stream_unary", "Count")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await count(_requests("a", last_id), metadata=METADATA, timeout=5)
    assert info.value.code() == code
    if code == grpc.StatusCode.INTERNAL:
        assert info.value.details() == "internal error"  # no internals leak to the caller


# --- bidirectional streaming --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Echo", "EchoByWrite"])
async def test_bidirectional_stream_answers_each_message(
    channel: grpc.aio.Channel, name: str
) -> None:
    echo = _method(channel, "stream_stream", name)
    replies = [r async for r in echo(_requests("a", "b"), metadata=METADATA, timeout=5)]
    assert [(r.contact.id, r.contact.version, r.contact.tenant_id) for r in replies] == [
        ("a", 1, "acme"),
        ("b", 2, "acme"),
    ]


@pytest.mark.parametrize("name", ["Echo", "EchoByWrite"])
async def test_bidirectional_stream_stops_at_the_first_invalid_message(
    channel: grpc.aio.Channel, name: str
) -> None:
    echo = _method(channel, "stream_stream", name)
    call = echo(_requests("a", "x" * 65, "c"), metadata=METADATA, timeout=5)
    received: list[str] = []

    async def read_all() -> None:
        async for reply in call:
            received.append(reply.contact.id)

    with pytest.raises(grpc.aio.AioRpcError) as info:
        await read_all()
    assert received == ["a"]
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations, metadata = _details(info.value)
    assert list(violations) == ["id"]
    assert metadata == {"stream_index": "1"}


async def test_domain_error_in_a_bidirectional_stream_maps_to_its_status(
    channel: grpc.aio.Channel,
) -> None:
    echo = _method(channel, "stream_stream", "Echo")
    call = echo(_requests("a", "missing"), metadata=METADATA, timeout=5)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in call:
            pass
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


# --- every kind: deadline, metric ---------------------------------------------------------------


async def test_handler_sees_the_callers_deadline(channel: grpc.aio.Channel) -> None:
    get = _method(channel, "unary_unary", "Get")
    reply = await get(pb.GetContactRequest(id="a"), metadata=METADATA, timeout=3)
    assert 2.0 < float(reply.contact.job_title) <= 3.1  # grpc-timeout is sent rounded up
    reply = await get(pb.GetContactRequest(id="a"), metadata=METADATA)
    assert reply.contact.job_title == "no deadline"


async def test_server_stream_is_served_in_the_callers_context(channel: grpc.aio.Channel) -> None:
    repeat = _method(channel, "unary_stream", "Repeat")
    replies = [r async for r in repeat(pb.GetContactRequest(id="a"), metadata=METADATA, timeout=5)]
    assert [(r.contact.version, r.contact.tenant_id) for r in replies] == [
        (1, "acme"),
        (2, "acme"),
        (3, "acme"),
    ]


class _Recorder:
    """Stands in for the duration histogram."""

    def __init__(self) -> None:
        self.points: list[tuple[float, dict[str, str]]] = []

    def record(self, value: float, attributes: dict[str, str]) -> None:
        self.points.append((value, attributes))


async def test_duration_is_recorded_for_each_stream_with_its_status_code(
    channel: grpc.aio.Channel, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = _Recorder()
    monkeypatch.setattr(interceptors, "_duration", recorder)
    await _method(channel, "stream_unary", "Count")(_requests("a"), metadata=METADATA, timeout=5)
    with pytest.raises(grpc.aio.AioRpcError):
        async for _ in _method(channel, "stream_stream", "Echo")(
            _requests("missing"), metadata=METADATA, timeout=5
        ):
            pass
    with pytest.raises(grpc.aio.AioRpcError):
        await _method(channel, "stream_unary", "Count")(_requests(""), metadata=METADATA, timeout=5)
    await asyncio.sleep(0.05)  # the server records after the status is sent
    assert [attributes for _, attributes in recorder.points] == [
        {"rpc.method": f"/{SERVICE}/Count", "rpc.grpc.status_code": "OK"},
        {"rpc.method": f"/{SERVICE}/Echo", "rpc.grpc.status_code": "NOT_FOUND"},
        {"rpc.method": f"/{SERVICE}/Count", "rpc.grpc.status_code": "INVALID_ARGUMENT"},
    ]
    assert all(value > 0 for value, _ in recorder.points)
