"""Idempotent requests: their record's identity and shape, and retry versus reuse."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
from google.protobuf import wrappers_pb2

from crm_platform.errors import FailedPrecondition
from crm_platform.idempotency import REQUEST_ID_REUSED, IdempotentRequest, fingerprint

AT = datetime(2026, 1, 2, tzinfo=UTC)


def test_fingerprint_is_the_sha256_of_the_deterministic_encoding() -> None:
    message = wrappers_pb2.StringValue(value="hello")
    expected = hashlib.sha256(message.SerializeToString(deterministic=True)).hexdigest()
    assert fingerprint(message) == expected
    assert fingerprint(wrappers_pb2.StringValue(value="other")) != expected


def test_a_request_without_request_id_is_not_idempotent() -> None:
    assert IdempotentRequest.of("acme", "contact", "", wrappers_pb2.StringValue()) is None


def test_the_record_id_is_tenant_operation_and_request_id() -> None:
    message = wrappers_pb2.StringValue(value="hello")
    request = IdempotentRequest.of("acme", "contact", "r-1", message)
    assert request is not None
    assert request.record_id == "acme|contact|r-1"
    assert request.fingerprint == fingerprint(message)


def test_the_record_holds_the_fingerprint_the_result_and_its_time() -> None:
    request = IdempotentRequest("acme", "ticket", "r-1", "f1")
    assert request.record("t-9", AT) == {
        "_id": "acme|ticket|r-1",
        "tenant_id": "acme",
        "fingerprint": "f1",
        "result_id": "t-9",
        "created_at": AT,
    }


def test_a_retry_of_the_same_request_replays_its_result() -> None:
    request = IdempotentRequest("acme", "ticket", "r-1", "f1")
    # Records written before tenant_id was stored (contacts' records) replay the same way.
    assert request.replayed_result({"_id": request.record_id, "fingerprint": "f1",
                                    "result_id": "t-9", "created_at": AT}) == "t-9"  # fmt: skip


def test_the_same_request_id_for_another_request_is_refused() -> None:
    request = IdempotentRequest("acme", "ticket", "r-1", "f2")
    with pytest.raises(FailedPrecondition) as caught:
        request.replayed_result(request.record("t-9", AT) | {"fingerprint": "f1"})
    assert caught.value.violation_type == REQUEST_ID_REUSED == "REQUEST_ID_REUSED"
    assert caught.value.subject == "request_id/r-1"
