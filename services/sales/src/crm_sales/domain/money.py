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
