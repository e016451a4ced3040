"""The sales commands of ``crm``: ``pipelines``, ``products``, ``leads``, ``opportunities`` and
``quotes`` (through the gateway's ``SalesService``)::

    crm pipelines create --name Direct --stage qualify:Qualify:10:open --stage won:Won:100:won ...
    crm products create --sku SEAT --name "Support seat" --price EUR:12.50
    crm leads create --name "Grace Hopper" --email grace@example.com --source web_form
    crm leads work|qualify ID;  crm leads disqualify ID --reason "no budget"
    crm leads convert ID --pipeline P --name "Navy seats" --amount 3750 --currency EUR
    crm opportunities move ID proposal;  crm opportunities win|lose|reopen ID ...
    crm quotes create --opportunity O --currency EUR --line PRODUCT:3:10:19 --valid-days 30
    crm quotes send|accept|reject ID;  crm quotes pdf ID [-o FILE]

Amounts are typed and shown in major units of their currency (``3750.50``); they travel as
integer minor units, exactly (an amount with more decimals than the currency has is refused).
Each command that changes a record takes ``--expected-version N`` where the API does.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from crm.sales.v1 import sales_pb2 as pb
from crm_client import sales_render as render
from crm_client.cli import (
    Context,
    UsageError,
    _choices_help,
    _command,
    _enum_type,
    _paging,
)
from crm_client.money import parse_amount
from crm_client.values import parse_enum, to_timestamp

SOURCE_ALIASES = {"web": "web_form", "form": "web_form", "mention": "social"}


def _amount(text: str, currency: str, option: str) -> int:
    try:
        return parse_amount(text, currency)
    except ValueError as error:
        raise UsageError(f"{option}: {error}") from None


def _stage(text: str) -> pb.Stage:
    """``id:Name:probability:kind``, e.g. ``proposal:Proposal:60:open``."""
    parts = text.split(":")
    if len(parts) != 4:
        raise UsageError(
            f"--stage {text!r}: expected ID:NAME:WIN_PERCENT:KIND, e.g. won:Won:100:won"
        )
    stage_id, name, probability, kind = parts
    try:
        return pb.Stage(
            id=stage_id.strip(),
            name=name.strip(),
            win_probability_percent=int(probability),
            kind=parse_enum(pb.StageKind, kind),
        )
    except ValueError as error:
        raise UsageError(f"--stage {text!r}: {error}") from None


def _price(text: str) -> pb.Price:
    """``EUR:12.50``."""
    currency, sep, amount = text.partition(":")
    currency = currency.strip().upper()
    if not sep or not currency:
        raise UsageError(f"--price {text!r}: expected CURRENCY:AMOUNT, e.g. EUR:12.50")
    return pb.Price(currency=currency, unit_price_minor=_amount(amount, currency, "--price"))


def _percent_basis_points(text: str, option: str) -> int:
    from decimal import Decimal, InvalidOperation

    try:
        value = Decimal(text.strip().rstrip("%"))
    except InvalidOperation:
        raise UsageError(f"{option}: {text!r} is not a percentage") from None
    basis_points = value * 100
    if basis_points != basis_points.to_integral_value():
        raise UsageError(f"{option}: {text!r} has more than two decimals")
    return int(basis_points)


def _quote_line(text: str, currency: str) -> pb.QuoteLine:
    """``PRODUCT:QTY[:DISCOUNT%[:TAX%[:UNIT_PRICE]]]``."""
    parts = text.split(":")
    if not 2 <= len(parts) <= 5 or not parts[0].strip():
        raise UsageError(
            f"--line {text!r}: expected PRODUCT_ID:QUANTITY[:DISCOUNT%[:TAX%[:UNIT_PRICE]]]"
        )
    try:
        quantity = int(parts[1])
    except ValueError:
        raise UsageError(f"--line {text!r}: the quantity must be a whole number") from None
    line = pb.QuoteLine(product_id=parts[0].strip(), quantity=quantity)
    if len(parts) > 2 and parts[2].strip():
        line.discount_basis_points = _percent_basis_points(parts[2], "--line discount")
    if len(parts) > 3 and parts[3].strip():
        line.tax_rate_basis_points = _percent_basis_points(parts[3], "--line tax")
    if len(parts) > 4 and parts[4].strip():
        line.unit_price_minor = _amount(parts[4], currency, "--line unit price")
    return line


# --- pipelines ------------------------------------------------------------------------------


def cmd_pipelines_create(ctx: Context, args: argparse.Namespace) -> None:
    """``crm pipelines create --name N --stage ...``."""
    response = ctx.client.sales.CreatePipeline(
        pb.CreatePipelineRequest(
            pipeline=pb.Pipeline(name=args.name, stages=[_stage(s) for s in args.stage]),
            request_id=args.request_id or "",
        )
    )
    ctx.out.emit(
        response, lambda console: render.render_pipeline(console, response.pipeline, "Created")
    )


def cmd_pipelines_get(ctx: Context, args: argparse.Namespace) -> None:
    response = ctx.client.sales.GetPipeline(pb.GetPipelineRequest(id=args.id, version=args.version))
    ctx.out.emit(response, lambda console: render.render_pipeline(console, response.pipeline))


def cmd_pipelines_list(ctx: Context, args: argparse.Namespace) -> None:
    response = ctx.client.sales.ListPipelines(
        pb.ListPipelinesRequest(page_size=args.page_size, page_token=args.page_token or "")
    )
    ctx.out.emit(
        response,
        lambda console: render.render_pipelines(
            console, response.pipelines, response.next_page_token
        ),
    )


# --- products -------------------------------------------------------------------------------


def cmd_products_create(ctx: Context, args: argparse.Namespace) -> None:
    response = ctx.client.sales.CreateProduct(
        pb.CreateProductRequest(
            product=pb.Product(
                sku=args.sku,
                name=args.name,
                active=not args.inactive,
                prices=[_price(p) for p in args.price or ()],
            ),
            request_id=args.request_id or "",
        )
    )
    ctx.out.emit(
        response, lambda console: render.render_product(console, response.product, "Created")
    )


def cmd_products_get(ctx: Context, args: argparse.Namespace) -> None:
    response = ctx.client.sales.GetProduct(pb.GetProductRequest(id=args.id))
    ctx.out.emit(response, lambda console: render.render_product(console, response.product))


def cmd_products_list(ctx: Context, args: argparse.Namespace) -> None:
    response = ctx.client.sales.ListProducts(
        pb.ListProductsRequest(
            page_size=args.page_size, page_token=args.page_token or "", active_only=args.active
        )
    )
    ctx.out.emit(
        response,
        lambda console: render.render_products(
            console, response.products, response.next_page_token
        ),
    )


# --- leads ----------------------------------------------------------------------------------


def cmd_leads_create(ctx: Context, args: argparse.Namespace) -> None:
    lead = pb.Lead(
        person_name=args.name or "",
        company_name=args.company or "",
        email=args.email or "",
        phone=args.phone or "",
        contact_id=args.contact or "",
        source=args.source,
        campaign_id=args.campaign or "",
        owner_id=args.owner or "",
        origin_mention_id=args.mention or "",
    )
    response = ctx.client.sales.CreateLead(
        pb.CreateLeadRequest(lead=lead, request_id=args.request_id or "")
    )
    ctx.out.emit(response, lambda console: render.render_lead(console, response.lead, "Created"))


def cmd_leads_get(ctx: Context, args: argparse.Namespace) -> None:
    response = ctx.client.sales.GetLead(pb.GetLeadRequest(id=args.id))
    ctx.out.emit(response, lambda console: render.render_lead(console, response.lead))


def cmd_leads_list(ctx: Context, args: argparse.Namespace) -> None:
    request = pb.ListLeadsRequest(
        page_size=args.page_size,
        page_token=args.page_token or "",
        owner_id=args.owner or "",
        campaign_id=args.campaign or "",
    )
    if args.status is not None:
        request.status = args.status
    if args.source is not None:
        request.source = args.source
    response = ctx.client.sales.ListLeads(request)
    ctx.out.emit(
        response,
        lambda console: render.render_leads(console, response.leads, response.next_page_token),
    )


def cmd_leads_move(ctx: Context, args: argparse.Namespace) -> None:
    """``crm leads work|qualify|disqualify ID``."""
    sales = ctx.client.sales
    response: Any
    if args.verb == "work":
        response = sales.StartWorkingLead(
            pb.StartWorkingLeadRequest(id=args.id, expected_version=args.expected_version)
        )
    elif args.verb == "qualify":
        response = sales.QualifyLead(
            pb.QualifyLeadRequest(id=args.id, expected_version=args.expected_version)
        )
    else:
        response = sales.DisqualifyLead(
            pb.DisqualifyLeadRequest(
                id=args.id, reason=args.reason, expected_version=args.expected_version
            )
        )
    ctx.out.emit(response, lambda console: render.render_lead(console, response.lead))


def cmd_leads_convert(ctx: Context, args: argparse.Namespace) -> None:
    currency = args.currency.upper()
    opportunity = pb.Opportunity(
        name=args.name,
        pipeline_id=args.pipeline,
        amount_minor=_amount(args.amount, currency, "--amount"),
        currency=currency,
        expected_close_date=args.close_date or "",
        owner_id=args.owner or "",
    )
    response = ctx.client.sales.ConvertLead(
        pb.ConvertLeadRequest(
            id=args.id,
            opportunity=opportunity,
            create_organization=args.create_organization,
            expected_version=args.expected_version,
        )
    )

    def draw(console: Any) -> None:
        render.render_lead(console, response.lead, "Converted")
        render.render_opportunity(console, response.opportunity)

    ctx.out.emit(response, draw)


# --- opportunities --------------------------------------------------------------------------


def cmd_opportunities_create(ctx: Context, args: argparse.Namespace) -> None:
    currency = args.currency.upper()
    opportunity = pb.Opportunity(
        name=args.name,
        pipeline_id=args.pipeline,
        stage_id=args.stage or "",
        amount_minor=_amount(args.amount, currency, "--amount"),
        currency=currency,
        account_id=args.account or "",
        primary_contact_id=args.contact or "",
        owner_id=args.owner or "",
        expected_close_date=args.close_date or "",
        campaign_id=args.campaign or "",
    )
    response = ctx.client.sales.CreateOpportunity(
        pb.CreateOpportunityRequest(opportunity=opportunity, request_id=args.request_id or "")
    )
    ctx.out.emit(
        response,
        lambda console: render.render_opportunity(console, response.opportunity, "Created"),
    )


def cmd_opportunities_get(ctx: Context, args: argparse.Namespace) -> None:
    response = ctx.client.sales.GetOpportunity(pb.GetOpportunityRequest(id=args.id))
    ctx.out.emit(response, lambda console: render.render_opportunity(console, response.opportunity))


def cmd_opportunities_list(ctx: Context, args: argparse.Namespace) -> None:
    request = pb.ListOpportunitiesRequest(
        page_size=args.page_size,
        page_token=args.page_token or "",
        pipeline_id=args.pipeline or "",
        stage_id=args.stage or "",
        owner_id=args.owner or "",
        account_id=args.account or "",
    )
    if args.status is not None:
        request.status = args.status
    response = ctx.client.sales.ListOpportunities(request)
    ctx.out.emit(
        response,
        lambda console: render.render_opportunities(
            console, response.opportunities, response.next_page_token
        ),
    )


def cmd_opportunities_move(ctx: Context, args: argparse.Namespace) -> None:
    """``crm opportunities move|win|lose|reopen ID ...``."""
    sales = ctx.client.sales
    version = args.expected_version
    response: Any
    if args.verb == "move":
        response = sales.MoveOpportunityStage(
            pb.MoveOpportunityStageRequest(
                id=args.id, stage_id=args.stage, expected_version=version
            )
        )
    elif args.verb == "win":
        response = sales.WinOpportunity(
            pb.WinOpportunityRequest(
                id=args.id,
                stage_id=args.stage or "",
                reason=args.reason or "",
                expected_version=version,
            )
        )
    elif args.verb == "lose":
        response = sales.LoseOpportunity(
            pb.LoseOpportunityRequest(
                id=args.id, stage_id=args.stage or "", reason=args.reason, expected_version=version
            )
        )
    else:
        response = sales.ReopenOpportunity(
            pb.ReopenOpportunityRequest(
                id=args.id, stage_id=args.stage, reason=args.reason or "", expected_version=version
            )
        )
    ctx.out.emit(response, lambda console: render.render_opportunity(console, response.opportunity))


# --- quotes ---------------------------------------------------------------------------------


def cmd_quotes_create(ctx: Context, args: argparse.Namespace) -> None:
    currency = args.currency.upper()
    until = datetime.now(UTC) + timedelta(days=args.valid_days)
    quote = pb.Quote(
        opportunity_id=args.opportunity,
        currency=currency,
        lines=[_quote_line(line, currency) for line in args.line],
        valid_until=to_timestamp(until),
    )
    response = ctx.client.sales.CreateQuote(
        pb.CreateQuoteRequest(quote=quote, request_id=args.request_id or "")
    )
    ctx.out.emit(response, lambda console: render.render_quote(console, response.quote, "Created"))


def cmd_quotes_get(ctx: Context, args: argparse.Namespace) -> None:
    response = ctx.client.sales.GetQuote(pb.GetQuoteRequest(id=args.id))
    ctx.out.emit(response, lambda console: render.render_quote(console, response.quote))


def cmd_quotes_list(ctx: Context, args: argparse.Namespace) -> None:
    request = pb.ListQuotesRequest(
        page_size=args.page_size,
        page_token=args.page_token or "",
        opportunity_id=args.opportunity or "",
    )
    if args.status is not None:
        request.status = args.status
    response = ctx.client.sales.ListQuotes(request)
    ctx.out.emit(
        response,
        lambda console: render.render_quotes(console, response.quotes, response.next_page_token),
    )


def cmd_quotes_move(ctx: Context, args: argparse.Namespace) -> None:
    """``crm quotes send|accept|reject ID``."""
    sales = ctx.client.sales
    version = args.expected_version
    response: Any
    if args.verb == "send":
        response = sales.SendQuote(pb.SendQuoteRequest(id=args.id, expected_version=version))
    elif args.verb == "accept":
        response = sales.AcceptQuote(pb.AcceptQuoteRequest(id=args.id, expected_version=version))
    else:
        response = sales.RejectQuote(
            pb.RejectQuoteRequest(id=args.id, reason=args.reason or "", expected_version=version)
        )
    ctx.out.emit(response, lambda console: render.render_quote(console, response.quote))


def cmd_quotes_pdf(ctx: Context, args: argparse.Namespace) -> None:
    """``crm quotes pdf ID [-o FILE]``: the sent quote's PDF, written to a file (``-o -``:
    to stdout)."""
    response = ctx.client.sales.GetQuoteDocument(pb.GetQuoteDocumentRequest(id=args.id))
    content = bytes(response.content)
    if args.output == "-":
        sys.stdout.buffer.write(content)
        sys.stdout.buffer.flush()
        return
    path = Path(args.output or Path(response.file_name).name or f"quote-{args.id}.pdf")
    if path.is_dir():
        path = path / (Path(response.file_name).name or f"quote-{args.id}.pdf")
    path.write_bytes(content)
    summary = {"file": str(path), "bytes": len(content), "contentType": response.content_type}
    ctx.out.emit(
        summary,
        lambda console: console.print(
            f"wrote {path} ({len(content):,} bytes, {response.content_type})"
        ),
    )


# --- the parser -----------------------------------------------------------------------------


def _expected_version(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--expected-version",
        type=int,
        default=0,
        metavar="N",
        help="only if the record is still at version N (else FAILED_PRECONDITION / ABORTED)",
    )


def register(commands: Any) -> None:
    """Add the sales commands to ``crm``'s sub-command parsers."""
    lead_status = _enum_type(pb.LeadStatus)
    lead_source = _enum_type(pb.LeadSource, SOURCE_ALIASES)
    stage_kind = _enum_type(pb.StageKind)
    quote_status = _enum_type(pb.QuoteStatus)

    # pipelines
    pipelines = commands.add_parser(
        "pipelines", help="create, get and list sales pipelines", description="Pipelines."
    )
    actions = pipelines.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = _command(actions, "create", cmd_pipelines_create, "create a pipeline")
    create.add_argument("--name", required=True)
    create.add_argument(
        "--stage",
        action="append",
        required=True,
        metavar="ID:NAME:WIN%:KIND",
        help="a stage, in order (repeatable); KIND: " + _choices_help(pb.StageKind),
    )
    create.add_argument("--request-id", help="idempotency key")
    get = _command(actions, "get", cmd_pipelines_get, "show a pipeline and its stages")
    get.add_argument("id", metavar="ID")
    get.add_argument("--version", type=int, default=0, help="an earlier version")
    _paging(_command(actions, "list", cmd_pipelines_list, "list pipelines"))

    # products
    products = commands.add_parser(
        "products", help="create, get and list products and prices", description="Products."
    )
    actions = products.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = _command(actions, "create", cmd_products_create, "create a product")
    create.add_argument("--sku", required=True)
    create.add_argument("--name", required=True)
    create.add_argument(
        "--price", action="append", metavar="CUR:AMOUNT", help="unit price, e.g. EUR:12.50"
    )
    create.add_argument("--inactive", action="store_true", help="not offered (yet)")
    create.add_argument("--request-id", help="idempotency key")
    get = _command(actions, "get", cmd_products_get, "show a product")
    get.add_argument("id", metavar="ID")
    listing = _command(actions, "list", cmd_products_list, "list products")
    listing.add_argument("--active", action="store_true", help="only active products")
    _paging(listing)

    # leads
    leads = commands.add_parser(
        "leads", help="create, work, qualify and convert leads", description="Leads."
    )
    actions = leads.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = _command(actions, "create", cmd_leads_create, "create a lead")
    create.add_argument("--name", help="the person's name")
    create.add_argument("--company", help="the company's name")
    create.add_argument("--email")
    create.add_argument("--phone")
    create.add_argument("--contact", metavar="ID", help="an existing contact")
    create.add_argument(
        "--source",
        type=lead_source,
        required=True,
        help=_choices_help(pb.LeadSource, SOURCE_ALIASES),
    )
    create.add_argument("--mention", metavar="ID", help="the social mention it came from")
    create.add_argument("--campaign", metavar="ID")
    create.add_argument("--owner", metavar="REP")
    create.add_argument("--request-id", help="idempotency key")
    get = _command(actions, "get", cmd_leads_get, "show a lead")
    get.add_argument("id", metavar="ID")
    listing = _command(actions, "list", cmd_leads_list, "list leads")
    listing.add_argument("--status", type=lead_status, help=_choices_help(pb.LeadStatus))
    listing.add_argument("--source", type=lead_source, help=_choices_help(pb.LeadSource))
    listing.add_argument("--owner", metavar="REP")
    listing.add_argument("--campaign", metavar="ID")
    _paging(listing)
    for verb, text in (
        ("work", "start working a lead (new → working)"),
        ("qualify", "qualify a lead (new/working → qualified)"),
        ("disqualify", "disqualify a lead, with a reason"),
    ):
        move = _command(actions, verb, cmd_leads_move, text)
        move.set_defaults(verb=verb)
        move.add_argument("id", metavar="ID")
        if verb == "disqualify":
            move.add_argument("--reason", required=True)
        _expected_version(move)
    convert = _command(
        actions, "convert", cmd_leads_convert, "convert a qualified lead: contact + opportunity"
    )
    convert.add_argument("id", metavar="ID")
    convert.add_argument("--pipeline", required=True, metavar="ID")
    convert.add_argument("--name", required=True, help="the opportunity's name")
    convert.add_argument("--amount", required=True, help="in major units, e.g. 3750.00")
    convert.add_argument("--currency", required=True, help="ISO 4217, e.g. EUR")
    convert.add_argument("--close-date", metavar="YYYY-MM-DD", help="expected close date")
    convert.add_argument("--owner", metavar="REP")
    convert.add_argument(
        "--create-organization", action="store_true", help="also create the lead's company"
    )
    _expected_version(convert)

    # opportunities
    opportunities = commands.add_parser(
        "opportunities",
        help="create, list and move opportunities through their pipeline",
        description="Opportunities.",
    )
    actions = opportunities.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = _command(actions, "create", cmd_opportunities_create, "create an opportunity")
    create.add_argument("--name", required=True)
    create.add_argument("--pipeline", required=True, metavar="ID")
    create.add_argument("--stage", help="an open stage (default: the first)")
    create.add_argument("--amount", required=True, help="in major units, e.g. 3750.00")
    create.add_argument("--currency", required=True, help="ISO 4217, e.g. EUR")
    create.add_argument("--account", metavar="ORG_ID")
    create.add_argument("--contact", metavar="ID", help="the primary contact")
    create.add_argument("--owner", metavar="REP")
    create.add_argument("--close-date", metavar="YYYY-MM-DD")
    create.add_argument("--campaign", metavar="ID")
    create.add_argument("--request-id", help="idempotency key")
    get = _command(actions, "get", cmd_opportunities_get, "show an opportunity and its history")
    get.add_argument("id", metavar="ID")
    listing = _command(actions, "list", cmd_opportunities_list, "list opportunities")
    listing.add_argument("--pipeline", metavar="ID")
    listing.add_argument("--stage")
    listing.add_argument("--status", type=stage_kind, help=_choices_help(pb.StageKind))
    listing.add_argument("--owner", metavar="REP")
    listing.add_argument("--account", metavar="ORG_ID")
    _paging(listing)
    for verb, text in (
        ("move", "move an open opportunity to another open stage"),
        ("win", "close an opportunity as won"),
        ("lose", "close an opportunity as lost, with a reason"),
        ("reopen", "reopen a won or lost opportunity in an open stage"),
    ):
        move = _command(actions, verb, cmd_opportunities_move, text)
        move.set_defaults(verb=verb)
        move.add_argument("id", metavar="ID")
        if verb in ("move", "reopen"):
            move.add_argument("stage", metavar="STAGE")
        else:
            move.add_argument("--stage", help=f"the {verb} stage (default: the pipeline's)")
        if verb == "lose":
            move.add_argument("--reason", required=True)
        else:
            move.add_argument("--reason")
        _expected_version(move)

    # quotes
    quotes = commands.add_parser(
        "quotes", help="create, send, accept quotes and get their PDF", description="Quotes."
    )
    actions = quotes.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = _command(actions, "create", cmd_quotes_create, "create a quote revision (draft)")
    create.add_argument("--opportunity", required=True, metavar="ID")
    create.add_argument("--currency", required=True, help="ISO 4217, e.g. EUR")
    create.add_argument(
        "--line",
        action="append",
        required=True,
        metavar="PRODUCT:QTY[:DISC%[:TAX%[:PRICE]]]",
        help="a line (repeatable); the price defaults to the product's in the currency",
    )
    create.add_argument("--valid-days", type=float, default=30.0, help="valid for (default 30)")
    create.add_argument("--request-id", help="idempotency key")
    get = _command(actions, "get", cmd_quotes_get, "show a quote with its lines and totals")
    get.add_argument("id", metavar="ID")
    listing = _command(actions, "list", cmd_quotes_list, "list quotes")
    listing.add_argument("--opportunity", metavar="ID")
    listing.add_argument("--status", type=quote_status, help=_choices_help(pb.QuoteStatus))
    _paging(listing)
    for verb, text in (
        ("send", "send a draft (then immutable)"),
        ("accept", "record the customer's acceptance"),
        ("reject", "record the customer's rejection"),
    ):
        move = _command(actions, verb, cmd_quotes_move, text)
        move.set_defaults(verb=verb)
        move.add_argument("id", metavar="ID")
        if verb == "reject":
            move.add_argument("--reason")
        _expected_version(move)
    pdf = _command(actions, "pdf", cmd_quotes_pdf, "write a sent quote's PDF to a file")
    pdf.add_argument("id", metavar="ID")
    pdf.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="where to write it (a folder, a file, or - for stdout; default: its own file name)",
    )
