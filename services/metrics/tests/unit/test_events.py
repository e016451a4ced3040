"""Events from every consumed topic decode; those about no ticket change nothing."""

from __future__ import annotations

from crm.contacts.v1 import contacts_pb2
from crm.contacts.v1 import events_pb2 as contact_events
from crm.servicedesk.v1 import events_pb2 as ev
from crm.servicedesk.v1 import servicedesk_pb2 as pb
from crm_metrics.domain.facts import TicketFacts
from crm_metrics.events import CONTACT_EVENT_TYPES, NOTHING, FactStore, apply
from crm_platform.context import Actor, ActorType, CallContext
from crm_platform.events import Event
from crm_testing.ticket_events import TENANT, at, event, message, ticket, ts


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


def test_ticket_facts_keep_the_desks_ticket_versions_and_read_the_older_layout() -> None:
    events = [
        event(ev.TicketCreated(ticket=ticket(created=9)), at(9)),
        event(message("r1", pb.AUTHOR_TYPE_AGENT, 10, version=2), at(10)),
        event(
            ev.TicketStatusChanged(
                ticket=ticket(status=pb.TICKET_STATUS_OPEN, version=2, created=9),
                from_status=pb.TICKET_STATUS_NEW,
                to_status=pb.TICKET_STATUS_OPEN,
                change_time=ts(at(10)),
            ),
            at(10),
        ),
    ]
    store = FactStore()
    for item in events:
        apply(store, item, item.decode(), lambda key: None)
    facts = store.tickets[(TENANT, "T1")]
    assert facts.messages["r1"].seq == 2
    assert [t.seq for t in facts.transitions.values()] == [2]
    assert TicketFacts.from_doc(facts.to_doc()) == facts

    older = facts.to_doc()  # as written before the versions were kept
    older["messages"] = {k: v[:4] for k, v in older["messages"].items()}
    older["transitions"] = {k: v[:4] for k, v in older["transitions"].items()}
    again = TicketFacts.from_doc(older)
    assert again.messages["r1"].seq == 0
    assert [t.seq for t in again.transitions.values()] == [0]
