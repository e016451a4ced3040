"""Money is whole minor units of a real ISO 4217 currency."""

from __future__ import annotations

import pytest

from crm_sales.domain.money import Money, amount_problem, currency_problem


@pytest.mark.parametrize("code", ["EUR", "USD", "JPY", "BHD", "CHF"])
def test_current_iso_4217_codes_are_currencies(code: str) -> None:
    assert currency_problem(code) is None


@pytest.mark.parametrize("code", ["ZZZ", "EURO", "eur", "", "E1R", "XXX", "XTS", "ÉUR"])
def test_unknown_malformed_and_non_money_codes_are_refused(code: str) -> None:
    assert currency_problem(code) is not None


@pytest.mark.parametrize("amount", [-1, 1.5, 10.0, True, "100"])
def test_negative_fractional_and_non_integer_amounts_are_refused(amount: object) -> None:
    assert amount_problem(amount) is not None


def test_zero_and_large_whole_amounts_are_amounts() -> None:
    assert amount_problem(0) is None
    assert amount_problem(2**63 - 1) is None


def test_money_refuses_to_exist_with_a_float_or_an_unknown_currency() -> None:
    with pytest.raises(ValueError, match="minor units"):
        Money(12.5, "EUR")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ISO 4217"):
        Money(1250, "ZZZ")
    assert str(Money(1250, "EUR")) == "1250 EUR (minor units)"
