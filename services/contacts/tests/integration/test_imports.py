"""The import stream end to end: rows → contacts/organisations in the database, events."""

from __future__ import annotations

import uuid

import grpc

from crm.contacts.v1 import contacts_pb2 as cpb
from crm.contacts.v1 import imports_pb2 as pb
from crm.contacts.v1 import imports_pb2_grpc
from crm_testing.contacts import ContactsUnderTest, metadata

HEADER = "external_id,given_name,emails,organization_external_id,tier"


def _stream(
    kind: pb.ImportRecordKind.ValueType, header: str, rows: list[str]
) -> list[pb.ImportContactsRequest]:
    items = [
        pb.ImportContactsRequest(
            header=pb.ImportHeader(format=pb.IMPORT_FORMAT_CSV, kind=kind, csv_header=header)
        )
    ]
    items += [
        pb.ImportContactsRequest(row=pb.ImportRow(line=index + 2, text=text))
        for index, text in enumerate(rows)
    ]
    return items


async def _import(
    contacts: ContactsUnderTest, kind: pb.ImportRecordKind.ValueType, header: str, rows: list[str]
) -> pb.ImportContactsResponse:
    async with grpc.aio.insecure_channel(contacts.address) as channel:
        stub = imports_pb2_grpc.ContactImportServiceStub(channel)
        reply: pb.ImportContactsResponse = await stub.ImportContacts(
            iter(_stream(kind, header, rows)), metadata=metadata()
        )
    return reply


async def test_mixed_import_then_reimport_is_unchanged(contacts: ContactsUnderTest) -> None:
    tag = uuid.uuid4().hex[:8]
    orgs = await _import(
        contacts, pb.IMPORT_RECORD_KIND_ORGANIZATION, "external_id,name", [f"o-{tag},Acme"]
    )
    assert orgs.totals.created == 1
    existing = await contacts.stub.CreateContact(
        cpb.CreateContactRequest(
            contact=cpb.Contact(
                given_name="Old",
                identities=[cpb.Identity(kind=cpb.IDENTITY_KIND_EMAIL, value=f"old-{tag}@x.io")],
            )
        ),
        metadata=metadata(),
    )
    rows: list[str] = []
    expected: list[int] = []
    for n in range(1000):
        match n % 5:
            case 0 | 1:  # good, with the organisation
                rows.append(f"c-{tag}-{n},Name{n},p{n}-{tag}@x.io,o-{tag},gold")
                expected.append(pb.IMPORT_OUTCOME_CREATED)
            case 2:  # the same external id as the row before, another name: an update
                rows.append(f"c-{tag}-{n - 1},Renamed{n},p{n - 1}-{tag}@x.io,o-{tag},gold")
                expected.append(pb.IMPORT_OUTCOME_UPDATED)
            case 3:  # the identity of an existing contact: never a second person
                rows.append(f"c-{tag}-{n},Twin,old-{tag}@x.io,,")
                expected.append(pb.IMPORT_OUTCOME_MERGE_CANDIDATE)
            case _:  # malformed: bad e-mail, unknown organisation, bad tier, broken quoting
                rows.append(
                    [
                        f"c-{tag}-{n},Bad,not-an-email,,",
                        f"c-{tag}-{n},Bad,b{n}-{tag}@x.io,o-missing,",
                        f"c-{tag}-{n},Bad,b{n}-{tag}@x.io,,diamond",
                        f'c-{tag}-{n},"Bad,b{n}-{tag}@x.io,,',
                    ][(n // 5) % 4]
                )
                expected.append(pb.IMPORT_OUTCOME_REFUSED)
    first = await _import(contacts, pb.IMPORT_RECORD_KIND_CONTACT, HEADER, rows)
    assert [report.outcome for report in first.reports] == expected
    assert first.totals.rows == 1000
    assert (first.totals.created, first.totals.updated) == (400, 200)
    assert (first.totals.merge_candidates, first.totals.refused) == (200, 200)
    for report in first.reports:
        if report.outcome == pb.IMPORT_OUTCOME_MERGE_CANDIDATE:
            assert report.record_id == existing.contact.id
        if report.outcome == pb.IMPORT_OUTCOME_REFUSED:
            assert report.message
            assert report.line == report.index + 2

    # Nothing half-written: one contact per created row, each with its external id.
    db = contacts.mongo.db
    created = {r.record_id for r in first.reports if r.outcome == pb.IMPORT_OUTCOME_CREATED}
    stored = await db["contacts"].count_documents({"_id": {"$in": list(created)}})
    assert stored == 400
    ids = await db["external_ids"].count_documents({"record_id": {"$in": list(created)}})
    assert ids == 400
    names = await db["contacts"].count_documents(
        {"given_name": {"$in": ["Bad", "Twin"]}, "_id": {"$ne": existing.contact.id}}
    )
    assert names == 0
    one = await contacts.stub.GetContact(
        cpb.GetContactRequest(id=first.reports[1].record_id), metadata=metadata()
    )
    assert one.contact.given_name == "Renamed2"
    assert one.contact.organization_id == orgs.reports[0].record_id

    # Each external id's final row, imported again: all UNCHANGED, nothing new.
    final = [row for n, row in enumerate(rows) if n % 5 in (0, 2)]
    again = await _import(contacts, pb.IMPORT_RECORD_KIND_CONTACT, HEADER, final)
    assert again.totals.unchanged == len(final) == 400
    assert await db["contacts"].count_documents({"_id": {"$in": list(created)}}) == 400
