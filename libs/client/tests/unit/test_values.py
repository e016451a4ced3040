"""Labels, instants and numbers of the ``crm`` command."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from crm.contacts.v1 import contacts_pb2
from crm.servicedesk.v1 import servicedesk_pb2 as sd
from crm_client.values import (
    enum_choices,
    enum_label,
    format_number,
    format_seconds,
    parse_enum,
    parse_instant,
)

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def test_enum_labels_round_trip() -> None:
    for label in enum_choices(sd.Channel):
        assert enum_label(sd.Channel, parse_enum(sd.Channel, label)) == label
    assert enum_label(sd.Channel, sd.CHANNEL_LIVE_CHAT) == "live_chat"
    assert enum_label(sd.Channel, 0) == ""
    assert enum_label(sd.Channel, 99) == "99"
    assert "unspecified" not in enum_choices(sd.Channel)


def test_parse_enum_accepts_case_dashes_full_names_and_aliases() -> None:
    assert parse_enum(sd.TicketStatus, "Pending-Customer") == sd.TICKET_STATUS_PENDING_CUSTOMER
    assert parse_enum(sd.TicketStatus, "TICKET_STATUS_ON_HOLD") == sd.TICKET_STATUS_ON_HOLD
    assert parse_enum(sd.Channel, "chat", {"chat": "live_chat"}) == sd.CHANNEL_LIVE_CHAT
    assert parse_enum(contacts_pb2.ValueTier, "gold") == contacts_pb2.VALUE_TIER_GOLD


@pytest.mark.parametrize("text", ["unspecified", "fax", ""])
def test_parse_enum_refuses_unknown_and_unspecified(text: str) -> None:
    with pytest.raises(ValueError, match="is not one of: phone, email"):
        parse_enum(sd.Channel, text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW),
        ("7d", NOW - timedelta(days=7)),
        ("-24h", NOW - timedelta(hours=24)),
        ("90m", NOW - timedelta(minutes=90)),
        ("2w", NOW - timedelta(weeks=2)),
        ("2026-03-01", datetime(2026, 3, 1, tzinfo=UTC)),
        ("2026-03-01T09:30:00", datetime(2026, 3, 1, 9, 30, tzinfo=UTC)),
        ("2026-03-01T09:30:00Z", datetime(2026, 3, 1, 9, 30, tzinfo=UTC)),
        (
            "2026-03-01T09:30:00+01:00",
            datetime(2026, 3, 1, 9, 30, tzinfo=timezone(timedelta(hours=1))),
        ),
    ],
)
def test_parse_instant(text: str, expected: datetime) -> None:
    assert parse_instant(text, now=NOW) == expected


def test_parse_instant_refuses_prose() -> None:
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_instant("last tuesday", now=NOW)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (4.25, "4.2s"),
        (42, "42s"),
        (725, "12m 05s"),
        (3725, "1h 02m"),
        (-5400, "-1h 30m"),
        (183600, "2d 03h"),
        (None, ""),
    ],
)
def test_format_seconds(seconds: float | None, text: str) -> None:
    assert format_seconds(seconds) == text


def test_format_number_by_unit() -> None:
    assert format_number(None, "s") == "-"
    assert format_number(87.46, "%") == "87.5%"
    assert format_number(1234.0, "1") == "1,234"
    assert format_number(32.0, "score") == "32"
    assert format_number(4.333, "score") == "4.33"
    assert format_number(12, "min") == "12 min"
    assert format_number(3725, "s") == "1h 02m"
