"""Ordered, versioned rules whose decisions name the rule and version that made them.

What the service desk's routing rules and the sales territories share, so that "which rule
decided this?" has one answer everywhere:

* **Order.** A tenant's rules carry a ``position``; :func:`in_order` runs the enabled ones in
  ``(position, rule_id)`` order whatever order they were stored in, and :func:`first_match`
  returns the first of those whose condition holds.
* **Versions.** A rule starts at version 1; :func:`revise` gives the next version of a changed
  rule (the same rule, version untouched, when nothing changed) and refuses a change based on
  another version than the current one (``StaleVersion``: FAILED_PRECONDITION ``STALE_VERSION``).
* **Decisions.** A :class:`Decision` is what one rule decided, with the rule id and the rule
  version, so the decision can be audited against the exact rule text that made it.
* **Validation.** The field checks of rule definitions (ids, names, value lists, enum values,
  positions), each appending :class:`~crm_platform.errors.FieldViolation` objects to a list so
  a request's every problem is reported together.
* **Documents.** :func:`to_document` / :func:`from_document`: a flat dataclass (a condition, an
  action) as plain data for a database document, sets as sorted lists, defaults left out.

Pure code: no clock, no I/O. The rule types themselves (their conditions and what they decide)
stay with the service that owns them.
"""

from __future__ import annotations

import dataclasses
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, Protocol, TypeVar

from crm_platform.errors import FieldViolation, StaleVersion

MAX_ID_LENGTH = 64
MAX_NAME_LENGTH = 200
MAX_VALUE_LENGTH = 64
MAX_VALUES_PER_FIELD = 50
MAX_POSITION = 2**31 - 1  # an int32 in the APIs


class OrderedRule(Protocol):
    """What ordering and evaluation need to know of a rule."""

    @property
    def rule_id(self) -> str: ...

    @property
    def version(self) -> int: ...

    @property
    def position(self) -> int: ...

    @property
    def enabled(self) -> bool: ...


class VersionedRule(OrderedRule, Protocol):
    """A rule :func:`revise` can give the next version of (a frozen dataclass)."""

    @property
    def update_time(self) -> datetime: ...


R = TypeVar("R", bound=OrderedRule)
V = TypeVar("V", bound=VersionedRule)
A = TypeVar("A")


@dataclass(frozen=True)  # no slots: a slotted generic dataclass cannot be built through its alias
class Decision(Generic[A]):
    """What one rule decided (``action``), with the rule's id and version for the audit trail."""

    rule_id: str
    rule_version: int
    action: A

    @classmethod
    def by(cls, rule: OrderedRule, action: A) -> Decision[A]:
        """The decision ``rule`` (at its current version) makes with ``action``."""
        return cls(rule.rule_id, rule.version, action)


def in_order(rules: Iterable[R], applies: Callable[[R], bool] | None = None) -> list[R]:
    """The enabled rules (for which ``applies`` holds, if given) in evaluation order:
    ``(position, rule_id)``, whatever the order of ``rules``."""
    return sorted(
        (rule for rule in rules if rule.enabled and (applies is None or applies(rule))),
        key=lambda rule: (rule.position, rule.rule_id),
    )


def first_match(
    rules: Iterable[R],
    matches: Callable[[R], bool],
    applies: Callable[[R], bool] | None = None,
) -> R | None:
    """The first rule in :func:`in_order` order whose condition ``matches``, or ``None``."""
    return next((rule for rule in in_order(rules, applies) if matches(rule)), None)


def check_version(subject: str, expected_version: int | None, actual: int) -> None:
    """``StaleVersion`` when a change was based on another version than ``actual``
    (``None``: the caller asked for no check)."""
    if expected_version is not None and expected_version != actual:
        raise StaleVersion(subject, expected_version, actual)


def revise(
    current: V, candidate: V, *, now: datetime, expected_version: int | None, subject: str
) -> V:
    """The next version of ``current`` with ``candidate``'s fields (already validated, at
    ``current``'s version and times): ``StaleVersion`` when ``expected_version`` is given and
    is not the current version; ``current`` itself when nothing changes; else ``candidate`` at
    version + 1, updated at ``now``. So a ``(rule_id, version)`` names exactly one rule text."""
    check_version(subject, expected_version, current.version)
    if candidate == current:
        return current
    return dataclasses.replace(  # type: ignore[type-var]
        candidate, version=current.version + 1, update_time=now
    )


# --- validation -----------------------------------------------------------------------------


def path(prefix: str, name: str) -> str:
    """``prefix.name``, or ``name`` alone for an empty prefix."""
    return f"{prefix}.{name}" if prefix else name


def has_control_characters(value: str) -> bool:
    """Whether ``value`` has control or format characters (never in ids, names or values)."""
    return any(unicodedata.category(ch) in ("Cc", "Cf") for ch in value)


