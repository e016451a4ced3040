"""Replay: rebuild a namespace's state from the topics under chosen definition versions.

    python -m crm_metrics replay --namespace frt-v2 --definitions frt_wall@2,frt_business@2
    python -m crm_metrics replay --namespace since-nov --from 2026-11-01T00:00:00Z

The replay consumes with a consumer group of its own, from the start of the topics (or from
the first offsets at or after ``--from``), and writes into its own namespace, so the live
service keeps running and both namespaces can be queried side by side (``namespace`` in
``GetKpis``). It stops once it has caught up with the end offsets the topics had when it
started (``--follow`` keeps it running). Running it again resumes from its checkpoints.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime

from aiokafka import TopicPartition

from crm_metrics.bootstrap import build_consumer, register_namespace
from crm_metrics.calendars import CalendarHub
from crm_metrics.checkpoint import LIVE, CalendarPoller, ensure_indexes
from crm_metrics.settings import MetricsSettings
from crm_platform.checkpointed import CheckpointedConsumer, end_offsets
from crm_platform.mongo import MongoStore
from crm_platform.settings import load_settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """What a replay did."""

    namespace: str
    records: int
    seconds: float

    @property
    def rate(self) -> float:
        """Records per second."""
        return self.records / self.seconds if self.seconds else 0.0


def caught_up(consumer: CheckpointedConsumer, targets: dict[TopicPartition, int]) -> bool:
    """Whether every partition's checkpoint has reached its target offset."""
    for tp, target in targets.items():
        if target == 0:
            continue
        state = consumer.states.get(tp)
        if state is None or state.pending:
            return False
        engine = getattr(state, "engine", None)
        if engine is None or engine.next_offset < target:
            return False
    return True


async def replay(
    settings: MetricsSettings, *, start_time: datetime | None = None, follow: bool = False
) -> ReplayReport:
    """Run the replay until caught up (or forever with ``follow``)."""
    if settings.namespace == LIVE:
        raise ValueError("a replay needs a namespace of its own, not 'live'")
    mongo = MongoStore(settings.mongodb_uri, settings.database_name, app_name="crm-metrics-replay")
    try:
        await ensure_indexes(mongo)
        await register_namespace(mongo, settings)
        targets = await end_offsets(settings.kafka_bootstrap_servers, settings.topics)
        hub = CalendarHub()
        consumer = build_consumer(mongo, settings, hub)
        poller = CalendarPoller(mongo, hub, settings.calendar_poll_seconds)
        consumer.start_time = start_time
        consumer.checkpoint_interval = max(settings.checkpoint_interval_seconds, 2.0)
        started = time.monotonic()
        consumer.start()
        poller.start()
        # Progress lives in the consumer's partition states; look at it five times a second.
        while consumer.running:
            if not follow and caught_up(consumer, targets):
                break
            await asyncio.sleep(0.2)
        await consumer.stop()
        await poller.stop()
        return ReplayReport(settings.namespace, consumer.records, time.monotonic() - started)
    finally:
        await mongo.close()


def main(argv: list[str]) -> int:
    """The ``replay`` command."""
    parser = argparse.ArgumentParser(prog="python -m crm_metrics replay", description=__doc__)
    parser.add_argument("--namespace", required=True, help="where to write (not 'live')")
    parser.add_argument("--definitions", default="", help="e.g. frt_wall@2,frt_business@2")
    parser.add_argument("--from", dest="start", help="ISO time to start from (default: start)")
    parser.add_argument("--follow", action="store_true", help="keep consuming after catching up")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    settings = load_settings(
        MetricsSettings, namespace=args.namespace, definitions=args.definitions
    )
    start = datetime.fromisoformat(args.start) if args.start else None
    report = asyncio.run(replay(settings, start_time=start, follow=args.follow))
    print(
        f"replayed {report.records} events into namespace {report.namespace!r} in "
        f"{report.seconds:.1f} s ({report.rate:,.0f} events/s)"
    )
    return 0
