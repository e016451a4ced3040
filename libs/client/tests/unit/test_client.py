"""CrmClient / AsyncCrmClient against a fake gateway: credentials, deadlines, errors."""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc
import pytest
from google.rpc import error_details_pb2

from crm.contacts.v1 import contacts_pb2
from crm.gateway.v1 import gateway_pb2
from crm.metrics.v1 import metrics_pb2
from crm.servicedesk.v1 import servicedesk_pb2
from crm_client import AsyncCrmClient, ClientConfig, CrmClient, CrmError, translate_errors
from crm_client.errors import FieldViolation

if TYPE_CHECKING:
    from libs.client.tests.unit.conftest import FakeGateway

BAD_REQUEST = error_details_pb2.BadRequest(
    field_violations=[
        error_details_pb2.BadRequest.FieldViolation(
            field="contact.given_name", description="value length must be at most 200"
        ),
        error_details_pb2.BadRequest.FieldViolation(
            field="contact.identities[0].value", description="is not a valid email address"
        ),
    ]
)


def test_token_is_sent_as_a_bearer_authorization_with_the_default_deadline(
    gateway: FakeGateway,
) -> None:
    gateway.responses["GetCaller"] = gateway_pb2.GetCallerResponse(tenant_id="acme")
    with CrmClient(gateway.target, token="t0k3n", timeout=5) as client:
        caller = client.identity.GetCaller(gateway_pb2.GetCallerRequest())
    assert caller.tenant_id == "acme"
    call = gateway.last("GetCaller")
    assert call.metadata["authorization"] == "Bearer t0k3n"
    assert "x-api-key" not in call.metadata
    assert call.time_remaining is not None
    assert call.time_remaining == pytest.approx(5, abs=0.5)


def test_api_key_is_sent_as_x_api_key(gateway: FakeGateway) -> None:
    with CrmClient(gateway.target, api_key="crm_k1_secret") as client:
        client.contacts.GetContact(contacts_pb2.GetContactRequest(id="c-1"))
    call = gateway.last("GetContact")
    assert call.metadata["x-api-key"] == "crm_k1_secret"
    assert "authorization" not in call.metadata
    assert call.request.id == "c-1"


def test_a_call_s_own_timeout_and_metadata_win(gateway: FakeGateway) -> None:
    with CrmClient(gateway.target, token="client-token", timeout=60) as client:
        client.identity.GetCaller(
            gateway_pb2.GetCallerRequest(),
            timeout=2,
            metadata=(("authorization", "Bearer per-call"), ("x-request-id", "r-1")),
        )
    call = gateway.last()
    assert call.metadata["authorization"] == "Bearer per-call"
    assert call.metadata["x-request-id"] == "r-1"
    assert call.time_remaining is not None
    assert call.time_remaining == pytest.approx(2, abs=0.5)


def test_timeout_zero_means_no_deadline(gateway: FakeGateway) -> None:
    with CrmClient(gateway.target, timeout=0) as client:
        client.identity.GetCaller(gateway_pb2.GetCallerRequest())
    remaining = gateway.last().time_remaining
    assert remaining is None or remaining > 1e6


