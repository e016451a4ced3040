"""Bad input gets the right code with field violations, and writes nothing."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm.contacts.v1 import contacts_pb2 as pb
from crm_testing.contacts import ContactsUnderTest, metadata

COLLECTIONS = ("contacts", "organizations", "identity_keys", "idempotency", "outbox")


async def _counts(contacts: ContactsUnderTest) -> dict[str, int]:
    db = contacts.mongo.db
    return {name: await db[name].count_documents({}) for name in COLLECTIONS}


@pytest.fixture
async def unchanged(contacts: ContactsUnderTest) -> AsyncIterator[None]:
    """Asserts that the test left every collection, the outbox included, as it found it.

    The relay is paused meanwhile: it would otherwise empty the outbox under our feet."""
    relay = contacts.service.parts.extra["relay"]
    await relay.stop()
    try:
        before = await _counts(contacts)
        yield
        assert await _counts(contacts) == before
    finally:
        relay.start()


def _violations(error: grpc.aio.AioRpcError) -> dict[str, str]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, "no rich status details"
    for detail in status.details:
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):
            return {v.field: v.description for v in bad_request.field_violations}
    raise AssertionError("no BadRequest detail")


async def _refused(call: object, code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    assert info.value.code() == code, info.value.details()
    return info.value


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(
    ("contact", "field"),
    [
        (pb.Contact(), "contact"),
        (pb.Contact(given_name="   "), "contact"),
        (pb.Contact(given_name="x" * 201), "contact.given_name"),
        (pb.Contact(given_name="A", lifecycle_stage=99), "contact.lifecycle_stage"),  # type: ignore[arg-type]
        (pb.Contact(given_name="A", tier=42), "contact.tier"),  # type: ignore[arg-type]
        (
            pb.Contact(
                given_name="A",
                identities=[pb.Identity(kind=pb.IDENTITY_KIND_EMAIL, value="not-an-email")],
            ),
            "contact.identities[0].value",
        ),
        (
            pb.Contact(
                given_name="A", identities=[pb.Identity(kind=pb.IDENTITY_KIND_PHONE, value="12")]
            ),
            "contact.identities[0].value",
        ),
        (
            pb.Contact(
                given_name="A", identities=[pb.Identity(kind=pb.IDENTITY_KIND_SOCIAL, value="jack")]
            ),
            "contact.identities[0]",
        ),
        (pb.Contact(given_name="A", organization_id="no-such-org"), "contact.organization_id"),
        (
            pb.Contact(given_name="A", custom_attributes={"9bad": "x"}),
            "contact.custom_attributes['9bad']",
        ),
    ],
)
async def test_invalid_contact_is_refused_with_the_field_named(
    contacts: ContactsUnderTest, contact: pb.Contact, field: str
) -> None:
    error = await _refused(
        contacts.stub.CreateContact(pb.CreateContactRequest(contact=contact), metadata=metadata()),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert field in _violations(error)


@pytest.mark.usefixtures("unchanged")
async def test_request_with_many_bad_fields_is_still_invalid_argument(
    contacts: ContactsUnderTest,
) -> None:
    many_bad = pb.Contact(
        given_name="A",
        custom_attributes={f"Bad-Key-{i:03d}": "v" for i in range(100)},
        identities=[
            pb.Identity(kind=pb.IDENTITY_KIND_EMAIL, value=f"not-an-email-{i}") for i in range(50)
        ],
    )
    error = await _refused(
        contacts.stub.CreateContact(pb.CreateContactRequest(contact=many_bad), metadata=metadata()),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert len(_violations(error)) <= 21


@pytest.mark.parametrize(
    ("identities", "field"),
    [
        ([], "identities"),
        (
            [
                pb.Identity(kind=pb.IDENTITY_KIND_EMAIL, value=f"a{i}@example.com")
                for i in range(501)
            ],
            "identities",
        ),
        (
            [
                pb.Identity(kind=pb.IDENTITY_KIND_EMAIL, value="a@example.com"),
                pb.Identity(value="x"),
            ],
            "identities[1].kind",
        ),
        ([pb.Identity(kind=pb.IDENTITY_KIND_SOCIAL, value="jack")], "identities[0]"),
        ([pb.Identity(kind=pb.IDENTITY_KIND_PHONE, value="")], "identities[0].value"),
    ],
)
async def test_malformed_batch_lookup_is_refused_as_a_whole(
    contacts: ContactsUnderTest, identities: list[pb.Identity], field: str
) -> None:
    error = await _refused(
        contacts.stub.BatchLookupContactsByIdentity(
            pb.BatchLookupContactsByIdentityRequest(identities=identities), metadata=metadata()
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert field in _violations(error)


@pytest.mark.usefixtures("unchanged")
async def test_call_without_tenant_is_unauthenticated(contacts: ContactsUnderTest) -> None:
    await _refused(
        contacts.stub.CreateContact(pb.CreateContactRequest(contact=pb.Contact(given_name="A"))),
        grpc.StatusCode.UNAUTHENTICATED,
    )


@pytest.mark.usefixtures("unchanged")
async def test_unknown_id_is_not_found(contacts: ContactsUnderTest) -> None:
    await _refused(
        contacts.stub.GetContact(pb.GetContactRequest(id=str(uuid.uuid4())), metadata=metadata()),
        grpc.StatusCode.NOT_FOUND,
    )
    await _refused(
        contacts.stub.UpdateContact(
            pb.UpdateContactRequest(
                contact=pb.Contact(id=str(uuid.uuid4()), given_name="B"),
                update_mask=FieldMask(paths=["given_name"]),
            ),
            metadata=metadata(),
        ),
        grpc.StatusCode.NOT_FOUND,
    )


async def test_stale_version_is_refused_and_changes_nothing(contacts: ContactsUnderTest) -> None:
    created = await contacts.stub.CreateContact(
        pb.CreateContactRequest(contact=pb.Contact(given_name="A")), metadata=metadata()
    )
    contact_id = created.contact.id
    relay = contacts.service.parts.extra["relay"]
    await relay.stop()
    before = await _counts(contacts)
    await _refused(
        contacts.stub.UpdateContact(
            pb.UpdateContactRequest(
                contact=pb.Contact(id=contact_id, given_name="B"),
                update_mask=FieldMask(paths=["given_name"]),
                expected_version=7,
            ),
            metadata=metadata(),
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    await _refused(
        contacts.stub.UpdateContact(
            pb.UpdateContactRequest(
                contact=pb.Contact(
                    id=contact_id, lifecycle_stage=pb.LIFECYCLE_STAGE_FORMER_CUSTOMER
                ),
                update_mask=FieldMask(paths=["lifecycle_stage"]),
            ),
            metadata=metadata(),
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    await _refused(
        contacts.stub.UpdateContact(
            pb.UpdateContactRequest(
                contact=pb.Contact(id=contact_id, given_name="B"),
                update_mask=FieldMask(paths=["version"]),
            ),
            metadata=metadata(),
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    got = await contacts.stub.GetContact(pb.GetContactRequest(id=contact_id), metadata=metadata())
    assert (got.contact.given_name, got.contact.version) == ("A", 1)
    assert await _counts(contacts) == before
    relay.start()


# --- property: random requests never surface as UNKNOWN or INTERNAL -----------------------------

_text = st.text(max_size=260)
_identity = st.builds(
    pb.Identity,
    kind=st.integers(-1, 5),
    value=st.text(max_size=80),
    network=st.integers(-1, 11),
    primary=st.booleans(),
)
_contact = st.builds(
    pb.Contact,
    id=st.text(max_size=70),
    given_name=_text,
    family_name=_text,
    display_name=_text,
    lifecycle_stage=st.integers(-2, 6),
    tier=st.integers(-2, 6),
    segments=st.lists(st.text(max_size=70), max_size=5),
    custom_attributes=st.dictionaries(st.text(max_size=70), st.text(max_size=20), max_size=3),
    identities=st.lists(_identity, max_size=4),
)
_requests = st.one_of(
    st.builds(pb.CreateContactRequest, contact=_contact, request_id=st.text(max_size=140)),
    st.builds(
        pb.UpdateContactRequest,
        contact=_contact,
        update_mask=st.builds(FieldMask, paths=st.lists(st.text(max_size=30), max_size=3)),
        expected_version=st.integers(-1, 3),
    ),
    st.builds(pb.GetContactRequest, id=st.text(max_size=70)),
    st.builds(
        pb.ListContactsRequest,
        page_size=st.integers(-5, 600),
        page_token=st.text(max_size=50),
        lifecycle_stage=st.integers(-1, 6),
    ),
    st.builds(pb.SearchContactsRequest, name_prefix=st.text(max_size=110)),
    st.builds(pb.LookupContactByIdentityRequest, identity=_identity),
    st.builds(pb.BatchLookupContactsByIdentityRequest, identities=st.lists(_identity, max_size=4)),
)
_METHODS = {
    pb.CreateContactRequest: "CreateContact",
    pb.UpdateContactRequest: "UpdateContact",
    pb.GetContactRequest: "GetContact",
    pb.ListContactsRequest: "ListContacts",
    pb.SearchContactsRequest: "SearchContacts",
    pb.LookupContactByIdentityRequest: "LookupContactByIdentity",
    pb.BatchLookupContactsByIdentityRequest: "BatchLookupContactsByIdentity",
}


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(request=_requests)
async def test_random_requests_never_yield_unknown_or_internal(
    contacts: ContactsUnderTest, request: object
) -> None:
    method = getattr(contacts.stub, _METHODS[type(request)])
    try:
        await method(request, metadata=metadata(tenant="fuzz"), timeout=10)
    except grpc.aio.AioRpcError as error:
        assert error.code() not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL), (
            error.code(),
            error.details(),
        )


async def test_request_id_reused_for_a_different_request_is_refused(
    contacts: ContactsUnderTest,
) -> None:
    request_id = f"req-{uuid.uuid4()}"
    await contacts.stub.CreateContact(
        pb.CreateContactRequest(contact=pb.Contact(given_name="A"), request_id=request_id),
        metadata=metadata(),
    )
    await _refused(
        contacts.stub.CreateContact(
            pb.CreateContactRequest(contact=pb.Contact(given_name="B"), request_id=request_id),
            metadata=metadata(),
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
