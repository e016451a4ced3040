"""Consent per purpose and channel: an append-only history of entries, the current state derived.

The current state of a (purpose, channel) pair is its latest entry, ordered by the time the
contact gave it, then by when it was recorded, then by id (so equal times still have one
answer). An entry older than the latest is kept in the history but changes nothing: a late
import of an old grant must not undo a newer withdrawal.

The flags of ``Contact.consent`` are the current state of four pairs (:data:`FLAG_PAIRS`); a
pair's own ``ANY`` channel is a separate state and does not override the others (an
unsubscribe from everything is recorded per channel by the caller).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from crm_contacts.domain.contact import ConsentInput
from crm_platform.errors import FieldViolation, InvalidArgument


class ConsentPurpose(StrEnum):
    """What a consent is for."""

    MARKETING = "MARKETING"
    DATA_PROCESSING = "DATA_PROCESSING"
    PROFILING = "PROFILING"


class ConsentChannel(StrEnum):
    """The channel a consent covers; ``ANY`` is not tied to one."""

    EMAIL = "EMAIL"
    SMS = "SMS"
    PHONE = "PHONE"
    POST = "POST"
    ANY = "ANY"


class ConsentStatus(StrEnum):
    """Given or taken back."""

    GRANTED = "GRANTED"
    WITHDRAWN = "WITHDRAWN"


Pair = tuple[ConsentPurpose, ConsentChannel]

FLAG_PAIRS: Mapping[str, Pair] = {
    "email_marketing": (ConsentPurpose.MARKETING, ConsentChannel.EMAIL),
    "sms_marketing": (ConsentPurpose.MARKETING, ConsentChannel.SMS),
    "phone_marketing": (ConsentPurpose.MARKETING, ConsentChannel.PHONE),
    "data_processing": (ConsentPurpose.DATA_PROCESSING, ConsentChannel.ANY),
}
"""The ``Contact.consent`` flag that mirrors each pair's current state."""

FLAG_OF_PAIR: Mapping[Pair, str] = {pair: flag for flag, pair in FLAG_PAIRS.items()}

API_SOURCE = "api"
"""The source of the entries an UpdateContact/CreateContact of the consent flags appends."""

MAX_SOURCE_LENGTH = 64
_SOURCE = re.compile(r"[a-z0-9][a-z0-9._-]*")


@dataclass(frozen=True, slots=True)
class ConsentEntry:
    """One recorded grant or withdrawal (never changed once recorded)."""

    id: str
    tenant_id: str
    contact_id: str
    purpose: ConsentPurpose
    channel: ConsentChannel
    status: ConsentStatus
    time: datetime
    source: str
    record_time: datetime

    @property
    def pair(self) -> Pair:
        """The (purpose, channel) whose state this entry sets."""
        return (self.purpose, self.channel)

    def order_key(self) -> tuple[datetime, datetime, str]:
        """Later keys win: the contact's time, then the recording time, then the id."""
        return (self.time, self.record_time, self.id)

    def supersedes(self, latest: ConsentEntry | None) -> bool:
        """Whether this entry is the pair's state once recorded after ``latest``."""
        return latest is None or self.order_key() > latest.order_key()


def new_entry(
    *,
    id: str,
    tenant_id: str,
    contact_id: str,
    purpose: ConsentPurpose | None,
    channel: ConsentChannel | None,
    status: ConsentStatus | None,
    time: datetime | None,
    source: str,
    now: datetime,
    field_prefix: str = "entry",
) -> ConsentEntry:
    """A validated entry recorded at ``now``; ``time`` defaults to ``now`` and must not be
    later. Raises ``InvalidArgument`` listing every bad field."""
    violations: list[FieldViolation] = []
    if purpose is None:
        violations.append(FieldViolation(f"{field_prefix}.purpose", "is required"))
    if channel is None:
        violations.append(FieldViolation(f"{field_prefix}.channel", "is required"))
    if status is None:
        violations.append(FieldViolation(f"{field_prefix}.status", "is required"))
    if not source or len(source) > MAX_SOURCE_LENGTH or not _SOURCE.fullmatch(source):
        violations.append(
            FieldViolation(
                f"{field_prefix}.source", "must be 1-64 characters of a-z, 0-9, '.', '_', '-'"
            )
        )
    if time is not None and time > now:
        violations.append(FieldViolation(f"{field_prefix}.time", "must not be in the future"))
    if violations:
        raise InvalidArgument(violations)
    # The violations above rule out None; the checks tell the type checker.
    assert purpose is not None
    assert channel is not None
    assert status is not None
    return ConsentEntry(
        id=id,
        tenant_id=tenant_id,
        contact_id=contact_id,
        purpose=purpose,
        channel=channel,
        status=status,
        time=now if time is None else time,
        source=source,
        record_time=now,
    )


def current_states(entries: Iterable[ConsentEntry]) -> dict[Pair, ConsentEntry]:
    """The latest entry of every pair with any entry (independent of the order given)."""
    states: dict[Pair, ConsentEntry] = {}
    for entry in entries:
        if entry.supersedes(states.get(entry.pair)):
            states[entry.pair] = entry
    return states


def flag_change(entry: ConsentEntry, flags: ConsentInput) -> tuple[str, bool] | None:
    """The ``Contact.consent`` flag (name, new value) that recording ``entry`` as current
    changes, or ``None`` when its pair has no flag or the flag already has that value."""
    flag = FLAG_OF_PAIR.get(entry.pair)
    if flag is None:
        return None
    value = entry.status is ConsentStatus.GRANTED
    if getattr(flags, flag) == value:
        return None
    return flag, value


def changed_flags(before: ConsentInput, after: ConsentInput) -> dict[str, bool]:
    """The flags whose value differs between ``before`` and ``after``, with the new value."""
    return {
        flag: getattr(after, flag)
        for flag in FLAG_PAIRS
        if getattr(before, flag) != getattr(after, flag)
    }
