"""Lead rules: who it is about, its source, and new → working → qualified | disqualified."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from crm_platform.errors import FailedPrecondition, InvalidArgument, StaleVersion
from crm_sales.domain.lead import (
    ILLEGAL_LEAD_TRANSITION,
    Lead,
    LeadInput,
    LeadSource,
    LeadStatus,
)

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def _lead(**fields: object) -> Lead:
    values: dict[str, object] = {"person_name": "Ann Lee", "source": LeadSource.WEB_FORM}
    values.update(fields)
    return Lead.create(id="l1", tenant_id="acme", fields=LeadInput(**values), now=NOW)  # type: ignore[arg-type]


def test_new_lead_is_new_at_version_1_keyed_by_its_contact_or_itself() -> None:
    lead = _lead()
    assert (lead.status, lead.version, lead.event_key) == (LeadStatus.NEW, 1, "l1")
    assert _lead(contact_id="c-9").event_key == "c-9"


def test_a_lead_about_nobody_or_without_source_is_refused() -> None:
    with pytest.raises(InvalidArgument) as error:
        _lead(person_name="  ", source=None)
    assert {v.field for v in error.value.violations} == {"lead", "lead.source"}


def test_new_to_working_to_qualified() -> None:
    working = _lead().start_working(1, NOW)
    qualified = working.qualify(2, NOW)
    assert (working.status, qualified.status, qualified.version) == (
        LeadStatus.WORKING,
        LeadStatus.QUALIFIED,
        3,
    )


def test_disqualifying_needs_a_reason_and_is_final() -> None:
    with pytest.raises(InvalidArgument):
        _lead().disqualify(" ", None, NOW)
    out = _lead().disqualify("student, no budget", None, NOW)
    assert (out.status, out.disqualify_reason) == (LeadStatus.DISQUALIFIED, "student, no budget")
    with pytest.raises(FailedPrecondition) as error:
        out.qualify(None, NOW)
    assert error.value.violation_type == ILLEGAL_LEAD_TRANSITION


def test_qualified_lead_cannot_go_back_to_working() -> None:
    with pytest.raises(FailedPrecondition):
        _lead().qualify(None, NOW).start_working(None, NOW)


def test_only_a_qualified_lead_converts_and_keeps_what_it_became() -> None:
    with pytest.raises(FailedPrecondition):
        _lead().check_convertible(None)
    qualified = _lead().qualify(None, NOW)
    qualified.check_convertible(2)
    with pytest.raises(StaleVersion):
        qualified.check_convertible(1)
    converted = qualified.convert(
        contact_id="c-1", organization_id="", opportunity_id="o-1", expected_version=2, now=NOW
    )
    assert (converted.status, converted.version) == (LeadStatus.CONVERTED, 3)
    assert (converted.converted_contact_id, converted.converted_opportunity_id) == ("c-1", "o-1")
    assert converted.event_key == qualified.event_key
    with pytest.raises(FailedPrecondition):
        converted.check_convertible(None)


def test_stale_version_is_refused() -> None:
    with pytest.raises(StaleVersion):
        _lead().qualify(2, NOW)


def test_update_keeps_the_lead_about_someone() -> None:
    lead = _lead()
    with pytest.raises(InvalidArgument):
        lead.apply_update(LeadInput(), ["person_name"], None, NOW)
    update = lead.apply_update(LeadInput(email=" ann@example.com "), ["email"], 1, NOW)
    assert update.changed_paths == ("email",)
    assert update.lead.email == "ann@example.com"
    assert update.lead.person_name == "Ann Lee"
