"""The sales commands of ``crm`` against a fake gateway: the requests they make (amounts in exact
minor units), their tables and JSON, the PDF written to a file, and usage errors."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from google.rpc import error_details_pb2

from crm.sales.v1 import sales_pb2 as pb
from crm_client.cli import main
from crm_client.money import format_amount, parse_amount

if TYPE_CHECKING:
    from libs.client.tests.unit.conftest import FakeGateway


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def crm(gateway: FakeGateway, capsys: pytest.CaptureFixture[str]) -> Any:
    def run(*argv: str) -> Run:
        code = main([*argv, "--gateway", gateway.target, "--token", "tok"])
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


OPPORTUNITY = pb.Opportunity(
    id="o-1",
    name="Navy seats",
    amount_minor=375_050,
    currency="EUR",
    pipeline_id="p-1",
    pipeline_version=1,
    stage_id="proposal",
    status=pb.STAGE_KIND_OPEN,
    stage_history=[pb.StageChange(to_stage_id="qualify"), pb.StageChange(to_stage_id="proposal")],
    version=2,
)
QUOTE = pb.Quote(
    id="q-1",
    opportunity_id="o-1",
    revision=1,
    currency="JPY",
    status=pb.QUOTE_STATUS_SENT,
    net_total_minor=5400,
    tax_total_minor=540,
    total_minor=5940,
    lines=[
        pb.QuoteLine(sku="SEAT", name="Seat", quantity=3, unit_price_minor=1800, net_minor=5400)
    ],
)


# --- money ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("3750", "EUR", 375_000),
        ("3,750.5", "EUR", 375_050),
        ("0.01", "EUR", 1),
        ("1800", "JPY", 1800),
        ("1.250", "BHD", 1250),
        ("0.1", "EUR", 10),
    ],
)
def test_amounts_are_read_exactly_into_minor_units(text: str, currency: str, minor: int) -> None:
    assert parse_amount(text, currency) == minor


@pytest.mark.parametrize(
    ("text", "currency"),
    [("12.345", "EUR"), ("1.5", "JPY"), ("-1", "EUR"), ("NaN", "EUR"), ("abc", "EUR"), ("", "EUR")],
)
def test_amounts_with_too_many_decimals_or_not_amounts_are_refused(
    text: str, currency: str
) -> None:
    with pytest.raises(ValueError, match=r"amount|decimals"):
        parse_amount(text, currency)


def test_amounts_are_shown_in_major_units_of_their_currency() -> None:
    assert format_amount(375_050, "EUR") == "3,750.50 EUR"
    assert format_amount(1800, "JPY") == "1,800 JPY"
    assert format_amount(1250, "BHD") == "1.250 BHD"


# --- commands -----------------------------------------------------------------------------------


def test_leads_create_sends_the_lead_with_its_origin(gateway: FakeGateway, crm: Any) -> None:
    gateway.responses["CreateLead"] = pb.CreateLeadResponse(
        lead=pb.Lead(id="l-1", person_name="Grace", status=pb.LEAD_STATUS_NEW)
    )
    result = crm(
        "leads", "create", "--name", "Grace", "--email", "g@example.com", "--source", "mention",
        "--mention", "m-9",
    )  # fmt: skip
    assert result.code == 0, result.err
    lead = gateway.last("CreateLead").request.lead
    assert (lead.person_name, lead.email, lead.source, lead.origin_mention_id) == (
        "Grace",
        "g@example.com",
        pb.LEAD_SOURCE_SOCIAL,
        "m-9",
    )
    assert "l-1" in result.out
    assert "new" in result.out


def test_leads_convert_sends_the_opportunity_in_minor_units(gateway: FakeGateway, crm: Any) -> None:
    gateway.responses["ConvertLead"] = pb.ConvertLeadResponse(
        lead=pb.Lead(id="l-1", status=pb.LEAD_STATUS_CONVERTED), opportunity=OPPORTUNITY
    )
    result = crm(
        "leads", "convert", "l-1", "--pipeline", "p-1", "--name", "Navy seats",
        "--amount", "3750.50", "--currency", "eur", "--create-organization", "--json",
    )  # fmt: skip
    assert result.code == 0, result.err
    request = gateway.last("ConvertLead").request
    assert request.id == "l-1"
    assert request.create_organization
    assert (request.opportunity.amount_minor, request.opportunity.currency) == (375_050, "EUR")
    assert result.json()["opportunity"]["amountMinor"] == "375050"


def test_opportunity_verbs_call_their_operations(gateway: FakeGateway, crm: Any) -> None:
    for method in ("MoveOpportunityStage", "WinOpportunity", "LoseOpportunity"):
        gateway.responses[method] = {
            "MoveOpportunityStage": pb.MoveOpportunityStageResponse,
            "WinOpportunity": pb.WinOpportunityResponse,
            "LoseOpportunity": pb.LoseOpportunityResponse,
        }[method](opportunity=OPPORTUNITY)
    moved = crm("opportunities", "move", "o-1", "proposal", "--expected-version", "2")
    assert moved.code == 0, moved.err
    request = gateway.last("MoveOpportunityStage").request
    assert (request.id, request.stage_id, request.expected_version) == ("o-1", "proposal", 2)
    assert "3,750.50 EUR" in moved.out
    assert "Stage history" in moved.out
    assert crm("opportunities", "win", "o-1", "--reason", "signed").code == 0
    assert gateway.last("WinOpportunity").request.reason == "signed"
    assert crm("opportunities", "lose", "o-1").code == 2  # --reason is required
    assert crm("opportunities", "lose", "o-1", "--reason", "price").code == 0
    assert gateway.last("LoseOpportunity").request.reason == "price"


def test_quotes_create_reads_lines_with_discount_tax_and_price(
    gateway: FakeGateway, crm: Any
) -> None:
    gateway.responses["CreateQuote"] = pb.CreateQuoteResponse(quote=QUOTE)
    result = crm(
        "quotes", "create", "--opportunity", "o-1", "--currency", "EUR",
        "--line", "prod-1:3:10:19", "--line", "prod-2:1::7.5:99.99",
    )  # fmt: skip
    assert result.code == 0, result.err
    quote = gateway.last("CreateQuote").request.quote
    first, second = quote.lines
    assert (first.product_id, first.quantity, first.discount_basis_points) == ("prod-1", 3, 1000)
    assert first.tax_rate_basis_points == 1900
    assert not first.HasField("unit_price_minor")  # the product's price
    assert (second.discount_basis_points, second.tax_rate_basis_points) == (0, 750)
    assert second.unit_price_minor == 9999
    assert quote.valid_until.seconds > 0
    assert "5,940 JPY" in result.out


@pytest.mark.parametrize(
    "line", ["prod-1", "prod-1:x", "prod-1:1:10.555", "prod-1:1:0:0:1.001", ":1"]
)
def test_bad_quote_lines_are_usage_errors_and_call_nothing(
    gateway: FakeGateway, crm: Any, line: str
) -> None:
    result = crm("quotes", "create", "--opportunity", "o", "--currency", "EUR", "--line", line)
    assert result.code == 2, result.out
    assert "--line" in result.err
    assert not gateway.calls


def test_quotes_pdf_writes_the_document_to_a_file(
    gateway: FakeGateway, crm: Any, tmp_path: Path
) -> None:
    pdf = b"%PDF-1.4 a quote"
    gateway.responses["GetQuoteDocument"] = pb.GetQuoteDocumentResponse(
        content=pdf, content_type="application/pdf", file_name="quote-q-1-r1.pdf"
    )
    into_folder = crm("quotes", "pdf", "q-1", "-o", str(tmp_path))
    assert into_folder.code == 0, into_folder.err
    assert (tmp_path / "quote-q-1-r1.pdf").read_bytes() == pdf
    assert gateway.last("GetQuoteDocument").request.id == "q-1"
    named = crm("quotes", "pdf", "q-1", "-o", str(tmp_path / "mine.pdf"), "--json")
    assert named.code == 0, named.err
    assert (tmp_path / "mine.pdf").read_bytes() == pdf
    assert named.json() == {
        "file": str(tmp_path / "mine.pdf"),
        "bytes": len(pdf),
        "contentType": "application/pdf",
    }


def test_a_draft_quote_pdf_fails_with_the_precondition_and_writes_nothing(
    gateway: FakeGateway, crm: Any, tmp_path: Path
) -> None:
    gateway.fail(
        "GetQuoteDocument",
        grpc.StatusCode.FAILED_PRECONDITION,
        "the quote was not sent",
        error_details_pb2.PreconditionFailure(
            violations=[error_details_pb2.PreconditionFailure.Violation(type="QUOTE_NOT_SENT")]
        ),
    )
    result = crm("quotes", "pdf", "q-1", "-o", str(tmp_path / "q.pdf"))
    assert result.code == 1
    assert "FAILED_PRECONDITION" in result.err
    assert "QUOTE_NOT_SENT" in result.err
    assert not (tmp_path / "q.pdf").exists()


def test_pipelines_create_reads_stages_and_products_prices(gateway: FakeGateway, crm: Any) -> None:
    result = crm(
        "pipelines", "create", "--name", "Direct", "--stage", "qualify:Qualify:10:open",
        "--stage", "won:Won:100:won", "--stage", "lost:Lost:0:lost",
    )  # fmt: skip
    assert result.code == 0, result.err
    stages = gateway.last("CreatePipeline").request.pipeline.stages
    assert [(s.id, s.win_probability_percent, s.kind) for s in stages] == [
        ("qualify", 10, pb.STAGE_KIND_OPEN),
        ("won", 100, pb.STAGE_KIND_WON),
        ("lost", 0, pb.STAGE_KIND_LOST),
    ]
    assert crm("pipelines", "create", "--name", "X", "--stage", "a:b").code == 2
    made = crm("products", "create", "--sku", "S", "--name", "Seat", "--price", "EUR:12.50",
               "--price", "JPY:1800")  # fmt: skip
    assert made.code == 0, made.err
    prices = gateway.last("CreateProduct").request.product.prices
    assert [(p.currency, p.unit_price_minor) for p in prices] == [("EUR", 1250), ("JPY", 1800)]
    assert crm("products", "create", "--sku", "S", "--name", "N", "--price", "EUR:1.234").code == 2
