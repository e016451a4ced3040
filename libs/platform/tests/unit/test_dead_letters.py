"""Dead letters: the record unchanged on ``<topic>.dlq`` with its reason, and a stop limit."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka import ConsumerRecord

from crm_platform.dead_letters import (
    DeadLetterLimitExceededError,
    DeadLetterPolicy,
    DeadLetterQueue,
)


class _Producer:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send_and_wait(self, topic: str, **record: Any) -> None:
        self.sent.append({"topic": topic, **record})


def _record(offset: int) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic="crm.servicedesk.v1",
        partition=2,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=b"c1",
        value=b"not an event",
        checksum=None,
        serialized_key_size=2,
        serialized_value_size=12,
        headers=[("ce_id", b"e1")],
    )


async def test_a_dead_letter_is_the_record_unchanged_with_its_reason_in_headers() -> None:
    producer = _Producer()
    queue = DeadLetterQueue(producer, DeadLetterPolicy(), "metrics")
    await queue.send(_record(7), "malformed", "no ce_type")
    (sent,) = producer.sent
    assert (sent["topic"], sent["key"], sent["value"]) == (
        "crm.servicedesk.v1.dlq",
        b"c1",
        b"not an event",
    )
    headers = dict(sent["headers"])
    assert headers["ce_id"] == b"e1"
    assert (headers["dlq_reason"], headers["dlq_error"]) == (b"malformed", b"no ce_type")
    assert (headers["dlq_partition"], headers["dlq_offset"]) == (b"2", b"7")
    assert headers["dlq_group"] == b"metrics"


async def test_past_the_limit_nothing_more_is_dead_lettered_and_the_consumer_is_told_to_stop() -> (
    None
):
    producer = _Producer()
    policy = DeadLetterPolicy(max_dead_letters=2, window_seconds=60)
    queue = DeadLetterQueue(producer, policy, "metrics")
    await queue.send(_record(1), "malformed", "x")
    await queue.send(_record(2), "malformed", "x")
    with pytest.raises(DeadLetterLimitExceededError, match="more than 2 dead letters"):
        await queue.send(_record(3), "malformed", "x")
    assert [dict(s["headers"])["dlq_offset"] for s in producer.sent] == [b"1", b"2"]
