"""A sent quote expires through the platform's durable timer when its valid_until passes, on the
service's clock: the sales service runs on an accelerated clock (``CRM_CLOCK_*``, as the dev
stack's simulated company runs it), so hours of validity pass in wall seconds without a sleep."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from crm.sales.v1 import events_pb2
from crm.sales.v1 import sales_pb2 as pb
from crm_platform.clock import CLOCK_VARS, Clock, accelerated_env
from crm_platform.timers import TimerState
from crm_sales.use_cases.quotes import expiry_timer_id
from crm_testing.sales import (
    TENANT,
    create_opportunity,
    create_pipeline,
    create_product,
    events_for,
    metadata,
    quote_request,
    running_sales,
)

pytestmark = pytest.mark.integration

RATE = 3600.0  # one simulated hour per wall second


def _stamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


async def test_a_sent_quote_expires_when_its_timer_fires_and_an_accepted_one_does_not(
    infra: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = accelerated_env(datetime.now(UTC) - timedelta(days=2), RATE)
    clock = Clock.from_env(env)  # the services' clock, read here without the environment
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    async with running_sales(infra, "sales_expiry") as sales:
        for name in CLOCK_VARS:
            monkeypatch.delenv(name)
        pipeline = await create_pipeline(sales)
        opportunity = await create_opportunity(sales, pipeline.id)
        product = await create_product(sales)
        line = [pb.QuoteLine(product_id=product.id, quantity=1)]
        until = _stamp(clock.now() + timedelta(hours=2))
        expiring = (
            await sales.stub.CreateQuote(
                quote_request(opportunity.id, line, until=until), metadata=metadata()
            )
        ).quote
        kept = (
            await sales.stub.CreateQuote(
                quote_request(opportunity.id, line, until=until), metadata=metadata()
            )
        ).quote
        sent_wall = time.time()
        sent = (
            await sales.stub.SendQuote(pb.SendQuoteRequest(id=expiring.id), metadata=metadata())
        ).quote
        await sales.stub.SendQuote(pb.SendQuoteRequest(id=kept.id), metadata=metadata())
        await sales.stub.AcceptQuote(pb.AcceptQuoteRequest(id=kept.id), metadata=metadata())
        # Stamped in simulated time, two days back.
        assert abs(sent.send_time.ToDatetime(tzinfo=UTC) - clock.now()) < timedelta(hours=1)

        # Created x2, sent x2, accepted, expired (the reader's bound, not a wait for the timer).
        events = await events_for(infra.kafka_bootstrap, opportunity.primary_contact_id, 7)
        seen_wall = time.time()
        status_events = [e for e in events if e.type == "crm.sales.v1.QuoteStatusChanged"]
        changes = [events_pb2.QuoteStatusChanged.FromString(e.payload) for e in status_events]
        assert [(c.quote.id, c.quote.status) for c in changes] == [
            (expiring.id, pb.QUOTE_STATUS_SENT),
            (kept.id, pb.QUOTE_STATUS_SENT),
            (kept.id, pb.QUOTE_STATUS_ACCEPTED),
            (expiring.id, pb.QUOTE_STATUS_EXPIRED),
        ]
        assert str(status_events[-1].actor) == "system:timers"
        assert changes[-1].previous_status == pb.QUOTE_STATUS_SENT
        expired = changes[-1].quote
        valid = until.ToDatetime(tzinfo=UTC)
        # Never early, and stamped on the simulated clock (the wall clock is two days on). How
        # late a timer fires on a busy machine is not this test's figure: the bound only
        # excludes the wrong clock.
        assert valid <= expired.close_time.ToDatetime(tzinfo=UTC) < valid + timedelta(hours=12)
        assert seen_wall - sent_wall >= 1.5  # two simulated hours are two wall seconds

        stored = (
            await sales.stub.GetQuote(pb.GetQuoteRequest(id=kept.id), metadata=metadata())
        ).quote
        assert stored.status == pb.QUOTE_STATUS_ACCEPTED
        timers = sales.service.parts.extra["timers"].timers
        fired = await timers.get(TENANT, expiry_timer_id(expiring.id))
        cancelled = await timers.get(TENANT, expiry_timer_id(kept.id))
        assert (fired.state, cancelled.state) == (TimerState.FIRED, TimerState.CANCELLED)
