"""The contacts API end to end: gRPC → database → outbox → Kafka."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import grpc
import pytest
from aiokafka import AIOKafkaConsumer
from google.protobuf.field_mask_pb2 import FieldMask
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from crm.contacts.v1 import contacts_pb2 as pb
from crm.contacts.v1 import events_pb2
from crm_contacts.settings import TOPIC
from crm_platform.events import Event
from crm_testing.contacts import ContactsUnderTest, metadata

EMAIL = pb.IDENTITY_KIND_EMAIL
PHONE = pb.IDENTITY_KIND_PHONE
SOCIAL = pb.IDENTITY_KIND_SOCIAL


def _unique_email() -> str:
    return f"{uuid.uuid4().hex[:10]}@Example.COM"


async def _create(contacts: ContactsUnderTest, **fields: Any) -> pb.Contact:
    fields.setdefault("given_name", "Jane")
    reply = await contacts.stub.CreateContact(
        pb.CreateContactRequest(contact=pb.Contact(**fields)), metadata=metadata()
    )
    contact: pb.Contact = reply.contact
    return contact


async def _events_for(bootstrap: str, contact_id: str, count: int) -> list[Event]:
    """Read ``crm.contacts.v1`` from the start until ``count`` events about the contact arrived."""
    consumer = AIOKafkaConsumer(
        TOPIC, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    found: list[Event] = []
    try:
        async with asyncio.timeout(30):
            while len(found) < count:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    for record in records:
                        if record.key == contact_id.encode():
                            found.append(
                                Event.from_kafka(record.key, record.value, list(record.headers))
                            )
    finally:
        await consumer.stop()
    return found


async def test_created_contact_appears_as_an_event_on_its_topic(
    infra: Any, contacts: ContactsUnderTest
) -> None:
    email = _unique_email()
    contact = await _create(
        contacts,
        given_name="Jane",
        family_name="Doe",
        identities=[pb.Identity(kind=EMAIL, value=email)],
    )
    [event] = await _events_for(infra.kafka_bootstrap, contact.id, 1)
    assert event.type == "crm.contacts.v1.ContactCreated"
    assert event.tenant_id == "acme"
    assert str(event.actor) == "agent:alice"
    assert event.subject == f"contacts/{contact.id}"
    payload = event.decode()
    assert isinstance(payload, events_pb2.ContactCreated)
    assert payload.contact == contact


async def test_update_publishes_the_changed_fields_and_bumps_the_version(
    infra: Any, contacts: ContactsUnderTest
) -> None:
    contact = await _create(contacts)
    reply = await contacts.stub.UpdateContact(
        pb.UpdateContactRequest(
            contact=pb.Contact(id=contact.id, lifecycle_stage=pb.LIFECYCLE_STAGE_CUSTOMER),
            update_mask=FieldMask(paths=["lifecycle_stage"]),
            expected_version=1,
        ),
        metadata=metadata(),
    )
    assert reply.contact.version == 2
    assert reply.contact.lifecycle_stage == pb.LIFECYCLE_STAGE_CUSTOMER
    created, updated = await _events_for(infra.kafka_bootstrap, contact.id, 2)
    assert created.type.endswith("ContactCreated")
    payload = updated.decode()
    assert isinstance(payload, events_pb2.ContactUpdated)
    assert list(payload.changed_fields.paths) == ["lifecycle_stage"]
    assert payload.previous_version == 1


async def test_contact_is_found_by_any_of_its_identities(contacts: ContactsUnderTest) -> None:
    email = _unique_email()
    handle = f"jane_{uuid.uuid4().hex[:6]}"
    contact = await _create(
        contacts,
        identities=[
            pb.Identity(kind=EMAIL, value=email),
            pb.Identity(kind=PHONE, value=f"(650) 253-{uuid.uuid4().int % 10000:04d}"),
            pb.Identity(kind=SOCIAL, network=pb.SOCIAL_NETWORK_X, value=f"@{handle.upper()}"),
        ],
    )
    phone = next(i.value for i in contact.identities if i.kind == PHONE)
    assert phone.startswith("+1650253")
    for identity in (
        pb.Identity(kind=EMAIL, value=email.lower()),
        pb.Identity(kind=PHONE, value=phone),
        pb.Identity(kind=SOCIAL, network=pb.SOCIAL_NETWORK_X, value=handle),
    ):
        found = await contacts.stub.LookupContactByIdentity(
            pb.LookupContactByIdentityRequest(identity=identity), metadata=metadata()
        )
        assert found.contact.id == contact.id


async def test_batch_lookup_answers_each_identity_in_request_order(
    contacts: ContactsUnderTest,
) -> None:
    email = _unique_email()
    handle = f"jack_{uuid.uuid4().hex[:6]}"
    gold = await _create(
        contacts,
        tier=pb.VALUE_TIER_GOLD,
        identities=[
            pb.Identity(kind=EMAIL, value=email),
            pb.Identity(kind=PHONE, value=f"+1650253{uuid.uuid4().int % 10000:04d}"),
        ],
    )
    standard = await _create(
        contacts, identities=[pb.Identity(kind=SOCIAL, network=pb.SOCIAL_NETWORK_X, value=handle)]
    )
    phone = next(i.value for i in gold.identities if i.kind == PHONE)
    reply = await contacts.stub.BatchLookupContactsByIdentity(
        pb.BatchLookupContactsByIdentityRequest(
            identities=[
                pb.Identity(kind=EMAIL, value=email.upper()),
                pb.Identity(kind=EMAIL, value=_unique_email()),
                pb.Identity(kind=SOCIAL, network=pb.SOCIAL_NETWORK_X, value=f"@{handle}"),
                pb.Identity(kind=EMAIL, value="not-an-email"),
                pb.Identity(kind=PHONE, value=phone),
                pb.Identity(kind=EMAIL, value=email),
            ]
        ),
        metadata=metadata(),
    )
    result = pb.IdentityLookupResult
    answers = [(r.outcome, r.contact_id, r.tier) for r in reply.results]
    assert answers == [
        (result.OUTCOME_FOUND, gold.id, pb.VALUE_TIER_GOLD),
        (result.OUTCOME_NOT_FOUND, "", 0),
        (result.OUTCOME_FOUND, standard.id, pb.VALUE_TIER_STANDARD),
        (result.OUTCOME_INVALID, "", 0),
        (result.OUTCOME_FOUND, gold.id, pb.VALUE_TIER_GOLD),
        (result.OUTCOME_FOUND, gold.id, pb.VALUE_TIER_GOLD),
    ]
    assert reply.results[3].invalid_reason.startswith("is not a valid email address")


async def test_batch_lookup_of_500_identities_reads_the_database_once(
    contacts: ContactsUnderTest, spans: InMemorySpanExporter
) -> None:
    owned = [_unique_email() for _ in range(3)]
    for email in owned:
        await _create(contacts, identities=[pb.Identity(kind=EMAIL, value=email)])
    asked = owned + [_unique_email() for _ in range(497)]
    request = pb.BatchLookupContactsByIdentityRequest(
        identities=[pb.Identity(kind=EMAIL, value=email) for email in asked]
    )
    with trace.get_tracer("test").start_as_current_span("test: batch lookup") as root:
        reply = await contacts.stub.BatchLookupContactsByIdentity(request, metadata=metadata())
    found = [r.outcome == pb.IdentityLookupResult.OUTCOME_FOUND for r in reply.results]
    assert found == [True] * 3 + [False] * 497
    trace_id = root.get_span_context().trace_id
    commands = [
        s.name.rpartition(".")[2]
        for s in spans.get_finished_spans()
        if s.context.trace_id == trace_id and s.attributes and s.attributes.get("db.system")
    ]
    assert commands == ["find"]


async def test_batch_lookup_sees_only_the_callers_tenant(contacts: ContactsUnderTest) -> None:
    email = _unique_email()
    await _create(contacts, identities=[pb.Identity(kind=EMAIL, value=email)])
    reply = await contacts.stub.BatchLookupContactsByIdentity(
        pb.BatchLookupContactsByIdentityRequest(identities=[pb.Identity(kind=EMAIL, value=email)]),
        metadata=metadata(tenant="globex"),
    )
    assert [r.outcome for r in reply.results] == [pb.IdentityLookupResult.OUTCOME_NOT_FOUND]


async def test_an_identity_belongs_to_one_contact_only(contacts: ContactsUnderTest) -> None:
    email = _unique_email()
    await _create(contacts, identities=[pb.Identity(kind=EMAIL, value=email)])
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _create(contacts, identities=[pb.Identity(kind=EMAIL, value=email.upper())])
    assert info.value.code() == grpc.StatusCode.ALREADY_EXISTS


async def test_retried_create_with_the_same_request_id_creates_once(
    contacts: ContactsUnderTest,
) -> None:
    request = pb.CreateContactRequest(
        contact=pb.Contact(given_name="Retry"), request_id=f"req-{uuid.uuid4()}"
    )
    first, second = await asyncio.gather(
        contacts.stub.CreateContact(request, metadata=metadata()),
        contacts.stub.CreateContact(request, metadata=metadata()),
    )
    assert first.contact.id == second.contact.id


async def test_another_tenant_cannot_see_or_change_the_contact(
    contacts: ContactsUnderTest,
) -> None:
    email = _unique_email()
    contact = await _create(contacts, identities=[pb.Identity(kind=EMAIL, value=email)])
    other = metadata(tenant="globex")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await contacts.stub.GetContact(pb.GetContactRequest(id=contact.id), metadata=other)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await contacts.stub.LookupContactByIdentity(
            pb.LookupContactByIdentityRequest(identity=pb.Identity(kind=EMAIL, value=email)),
            metadata=other,
        )
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await contacts.stub.UpdateContact(
            pb.UpdateContactRequest(
                contact=pb.Contact(id=contact.id, given_name="Mallory"),
                update_mask=FieldMask(paths=["given_name"]),
            ),
            metadata=other,
        )
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    listed = await contacts.stub.ListContacts(pb.ListContactsRequest(), metadata=other)
    assert contact.id not in {c.id for c in listed.contacts}


async def test_list_pages_through_every_matching_contact_once(
    contacts: ContactsUnderTest,
) -> None:
    owner = f"owner-{uuid.uuid4().hex[:8]}"
    created = {(await _create(contacts, owner_id=owner, given_name=f"P{i}")).id for i in range(7)}
    seen: list[str] = []
    token = ""
    while True:
        page = await contacts.stub.ListContacts(
            pb.ListContactsRequest(owner_id=owner, page_size=3, page_token=token),
            metadata=metadata(),
        )
        seen.extend(c.id for c in page.contacts)
        token = page.next_page_token
        if not token:
            break
    assert sorted(seen) == sorted(created)
    first = await contacts.stub.ListContacts(
        pb.ListContactsRequest(owner_id=owner, page_size=3), metadata=metadata()
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:  # a token is bound to its filters
        await contacts.stub.ListContacts(
            pb.ListContactsRequest(page_size=3, page_token=first.next_page_token),
            metadata=metadata(),
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_search_by_name_prefix_is_case_insensitive(contacts: ContactsUnderTest) -> None:
    family = f"Zed{uuid.uuid4().hex[:6]}"
    contact = await _create(contacts, given_name="Ada", family_name=family)
    found = await contacts.stub.SearchContacts(
        pb.SearchContactsRequest(name_prefix=family[:6].lower()), metadata=metadata()
    )
    assert [c.id for c in found.contacts] == [contact.id]


async def test_organization_lifecycle(contacts: ContactsUnderTest) -> None:
    created = await contacts.stub.CreateOrganization(
        pb.CreateOrganizationRequest(
            organization=pb.Organization(
                name="Globex", domain="Globex.COM", tier=pb.VALUE_TIER_GOLD
            )
        ),
        metadata=metadata(),
    )
    organization = created.organization
    assert organization.domain == "globex.com"
    updated = await contacts.stub.UpdateOrganization(
        pb.UpdateOrganizationRequest(
            organization=pb.Organization(id=organization.id, industry="Energy"),
            update_mask=FieldMask(paths=["industry"]),
            expected_version=1,
        ),
        metadata=metadata(),
    )
    assert (updated.organization.industry, updated.organization.version) == ("Energy", 2)
    got = await contacts.stub.GetOrganization(
        pb.GetOrganizationRequest(id=organization.id), metadata=metadata()
    )
    assert got.organization == updated.organization
    member = await _create(contacts, organization_id=organization.id)
    listed = await contacts.stub.ListContacts(
        pb.ListContactsRequest(organization_id=organization.id), metadata=metadata()
    )
    assert [c.id for c in listed.contacts] == [member.id]


async def test_concurrent_updates_from_the_same_version_let_exactly_one_win(
    contacts: ContactsUnderTest,
) -> None:
    contact = await _create(contacts)

    async def rename(name: str) -> grpc.StatusCode:
        try:
            await contacts.stub.UpdateContact(
                pb.UpdateContactRequest(
                    contact=pb.Contact(id=contact.id, given_name=name),
                    update_mask=FieldMask(paths=["given_name"]),
                    expected_version=1,
                ),
                metadata=metadata(),
            )
        except grpc.aio.AioRpcError as error:
            return error.code()
        return grpc.StatusCode.OK

    outcomes = await asyncio.gather(*(rename(f"Name{i}") for i in range(4)))
    assert sorted(code.name for code in outcomes) == ["FAILED_PRECONDITION"] * 3 + ["OK"]
    got = await contacts.stub.GetContact(pb.GetContactRequest(id=contact.id), metadata=metadata())
    assert got.contact.version == 2
