"""Orders, returns and costs from the ERP, and the tenant's base currency with dated exchange
rates.

An order is recorded once per ERP id (``external_id``): its contents are fingerprinted, so that
recording it again is told apart from recording something else under the same id. It is never
changed afterwards, except for what was returned of each line (``returned``): a return takes
back at most what was ordered minus earlier returns, per line and per amount.

Currencies never mix silently. Every record keeps its own currency; when it is recorded it is
also converted into the tenant's base currency at the rate valid on its date
(:func:`convert_minor`, the one rounding rule), with the rate used kept beside the result
(:class:`BaseAmounts`). Without a base currency or a rate the record says so instead of
carrying a zero.

The conversion: ``amount_minor / 10**digits(currency) * rate`` exactly (``Decimal``, enough
precision for any int64 amount and rate), then rounded half to even to whole minor units of the
base currency.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from enum import StrEnum

from crm_platform.errors import FailedPrecondition
from crm_sales.domain._checks import Violations, check_version, join_path
from crm_sales.domain.money import amount_problem, currency_problem, minor_unit_digits

INT64_MAX = 2**63 - 1
MAX_LINES = 500
BASE_CURRENCY_NOT_SET = "BASE_CURRENCY_NOT_SET"
RATE_MISSING = "RATE_MISSING"
SETTINGS_SUBJECT = "currency-settings"

_DAY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_RATE = re.compile(r"^[0-9]{1,12}(\.[0-9]{1,12})?$")


def day_problem(text: str) -> str | None:
    """Why ``text`` is not a calendar day written YYYY-MM-DD, or ``None``."""
    if not _DAY.match(text):
        return "must be a date written YYYY-MM-DD"
    try:
        date.fromisoformat(text)
    except ValueError:
        return "is not a calendar day"
    return None


def required_day(text: str, field: str, violations: Violations) -> str:
    """``text`` if it is a day; a violation otherwise (and when empty)."""
    if not text:
        violations.add(field, "is required (YYYY-MM-DD)")
    elif problem := day_problem(text):
        violations.add(field, problem)
    return text


def parse_rate(text: str) -> Decimal | None:
    """The rate ``text`` names (a positive decimal, at most 12 digits either side of the
    point), or ``None`` when it is not one."""
    if not _RATE.match(text):
        return None
    rate = Decimal(text)
    return rate if rate > 0 else None


def rate_text(rate: Decimal) -> str:
    """The canonical text of a rate: plain notation, no trailing zeros ("1.0842", "110")."""
    text = format(rate.normalize(), "f")
    return text


def convert_minor(amount_minor: int, currency: str, base_currency: str, rate: Decimal) -> int:
    """``amount_minor`` of ``currency`` in minor units of ``base_currency`` at ``rate`` (base
    units per unit of currency), rounded half to even; ``OverflowError`` when it does not fit
    an int64."""
    with localcontext() as context:
        context.prec = 100  # exact for any int64 amount times a 24-digit rate
        major = Decimal(amount_minor).scaleb(-minor_unit_digits(currency))
        base_minor = (major * rate).scaleb(minor_unit_digits(base_currency))
        result = int(base_minor.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
    if abs(result) > INT64_MAX:
        raise OverflowError(f"{amount_minor} {currency} is out of range in {base_currency}")
    return result


# --- currencies -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CurrencySettings:
    """A tenant's base currency; version 0 and no currency until it is set."""

    tenant_id: str
    base_currency: str
    version: int
    update_time: datetime | None

    @classmethod
    def unset(cls, tenant_id: str) -> CurrencySettings:
        """The settings of a tenant that never set a base currency."""
        return cls(tenant_id, "", 0, None)

    def set_base(
        self, base_currency: str, expected_version: int | None, now: datetime
    ) -> CurrencySettings:
        """The next version with ``base_currency``: ``InvalidArgument``, then ``StaleVersion``.
        The same currency again is no change (the same version)."""
        violations = Violations()
        if problem := currency_problem(base_currency):
            violations.add("base_currency", problem)
        violations.raise_if_any()
        check_version(SETTINGS_SUBJECT, expected_version, self.version)
        if base_currency == self.base_currency:
            return self
        return CurrencySettings(self.tenant_id, base_currency, self.version + 1, now)

    def require_base(self) -> str:
        """The base currency, or FAILED_PRECONDITION ``BASE_CURRENCY_NOT_SET``."""
        if not self.base_currency:
            raise FailedPrecondition(
                BASE_CURRENCY_NOT_SET,
                SETTINGS_SUBJECT,
                "the tenant has no base currency: set one first (SetBaseCurrency)",
            )
        return self.base_currency


