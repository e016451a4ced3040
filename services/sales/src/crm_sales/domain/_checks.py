"""What every sales aggregate's rules share: collecting field violations, update masks and the
optimistic-concurrency check."""

from __future__ import annotations

from collections.abc import Sequence

from crm_platform.errors import FieldViolation, InvalidArgument, StaleVersion

WILDCARD = "*"


def join_path(prefix: str, name: str) -> str:
    """``prefix.name``, or ``name`` alone for an empty prefix."""
    return f"{prefix}.{name}" if prefix else name


class Violations:
    """Every bad field of one request, reported together (not only the first)."""

    def __init__(self) -> None:
        self.items: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        """Record that ``field`` is invalid and why."""
        self.items.append(FieldViolation(field, description))

    def raise_if_any(self) -> None:
        """``InvalidArgument`` listing every violation recorded, if there is one."""
        if self.items:
            raise InvalidArgument(self.items)


def parse_update_mask(
    paths: Sequence[str],
    updatable: Sequence[str],
    violations: Violations,
    *,
    mask_field: str = "update_mask",
) -> tuple[str, ...]:
    """The top-level fields an update mask names, in ``updatable``'s order; ``*`` names all.

    An empty mask or a path outside ``updatable`` is a violation on ``mask_field``.
    """
    if not paths:
        violations.add(mask_field, "must name at least one field to update")
        return ()
    named: set[str] = set()
    for raw in paths:
        path = raw.strip()
        if path == WILDCARD:
            named.update(updatable)
        elif path in updatable:
            named.add(path)
        else:
            violations.add(mask_field, f'unknown or read-only field path "{raw}"')
    return tuple(name for name in updatable if name in named)


def check_version(subject: str, expected: int | None, actual: int) -> None:
    """``StaleVersion`` when the caller based its change on another version than ``actual``
    (``None``: the caller asked for no check)."""
    if expected is not None and expected != actual:
        raise StaleVersion(subject, expected, actual)


def required_text(value: str, field: str, violations: Violations) -> str:
    """``value`` without surrounding blanks; a violation when nothing is left."""
    text = value.strip()
    if not text:
        violations.add(field, "must be non-blank")
    return text
