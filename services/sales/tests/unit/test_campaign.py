"""Campaign rules: create, update, status, costs; which interactions a campaign takes; the
interaction id; the campaign touches of a lead (first-touch attribution)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm_platform.errors import FailedPrecondition, InvalidArgument, StaleVersion
from crm_sales.domain.campaign import (
    Campaign,
    CampaignChannel,
    CampaignInput,
    CampaignStatus,
    CampaignTouch,
    ConsentFlag,
    ContactConsent,
    CostInput,
    IngestRefusal,
    InteractionKind,
    interaction_id,
    refusal,
)
from crm_sales.domain.lead import Lead, LeadInput, LeadSource

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def campaign(channel: CampaignChannel = CampaignChannel.EMAIL, **fields: object) -> Campaign:
    values: dict[str, object] = {
        "name": "Spring",
        "channel": channel,
        "budget_minor": 100_000,
        "currency": "EUR",
    }
    values.update(fields)
    return Campaign.create(
        id="c1",
        tenant_id="acme",
        fields=CampaignInput(**values),  # type: ignore[arg-type]
        now=NOW,
    )


def fields_of(error: InvalidArgument) -> set[str]:
    return {v.field for v in error.violations}


def test_create_lists_every_bad_field() -> None:
    with pytest.raises(InvalidArgument) as info:
        Campaign.create(
            id="c",
            tenant_id="t",
            fields=CampaignInput(name=" ", channel=None, budget_minor=-1, currency="XXX"),
            now=NOW,
        )
    assert fields_of(info.value) == {
        "campaign.name",
        "campaign.channel",
        "campaign.budget_minor",
        "campaign.currency",
    }


def test_status_goes_draft_active_completed_and_no_further() -> None:
    draft = campaign()
    active = draft.activate(1, NOW)
    assert (active.status, active.version, active.activate_time) == (
        CampaignStatus.ACTIVE,
        2,
        NOW,
    )
    done = active.complete(None, NOW)
    assert done.status is CampaignStatus.COMPLETED
    with pytest.raises(FailedPrecondition) as info:
        done.cancel("late", None, NOW)
    assert info.value.violation_type == "ILLEGAL_CAMPAIGN_TRANSITION"
    with pytest.raises(FailedPrecondition):
        draft.complete(None, NOW)
    with pytest.raises(StaleVersion):
        draft.activate(7, NOW)


def test_channel_changes_only_while_draft_and_currency_only_without_costs() -> None:
    changed = campaign().apply_update(
        CampaignInput(channel=CampaignChannel.PHONE), ["channel"], None, NOW
    )
    assert changed.campaign.channel is CampaignChannel.PHONE
    active = campaign().activate(None, NOW)
    with pytest.raises(FailedPrecondition) as info:
        active.apply_update(CampaignInput(channel=CampaignChannel.PHONE), ["channel"], None, NOW)
    assert info.value.violation_type == "CAMPAIGN_NOT_DRAFT"
    costed, _ = campaign().record_cost("k1", CostInput(5, "EUR", "2026-03-01", ""), None, NOW)
    with pytest.raises(InvalidArgument) as bad:
        costed.apply_update(CampaignInput(currency="USD"), ["currency"], None, NOW)
    assert fields_of(bad.value) == {"campaign.currency"}


def test_an_update_that_changes_nothing_makes_no_version() -> None:
    same = campaign().apply_update(CampaignInput(name="Spring"), ["name"], None, NOW)
    assert same.changed_paths == ()
    assert same.campaign.version == 1


@given(amounts=st.lists(st.integers(1, 10**12), min_size=1, max_size=20))
def test_cost_total_is_the_exact_sum_of_the_entries(amounts: list[int]) -> None:
    current = campaign()
    for n, amount in enumerate(amounts):
        current, entry = current.record_cost(
            f"k{n}", CostInput(amount, "EUR", "2026-03-01", "media"), None, NOW
        )
        assert entry.amount_minor == amount
    assert current.cost_total_minor == sum(amounts)
    assert current.cost_entry_count == len(amounts)
    assert current.version == 1 + len(amounts)


@pytest.mark.parametrize(
    ("cost", "field"),
    [
        (CostInput(0, "EUR", "2026-03-01", ""), "cost.amount_minor"),
        (CostInput(-5, "EUR", "2026-03-01", ""), "cost.amount_minor"),
        (CostInput(5, "USD", "2026-03-01", ""), "cost.currency"),
        (CostInput(5, "ZZZ", "2026-03-01", ""), "cost.currency"),
        (CostInput(5, "EUR", "2026-02-30", ""), "cost.cost_date"),
        (CostInput(5, "EUR", "20260301", ""), "cost.cost_date"),
    ],
)
def test_a_bad_cost_is_refused_on_its_field(cost: CostInput, field: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        campaign().record_cost("k", cost, None, NOW)
    assert fields_of(info.value) == {field}


def test_a_cost_beyond_int64_is_refused() -> None:
    big, _ = campaign().record_cost("k", CostInput(2**63 - 1, "EUR", "2026-03-01", ""), None, NOW)
    with pytest.raises(InvalidArgument):
        big.record_cost("k2", CostInput(1, "EUR", "2026-03-01", ""), None, NOW)


CONSENTING = ContactConsent(frozenset({ConsentFlag.EMAIL_MARKETING}), NOW)


def test_what_a_campaign_takes_by_status() -> None:
    draft, active = campaign(), campaign().activate(None, NOW)
    completed = active.complete(None, NOW)
    sent, opened = InteractionKind.SENT, InteractionKind.OPENED
    assert refusal(opened, draft, CONSENTING, None) is IngestRefusal.CAMPAIGN_NOT_ACTIVE
    assert refusal(sent, active, CONSENTING, None) is None
    assert refusal(sent, completed, CONSENTING, None) is IngestRefusal.CAMPAIGN_NOT_ACTIVE
    assert refusal(opened, completed, CONSENTING, None) is None
    assert refusal(opened, active, None, None) is IngestRefusal.CONTACT_NOT_FOUND


@pytest.mark.parametrize(
    ("channel", "flag"),
    [
        (CampaignChannel.EMAIL, ConsentFlag.EMAIL_MARKETING),
        (CampaignChannel.PHONE, ConsentFlag.PHONE_MARKETING),
        (CampaignChannel.DIRECT_MAIL, ConsentFlag.DATA_PROCESSING),
        (CampaignChannel.EVENT, ConsentFlag.DATA_PROCESSING),
    ],
)
def test_a_send_needs_the_channels_consent(channel: CampaignChannel, flag: ConsentFlag) -> None:
    active = campaign(channel).activate(None, NOW)
    given_ = ContactConsent(frozenset({flag}), NOW)
    others = ContactConsent(frozenset(set(ConsentFlag) - {flag}), NOW)
    assert refusal(InteractionKind.SENT, active, given_, None) is None
    assert refusal(InteractionKind.SENT, active, others, None) is IngestRefusal.NO_CONSENT
    # Only sends need it.
    assert refusal(InteractionKind.CLICKED, active, others, None) is None


def test_an_unsubscribe_refuses_sends_until_consent_is_given_again_where_it_can_be() -> None:
    email = campaign(CampaignChannel.EMAIL).activate(None, NOW)
    mail = campaign(CampaignChannel.DIRECT_MAIL).activate(None, NOW)
    later = NOW + timedelta(hours=1)
    old = ContactConsent(frozenset(ConsentFlag), NOW)
    renewed = ContactConsent(frozenset(ConsentFlag), later + timedelta(minutes=1))
    sent = InteractionKind.SENT
    assert refusal(sent, email, old, later) is IngestRefusal.NO_CONSENT
    assert refusal(sent, email, renewed, later) is None
    assert refusal(sent, mail, renewed, later) is IngestRefusal.NO_CONSENT  # final


def test_interaction_id_is_its_identity() -> None:
    one = interaction_id("t", "c", "p", InteractionKind.OPENED, "m1")
    assert one == interaction_id("t", "c", "p", InteractionKind.OPENED, "m1")
    others = {
        interaction_id("u", "c", "p", InteractionKind.OPENED, "m1"),
        interaction_id("t", "d", "p", InteractionKind.OPENED, "m1"),
        interaction_id("t", "c", "q", InteractionKind.OPENED, "m1"),
        interaction_id("t", "c", "p", InteractionKind.CLICKED, "m1"),
        interaction_id("t", "c", "p", InteractionKind.OPENED, "m2"),
        # The separator keeps the parts apart: "c" + "p" is not "cp" + "".
        interaction_id("t", "cp", "", InteractionKind.OPENED, "m1"),
    }
    assert one not in others
    assert len(others) == 6


def lead(campaign_id: str = "") -> Lead:
    return Lead.create(
        id="l1",
        tenant_id="acme",
        fields=LeadInput(contact_id="p1", source=LeadSource.WEB_FORM, campaign_id=campaign_id),
        now=NOW,
    )


def test_first_touch_sets_the_campaign_and_every_touch_is_kept() -> None:
    fresh = lead()
    assert fresh.campaign_touches == ()
    first = fresh.touched(CampaignTouch("a", InteractionKind.SENT, "i1", NOW), NOW)
    second = first.touched(CampaignTouch("b", InteractionKind.CLICKED, "i2", NOW), NOW)
    assert second.campaign_id == "a"
    assert [t.campaign_id for t in second.campaign_touches] == ["a", "b"]
    assert second.version == 3


def test_a_lead_created_from_a_campaign_has_that_touch_and_keeps_its_campaign() -> None:
    made = lead("x")
    assert made.campaign_touches == (CampaignTouch("x", None, "", NOW, lead_created=True),)
    touched = made.touched(CampaignTouch("y", InteractionKind.OPENED, "i", NOW), NOW)
    assert touched.campaign_id == "x"
