"""Creating a contact: every rule checked, every violation reported at once."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from crm_contacts.domain import (
    ConsentInput,
    Contact,
    ContactInput,
    IdentityInput,
    IdentityKind,
    LifecycleStage,
    SocialNetwork,
    Tier,
)
from crm_platform.errors import InvalidArgument

NOW = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def create(fields: ContactInput, *, prefix: str = "contact") -> Contact:
    return Contact.create(
        id="c1", tenant_id="t1", fields=fields, now=NOW, default_region="US", field_prefix=prefix
    )


def violations_of(fields: ContactInput) -> dict[str, str]:
    with pytest.raises(InvalidArgument) as caught:
        create(fields)
    return {v.field: v.description for v in caught.value.violations}


def email(value: str, *, primary: bool = False) -> IdentityInput:
    return IdentityInput(IdentityKind.EMAIL, value, primary=primary)


def test_new_contact_starts_at_version_one_with_defaults() -> None:
    contact = create(ContactInput(given_name="  Ada ", family_name="Lovelace"))
    assert (contact.given_name, contact.family_name) == ("Ada", "Lovelace")
    assert contact.version == 1
    assert contact.create_time == contact.update_time == NOW
    assert contact.lifecycle_stage is LifecycleStage.PROSPECT
    assert contact.tier is Tier.STANDARD
    assert contact.consent.update_time == NOW


def test_contact_may_start_in_any_lifecycle_stage() -> None:
    contact = create(ContactInput(given_name="Ada", lifecycle_stage=LifecycleStage.CUSTOMER))
    assert contact.lifecycle_stage is LifecycleStage.CUSTOMER


def test_contact_needs_at_least_one_name() -> None:
    # A rule over three fields is reported on the contact itself.
    assert set(violations_of(ContactInput(given_name=" ", family_name=""))) == {"contact"}


@pytest.mark.parametrize("name", ["given_name", "family_name", "display_name"])
def test_any_single_name_is_enough(name: str) -> None:
    contact = create(ContactInput(**{name: "Ada"}))  # type: ignore[arg-type]
    assert getattr(contact, name) == "Ada"


def test_name_longer_than_200_characters_is_refused() -> None:
    assert "contact.family_name" in violations_of(
        ContactInput(given_name="Ada", family_name="x" * 201)
    )
    assert create(ContactInput(given_name="x" * 200 + "  ")).given_name == "x" * 200


def test_all_violations_are_reported_together() -> None:
    found = violations_of(
        ContactInput(
            family_name="x" * 201,
            owner_id="o" * 65,
            organization_id="has space",
            segments=["ok", ""],
            custom_attributes={"Bad Key": "v", "fine": "x" * 1025},
            identities=[email("nope"), IdentityInput(IdentityKind.PHONE, "12")],
        )
    )
    assert set(found) == {
        "contact.family_name",
        "contact.owner_id",
        "contact.organization_id",
        "contact.segments[1]",
        "contact.custom_attributes.`Bad Key`",
        "contact.custom_attributes.fine",
        "contact.identities[0].value",
        "contact.identities[1].value",
    }


def test_violation_paths_use_the_callers_prefix() -> None:
    with pytest.raises(InvalidArgument) as caught:
        create(ContactInput(identities=[email("nope")]), prefix="")
    assert {v.field for v in caught.value.violations} == {"given_name", "identities[0].value"}


def test_identities_are_normalised() -> None:
    contact = create(
        ContactInput(
            given_name="Ada",
            identities=[
                email("Ada@Example.COM"),
                IdentityInput(IdentityKind.PHONE, "(415) 555-2671"),
                IdentityInput(IdentityKind.SOCIAL, "@AdaL", SocialNetwork.X),
            ],
        )
    )
    assert [i.value for i in contact.identities] == ["Ada@example.com", "+14155552671", "adal"]
    assert [k.value for k in contact.identity_keys] == [
        "ada@example.com",
        "+14155552671",
        "adal",
    ]


def test_duplicate_identity_within_a_contact_is_refused() -> None:
    found = violations_of(
        ContactInput(
            given_name="Ada", identities=[email("ada@example.com"), email("ADA@example.com")]
        )
    )
    assert found == {
        "contact.identities[1].value": "duplicates contact.identities[0] (ada@example.com)"
    }


def test_first_identity_of_each_kind_becomes_primary_when_none_is() -> None:
    contact = create(
        ContactInput(
            given_name="Ada",
            identities=[
                email("a@example.com"),
                email("b@example.com"),
                IdentityInput(IdentityKind.PHONE, "+14155552671"),
            ],
        )
    )
    assert [i.primary for i in contact.identities] == [True, False, True]


def test_explicit_primary_is_kept() -> None:
    contact = create(
        ContactInput(
            given_name="Ada",
            identities=[email("a@example.com"), email("b@example.com", primary=True)],
        )
    )
    assert [i.primary for i in contact.identities] == [False, True]


def test_two_primary_identities_of_one_kind_are_refused() -> None:
    found = violations_of(
        ContactInput(
            given_name="Ada",
            identities=[email("a@example.com", primary=True), email("b@example.com", primary=True)],
        )
    )
    assert set(found) == {"contact.identities[1].primary"}


def test_more_than_50_identities_are_refused() -> None:
    many = [email(f"a{i}@example.com") for i in range(51)]
    assert set(violations_of(ContactInput(given_name="Ada", identities=many))) == {
        "contact.identities"
    }


def test_segments_are_trimmed_and_deduplicated() -> None:
    contact = create(ContactInput(given_name="Ada", segments=[" vip ", "newsletter", "vip"]))
    assert contact.segments == ("vip", "newsletter")


def test_segment_limits() -> None:
    assert set(violations_of(ContactInput(given_name="A", segments=["x" * 65]))) == {
        "contact.segments[0]"
    }
    too_many = [f"s{i}" for i in range(51)]
    assert set(violations_of(ContactInput(given_name="A", segments=too_many))) == {
        "contact.segments"
    }
    # 60 entries that collapse to 50 distinct ones are fine.
    repeated = [f"s{i}" for i in range(50)] + ["s0"] * 10
    assert len(create(ContactInput(given_name="A", segments=repeated)).segments) == 50


def test_custom_attribute_limits() -> None:
    ok = {f"k{i}": "v" for i in range(100)}
    assert len(create(ContactInput(given_name="A", custom_attributes=ok)).custom_attributes) == 100
    ok["k100"] = "v"
    assert set(violations_of(ContactInput(given_name="A", custom_attributes=ok))) == {
        "contact.custom_attributes"
    }
    assert set(violations_of(ContactInput(given_name="A", custom_attributes={"9lives": "v"}))) == {
        "contact.custom_attributes.`9lives`"
    }


def test_consent_choices_are_recorded_with_their_time() -> None:
    contact = create(ContactInput(given_name="A", consent=ConsentInput(email_marketing=True)))
    assert contact.consent.email_marketing
    assert not contact.consent.sms_marketing
    assert contact.consent.update_time == NOW


def test_name_with_control_characters_is_refused() -> None:
    assert set(violations_of(ContactInput(given_name="Ada\x00"))) == {"contact.given_name"}


def test_contact_round_trips_through_its_input() -> None:
    contact = create(
        ContactInput(
            given_name="Ada",
            tier=Tier.GOLD,
            segments=["vip"],
            custom_attributes={"source": "fair"},
            identities=[email("Ada@Example.com")],
        )
    )
    assert create(contact.as_input()) == contact
