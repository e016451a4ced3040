"""The ``crm`` sales commands against the real gateway and sales service: a lead from a web form
to a won deal from the shell, the quote's PDF written to a file and parsed back."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

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
    """``await crm(*argv, token=...)``: the command against the real gateway, in a thread."""
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


async def test_a_lead_to_a_won_deal_from_the_shell_with_the_quote_pdf(
    client_gateway_stack: GatewayStack, crm: Any, tmp_path: Path
) -> None:
    admin = client_gateway_stack.token("acme", "admin", "alice")
    rep = client_gateway_stack.token("acme", "sales", "rep-sam")
    connector = client_gateway_stack.api_keys["acme-integration"]

    async def ok(*argv: str, **credential: str) -> Any:
        result = await crm(*argv, "--json", **credential)
        assert result.code == 0, (argv, result.err)
        return result.json()

    pipeline = (
        await ok(
            "pipelines", "create", "--name", "Direct",
            "--stage", "qualify:Qualify:10:open", "--stage", "proposal:Proposal:60:open",
            "--stage", "won:Won:100:won", "--stage", "lost:Lost:0:lost",
            token=admin,
        )
    )["pipeline"]  # fmt: skip
    sku = f"SEAT-{uuid.uuid4().hex[:8]}"
    product = (
        await ok(
            "products", "create", "--sku", sku, "--name", "Support seat",
            "--price", "EUR:12.50", token=admin,
        )
    )["product"]  # fmt: skip
    lead = (
        await ok(
            "leads", "create", "--name", "Grace Hopper", "--company", "Navy Labs",
            "--email", f"grace+{uuid.uuid4().hex[:8]}@example.com", "--source", "web",
            api_key=connector,
        )
    )["lead"]  # fmt: skip
    assert lead["source"] == "LEAD_SOURCE_WEB_FORM"
    # The connector may not open deals: exit 3, PERMISSION_DENIED.
    denied = await crm(
        "opportunities", "create", "--name", "x", "--pipeline", pipeline["id"],
        "--amount", "1", "--currency", "EUR", api_key=connector,
    )  # fmt: skip
    assert denied.code == 3
    assert "PERMISSION_DENIED" in denied.err
    await ok("leads", "work", lead["id"], token=rep)
    await ok("leads", "qualify", lead["id"], token=rep)
    converted = await ok(
        "leads", "convert", lead["id"], "--pipeline", pipeline["id"], "--name", "Navy seats",
        "--amount", "3750.50", "--currency", "EUR", token=rep,
    )  # fmt: skip
    opportunity = converted["opportunity"]
    assert opportunity["amountMinor"] == "375050"
    assert converted["lead"]["status"] == "LEAD_STATUS_CONVERTED"
    moved = await crm("opportunities", "move", opportunity["id"], "proposal", token=rep)
    assert moved.code == 0, moved.err
    assert "3,750.50 EUR" in moved.out
    assert "proposal" in moved.out
    quote = (
        await ok(
            "quotes", "create", "--opportunity", opportunity["id"], "--currency", "EUR",
            "--line", f"{product['id']}:3:10:19", token=rep,
        )
    )["quote"]  # fmt: skip
    assert quote["status"] == "QUOTE_STATUS_DRAFT"
    draft_pdf = await crm("quotes", "pdf", quote["id"], "-o", str(tmp_path), token=rep)
    assert draft_pdf.code == 1
    assert "FAILED_PRECONDITION" in draft_pdf.err
    await ok("quotes", "send", quote["id"], token=rep)
    written = await ok("quotes", "pdf", quote["id"], "-o", str(tmp_path), token=rep)
    path = Path(written["file"])
    assert path.parent == tmp_path
    assert path.name == f"quote-{quote['id']}-r1.pdf"
    assert written["contentType"] == "application/pdf"
    text = "\n".join(page.extract_text() for page in PdfReader(path).pages)
    # 3 x 12.50 less 10 % = 33.75 net, 19 % tax 6.41, 40.16 in total.
    assert "Net total: 33.75 EUR" in text
    assert "Tax total: 6.41 EUR" in text
    assert "Total: 40.16 EUR" in text
    shown = await crm("quotes", "get", quote["id"], token=rep)
    assert shown.code == 0, shown.err
    assert "40.16 EUR" in shown.out
    await ok("quotes", "accept", quote["id"], token=rep)
    won = await ok("opportunities", "win", opportunity["id"], "--reason", "signed", token=rep)
    assert won["opportunity"]["status"] == "STAGE_KIND_WON"
    listed = await ok(
        "opportunities", "list", "--pipeline", pipeline["id"], "--status", "won", token=rep
    )
    assert [o["id"] for o in listed["opportunities"]] == [opportunity["id"]]
    leads = await crm("leads", "list", "--status", "converted", token=rep)
    assert leads.code == 0, leads.err
    assert lead["id"] in leads.out
