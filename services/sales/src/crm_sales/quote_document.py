"""The PDF document of a quote revision, made with fpdf2 (a maintained PDF library).

One A4 page (more for long quotes): the quote's number and revision, its dates, a table of the
lines (SKU, name, quantity, unit price, discount, tax rate, net) and the totals, every amount in
major units of the quote's currency with its ISO 4217 number of decimals (``1,234.56 EUR``,
``1,800 JPY``, ``1.250 BHD``). The PDF's core fonts hold Latin-1 only; other characters of a
product's name are shown as ``?`` (a Unicode font is not shipped). Creation date = the quote's
send time, so one revision always renders to the same bytes.
"""

from __future__ import annotations

from decimal import Decimal

from fpdf import FPDF

from crm_sales.domain.money import minor_unit_digits
from crm_sales.domain.quote import BASIS_POINTS, Quote

CONTENT_TYPE = "application/pdf"


def format_amount(amount_minor: int, currency: str) -> str:
    """``amount_minor`` in major units with the currency's decimals and its code."""
    digits = minor_unit_digits(currency)
    major = Decimal(amount_minor).scaleb(-digits)
    return f"{major:,.{digits}f} {currency}"


def format_basis_points(value: int) -> str:
    """Basis points as a percentage, e.g. 1250 → ``12.5 %``."""
    percent = (Decimal(value) * 100 / BASIS_POINTS).normalize()
    return f"{percent:f} %"


def _latin1(text: str) -> str:
    return text.encode("latin-1", "replace").decode("latin-1")


def file_name(quote: Quote) -> str:
    """The document's file name."""
    return f"quote-{quote.id}-r{quote.revision}.pdf"


def render_pdf(quote: Quote, opportunity_name: str) -> bytes:
    """The quote revision as a PDF."""
    pdf = FPDF(orientation="portrait", unit="mm", format="A4")
    pdf.set_creation_date(quote.send_time or quote.create_time)
    pdf.set_title(_latin1(f"Quote {quote.id} revision {quote.revision}"))
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 10, _latin1(f"Quote - {opportunity_name}"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)
    for label, value in (
        ("Quote", quote.id),
        ("Revision", str(quote.revision)),
        ("Status", quote.status.value),
        ("Sent", (quote.send_time or quote.create_time).date().isoformat()),
        ("Valid until", quote.valid_until.date().isoformat()),
        ("Currency", quote.currency),
    ):
        pdf.cell(0, 6, _latin1(f"{label}: {value}"), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    headings = ("SKU", "Product", "Qty", "Unit price", "Discount", "Tax", "Net")
    with pdf.table(
        col_widths=(25, 45, 15, 30, 20, 20, 35),
        text_align=("LEFT", "LEFT", "RIGHT", "RIGHT", "RIGHT", "RIGHT", "RIGHT"),
    ) as table:
        row = table.row()
        for heading in headings:
            row.cell(heading)
        for line in quote.lines:
            row = table.row()
            for text in (
                line.sku,
                line.name,
                str(line.quantity),
                format_amount(line.unit_price_minor, quote.currency),
                format_basis_points(line.discount_basis_points),
                format_basis_points(line.tax_rate_basis_points),
                format_amount(line.net_minor, quote.currency),
            ):
                row.cell(_latin1(text))
    pdf.ln(4)
    for label, amount in (
        ("Net total", quote.totals.net_minor),
        ("Tax total", quote.totals.tax_minor),
        ("Total", quote.totals.total_minor),
    ):
        pdf.set_font("Helvetica", "B" if label == "Total" else "", 11)
        pdf.cell(0, 7, f"{label}: {format_amount(amount, quote.currency)}", align="R",
                 new_x="LMARGIN", new_y="NEXT")  # fmt: skip
    return bytes(pdf.output())
