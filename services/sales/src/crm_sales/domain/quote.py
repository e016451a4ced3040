"""Quotes: numbered revisions of an opportunity's proposal, with exact totals.

**The rounding rule** (the only one): all amounts are whole minor units of the quote's
currency. For each line, ``gross = quantity * unit price`` (exact), ``net = gross * (10000 -
discount) / 10000`` and ``tax = net * tax rate / 10000`` (discount and tax rate in basis
points), each of ``net`` and ``tax`` rounded **half to even to a whole minor unit** (to the
currency's minor unit: a cent for EUR, a yen for JPY, a fils for BHD) as soon as it is
computed, ``tax`` from the rounded ``net``. The quote's net total is the sum of the lines'
rounded nets, its tax total the sum of their rounded taxes, and its total the sum of the two;
sums are exact. Arithmetic is ``decimal.Decimal`` in a context wide enough for any int64
operands (never a float). A line or total beyond int64 is refused.

Status: DRAFT → SENT → ACCEPTED | REJECTED | EXPIRED. Only a draft changes; a sent revision is
immutable (a new revision carries a change). A sent quote expires when its ``valid_until``
passes (a durable timer, armed when it is sent, fires :meth:`Quote.expire`); it cannot be
accepted after that time even if the timer has not fired yet. Checks run in this order: the
request's arguments (``InvalidArgument``), the caller's ``expected_version`` (``StaleVersion``),
then the state (FAILED_PRECONDITION).
"""

from __future__ import annotations

import decimal
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum

from crm_platform.errors import FailedPrecondition
from crm_sales.domain._checks import Violations, check_version, parse_update_mask
from crm_sales.domain.money import amount_problem, price_currency_problem
from crm_sales.domain.product import Product

BASIS_POINTS = 10_000
"""100 % in basis points: discounts and tax rates are whole basis points (19 % = 1900)."""
INT64_MAX = 2**63 - 1
MAX_LINES = 200

QUOTE_NOT_DRAFT = "QUOTE_NOT_DRAFT"
"""FAILED_PRECONDITION: the change needs a draft (a sent revision is immutable)."""
QUOTE_NOT_SENT = "QUOTE_NOT_SENT"
"""FAILED_PRECONDITION: acceptance or rejection needs a sent quote."""
QUOTE_VALIDITY_PASSED = "QUOTE_VALIDITY_PASSED"
"""FAILED_PRECONDITION: the quote's ``valid_until`` has passed."""
OPPORTUNITY_CLOSED = "OPPORTUNITY_CLOSED"
"""FAILED_PRECONDITION: the opportunity is won or lost; a quote needs an open one."""

# 80 significant digits hold any product of two int64 values and 10**4 exactly; Inexact traps
# so that a lost digit is a bug, never a silent rounding.
_EXACT = decimal.Context(prec=80, rounding=ROUND_HALF_EVEN, traps=[decimal.Inexact])
_ROUNDING = decimal.Context(prec=80, rounding=ROUND_HALF_EVEN)
"""Only the rounding to a whole minor unit may drop digits (by the rule)."""
_ONE = Decimal(1)


class QuoteStatus(StrEnum):
    """Where a quote revision is in its life."""

    DRAFT = "draft"
    SENT = "sent"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class LineInput:
    """A quote line as the caller gives it; ``unit_price_minor`` ``None``: from the price book."""

    product_id: str
    quantity: int
    unit_price_minor: int | None = None
    discount_basis_points: int = 0
    tax_rate_basis_points: int = 0


@dataclass(frozen=True, slots=True)
class QuoteLine:
    """A priced line: the product as it was when priced, and the line's rounded amounts."""

    product_id: str
    sku: str
    name: str
    quantity: int
    unit_price_minor: int
    discount_basis_points: int
    tax_rate_basis_points: int
    net_minor: int
    tax_minor: int


@dataclass(frozen=True, slots=True)
class Totals:
    """A quote's totals in minor units."""

    net_minor: int
    tax_minor: int
    total_minor: int


def _round_minor(value: Decimal) -> int:
    """Half to even to a whole minor unit."""
    return int(value.quantize(_ONE, rounding=ROUND_HALF_EVEN, context=_ROUNDING))


def line_amounts(
    quantity: int, unit_price_minor: int, discount_basis_points: int, tax_rate_basis_points: int
) -> tuple[int, int]:
    """A line's net and tax in minor units, by the rounding rule of this module."""
    gross = _EXACT.multiply(Decimal(quantity), Decimal(unit_price_minor))
    kept = _EXACT.divide(Decimal(BASIS_POINTS - discount_basis_points), Decimal(BASIS_POINTS))
    net = _round_minor(_EXACT.multiply(gross, kept))
    rate = _EXACT.divide(Decimal(tax_rate_basis_points), Decimal(BASIS_POINTS))
    tax = _round_minor(_EXACT.multiply(Decimal(net), rate))
    return net, tax


