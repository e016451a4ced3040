"""Events from every consumed topic decode; those about no ticket change nothing."""

from __future__ import annotations

from crm.contacts.v1 import contacts_pb2
from crm.contacts.v1 import events_pb2 as contact_events
from crm_metrics.events import CONTACT_EVENT_TYPES, NOTHING, FactStore, apply
from crm_platform.context import Actor, ActorType, CallContext
from crm_platform.events import Event


def test_contact_events_decode_and_change_no_ticket() -> None:
    event = Event.of(
        contact_events.ContactCreated(contact=contacts_pb2.Contact(id="c1", given_name="Ada")),
        source="/crm/contacts",
        subject="c1",
        key="c1",
        call=CallContext("acme", Actor(ActorType.AGENT, "alice")),
    )
    assert event.type in CONTACT_EVENT_TYPES
    received = Event.from_kafka(event.key.encode(), event.payload, event.kafka_headers())
    decoded = received.decode()
    assert apply(FactStore(), event, decoded, lambda key: None) is NOTHING
