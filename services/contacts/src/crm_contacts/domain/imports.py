"""Import rows: one CSV record or JSON Lines object → the input of a contact or organisation.

A row is read into a flat record (column or key → value) and then into the same
:class:`~crm_contacts.domain.contact.ContactInput` / :class:`OrganizationInput` a create or
update request carries, plus the update mask paths the row names, so the import reuses the
contact and organisation rules unchanged. Conventions (see services/contacts/README.md):

* an empty cell (CSV) or an absent, ``null`` or ``""`` value (JSON) means "not given": on an
  update the field keeps its value (an import never clears a field);
* list columns (``segments``, ``emails``, ``phones``) are ``;``-separated in CSV and either
  that or an array of strings in JSON;
* ``attr.<key>`` columns are custom attributes; ``consent_<choice>`` columns are booleans
  (``true``/``false``, ``yes``/``no``, ``1``/``0``; JSON booleans too).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from crm_contacts.domain._validation import Violations, has_control_characters
from crm_contacts.domain.contact import ConsentInput, ContactInput, LifecycleStage
from crm_contacts.domain.identity import IdentityInput, IdentityKind
from crm_contacts.domain.organization import OrganizationInput
from crm_contacts.domain.tier import Tier
from crm_platform.errors import InvalidArgument

MAX_ROW_CHARACTERS = 64 * 1024
"""A longer row is refused before it is parsed (no record of the model needs that much)."""
MAX_EXTERNAL_ID_LENGTH = 200
ATTRIBUTE_PREFIX = "attr."
EXTERNAL_ID = "external_id"


class RowFormat(StrEnum):
    """How a row's text is written."""

    CSV = "CSV"
    JSON_LINES = "JSON_LINES"


class RecordKind(StrEnum):
    """What the rows of an import describe."""

    CONTACT = "CONTACT"
    ORGANIZATION = "ORGANIZATION"


_CONTACT_TEXT = ("given_name", "family_name", "display_name", "job_title", "owner_id")
_CONTACT_LISTS = ("segments", "emails", "phones")
_CONSENT = {f"consent_{name}": name for name in ConsentInput.__dataclass_fields__}
_CONTACT_COLUMNS = frozenset(
    {EXTERNAL_ID, "lifecycle_stage", "tier", "organization_external_id"}
    | set(_CONTACT_TEXT)
    | set(_CONTACT_LISTS)
    | set(_CONSENT)
)
_ORGANIZATION_TEXT = ("name", "domain", "industry", "owner_id")
_ORGANIZATION_COLUMNS = frozenset({EXTERNAL_ID, "tier", *_ORGANIZATION_TEXT})
_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0"})

Value = str | list[str] | bool
_E = TypeVar("_E", bound=StrEnum)


@dataclass(frozen=True, slots=True)
class ContactRow:
    """A contact row: its external id, the fields it gives, the update mask paths they are,
    and the external id of its organisation (empty: none given)."""

    external_id: str
    fields: ContactInput
    paths: tuple[str, ...]
    organization_external_id: str = ""


@dataclass(frozen=True, slots=True)
class OrganizationRow:
    """An organisation row: its external id, the fields it gives and their mask paths."""

    external_id: str
    fields: OrganizationInput
    paths: tuple[str, ...]


def _known(kind: RecordKind, column: str) -> bool:
    if column.startswith(ATTRIBUTE_PREFIX) and len(column) > len(ATTRIBUTE_PREFIX):
        return True
    columns = _CONTACT_COLUMNS if kind is RecordKind.CONTACT else _ORGANIZATION_COLUMNS
    return column in columns


