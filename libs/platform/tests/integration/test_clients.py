"""One service calling another through crm_platform.clients: two aio servers on loopback.

The callee serves ``crm.contacts.v1.ContactsService`` (GetContact, CreateContact) through generic
handlers that report what they received: the serving tenant and actor, and the time left until
their deadline (in ``job_title``). Ids ``missing`` and ``flaky-*`` make it fail (NOT_FOUND;
UNAVAILABLE for the first two attempts). The caller, ``test.Relay/GetContact``, serves a call by
making one to the callee on a channel from :func:`open_channel`.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from opentelemetry import trace
from opentelemetry.instrumentation.grpc import aio_server_interceptor
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from crm.contacts.v1 import contacts_pb2 as pb
from crm.contacts.v1 import contacts_pb2_grpc
from crm_platform import errors
from crm_platform.clients import error_from_rpc, open_channel
from crm_platform.context import (
    Actor,
    ActorType,
    CallContext,
    current_call,
    deadline_remaining,
    reset_call,
    reset_deadline,
    set_call,
    set_deadline,
)
from crm_platform.interceptors import ServiceInterceptor
from crm_platform.telemetry import configure_telemetry

CONTACTS = pb.DESCRIPTOR.services_by_name["ContactsService"]
GET_CONTACT = f"/{CONTACTS.full_name}/GetContact"
WIRE_TIMEOUT_GRAIN = 0.010
"""How much gRPC's encoding of a 1 to 10 s deadline may round it up on one hop."""
METADATA = (("x-tenant-id", "acme"), ("x-actor-id", "zapier"), ("x-actor-type", "integration"))


def _flaky(name: str, attempts: Counter[str]) -> None:
    """UNAVAILABLE on the first two attempts of a ``flaky-*`` name."""
    if name.startswith("flaky-"):
        attempts[name] += 1
        if attempts[name] < 3:
            raise errors.Unavailable("restarting")


def _callee(attempts: Counter[str]) -> grpc.GenericRpcHandler[Any, Any]:
    async def get_contact(request: pb.GetContactRequest, context: Any) -> pb.GetContactResponse:
        if request.id == "missing":
            raise errors.NotFound("contact", request.id)
        _flaky(request.id, attempts)
        call, remaining = current_call(), deadline_remaining()
        return pb.GetContactResponse(
            contact=pb.Contact(
                id=request.id,
                tenant_id=call.tenant_id,
                owner_id=str(call.actor),
                job_title="no deadline" if remaining is None else f"{remaining:.3f}",
            )
        )

    async def create_contact(
        request: pb.CreateContactRequest, context: Any
    ) -> pb.CreateContactResponse:
        _flaky(request.contact.given_name, attempts)
        return pb.CreateContactResponse(contact=request.contact)

    return grpc.method_handlers_generic_handler(
        CONTACTS.full_name,
        {
            "GetContact": grpc.unary_unary_rpc_method_handler(
                get_contact,
                request_deserializer=pb.GetContactRequest.FromString,
                response_serializer=pb.GetContactResponse.SerializeToString,
            ),
            "CreateContact": grpc.unary_unary_rpc_method_handler(
                create_contact,
                request_deserializer=pb.CreateContactRequest.FromString,
                response_serializer=pb.CreateContactResponse.SerializeToString,
            ),
        },
    )


def _relay(
    contacts: contacts_pb2_grpc.ContactsServiceAsyncStub,
) -> grpc.GenericRpcHandler[Any, Any]:
    async def get_contact(request: pb.GetContactRequest, context: Any) -> pb.GetContactResponse:
        try:
            reply: pb.GetContactResponse = await contacts.GetContact(request)
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc) from exc
        return reply

    return grpc.method_handlers_generic_handler(
        "test.Relay",
        {
            "GetContact": grpc.unary_unary_rpc_method_handler(
                get_contact,
                request_deserializer=pb.GetContactRequest.FromString,
                response_serializer=pb.GetContactResponse.SerializeToString,
            )
        },
    )


@dataclass
class Services:
    """The callee and the caller, and how to reach each."""

    callee_address: str
    callee_attempts: Counter[str]
    contacts: contacts_pb2_grpc.ContactsServiceAsyncStub
    """The callee, on a channel from open_channel (with retries of its idempotent reads)."""
    relay: Any
    """``test.Relay/GetContact`` on a plain channel: the outside caller of the caller."""


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    """Telemetry switched on (before any channel is opened), finished spans kept in memory."""
    provider = configure_telemetry("platform-test")
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


async def _server(handler: grpc.GenericRpcHandler[Any, Any]) -> tuple[grpc.aio.Server, str]:
    otel = aio_server_interceptor()  # type: ignore[no-untyped-call]
    server = grpc.aio.server(interceptors=[otel, ServiceInterceptor()])
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


