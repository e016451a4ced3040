"""Lead conversion end to end, with the contacts service: one idempotent step that finds or
creates the person (never a duplicate), optionally the organisation, and the opportunity."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc

from crm.contacts.v1 import contacts_pb2 as cpb
from crm.sales.v1 import events_pb2
from crm.sales.v1 import sales_pb2 as pb
from crm_testing.sales import (
    OTHER_TENANT,
    SalesUnderTest,
    create_pipeline,
    events_for,
    metadata,
    precondition_types,
    refused,
    unique_id,
    violations,
)

SALES_COLLECTIONS = ("opportunities", "leads", "idempotency", "outbox")
# Not the contacts outbox: the contacts relay (not paused here) empties it; a contact written would
# show in `contacts` and `idempotency`.
CONTACTS_COLLECTIONS = ("contacts", "organizations", "idempotency")


async def _qualified_lead(sales: SalesUnderTest, **fields: Any) -> pb.Lead:
    values: dict[str, Any] = {"person_name": "Ann Lee", "source": pb.LEAD_SOURCE_WEB_FORM}
    values.update(fields)
    lead = (
        await sales.stub.CreateLead(
            pb.CreateLeadRequest(lead=pb.Lead(**values)), metadata=metadata()
        )
    ).lead
    qualified: pb.Lead = (
        await sales.stub.QualifyLead(pb.QualifyLeadRequest(id=lead.id), metadata=metadata())
    ).lead
    return qualified


def _convert(lead_id: str, pipeline_id: str, **fields: Any) -> pb.ConvertLeadRequest:
    organization = fields.pop("create_organization", False)
    values: dict[str, Any] = {
        "name": "First order",
        "amount_minor": 49_900,
        "currency": "EUR",
        "pipeline_id": pipeline_id,
    }
    values.update(fields)
    return pb.ConvertLeadRequest(
        id=lead_id, opportunity=pb.Opportunity(**values), create_organization=organization
    )


async def _contacts_with_email(sales: SalesUnderTest, email: str) -> int:
    found = await sales.contacts.LookupContactByIdentity(
        cpb.LookupContactByIdentityRequest(
            identity=cpb.Identity(kind=cpb.IDENTITY_KIND_EMAIL, value=email)
        ),
        metadata=metadata(),
    )
    return await sales.contacts_mongo.db["contacts"].count_documents(
        {"identities.value": found.contact.identities[0].value}
    )


async def test_conversion_creates_the_contact_organisation_and_opportunity_once(
    infra: Any, sales: SalesUnderTest
) -> None:
    pipeline = await create_pipeline(sales)
    email = f"{unique_id('ann')}@example.com"
    campaign = unique_id("campaign")
    lead = await _qualified_lead(
        sales, email=email, company_name="Lee & Co", campaign_id=campaign, owner_id="rep-7"
    )
    request = _convert(lead.id, pipeline.id, create_organization=True)
    reply = await sales.stub.ConvertLead(request, metadata=metadata())
    converted, opportunity = reply.lead, reply.opportunity
    assert converted.status == pb.LEAD_STATUS_CONVERTED
    assert converted.converted_opportunity_id == opportunity.id
    assert opportunity.primary_contact_id == converted.converted_contact_id
    assert opportunity.account_id == converted.converted_organization_id != ""
    assert (opportunity.source_lead_id, opportunity.campaign_id, opportunity.owner_id) == (
        lead.id,
        campaign,
        "rep-7",
    )
    contact = (
        await sales.contacts.GetContact(
            cpb.GetContactRequest(id=converted.converted_contact_id), metadata=metadata()
        )
    ).contact
    assert contact.display_name == "Ann Lee"
    assert contact.organization_id == converted.converted_organization_id
    assert [i.value for i in contact.identities] == [email]

    again = await sales.stub.ConvertLead(request, metadata=metadata())
    assert again.lead == converted
    assert again.opportunity == opportunity
    assert await _contacts_with_email(sales, email) == 1
    assert await sales.mongo.db["opportunities"].count_documents({"source_lead_id": lead.id}) == 1

    lead_events = await events_for(infra.kafka_bootstrap, lead.id, 3)
    assert [e.type for e in lead_events] == [
        "crm.sales.v1.LeadCreated",
        "crm.sales.v1.LeadStatusChanged",
        "crm.sales.v1.LeadConverted",
    ]
    payload = lead_events[2].decode()
    assert isinstance(payload, events_pb2.LeadConverted)
    assert payload.contact_created
    assert payload.lead == converted
    [created] = await events_for(infra.kafka_bootstrap, contact.id, 1)
    assert created.type == "crm.sales.v1.OpportunityCreated"


async def test_a_lead_whose_email_has_an_owner_converts_into_that_contact(
    sales: SalesUnderTest,
) -> None:
    email = f"{unique_id('known')}@example.com"
    owner = (
        await sales.contacts.CreateContact(
            cpb.CreateContactRequest(
                contact=cpb.Contact(
                    given_name="Known",
                    identities=[cpb.Identity(kind=cpb.IDENTITY_KIND_EMAIL, value=email)],
                )
            ),
            metadata=metadata(),
        )
    ).contact
    pipeline = await create_pipeline(sales)
    lead = await _qualified_lead(sales, email=email.upper(), person_name="Someone Else")
    reply = await sales.stub.ConvertLead(_convert(lead.id, pipeline.id), metadata=metadata())
    assert reply.lead.converted_contact_id == owner.id
    assert reply.opportunity.primary_contact_id == owner.id
    assert await _contacts_with_email(sales, email) == 1


async def test_two_concurrent_conversions_of_one_lead_give_one_result(
    sales: SalesUnderTest,
) -> None:
    pipeline = await create_pipeline(sales)
    email = f"{unique_id('race')}@example.com"
    lead = await _qualified_lead(sales, email=email)
    request = _convert(lead.id, pipeline.id)
    first, second = await asyncio.gather(
        sales.stub.ConvertLead(request, metadata=metadata()),
        sales.stub.ConvertLead(request, metadata=metadata()),
    )
    assert first.opportunity == second.opportunity
    assert first.lead == second.lead
    assert await sales.mongo.db["opportunities"].count_documents({"source_lead_id": lead.id}) == 1
    assert await _contacts_with_email(sales, email) == 1


async def _counts(sales: SalesUnderTest) -> dict[str, int]:
    counts = {}
    for name in SALES_COLLECTIONS:
        counts[f"sales.{name}"] = await sales.mongo.db[name].count_documents({})
    for name in CONTACTS_COLLECTIONS:
        counts[f"contacts.{name}"] = await sales.contacts_mongo.db[name].count_documents({})
    return counts


async def test_refused_conversions_write_nothing_in_sales_or_contacts(
    sales: SalesUnderTest,
) -> None:
    """Each refusal comes before any write: in sales (its relay paused, so its outbox counts)
    and in contacts."""
    pipeline = await create_pipeline(sales)
    qualified = await _qualified_lead(sales, email=f"{unique_id('bad')}@example.com")
    new = (
        await sales.stub.CreateLead(
            pb.CreateLeadRequest(lead=pb.Lead(person_name="New", source=pb.LEAD_SOURCE_PHONE)),
            metadata=metadata(),
        )
    ).lead
    unknown_contact = await _qualified_lead(sales, contact_id=unique_id("nobody"))
    relay = sales.service.parts.extra["relay"]
    await relay.stop()
    try:
        before = await _counts(sales)
        error = await refused(
            sales.stub.ConvertLead(_convert(new.id, pipeline.id), metadata=metadata()),
            grpc.StatusCode.FAILED_PRECONDITION,
        )
        assert precondition_types(error) == {"ILLEGAL_LEAD_TRANSITION"}
        error = await refused(
            sales.stub.ConvertLead(
                _convert(qualified.id, pipeline.id, currency="ZZZ"), metadata=metadata()
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert "opportunity.currency" in violations(error)
        error = await refused(
            sales.stub.ConvertLead(
                _convert(qualified.id, pipeline.id, stage_id="nope"), metadata=metadata()
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert "opportunity.stage_id" in violations(error)
        error = await refused(
            sales.stub.ConvertLead(
                _convert(qualified.id, pipeline.id, create_organization=True),
                metadata=metadata(),
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert "create_organization" in violations(error)
        error = await refused(
            sales.stub.ConvertLead(_convert(unknown_contact.id, pipeline.id), metadata=metadata()),
            grpc.StatusCode.FAILED_PRECONDITION,
        )
        assert precondition_types(error) == {"UNKNOWN_CONTACT"}
        await refused(
            sales.stub.ConvertLead(
                _convert(qualified.id, pipeline.id), metadata=metadata(OTHER_TENANT)
            ),
            grpc.StatusCode.NOT_FOUND,
        )
        assert await _counts(sales) == before
    finally:
        relay.start()
