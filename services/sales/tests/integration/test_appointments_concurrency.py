"""Of concurrent bookings of one slot (or of overlapping slots) exactly one wins; the others are
FAILED_PRECONDITION SLOT_TAKEN and write nothing: no appointment, no lead, no claim, no event."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, timedelta
from typing import TYPE_CHECKING

import grpc
import pytest

from crm.sales.v1 import appointments_pb2 as apb
from crm.sales.v1 import appointments_pb2_grpc
from crm_testing.appointments import (
    appointment_stub,
    booking,
    local,
    monday_ahead,
    set_calendar,
    stamp,
)
from crm_testing.sales import SalesUnderTest, metadata, precondition_types, unique_id

if TYPE_CHECKING:
    Stub = appointments_pb2_grpc.AppointmentServiceAsyncStub

RACERS = 8


@pytest.fixture(scope="module")
async def stub(sales: SalesUnderTest) -> AsyncIterator[Stub]:
    async with appointment_stub(sales) as opened:
        yield opened


async def _race(stub: Stub, requests: list[apb.BookAppointmentRequest]) -> list[object]:
    return list(
        await asyncio.gather(
            *(stub.BookAppointment(r, metadata=metadata()) for r in requests),
            return_exceptions=True,
        )
    )


def _split(outcomes: list[object]) -> tuple[list[apb.BookAppointmentResponse], list[str]]:
    won = [o for o in outcomes if isinstance(o, apb.BookAppointmentResponse)]
    lost: list[str] = []
    for outcome in outcomes:
        if isinstance(outcome, grpc.aio.AioRpcError):
            assert outcome.code() == grpc.StatusCode.FAILED_PRECONDITION, outcome.details()
            assert precondition_types(outcome) == {"SLOT_TAKEN"}
            assert "not free" in (outcome.details() or "")
            lost.append(outcome.code().name)
        elif not isinstance(outcome, apb.BookAppointmentResponse):
            raise AssertionError(outcome)
    return won, lost


async def _written(sales: SalesUnderTest, rep: str, emails: list[str]) -> tuple[int, int, int]:
    db = sales.mongo.db
    return (
        await db["appointments"].count_documents({"rep_id": rep}),
        await db["leads"].count_documents({"email": {"$in": emails}}),
        await db["appointment_claims"].count_documents({"_id": {"$regex": f"\\|{rep}\\|"}}),
    )


async def test_of_concurrent_bookings_of_one_slot_exactly_one_wins(
    sales: SalesUnderTest, stub: Stub
) -> None:
    rep = (await set_calendar(stub, buffer_minutes=10)).owner_id
    start = local(monday_ahead(), 11)
    emails = [f"{unique_id('racer')}@example.com" for _ in range(RACERS)]
    requests = [booking(rep, start, 30, email=email) for email in emails]
    won, lost = _split(await _race(stub, requests))
    assert len(won) == 1
    assert len(lost) == RACERS - 1
    # One appointment, one lead (the winner's), and the claims of 30 minutes + 10 of buffer.
    assert await _written(sales, rep, emails) == (1, 1, 8)
    assert won[0].created_lead.email in emails


async def test_of_concurrent_overlapping_bookings_exactly_one_wins(
    sales: SalesUnderTest, stub: Stub
) -> None:
    rep = (await set_calendar(stub)).owner_id
    base = local(monday_ahead(), 13)
    emails = [f"{unique_id('overlap')}@example.com" for _ in range(RACERS)]
    # Starts 13:00, 13:05, ... 13:35, each an hour long: every pair overlaps.
    requests = [
        booking(rep, base + timedelta(minutes=5 * i), 60, email=email)
        for i, email in enumerate(emails)
    ]
    won, lost = _split(await _race(stub, requests))
    assert len(won) == 1
    assert len(lost) == RACERS - 1
    assert await _written(sales, rep, emails) == (1, 1, 12)


async def test_a_reschedule_and_bookings_racing_for_one_slot_one_wins(
    sales: SalesUnderTest, stub: Stub
) -> None:
    rep = (await set_calendar(stub)).owner_id
    monday = monday_ahead()
    moving = await stub.BookAppointment(booking(rep, local(monday, 9)), metadata=metadata())
    target = local(monday, 15)
    emails = [f"{unique_id('race')}@example.com" for _ in range(RACERS - 1)]
    reschedule = stub.RescheduleAppointment(
        apb.RescheduleAppointmentRequest(
            id=moving.appointment.id,
            start_time=stamp(target),
            end_time=stamp(target + timedelta(minutes=30)),
        ),
        metadata=metadata(),
    )
    bookings = [
        stub.BookAppointment(booking(rep, target, email=e), metadata=metadata()) for e in emails
    ]
    outcomes = await asyncio.gather(reschedule, *bookings, return_exceptions=True)
    winners = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(winners) == 1, outcomes
    for outcome in outcomes:
        if isinstance(outcome, grpc.aio.AioRpcError):
            assert precondition_types(outcome) == {"SLOT_TAKEN"}
    moved = (
        await stub.GetAppointment(
            apb.GetAppointmentRequest(id=moving.appointment.id), metadata=metadata()
        )
    ).appointment
    rescheduled = isinstance(winners[0], apb.RescheduleAppointmentResponse)
    assert moved.start_time.ToDatetime(tzinfo=UTC) == (target if rescheduled else local(monday, 9))
    assert moved.version == (2 if rescheduled else 1)
    # The moved appointment holds its one slot; a winning booking holds 15:00; nothing else.
    expected = (1, 0, 6) if rescheduled else (2, 1, 12)
    assert await _written(sales, rep, emails) == expected
