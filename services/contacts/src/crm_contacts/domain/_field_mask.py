"""Update masks (AIP-134/161): which fields of a resource an update request replaces.

Paths use the API's snake_case names: a top-level field (``given_name``), a sub-field of a
message field (``consent.email_marketing``), one entry of a map field
(``custom_attributes.vip_since``, or ``custom_attributes.`odd key``` quoted with backticks), or
``*`` for every updatable field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from crm_contacts.domain._validation import Violations, custom_attribute_key_problem

WILDCARD = "*"


@dataclass(frozen=True, slots=True)
class MaskPath:
    """One normalised mask path: a top-level field and, optionally, a sub-field or map key."""

    field: str
    sub: str | None = None

    def __str__(self) -> str:
        return self.field if self.sub is None else f"{self.field}.{self.sub}"


@dataclass(frozen=True, slots=True)
class MaskSpec:
    """What a resource's update mask may name."""

    updatable: tuple[str, ...]
    output_only: frozenset[str]
    sub_fields: Mapping[str, frozenset[str]] = field(default_factory=dict)
    map_fields: frozenset[str] = frozenset()


def _unquote(segment: str) -> str:
    if len(segment) >= 2 and segment.startswith("`") and segment.endswith("`"):
        return segment[1:-1].replace("``", "`")
    return segment


def parse_update_mask(
    paths: Sequence[str], spec: MaskSpec, violations: Violations, *, mask_field: str
) -> list[MaskPath]:
    """Check ``paths`` against ``spec`` and return them normalised, without redundant entries.

    Every bad path becomes a violation on ``mask_field`` (all of them, not only the first).
    A path covered by a broader one (``consent.sms_marketing`` under ``consent``) is dropped.
    """
    if not paths:
        violations.add(mask_field, "must name at least one field to update")
        return []
    parsed: list[MaskPath] = []
    for raw in paths:
        path = raw.strip()
        if path == WILDCARD:
            parsed.extend(MaskPath(name) for name in spec.updatable)
            continue
        top, dot, rest = path.partition(".")
        if path in spec.output_only or top in spec.output_only:
            violations.add(mask_field, f'"{raw}" is output only and cannot be updated')
        elif top not in spec.updatable:
            violations.add(mask_field, f'unknown field path "{raw}"')
        elif not dot:
            parsed.append(MaskPath(top))
        elif top in spec.map_fields:
            key = _unquote(rest)
            problem = custom_attribute_key_problem(key)
            if problem is None:
                parsed.append(MaskPath(top, key))
            else:
                violations.add(mask_field, f'"{raw}": {problem}')
        elif rest in spec.sub_fields.get(top, frozenset()):
            parsed.append(MaskPath(top, rest))
        else:
            violations.add(mask_field, f'unknown field path "{raw}"')
    whole = {p.field for p in parsed if p.sub is None}
    unique: list[MaskPath] = []
    for p in parsed:
        if p not in unique and (p.sub is None or p.field not in whole):
            unique.append(p)
    return unique