def clean_id(
    violations: list[FieldViolation],
    field: str,
    value: str,
    *,
    required: bool,
    max_length: int = MAX_ID_LENGTH,
) -> str:
    """``value`` trimmed; a violation when it is missing (if ``required``), too long, or has
    whitespace or control characters inside."""
    text = value.strip()
    if required and not text:
        violations.append(FieldViolation(field, "is required"))
    elif len(text) > max_length:
        violations.append(
            FieldViolation(field, f"must be at most {max_length} characters, got {len(text)}")
        )
    if any(ch.isspace() for ch in text) or has_control_characters(text):
        violations.append(
            FieldViolation(field, "must not contain whitespace or control characters")
        )
    return text


def clean_text(
    violations: list[FieldViolation], field: str, value: str, *, max_length: int, required: bool
) -> str:
    """``value`` trimmed; a violation when it is missing (if ``required``), too long, or has
    control characters."""
    text = value.strip()
    if required and not text:
        violations.append(FieldViolation(field, "is required"))
    if len(text) > max_length:
        violations.append(
            FieldViolation(field, f"must be at most {max_length} characters, got {len(text)}")
        )
    if has_control_characters(text):
        violations.append(FieldViolation(field, "must not contain control characters"))
    return text


def clean_values(
    violations: list[FieldViolation],
    field: str,
    values: Iterable[str],
    *,
    max_length: int = MAX_VALUE_LENGTH,
    max_values: int = MAX_VALUES_PER_FIELD,
    normalise: Callable[[str], str] | None = None,
) -> frozenset[str]:
    """Every value of a set-valued field trimmed (then ``normalise``-d, if given); a violation
    for too many values and for each empty, long or control-character value."""
    items = list(values)
    if len(items) > max_values:
        violations.append(
            FieldViolation(field, f"must have at most {max_values} values, got {len(items)}")
        )
        return frozenset(items)
    cleaned: set[str] = set()
    for item in items:
        text = item.strip()
        if not text:
            violations.append(FieldViolation(field, "must not contain empty values"))
        elif len(text) > max_length:
            violations.append(
                FieldViolation(field, f"values must be at most {max_length} characters: {text!r}")
            )
        elif has_control_characters(text):
            violations.append(
                FieldViolation(field, f"values must not contain control characters: {text!r}")
            )
        cleaned.add(normalise(text) if normalise is not None else text)
    return frozenset(cleaned)


E = TypeVar("E", bound=StrEnum)


def clean_enum_values(
    violations: list[FieldViolation], field: str, values: Iterable[str], enum: type[E]
) -> frozenset[E]:
    """The values as members of ``enum``; a violation for each unknown one."""
    cleaned: set[E] = set()
    for value in values:
        try:
            cleaned.add(enum(value))
        except ValueError:
            violations.append(FieldViolation(field, f"unknown value {value!r}"))
    return frozenset(cleaned)


def clean_enum(
    violations: list[FieldViolation], field: str, value: str | None, enum: type[E]
) -> E | None:
    """``value`` as a member of ``enum``; a violation when it is missing or unknown."""
    if value is None:
        violations.append(FieldViolation(field, "is required"))
        return None
    try:
        return enum(value)
    except ValueError:
        violations.append(FieldViolation(field, f"unknown value {value!r}"))
        return None


def check_position(violations: list[FieldViolation], field: str, position: int) -> None:
    """A violation unless ``position`` is between 0 and :data:`MAX_POSITION`."""
    if not 0 <= position <= MAX_POSITION:
        violations.append(FieldViolation(field, f"must be between 0 and {MAX_POSITION}"))


# --- documents ------------------------------------------------------------------------------

D = TypeVar("D")


def to_document(item: Any) -> dict[str, Any]:
    """A flat dataclass as plain data: enums as their values, sets as sorted lists, fields at
    ``None``, ``""`` or an empty set left out (they read back as their defaults)."""
    data = dataclasses.asdict(item)
    return {
        key: (sorted(value) if isinstance(value, frozenset | set) else value)
        for key, value in data.items()
        if value not in (None, "", frozenset(), set())
    }


def from_document(
    kind: type[D],
    data: Mapping[str, Any],
    *,
    enums: Mapping[str, type[StrEnum]] | None = None,
    sets: Iterable[str] = (),
    enum_sets: Mapping[str, type[StrEnum]] | None = None,
) -> D:
    """A flat dataclass from :func:`to_document`'s form: the fields named in ``enums`` as
    members of their enum, those in ``sets`` as frozensets, those in ``enum_sets`` as
    frozensets of enum members."""
    values = dict(data)
    for name, enum in (enums or {}).items():
        if name in values:
            values[name] = enum(values[name])
    for name in sets:
        if name in values:
            values[name] = frozenset(values[name])
    for name, enum in (enum_sets or {}).items():
        if name in values:
            values[name] = frozenset(enum(value) for value in values[name])
    return kind(**values)
