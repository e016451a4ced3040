"""Money as people type and read it, and as the API carries it (integer minor units + ISO 4217).

``parse_amount("3750.5", "EUR")`` → ``375050``; ``format_amount(375050, "EUR")`` →
``"3,750.50 EUR"``. Exact: amounts go through :class:`decimal.Decimal`, never floats, and an
amount with more decimals than the currency's minor unit has is refused, not rounded.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

# ISO 4217's minor-unit digits where they are not 2 (the standard's table, as the sales service
# keeps it in crm_sales.domain.money). The server checks the currency; this only reads and
# writes amounts.
# fmt: off
_DIGITS = {
    **dict.fromkeys(
        ("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI",
         "VND", "VUV", "XAF", "XOF", "XPF"),
        0,
    ),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    **dict.fromkeys(("CLF", "UYW"), 4),
}
# fmt: on


def minor_unit_digits(currency: str) -> int:
    """Decimal digits of the currency's minor unit (2 for EUR, 0 for JPY, 3 for BHD)."""
    return _DIGITS.get(currency.upper(), 2)


def parse_amount(text: str, currency: str) -> int:
    """``"3,750.50"`` in ``currency`` → minor units; :class:`ValueError` if it is not a
    non-negative amount with at most the currency's decimals."""
    cleaned = text.strip().replace(",", "").replace("_", "")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise ValueError(f"{text!r} is not an amount, e.g. 1250.00") from None
    if not value.is_finite() or value < 0:
        raise ValueError(f"{text!r} is not a non-negative amount")
    digits = minor_unit_digits(currency)
    minor = value.scaleb(digits)
    if minor != minor.to_integral_value():
        raise ValueError(f"{text!r} has more than {digits} decimals, the minor unit of {currency}")
    return int(minor)


def format_amount(amount_minor: int, currency: str) -> str:
    """Minor units → ``"3,750.50 EUR"`` (``"" `` without a currency)."""
    if not currency:
        return str(amount_minor) if amount_minor else ""
    digits = minor_unit_digits(currency)
    return f"{Decimal(amount_minor).scaleb(-digits):,.{digits}f} {currency}"