def test_environment_supplies_target_and_credential(
    gateway: FakeGateway,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CRM_GATEWAY", gateway.target)
    monkeypatch.setenv("CRM_TOKEN", "Bearer from-env")
    monkeypatch.setenv("CRM_TIMEOUT", "3")
    with CrmClient() as client:
        assert client.target == gateway.target
        client.identity.GetCaller(gateway_pb2.GetCallerRequest())
    assert gateway.last().metadata["authorization"] == "Bearer from-env"
    remaining = gateway.last().time_remaining
    assert remaining is not None
    assert remaining == pytest.approx(3, abs=0.5)


def test_config_resolution_rules() -> None:
    env = {"CRM_TOKEN": "env-token", "CRM_GATEWAY": "gw:1"}
    assert ClientConfig.resolve(env=env).token == "env-token"
    # An explicit credential replaces both of the environment's.
    explicit = ClientConfig.resolve(api_key="k", env=env)
    assert (explicit.token, explicit.api_key) == (None, "k")
    assert explicit.credential_metadata() == (("x-api-key", "k"),)
    assert ClientConfig.resolve("other:2", env=env).target == "other:2"
    assert ClientConfig.resolve(env={}).target == "127.0.0.1:50050"
    assert ClientConfig.resolve(env={}).timeout == 10.0
    assert ClientConfig.resolve(timeout=0, env={}).timeout is None
    with pytest.raises(ValueError, match="not both"):
        ClientConfig.resolve(token="a", api_key="b", env={})
    with pytest.raises(ValueError, match="CRM_TOKEN and CRM_API_KEY"):
        ClientConfig.resolve(env={"CRM_TOKEN": "a", "CRM_API_KEY": "b"})
    with pytest.raises(ValueError, match="CRM_TIMEOUT"):
        ClientConfig.resolve(env={"CRM_TIMEOUT": "soon"})


def test_use_env_false_ignores_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_TOKEN", "env-token")
    client = CrmClient(use_env=False)
    try:
        assert client.settings.token is None
        assert client.settings.credential_metadata() == ()
    finally:
        client.close()


def test_invalid_argument_raises_crm_error_with_field_violations(gateway: FakeGateway) -> None:
    gateway.fail("CreateContact", grpc.StatusCode.INVALID_ARGUMENT, "2 invalid fields", BAD_REQUEST)
    with CrmClient(gateway.target) as client, pytest.raises(CrmError) as caught:
        client.contacts.CreateContact(contacts_pb2.CreateContactRequest())
    error = caught.value
    assert isinstance(error, grpc.RpcError)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == error.message == "2 invalid fields"
    assert error.field_violations == (
        FieldViolation("contact.given_name", "value length must be at most 200"),
        FieldViolation("contact.identities[0].value", "is not a valid email address"),
    )
    assert "contact.given_name: value length must be at most 200" in str(error)
    assert error.to_dict()["fieldViolations"][1]["field"] == "contact.identities[0].value"


def test_rate_limit_carries_retry_after(gateway: FakeGateway) -> None:
    gateway.fail(
        "GetCaller",
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "rate limit of 100/second exceeded",
        trailers=[("retry-after", "3")],
    )
    with CrmClient(gateway.target) as client, pytest.raises(CrmError) as caught:
        client.identity.GetCaller(gateway_pb2.GetCallerRequest())
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert caught.value.retry_after == 3.0
    assert "retry after 3 s" in str(caught.value)


def test_not_found_and_stale_version_details(gateway: FakeGateway) -> None:
    gateway.fail(
        "GetContact",
        grpc.StatusCode.NOT_FOUND,
        "contact c-9 not found",
        error_details_pb2.ResourceInfo(resource_type="contact", resource_name="c-9"),
        error_details_pb2.ErrorInfo(reason="NOT_FOUND", domain="crm", metadata={"id": "c-9"}),
    )
    gateway.fail(
        "TransitionTicket",
        grpc.StatusCode.FAILED_PRECONDITION,
        "stale",
        error_details_pb2.PreconditionFailure(
            violations=[
                error_details_pb2.PreconditionFailure.Violation(
                    type="STALE_VERSION", subject="tickets/t-1", description="expected 3, is 4"
                )
            ]
        ),
    )
    with CrmClient(gateway.target) as client:
        with pytest.raises(CrmError) as missing:
            client.contacts.GetContact(contacts_pb2.GetContactRequest(id="c-9"))
        with pytest.raises(CrmError) as stale:
            client.tickets.TransitionTicket(servicedesk_pb2.TransitionTicketRequest(id="t-1"))
    assert (missing.value.resource_type, missing.value.resource_name) == ("contact", "c-9")
    assert missing.value.reason == "NOT_FOUND"
    assert missing.value.error_metadata == {"id": "c-9"}
    assert [p.type for p in stale.value.preconditions] == ["STALE_VERSION"]
    assert "expected 3, is 4" in str(stale.value.preconditions[0])


def test_with_call_and_future_still_work(gateway: FakeGateway) -> None:
    gateway.responses["GetCaller"] = gateway_pb2.GetCallerResponse(actor="agent:ann")
    with CrmClient(gateway.target, token="t") as client:
        response, call = client.identity.GetCaller.with_call(gateway_pb2.GetCallerRequest())
        assert response.actor == "agent:ann"
        assert call.code() == grpc.StatusCode.OK
        future = client.identity.GetCaller.future(gateway_pb2.GetCallerRequest())
        assert future.result().actor == "agent:ann"
        gateway.fail("GetCaller", grpc.StatusCode.UNAVAILABLE, "circuit open")
        failing = client.identity.GetCaller.future(gateway_pb2.GetCallerRequest())
        with pytest.raises(grpc.RpcError) as caught:
            failing.result()
    assert CrmError.from_rpc_error(caught.value).code() == grpc.StatusCode.UNAVAILABLE


def test_streams_keep_credentials_and_translate_errors(gateway: FakeGateway) -> None:
    gateway.responses["StreamKpis"] = [
        metrics_pb2.StreamKpisResponse(result=metrics_pb2.GetKpisResponse(namespace="live")),
        metrics_pb2.StreamKpisResponse(result=metrics_pb2.GetKpisResponse(namespace="live")),
    ]
    with CrmClient(gateway.target, token="t") as client:
        updates = list(client.metrics.StreamKpis(metrics_pb2.StreamKpisRequest()))
        assert len(updates) == 2
        assert gateway.last("StreamKpis").metadata["authorization"] == "Bearer t"
        gateway.fail("StreamKpis", grpc.StatusCode.PERMISSION_DENIED, "role viewer may not")
        with pytest.raises(CrmError) as caught, translate_errors():
            list(client.metrics.StreamKpis(metrics_pb2.StreamKpisRequest()))
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_unreachable_gateway_is_unavailable() -> None:
    with (
        CrmClient("127.0.0.1:1", timeout=2, use_env=False) as client,
        pytest.raises(CrmError) as caught,
    ):
        client.identity.GetCaller(gateway_pb2.GetCallerRequest())
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def test_from_rpc_error_of_something_that_is_not_a_call() -> None:
    error = CrmError.from_rpc_error(grpc.RpcError("odd"))
    assert error.code() == grpc.StatusCode.UNKNOWN
    assert CrmError.from_rpc_error(error) is error


def test_retry_info_is_the_fallback_of_the_retry_after_trailer(gateway: FakeGateway) -> None:
    gateway.fail(
        "GetCaller",
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "slow down",
        error_details_pb2.RetryInfo(retry_delay={"seconds": 7, "nanos": 500_000_000}),
    )
    with CrmClient(gateway.target) as client, pytest.raises(CrmError) as caught:
        client.identity.GetCaller(gateway_pb2.GetCallerRequest())
    assert caught.value.retry_after == 7.5


def test_garbage_status_details_are_ignored() -> None:
    error = CrmError.from_status(
        grpc.StatusCode.INTERNAL,
        "boom",
        [("grpc-status-details-bin", b"\xff\xff not a status"), ("retry-after", "soon")],
    )
    assert error.field_violations == ()
    assert error.retry_after is None


async def test_async_client_sends_credentials_and_raises_crm_error(gateway: FakeGateway) -> None:
    gateway.responses["GetCaller"] = gateway_pb2.GetCallerResponse(tenant_id="acme")
    async with AsyncCrmClient(gateway.target, api_key="crm_k_s", timeout=4) as client:
        caller = await client.identity.GetCaller(gateway_pb2.GetCallerRequest())
        assert caller.tenant_id == "acme"
        call = gateway.last("GetCaller")
        assert call.metadata["x-api-key"] == "crm_k_s"
        assert call.time_remaining is not None
        assert call.time_remaining == pytest.approx(4, abs=0.5)

        gateway.fail("CreateContact", grpc.StatusCode.INVALID_ARGUMENT, "bad", BAD_REQUEST)
        with pytest.raises(CrmError) as caught:
            await client.contacts.CreateContact(contacts_pb2.CreateContactRequest())
        assert caught.value.field_violations[0].field == "contact.given_name"

        gateway.responses["StreamKpis"] = [metrics_pb2.StreamKpisResponse()] * 3
        updates = [u async for u in client.metrics.StreamKpis(metrics_pb2.StreamKpisRequest())]
        assert len(updates) == 3
        assert gateway.last("StreamKpis").metadata["x-api-key"] == "crm_k_s"
