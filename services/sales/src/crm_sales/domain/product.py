"""Products and their price book: what a quote line sells, at a unit price per currency.

A product has a SKU (unique in its tenant, kept for its life), a name, an active flag and a
price book: at most one unit price per currency, each in whole minor units of an ISO 4217
currency that has a minor unit. Only active products can be put on a quote.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from crm_sales.domain._checks import (
    Violations,
    check_version,
    join_path,
    parse_update_mask,
    required_text,
)
from crm_sales.domain.money import amount_problem, price_currency_problem

MAX_PRICES = 200


@dataclass(frozen=True, slots=True)
class Price:
    """The unit price of a product in one currency, in its minor units."""

    currency: str
    unit_price_minor: int


@dataclass(frozen=True, slots=True)
class ProductInput:
    """What a caller sets on a product (the SKU only on create)."""

    sku: str = ""
    name: str = ""
    active: bool = True
    prices: tuple[Price, ...] = ()


PRODUCT_MASK = ("name", "active", "prices")
"""The fields an update may change (the SKU is not among them)."""


@dataclass(frozen=True, slots=True)
class Product:
    """A product at one version."""

    id: str
    tenant_id: str
    sku: str
    name: str
    active: bool
    prices: tuple[Price, ...]
    version: int
    create_time: datetime
    update_time: datetime

    @classmethod
    def create(cls, *, id: str, tenant_id: str, fields: ProductInput, now: datetime) -> Product:
        """Version 1; ``InvalidArgument`` listing every bad field."""
        violations = Violations()
        sku = required_text(fields.sku, "product.sku", violations)
        name = required_text(fields.name, "product.name", violations)
        prices = _check_prices(fields.prices, violations)
        violations.raise_if_any()
        return cls(id, tenant_id, sku, name, fields.active, prices, 1, now, now)

    @property
    def subject(self) -> str:
        """The aggregate's name in errors and events."""
        return f"products/{self.id}"

    def price_in(self, currency: str) -> int | None:
        """The unit price in ``currency``'s minor units, if the price book has one."""
        return next((p.unit_price_minor for p in self.prices if p.currency == currency), None)

    def apply_update(
        self,
        changes: ProductInput,
        paths: Sequence[str],
        expected_version: int | None,
        now: datetime,
    ) -> ProductUpdate:
        """The next version with the fields ``paths`` names replaced: ``InvalidArgument``,
        then ``StaleVersion``; no change, no new version."""
        violations = Violations()
        named = parse_update_mask(paths, PRODUCT_MASK, violations)
        values: dict[str, object] = {}
        if "name" in named:
            values["name"] = required_text(changes.name, "product.name", violations)
        if "active" in named:
            values["active"] = changes.active
        if "prices" in named:
            values["prices"] = _check_prices(changes.prices, violations)
        violations.raise_if_any()
        check_version(self.subject, expected_version, self.version)
        changed = tuple(name for name in named if getattr(self, name) != values[name])
        if not changed:
            return ProductUpdate(self, ())
        updated = replace(
            self,
            **{name: values[name] for name in changed},  # type: ignore[arg-type]
            version=self.version + 1,
            update_time=now,
        )
        return ProductUpdate(updated, changed)


@dataclass(frozen=True, slots=True)
class ProductUpdate:
    """The outcome of an update: the product and the fields that changed."""

    product: Product
    changed_paths: tuple[str, ...]


def _check_prices(prices: Sequence[Price], violations: Violations) -> tuple[Price, ...]:
    """The price book in currency order, with a violation per bad or repeated entry."""
    if len(prices) > MAX_PRICES:
        violations.add("product.prices", f"at most {MAX_PRICES} prices")
    seen: set[str] = set()
    for index, price in enumerate(prices):
        path = join_path("product", f"prices[{index}]")
        if problem := price_currency_problem(price.currency):
            violations.add(f"{path}.currency", problem)
        elif price.currency in seen:
            violations.add(f"{path}.currency", f"{price.currency} has a price already")
        seen.add(price.currency)
        if problem := amount_problem(price.unit_price_minor):
            violations.add(f"{path}.unit_price_minor", problem)
    return tuple(sorted(prices, key=lambda p: p.currency))
