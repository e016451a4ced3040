"""The import area in its protobuf form: enum mappings and reports → protobuf."""

from __future__ import annotations

from collections.abc import Sequence

from crm.contacts.v1 import imports_pb2 as pb
from crm_contacts.domain.imports import RecordKind, RowFormat
from crm_contacts.use_cases.imports import ImportOutcome, RowReport

FORMATS = {pb.IMPORT_FORMAT_CSV: RowFormat.CSV, pb.IMPORT_FORMAT_JSON_LINES: RowFormat.JSON_LINES}
KINDS = {
    pb.IMPORT_RECORD_KIND_CONTACT: RecordKind.CONTACT,
    pb.IMPORT_RECORD_KIND_ORGANIZATION: RecordKind.ORGANIZATION,
}


def outcome_to_pb(outcome: ImportOutcome) -> pb.ImportOutcome.ValueType:
    """The protobuf enum number of an outcome."""
    return pb.ImportOutcome.Value(f"IMPORT_OUTCOME_{outcome.value}")


def report_to_pb(report: RowReport) -> pb.ImportRowReport:
    """The API form of a row's report."""
    return pb.ImportRowReport(
        index=report.index,
        line=report.line,
        external_id=report.external_id,
        outcome=outcome_to_pb(report.outcome),
        record_id=report.record_id,
        field_violations=[
            pb.ImportFieldViolation(field=violation.field, description=violation.description)
            for violation in report.violations
        ],
        message=report.message,
    )


def response_to_pb(reports: Sequence[RowReport]) -> pb.ImportContactsResponse:
    """The answer of an import: every report, and the totals."""
    counts = {outcome: 0 for outcome in ImportOutcome}
    for report in reports:
        counts[report.outcome] += 1
    return pb.ImportContactsResponse(
        reports=[report_to_pb(report) for report in reports],
        totals=pb.ImportTotals(
            rows=len(reports),
            created=counts[ImportOutcome.CREATED],
            updated=counts[ImportOutcome.UPDATED],
            unchanged=counts[ImportOutcome.UNCHANGED],
            merge_candidates=counts[ImportOutcome.MERGE_CANDIDATE],
            refused=counts[ImportOutcome.REFUSED],
        ),
    )
