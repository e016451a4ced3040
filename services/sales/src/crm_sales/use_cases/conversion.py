"""Lead conversion: a qualified lead becomes a contact (found or created), optionally an
organisation, and an opportunity, in one idempotent step.

The order makes the step safe to repeat and to race:

1. a converted lead answers with its first conversion's result (converting twice is a no-op);
2. everything the request can be refused for is checked before anything is written anywhere:
   the lead's status and version, the opportunity's fields against its pipeline (a dry run);
3. the contacts service is asked for the person by identity and creates them only if nobody
   owns the lead's e-mail address or phone number, with a request id derived from the lead, so
   a retry or a concurrent conversion gets the same contact, never a second person (the same
   for the organisation);
4. one transaction re-reads the lead, creates the opportunity and marks the lead converted; of
   two concurrent conversions one commits, the other's rerun sees the lead converted and
   answers with the winner's result.

Steps 3 and 4 are not one transaction (two services, two databases): if the lead changes between
them (e.g. it is disqualified), step 4 refuses and the contact found or created in step 3 stays,
as the real person it is; a later conversion of the lead reuses it through the same request id.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

from crm_platform.clock import Clock
from crm_platform.context import CallContext
from crm_platform.errors import FailedPrecondition, InvalidArgument, NotFound
from crm_platform.unit_of_work import Transaction, UnitOfWork
from crm_sales import events
from crm_sales.domain.lead import Lead, LeadStatus
from crm_sales.domain.opportunity import Opportunity, OpportunityInput
from crm_sales.domain.pipeline import Pipeline
from crm_sales.domain.territories import NO_PROFILE
from crm_sales.storage import SalesStore
from crm_sales.use_cases._common import WRITE_RETRIES, new_id, now_ms, publish_on_key

UNKNOWN_CONTACT = "UNKNOWN_CONTACT"
"""The FAILED_PRECONDITION of a lead whose contact_id names no contact of the tenant."""


@dataclass(frozen=True, slots=True)
class Person:
    """Who a lead is about, as the contacts service is asked for them."""

    name: str
    email: str
    phone: str


@dataclass(frozen=True, slots=True)
class FoundContact:
    """The contact a conversion found or created."""

    id: str
    created: bool


class ContactDirectory(Protocol):
    """The contacts service as the conversion uses it
    (:class:`crm_sales.contacts_directory.GrpcContactDirectory`)."""

    async def require_contact(self, contact_id: str) -> None:
        """``NotFound`` unless the tenant has the contact."""
        ...

    async def find_or_create_person(
        self, person: Person, *, organization_id: str, request_id: str, subject: str
    ) -> FoundContact:
        """The owner of the person's identities, or a new contact (``request_id`` makes a
        retry return the first one)."""
        ...

    async def create_organization(self, name: str, *, request_id: str) -> str:
        """A new organisation's id (``request_id`` makes a retry return the first one)."""
        ...


@dataclass(frozen=True, slots=True)
class Conversion:
    """What a conversion produced: the converted lead and its opportunity."""

    lead: Lead
    opportunity: Opportunity


