"""A contribution: one observation a ticket, survey or mention adds to one KPI aggregate."""

from __future__ import annotations

from dataclasses import dataclass

Dims = tuple[tuple[str, str], ...]
"""Dimension values of a contribution, sorted by dimension name; empty values are left out."""


@dataclass(frozen=True, slots=True)
class Contribution:
    """``value`` observed for the aggregate ``kpi`` at event time ``at`` (epoch seconds).

    The meaning of ``value`` follows the KPI's :class:`~crm_metrics.domain.catalog.Kind`: an
    observation (distribution), 1.0/0.0 (rate: numerator or not), an amount (count), an integer
    score, a polarity (sentiment), +1/-1 (level). Contributions are added with sign +1 and
    retracted with sign -1 when the entity they came from changes.
    """

    kpi: str
    at: int
    dims: Dims
    value: float

    @property
    def hour(self) -> int:
        """The hour bucket: whole hours since the epoch (UTC)."""
        return self.at // 3600


def make_dims(values: dict[str, str]) -> Dims:
    """Sorted, non-empty dimension values."""
    return tuple(sorted((k, v) for k, v in values.items() if v))
