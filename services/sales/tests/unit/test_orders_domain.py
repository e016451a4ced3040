"""The orders area's rules without a database: conversion (against an independent oracle),
returns bounded by what is left of each line, the checks of orders and costs."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm_platform.errors import FailedPrecondition, InvalidArgument
from crm_sales.domain.orders import (
    ConversionStatus,
    Cost,
    CostCategory,
    CostInput,
    CurrencySettings,
    ExchangeRate,
    Order,
    OrderInput,
    OrderLineInput,
    ReturnInput,
    ReturnLineInput,
    convert_minor,
    parse_rate,
    rate_text,
)

NOW = datetime(2026, 3, 1, tzinfo=UTC)
DIGITS = {"EUR": 2, "JPY": 0, "BHD": 3, "CLF": 4}


def _half_even(value: Fraction) -> int:
    floor = value.numerator // value.denominator
    rest = value - floor
    return floor + (rest > Fraction(1, 2) or (rest == Fraction(1, 2) and floor % 2 == 1))


_rates = st.builds(
    lambda whole, frac, digits: f"{whole}.{frac:0{digits}d}" if digits else str(whole),
    st.integers(0, 10**6),
    st.integers(0, 10**12 - 1),
    st.integers(0, 12),
).filter(lambda text: parse_rate(text) is not None)


@given(
    amount=st.integers(0, 2**63 - 1),
    source=st.sampled_from(sorted(DIGITS)),
    target=st.sampled_from(sorted(DIGITS)),
    rate=_rates,
)
def test_conversion_is_exact_and_rounds_half_to_even(
    amount: int, source: str, target: str, rate: str
) -> None:
    parsed = parse_rate(rate)
    assert parsed is not None
    exact = Fraction(amount, 10 ** DIGITS[source]) * Fraction(rate) * 10 ** DIGITS[target]
    expected = _half_even(exact)
    if expected > 2**63 - 1:
        with pytest.raises(OverflowError):
            convert_minor(amount, source, target, parsed)
    else:
        assert convert_minor(amount, source, target, parsed) == expected


def test_ties_go_to_the_even_neighbour() -> None:
    assert convert_minor(5, "EUR", "EUR", Decimal("0.9")) == 4  # 4.5
    assert convert_minor(15, "EUR", "EUR", Decimal("0.9")) == 14  # 13.5
    assert convert_minor(1, "EUR", "JPY", Decimal("150")) == 2  # 1.5 yen


@pytest.mark.parametrize("text", ["0", "-1", "1e5", "1.", ".5", "1234567890123", "1.0000000000001"])
def test_rates_are_positive_plain_decimals(text: str) -> None:
    assert parse_rate(text) is None


def test_rate_text_is_canonical() -> None:
    assert [rate_text(Decimal(t)) for t in ("0.900", "110", "1E+2", "0.0061")] == [
        "0.9",
        "110",
        "100",
        "0.0061",
    ]


def _order(**fields: object) -> OrderInput:
    values: dict[str, object] = {
        "external_id": "ERP-1",
        "contact_id": "c1",
        "order_date": "2026-02-01",
        "currency": "USD",
        "lines": (OrderLineInput("A", "", 2, 1000, 600), OrderLineInput("B", "", 1, 500, 100)),
    }
    values.update(fields)
    return OrderInput(**values)  # type: ignore[arg-type]


def _rate(value: str) -> ExchangeRate:
    return ExchangeRate("t", "USD", "EUR", Decimal(value), "2026-01-01", NOW)


def test_an_order_keeps_its_currency_and_its_base_amounts_with_the_rate() -> None:
    order = Order.record(
        id="o", tenant_id="t", fields=_order(), base_currency="EUR", rate=_rate("0.5"), now=NOW
    )
    assert (order.currency, order.revenue_total_minor, order.cost_total_minor) == ("USD", 1500, 700)
    assert (order.base.amount_minor, order.base.cost_minor, order.base.rate) == (750, 350, "0.5")
    missing = Order.record(
        id="o", tenant_id="t", fields=_order(), base_currency="EUR", rate=None, now=NOW
    )
    assert missing.base.status is ConversionStatus.RATE_MISSING
    assert missing.base.amount_minor is None


def test_fractional_and_negative_amounts_are_refused() -> None:
    fields = _order(lines=(OrderLineInput("A", "", 1.5, 10.5, -1),))  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument) as info:
        Order.record(id="o", tenant_id="t", fields=fields, base_currency="", rate=None, now=NOW)
    assert {v.field for v in info.value.violations} == {
        "order.lines[0].quantity",
        "order.lines[0].revenue_minor",
        "order.lines[0].cost_minor",
    }


def test_the_same_contents_have_the_same_fingerprint() -> None:
    assert _order().fingerprint == _order().fingerprint
    assert _order().fingerprint != _order(order_date="2026-02-02").fingerprint


def test_returns_add_up_and_never_exceed_the_order() -> None:
    order = Order.record(
        id="o", tenant_id="t", fields=_order(), base_currency="", rate=None, now=NOW
    )
    first, after = order.take_return(
        id="r1",
        fields=ReturnInput("R1", "o", "2026-02-02", (ReturnLineInput(1, 1, 400, 300),)),
        base_currency="",
        rate=None,
        now=NOW,
    )
    assert (first.revenue_total_minor, after.version) == (400, 2)
    _, again = after.take_return(
        id="r2",
        fields=ReturnInput("R2", "o", "2026-02-03", (ReturnLineInput(1, 1, 600, 300),)),
        base_currency="",
        rate=None,
        now=NOW,
    )
    assert again.returned[0].quantity == 2
    with pytest.raises(InvalidArgument) as info:
        again.take_return(
            id="r3",
            fields=ReturnInput("R3", "o", "2026-01-31", (ReturnLineInput(1, 0, 1, 0),)),
            base_currency="",
            rate=None,
            now=NOW,
        )
    assert {v.field for v in info.value.violations} == {
        "return.return_date",
        "return.lines[0].revenue_minor",
    }


def test_a_cost_needs_a_customer_a_category_and_a_period() -> None:
    cost = Cost.record(
        id="k",
        tenant_id="t",
        fields=CostInput(
            account_id="org",
            category=CostCategory.SERVICE,
            amount_minor=100,
            currency="EUR",
            period_start="2026-01-01",
            period_end="2026-01-31",
        ),
        base_currency="EUR",
        rate=None,
        now=NOW,
    )
    assert (cost.event_key, cost.base.amount_minor, cost.base.rate) == ("org", 100, "1")


def test_the_base_currency_is_versioned_and_required_for_rates() -> None:
    unset = CurrencySettings.unset("t")
    with pytest.raises(FailedPrecondition):
        unset.require_base()
    first = unset.set_base("EUR", None, NOW)
    assert (first.version, first.set_base("EUR", 1, NOW) is first) == (1, True)
    with pytest.raises(FailedPrecondition):
        first.set_base("USD", 7, NOW)
