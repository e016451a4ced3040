"""Import rows: CSV and JSON Lines → contact and organisation inputs and their mask paths."""

from __future__ import annotations

import pytest

from crm_contacts.domain.contact import LifecycleStage
from crm_contacts.domain.identity import IdentityKind
from crm_contacts.domain.imports import (
    MAX_ROW_CHARACTERS,
    ContactRow,
    OrganizationRow,
    RecordKind,
    RowFormat,
    RowReader,
)
from crm_platform.errors import InvalidArgument

HEADER = "external_id,given_name,family_name,emails,phones,lifecycle_stage,attr.source"


def _fields(error: InvalidArgument) -> set[str]:
    return {violation.field for violation in error.violations}


def test_csv_row_becomes_a_contact_input_with_its_paths() -> None:
    reader = RowReader(RowFormat.CSV, RecordKind.CONTACT, HEADER)
    row = reader.read('c-1,"Smith, Jane","O""Neil",a@x.io;b@x.io,,customer,fair')
    assert isinstance(row, ContactRow)
    assert row.external_id == "c-1"
    assert row.fields.given_name == "Smith, Jane"
    assert row.fields.family_name == 'O"Neil'
    assert [(i.kind, i.value) for i in row.fields.identities] == [
        (IdentityKind.EMAIL, "a@x.io"),
        (IdentityKind.EMAIL, "b@x.io"),
    ]
    assert row.fields.lifecycle_stage is LifecycleStage.CUSTOMER
    assert row.fields.custom_attributes == {"source": "fair"}
    # The empty phones cell is "not given": not in the mask, so an update keeps the field.
    assert row.paths == (
        "given_name",
        "family_name",
        "lifecycle_stage",
        "identities",
        "custom_attributes.`source`",
    )


def test_csv_quoted_line_break_stays_in_its_field() -> None:
    reader = RowReader(RowFormat.CSV, RecordKind.CONTACT, "external_id,job_title")
    row = reader.read('c-2,"Head of\nSales"')
    assert isinstance(row, ContactRow)
    assert row.fields.job_title == "Head of\nSales"


@pytest.mark.parametrize(
    "text",
    ["c-1,Jane", 'c-1,"Jane,x,y,z,,,', "c-1,a,b,c,d,e,f\nc-2,a,b,c,d,e,f"],
)
def test_csv_rows_of_the_wrong_shape_are_refused(text: str) -> None:
    reader = RowReader(RowFormat.CSV, RecordKind.CONTACT, HEADER)
    with pytest.raises(InvalidArgument) as error:
        reader.read(text)
    assert _fields(error.value) == {"text"}


def test_csv_header_must_know_every_column_and_have_the_external_id() -> None:
    with pytest.raises(InvalidArgument) as error:
        RowReader(RowFormat.CSV, RecordKind.CONTACT, "given_name,shoe_size")
    descriptions = {v.description for v in error.value.violations}
    assert descriptions == {'unknown column "shoe_size"', 'must have the column "external_id"'}


def test_json_line_becomes_a_contact_input() -> None:
    reader = RowReader(RowFormat.JSON_LINES, RecordKind.CONTACT)
    row = reader.read(
        '{"external_id": "c-3", "segments": ["a", "b"], "consent_email_marketing": true,'
        ' "family_name": null, "organization_external_id": "o-1"}'
    )
    assert isinstance(row, ContactRow)
    assert row.fields.segments == ("a", "b")
    assert row.fields.consent.email_marketing is True
    assert row.organization_external_id == "o-1"
    assert row.paths == ("segments", "consent.email_marketing", "organization_id")


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('{"external_id": "c-1",', "text"),
        ("[1, 2]", "text"),
        ('{"external_id": "c-1", "age": "3"}', "age"),
        ('{"external_id": "c-1", "given_name": 3}', "given_name"),
        ('{"given_name": "Jane"}', "external_id"),
        ('{"external_id": "c-1", "tier": "diamond"}', "tier"),
        ('{"external_id": "c-1", "consent_sms_marketing": "maybe"}', "consent_sms_marketing"),
    ],
)
def test_bad_json_lines_are_refused_naming_the_key(text: str, field: str) -> None:
    reader = RowReader(RowFormat.JSON_LINES, RecordKind.CONTACT)
    with pytest.raises(InvalidArgument) as error:
        reader.read(text)
    assert field in _fields(error.value)


@pytest.mark.parametrize("row_format", list(RowFormat))
def test_huge_rows_are_refused_before_parsing(row_format: RowFormat) -> None:
    reader = RowReader(row_format, RecordKind.CONTACT, "external_id,given_name")
    text = "c-1," + "x" * MAX_ROW_CHARACTERS
    with pytest.raises(InvalidArgument) as error:
        reader.read(text)
    assert _fields(error.value) == {"text"}


def test_organization_rows() -> None:
    reader = RowReader(RowFormat.CSV, RecordKind.ORGANIZATION, "external_id,name,domain,tier")
    row = reader.read("o-1,Acme,acme.example,gold")
    assert isinstance(row, OrganizationRow)
    assert (row.fields.name, row.fields.domain, row.fields.tier) == ("Acme", "acme.example", "GOLD")
    assert row.paths == ("name", "domain", "tier")
    with pytest.raises(InvalidArgument):
        RowReader(RowFormat.CSV, RecordKind.ORGANIZATION, "external_id,emails")
