"""The real contacts process under load: SIGTERM loses no accepted write and no event."""

from __future__ import annotations

import asyncio
import signal
import uuid
from typing import Any

import grpc
from aiokafka import AIOKafkaConsumer

from crm.contacts.v1 import contacts_pb2 as pb
from crm.contacts.v1 import contacts_pb2_grpc
from crm_contacts.settings import TOPIC
from crm_testing.contacts import metadata


async def test_sigterm_under_load_keeps_every_accepted_create_and_publishes_its_event(
    infra: Any,
) -> None:
    service = await infra.start_service(
        "contacts",
        env={
            "MONGODB_DATABASE": f"test_shutdown_{uuid.uuid4().hex[:8]}",
            "SHUTDOWN_DELAY_SECONDS": "0.5",
            "SHUTDOWN_GRACE_SECONDS": "10",
        },
    )
    accepted: list[str] = []
    refused: list[grpc.StatusCode] = []
    async with grpc.aio.insecure_channel(service.address) as channel:
        stub = contacts_pb2_grpc.ContactsServiceStub(channel)

        async def writer(n: int) -> None:
            for i in range(1_000):
                try:
                    reply = await stub.CreateContact(
                        pb.CreateContactRequest(contact=pb.Contact(given_name=f"W{n}-{i}")),
                        metadata=metadata(),
                        timeout=10,
                    )
                except grpc.aio.AioRpcError as error:
                    refused.append(error.code())
                    return
                accepted.append(reply.contact.id)

        writers = [asyncio.create_task(writer(n)) for n in range(8)]
        await asyncio.sleep(1.0)
        service.send_signal(signal.SIGTERM)
        await asyncio.gather(*writers)
    assert await service.wait_exit(30) == 0
    assert accepted
    # This client ignores health and keeps sending: calls arriving as the listener closes are
    # refused (UNAVAILABLE) or, in the instant of closing, CANCELLED. Both are retryable (with a
    # request_id, without duplicates); nothing fails as INTERNAL or UNKNOWN.
    assert set(refused) <= {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}, refused

    # Every accepted create's event reached Kafka before the process exited.
    wanted = {contact_id.encode() for contact_id in accepted}
    consumer = AIOKafkaConsumer(
        TOPIC, bootstrap_servers=infra.kafka_bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        async with asyncio.timeout(30):
            while wanted:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    wanted -= {record.key for record in records}
    finally:
        await consumer.stop()
    assert not wanted
