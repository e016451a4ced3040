"""The event envelope: CloudEvents attributes in Kafka headers, the protobuf payload as the value.

This is CloudEvents' Kafka *binary* mode: ``ce_id``, ``ce_source``, ``ce_type`` (the payload's full
protobuf message name), ``ce_time`` (when the fact occurred, RFC 3339 UTC), ``ce_subject`` (the
aggregate, e.g. ``contacts/c_123``) and the extensions ``ce_tenantid`` and ``ce_actor``. The Kafka
key is the customer (contact) id, so one customer's events stay in order on one partition of every
topic (co-partitioning). W3C trace context travels in the ``traceparent``/``tracestate`` headers,
written by the aiokafka instrumentation when the relay publishes.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from google.protobuf import descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message

from crm_platform import clock
from crm_platform.context import Actor, CallContext

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/protobuf"

Headers = Sequence[tuple[str, bytes]]


class MalformedEvent(ValueError):
    """A Kafka record that is not a valid event of ours (poison message)."""


def _format_time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Event:
    """One domain event, ready to be stored in the outbox and published."""

    id: str
    type: str
    source: str
    subject: str
    time: datetime
    tenant_id: str
    actor: Actor
    key: str
    payload: bytes
    extensions: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        message: Message,
        *,
        source: str,
        subject: str,
        key: str,
        call: CallContext,
        time: datetime | None = None,
    ) -> Event:
        """Wrap a protobuf payload; ``key`` is the customer id the event is about; ``time``
        defaults to now on the process clock (:mod:`crm_platform.clock`)."""
        return cls(
            id=str(uuid.uuid4()),
            type=message.DESCRIPTOR.full_name,
            source=source,
            subject=subject,
            time=time or clock.now(),
            tenant_id=call.tenant_id,
            actor=call.actor,
            key=key,
            payload=message.SerializeToString(deterministic=True),
        )

    def kafka_headers(self) -> list[tuple[str, bytes]]:
        """CloudEvents binary-mode headers for this event."""
        headers = [
            ("ce_specversion", SPEC_VERSION),
            ("ce_id", self.id),
            ("ce_source", self.source),
            ("ce_type", self.type),
            ("ce_time", _format_time(self.time)),
            ("ce_subject", self.subject),
            ("ce_tenantid", self.tenant_id),
            ("ce_actor", str(self.actor)),
            ("content-type", CONTENT_TYPE),
        ]
        headers.extend((f"ce_{name}", value) for name, value in sorted(self.extensions.items()))
        return [(name, value.encode()) for name, value in headers]

    @classmethod
    def from_kafka(cls, key: bytes | None, value: bytes | None, headers: Headers) -> Event:
        """Rebuild an event from a Kafka record; raises :class:`MalformedEvent` if it is not one."""
        if value is None:
            raise MalformedEvent("no value (a tombstone is not an event)")
        attrs: dict[str, str] = {}
        for name, raw in headers:
            if name.startswith("ce_"):
                if raw is None:
                    raise MalformedEvent(f"header {name} has no value")
                try:
                    attrs[name[3:]] = raw.decode()
                except UnicodeDecodeError as exc:
                    raise MalformedEvent(f"header {name} is not UTF-8") from exc
        required = ("id", "source", "type", "time", "subject", "tenantid", "actor")
        missing = [name for name in required if not attrs.get(name)]
        if missing:
            raise MalformedEvent(f"missing CloudEvents attributes: {', '.join(missing)}")
        if attrs.get("specversion") != SPEC_VERSION:
            raise MalformedEvent(f"unsupported specversion {attrs.get('specversion')!r}")
        try:
            time = _parse_time(attrs["time"])
            actor = Actor.parse(attrs["actor"])
        except ValueError as exc:
            raise MalformedEvent(f"bad attribute: {exc}") from exc
        known = {*required, "specversion"}
        return cls(
            id=attrs["id"],
            type=attrs["type"],
            source=attrs["source"],
            subject=attrs["subject"],
            time=time,
            tenant_id=attrs["tenantid"],
            actor=actor,
            key=key.decode(errors="replace") if key else "",
            payload=value,
            extensions={k: v for k, v in attrs.items() if k not in known},
        )

    def decode(self) -> Message:
        """Parse the payload into its protobuf class (its module must have been imported)."""
        try:
            descriptor = descriptor_pool.Default().FindMessageTypeByName(self.type)
        except KeyError as exc:
            raise MalformedEvent(f"unknown event type {self.type!r}") from exc
        message: Message = message_factory.GetMessageClass(descriptor)()
        try:
            message.ParseFromString(self.payload)
        except DecodeError as exc:
            raise MalformedEvent(f"payload is not a valid {self.type}: {exc}") from exc
        return message
