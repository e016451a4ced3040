"""Consent in its protobuf form (``crm.contacts.v1.consent``): enum mappings and domain →
protobuf, shared by the API (:mod:`crm_contacts.api.consent`) and the events
(:mod:`crm_contacts.consent_events`)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, TypeVar

from crm.contacts.v1 import consent_pb2 as pb
from crm_contacts.contract import timestamp
from crm_contacts.domain.consent import (
    ConsentChannel,
    ConsentEntry,
    ConsentPurpose,
    ConsentStatus,
)

E = TypeVar("E", bound=StrEnum)

_PB_ENUM: dict[type[StrEnum], tuple[Any, str]] = {
    ConsentPurpose: (pb.ConsentPurpose, "CONSENT_PURPOSE_"),
    ConsentChannel: (pb.ConsentChannel, "CONSENT_CHANNEL_"),
    ConsentStatus: (pb.ConsentStatus, "CONSENT_STATUS_"),
}


def enum_from_pb(domain_type: type[E], value: int) -> E | None:
    """The domain member for a protobuf enum number; ``None`` for UNSPECIFIED or unknown."""
    enum, prefix = _PB_ENUM[domain_type]
    if value == 0 or value not in enum.values():
        return None
    name: str = enum.Name(value)
    return domain_type(name.removeprefix(prefix))


def enum_to_pb(member: StrEnum) -> int:
    """The protobuf enum number of a domain member."""
    enum, prefix = _PB_ENUM[type(member)]
    return int(enum.Value(prefix + member.value))


def entry_to_pb(entry: ConsentEntry) -> pb.ConsentEntry:
    """The API form of a history entry."""
    return pb.ConsentEntry(
        id=entry.id,
        contact_id=entry.contact_id,
        purpose=enum_to_pb(entry.purpose),  # type: ignore[arg-type]
        channel=enum_to_pb(entry.channel),  # type: ignore[arg-type]
        status=enum_to_pb(entry.status),  # type: ignore[arg-type]
        time=timestamp(entry.time),
        source=entry.source,
        record_time=timestamp(entry.record_time),
    )


def state_to_pb(entry: ConsentEntry) -> pb.ConsentState:
    """The current state of the entry's purpose and channel (``entry`` being its latest)."""
    return pb.ConsentState(
        purpose=enum_to_pb(entry.purpose),  # type: ignore[arg-type]
        channel=enum_to_pb(entry.channel),  # type: ignore[arg-type]
        status=enum_to_pb(entry.status),  # type: ignore[arg-type]
        time=timestamp(entry.time),
        source=entry.source,
        entry_id=entry.id,
    )
