"""Conversions between what people type or read and what the API carries.

* enum values as short lower-case labels (``CHANNEL_LIVE_CHAT`` ↔ ``live_chat``, with aliases
  such as ``chat``);
* instants (``2025-03-01``, ``2025-03-01T09:00:00+01:00``, ``now``, ``7d`` = seven days ago);
* durations, KPI values and timestamps for tables.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

from google.protobuf import timestamp_pb2
from google.protobuf.message import Message

if TYPE_CHECKING:
    from google.protobuf.internal.enum_type_wrapper import _EnumTypeWrapper

V = TypeVar("V", bound=int)


def _enum_prefix(wrapper: _EnumTypeWrapper[V]) -> str:
    """``CHANNEL_`` for ``Channel`` (the name of its zero value minus ``UNSPECIFIED``)."""
    zero = wrapper.DESCRIPTOR.values_by_number.get(0)
    if zero is not None and zero.name.endswith("UNSPECIFIED"):
        return zero.name[: -len("UNSPECIFIED")]
    return ""


def enum_label(wrapper: _EnumTypeWrapper[V], value: int) -> str:
    """The short label of an enum value (``live_chat``); ``""`` for the zero value."""
    if value == 0:
        return ""
    described = wrapper.DESCRIPTOR.values_by_number.get(value)
    if described is None:
        return str(value)
    prefix = _enum_prefix(wrapper)
    name = described.name
    return (name[len(prefix) :] if name.startswith(prefix) else name).lower()


def enum_choices(wrapper: _EnumTypeWrapper[V]) -> list[str]:
    """The labels of an enum's values, zero value excluded."""
    return [enum_label(wrapper, number) for number in wrapper.values() if number != 0]


def parse_enum(
    wrapper: _EnumTypeWrapper[V], text: str, aliases: Mapping[str, str] | None = None
) -> V:
    """The enum value a label names (case-insensitive, ``-`` or ``_``, full names too).

    Raises :class:`ValueError` naming the accepted labels.
    """
    label = text.strip().lower().replace("-", "_").replace(" ", "_")
    label = (aliases or {}).get(label, label)
    prefix = _enum_prefix(wrapper)
    known = wrapper.DESCRIPTOR.values_by_name
    for candidate in (prefix + label.upper(), label.upper()):
        if candidate in known and not candidate.endswith("_UNSPECIFIED"):
            return wrapper.Value(candidate)
    raise ValueError(f"{text!r} is not one of: {', '.join(enum_choices(wrapper))}")


# --- instants ------------------------------------------------------------------------------

_RELATIVE = re.compile(r"^-?(\d+(?:\.\d+)?)\s*(s|m|h|d|w)$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_instant(text: str, *, now: datetime | None = None) -> datetime:
    """An instant from an ISO 8601 date or date-time (no offset = UTC), ``now``, or an age
    such as ``90m``, ``24h``, ``7d``, ``2w`` (that long before now). Raises ValueError."""
    current = now or datetime.now(UTC)
    value = text.strip()
    if value.lower() == "now":
        return current
    relative = _RELATIVE.match(value)
    if relative:
        amount = float(relative.group(1)) * _UNIT_SECONDS[relative.group(2).lower()]
        return current - timedelta(seconds=amount)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        try:
            parsed = datetime.combine(date.fromisoformat(value), datetime.min.time())
        except ValueError:
            raise ValueError(
                f"{text!r} is not an instant: use ISO 8601 (2025-03-01, "
                "2025-03-01T09:30:00+01:00), 'now', or an age such as 24h or 7d"
            ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def to_timestamp(instant: datetime) -> timestamp_pb2.Timestamp:
    """A protobuf ``Timestamp`` of an aware datetime."""
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(instant.astimezone(UTC))
    return stamp


def has_time(message: Message, field: str) -> bool:
    """Whether a timestamp field of ``message`` is set (and not the epoch)."""
    if not message.HasField(field):
        return False
    stamp = getattr(message, field)
    return bool(stamp.seconds or stamp.nanos)


def format_time(message: Message, field: str) -> str:
    """A timestamp field as ``2025-03-01 09:30:05Z``; ``""`` when unset."""
    if not has_time(message, field):
        return ""
    stamp: timestamp_pb2.Timestamp = getattr(message, field)
    return format_instant(stamp.ToDatetime(tzinfo=UTC))


def format_instant(instant: datetime) -> str:
    """``2025-03-01 09:30:05Z``."""
    return instant.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


# --- numbers --------------------------------------------------------------------------------


def format_seconds(seconds: float | None) -> str:
    """A duration for people: ``42s``, ``12m 05s``, ``3h 04m``, ``2d 03h`` (signed)."""
    if seconds is None or math.isnan(seconds):
        return ""
    sign = "-" if seconds < 0 else ""
    left = abs(seconds)
    if left < 10:
        return f"{sign}{left:.1f}s"
    if left < 60:
        return f"{sign}{left:.0f}s"
    whole = round(left)
    if whole < 3600:
        return f"{sign}{whole // 60}m {whole % 60:02d}s"
    if whole < 86400:
        return f"{sign}{whole // 3600}h {whole % 3600 // 60:02d}m"
    return f"{sign}{whole // 86400}d {whole % 86400 // 3600:02d}h"


def format_number(value: float | None, unit: str = "") -> str:
    """A KPI number in its unit: seconds as durations, ``%`` with one decimal, counts whole."""
    if value is None or math.isnan(value):
        return "-"
    if unit == "s":
        return format_seconds(value)
    if unit == "%":
        return f"{value:.1f}%"
    if unit == "min":
        return f"{value:.0f} min"
    if unit == "1" or float(value).is_integer():
        return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"
    return f"{value:.2f}"


def kpi_name(kpi: str) -> str:
    """``frt_wall@1`` → ``frt_wall``."""
    return kpi.split("@", 1)[0]
