"""One trace spans RPC → database → outbox relay → Kafka → consumer."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from pymongo.asynchronous.client_session import AsyncClientSession

from crm.contacts.v1 import contacts_pb2 as pb
from crm_contacts.settings import TOPIC
from crm_platform.consumer import IdempotentConsumer, ReceivedEvent
from crm_testing.contacts import ContactsUnderTest, metadata


async def test_one_trace_spans_rpc_database_kafka_and_consumer(
    infra: Any, contacts: ContactsUnderTest, spans: InMemorySpanExporter
) -> None:
    handled: dict[str, asyncio.Event] = {}

    async def handler(received: ReceivedEvent, session: AsyncClientSession) -> None:
        handled.setdefault(received.event.key, asyncio.Event()).set()

    consumer = IdempotentConsumer(
        contacts.mongo,
        handler,
        topics=[TOPIC],
        group_id=f"trace-test-{uuid.uuid4().hex[:8]}",
        bootstrap_servers=infra.kafka_bootstrap,
    )
    consumer_task = asyncio.create_task(consumer.run())
    try:
        with trace.get_tracer("test").start_as_current_span("test: create a contact") as root:
            reply = await contacts.stub.CreateContact(
                pb.CreateContactRequest(contact=pb.Contact(given_name="Traced")),
                metadata=metadata(),
            )
        trace_id = root.get_span_context().trace_id
        contact_id = reply.contact.id
        await asyncio.wait_for(handled.setdefault(contact_id, asyncio.Event()).wait(), 30)
        await asyncio.sleep(0.2)  # the consumer span ends right after the handler returns
    finally:
        await consumer.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(consumer_task, 15)

    in_trace = [s for s in spans.get_finished_spans() if s.context.trace_id == trace_id]
    names = {s.name for s in in_trace}
    kinds = {(s.kind, s.name) for s in in_trace}
    assert (SpanKind.SERVER, "/crm.contacts.v1.ContactsService/CreateContact") in kinds, names
    assert any(s.attributes and s.attributes.get("db.system") == "mongodb" for s in in_trace), names
    assert any(s.kind == SpanKind.PRODUCER for s in in_trace), names
    consumer_spans = [s for s in in_trace if s.name == f"{TOPIC} process"]
    assert consumer_spans, names
    assert consumer_spans[0].kind == SpanKind.CONSUMER
