"""Quote totals: the one rounding rule (each line's net, then its tax, half to even to a whole
minor unit; totals are exact sums), checked on examples and, as a property, against an oracle
that computes the same rule in integer arithmetic only, summing in the other order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm_platform.errors import InvalidArgument
from crm_sales.domain._checks import Violations
from crm_sales.domain.money import minor_unit_digits, price_currency_problem
from crm_sales.domain.product import Price, Product
from crm_sales.domain.quote import (
    INT64_MAX,
    LineInput,
    Quote,
    QuoteInput,
    line_amounts,
    price_lines,
    totals_of,
)

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def product(product_id: str = "p1", *, active: bool = True, **prices: int) -> Product:
    book = tuple(Price(code, amount) for code, amount in prices.items())
    return Product(product_id, "t", f"SKU-{product_id}", "Seat", active, book, 1, NOW, NOW)


def half_even_div(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half to even, in integers (numerator >= 0)."""
    quotient, remainder = divmod(numerator, denominator)
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient % 2 == 1):
        quotient += 1
    return quotient


def oracle(lines: list[tuple[int, int, int, int]]) -> tuple[int, int, int]:
    """The rule in integers: net = q*p*(10000-d)/10000, tax = net*t/10000, each half-even."""
    nets, taxes = [], []
    for quantity, price, discount, tax_rate in lines:
        net = half_even_div(quantity * price * (10_000 - discount), 10_000)
        nets.append(net)
        taxes.append(half_even_div(net * tax_rate, 10_000))
    net_total = sum(reversed(nets))
    tax_total = sum(reversed(taxes))
    return net_total, tax_total, tax_total + net_total


@pytest.mark.parametrize(
    ("quantity", "price", "discount", "tax", "expected"),
    [
        (3, 1999, 0, 1900, (5997, 1139)),  # tax 1139.43 → 1139
        (1, 1, 5000, 0, (0, 0)),  # net 0.5 → 0 (half to even)
        (1, 3, 5000, 0, (2, 0)),  # net 1.5 → 2 (half to even)
        (1, 250, 0, 1000, (250, 25)),  # exact
        (1, 5, 0, 1000, (5, 0)),  # tax 0.5 → 0
        (1, 15, 0, 1000, (15, 2)),  # tax 1.5 → 2
        (7, 333, 1250, 770, (2040, 157)),  # net 2039.625 → 2040, tax 157.08 → 157
        (1, 100, 10_000, 1900, (0, 0)),  # a free line
    ],
)
def test_line_net_and_tax_round_half_even_to_the_minor_unit(
    quantity: int, price: int, discount: int, tax: int, expected: tuple[int, int]
) -> None:
    assert line_amounts(quantity, price, discount, tax) == expected


def test_tax_is_computed_from_the_rounded_net() -> None:
    # net 0.5 rounds to 0, so the tax is 0, not round(0.5 * 100 %) = 0 or 1 by accident.
    assert line_amounts(1, 1, 5000, 10_000) == (0, 0)
    # net 2.5 → 2; tax 100 % of 2 = 2 (not 3 from the unrounded 2.5).
    assert line_amounts(1, 5, 5000, 10_000) == (2, 2)


def test_int64_extremes_are_exact() -> None:
    net, tax = line_amounts(INT64_MAX, INT64_MAX, 1, 1)
    assert net == half_even_div(INT64_MAX * INT64_MAX * 9999, 10_000)
    assert tax == half_even_div(net, 10_000)


_line = st.tuples(
    st.integers(1, 10**6),
    st.integers(0, 10**9),
    st.integers(0, 10_000),
    st.integers(0, 10_000),
)


@given(st.lists(_line, min_size=1, max_size=20))
def test_quote_totals_match_an_integer_oracle(lines: list[tuple[int, int, int, int]]) -> None:
    products = {f"p{i}": product(f"p{i}", EUR=price) for i, (_, price, _, _) in enumerate(lines)}
    inputs = [
        LineInput(f"p{i}", quantity, None, discount, tax)
        for i, (quantity, _, discount, tax) in enumerate(lines)
    ]
    violations = Violations()
    priced = price_lines(inputs, "EUR", products, violations)
    assert not violations.items
    totals = totals_of(priced)
    assert (totals.net_minor, totals.tax_minor, totals.total_minor) == oracle(lines)
    assert [line.unit_price_minor for line in priced] == [price for _, price, _, _ in lines]


@given(_line, st.integers(0, 10**9))
def test_a_bigger_discount_never_raises_the_net(line: tuple[int, int, int, int], more: int) -> None:
    quantity, price, discount, tax = line
    bigger = min(10_000, discount + more % 10_001)
    assert (
        line_amounts(quantity, price, bigger, tax)[0]
        <= line_amounts(quantity, price, discount, tax)[0]
    )


def _draft(lines: tuple[LineInput, ...], products: dict[str, Product], currency: str) -> Quote:
    return Quote.draft(
        id="q1",
        tenant_id="t",
        revision=1,
        fields=QuoteInput("o1", currency, NOW + timedelta(days=30), lines),
        products=products,
        event_key="contact-1",
        now=NOW,
    )


def test_a_line_without_a_price_takes_the_price_book_price_in_the_quote_currency() -> None:
    products = {"p1": product(EUR=1000, JPY=150)}
    quote = _draft((LineInput("p1", 2, None, 0, 1000),), products, "JPY")
    assert quote.lines[0].unit_price_minor == 150
    assert (quote.totals.net_minor, quote.totals.tax_minor, quote.totals.total_minor) == (
        300,
        30,
        330,
    )


def test_unknown_inactive_and_unpriced_products_are_refused_per_line() -> None:
    products = {"p1": product(EUR=1000), "old": product("old", active=False, EUR=5)}
    lines = (
        LineInput("nope", 1),
        LineInput("old", 1),
        LineInput("p1", 1),
        LineInput("p1", 0, -1, 10_001, -1),
    )
    with pytest.raises(InvalidArgument) as info:
        _draft(lines, products, "USD")
    fields = {v.field for v in info.value.violations}
    assert fields == {
        "quote.lines[0].product_id",
        "quote.lines[1].product_id",
        "quote.lines[2].unit_price_minor",
        "quote.lines[3].quantity",
        "quote.lines[3].unit_price_minor",
        "quote.lines[3].discount_basis_points",
        "quote.lines[3].tax_rate_basis_points",
    }


@pytest.mark.parametrize("code", ["ZZZ", "XAU", "XXX", "eur"])
def test_a_quote_in_a_currency_without_a_minor_unit_or_unknown_is_refused(code: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        _draft((LineInput("p1", 1, 100),), {"p1": product(EUR=1)}, code)
    assert "quote.currency" in {v.field for v in info.value.violations}
    assert price_currency_problem(code) is not None


def test_minor_unit_digits_follow_iso_4217() -> None:
    assert [minor_unit_digits(c) for c in ("EUR", "JPY", "BHD", "KWD", "CLF", "USD")] == [
        2,
        0,
        3,
        3,
        4,
        2,
    ]
