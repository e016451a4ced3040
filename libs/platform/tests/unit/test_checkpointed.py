"""When the checkpointed consumer writes a partition's state: often when live, in bigger
batches while behind (a replay, a backlog), so more changes to the same state coalesce."""

from __future__ import annotations

import asyncio
import time

from aiokafka import TopicPartition

from crm_platform.checkpointed import CheckpointedConsumer, _Rebalance
from crm_platform.events import Event


class _State:
    """A partition state that only counts pending changes and checkpoints."""

    def __init__(self, pending: int) -> None:
        self._pending = pending
        self.checkpoints = 0

    async def load(self) -> int | None:
        return None

    def process(self, event: Event, offset: int) -> None:
        self._pending += 1

    def skip(self, offset: int) -> None:
        self._pending += 1

    @property
    def pending(self) -> int:
        return self._pending

    async def checkpoint(self) -> int:
        self.checkpoints += 1
        self._pending = 0
        return 0

    def close(self) -> None:
        pass


def _consumer(**kwargs: float) -> CheckpointedConsumer:
    return CheckpointedConsumer(
        lambda tp: _State(0),
        topics=["t"],
        group_id="g",
        bootstrap_servers="127.0.0.1:1",
        checkpoint_interval=kwargs.get("interval", 0.2),
        catch_up_interval=kwargs.get("catch_up", 10.0),
        max_pending=200,
        catch_up_pending=5_000,
    )


async def _due(consumer: CheckpointedConsumer, pending: int, age: float, behind: bool) -> int:
    tp = TopicPartition("t", 0)
    state = _State(pending)
    consumer.states[tp] = state
    consumer._last_checkpoint[tp] = time.monotonic() - age
    consumer._behind = behind
    await consumer._checkpoint_due()
    return state.checkpoints


async def test_live_partitions_checkpoint_after_the_interval_or_200_changes() -> None:
    consumer = _consumer()
    assert await _due(consumer, 10, 0.0, behind=False) == 0
    assert await _due(consumer, 10, 0.3, behind=False) == 1
    assert await _due(consumer, 200, 0.0, behind=False) == 1
    assert await _due(consumer, 0, 60.0, behind=False) == 0  # nothing to write


async def test_partitions_behind_checkpoint_in_bigger_batches() -> None:
    consumer = _consumer()
    assert await _due(consumer, 4_999, 5.0, behind=True) == 0
    assert await _due(consumer, 5_000, 0.0, behind=True) == 1
    assert await _due(consumer, 10, 10.5, behind=True) == 1


def test_the_catch_up_settings_never_undercut_the_live_ones() -> None:
    consumer = _consumer(interval=30.0, catch_up=1.0)
    assert consumer.catch_up_interval == 30.0
    assert consumer.catch_up_pending >= consumer.max_pending


class _HeldState(_State):
    """A partition state whose first checkpoint waits until released (a slow transaction),
    recording whether two of its checkpoints ever ran at the same time."""

    def __init__(self, pending: int) -> None:
        super().__init__(pending)
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.running = 0
        self.overlapped = False
        self.closed = False

    async def checkpoint(self) -> int:
        self.running += 1
        self.overlapped |= self.running > 1
        first = not self.entered.is_set()
        self.entered.set()
        try:
            if first:
                await self.release.wait()
            return await super().checkpoint()
        finally:
            self.running -= 1

    def close(self) -> None:
        self.closed = True


async def test_a_revocation_waits_for_the_checkpoint_in_flight() -> None:
    """aiokafka calls the rebalance listener from its coordinator task, concurrently with the
    consumer's loop: revoking a partition whose checkpoint is in flight must wait for it, not
    checkpoint the same state a second time at once (whichever commits second loses the fence,
    and if that is the loop's, what it had flushed is gone while the offset moved on)."""
    consumer = _consumer()
    tp = TopicPartition("t", 0)
    state = _HeldState(10)
    consumer.states[tp] = state
    consumer._last_checkpoint[tp] = 0.0  # due
    loop_checkpoint = asyncio.create_task(consumer._checkpoint_due())
    await state.entered.wait()
    revoke = asyncio.create_task(_Rebalance(consumer).on_partitions_revoked([tp]))
    for _ in range(10):  # let the listener go as far as it can without the loop's checkpoint
        await asyncio.sleep(0)
    overlapped = state.overlapped
    state.release.set()
    await asyncio.gather(loop_checkpoint, revoke)
    assert not overlapped
    assert not state.overlapped
    assert consumer._failure is None
    assert state.checkpoints == 2  # the loop's, then the revocation's
    assert state.closed
    assert tp not in consumer.states