class LeadConversions:
    """The conversion use case of every tenant; ``clock`` stamps the facts."""

    def __init__(
        self,
        store: SalesStore,
        unit_of_work: UnitOfWork,
        clock: Clock,
        contacts: ContactDirectory,
    ) -> None:
        self.store = store
        self.unit_of_work = unit_of_work
        self.clock = clock
        self.contacts = contacts

    async def convert(
        self,
        call: CallContext,
        lead_id: str,
        fields: OpportunityInput,
        create_organization: bool,
        expected_version: int | None,
    ) -> Conversion:
        """Convert the lead (see the module); a converted lead gives its first result."""
        tenant = call.tenant_id
        lead = await self.store.get_lead(tenant, lead_id)
        if lead.status is LeadStatus.CONVERTED:
            return await self._earlier(lead)
        lead.check_convertible(expected_version)
        if create_organization and not lead.company_name:
            raise InvalidArgument.single(
                "create_organization", "the lead has no company_name to name an organisation"
            )
        now = now_ms(self.clock)
        opportunity_id = new_id()
        actor = str(call.actor)
        pipeline = await self._pipeline(tenant, fields.pipeline_id)
        # A dry run: a bad opportunity is refused before the contacts service writes anything.
        Opportunity.create(
            id=opportunity_id,
            tenant_id=tenant,
            fields=_opportunity_fields(fields, lead, "", ""),
            pipeline=pipeline,
            now=now,
            actor=actor,
        )

        organization_id = ""
        if create_organization:
            organization_id = await self.contacts.create_organization(
                lead.company_name, request_id=f"sales-lead-conversion/{lead.id}/organization"
            )
        contact = await self._contact(lead, organization_id)

        async def convert(tx: Transaction) -> Conversion:
            current = await self.store.get_lead(tenant, lead_id, tx.session)
            if current.status is LeadStatus.CONVERTED:  # a concurrent conversion won
                return await self._earlier(current, tx)
            opportunity = Opportunity.create(
                id=opportunity_id,
                tenant_id=tenant,
                fields=_opportunity_fields(fields, current, contact.id, organization_id),
                pipeline=await self._pipeline(tenant, fields.pipeline_id, tx),
                now=now,
                actor=actor,
            )
            converted = current.convert(
                contact_id=contact.id,
                organization_id=organization_id,
                opportunity_id=opportunity.id,
                expected_version=expected_version,
                now=now,
            )
            await self.store.insert_opportunity(opportunity, tx.session)
            await self.store.replace_lead(current.version, converted, tx.session)
            await publish_on_key(tx, self.store, [events.opportunity_created(opportunity, call)])
            await publish_on_key(
                tx,
                self.store,
                [events.lead_converted(converted, contact.created, current.version, call)],
            )
            return Conversion(converted, opportunity)

        return await self.unit_of_work.run(convert, retries=WRITE_RETRIES)

    async def _contact(self, lead: Lead, organization_id: str) -> FoundContact:
        if lead.contact_id:
            try:
                await self.contacts.require_contact(lead.contact_id)
            except NotFound:
                raise FailedPrecondition(
                    UNKNOWN_CONTACT, lead.subject, f"its contact {lead.contact_id!r} does not exist"
                ) from None
            return FoundContact(lead.contact_id, created=False)
        person = Person(lead.person_name or lead.company_name or lead.email, lead.email, lead.phone)
        return await self.contacts.find_or_create_person(
            person,
            organization_id=organization_id,
            request_id=f"sales-lead-conversion/{lead.id}/contact",
            subject=lead.subject,
        )

    async def _pipeline(
        self, tenant_id: str, pipeline_id: str, tx: Transaction | None = None
    ) -> Pipeline:
        try:
            return await self.store.get_pipeline(tenant_id, pipeline_id, tx.session if tx else None)
        except NotFound:
            raise InvalidArgument.single("opportunity.pipeline_id", "no such pipeline") from None

    async def _earlier(self, lead: Lead, tx: Transaction | None = None) -> Conversion:
        opportunity = await self.store.get_opportunity(
            lead.tenant_id, lead.converted_opportunity_id, tx.session if tx else None
        )
        return Conversion(lead, opportunity)


def _opportunity_fields(
    fields: OpportunityInput, lead: Lead, contact_id: str, organization_id: str
) -> OpportunityInput:
    """The requested opportunity with what the conversion decides: its contact, lead, campaign,
    owner and account (and the lead's company facts as the account's, unless given)."""
    return replace(
        fields,
        primary_contact_id=contact_id,
        source_lead_id=lead.id,
        campaign_id=fields.campaign_id or lead.campaign_id,
        owner_id=fields.owner_id or lead.owner_id,
        account_id=organization_id or fields.account_id,
        account_profile=(
            lead.company_profile if fields.account_profile == NO_PROFILE else fields.account_profile
        ),
    )