@dataclass(frozen=True, slots=True)
class ExchangeRate:
    """How many units of ``base_currency`` one unit of ``currency`` is worth from
    ``valid_from`` on (until the next rate's day)."""

    tenant_id: str
    currency: str
    base_currency: str
    rate: Decimal
    valid_from: str
    record_time: datetime

    @classmethod
    def record(
        cls,
        *,
        tenant_id: str,
        currency: str,
        base_currency: str,
        rate: str,
        valid_from: str,
        now: datetime,
    ) -> ExchangeRate:
        """A new rate; ``InvalidArgument`` listing every bad field."""
        violations = Violations()
        if problem := currency_problem(currency):
            violations.add("rate.currency", problem)
        elif currency == base_currency:
            violations.add("rate.currency", f"is the base currency ({base_currency}) itself")
        parsed = parse_rate(rate)
        if parsed is None:
            violations.add(
                "rate.rate",
                "must be a positive decimal with at most 12 digits before and after the "
                'point, e.g. "1.0842"',
            )
        required_day(valid_from, "rate.valid_from", violations)
        violations.raise_if_any()
        assert parsed is not None
        return cls(tenant_id, currency, base_currency, parsed, valid_from, now)

    @property
    def rate_text(self) -> str:
        """The rate as an exact decimal string."""
        return rate_text(self.rate)


class ConversionStatus(StrEnum):
    """Whether a record could be converted into the base currency."""

    CONVERTED = "converted"
    NO_BASE_CURRENCY = "no_base_currency"
    RATE_MISSING = "rate_missing"
    OUT_OF_RANGE = "out_of_range"


@dataclass(frozen=True, slots=True)
class BaseAmounts:
    """A record's amounts in the base currency and the rate used, or why there are none."""

    status: ConversionStatus
    base_currency: str = ""
    rate: str = ""
    rate_valid_from: str = ""
    amount_minor: int | None = None
    cost_minor: int | None = None


def base_amounts(
    currency: str,
    amount_minor: int,
    cost_minor: int,
    base_currency: str,
    rate: ExchangeRate | None,
) -> BaseAmounts:
    """``amount_minor`` and ``cost_minor`` of ``currency`` in the base currency at ``rate``
    (the rate valid on the record's date, ``None`` if there is none)."""
    if not base_currency:
        return BaseAmounts(ConversionStatus.NO_BASE_CURRENCY)
    if currency == base_currency:
        return BaseAmounts(
            ConversionStatus.CONVERTED, base_currency, "1", "", amount_minor, cost_minor
        )
    if rate is None:
        return BaseAmounts(ConversionStatus.RATE_MISSING, base_currency)
    try:
        amount = convert_minor(amount_minor, currency, base_currency, rate.rate)
        cost = convert_minor(cost_minor, currency, base_currency, rate.rate)
    except OverflowError:
        return BaseAmounts(
            ConversionStatus.OUT_OF_RANGE, base_currency, rate.rate_text, rate.valid_from
        )
    return BaseAmounts(
        ConversionStatus.CONVERTED, base_currency, rate.rate_text, rate.valid_from, amount, cost
    )


def rate_missing(currency: str, base_currency: str, day: str) -> FailedPrecondition:
    """FAILED_PRECONDITION ``RATE_MISSING`` for a conversion without a rate."""
    return FailedPrecondition(
        RATE_MISSING,
        f"exchange-rates/{currency}",
        f"no rate of {currency} into {base_currency} is valid on {day}: record one "
        "(RecordExchangeRate) valid from that day or earlier",
    )


# --- orders -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderLineInput:
    """One line as the ERP reports it."""

    sku: str = ""
    product_id: str = ""
    quantity: int = 0
    revenue_minor: int = 0
    cost_minor: int = 0


