"""One trace across the platform: a call to the gateway, the service desk it forwards to, the
contacts service the desk asks, the desk's outbox publishing the event, and the metrics service
consuming it — every process exports its spans (OTLP, as in production) to a collector this
test runs, and they all carry the trace id the caller started."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import grpc
import pytest
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from crm.contacts.v1 import contacts_pb2 as cpb
from crm.servicedesk.v1 import servicedesk_pb2 as spb
from crm_devstack.pytest_plugin import Infra
from crm_testing.gateway import GatewayStack, bearer, start_gateway_stack

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
"""The caller's trace, chosen so the test can find it."""
CALLER = SpanContext(
    trace_id=int(TRACE_ID, 16),
    span_id=0x00F067AA0BA902B7,
    is_remote=True,
    trace_flags=TraceFlags(TraceFlags.SAMPLED),
)


@dataclass
class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP trace collector: the spans received, by trace id (hex) and service name."""

    spans: dict[str, dict[str, list[str]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )
    received: asyncio.Event = field(default_factory=asyncio.Event)

    async def Export(  # noqa: N802 - the OTLP service's method name
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: object
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        for resource_spans in request.resource_spans:
            service = next(
                (
                    a.value.string_value
                    for a in resource_spans.resource.attributes
                    if a.key == "service.name"
                ),
                "?",
            )
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    self.spans[span.trace_id.hex()][service].append(span.name)
        self.received.set()
        return trace_service_pb2.ExportTraceServiceResponse()

    async def until(
        self, trace_id: str, complete: Callable[[dict[str, list[str]]], bool], seconds: float
    ) -> dict[str, list[str]]:
        """The trace's spans by service once ``complete`` says they are all there, or what
        has arrived when ``seconds`` have passed (spans come in batches, in any order)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while not complete(dict(self.spans[trace_id])):
                    self.received.clear()
                    await self.received.wait()
        return dict(self.spans[trace_id])


@pytest.fixture(scope="module")
async def collector() -> AsyncIterator[tuple[Collector, str]]:
    servicer = Collector()
    server = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield servicer, f"http://127.0.0.1:{port}"
    finally:
        await server.stop(None)


@pytest.fixture(scope="module")
async def traced_stack(
    infra: Infra, collector: tuple[Collector, str]
) -> AsyncIterator[GatewayStack]:
    _, endpoint = collector
    telemetry = {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_BSP_SCHEDULE_DELAY": "200",  # export within a fraction of a second
    }
    assert os.environ.get("OTEL_SDK_DISABLED", "").lower() != "true", "tracing is turned off"
    stack = await start_gateway_stack(infra, infra.workdir / "traced", every_env=telemetry)
    try:
        yield stack
    finally:
        await stack.close()
        for process in stack.services.values():
            await process.stop()


async def test_a_ticket_opened_through_the_gateway_is_one_trace_to_the_metrics_service(
    traced_stack: GatewayStack, collector: tuple[Collector, str]
) -> None:
    spans, _ = collector
    token = traced_stack.token("acme-trace", role="admin")
    contact = await traced_stack.stub("ContactsService").CreateContact(
        cpb.CreateContactRequest(contact=cpb.Contact(given_name="Trace", family_name="Able")),
        metadata=bearer(token),
        timeout=10,
    )
    # The call runs in the caller's trace: sent as its traceparent, and the current context, so
    # that the test process's own client span (if an earlier test instrumented gRPC here) is a
    # child in it rather than the root of another trace.
    caller = trace.set_span_in_context(NonRecordingSpan(CALLER))
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=caller)
    token_ctx = otel_context.attach(caller)
    try:
        await _open_ticket(traced_stack, token, contact.contact.id, carrier)
    finally:
        otel_context.detach(token_ctx)
    trace_spans = await spans.until(TRACE_ID, _whole, seconds=30)
    assert _whole(trace_spans), f"the trace's spans by service: {trace_spans}"


async def _open_ticket(
    stack: GatewayStack, token: str, contact_id: str, carrier: dict[str, str]
) -> None:
    await stack.stub("TicketService").CreateTicket(
        spb.CreateTicketRequest(
            ticket=spb.Ticket(
                type=spb.TICKET_TYPE_INFORMATION_REQUEST,
                channel=spb.CHANNEL_EMAIL,
                subject="Where is my order?",
                contact_id=contact_id,
            )
        ),
        metadata=(*bearer(token), *carrier.items()),
        timeout=10,
    )


def _whole(trace: dict[str, list[str]]) -> bool:
    """The gateway's call, the desk serving it and asking contacts, the desk's outbox sending
    the event, and the metrics service receiving that record: all in the one trace."""
    return (
        "/crm.gateway.v1.TicketService/CreateTicket" in trace.get("gateway", [])
        and "/crm.servicedesk.v1.TicketService/CreateTicket" in trace.get("servicedesk", [])
        and "/crm.contacts.v1.ContactsService/GetContact" in trace.get("contacts", [])
        and "crm.servicedesk.v1 send" in trace.get("servicedesk", [])
        and "crm.servicedesk.v1 receive" in trace.get("metrics", [])
    )
