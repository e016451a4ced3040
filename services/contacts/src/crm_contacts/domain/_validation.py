"""Rules shared by the contacts aggregates: collecting violations, text fields, custom attributes.

Every check appends to a :class:`Violations` collector instead of raising, so one request reports
all of its problems at once (``InvalidArgument`` carries the whole list).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping

from crm_platform.errors import FieldViolation, InvalidArgument

MAX_CUSTOM_ATTRIBUTES = 100
MAX_CUSTOM_ATTRIBUTE_VALUE_LENGTH = 1024
MAX_ID_LENGTH = 64
CUSTOM_ATTRIBUTE_KEY = re.compile(r"[a-z][a-z0-9_]{0,63}")

# Field-path segments that are plain identifiers need no quoting (AIP-161); anything else is
# wrapped in backticks so a violation's path stays unambiguous.
_PLAIN_PATH_SEGMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class InvalidValueError(ValueError):
    """A single value (email, phone, handle, domain) cannot be normalised; says why, not where.

    The value-level normalisers raise it; the aggregates turn it into a ``FieldViolation`` with
    the path of the field that held the value.
    """

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class Violations:
    """Collects the field violations of one request; raise them all together at the end."""

    def __init__(self) -> None:
        self._items: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        """Record that ``field`` is invalid because of ``description``."""
        self._items.append(FieldViolation(field, description))

    def absorb(self, error: InvalidArgument) -> None:
        """Take over the violations of an ``InvalidArgument`` raised by a nested rule."""
        self._items.extend(error.violations)

    def __bool__(self) -> bool:
        return bool(self._items)

    def __iter__(self) -> Iterator[FieldViolation]:
        return iter(self._items)

    def raise_if_any(self) -> None:
        """Raise ``InvalidArgument`` with every collected violation, if there is at least one."""
        if self._items:
            raise InvalidArgument(self._items)


def join_path(prefix: str, name: str) -> str:
    """``join_path("contact", "given_name") == "contact.given_name"``; the prefix may be empty."""
    return f"{prefix}.{name}" if prefix else name


def map_key_path(prefix: str, map_field: str, key: str) -> str:
    """Path of one entry of a map field, quoting keys that are not identifiers (AIP-161)."""
    segment = key if _PLAIN_PATH_SEGMENT.fullmatch(key) else f"`{key.replace('`', '``')}`"
    return join_path(join_path(prefix, map_field), segment)


def has_control_characters(value: str) -> bool:
    """True when ``value`` holds a control/format character (Unicode categories Cc, Cf)."""
    return any(unicodedata.category(ch) in ("Cc", "Cf") for ch in value)


def clean_text(
    violations: Violations, field: str, value: str, *, max_length: int, required: bool = False
) -> str:
    """Trim ``value`` and check its length (in code points) and that it has no control characters.

    Returns the trimmed text even when it is invalid, so callers can keep validating.
    """
    text = value.strip()
    if required and not text:
        violations.add(field, "is required")
    if len(text) > max_length:
        violations.add(field, f"must be at most {max_length} characters, got {len(text)}")
    if has_control_characters(text):
        violations.add(field, "must not contain control characters")
    return text


def clean_reference(violations: Violations, field: str, value: str) -> str:
    """Trim and check an id referring to another resource (owner, organisation); empty = none."""
    text = value.strip()
    if len(text) > MAX_ID_LENGTH:
        violations.add(field, f"must be at most {MAX_ID_LENGTH} characters, got {len(text)}")
    if any(ch.isspace() for ch in text) or has_control_characters(text):
        violations.add(field, "must not contain whitespace or control characters")
    return text


def custom_attribute_key_problem(key: str) -> str | None:
    """Why ``key`` cannot be a custom attribute key, or ``None`` when it can."""
    if CUSTOM_ATTRIBUTE_KEY.fullmatch(key):
        return None
    return (
        "key must start with a lowercase letter and contain only lowercase letters, digits "
        "and underscores, at most 64 characters"
    )


def custom_attribute_value_problem(value: str) -> str | None:
    """Why ``value`` cannot be a custom attribute value, or ``None`` when it can."""
    if len(value) > MAX_CUSTOM_ATTRIBUTE_VALUE_LENGTH:
        return (
            f"value must be at most {MAX_CUSTOM_ATTRIBUTE_VALUE_LENGTH} characters, "
            f"got {len(value)}"
        )
    return None


def clean_custom_attributes(
    violations: Violations, prefix: str, attributes: Mapping[str, str]
) -> dict[str, str]:
    """Check a whole custom-attribute map; values are kept verbatim (no trimming: they are data)."""
    field = join_path(prefix, "custom_attributes")
    if len(attributes) > MAX_CUSTOM_ATTRIBUTES:
        # Over the limit we report only the count: per-entry violations of a huge map would
        # not fit in an error response, and the caller must shrink the map anyway.
        violations.add(
            field, f"must have at most {MAX_CUSTOM_ATTRIBUTES} entries, got {len(attributes)}"
        )
        return dict(attributes)
    for key, value in attributes.items():
        entry = map_key_path(prefix, "custom_attributes", key)
        for problem in (custom_attribute_key_problem(key), custom_attribute_value_problem(value)):
            if problem is not None:
                violations.add(entry, problem)
    return dict(attributes)


def edit_custom_attributes(
    violations: Violations,
    prefix: str,
    current: Mapping[str, str],
    supplied: Mapping[str, str],
    keys: Iterable[str],
) -> dict[str, str]:
    """Apply ``custom_attributes.<key>`` mask paths: set each key from ``supplied``, or drop it
    when ``supplied`` lacks it; the other entries stay. Checks the values and the final size.
    """
    attributes = dict(current)
    edited = False
    for key in keys:
        edited = True
        if key not in supplied:
            attributes.pop(key, None)
            continue
        problem = custom_attribute_value_problem(supplied[key])
        if problem is not None:
            violations.add(map_key_path(prefix, "custom_attributes", key), problem)
        attributes[key] = supplied[key]
    if edited and len(attributes) > MAX_CUSTOM_ATTRIBUTES:
        violations.add(
            join_path(prefix, "custom_attributes"),
            f"would have {len(attributes)} entries, at most {MAX_CUSTOM_ATTRIBUTES} allowed",
        )
    return attributes
