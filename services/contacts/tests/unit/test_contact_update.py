"""Updating a contact: masks, optimistic concurrency, lifecycle transitions, change detection."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crm_contacts.domain import (
    ILLEGAL_LIFECYCLE_TRANSITION,
    ConsentInput,
    Contact,
    ContactInput,
    IdentityInput,
    IdentityKind,
    LifecycleStage,
    Tier,
)
from crm_platform.errors import FailedPrecondition, InvalidArgument, StaleVersion

CREATED = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
LATER = CREATED + timedelta(hours=8)


def contact(**overrides: Any) -> Contact:
    fields = ContactInput(
        given_name="Ada",
        family_name="Lovelace",
        custom_attributes={"source": "fair", "shoe_size": "38"},
        identities=[IdentityInput(IdentityKind.EMAIL, "ada@example.com")],
    )
    fields = dataclasses.replace(fields, **overrides)
    return Contact.create(id="c1", tenant_id="t1", fields=fields, now=CREATED)


def stage(current: LifecycleStage, target: LifecycleStage) -> Contact:
    return (
        contact(lifecycle_stage=current)
        .apply_update(ContactInput(lifecycle_stage=target), ["lifecycle_stage"], 1, LATER)
        .contact
    )


def mask_violations(paths: list[str]) -> list[str]:
    with pytest.raises(InvalidArgument) as caught:
        contact().apply_update(ContactInput(given_name="X"), paths, None, LATER)
    assert {v.field for v in caught.value.violations} == {"update_mask"}
    return [v.description for v in caught.value.violations]


def test_only_masked_fields_change() -> None:
    before = contact()
    after, changed = before.apply_update(
        ContactInput(given_name="Augusta", family_name="ignored"), ["given_name"], 1, LATER
    )
    assert (after.given_name, after.family_name) == ("Augusta", "Lovelace")
    assert changed == ["given_name"]
    assert after.version == 2
    assert after.update_time == LATER
    assert after.create_time == CREATED


def test_update_without_real_change_keeps_the_version() -> None:
    before = contact()
    after, changed = before.apply_update(
        ContactInput(given_name="  Ada "), ["given_name"], 1, LATER
    )
    assert changed == []
    assert after is before


def test_stale_version_is_refused() -> None:
    with pytest.raises(StaleVersion) as caught:
        contact().apply_update(ContactInput(given_name="X"), ["given_name"], 7, LATER)
    assert (caught.value.expected, caught.value.actual) == (7, 1)
    assert caught.value.violation_type == "STALE_VERSION"


def test_missing_expected_version_skips_the_check() -> None:
    after, _ = contact().apply_update(ContactInput(given_name="X"), ["given_name"], None, LATER)
    assert after.version == 2


def test_unknown_mask_paths_are_all_reported() -> None:
    found = mask_violations(["nickname", "consent.carrier_pigeon", "given_name.first"])
    assert len(found) == 3


@pytest.mark.parametrize(
    "path", ["id", "tenant_id", "version", "create_time", "update_time", "consent.update_time"]
)
def test_immutable_fields_cannot_be_masked(path: str) -> None:
    assert "output only" in mask_violations([path])[0]


def test_empty_mask_is_refused() -> None:
    assert mask_violations([]) == ["must name at least one field to update"]


def test_invalid_values_and_mask_paths_are_reported_together() -> None:
    with pytest.raises(InvalidArgument) as caught:
        contact().apply_update(
            ContactInput(job_title="x" * 201), ["job_title", "nickname"], 1, LATER
        )
    assert {v.field for v in caught.value.violations} == {"update_mask", "contact.job_title"}


def test_invalid_values_are_reported_before_a_stale_version() -> None:
    with pytest.raises(InvalidArgument):
        contact().apply_update(ContactInput(job_title="x" * 201), ["job_title"], 9, LATER)


def test_clearing_every_name_is_refused() -> None:
    with pytest.raises(InvalidArgument) as caught:
        contact().apply_update(ContactInput(), ["given_name", "family_name"], 1, LATER)
    assert [v.field for v in caught.value.violations] == ["contact"]


def test_clearing_one_name_is_allowed() -> None:
    after, changed = contact().apply_update(ContactInput(), ["family_name"], 1, LATER)
    assert after.family_name == ""
    assert changed == ["family_name"]


def test_masked_enum_without_value_is_refused() -> None:
    with pytest.raises(InvalidArgument) as caught:
        contact().apply_update(ContactInput(), ["tier", "lifecycle_stage"], 1, LATER)
    assert {v.field for v in caught.value.violations} == {
        "contact.tier",
        "contact.lifecycle_stage",
    }


def test_wildcard_mask_replaces_every_updatable_field() -> None:
    after, changed = contact().apply_update(
        ContactInput(
            display_name="Countess", tier=Tier.GOLD, lifecycle_stage=LifecycleStage.PROSPECT
        ),
        ["*"],
        1,
        LATER,
    )
    assert (after.given_name, after.display_name, after.tier) == ("", "Countess", Tier.GOLD)
    assert after.identities == ()
    assert after.custom_attributes == {}
    assert set(changed) == {
        "given_name",
        "family_name",
        "display_name",
        "tier",
        "custom_attributes",
        "identities",
    }


# --- lifecycle ------------------------------------------------------------------------------------

ALLOWED = [
    (LifecycleStage.PROSPECT, LifecycleStage.CUSTOMER),
    (LifecycleStage.CUSTOMER, LifecycleStage.FORMER_CUSTOMER),
    (LifecycleStage.FORMER_CUSTOMER, LifecycleStage.WIN_BACK),
    (LifecycleStage.WIN_BACK, LifecycleStage.CUSTOMER),
    (LifecycleStage.WIN_BACK, LifecycleStage.FORMER_CUSTOMER),
]


@pytest.mark.parametrize(("current", "target"), ALLOWED)
def test_allowed_lifecycle_transitions(current: LifecycleStage, target: LifecycleStage) -> None:
    after = stage(current, target)
    assert after.lifecycle_stage is target
    assert after.version == 2


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (c, t)
        for c in LifecycleStage
        for t in LifecycleStage
        if c is not t and (c, t) not in ALLOWED
    ],
)
def test_other_lifecycle_transitions_are_refused(
    current: LifecycleStage, target: LifecycleStage
) -> None:
    with pytest.raises(FailedPrecondition) as caught:
        stage(current, target)
    assert caught.value.violation_type == ILLEGAL_LIFECYCLE_TRANSITION


def test_prospect_cannot_become_former_customer() -> None:
    with pytest.raises(FailedPrecondition, match="PROSPECT to FORMER_CUSTOMER"):
        stage(LifecycleStage.PROSPECT, LifecycleStage.FORMER_CUSTOMER)


def test_same_lifecycle_stage_is_a_no_op() -> None:
    before = contact(lifecycle_stage=LifecycleStage.CUSTOMER)
    after, changed = before.apply_update(
        ContactInput(lifecycle_stage=LifecycleStage.CUSTOMER), ["lifecycle_stage"], 1, LATER
    )
    assert (after, changed) == (before, [])


def test_stale_version_is_checked_before_the_lifecycle() -> None:
    with pytest.raises(StaleVersion):
        contact().apply_update(
            ContactInput(lifecycle_stage=LifecycleStage.FORMER_CUSTOMER),
            ["lifecycle_stage"],
            3,
            LATER,
        )


# --- consent, custom attributes, identities -------------------------------------------------------


def test_granting_one_consent_keeps_the_others_and_stamps_the_time() -> None:
    before = contact(consent=ConsentInput(data_processing=True))
    after, changed = before.apply_update(
        ContactInput(consent=ConsentInput(email_marketing=True)),
        ["consent.email_marketing"],
        1,
        LATER,
    )
    assert after.consent.email_marketing
    assert after.consent.data_processing
    assert after.consent.update_time == LATER
    assert changed == ["consent.email_marketing"]


def test_unchanged_consent_keeps_its_time() -> None:
    before = contact(consent=ConsentInput(sms_marketing=True))
    after, changed = before.apply_update(
        ContactInput(consent=ConsentInput(sms_marketing=True)), ["consent"], 1, LATER
    )
    assert changed == []
    assert after.consent.update_time == CREATED


def test_one_custom_attribute_can_be_set_or_removed() -> None:
    after, changed = contact().apply_update(
        ContactInput(custom_attributes={"vip_since": "2020", "source": "ignored"}),
        ["custom_attributes.vip_since", "custom_attributes.shoe_size"],
        1,
        LATER,
    )
    assert after.custom_attributes == {"source": "fair", "vip_since": "2020"}
    assert changed == ["custom_attributes.vip_since", "custom_attributes.shoe_size"]


def test_custom_attribute_key_in_mask_must_be_valid() -> None:
    assert len(mask_violations(["custom_attributes.Bad-Key"])) == 1


def test_custom_attributes_cannot_grow_past_100_by_key() -> None:
    base = contact(custom_attributes={f"k{i}": "v" for i in range(100)})
    with pytest.raises(InvalidArgument) as caught:
        base.apply_update(
            ContactInput(custom_attributes={"extra": "v"}), ["custom_attributes.extra"], 1, LATER
        )
    assert [v.field for v in caught.value.violations] == ["contact.custom_attributes"]


def test_identities_are_replaced_as_a_whole_and_normalised() -> None:
    after, changed = contact().apply_update(
        ContactInput(
            identities=[
                IdentityInput(IdentityKind.EMAIL, "ada@example.com"),
                IdentityInput(IdentityKind.PHONE, "415 555 2671"),
            ]
        ),
        ["identities"],
        1,
        LATER,
        default_region="US",
    )
    assert [i.value for i in after.identities] == ["ada@example.com", "+14155552671"]
    assert changed == ["identities"]


def test_identity_violations_in_an_update_use_request_indexes() -> None:
    with pytest.raises(InvalidArgument) as caught:
        contact().apply_update(
            ContactInput(
                identities=[
                    IdentityInput(IdentityKind.EMAIL, "ada@example.com"),
                    IdentityInput(IdentityKind.PHONE, "415 555 2671"),
                ]
            ),
            ["identities"],
            1,
            LATER,
            field_prefix="patch",
        )
    assert [v.field for v in caught.value.violations] == ["patch.identities[1].value"]


def test_masked_fields_out_of_order_report_changes_in_mask_order() -> None:
    _, changed = contact().apply_update(
        ContactInput(tier=Tier.SILVER, job_title="Analyst", segments=["vip"]),
        ["segments", "tier", "job_title"],
        1,
        LATER,
    )
    assert changed == ["segments", "tier", "job_title"]


def test_duplicate_and_nested_mask_paths_are_collapsed() -> None:
    _, changed = contact().apply_update(
        ContactInput(consent=ConsentInput(email_marketing=True)),
        ["consent", "consent.email_marketing", "consent"],
        1,
        LATER,
    )
    assert changed == ["consent"]