def totals_of(lines: Iterable[QuoteLine]) -> Totals:
    """The sums of the lines' rounded amounts (exact integer sums)."""
    net = tax = 0
    for line in lines:
        net += line.net_minor
        tax += line.tax_minor
    return Totals(net, tax, net + tax)


@dataclass(frozen=True, slots=True)
class QuoteInput:
    """What a caller sets on a quote (the opportunity only on create)."""

    opportunity_id: str = ""
    currency: str = ""
    valid_until: datetime | None = None
    lines: tuple[LineInput, ...] = ()


QUOTE_MASK = ("currency", "valid_until", "lines")
"""The fields an update of a draft may change."""


def price_lines(
    inputs: Sequence[LineInput],
    currency: str,
    products: Mapping[str, Product],
    violations: Violations,
    prefix: str = "quote",
) -> tuple[QuoteLine, ...]:
    """The lines priced in ``currency``: each product must exist (in ``products``) and be
    active; a line without a unit price takes the product's price in ``currency``. A violation
    per bad field; the lines returned are only meaningful without violations."""
    if not inputs:
        violations.add(f"{prefix}.lines", "must have at least one line")
    if len(inputs) > MAX_LINES:
        violations.add(f"{prefix}.lines", f"at most {MAX_LINES} lines")
    lines: list[QuoteLine] = []
    for index, given in enumerate(inputs):
        path = f"{prefix}.lines[{index}]"
        product = products.get(given.product_id)
        price = given.unit_price_minor
        if product is None:
            violations.add(f"{path}.product_id", "no such product")
        elif not product.active:
            violations.add(f"{path}.product_id", f"product {product.sku} is not active")
        elif price is None and (price := product.price_in(currency)) is None:
            violations.add(
                f"{path}.unit_price_minor",
                f"product {product.sku} has no price in {currency}: give a unit price",
            )
        if isinstance(given.quantity, bool) or not isinstance(given.quantity, int):
            violations.add(f"{path}.quantity", "must be a whole number")
        elif not 1 <= given.quantity <= INT64_MAX:
            violations.add(f"{path}.quantity", "must be at least 1")
        if given.unit_price_minor is not None and (
            problem := amount_problem(given.unit_price_minor)
        ):
            violations.add(f"{path}.unit_price_minor", problem)
        for name in ("discount_basis_points", "tax_rate_basis_points"):
            value = getattr(given, name)
            if isinstance(value, bool) or not isinstance(value, int):
                violations.add(f"{path}.{name}", "must be whole basis points")
            elif not 0 <= value <= BASIS_POINTS:
                violations.add(f"{path}.{name}", f"must be between 0 and {BASIS_POINTS}")
        if violations.items or product is None or price is None:
            continue
        net, tax = line_amounts(
            given.quantity, price, given.discount_basis_points, given.tax_rate_basis_points
        )
        if max(net, tax) > INT64_MAX:
            violations.add(path, "the line's amount exceeds the largest amount (int64)")
            continue
        lines.append(
            QuoteLine(
                product_id=product.id,
                sku=product.sku,
                name=product.name,
                quantity=given.quantity,
                unit_price_minor=price,
                discount_basis_points=given.discount_basis_points,
                tax_rate_basis_points=given.tax_rate_basis_points,
                net_minor=net,
                tax_minor=tax,
            )
        )
    if not violations.items and totals_of(lines).total_minor > INT64_MAX:
        violations.add(f"{prefix}.lines", "the total exceeds the largest amount (int64)")
    return tuple(lines)


def _check_terms(currency: str, valid_until: datetime | None, violations: Violations) -> None:
    if problem := price_currency_problem(currency):
        violations.add("quote.currency", problem)
    if valid_until is None:
        violations.add("quote.valid_until", "must be set: until when the offer holds")


