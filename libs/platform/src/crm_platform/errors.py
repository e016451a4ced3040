"""Domain errors shared by every service.

Domain code raises these; it never imports gRPC. The gRPC layer maps them to status codes with
rich details (see :mod:`crm_platform.grpc_errors`), so a handler never builds a status by hand.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One invalid field: its path in the request (``contact.emails[0]``) and why it is invalid."""

    field: str
    description: str


class DomainError(Exception):
    """Base of the errors a domain rule can raise; each maps to one gRPC status code."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.metadata: dict[str, str] = {}
        """Machine-readable facts about this failure for the caller, e.g. ``{"stream_index": "3"}``
        (sent as the ``google.rpc.ErrorInfo`` metadata)."""


class InvalidArgument(DomainError):
    """The request is malformed; carries every field violation found, not only the first."""

    def __init__(self, violations: Iterable[FieldViolation], message: str | None = None) -> None:
        self.violations = tuple(violations)
        first = self.violations[0] if self.violations else None
        summary = f"{first.field[:200]}: {first.description[:200]}" if first else "(request)"
        more = f" (and {len(self.violations) - 1} more)" if len(self.violations) > 1 else ""
        super().__init__(message or f"invalid request: {summary}{more}")

    @classmethod
    def single(cls, field: str, description: str) -> InvalidArgument:
        """Shorthand for a request with exactly one bad field."""
        return cls([FieldViolation(field, description)])


class NotFound(DomainError):
    """The addressed resource does not exist (in the caller's tenant)."""

    def __init__(self, resource_type: str, resource_name: str) -> None:
        self.resource_type = resource_type
        self.resource_name = resource_name
        super().__init__(f"{resource_type} {resource_name!r} not found")


class AlreadyExists(DomainError):
    """A resource with the same identity (id, unique identity, idempotency key) already exists."""

    def __init__(self, resource_type: str, resource_name: str, detail: str = "") -> None:
        self.resource_type = resource_type
        self.resource_name = resource_name
        suffix = f": {detail}" if detail else ""
        super().__init__(f"{resource_type} {resource_name!r} already exists{suffix}")


class FailedPrecondition(DomainError):
    """The system is not in a state that allows the operation (illegal transition, stale version).

    ``violation_type`` is a short machine-readable code, e.g. ``STALE_VERSION``.
    """

    def __init__(self, violation_type: str, subject: str, description: str) -> None:
        self.violation_type = violation_type
        self.subject = subject
        self.description = description
        super().__init__(f"{subject}: {description}")


class StaleVersion(FailedPrecondition):
    """Optimistic concurrency: the caller's expected version is not the current one."""

    def __init__(self, subject: str, expected: int, actual: int) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(
            "STALE_VERSION", subject, f"expected version {expected}, current version is {actual}"
        )


class Unauthenticated(DomainError):
    """The call carries no usable identity (for now: no tenant in the metadata)."""


class PermissionDenied(DomainError):
    """The caller's identity may not perform this operation."""


class DeadlineExceeded(DomainError):
    """The caller's deadline passed before the work (e.g. a database command) finished."""


class Unavailable(DomainError):
    """A dependency (database, broker, another service) is unreachable; the call may be retried."""