class RowReader:
    """Reads the rows of one import (its format, record kind and, for CSV, header)."""

    def __init__(self, row_format: RowFormat, kind: RecordKind, csv_header: str = "") -> None:
        """``InvalidArgument`` (on ``header.csv_header``) for a CSV header that is empty,
        repeats or does not know a column, or lacks ``external_id``."""
        self.format = row_format
        self.kind = kind
        self.columns: tuple[str, ...] = ()
        if row_format is RowFormat.CSV:
            self.columns = _read_header(kind, csv_header)

    def read(self, text: str) -> ContactRow | OrganizationRow:
        """The row's record; ``InvalidArgument`` naming the bad columns (or ``text``)."""
        if len(text) > MAX_ROW_CHARACTERS:
            raise InvalidArgument.single(
                "text", f"the row is longer than {MAX_ROW_CHARACTERS} characters"
            )
        record = self._csv(text) if self.format is RowFormat.CSV else self._json(text)
        if self.kind is RecordKind.CONTACT:
            return contact_row(record)
        return organization_row(record)

    def _csv(self, text: str) -> dict[str, Value]:
        try:
            records = list(csv.reader(io.StringIO(text), strict=True))
        except csv.Error as error:
            raise InvalidArgument.single("text", f"not a CSV record: {error}") from None
        if len(records) != 1:
            raise InvalidArgument.single(
                "text", f"must hold exactly one CSV record, holds {len(records)}"
            )
        (cells,) = records
        if len(cells) != len(self.columns):
            raise InvalidArgument.single(
                "text", f"has {len(cells)} fields, the header names {len(self.columns)}"
            )
        return {column: cell for column, cell in zip(self.columns, cells, strict=True) if cell}

    def _json(self, text: str) -> dict[str, Value]:
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as error:
            raise InvalidArgument.single("text", f"not JSON: {error}") from None
        if not isinstance(parsed, dict):
            raise InvalidArgument.single("text", "must be a JSON object")
        violations = Violations()
        record: dict[str, Value] = {}
        for key, value in parsed.items():
            if not _known(self.kind, key):
                violations.add(key, "unknown key")
            elif value is None or value == "":
                continue
            elif isinstance(value, str | bool):
                record[key] = value
            elif isinstance(value, list) and all(isinstance(item, str) for item in value):
                record[key] = list(value)
            else:
                violations.add(key, "must be a string, a boolean or an array of strings")
        violations.raise_if_any()
        return record


def _read_header(kind: RecordKind, header: str) -> tuple[str, ...]:
    try:
        rows = list(csv.reader(io.StringIO(header), strict=True))
    except csv.Error as error:
        raise InvalidArgument.single("header.csv_header", f"not a CSV header: {error}") from None
    if len(rows) != 1:
        raise InvalidArgument.single("header.csv_header", "must be exactly one CSV line")
    columns = tuple(name.strip() for name in rows[0])
    violations = Violations()
    for name in columns:
        if not _known(kind, name):
            violations.add("header.csv_header", f'unknown column "{name}"')
    if len(set(columns)) != len(columns):
        violations.add("header.csv_header", "names a column twice")
    if EXTERNAL_ID not in columns:
        violations.add("header.csv_header", f'must have the column "{EXTERNAL_ID}"')
    violations.raise_if_any()
    return columns


def _external_id(record: Mapping[str, Value], violations: Violations) -> str:
    value = record.get(EXTERNAL_ID)
    if not isinstance(value, str) or not value.strip():
        violations.add(EXTERNAL_ID, "is required")
        return ""
    value = value.strip()
    if len(value) > MAX_EXTERNAL_ID_LENGTH:
        violations.add(EXTERNAL_ID, f"must be at most {MAX_EXTERNAL_ID_LENGTH} characters")
    elif has_control_characters(value):
        violations.add(EXTERNAL_ID, "must not contain control characters")
    return value


def _text(record: Mapping[str, Value], column: str, violations: Violations) -> str | None:
    value = record.get(column)
    if value is None:
        return None
    if not isinstance(value, str):
        violations.add(column, "must be a string")
        return None
    return value


def _list(record: Mapping[str, Value], column: str, violations: Violations) -> list[str] | None:
    value = record.get(column)
    if value is None:
        return None
    if isinstance(value, bool):
        violations.add(column, "must be a list of strings")
        return None
    items = value.split(";") if isinstance(value, str) else value
    return [item.strip() for item in items if item.strip()]


