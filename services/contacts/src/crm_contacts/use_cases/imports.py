"""Bulk import: rows of a CSV or JSON Lines file → contacts and organisations, by external id.

Every row is its own unit of work through the existing use cases (:class:`Contacts.create
<crm_contacts.use_cases.contacts.Contacts.create>` / ``update``, and the organisation ones):
the same rules, the same events, and a bad row writes nothing and never stops the others. A
new record's external id is written in its create's transaction (``also``), so a re-import
finds it and updates it (or reports it unchanged) instead of creating it twice.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from pymongo.errors import DuplicateKeyError

from crm_contacts.domain.contact import Contact, ContactInput
from crm_contacts.domain.identity import parse_identity
from crm_contacts.domain.imports import (
    ContactRow,
    OrganizationRow,
    RecordKind,
    RowFormat,
    RowReader,
)
from crm_contacts.domain.organization import Organization
from crm_contacts.imports_storage import ExternalIds
from crm_contacts.use_cases.contacts import Contacts
from crm_contacts.use_cases.organizations import Organizations
from crm_platform.context import CallContext
from crm_platform.errors import (
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
)
from crm_platform.unit_of_work import Transaction

CONTACT = "contact"
ORGANIZATION = "organization"


class ImportOutcome(StrEnum):
    """What an import did with a row (same member names as the API enum)."""

    CREATED = "CREATED"
    UPDATED = "UPDATED"
    UNCHANGED = "UNCHANGED"
    MERGE_CANDIDATE = "MERGE_CANDIDATE"
    REFUSED = "REFUSED"


@dataclass(frozen=True, slots=True)
class RowReport:
    """The outcome of one row."""

    index: int
    line: int
    external_id: str
    outcome: ImportOutcome
    record_id: str = ""
    violations: Sequence[FieldViolation] = ()
    message: str = ""


class ContactImports:
    """The import use case of every tenant, on top of the contact and organisation ones."""

    def __init__(
        self, contacts: Contacts, organizations: Organizations, external_ids: ExternalIds
    ) -> None:
        self.contacts = contacts
        self.organizations = organizations
        self.external_ids = external_ids

    def start(
        self, call: CallContext, row_format: RowFormat, kind: RecordKind, csv_header: str
    ) -> ImportRun:
        """An import of rows in ``row_format`` describing ``kind``; ``InvalidArgument`` for a
        bad CSV header (then no row is read)."""
        return ImportRun(self, call, RowReader(row_format, kind, csv_header))


class ImportRun:
    """One import stream: judges and writes its rows one at a time, keeps their reports."""

    def __init__(self, imports: ContactImports, call: CallContext, reader: RowReader) -> None:
        self.imports = imports
        self.call = call
        self.reader = reader
        self.reports: list[RowReport] = []

    def totals(self) -> Counter[ImportOutcome]:
        """How many rows had each outcome."""
        return Counter(report.outcome for report in self.reports)

    def refuse(self, index: int, line: int, error: InvalidArgument) -> RowReport:
        """Report a row refused before it was read (its item broke the proto rules)."""
        return self._keep(
            RowReport(index, line, "", ImportOutcome.REFUSED, "", error.violations, str(error))
        )

    async def add(self, index: int, line: int, text: str) -> RowReport:
        """Read, judge and write one row; its report (never raises for a bad row)."""
        external_id = ""
        try:
            row = self.reader.read(text)
            external_id = row.external_id
            if isinstance(row, ContactRow):
                outcome, record_id, message = await self._contact(row)
            else:
                outcome, record_id, message = await self._organization(row)
        except InvalidArgument as invalid:
            return self._keep(
                RowReport(
                    index,
                    line,
                    external_id,
                    ImportOutcome.REFUSED,
                    "",
                    invalid.violations,
                    str(invalid),
                )
            )
        except (NotFound, FailedPrecondition, AlreadyExists) as refused:
            return self._keep(
                RowReport(index, line, external_id, ImportOutcome.REFUSED, message=str(refused))
            )
        return self._keep(RowReport(index, line, external_id, outcome, record_id, (), message))

    def _keep(self, report: RowReport) -> RowReport:
        self.reports.append(report)
        return report

    async def _contact(self, row: ContactRow) -> tuple[ImportOutcome, str, str]:
        tenant = self.call.tenant_id
        fields = row.fields
        if row.organization_external_id:
            organization_id = await self.imports.external_ids.find(
                tenant, ORGANIZATION, row.organization_external_id
            )
            if organization_id is None:
                raise InvalidArgument.single(
                    "organization_external_id", "no organization was imported with this id"
                )
            fields = dataclasses.replace(fields, organization_id=organization_id)
        # Twice at most: a concurrent import may record the same external id between the
        # look-up and the create; the second round then updates the record it created.
        for _ in range(2):
            existing = await self.imports.external_ids.find(tenant, CONTACT, row.external_id)
            try:
                if existing is not None:
                    return await self._update_contact(existing, fields, row.paths)
                created = await self.imports.contacts.create(
                    self.call, fields, None, also=self._remember(CONTACT, row.external_id)
                )
            except AlreadyExists as taken:
                owner = await self._identity_owner(fields, exclude=existing)
                if owner is None:
                    raise
                return (
                    ImportOutcome.MERGE_CANDIDATE,
                    owner,
                    f"its identities belong to contact {owner} ({taken})",
                )
            except DuplicateKeyError:
                continue
            return ImportOutcome.CREATED, created.id, ""
        raise FailedPrecondition("CONCURRENT_IMPORT", row.external_id, "imported concurrently")

    async def _update_contact(
        self, contact_id: str, fields: ContactInput, paths: Sequence[str]
    ) -> tuple[ImportOutcome, str, str]:
        if not paths:
            return ImportOutcome.UNCHANGED, contact_id, ""
        before = await self.imports.contacts.get(self.call.tenant_id, contact_id)
        after: Contact = await self.imports.contacts.update(
            self.call, contact_id, fields, paths, None
        )
        changed = after.version != before.version
        return (ImportOutcome.UPDATED if changed else ImportOutcome.UNCHANGED), contact_id, ""

    async def _organization(self, row: OrganizationRow) -> tuple[ImportOutcome, str, str]:
        tenant = self.call.tenant_id
        for _ in range(2):
            existing = await self.imports.external_ids.find(tenant, ORGANIZATION, row.external_id)
            if existing is not None:
                if not row.paths:
                    return ImportOutcome.UNCHANGED, existing, ""
                before = await self.imports.organizations.get(tenant, existing)
                after: Organization = await self.imports.organizations.update(
                    self.call, existing, row.fields, row.paths, None
                )
                changed = after.version != before.version
                outcome = ImportOutcome.UPDATED if changed else ImportOutcome.UNCHANGED
                return outcome, existing, ""
            try:
                created = await self.imports.organizations.create(
                    self.call, row.fields, None, also=self._remember(ORGANIZATION, row.external_id)
                )
            except DuplicateKeyError:
                continue
            return ImportOutcome.CREATED, created.id, ""
        raise FailedPrecondition("CONCURRENT_IMPORT", row.external_id, "imported concurrently")

    def _remember(self, kind: str, external_id: str) -> _Remember:
        return _Remember(self.imports.external_ids, self.call.tenant_id, kind, external_id)

    async def _identity_owner(self, fields: ContactInput, *, exclude: str | None) -> str | None:
        """The contact (other than ``exclude``) owning one of the row's identities."""
        region = self.imports.contacts.region
        keys = [
            parse_identity(raw, field="identities", default_region=region).lookup_key
            for raw in fields.identities
        ]
        owners = await self.imports.contacts.find_identity_owners(self.call.tenant_id, keys)
        for key in keys:
            if (owner := owners.get(key)) is not None and owner.contact_id != exclude:
                return owner.contact_id
        return None


@dataclass(frozen=True, slots=True)
class _Remember:
    """Writes a new record's external id in the record's create transaction."""

    external_ids: ExternalIds
    tenant_id: str
    kind: str
    external_id: str

    async def __call__(self, record: Contact | Organization, tx: Transaction) -> None:
        await self.external_ids.insert(
            self.tenant_id, self.kind, self.external_id, record.id, tx.session
        )
