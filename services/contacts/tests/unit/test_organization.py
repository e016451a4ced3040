"""Organisations: name required, domain normalised, updates under a mask."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crm_contacts.domain import Organization, OrganizationInput, Tier
from crm_platform.errors import InvalidArgument, StaleVersion

CREATED = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
LATER = CREATED + timedelta(days=1)


def create(fields: OrganizationInput) -> Organization:
    return Organization.create(id="o1", tenant_id="t1", fields=fields, now=CREATED)


def violations_of(fields: OrganizationInput) -> set[str]:
    with pytest.raises(InvalidArgument) as caught:
        create(fields)
    return {v.field for v in caught.value.violations}


def test_new_organization_has_defaults_and_version_one() -> None:
    org = create(OrganizationInput(name="  Analytical Engines Ltd "))
    assert org.name == "Analytical Engines Ltd"
    assert (org.tier, org.domain, org.version) == (Tier.STANDARD, "", 1)
    assert org.create_time == org.update_time == CREATED


def test_organization_needs_a_name() -> None:
    assert violations_of(OrganizationInput(name="  ")) == {"organization.name"}


def test_organization_domain_is_lowercased() -> None:
    assert create(OrganizationInput(name="Acme", domain="WWW.Acme.COM.")).domain == "www.acme.com"


def test_internationalised_domain_is_kept_in_unicode_form() -> None:
    assert create(OrganizationInput(name="B", domain="xn--bcher-kva.de")).domain == "bücher.de"


def test_invalid_organization_fields_are_reported_together() -> None:
    assert violations_of(
        OrganizationInput(
            name="x" * 201,
            domain="https://acme.com/about",
            industry="y" * 101,
            owner_id="o" * 65,
            custom_attributes={"Bad": "v"},
        )
    ) == {
        "organization.name",
        "organization.domain",
        "organization.industry",
        "organization.owner_id",
        "organization.custom_attributes.Bad",
    }


def test_organization_update_changes_masked_fields_only() -> None:
    org = create(OrganizationInput(name="Acme", industry="Rockets"))
    after, changed = org.apply_update(
        OrganizationInput(name="ignored", domain="Acme.com", tier=Tier.PLATINUM),
        ["domain", "tier"],
        1,
        LATER,
    )
    assert (after.name, after.domain, after.tier, after.industry) == (
        "Acme",
        "acme.com",
        Tier.PLATINUM,
        "Rockets",
    )
    assert changed == ["domain", "tier"]
    assert (after.version, after.update_time) == (2, LATER)


def test_organization_update_without_change_keeps_version() -> None:
    org = create(OrganizationInput(name="Acme", domain="acme.com"))
    after, changed = org.apply_update(OrganizationInput(domain="ACME.COM"), ["domain"], 1, LATER)
    assert (after, changed) == (org, [])


def test_organization_name_cannot_be_cleared() -> None:
    org = create(OrganizationInput(name="Acme"))
    with pytest.raises(InvalidArgument) as caught:
        org.apply_update(OrganizationInput(), ["name"], 1, LATER)
    assert [v.field for v in caught.value.violations] == ["organization.name"]


def test_organization_stale_version_is_refused() -> None:
    org = create(OrganizationInput(name="Acme"))
    with pytest.raises(StaleVersion):
        org.apply_update(OrganizationInput(name="Acme 2"), ["name"], 2, LATER)


def test_organization_immutable_and_unknown_paths_are_refused() -> None:
    org = create(OrganizationInput(name="Acme"))
    with pytest.raises(InvalidArgument) as caught:
        org.apply_update(OrganizationInput(), ["id", "website", "create_time"], 1, LATER)
    assert [v.field for v in caught.value.violations] == ["update_mask"] * 3


def test_organization_custom_attribute_by_key() -> None:
    org = create(OrganizationInput(name="Acme", custom_attributes={"erp_id": "42"}))
    after, changed = org.apply_update(
        OrganizationInput(custom_attributes={"region": "emea"}),
        ["custom_attributes.region", "custom_attributes.erp_id"],
        None,
        LATER,
    )
    assert after.custom_attributes == {"region": "emea"}
    assert changed == ["custom_attributes.region", "custom_attributes.erp_id"]
