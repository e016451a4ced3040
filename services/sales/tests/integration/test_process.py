"""The real sales process, as the local stack starts it (crm_devstack.services): it serves,
and on SIGTERM it exits cleanly after publishing what it accepted."""

from __future__ import annotations

import signal
import uuid
from typing import Any

import grpc

from crm.sales.v1 import sales_pb2 as pb
from crm.sales.v1 import sales_pb2_grpc
from crm_testing.sales import events_for, metadata, stages, unique_id


async def test_the_stack_runs_sales_as_a_process_that_publishes_before_it_exits(
    infra: Any,
) -> None:
    service = await infra.start_service(
        "sales",
        env={
            "MONGODB_DATABASE": f"test_sales_process_{uuid.uuid4().hex[:8]}",
            "SHUTDOWN_DELAY_SECONDS": "0",
            "SHUTDOWN_GRACE_SECONDS": "5",
        },
    )
    contact = unique_id("contact")
    async with grpc.aio.insecure_channel(service.address) as channel:
        stub = sales_pb2_grpc.SalesServiceStub(channel)
        pipeline = (
            await stub.CreatePipeline(
                pb.CreatePipelineRequest(pipeline=pb.Pipeline(name="P", stages=stages())),
                metadata=metadata(),
                timeout=10,
            )
        ).pipeline
        opportunity = (
            await stub.CreateOpportunity(
                pb.CreateOpportunityRequest(
                    opportunity=pb.Opportunity(
                        name="Deal",
                        primary_contact_id=contact,
                        amount_minor=5_000,
                        currency="CHF",
                        pipeline_id=pipeline.id,
                    )
                ),
                metadata=metadata(),
                timeout=10,
            )
        ).opportunity
        await stub.LoseOpportunity(
            pb.LoseOpportunityRequest(id=opportunity.id, reason="went with a competitor"),
            metadata=metadata(),
            timeout=10,
        )
    service.send_signal(signal.SIGTERM)
    assert await service.wait_exit(30) == 0
    events = await events_for(infra.kafka_bootstrap, contact, 2)
    assert [e.type for e in events] == [
        "crm.sales.v1.OpportunityCreated",
        "crm.sales.v1.OpportunityLost",
    ]