@dataclass(frozen=True, slots=True)
class Quote:
    """A quote revision at one version."""

    id: str
    tenant_id: str
    opportunity_id: str
    revision: int
    currency: str
    lines: tuple[QuoteLine, ...]
    totals: Totals
    valid_until: datetime
    status: QuoteStatus
    reason: str
    send_time: datetime | None
    close_time: datetime | None
    event_key: str
    """The Kafka key of its events: the opportunity's (one deal's events on one partition)."""
    version: int
    create_time: datetime
    update_time: datetime

    @classmethod
    def draft(
        cls,
        *,
        id: str,
        tenant_id: str,
        revision: int,
        fields: QuoteInput,
        products: Mapping[str, Product],
        event_key: str,
        now: datetime,
    ) -> Quote:
        """Revision ``revision`` of the opportunity's quote, as a draft (version 1)."""
        violations = Violations()
        _check_terms(fields.currency, fields.valid_until, violations)
        lines = price_lines(fields.lines, fields.currency, products, violations)
        violations.raise_if_any()
        assert fields.valid_until is not None
        return cls(
            id=id,
            tenant_id=tenant_id,
            opportunity_id=fields.opportunity_id,
            revision=revision,
            currency=fields.currency,
            lines=lines,
            totals=totals_of(lines),
            valid_until=fields.valid_until,
            status=QuoteStatus.DRAFT,
            reason="",
            send_time=None,
            close_time=None,
            event_key=event_key,
            version=1,
            create_time=now,
            update_time=now,
        )

    @property
    def subject(self) -> str:
        """The aggregate's name in errors and events."""
        return f"quotes/{self.id}"

    def apply_update(
        self,
        changes: QuoteInput,
        paths: Sequence[str],
        products: Mapping[str, Product],
        expected_version: int | None,
        now: datetime,
    ) -> QuoteChange:
        """The draft with the fields ``paths`` names replaced; a new currency needs new lines
        (the lines are priced in it). Only a draft changes (``QUOTE_NOT_DRAFT``)."""
        violations = Violations()
        named = parse_update_mask(paths, QUOTE_MASK, violations)
        currency = changes.currency if "currency" in named else self.currency
        valid_until = changes.valid_until if "valid_until" in named else self.valid_until
        if "currency" in named and "lines" not in named and currency != self.currency:
            violations.add("update_mask", "a new currency needs the lines too (priced in it)")
        _check_terms(currency, valid_until, violations)
        lines = self.lines
        if "lines" in named:
            lines = price_lines(changes.lines, currency, products, violations)
        violations.raise_if_any()
        check_version(self.subject, expected_version, self.version)
        self._require(QuoteStatus.DRAFT, QUOTE_NOT_DRAFT, "create a new revision to change it")
        assert valid_until is not None
        changed = tuple(
            name
            for name, value in (
                ("currency", currency),
                ("valid_until", valid_until),
                ("lines", lines),
            )
            if name in named and getattr(self, name) != value
        )
        if not changed:
            return QuoteChange(self, ())
        updated = replace(
            self,
            currency=currency,
            valid_until=valid_until,
            lines=lines,
            totals=totals_of(lines),
            version=self.version + 1,
            update_time=now,
        )
        return QuoteChange(updated, changed)

    def send(self, expected_version: int | None, now: datetime) -> Quote:
        """DRAFT → SENT; its ``valid_until`` must be ahead."""
        check_version(self.subject, expected_version, self.version)
        self._require(QuoteStatus.DRAFT, QUOTE_NOT_DRAFT, "only a draft is sent")
        if self.valid_until <= now:
            raise FailedPrecondition(
                QUOTE_VALIDITY_PASSED, self.subject, "valid_until has passed: set a later one"
            )
        return self._become(QuoteStatus.SENT, now, send_time=now)

    def accept(self, expected_version: int | None, now: datetime) -> Quote:
        """SENT → ACCEPTED, before ``valid_until``."""
        check_version(self.subject, expected_version, self.version)
        self._require(QuoteStatus.SENT, QUOTE_NOT_SENT, "only a sent quote is accepted")
        if self.valid_until <= now:
            raise FailedPrecondition(
                QUOTE_VALIDITY_PASSED, self.subject, "the offer expired: send a new revision"
            )
        return self._become(QuoteStatus.ACCEPTED, now, close_time=now)

    def reject(self, reason: str, expected_version: int | None, now: datetime) -> Quote:
        """SENT → REJECTED, with the customer's reason if given."""
        check_version(self.subject, expected_version, self.version)
        self._require(QuoteStatus.SENT, QUOTE_NOT_SENT, "only a sent quote is rejected")
        return self._become(QuoteStatus.REJECTED, now, close_time=now, reason=reason.strip())

    def expire(self, now: datetime) -> Quote | None:
        """SENT → EXPIRED (its timer fired); ``None`` when it is no longer sent."""
        if self.status is not QuoteStatus.SENT:
            return None
        return self._become(QuoteStatus.EXPIRED, now, close_time=now)

    def _require(self, status: QuoteStatus, violation: str, hint: str) -> None:
        if self.status is not status:
            raise FailedPrecondition(violation, self.subject, f"is {self.status.value}: {hint}")

    def _become(self, status: QuoteStatus, now: datetime, **changes: object) -> Quote:
        return replace(
            self,
            status=status,
            version=self.version + 1,
            update_time=now,
            **changes,  # type: ignore[arg-type]
        )


@dataclass(frozen=True, slots=True)
class QuoteChange:
    """The outcome of an update: the quote and the fields that changed."""

    quote: Quote
    changed_paths: tuple[str, ...]
