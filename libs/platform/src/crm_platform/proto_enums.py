"""Domain enums ↔ protobuf enums, by name: ``StageKind.WON`` ↔ ``STAGE_KIND_WON``.

Domain code keeps its own ``StrEnum`` types (lower-case values, no gRPC import); a service's
contract module maps them to and from the wire with one :class:`ProtoEnums` table instead of a
hand-written table per enum.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import TypeVar

from google.protobuf.descriptor import EnumDescriptor, FileDescriptor

E = TypeVar("E", bound=StrEnum)


class ProtoEnums:
    """The proto enums of one ``.proto`` file for domain enums: each domain enum maps to the
    file's enum of the same name (or the one ``names`` gives), whose value names carry the
    prefix given for it."""

    def __init__(
        self,
        file: FileDescriptor,
        prefixes: Mapping[type[StrEnum], str],
        names: Mapping[type[StrEnum], str] | None = None,
    ) -> None:
        named = names or {}
        self._enums: dict[type[StrEnum], tuple[EnumDescriptor, str]] = {
            kind: (file.enum_types_by_name[named.get(kind, kind.__name__)], prefix)
            for kind, prefix in prefixes.items()
        }

    def from_pb(self, kind: type[E], value: int) -> E | None:
        """The domain member of a proto enum value; ``None`` for UNSPECIFIED (0) and for
        values this build does not know (the proto rules refuse those before a handler runs)."""
        described, prefix = self._enums[kind]
        found = described.values_by_number.get(value)
        if value == 0 or found is None:
            return None
        return kind(found.name.removeprefix(prefix).lower())

    def to_pb(self, member: StrEnum | None) -> int:
        """The proto enum value of a domain member (0 for ``None``)."""
        if member is None:
            return 0
        described, prefix = self._enums[type(member)]
        number: int = described.values_by_name[prefix + member.value.upper()].number
        return number
