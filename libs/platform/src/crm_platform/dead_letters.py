"""Dead letters: where a consumer puts the records it can never process, and when it stops instead.

A poison record (not a valid event, or one whose effect can never be applied) is published
unchanged to ``<topic>.dlq`` with the reason in its headers, so consumption goes on past it. More
than ``DeadLetterPolicy.max_dead_letters`` within its window means something is wrong with the
consumer rather than the records (a bad deploy): :class:`DeadLetterLimitExceededError` stops it
before it dead-letters everything, and the failing record's offset is not committed, so a fixed
deploy resumes there. The consumer that uses them: :mod:`crm_platform.checkpointed`.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer, ConsumerRecord
from opentelemetry import metrics

log = logging.getLogger(__name__)
meter = metrics.get_meter(__name__)
_dead_lettered = meter.create_counter("crm.consumer.dead_lettered", unit="{event}")

DLQ_SUFFIX = ".dlq"


@dataclass(frozen=True, slots=True)
class DeadLetterPolicy:
    """Where poison records go, and when to stop rather than dead-letter more."""

    max_dead_letters: int = 100
    window_seconds: float = 60.0
    topic_suffix: str = DLQ_SUFFIX


class DeadLetterLimitExceededError(RuntimeError):
    """Too many records were dead-lettered in the window: the consumer stops."""


class DeadLetterQueue:
    """Sends poison records to ``<topic>.dlq``, and stops the consumer past the policy's limit."""

    def __init__(self, producer: AIOKafkaProducer, policy: DeadLetterPolicy, group_id: str) -> None:
        self.producer = producer
        self.policy = policy
        self.group_id = group_id
        self._times: deque[float] = deque()

    async def send(self, record: ConsumerRecord[bytes, bytes], reason: str, error: str) -> None:
        """Publish the record unchanged with the reason in headers; raises
        :class:`DeadLetterLimitExceededError` (without sending) past the limit."""
        now = time.monotonic()
        window = self._times
        window.append(now)
        while window and window[0] < now - self.policy.window_seconds:
            window.popleft()
        if len(window) > self.policy.max_dead_letters:
            raise DeadLetterLimitExceededError(
                f"more than {self.policy.max_dead_letters} dead letters in "
                f"{self.policy.window_seconds:.0f}s; stopping at {record.topic}"
                f"[{record.partition}]@{record.offset}: {reason}: {error}"
            )
        headers = [
            *record.headers,
            ("dlq_reason", reason.encode()),
            ("dlq_error", error[:2000].encode()),
            ("dlq_topic", record.topic.encode()),
            ("dlq_partition", str(record.partition).encode()),
            ("dlq_offset", str(record.offset).encode()),
            ("dlq_group", self.group_id.encode()),
        ]
        await self.producer.send_and_wait(
            record.topic + self.policy.topic_suffix,
            value=record.value,
            key=record.key,
            headers=headers,
        )
        _dead_lettered.add(1, {"topic": record.topic, "reason": reason})
        log.error(
            "dead-lettered %s[%d]@%d: %s: %s",
            record.topic,
            record.partition,
            record.offset,
            reason,
            error,
        )