def _flag(record: Mapping[str, Value], column: str, violations: Violations) -> bool | None:
    value = record.get(column)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().casefold() in _TRUE:
        return True
    if isinstance(value, str) and value.strip().casefold() in _FALSE:
        return False
    violations.add(column, "must be true or false")
    return None


def _member(
    record: Mapping[str, Value], column: str, kind: type[_E], violations: Violations
) -> _E | None:
    value = _text(record, column, violations)
    if value is None:
        return None
    try:
        return kind(value.strip().upper())
    except ValueError:
        violations.add(column, f"must be one of {', '.join(member.value for member in kind)}")
        return None


def _attributes(record: Mapping[str, Value], violations: Violations) -> dict[str, str]:
    attributes: dict[str, str] = {}
    for column, value in record.items():
        if column.startswith(ATTRIBUTE_PREFIX):
            if isinstance(value, str):
                attributes[column.removeprefix(ATTRIBUTE_PREFIX)] = value
            else:
                violations.add(column, "must be a string")
    return attributes


def _attribute_paths(attributes: Mapping[str, str]) -> list[str]:
    # Backticks quote a key holding dots or other characters a mask path cannot carry bare.
    return [f"custom_attributes.`{key.replace('`', '``')}`" for key in attributes]


def contact_row(record: Mapping[str, Value]) -> ContactRow:
    """A contact row from its record (column → non-empty value); ``InvalidArgument`` naming
    the bad columns. Values are only shaped here; the contact rules check them on write."""
    violations = Violations()
    external_id = _external_id(record, violations)
    values: dict[str, object] = {}
    paths: list[str] = []
    for column in _CONTACT_TEXT:
        if (text := _text(record, column, violations)) is not None:
            values[column] = text
            paths.append(column)
    for column, kind in (("lifecycle_stage", LifecycleStage), ("tier", Tier)):
        if (member := _member(record, column, kind, violations)) is not None:
            values[column] = member
            paths.append(column)
    if (segments := _list(record, "segments", violations)) is not None:
        values["segments"] = tuple(segments)
        paths.append("segments")
    identities: list[IdentityInput] = []
    for column, identity_kind in (("emails", IdentityKind.EMAIL), ("phones", IdentityKind.PHONE)):
        for value in _list(record, column, violations) or ():
            identities.append(IdentityInput(identity_kind, value))
    if identities:
        values["identities"] = tuple(identities)
        paths.append("identities")
    consent: dict[str, bool] = {}
    for column, choice in _CONSENT.items():
        if (flag := _flag(record, column, violations)) is not None:
            consent[choice] = flag
            paths.append(f"consent.{choice}")
    if consent:
        values["consent"] = ConsentInput(**consent)
    attributes = _attributes(record, violations)
    if attributes:
        values["custom_attributes"] = attributes
        paths.extend(_attribute_paths(attributes))
    organization = _text(record, "organization_external_id", violations) or ""
    if organization:
        paths.append("organization_id")
    violations.raise_if_any()
    return ContactRow(
        external_id,
        ContactInput(**values),  # type: ignore[arg-type]  # keys are ContactInput's fields
        tuple(paths),
        organization.strip(),
    )


def organization_row(record: Mapping[str, Value]) -> OrganizationRow:
    """An organisation row from its record; ``InvalidArgument`` naming the bad columns."""
    violations = Violations()
    external_id = _external_id(record, violations)
    values: dict[str, object] = {}
    paths: list[str] = []
    for column in _ORGANIZATION_TEXT:
        if (text := _text(record, column, violations)) is not None:
            values[column] = text
            paths.append(column)
    if (tier := _member(record, "tier", Tier, violations)) is not None:
        values["tier"] = tier
        paths.append("tier")
    attributes = _attributes(record, violations)
    if attributes:
        values["custom_attributes"] = attributes
        paths.extend(_attribute_paths(attributes))
    violations.raise_if_any()
    return OrganizationRow(
        external_id,
        OrganizationInput(**values),  # type: ignore[arg-type]  # keys are the input's fields
        tuple(paths),
    )
