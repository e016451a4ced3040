"""Tables of the ``crm`` sales commands (rich): pipelines, products, leads, opportunities, quotes.

Amounts are shown in major units of their currency (``3,750.00 EUR``), from the API's integer
minor units.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console

from crm.sales.v1 import sales_pb2 as pb
from crm_client.money import format_amount
from crm_client.render import _key_values, _more, _t, _table
from crm_client.values import enum_label, format_time


def render_pipeline(console: Console, pipeline: pb.Pipeline, title: str = "Pipeline") -> None:
    console.print(
        _key_values(
            title,
            [
                ("ID", pipeline.id),
                ("Name", pipeline.name),
                ("Version", pipeline.version or ""),
                ("Updated", format_time(pipeline, "update_time")),
            ],
        )
    )
    table = _table("Stages", "Stage", "Name", "Kind", "Win %")
    for stage in pipeline.stages:
        table.add_row(
            _t(stage.id),
            _t(stage.name),
            _t(enum_label(pb.StageKind, stage.kind)),
            _t(stage.win_probability_percent),
        )
    console.print(table)


def render_pipelines(
    console: Console, pipelines: Sequence[pb.Pipeline], next_page_token: str = ""
) -> None:
    table = _table(f"Pipelines ({len(pipelines)})", "ID", "Name", "Version", "Stages")
    for pipeline in pipelines:
        table.add_row(
            _t(pipeline.id),
            _t(pipeline.name),
            _t(pipeline.version),
            _t(" → ".join(stage.id for stage in pipeline.stages)),
        )
    console.print(table)
    _more(console, next_page_token)


def _prices(product: pb.Product) -> str:
    return ", ".join(format_amount(p.unit_price_minor, p.currency) for p in product.prices)


def render_product(console: Console, product: pb.Product, title: str = "Product") -> None:
    console.print(
        _key_values(
            title,
            [
                ("ID", product.id),
                ("SKU", product.sku),
                ("Name", product.name),
                ("Active", "yes" if product.active else "no"),
                ("Prices", _prices(product)),
                ("Version", product.version or ""),
            ],
        )
    )


def render_products(
    console: Console, products: Sequence[pb.Product], next_page_token: str = ""
) -> None:
    table = _table(f"Products ({len(products)})", "ID", "SKU", "Name", "Active", "Prices")
    for product in products:
        table.add_row(
            _t(product.id),
            _t(product.sku),
            _t(product.name),
            _t("yes" if product.active else "no"),
            _t(_prices(product)),
        )
    console.print(table)
    _more(console, next_page_token)


def render_lead(console: Console, lead: pb.Lead, title: str = "Lead") -> None:
    console.print(
        _key_values(
            title,
            [
                ("ID", lead.id),
                ("Status", enum_label(pb.LeadStatus, lead.status)),
                ("Person", lead.person_name),
                ("Company", lead.company_name),
                ("Email", lead.email),
                ("Phone", lead.phone),
                ("Contact", lead.contact_id),
                ("Source", enum_label(pb.LeadSource, lead.source)),
                ("Origin mention", lead.origin_mention_id),
                ("Campaign", lead.campaign_id),
                ("Owner", lead.owner_id),
                ("Disqualified because", lead.disqualify_reason),
                ("Converted contact", lead.converted_contact_id),
                ("Converted organization", lead.converted_organization_id),
                ("Converted opportunity", lead.converted_opportunity_id),
                ("Version", lead.version or ""),
                ("Created", format_time(lead, "create_time")),
                ("Updated", format_time(lead, "update_time")),
            ],
        )
    )


def render_leads(console: Console, leads: Sequence[pb.Lead], next_page_token: str = "") -> None:
    table = _table(
        f"Leads ({len(leads)})", "ID", "Status", "Person", "Company", "Source", "Owner", "Created"
    )
    for lead in leads:
        table.add_row(
            _t(lead.id),
            _t(enum_label(pb.LeadStatus, lead.status)),
            _t(lead.person_name or lead.email),
            _t(lead.company_name),
            _t(enum_label(pb.LeadSource, lead.source)),
            _t(lead.owner_id),
            _t(format_time(lead, "create_time")),
        )
    console.print(table)
    _more(console, next_page_token)


def render_opportunity(
    console: Console, opportunity: pb.Opportunity, title: str = "Opportunity"
) -> None:
    console.print(
        _key_values(
            title,
            [
                ("ID", opportunity.id),
                ("Name", opportunity.name),
                ("Amount", format_amount(opportunity.amount_minor, opportunity.currency)),
                ("Stage", opportunity.stage_id),
                ("Status", enum_label(pb.StageKind, opportunity.status)),
                ("Pipeline", f"{opportunity.pipeline_id} v{opportunity.pipeline_version}"),
                ("Account", opportunity.account_id),
                ("Primary contact", opportunity.primary_contact_id),
                ("Owner", opportunity.owner_id),
                ("Expected close", opportunity.expected_close_date),
                ("Source lead", opportunity.source_lead_id),
                ("Campaign", opportunity.campaign_id),
                ("Close reason", opportunity.close_reason),
                ("Closed", format_time(opportunity, "close_time")),
                ("Version", opportunity.version or ""),
            ],
        )
    )
    if opportunity.stage_history:
        table = _table("Stage history", "When", "From", "To", "Win %", "By", "Reason")
        for change in opportunity.stage_history:
            table.add_row(
                _t(format_time(change, "change_time")),
                _t(change.from_stage_id),
                _t(change.to_stage_id),
                _t(change.win_probability_percent),
                _t(change.actor),
                _t(change.reason),
            )
        console.print(table)


def render_opportunities(
    console: Console, opportunities: Sequence[pb.Opportunity], next_page_token: str = ""
) -> None:
    table = _table(
        f"Opportunities ({len(opportunities)})",
        "ID",
        "Name",
        "Amount",
        "Stage",
        "Status",
        "Owner",
        "Close",
    )
    for opportunity in opportunities:
        table.add_row(
            _t(opportunity.id),
            _t(opportunity.name),
            _t(format_amount(opportunity.amount_minor, opportunity.currency)),
            _t(opportunity.stage_id),
            _t(enum_label(pb.StageKind, opportunity.status)),
            _t(opportunity.owner_id),
            _t(opportunity.expected_close_date),
        )
    console.print(table)
    _more(console, next_page_token)


def _percent(basis_points: int) -> str:
    return f"{basis_points / 100:g} %"


def render_quote(console: Console, quote: pb.Quote, title: str = "Quote") -> None:
    console.print(
        _key_values(
            title,
            [
                ("ID", quote.id),
                ("Opportunity", quote.opportunity_id),
                ("Revision", quote.revision),
                ("Status", enum_label(pb.QuoteStatus, quote.status)),
                ("Net total", format_amount(quote.net_total_minor, quote.currency)),
                ("Tax total", format_amount(quote.tax_total_minor, quote.currency)),
                ("Total", format_amount(quote.total_minor, quote.currency)),
                ("Valid until", format_time(quote, "valid_until")),
                ("Sent", format_time(quote, "send_time")),
                ("Closed", format_time(quote, "close_time")),
                ("Reason", quote.reason),
                ("Version", quote.version or ""),
            ],
        )
    )
    table = _table("Lines", "SKU", "Product", "Qty", "Unit price", "Discount", "Tax", "Net")
    for line in quote.lines:
        table.add_row(
            _t(line.sku),
            _t(line.name),
            _t(line.quantity),
            _t(format_amount(line.unit_price_minor, quote.currency)),
            _t(_percent(line.discount_basis_points)),
            _t(_percent(line.tax_rate_basis_points)),
            _t(format_amount(line.net_minor, quote.currency)),
        )
    console.print(table)


def render_quotes(console: Console, quotes: Sequence[pb.Quote], next_page_token: str = "") -> None:
    table = _table(
        f"Quotes ({len(quotes)})", "ID", "Opportunity", "Rev", "Status", "Total", "Valid until"
    )
    for quote in quotes:
        table.add_row(
            _t(quote.id),
            _t(quote.opportunity_id),
            _t(quote.revision),
            _t(enum_label(pb.QuoteStatus, quote.status)),
            _t(format_amount(quote.total_minor, quote.currency)),
            _t(format_time(quote, "valid_until")),
        )
    console.print(table)
    _more(console, next_page_token)
