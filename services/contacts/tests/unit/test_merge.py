"""Dedupe and merge rules: canonical e-mail, duplicate scores, field choices, unions, consent."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crm_contacts.domain import Consent, Contact, ContactInput, IdentityInput, IdentityKind
from crm_contacts.domain.identity import SocialNetwork
from crm_contacts.domain.merge import (
    Reason,
    Source,
    canonical_email,
    merge_contacts,
    merged_consent,
    score_pair,
)
from crm_platform.errors import InvalidArgument, StaleVersion

CREATED = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
NOW = CREATED + timedelta(days=1)


def contact(contact_id: str, **overrides: Any) -> Contact:
    base = ContactInput(given_name="Ada", family_name="Lovelace")
    fields = dataclasses.replace(base, **overrides)
    return Contact.create(id=contact_id, tenant_id="t1", fields=fields, now=CREATED)


def email(value: str, primary: bool = False) -> IdentityInput:
    return IdentityInput(IdentityKind.EMAIL, value, primary=primary)


def merge(survivor: Contact, merged: Contact, **choices: Source) -> tuple[Contact, Any]:
    return merge_contacts(
        survivor,
        merged,
        choices,
        expected_survivor_version=None,
        expected_merged_version=None,
        now=NOW,
        actor="agent:alice",
    )


@pytest.mark.parametrize(
    ("address", "canonical"),
    [
        ("Ada.Lovelace+crm@GoogleMail.com", "adalovelace@gmail.com"),
        ("a.d.a@gmail.com", "ada@gmail.com"),
        ("Ada.Lovelace+news@example.com", "ada.lovelace@example.com"),
        ("ada@example.com", "ada@example.com"),
    ],
)
def test_canonical_email(address: str, canonical: str) -> None:
    assert canonical_email(address) == canonical


def test_tagged_gmail_addresses_are_candidates() -> None:
    left = contact("a", identities=[email("ada.lovelace@gmail.com")])
    right = contact("b", given_name="Augusta", identities=[email("adalovelace+x@googlemail.com")])
    candidate = score_pair(right, left)
    assert candidate is not None
    assert (candidate.contact_id, candidate.other_contact_id) == ("a", "b")
    assert candidate.reasons == (Reason.CANONICAL_EMAIL,)
    assert candidate.score == 90


def test_phone_under_another_country_code_and_handle_on_another_network() -> None:
    left = contact(
        "a",
        identities=[
            IdentityInput(IdentityKind.PHONE, "+12079460958"),
            IdentityInput(IdentityKind.SOCIAL, "ada", SocialNetwork.X),
        ],
    )
    right = contact(
        "b",
        identities=[
            IdentityInput(IdentityKind.PHONE, "+442079460958"),
            IdentityInput(IdentityKind.SOCIAL, "ada", SocialNetwork.INSTAGRAM),
        ],
    )
    candidate = score_pair(left, right)
    assert candidate is not None
    assert candidate.reasons == (Reason.PHONE_NATIONAL_NUMBER, Reason.SOCIAL_HANDLE)
    assert candidate.score == 80


def test_similar_names_count_only_within_one_organisation() -> None:
    left = contact("a", organization_id="o1", family_name="Lovelace")
    right = contact("b", organization_id="o1", family_name="Lovelance")
    elsewhere = dataclasses.replace(right, organization_id="o2")
    candidate = score_pair(left, right)
    assert candidate is not None
    assert candidate.reasons == (Reason.SIMILAR_NAME,)
    assert 0 < candidate.score < 90
    assert score_pair(left, elsewhere) is None
    assert score_pair(left, contact("c", organization_id="o1", given_name="Grace")) is None


def test_field_choices_unions_and_audit() -> None:
    survivor = contact(
        "s",
        job_title="",
        segments=["vip"],
        custom_attributes={"source": "fair", "size": "38"},
        identities=[email("ada@example.com", primary=True)],
    )
    merged = contact(
        "m",
        given_name="Augusta",
        job_title="Analyst",
        segments=["vip", "newsletter"],
        custom_attributes={"source": "web", "city": "London"},
        identities=[email("ada@work.example", primary=True), email("ada@example.com")],
    )
    result, audit = merge(survivor, merged, given_name=Source.MERGED)
    assert (result.id, result.version, result.update_time) == ("s", 2, NOW)
    assert result.given_name == "Augusta"
    assert result.family_name == "Lovelace"
    assert result.job_title == "Analyst"  # empty on the survivor: taken from the merged one
    assert result.segments == ("vip", "newsletter")
    assert dict(result.custom_attributes) == {"source": "fair", "size": "38", "city": "London"}
    assert [(i.value, i.primary) for i in result.identities] == [
        ("ada@example.com", True),
        ("ada@work.example", False),
    ]
    sources = dict(audit.field_sources)
    assert sources["given_name"] == "m"
    assert sources["family_name"] == "s"
    assert sources["job_title"] == "m"
    assert sources["custom_attributes.source"] == "s"
    assert sources["custom_attributes.city"] == "m"
    assert (audit.identities_moved, audit.segments_added, audit.survivor_version) == (
        1,
        ("newsletter",),
        2,
    )
    chosen, _ = merge(survivor, merged, **{"custom_attributes.source": Source.MERGED})
    assert chosen.custom_attributes["source"] == "web"


def test_consent_most_recent_wins_else_stricter() -> None:
    old = Consent(email_marketing=True, sms_marketing=True, update_time=CREATED)
    new = Consent(email_marketing=False, sms_marketing=True, update_time=NOW)
    assert merged_consent(old, new) == (new, Source.MERGED)
    assert merged_consent(new, old) == (new, Source.SURVIVOR)
    unknown, source = merged_consent(
        Consent(email_marketing=True, sms_marketing=True), Consent(email_marketing=True)
    )
    assert (unknown.email_marketing, unknown.sms_marketing) == (True, False)
    assert source is Source.SURVIVOR


def test_unknown_choice_and_stale_version_are_refused() -> None:
    survivor, merged = contact("s"), contact("m")
    with pytest.raises(InvalidArgument) as bad:
        merge(survivor, merged, id=Source.MERGED)
    assert [v.field for v in bad.value.violations] == ["field_choices['id']"]
    with pytest.raises(StaleVersion):
        merge_contacts(
            survivor,
            merged,
            {},
            expected_survivor_version=3,
            expected_merged_version=None,
            now=NOW,
            actor="agent:alice",
        )
