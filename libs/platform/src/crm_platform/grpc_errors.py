"""Domain errors and validation failures → gRPC status with rich ``google.rpc`` details."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import grpc
import protovalidate
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from crm_platform import errors

ERROR_DOMAIN = "crm.example.org"


def _pack(*details: object) -> list[any_pb2.Any]:
    packed = []
    for detail in details:
        holder = any_pb2.Any()
        holder.Pack(detail)  # type: ignore[arg-type]
        packed.append(holder)
    return packed


def field_path(violation: protovalidate.Violation) -> str:
    """Render a protovalidate field path as clients read it: ``contact.identities[2].value``."""
    proto: Any = violation.proto
    parts: list[str] = []
    if getattr(proto, "field", None) is None:
        return ""  # a rule on the request as a whole
    for element in proto.field.elements:
        name = element.field_name
        subscript = element.subscript  # None, or Oneof(field='index'|'string_key'|..., value)
        if subscript is not None:
            value = subscript.value
            name += f"[{value}]" if subscript.field == "index" else f"[{value!r}]"
        parts.append(name)
    return ".".join(parts)


def violations_from_protovalidate(
    violations: Sequence[protovalidate.Violation],
) -> list[errors.FieldViolation]:
    """Convert protovalidate's violations to the domain's field violations."""
    result = []
    for violation in violations:
        proto = violation.proto
        description = proto.message or proto.rule_id
        result.append(errors.FieldViolation(field_path(violation) or "(request)", description))
    return result


MAX_VIOLATIONS = 20
"""Field violations returned at most: the status travels in response trailers, which gRPC caps
(8 KiB by default); a request with hundreds of bad fields must still get INVALID_ARGUMENT."""


def _violation_details(
    violations: Sequence[errors.FieldViolation],
) -> list[error_details_pb2.BadRequest.FieldViolation]:
    shown = [
        error_details_pb2.BadRequest.FieldViolation(
            field=v.field[:200], description=v.description[:200]
        )
        for v in violations[:MAX_VIOLATIONS]
    ]
    if len(violations) > MAX_VIOLATIONS:
        shown.append(
            error_details_pb2.BadRequest.FieldViolation(
                field="(more)", description=f"{len(violations) - MAX_VIOLATIONS} more violations"
            )
        )
    return shown


def to_status(error: errors.DomainError) -> status_pb2.Status:
    """The ``google.rpc.Status`` (code, message, details) for a domain error."""
    reason = re.sub(r"(?<!^)(?=[A-Z])", "_", type(error).__name__).upper()  # NotFound → NOT_FOUND
    info = error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=error.metadata)
    if isinstance(error, errors.InvalidArgument):
        bad_request = error_details_pb2.BadRequest(
            field_violations=_violation_details(error.violations)
        )
        return status_pb2.Status(
            code=code_pb2.INVALID_ARGUMENT,
            message=error.message[:500],
            details=_pack(bad_request, info),
        )
    if isinstance(error, errors.NotFound | errors.AlreadyExists):
        resource = error_details_pb2.ResourceInfo(
            resource_type=error.resource_type, resource_name=error.resource_name
        )
        code = code_pb2.NOT_FOUND if isinstance(error, errors.NotFound) else code_pb2.ALREADY_EXISTS
        return status_pb2.Status(code=code, message=error.message, details=_pack(resource, info))
    if isinstance(error, errors.FailedPrecondition):
        info.reason = error.violation_type
        precondition = error_details_pb2.PreconditionFailure(
            violations=[
                error_details_pb2.PreconditionFailure.Violation(
                    type=error.violation_type, subject=error.subject, description=error.description
                )
            ]
        )
        return status_pb2.Status(
            code=code_pb2.FAILED_PRECONDITION,
            message=error.message,
            details=_pack(precondition, info),
        )
    code = code_pb2.INTERNAL
    for kind, value in (
        (errors.Unauthenticated, code_pb2.UNAUTHENTICATED),
        (errors.PermissionDenied, code_pb2.PERMISSION_DENIED),
        (errors.Unavailable, code_pb2.UNAVAILABLE),
        (errors.DeadlineExceeded, code_pb2.DEADLINE_EXCEEDED),
    ):
        if isinstance(error, kind):
            code = value
    return status_pb2.Status(code=code, message=error.message, details=_pack(info))


async def abort_with(
    context: grpc.aio.ServicerContext[Any, Any], status: status_pb2.Status
) -> None:
    """End the call with ``status``, its details carried in ``grpc-status-details-bin``."""
    rich = rpc_status.to_status(status)
    await context.abort(rich.code, rich.details, rich.trailing_metadata)
