"""Domain errors map to gRPC codes with rich details."""

from __future__ import annotations

from google.rpc import code_pb2, error_details_pb2

from crm_platform import errors
from crm_platform.grpc_errors import to_status


def test_invalid_argument_carries_every_field_violation() -> None:
    status = to_status(
        errors.InvalidArgument(
            [
                errors.FieldViolation("contact.given_name", "too long"),
                errors.FieldViolation("contact.identities[0].value", "not an email"),
            ]
        )
    )
    assert status.code == code_pb2.INVALID_ARGUMENT
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    assert [v.field for v in bad_request.field_violations] == [
        "contact.given_name",
        "contact.identities[0].value",
    ]


def test_stale_version_is_failed_precondition() -> None:
    status = to_status(errors.StaleVersion("contacts/c1", expected=1, actual=2))
    assert status.code == code_pb2.FAILED_PRECONDITION
    failure = error_details_pb2.PreconditionFailure()
    assert status.details[0].Unpack(failure)
    assert failure.violations[0].type == "STALE_VERSION"


def test_not_found_names_the_resource() -> None:
    status = to_status(errors.NotFound("contact", "c1"))
    assert status.code == code_pb2.NOT_FOUND
    info = error_details_pb2.ResourceInfo()
    assert status.details[0].Unpack(info)
    assert (info.resource_type, info.resource_name) == ("contact", "c1")


def test_missing_identity_is_unauthenticated() -> None:
    assert to_status(errors.Unauthenticated("no tenant")).code == code_pb2.UNAUTHENTICATED


def test_huge_invalid_request_still_fits_in_the_trailers() -> None:
    violations = [
        errors.FieldViolation(f"contact.custom_attributes['k{i}']", "x" * 500) for i in range(300)
    ]
    status = to_status(errors.InvalidArgument(violations))
    assert status.code == code_pb2.INVALID_ARGUMENT
    assert len(status.SerializeToString()) < 8 * 1024
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    assert bad_request.field_violations[-1].description == "280 more violations"
    assert "(and 299 more)" in status.message


def test_database_outage_is_unavailable_and_timeout_is_deadline_exceeded() -> None:
    from pymongo.errors import NetworkTimeout, ServerSelectionTimeoutError

    from crm_platform.interceptors import _infrastructure_error

    assert isinstance(
        _infrastructure_error(ServerSelectionTimeoutError("down")), errors.Unavailable
    )
    assert isinstance(_infrastructure_error(NetworkTimeout("slow")), errors.DeadlineExceeded)
    assert to_status(errors.Unavailable("down")).code == code_pb2.UNAVAILABLE
    plain = ValueError("bug")
    assert _infrastructure_error(plain) is plain