@dataclass(frozen=True, slots=True)
class OrderInput:
    """What the ERP reports of an order."""

    external_id: str = ""
    contact_id: str = ""
    account_id: str = ""
    opportunity_id: str = ""
    order_date: str = ""
    currency: str = ""
    lines: tuple[OrderLineInput, ...] = ()

    @property
    def fingerprint(self) -> str:
        """A digest of the contents: the same order reported twice has the same one."""
        return hashlib.sha256(repr(self).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class OrderLine:
    """A line of a recorded order, numbered from 1."""

    line_number: int
    sku: str
    product_id: str
    quantity: int
    revenue_minor: int
    cost_minor: int


@dataclass(frozen=True, slots=True)
class ReturnedLine:
    """What was returned of one order line (or is returned by one return)."""

    line_number: int
    quantity: int
    revenue_minor: int
    cost_minor: int


def _check_customer(contact_id: str, account_id: str, prefix: str, violations: Violations) -> None:
    if not contact_id.strip() and not account_id.strip():
        violations.add(join_path(prefix, "contact_id"), "a contact_id or an account_id is required")


def _check_amount(value: int, field: str, violations: Violations) -> None:
    if problem := amount_problem(value):
        violations.add(field, problem)


def _sum(values: Sequence[int], field: str, violations: Violations) -> int:
    total = sum(values)
    if total > INT64_MAX:
        violations.add(field, "the amounts add up to more than an int64 of minor units")
    return total


def customer_key(contact_id: str, account_id: str) -> str:
    """The Kafka key of a customer's record: the contact, else the account (organisation)."""
    return contact_id or account_id


@dataclass(frozen=True, slots=True)
class Order:
    """A recorded order, and what was returned of it so far."""

    id: str
    tenant_id: str
    external_id: str
    contact_id: str
    account_id: str
    opportunity_id: str
    order_date: str
    currency: str
    lines: tuple[OrderLine, ...]
    revenue_total_minor: int
    cost_total_minor: int
    base: BaseAmounts
    returned: tuple[ReturnedLine, ...]
    fingerprint: str
    event_key: str
    version: int
    record_time: datetime

    @classmethod
    def record(
        cls,
        *,
        id: str,
        tenant_id: str,
        fields: OrderInput,
        base_currency: str,
        rate: ExchangeRate | None,
        now: datetime,
    ) -> Order:
        """Version 1; ``InvalidArgument`` listing every bad field. ``rate`` is the rate of the
        order's currency valid on its date (``None``: none)."""
        violations = Violations()
        fields = check_order(fields, violations)
        violations.raise_if_any()
        lines = tuple(
            OrderLine(
                n,
                line.sku.strip(),
                line.product_id,
                line.quantity,
                line.revenue_minor,
                line.cost_minor,
            )
            for n, line in enumerate(fields.lines, start=1)
        )
        revenue = sum(line.revenue_minor for line in lines)
        cost = sum(line.cost_minor for line in lines)
        return cls(
            id=id,
            tenant_id=tenant_id,
            external_id=fields.external_id.strip(),
            contact_id=fields.contact_id.strip(),
            account_id=fields.account_id.strip(),
            opportunity_id=fields.opportunity_id,
            order_date=fields.order_date,
            currency=fields.currency,
            lines=lines,
            revenue_total_minor=revenue,
            cost_total_minor=cost,
            base=base_amounts(fields.currency, revenue, cost, base_currency, rate),
            returned=tuple(ReturnedLine(line.line_number, 0, 0, 0) for line in lines),
            fingerprint=fields.fingerprint,
            event_key=customer_key(fields.contact_id.strip(), fields.account_id.strip()),
            version=1,
            record_time=now,
        )

    @property
    def subject(self) -> str:
        """The aggregate's name in errors and events."""
        return f"orders/{self.id}"

    def take_return(
        self,
        *,
        id: str,
        fields: ReturnInput,
        base_currency: str,
        rate: ExchangeRate | None,
        now: datetime,
    ) -> tuple[Return, Order]:
        """The return and the order after it: ``InvalidArgument`` when a line is unknown,
        named twice, or takes back more (quantity, revenue or cost) than is left of it."""
        violations = Violations()
        if not fields.external_id.strip():
            violations.add("return.external_id", "must be non-blank")
        required_day(fields.return_date, "return.return_date", violations)
        if not day_problem(fields.return_date) and fields.return_date < self.order_date:
            violations.add("return.return_date", f"is before the order date {self.order_date}")
        if not fields.lines:
            violations.add("return.lines", "at least one line is required")
        if len(fields.lines) > MAX_LINES:
            violations.add("return.lines", f"at most {MAX_LINES} lines")
        left = {r.line_number: r for r in self.returned}
        ordered = {line.line_number: line for line in self.lines}
        seen: set[int] = set()
        for index, line in enumerate(fields.lines):
            path = f"return.lines[{index}]"
            for name in ("quantity", "revenue_minor", "cost_minor"):
                _check_amount(getattr(line, name), f"{path}.{name}", violations)
            if line.line_number not in ordered:
                violations.add(f"{path}.line_number", f"the order has no line {line.line_number}")
                continue
            if line.line_number in seen:
                violations.add(f"{path}.line_number", "names a line a second time")
                continue
            seen.add(line.line_number)
            if line.quantity == line.revenue_minor == line.cost_minor == 0:
                violations.add(path, "returns nothing (quantity and amounts are all 0)")
            origin, before = ordered[line.line_number], left[line.line_number]
            for name in ("quantity", "revenue_minor", "cost_minor"):
                remaining = getattr(origin, name) - getattr(before, name)
                value = getattr(line, name)
                if not amount_problem(value) and value > remaining:
                    violations.add(
                        f"{path}.{name}",
                        f"{value} exceeds what is left to return of line {line.line_number}: "
                        f"{remaining} (ordered {getattr(origin, name)}, returned before "
                        f"{getattr(before, name)})",
                    )
        violations.raise_if_any()
        taken = {line.line_number: line for line in fields.lines}
        returned = tuple(
            ReturnedLine(
                r.line_number,
                r.quantity + taken[r.line_number].quantity,
                r.revenue_minor + taken[r.line_number].revenue_minor,
                r.cost_minor + taken[r.line_number].cost_minor,
            )
            if r.line_number in taken
            else r
            for r in self.returned
        )
        lines = tuple(
            ReturnedLine(line.line_number, line.quantity, line.revenue_minor, line.cost_minor)
            for line in fields.lines
        )
        revenue = sum(line.revenue_minor for line in lines)
        cost = sum(line.cost_minor for line in lines)
        taken_back = Return(
            id=id,
            tenant_id=self.tenant_id,
            external_id=fields.external_id.strip(),
            order_id=self.id,
            return_date=fields.return_date,
            lines=lines,
            currency=self.currency,
            revenue_total_minor=revenue,
            cost_total_minor=cost,
            base=base_amounts(self.currency, revenue, cost, base_currency, rate),
            contact_id=self.contact_id,
            account_id=self.account_id,
            fingerprint=fields.fingerprint,
            event_key=self.event_key,
            record_time=now,
        )
        return taken_back, replace(self, returned=returned, version=self.version + 1)


def check_order(fields: OrderInput, violations: Violations) -> OrderInput:
    """The order's fields as recorded (trimmed), with a violation per bad one."""
    if not fields.external_id.strip():
        violations.add("order.external_id", "must be non-blank")
    _check_customer(fields.contact_id, fields.account_id, "order", violations)
    required_day(fields.order_date, "order.order_date", violations)
    if problem := currency_problem(fields.currency):
        violations.add("order.currency", problem)
    if not fields.lines:
        violations.add("order.lines", "at least one line is required")
    if len(fields.lines) > MAX_LINES:
        violations.add("order.lines", f"at most {MAX_LINES} lines")
    for index, line in enumerate(fields.lines):
        path = f"order.lines[{index}]"
        if not line.sku.strip():
            violations.add(f"{path}.sku", "must be non-blank")
        if isinstance(line.quantity, bool) or not isinstance(line.quantity, int):
            violations.add(f"{path}.quantity", "must be a whole number")
        elif line.quantity < 1:
            violations.add(f"{path}.quantity", "must be at least 1")
        _check_amount(line.revenue_minor, f"{path}.revenue_minor", violations)
        _check_amount(line.cost_minor, f"{path}.cost_minor", violations)
    if not violations.items:
        _sum([line.revenue_minor for line in fields.lines], "order.lines", violations)
        _sum([line.cost_minor for line in fields.lines], "order.lines", violations)
    return fields


# --- returns ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReturnLineInput:
    """How much of one order line comes back."""

    line_number: int = 0
    quantity: int = 0
    revenue_minor: int = 0
    cost_minor: int = 0


@dataclass(frozen=True, slots=True)
class ReturnInput:
    """What the ERP reports of a return."""

    external_id: str = ""
    order_id: str = ""
    return_date: str = ""
    lines: tuple[ReturnLineInput, ...] = ()

    @property
    def fingerprint(self) -> str:
        """A digest of the contents (see :attr:`OrderInput.fingerprint`)."""
        return hashlib.sha256(repr(self).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Return:
    """A recorded return or refund of an order's lines."""

    id: str
    tenant_id: str
    external_id: str
    order_id: str
    return_date: str
    lines: tuple[ReturnedLine, ...]
    currency: str
    revenue_total_minor: int
    cost_total_minor: int
    base: BaseAmounts
    contact_id: str
    account_id: str
    fingerprint: str
    event_key: str
    record_time: datetime

    @property
    def subject(self) -> str:
        """The aggregate's name in errors and events."""
        return f"returns/{self.id}"


# --- costs ------------------------------------------------------------------------------------


class CostCategory(StrEnum):
    """What a cost was spent on."""

    ACCOUNT_MANAGEMENT = "account_management"
    SERVICE = "service"
    COMPLAINTS = "complaints"
    RESTITUTION = "restitution"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class CostInput:
    """What a caller reports of a cost."""

    contact_id: str = ""
    account_id: str = ""
    category: CostCategory | None = None
    amount_minor: int = 0
    currency: str = ""
    period_start: str = ""
    period_end: str = ""
    description: str = ""


@dataclass(frozen=True, slots=True)
class Cost:
    """A recorded cost of serving a contact or an account over a period."""

    id: str
    tenant_id: str
    contact_id: str
    account_id: str
    category: CostCategory
    amount_minor: int
    currency: str
    period_start: str
    period_end: str
    description: str
    base: BaseAmounts
    event_key: str
    record_time: datetime

    @classmethod
    def record(
        cls,
        *,
        id: str,
        tenant_id: str,
        fields: CostInput,
        base_currency: str,
        rate: ExchangeRate | None,
        now: datetime,
    ) -> Cost:
        """A new cost; ``InvalidArgument`` listing every bad field. ``rate``: the rate valid on
        ``period_end``."""
        violations = Violations()
        check_cost(fields, violations)
        violations.raise_if_any()
        assert fields.category is not None
        contact, account = fields.contact_id.strip(), fields.account_id.strip()
        base = base_amounts(fields.currency, fields.amount_minor, 0, base_currency, rate)
        return cls(
            id=id,
            tenant_id=tenant_id,
            contact_id=contact,
            account_id=account,
            category=fields.category,
            amount_minor=fields.amount_minor,
            currency=fields.currency,
            period_start=fields.period_start,
            period_end=fields.period_end,
            description=fields.description.strip(),
            base=replace(base, cost_minor=0 if base.cost_minor is not None else None),
            event_key=customer_key(contact, account),
            record_time=now,
        )

    @property
    def subject(self) -> str:
        """The aggregate's name in errors and events."""
        return f"costs/{self.id}"


def check_cost(fields: CostInput, violations: Violations) -> None:
    """A violation per bad field of a cost."""
    _check_customer(fields.contact_id, fields.account_id, "cost", violations)
    if fields.category is None:
        violations.add("cost.category", "is required")
    _check_amount(fields.amount_minor, "cost.amount_minor", violations)
    if problem := currency_problem(fields.currency):
        violations.add("cost.currency", problem)
    start = required_day(fields.period_start, "cost.period_start", violations)
    end = required_day(fields.period_end, "cost.period_end", violations)
    if start and end and not day_problem(start) and not day_problem(end) and end < start:
        violations.add("cost.period_end", "is before period_start")
