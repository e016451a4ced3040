"""Campaigns on the real database and broker: the lifecycle and its events, dated costs, the
interaction stream (exact counts, exactly-once records and events, consent, unknown and other
tenants' campaigns), the touches on leads, and bad input that writes nothing."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

import grpc
from google.protobuf.field_mask_pb2 import FieldMask

from crm.contacts.v1 import contacts_pb2 as cpb
from crm.sales.v1 import campaigns_events_pb2 as cev
from crm.sales.v1 import campaigns_pb2 as cpg
from crm.sales.v1 import sales_pb2 as pb
from crm_testing.campaigns import (
    all_events,
    by_reason,
    campaign_stub,
    create_campaign,
    create_contact,
    drained,
    ingest,
    item,
)
from crm_testing.sales import (
    OTHER_TENANT,
    SalesUnderTest,
    events_for,
    metadata,
    precondition_types,
    refused,
    unique_id,
    violations,
)

SENT = cpg.CAMPAIGN_INTERACTION_KIND_SENT
DELIVERED = cpg.CAMPAIGN_INTERACTION_KIND_DELIVERED
OPENED = cpg.CAMPAIGN_INTERACTION_KIND_OPENED
CLICKED = cpg.CAMPAIGN_INTERACTION_KIND_CLICKED
RESPONDED = cpg.CAMPAIGN_INTERACTION_KIND_RESPONDED
UNSUBSCRIBED = cpg.CAMPAIGN_INTERACTION_KIND_UNSUBSCRIBED


async def test_campaign_lifecycle_publishes_its_events_in_order(
    sales: SalesUnderTest, infra: Any
) -> None:
    async with campaign_stub(sales) as stub:
        request = cpg.CreateCampaignRequest(
            campaign=cpg.Campaign(
                name="Autumn webinar",
                channel=cpg.CAMPAIGN_CHANNEL_EVENT,
                budget_minor=250_000,
                currency="EUR",
                target_segment="smb",
            ),
            request_id=unique_id("req"),
        )
        created = (await stub.CreateCampaign(request, metadata=metadata())).campaign
        again = (await stub.CreateCampaign(request, metadata=metadata())).campaign
        assert again.id == created.id
        assert created.status == cpg.CAMPAIGN_STATUS_DRAFT
        assert created.version == 1

        updated = (
            await stub.UpdateCampaign(
                cpg.UpdateCampaignRequest(
                    campaign=cpg.Campaign(id=created.id, budget_minor=300_000, name="ignored"),
                    update_mask=FieldMask(paths=["budget_minor"]),
                    expected_version=1,
                ),
                metadata=metadata(),
            )
        ).campaign
        assert (updated.budget_minor, updated.name, updated.version) == (
            300_000,
            "Autumn webinar",
            2,
        )
        stale = await refused(
            stub.UpdateCampaign(
                cpg.UpdateCampaignRequest(
                    campaign=cpg.Campaign(id=created.id, name="Late"),
                    update_mask=FieldMask(paths=["name"]),
                    expected_version=1,
                ),
                metadata=metadata(),
            ),
            grpc.StatusCode.FAILED_PRECONDITION,
        )
        assert "STALE_VERSION" in precondition_types(stale)

        active = (
            await stub.ActivateCampaign(
                cpg.ActivateCampaignRequest(id=created.id, expected_version=2),
                metadata=metadata(),
            )
        ).campaign
        assert active.status == cpg.CAMPAIGN_STATUS_ACTIVE
        assert active.HasField("activate_time")

        cost_request = cpg.RecordCampaignCostRequest(
            campaign_id=created.id,
            cost=cpg.CampaignCost(
                amount_minor=120_050, currency="EUR", cost_date="2026-03-02", description="Venue"
            ),
            request_id=unique_id("cost"),
        )
        first = await stub.RecordCampaignCost(cost_request, metadata=metadata())
        retried = await stub.RecordCampaignCost(cost_request, metadata=metadata())
        assert retried.cost.id == first.cost.id
        assert retried.campaign.cost_total_minor == 120_050
        assert retried.campaign.cost_entry_count == 1

        completed = (
            await stub.CompleteCampaign(
                cpg.CompleteCampaignRequest(id=created.id), metadata=metadata()
            )
        ).campaign
        assert completed.status == cpg.CAMPAIGN_STATUS_COMPLETED
        closed = await refused(
            stub.UpdateCampaign(
                cpg.UpdateCampaignRequest(
                    campaign=cpg.Campaign(id=created.id, name="Renamed"),
                    update_mask=FieldMask(paths=["name"]),
                ),
                metadata=metadata(),
            ),
            grpc.StatusCode.FAILED_PRECONDITION,
        )
        assert "CAMPAIGN_CLOSED" in precondition_types(closed)
        again_active = await refused(
            stub.ActivateCampaign(cpg.ActivateCampaignRequest(id=created.id), metadata=metadata()),
            grpc.StatusCode.FAILED_PRECONDITION,
        )
        assert "ILLEGAL_CAMPAIGN_TRANSITION" in precondition_types(again_active)
        # A late invoice is still recorded after the campaign ended.
        late = await stub.RecordCampaignCost(
            cpg.RecordCampaignCostRequest(
                campaign_id=created.id,
                cost=cpg.CampaignCost(amount_minor=1, currency="EUR", cost_date="2026-04-01"),
                request_id=unique_id("cost"),
            ),
            metadata=metadata(),
        )
        assert late.campaign.cost_total_minor == 120_051

    found = await events_for(infra.kafka_bootstrap, created.id, 6)
    assert [e.type.removeprefix("crm.sales.v1.") for e in found] == [
        "CampaignCreated",
        "CampaignUpdated",
        "CampaignStatusChanged",
        "CampaignCostRecorded",
        "CampaignStatusChanged",
        "CampaignCostRecorded",
    ]
    assert {e.actor.id for e in found} == {"alice"}
    recorded = found[3].decode()
    assert isinstance(recorded, cev.CampaignCostRecorded)
    assert (recorded.cost.amount_minor, recorded.cost.currency, recorded.cost.cost_date) == (
        120_050,
        "EUR",
        "2026-03-02",
    )
    assert recorded.campaign.channel == cpg.CAMPAIGN_CHANNEL_EVENT
    status = found[4].decode()
    assert isinstance(status, cev.CampaignStatusChanged)
    assert status.previous_status == cpg.CAMPAIGN_STATUS_ACTIVE
    assert status.campaign.status == cpg.CAMPAIGN_STATUS_COMPLETED


async def test_list_campaigns_pages_by_id_and_filters(sales: SalesUnderTest) -> None:
    tenant = unique_id("lister")
    async with campaign_stub(sales) as stub:
        made = [await create_campaign(stub, tenant=tenant, active=i % 2 == 0) for i in range(5)]
        seen: list[str] = []
        token = ""
        while True:
            page = await stub.ListCampaigns(
                cpg.ListCampaignsRequest(page_size=2, page_token=token), metadata=metadata(tenant)
            )
            seen += [c.id for c in page.campaigns]
            token = page.next_page_token
            if not token:
                break
        assert seen == sorted(c.id for c in made)
        drafts = await stub.ListCampaigns(
            cpg.ListCampaignsRequest(status=cpg.CAMPAIGN_STATUS_DRAFT), metadata=metadata(tenant)
        )
        assert sorted(c.id for c in drafts.campaigns) == sorted(made[i].id for i in (1, 3))


async def test_stream_of_2000_items_counts_exactly_and_records_each_once(
    sales: SalesUnderTest, infra: Any
) -> None:
    rng = random.Random(13)
    async with campaign_stub(sales) as stub:
        campaign = await create_campaign(stub)
        consenting = [await create_contact(sales, email=True) for _ in range(40)]
        refusing = [await create_contact(sales, email=False) for _ in range(5)]
        items: list[cpg.CampaignInteraction] = []
        outcome: list[str] = []  # per item: "accepted", "duplicate" or the refusal's name
        expected_accepted: set[tuple[str, int, str]] = set()
        kinds = [DELIVERED, OPENED, CLICKED, RESPONDED]
        while len(items) < 2000:
            roll = rng.random()
            n = len(items)
            if roll < 0.05 and items:  # a copy of an earlier item
                earlier = rng.randrange(len(items))
                items.append(items[earlier])
                first = outcome[earlier]
                outcome.append("duplicate" if first in ("accepted", "duplicate") else first)
                continue
            if roll < 0.08:  # invalid: no external id, or no kind, or no time
                bad = item(campaign.id, consenting[0], SENT, f"bad-{n}")
                choice = n % 3
                if choice == 0:
                    bad.external_id = ""
                elif choice == 1:
                    bad.kind = cpg.CAMPAIGN_INTERACTION_KIND_UNSPECIFIED
                else:
                    bad.ClearField("occur_time")
                items.append(bad)
                outcome.append("INGEST_REFUSAL_INVALID")
            elif roll < 0.10:
                items.append(item(unique_id("nope"), consenting[0], OPENED, f"x-{n}"))
                outcome.append("INGEST_REFUSAL_CAMPAIGN_NOT_FOUND")
            elif roll < 0.12:
                items.append(item(campaign.id, rng.choice(refusing), SENT, f"s-{n}"))
                outcome.append("INGEST_REFUSAL_NO_CONSENT")
            elif roll < 0.13:
                items.append(item(campaign.id, unique_id("ghost"), OPENED, f"g-{n}"))
                outcome.append("INGEST_REFUSAL_CONTACT_NOT_FOUND")
            else:
                contact = rng.choice(consenting)
                kind = SENT if roll < 0.4 else rng.choice(kinds)
                items.append(item(campaign.id, contact, kind, f"m-{n}", minutes=n))
                expected_accepted.add((contact, kind, f"m-{n}"))
                outcome.append("accepted")
        counted = Counter(outcome)
        expected_duplicates = counted.pop("duplicate")
        assert counted.pop("accepted") == len(expected_accepted)
        expected = dict(counted)

        summary = await ingest(stub, items)

        assert summary.received == 2000
        assert summary.accepted == len(expected_accepted)
        assert summary.duplicates == expected_duplicates
        assert by_reason(summary) == expected
        assert summary.refused == sum(expected.values())
        assert summary.received == summary.accepted + summary.duplicates + summary.refused
        invalid = [e for e in summary.errors if e.reason == cpg.INGEST_REFUSAL_INVALID]
        assert {items[e.index].external_id for e in invalid if items[e.index].external_id} <= {
            i.external_id for i in items if i.external_id.startswith("bad-")
        }
        assert all(e.field_violations for e in invalid)
        assert {v.field for e in invalid for v in e.field_violations} == {
            "external_id",
            "kind",
            "occur_time",
        }

        stored = await sales.mongo.db["campaign_interactions"].count_documents(
            {"campaign_id": campaign.id}
        )
        assert stored == len(expected_accepted)

        # The same stream again: only duplicates (and the same refusals).
        resent = await ingest(stub, items)
        assert resent.accepted == 0
        assert resent.duplicates == len(expected_accepted) + expected_duplicates
        assert by_reason(resent) == expected
        assert (
            await sales.mongo.db["campaign_interactions"].count_documents(
                {"campaign_id": campaign.id}
            )
            == stored
        )

    await drained(sales)
    recorded = [
        e.decode()
        for e in await all_events(infra.kafka_bootstrap)
        if e.type == "crm.sales.v1.CampaignInteractionRecorded"
    ]
    mine = [
        r
        for r in recorded
        if isinstance(r, cev.CampaignInteractionRecorded)
        and r.interaction.campaign_id == campaign.id
    ]
    assert len(mine) == len(expected_accepted)
    assert {
        (r.interaction.contact_id, r.interaction.kind, r.interaction.external_id) for r in mine
    } == (expected_accepted)
    assert {r.interaction.channel for r in mine} == {cpg.CAMPAIGN_CHANNEL_EMAIL}


async def test_events_of_one_contact_are_keyed_by_the_contact_in_stream_order(
    sales: SalesUnderTest, infra: Any
) -> None:
    async with campaign_stub(sales) as stub:
        campaign = await create_campaign(stub)
        contact = await create_contact(sales, email=True)
        kinds = [SENT, DELIVERED, OPENED, CLICKED, RESPONDED]
        summary = await ingest(
            stub, [item(campaign.id, contact, k, "msg-1", minutes=i) for i, k in enumerate(kinds)]
        )
        assert summary.accepted == 5
    found = await events_for(infra.kafka_bootstrap, contact, 5)
    payloads = [e.decode() for e in found]
    assert [p.interaction.kind for p in payloads] == kinds  # type: ignore[attr-defined]
    assert [e.time for e in found] == sorted(e.time for e in found)


async def test_send_without_consent_is_refused_and_unsubscribe_withdraws_it(
    sales: SalesUnderTest,
) -> None:
    async with campaign_stub(sales) as stub:
        email = await create_campaign(stub)
        mail = await create_campaign(stub, channel=cpg.CAMPAIGN_CHANNEL_DIRECT_MAIL)
        person = await create_contact(sales, email=True, data_processing=True)
        nobody = await create_contact(sales)

        first = await ingest(
            stub,
            [
                item(email.id, person, SENT, "e-1"),
                item(email.id, nobody, SENT, "e-2"),
                item(mail.id, person, SENT, "d-1"),
                item(mail.id, nobody, SENT, "d-2"),
                item(email.id, person, UNSUBSCRIBED, "e-1", minutes=5),
                item(mail.id, person, UNSUBSCRIBED, "d-1", minutes=5),
                item(email.id, person, SENT, "e-3", minutes=6),  # after the unsubscribe
            ],
        )
        assert (first.accepted, first.refused) == (4, 3)
        assert by_reason(first) == {"INGEST_REFUSAL_NO_CONSENT": 3}
        assert [e.index for e in first.errors] == [1, 3, 6]

        contact = await sales.contacts.GetContact(
            cpb.GetContactRequest(id=person), metadata=metadata()
        )
        assert contact.contact.consent.email_marketing is False
        assert contact.contact.consent.data_processing is True  # a channel's unsubscribe only

        later = await ingest(
            stub,
            [item(email.id, person, SENT, "e-4", 60), item(mail.id, person, SENT, "d-4", 60)],
        )
        assert by_reason(later) == {"INGEST_REFUSAL_NO_CONSENT": 2}

        # E-mail consent given again (after the unsubscribe): e-mail sends are taken again;
        # direct mail has no consent of its own to give again: its unsubscribe is final.
        await sales.contacts.UpdateContact(
            cpb.UpdateContactRequest(
                contact=cpb.Contact(
                    id=person, consent=cpb.Consent(email_marketing=True, data_processing=True)
                ),
                update_mask=FieldMask(paths=["consent"]),
            ),
            metadata=metadata(),
        )
        again = await ingest(
            stub,
            [item(email.id, person, SENT, "e-5", 60), item(mail.id, person, SENT, "d-5", 60)],
        )
        assert (again.accepted, [e.index for e in again.errors]) == (1, [1])


async def test_unknown_draft_and_other_tenants_campaigns_are_refused(
    sales: SalesUnderTest,
) -> None:
    async with campaign_stub(sales) as stub:
        theirs = await create_campaign(stub, tenant=OTHER_TENANT)
        draft = await create_campaign(stub, active=False)
        ours = await create_campaign(stub)
        contact = await create_contact(sales, email=True)
        summary = await ingest(
            stub,
            [
                item(theirs.id, contact, OPENED, "t-1"),
                item("no-such-campaign", contact, OPENED, "t-2"),
                item(draft.id, contact, OPENED, "t-3"),
                item(ours.id, contact, OPENED, "t-4"),
            ],
        )
        assert by_reason(summary) == {
            "INGEST_REFUSAL_CAMPAIGN_NOT_FOUND": 2,
            "INGEST_REFUSAL_CAMPAIGN_NOT_ACTIVE": 1,
        }
        assert summary.accepted == 1
        interactions = sales.mongo.db["campaign_interactions"]
        assert await interactions.count_documents({"campaign_id": theirs.id}) == 0
        assert await interactions.count_documents({"campaign_id": draft.id}) == 0
        await refused(
            stub.GetCampaign(cpg.GetCampaignRequest(id=theirs.id), metadata=metadata()),
            grpc.StatusCode.NOT_FOUND,
        )
        await refused(
            stub.RecordCampaignCost(
                cpg.RecordCampaignCostRequest(
                    campaign_id=theirs.id,
                    cost=cpg.CampaignCost(amount_minor=1, currency="EUR", cost_date="2026-01-01"),
                    request_id="r",
                ),
                metadata=metadata(),
            ),
            grpc.StatusCode.NOT_FOUND,
        )
        # A completed campaign takes late opens, not sends.
        await stub.CompleteCampaign(cpg.CompleteCampaignRequest(id=ours.id), metadata=metadata())
        late = await ingest(
            stub, [item(ours.id, contact, CLICKED, "t-5"), item(ours.id, contact, SENT, "t-6")]
        )
        assert (late.accepted, by_reason(late)) == (1, {"INGEST_REFUSAL_CAMPAIGN_NOT_ACTIVE": 1})


async def test_leads_keep_every_campaign_touch_with_first_touch_attribution(
    sales: SalesUnderTest, infra: Any
) -> None:
    async with campaign_stub(sales) as stub:
        first_campaign = await create_campaign(stub)
        second_campaign = await create_campaign(stub)
        contact = await create_contact(sales, email=True)
        lead = (
            await sales.stub.CreateLead(
                pb.CreateLeadRequest(
                    lead=pb.Lead(contact_id=contact, source=pb.LEAD_SOURCE_WEB_FORM)
                ),
                metadata=metadata(),
            )
        ).lead
        closed = (
            await sales.stub.CreateLead(
                pb.CreateLeadRequest(lead=pb.Lead(contact_id=contact, source=pb.LEAD_SOURCE_PHONE)),
                metadata=metadata(),
            )
        ).lead
        await sales.stub.DisqualifyLead(
            pb.DisqualifyLeadRequest(id=closed.id, reason="no budget"), metadata=metadata()
        )
        summary = await ingest(
            stub,
            [
                item(first_campaign.id, contact, SENT, "a", 1),
                item(second_campaign.id, contact, CLICKED, "b", 2),
            ],
        )
        assert summary.lead_touches == 2

        touched = (
            await sales.stub.GetLead(pb.GetLeadRequest(id=lead.id), metadata=metadata())
        ).lead
        assert touched.campaign_id == first_campaign.id  # first touch
        assert [(t.campaign_id, t.interaction_kind) for t in touched.campaign_touches] == [
            (first_campaign.id, SENT),
            (second_campaign.id, CLICKED),
        ]
        assert touched.version == lead.version + 2
        untouched = (
            await sales.stub.GetLead(pb.GetLeadRequest(id=closed.id), metadata=metadata())
        ).lead
        assert list(untouched.campaign_touches) == []

        from_campaign = (
            await sales.stub.CreateLead(
                pb.CreateLeadRequest(
                    lead=pb.Lead(
                        person_name="Walk-in",
                        source=pb.LEAD_SOURCE_CAMPAIGN,
                        campaign_id=second_campaign.id,
                    )
                ),
                metadata=metadata(),
            )
        ).lead
        assert [(t.campaign_id, t.lead_created) for t in from_campaign.campaign_touches] == [
            (second_campaign.id, True)
        ]

    # The contact's key: LeadCreated x2, LeadStatusChanged, then per interaction its
    # CampaignInteractionRecorded followed by the lead's LeadCampaignTouched.
    found = await events_for(infra.kafka_bootstrap, contact, 7)
    assert [e.type.removeprefix("crm.sales.v1.") for e in found][3:] == [
        "CampaignInteractionRecorded",
        "LeadCampaignTouched",
        "CampaignInteractionRecorded",
        "LeadCampaignTouched",
    ]
    touch_event = found[4].decode()
    assert isinstance(touch_event, cev.LeadCampaignTouched)
    assert touch_event.touch.campaign_id == first_campaign.id
    assert touch_event.lead.campaign_id == first_campaign.id
    recorded = found[3].decode()
    assert isinstance(recorded, cev.CampaignInteractionRecorded)
    assert list(recorded.touched_lead_ids) == [lead.id]


async def test_bad_campaign_input_is_refused_with_field_violations_and_writes_nothing(
    sales: SalesUnderTest,
) -> None:
    campaigns = sales.mongo.db["campaigns"]
    costs = sales.mongo.db["campaign_costs"]
    async with campaign_stub(sales) as stub:
        campaign = await create_campaign(stub)
        before = (await campaigns.count_documents({}), await costs.count_documents({}))

        bad_create = await refused(
            stub.CreateCampaign(
                cpg.CreateCampaignRequest(
                    campaign=cpg.Campaign(
                        name="x",
                        channel=cpg.CAMPAIGN_CHANNEL_EMAIL,
                        budget_minor=-1,
                        currency="EUR",
                    )
                ),
                metadata=metadata(),
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert "campaign.budget_minor" in violations(bad_create)
        unknown_currency = await refused(
            stub.CreateCampaign(
                cpg.CreateCampaignRequest(
                    campaign=cpg.Campaign(
                        name="  ", channel=cpg.CAMPAIGN_CHANNEL_EMAIL, currency="ZZZ"
                    )
                ),
                metadata=metadata(),
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert set(violations(unknown_currency)) == {"campaign"}, violations(unknown_currency)
        domain = await refused(
            stub.CreateCampaign(
                cpg.CreateCampaignRequest(
                    campaign=cpg.Campaign(
                        name="Fine", channel=cpg.CAMPAIGN_CHANNEL_EMAIL, currency="ZZZ"
                    )
                ),
                metadata=metadata(),
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert set(violations(domain)) == {"campaign.currency"}

        for cost, field in [
            (_cost(0, "EUR", "2026-01-01"), "cost.amount_minor"),
            (_cost(5, "USD", "2026-01-01"), "cost.currency"),
            (_cost(5, "EUR", "2026-02-30"), "cost.cost_date"),
        ]:
            error = await refused(
                stub.RecordCampaignCost(
                    cpg.RecordCampaignCostRequest(
                        campaign_id=campaign.id, cost=cost, request_id=unique_id("c")
                    ),
                    metadata=metadata(),
                ),
                grpc.StatusCode.INVALID_ARGUMENT,
            )
            assert field in violations(error), violations(error)
        no_request_id = await refused(
            stub.RecordCampaignCost(
                cpg.RecordCampaignCostRequest(
                    campaign_id=campaign.id,
                    cost=cpg.CampaignCost(amount_minor=5, currency="EUR", cost_date="2026-01-01"),
                ),
                metadata=metadata(),
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert "request_id" in violations(no_request_id)
        mask = await refused(
            stub.UpdateCampaign(
                cpg.UpdateCampaignRequest(
                    campaign=cpg.Campaign(id=campaign.id), update_mask=FieldMask(paths=["status"])
                ),
                metadata=metadata(),
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert "update_mask" in violations(mask)
        channel = await refused(
            stub.UpdateCampaign(
                cpg.UpdateCampaignRequest(
                    campaign=cpg.Campaign(id=campaign.id, channel=cpg.CAMPAIGN_CHANNEL_PHONE),
                    update_mask=FieldMask(paths=["channel"]),
                ),
                metadata=metadata(),
            ),
            grpc.StatusCode.FAILED_PRECONDITION,
        )
        assert "CAMPAIGN_NOT_DRAFT" in precondition_types(channel)

        after = (await campaigns.count_documents({}), await costs.count_documents({}))
        assert after == before
        stored = await stub.GetCampaign(cpg.GetCampaignRequest(id=campaign.id), metadata=metadata())
        assert stored.campaign.version == campaign.version
        assert stored.campaign.cost_total_minor == 0


def _cost(amount_minor: int, currency: str, cost_date: str) -> cpg.CampaignCost:
    return cpg.CampaignCost(amount_minor=amount_minor, currency=currency, cost_date=cost_date)


async def test_two_concurrent_streams_of_the_same_items_record_each_once(
    sales: SalesUnderTest, infra: Any
) -> None:
    async with campaign_stub(sales) as stub:
        campaign = await create_campaign(stub)
        contacts = [await create_contact(sales, email=True) for _ in range(10)]
        items = [
            item(campaign.id, contacts[n % 10], SENT if n % 2 else OPENED, f"c-{n}", n)
            for n in range(1200)
        ]
        first, second = await asyncio.gather(ingest(stub, items), ingest(stub, items))
        assert first.accepted + second.accepted == 1200
        assert first.duplicates + second.duplicates == 1200
        assert first.refused == second.refused == 0
        interactions = sales.mongo.db["campaign_interactions"]
        assert await interactions.count_documents({"campaign_id": campaign.id}) == 1200
    await drained(sales)
    recorded = [
        payload
        for e in await all_events(infra.kafka_bootstrap)
        if e.type == "crm.sales.v1.CampaignInteractionRecorded"
        and isinstance(payload := e.decode(), cev.CampaignInteractionRecorded)
        and payload.interaction.campaign_id == campaign.id
    ]
    assert sorted(r.interaction.external_id for r in recorded) == sorted(
        f"c-{n}" for n in range(1200)
    )


async def test_an_item_with_a_time_outside_the_timestamp_range_is_refused_alone(
    sales: SalesUnderTest,
) -> None:
    async with campaign_stub(sales) as stub:
        campaign = await create_campaign(stub)
        contact = await create_contact(sales, email=True)
        broken = item(campaign.id, contact, OPENED, "far")
        broken.occur_time.seconds = 2**62
        summary = await ingest(stub, [broken, item(campaign.id, contact, OPENED, "near")])
        assert (summary.accepted, summary.refused) == (1, 1)
        assert [(e.index, [v.field for v in e.field_violations]) for e in summary.errors] == [
            (0, ["occur_time"])
        ]
