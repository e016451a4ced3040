"""Money as the sales service holds it: an integer number of minor units and an ISO 4217 code.

Never a float. The amount is in the currency's minor unit (cents for EUR, yen for JPY); the code
must be a current ISO 4217 currency (from ``pycountry``'s ISO 4217 table), except ``XXX`` (no
currency) and ``XTS`` (reserved for tests), which no deal is priced in.
"""

from __future__ import annotations

from dataclasses import dataclass

import pycountry

NOT_MONEY = frozenset({"XXX", "XTS"})
"""ISO 4217 codes that name no currency a price can be in."""


def currency_problem(code: str) -> str | None:
    """Why ``code`` is not a currency an amount can be in, or ``None`` when it is."""
    if len(code) != 3 or not code.isascii() or not code.isupper() or not code.isalpha():
        return "must be a three-letter ISO 4217 code in capitals, e.g. EUR"
    if code in NOT_MONEY or pycountry.currencies.get(alpha_3=code) is None:
        return f'"{code}" is not an ISO 4217 currency'
    return None


def amount_problem(amount_minor: object) -> str | None:
    """Why ``amount_minor`` is not an amount in minor units, or ``None`` when it is."""
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int):
        return "must be a whole number of minor units"
    if amount_minor < 0:
        return "must not be negative"
    return None


@dataclass(frozen=True, slots=True)
class Money:
    """A non-negative amount in minor units of an ISO 4217 currency."""

    amount_minor: int
    currency: str

    def __post_init__(self) -> None:
        problem = amount_problem(self.amount_minor) or currency_problem(self.currency)
        if problem is not None:
            raise ValueError(f"not money ({self.amount_minor!r} {self.currency!r}): {problem}")

    def __str__(self) -> str:
        return f"{self.amount_minor} {self.currency} (minor units)"


NO_MINOR_UNIT = frozenset(
    {"XAG", "XAU", "XPD", "XPT", "XBA", "XBB", "XBC", "XBD", "XDR", "XSU", "XUA"}
)
"""ISO 4217 codes without a minor unit ("N.A." in the standard: precious metals, bond-market
units, the SDR): nothing is priced in them per unit, so a price book or a quote refuses them."""

_MINOR_UNIT_EXCEPTIONS = {
    **dict.fromkeys(
        ("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI",
         "VND", "VUV", "XAF", "XOF", "XPF"),
        0,
    ),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    **dict.fromkeys(("CLF", "UYW"), 4),
}  # fmt: skip
"""ISO 4217's minor-unit digits where they are not 2 (the standard's table; ``pycountry`` does
not carry the exponents, and no maintained library that does is a dependency here)."""


def price_currency_problem(code: str) -> str | None:
    """Why ``code`` is not a currency a unit price can be in (a currency with a minor unit)."""
    if (problem := currency_problem(code)) is not None:
        return problem
    if code in NO_MINOR_UNIT:
        return f'"{code}" has no minor unit: nothing is priced in it'
    return None


def minor_unit_digits(code: str) -> int:
    """How many decimal digits the minor unit of ``code`` has (2 for EUR, 0 for JPY, 3 for
    BHD): how many minor units make one major unit as a power of ten."""
    return _MINOR_UNIT_EXCEPTIONS.get(code, 2)
