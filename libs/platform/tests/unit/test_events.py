"""The event envelope: CloudEvents headers round-trip and poison detection."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from google.protobuf import wrappers_pb2

from crm_platform.context import Actor, ActorType, CallContext
from crm_platform.events import Event, MalformedEvent

CALL = CallContext("acme", Actor(ActorType.AGENT, "alice"))


def _event() -> Event:
    return Event.of(
        wrappers_pb2.StringValue(value="hello"),
        source="/crm/test",
        subject="things/t1",
        key="c1",
        call=CALL,
        time=datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
    )


def test_envelope_round_trips_through_kafka_headers() -> None:
    event = _event()
    back = Event.from_kafka(b"c1", event.payload, event.kafka_headers())
    assert back == event
    assert back.decode() == wrappers_pb2.StringValue(value="hello")


def test_headers_follow_cloudevents_binary_mode() -> None:
    headers = dict(_event().kafka_headers())
    assert headers["ce_specversion"] == b"1.0"
    assert headers["ce_type"] == b"google.protobuf.StringValue"
    assert headers["ce_time"] == b"2026-01-02T03:04:05.123456Z"
    assert headers["ce_tenantid"] == b"acme"
    assert headers["ce_actor"] == b"agent:alice"
    assert headers["content-type"] == b"application/protobuf"


def test_record_without_cloudevents_headers_is_malformed() -> None:
    with pytest.raises(MalformedEvent, match="missing CloudEvents attributes"):
        Event.from_kafka(b"k", b"v", [])


def test_unknown_event_type_is_malformed() -> None:
    headers = [(k, v) for k, v in _event().kafka_headers() if k != "ce_type"]
    headers.append(("ce_type", b"crm.nothing.v1.Nope"))
    with pytest.raises(MalformedEvent, match="unknown event type"):
        Event.from_kafka(b"k", b"", headers).decode()


def test_undecodable_payload_is_malformed() -> None:
    event = _event()
    with pytest.raises(MalformedEvent, match="not a valid"):
        Event.from_kafka(b"c1", b"\xff\xff\xff", event.kafka_headers()).decode()


def test_tombstone_and_null_headers_are_malformed_not_crashes() -> None:
    event = _event()
    with pytest.raises(MalformedEvent, match="no value"):
        Event.from_kafka(b"c1", None, event.kafka_headers())
    headers: list[tuple[str, bytes | None]] = [*event.kafka_headers(), ("ce_extra", None)]
    with pytest.raises(MalformedEvent, match="has no value"):
        Event.from_kafka(b"c1", event.payload, headers)  # type: ignore[arg-type]
