"""The ``crm`` command and the client library against the real gateway and platform.

The gateway, contacts, service desk and metrics run as real processes on the session's Kafka
and database (``crm_testing.gateway``); every call goes through the gateway's authentication,
roles, rate limits and routing, as a user's shell would.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from crm.gateway.v1 import gateway_pb2
from crm_client import AsyncCrmClient, CrmClient, CrmError
from crm_client.cli import main
from crm_testing.gateway import GatewayStack

pytestmark = pytest.mark.integration


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def crm(
    client_gateway_stack: GatewayStack,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Any:
    """``await crm(*argv, token=...)``: the command against the real gateway, in a thread (the
    command blocks on its calls; the session's event loop keeps running)."""
    for name in ("CRM_GATEWAY", "CRM_TOKEN", "CRM_API_KEY", "CRM_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLUMNS", "200")

    async def run(*argv: str, token: str | None = None, api_key: str | None = None) -> Run:
        args = [*argv, "--gateway", client_gateway_stack.grpc_address, "--timeout", "20"]
        if token is not None:
            args += ["--token", token]
        if api_key is not None:
            args += ["--api-key", api_key]
        code = await asyncio.to_thread(main, args)
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


def _email() -> str:
    return f"ann+{uuid.uuid4().hex[:10]}@example.com"


async def test_whoami_with_a_token_and_with_an_api_key(
    client_gateway_stack: GatewayStack, crm: Any
) -> None:
    token = client_gateway_stack.token("acme", "agent", "alice")
    caller = await crm("whoami", "--json", token=token)
    assert caller.code == 0, caller.err
    document = caller.json()
    assert (document["tenantId"], document["role"], document["credential"]) == (
        "acme",
        "agent",
        "jwt",
    )
    assert "alice" in document["actor"]
    assert any(p.endswith("/AddMessage") for p in document["permissions"])

    table = await crm("whoami", api_key=client_gateway_stack.api_keys["globex-integration"])
    assert table.code == 0, table.err
    assert "globex" in table.out
    assert "api_key" in table.out


async def test_contact_and_ticket_lifecycle_from_the_shell(
    client_gateway_stack: GatewayStack, crm: Any
) -> None:
    token = client_gateway_stack.token("acme", "agent", "alice")
    email = _email()
    created = await crm(
        "contacts",
        "create",
        "--given-name",
        "Ann",
        "--family-name",
        f"Lee{uuid.uuid4().hex[:6]}",
        "--email",
        email,
        "--handle",
        f"x:@ann{uuid.uuid4().hex[:6]}",
        "--json",
        token=token,
    )
    assert created.code == 0, created.err
    contact = created.json()["contact"]
    contact_id = contact["id"]
    assert contact["identities"][0]["value"] == email

    shown = await crm("contacts", "get", contact_id, token=token)
    assert shown.code == 0, shown.err
    assert email in shown.out

    found = await crm("contacts", "search", contact["familyName"][:6], "--json", token=token)
    assert found.code == 0, found.err
    assert contact_id in [c["id"] for c in found.json().get("contacts", [])]

    opened = await crm(
        "tickets",
        "create",
        "--contact",
        contact_id,
        "--subject",
        "[urgent] Where is my refund?",
        "--channel",
        "chat",
        "--message",
        "Still waiting for the money",
        "--json",
        token=token,
    )
    assert opened.code == 0, opened.err
    ticket = opened.json()["ticket"]
    ticket_id = ticket["id"]
    assert ticket["channel"] == "CHANNEL_LIVE_CHAT"

    replied = await crm(
        "tickets", "reply", ticket_id, "--body", "Refund is on its way", token=token
    )
    assert replied.code == 0, replied.err
    assert f"to ticket {ticket_id}" in replied.out

    resolved = await crm("tickets", "resolve", ticket_id, "--reason", "refunded", token=token)
    assert resolved.code == 0, resolved.err
    assert "resolved" in resolved.out

    detail = await crm("tickets", "get", ticket_id, "--messages", "--json", token=token)
    assert detail.code == 0, detail.err
    assert detail.json()["ticket"]["status"] == "TICKET_STATUS_RESOLVED"
    bodies = [m["body"] for m in detail.json()["messages"]]
    assert "Refund is on its way" in bodies

    stale = await crm("tickets", "reopen", ticket_id, "--expected-version", "1", token=token)
    assert stale.code == 1
    assert "FAILED_PRECONDITION" in stale.err

    listed = await crm(
        "tickets", "list", "--contact", contact_id, "--status", "resolved", token=token
    )
    assert listed.code == 0, listed.err
    assert ticket_id in listed.out
    assert "[urgent] Where is my refund?" in listed.out

    view = await crm("customer", contact_id, token=token)
    assert view.code == 0, view.err
    assert "Sections" in view.out
    for section in ("profile", "tickets", "mentions", "surveys", "clocks"):
        assert section in view.out


async def test_kpis_and_gap_answer(client_gateway_stack: GatewayStack, crm: Any) -> None:
    token = client_gateway_stack.token("acme", "analyst", "bob")
    kpis = await crm("kpis", "--json", token=token)
    assert kpis.code == 0, kpis.err
    assert "groups" in kpis.json()
    table = await crm("kpis", "--kpi", "tickets_created,frt_wall", token=token)
    assert table.code == 0, table.err
    assert "tickets_created" in table.out
    catalog = await crm("kpis", "--catalog", token=token)
    assert catalog.code == 0, catalog.err
    assert "perception_gap" in catalog.out
    gap = await crm("gap", token=token)
    assert gap.code == 0, gap.err
    assert "customer_wait" in gap.out


async def test_errors_and_exit_codes(client_gateway_stack: GatewayStack, crm: Any) -> None:
    nobody = await crm("whoami")
    assert nobody.code == 3
    assert "UNAUTHENTICATED" in nobody.err

    analyst = client_gateway_stack.token("acme", "analyst", "bob")
    denied = await crm("contacts", "create", "--given-name", "Eve", token=analyst)
    assert denied.code == 3
    assert "PERMISSION_DENIED" in denied.err

    agent = client_gateway_stack.token("acme", "agent", "alice")
    invalid = await crm("tickets", "list", "--page-size", "1000", token=agent)
    assert invalid.code == 2
    assert "INVALID_ARGUMENT" in invalid.err
    assert "page_size" in invalid.err

    as_json = await crm("contacts", "create", "--json", token=agent)
    assert as_json.code == 2
    error = json.loads(as_json.err)["error"]
    assert error["code"] == "INVALID_ARGUMENT"
    assert error["fieldViolations"]

    missing = await crm("contacts", "get", f"c-{uuid.uuid4().hex}", token=agent)
    assert missing.code == 1
    assert "NOT_FOUND" in missing.err


async def test_rate_limit_reports_retry_after(client_gateway_stack: GatewayStack, crm: Any) -> None:
    key = client_gateway_stack.api_keys["acme-limited"]  # 5/minute
    results = [await crm("whoami", api_key=key) for _ in range(7)]
    limited = [r for r in results if r.code != 0]
    assert limited, [r.err for r in results]
    assert "RESOURCE_EXHAUSTED" in limited[0].err
    assert "retry after" in limited[0].err


async def test_library_clients(client_gateway_stack: GatewayStack) -> None:
    token = client_gateway_stack.token("globex", "admin", "carol")
    address = client_gateway_stack.grpc_address

    def blocking() -> str:
        with CrmClient(address, token=token, use_env=False) as client:
            return client.identity.GetCaller(gateway_pb2.GetCallerRequest()).tenant_id

    assert await asyncio.to_thread(blocking) == "globex"
    async with AsyncCrmClient(address, token=token, use_env=False) as client:
        caller = await client.identity.GetCaller(gateway_pb2.GetCallerRequest())
        assert caller.role == "admin"
    async with AsyncCrmClient(address, token="not-a-jwt", use_env=False) as client:
        with pytest.raises(CrmError) as caught:
            await client.identity.GetCaller(gateway_pb2.GetCallerRequest())
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