@pytest.fixture(scope="module")
async def services(spans: InMemorySpanExporter) -> AsyncIterator[Services]:
    attempts: Counter[str] = Counter()
    callee, callee_address = await _server(_callee(attempts))
    async with open_channel(callee_address, retry_idempotent=[CONTACTS]) as to_callee:
        contacts = contacts_pb2_grpc.ContactsServiceStub(to_callee)
        caller, caller_address = await _server(_relay(contacts))
        async with grpc.aio.insecure_channel(caller_address) as to_caller:
            relay = to_caller.unary_unary(
                "/test.Relay/GetContact",
                request_serializer=pb.GetContactRequest.SerializeToString,
                response_deserializer=pb.GetContactResponse.FromString,
            )
            yield Services(callee_address, attempts, contacts, relay)
        await caller.stop(None)
    await callee.stop(None)


@pytest.fixture
def in_background_work() -> Iterator[None]:
    """A call context without a deadline, as a consumer's handler has."""
    token = set_call(CallContext("acme", Actor(ActorType.SYSTEM, "sla-timer")))
    yield
    reset_call(token)


async def test_callee_serves_the_callers_tenant_and_actor_within_the_callers_deadline(
    services: Services,
) -> None:
    reply = await services.relay(pb.GetContactRequest(id="c1"), metadata=METADATA, timeout=2)
    assert (reply.contact.tenant_id, reply.contact.owner_id) == ("acme", "integration:zapier")
    # What was left of the caller's 2 s, printed to the millisecond. gRPC sends a deadline as a
    # `grpc-timeout` of limited precision and the C core rounds it up (to 10 ms between 1 and
    # 10 s: a 2.000 s timeout can arrive as 2.009 s), so each of the two hops (test → relay →
    # callee) may add up to 10 ms; nothing else may.
    assert 1.0 < float(reply.contact.job_title) <= 2.0 + 2 * WIRE_TIMEOUT_GRAIN


@pytest.mark.usefixtures("in_background_work")
async def test_one_hop_adds_no_more_than_the_wire_rounding_to_a_deadline(
    services: Services,
) -> None:
    reply = await services.contacts.GetContact(pb.GetContactRequest(id="c1"), timeout=2)
    assert 1.0 < float(reply.contact.job_title) <= 2.0 + WIRE_TIMEOUT_GRAIN


@pytest.mark.usefixtures("in_background_work")
async def test_call_outside_a_server_call_gets_the_channels_default_timeout(
    services: Services,
) -> None:
    async with open_channel(services.callee_address, default_timeout=4.0) as channel:
        contacts = contacts_pb2_grpc.ContactsServiceStub(channel)
        reply = await contacts.GetContact(pb.GetContactRequest(id="c1"))
    assert reply.contact.owner_id == "system:sla-timer"
    assert 3.0 < float(reply.contact.job_title) <= 4.1


@pytest.mark.usefixtures("in_background_work")
async def test_call_after_the_callers_deadline_fails_at_once(services: Services) -> None:
    token = set_deadline(0.0)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await services.contacts.GetContact(pb.GetContactRequest(id="c1"))
    finally:
        reset_deadline(token)
    assert isinstance(error_from_rpc(info.value), errors.DeadlineExceeded)


async def test_callees_failure_reaches_the_outside_caller_as_the_same_error(
    services: Services,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await services.relay(pb.GetContactRequest(id="missing"), metadata=METADATA, timeout=2)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    status = rpc_status.from_call(info.value)  # type: ignore[arg-type]
    assert status is not None
    resource = error_details_pb2.ResourceInfo()
    assert any(detail.Unpack(resource) for detail in status.details)
    assert (resource.resource_type, resource.resource_name) == ("contact", "missing")


@pytest.mark.usefixtures("in_background_work")
async def test_reads_are_retried_while_the_callee_is_unavailable_writes_are_not(
    services: Services,
) -> None:
    reply = await services.contacts.GetContact(pb.GetContactRequest(id="flaky-read"))
    assert reply.contact.id == "flaky-read"
    assert services.callee_attempts["flaky-read"] == 3
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await services.contacts.CreateContact(
            pb.CreateContactRequest(contact=pb.Contact(given_name="flaky-write"))
        )
    assert isinstance(error_from_rpc(info.value), errors.Unavailable)
    assert services.callee_attempts["flaky-write"] == 1


@pytest.mark.skipif(
    os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true", reason="telemetry is switched off"
)
async def test_call_to_the_callee_continues_the_callers_trace(
    services: Services, spans: InMemorySpanExporter
) -> None:
    with trace.get_tracer("test").start_as_current_span("test: relay") as root:
        await services.relay(pb.GetContactRequest(id="traced"), metadata=METADATA, timeout=2)
    in_trace = [
        s
        for s in spans.get_finished_spans()
        if s.context.trace_id == root.get_span_context().trace_id
    ]
    by_kind = {(s.kind, s.name): s for s in in_trace}
    outgoing = by_kind[(SpanKind.CLIENT, GET_CONTACT)]
    served = by_kind[(SpanKind.SERVER, GET_CONTACT)]
    relayed = by_kind[(SpanKind.SERVER, "/test.Relay/GetContact")]
    assert served.parent is not None
    assert served.parent.span_id == outgoing.context.span_id
    assert outgoing.parent is not None
    assert outgoing.parent.span_id == relayed.context.span_id
