"""One trace spans RPC → database → outbox relay → Kafka, and the record carries it on to
whoever consumes the topic (W3C ``traceparent`` header)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from crm.contacts.v1 import contacts_pb2 as pb
from crm_contacts.settings import TOPIC
from crm_testing.contacts import ContactsUnderTest, metadata


async def test_one_trace_spans_rpc_database_kafka_and_the_record_carries_it(
    infra: Any, contacts: ContactsUnderTest, spans: InMemorySpanExporter
) -> None:
    with trace.get_tracer("test").start_as_current_span("test: create a contact") as root:
        reply = await contacts.stub.CreateContact(
            pb.CreateContactRequest(contact=pb.Contact(given_name="Traced")),
            metadata=metadata(),
        )
    trace_id = root.get_span_context().trace_id
    contact_id = reply.contact.id
    consumer = AIOKafkaConsumer(
        TOPIC, bootstrap_servers=infra.kafka_bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    headers: dict[str, str] = {}
    try:
        async with asyncio.timeout(30):
            while not headers:
                batch = await consumer.getmany(timeout_ms=300)
                for record in (r for records in batch.values() for r in records):
                    if record.key == contact_id.encode():
                        headers = {k: v.decode() for k, v in record.headers}
    finally:
        await consumer.stop()
    carried = trace.get_current_span(propagate.extract(headers)).get_span_context()
    assert carried.trace_id == trace_id, headers

    in_trace = [s for s in spans.get_finished_spans() if s.context.trace_id == trace_id]
    names = {s.name for s in in_trace}
    kinds = {(s.kind, s.name) for s in in_trace}
    assert (SpanKind.SERVER, "/crm.contacts.v1.ContactsService/CreateContact") in kinds, names
    assert any(s.attributes and s.attributes.get("db.system") == "mongodb" for s in in_trace), names
    assert any(s.kind == SpanKind.PRODUCER for s in in_trace), names
