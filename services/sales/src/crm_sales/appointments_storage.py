"""Work calendars, appointments and the slot claims that make booking atomic.

Collections (in the sales database):

* ``work_calendars`` — one document per rep or team calendar, ``_id`` = ``<tenant>/<rep|team>:<owner
  id>``; ``version`` guards every replace.
* ``appointments`` — one document per appointment, ``_id`` = id, always queried with
  ``tenant_id``; ``version`` guards every replace. What it holds, ``[start, end + buffer)``, is
  also stored as epoch minutes (``hold_from``, ``hold_to``), so that the busy time of reps in a
  range is one indexed query of small integer documents.
* ``appointment_claims`` — one document per 5-minute granule an appointment holds (``[start, end
  + buffer)``), ``_id`` = ``<tenant>|<rep id>|<minute since the epoch>``. The unique ``_id`` is the
  lock: two bookings (or a booking and a reschedule) that overlap insert the same ``_id`` in
  their transactions, and only one commits; the other gets a duplicate key (or a write conflict,
  retried by the driver until it sees the duplicate). No check-then-insert race is left to
  chance: the read before the insert only gives the loser of an earlier race its clear error.
  Cancelling deletes the claims; rescheduling deletes the old and inserts the new ones in one
  transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from crm_calendar import BusinessCalendar, OpeningInterval
from crm_platform.errors import NotFound
from crm_platform.mongo import Document, replace_version, tenant_page
from crm_sales.domain.appointments import (
    Appointment,
    AppointmentStatus,
    Busy,
    OwnerKind,
    WorkCalendar,
    owner_key,
)

Session = AsyncClientSession | None

_DUPLICATE_KEY = 11000
_BUSY_BATCH = 10_000
"""Holdings read in one round trip (a 62-day team search reads a few thousand small ones)."""
_MAX_PARSED = 10_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MINUTE = timedelta(minutes=1)


def _minutes(at: datetime) -> int:
    """Whole minutes since the epoch (appointments hold whole 5-minute granules)."""
    return (at - _EPOCH) // _MINUTE


_APPOINTMENT_TEXT = (
    "rep_id",
    "team_id",
    "contact_id",
    "lead_id",
    "opportunity_id",
    "customer_name",
    "customer_email",
    "customer_phone",
    "customer_time_zone",
    "subject",
    "cancel_reason",
    "event_key",
)


def _calendar_id(tenant_id: str, key: str) -> str:
    return f"{tenant_id}/{key}"


def calendar_to_document(calendar: WorkCalendar) -> Document:
    """The stored form of a work calendar."""
    business = calendar.calendar
    return {
        "_id": _calendar_id(calendar.tenant_id, calendar.key),
        "tenant_id": calendar.tenant_id,
        "owner_kind": calendar.owner_kind.value,
        "owner_id": calendar.owner_id,
        "time_zone": business.timezone,
        "working_hours": [
            {"weekday": i.weekday, "start_minute": i.start_minute, "end_minute": i.end_minute}
            for i in business.intervals
        ],
        "holidays": sorted(day.isoformat() for day in business.holidays),
        "holiday_country": business.holiday_country or "",
        "holiday_subdivision": business.holiday_subdivision or "",
        "buffer_minutes": calendar.buffer_minutes,
        "member_rep_ids": list(calendar.member_rep_ids),
        "version": calendar.version,
        "update_time": calendar.update_time,
    }


def calendar_from_document(doc: Mapping[str, Any]) -> WorkCalendar:
    """Rebuild a work calendar from its stored form."""
    kind = OwnerKind(doc["owner_kind"])
    business = BusinessCalendar(
        calendar_id=owner_key(kind, doc["owner_id"]),
        version=doc["version"],
        timezone=doc["time_zone"],
        intervals=tuple(
            OpeningInterval(i["weekday"], i["start_minute"], i["end_minute"])
            for i in doc["working_hours"]
        ),
        holidays=frozenset(date.fromisoformat(d) for d in doc["holidays"]),
        holiday_country=doc["holiday_country"] or None,
        holiday_subdivision=doc["holiday_subdivision"] or None,
    )
    return WorkCalendar(
        tenant_id=doc["tenant_id"],
        owner_kind=kind,
        owner_id=doc["owner_id"],
        calendar=business,
        buffer_minutes=doc["buffer_minutes"],
        member_rep_ids=tuple(doc["member_rep_ids"]),
        version=doc["version"],
        update_time=doc["update_time"],
    )


def appointment_to_document(appointment: Appointment) -> Document:
    """The stored form of an appointment."""
    return {
        "_id": appointment.id,
        "tenant_id": appointment.tenant_id,
        **{name: getattr(appointment, name) for name in _APPOINTMENT_TEXT},
        "start_time": appointment.start,
        "end_time": appointment.end,
        "claim_end": appointment.claim_end,
        # What it holds as minutes since the epoch: the busy-time query reads these (integers
        # decode several times faster than dates; a team search reads thousands).
        "hold_from": _minutes(appointment.start),
        "hold_to": _minutes(appointment.claim_end),
        "buffer_minutes": appointment.buffer_minutes,
        "lead_created": appointment.lead_created,
        "status": appointment.status.value,
        "sequence": appointment.sequence,
        "version": appointment.version,
        "create_time": appointment.create_time,
        "update_time": appointment.update_time,
    }


def appointment_from_document(doc: Mapping[str, Any]) -> Appointment:
    """Rebuild an appointment from its stored form."""
    return Appointment(
        id=doc["_id"],
        tenant_id=doc["tenant_id"],
        **{name: doc[name] for name in _APPOINTMENT_TEXT},
        start=doc["start_time"],
        end=doc["end_time"],
        buffer_minutes=doc["buffer_minutes"],
        lead_created=doc["lead_created"],
        status=AppointmentStatus(doc["status"]),
        sequence=doc["sequence"],
        version=doc["version"],
        create_time=doc["create_time"],
        update_time=doc["update_time"],
    )


class AppointmentStore:
    """Reads and writes of work calendars, appointments and their claims; a write takes its
    transaction's session."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.calendars: AsyncCollection[Document] = db["work_calendars"]
        self.appointments: AsyncCollection[Document] = db["appointments"]
        self.claims: AsyncCollection[Document] = db["appointment_claims"]
        # Parsed calendars by (_id, version): a version never changes once written, and a team
        # search reads every member's calendar on each call.
        self._parsed: dict[tuple[str, int], WorkCalendar] = {}

    def _calendar(self, doc: Mapping[str, Any]) -> WorkCalendar:
        key = (str(doc["_id"]), int(doc["version"]))
        found = self._parsed.get(key)
        if found is None:
            if len(self._parsed) >= _MAX_PARSED:
                self._parsed.clear()
            found = self._parsed[key] = calendar_from_document(doc)
        return found

    async def ensure_indexes(self) -> None:
        """Indexes for the busy-time query and the list filters (keyset order is ``_id``)."""
        tenant = ("tenant_id", ASCENDING)
        key = ("_id", ASCENDING)
        await self.appointments.create_index(
            [tenant, ("rep_id", ASCENDING), ("hold_from", ASCENDING)]
        )
        await self.appointments.create_index([tenant, key])
        for name in ("rep_id", "team_id", "contact_id", "status"):
            await self.appointments.create_index([tenant, (name, ASCENDING), key])

    # --- calendars ----------------------------------------------------------------------------

    async def find_calendar(
        self, tenant_id: str, kind: OwnerKind, owner_id: str, session: Session = None
    ) -> WorkCalendar | None:
        """The rep's or team's calendar, if it has one."""
        doc = await self.calendars.find_one(
            {"_id": _calendar_id(tenant_id, owner_key(kind, owner_id)), "tenant_id": tenant_id},
            session=session,
        )
        return None if doc is None else self._calendar(doc)

    async def get_calendar(
        self, tenant_id: str, kind: OwnerKind, owner_id: str, session: Session = None
    ) -> WorkCalendar:
        """The rep's or team's calendar, or ``NotFound``."""
        found = await self.find_calendar(tenant_id, kind, owner_id, session)
        if found is None:
            raise NotFound(f"{kind.value} calendar", owner_id)
        return found

    async def rep_calendars(
        self, tenant_id: str, rep_ids: Sequence[str], session: Session = None
    ) -> dict[str, WorkCalendar]:
        """The calendars the reps have (reps without one are left out)."""
        ids = [_calendar_id(tenant_id, owner_key(OwnerKind.REP, rep)) for rep in rep_ids]
        found = self.calendars.find({"_id": {"$in": ids}, "tenant_id": tenant_id}, session=session)
        return {doc["owner_id"]: self._calendar(doc) async for doc in found}

    async def save_calendar(
        self, read_version: int, calendar: WorkCalendar, session: AsyncClientSession
    ) -> None:
        """Store a new calendar (``read_version`` 0) or a calendar's next version (if it is
        still at ``read_version``; a concurrent first set is a duplicate key, rerun)."""
        doc = calendar_to_document(calendar)
        if read_version == 0:
            await self.calendars.insert_one(doc, session=session)
        else:
            await replace_version(self.calendars, "work_calendars", read_version, doc, session)

    # --- appointments -------------------------------------------------------------------------

    async def get_appointment(
        self, tenant_id: str, appointment_id: str, session: Session = None
    ) -> Appointment:
        """The appointment, or ``NotFound`` (also when it belongs to another tenant)."""
        doc = await self.appointments.find_one(
            {"_id": appointment_id, "tenant_id": tenant_id}, session=session
        )
        if doc is None:
            raise NotFound("appointment", appointment_id)
        return appointment_from_document(doc)

    async def insert_appointment(
        self, appointment: Appointment, session: AsyncClientSession
    ) -> None:
        """Store a new appointment and claim its granules (``DuplicateKeyError`` if one is
        held)."""
        await self.claim(appointment, session)
        await self.appointments.insert_one(appointment_to_document(appointment), session=session)

    async def replace_appointment(
        self, read_version: int, appointment: Appointment, session: AsyncClientSession
    ) -> None:
        """Store a changed appointment if it is still at ``read_version``."""
        await replace_version(
            self.appointments,
            "appointments",
            read_version,
            appointment_to_document(appointment),
            session,
        )

    async def busy(
        self,
        tenant_id: str,
        rep_ids: Sequence[str],
        start: datetime,
        end: datetime,
        session: Session = None,
    ) -> dict[str, list[Busy]]:
        """Per rep, what its appointments that are not cancelled hold inside ``[start, end)``."""
        found = self.appointments.find(
            {
                "tenant_id": tenant_id,
                "rep_id": {"$in": list(rep_ids)},
                "hold_from": {"$lt": _minutes(end)},
                "hold_to": {"$gt": _minutes(start)},
                "status": {"$ne": AppointmentStatus.CANCELLED.value},
            },
            {"_id": 0, "rep_id": 1, "hold_from": 1, "hold_to": 1},
            session=session,
            batch_size=_BUSY_BATCH,
        )
        held: dict[str, list[Busy]] = {rep: [] for rep in rep_ids}
        async for doc in found:
            held[doc["rep_id"]].append(
                Busy(_EPOCH + _MINUTE * doc["hold_from"], _EPOCH + _MINUTE * doc["hold_to"])
            )
        return held

    async def list_appointments(
        self, tenant_id: str, filters: Mapping[str, object], after_id: str | None, limit: int
    ) -> list[Appointment]:
        """Appointments matching every filter, in id order."""
        cursor = tenant_page(self.appointments, tenant_id, filters, after_id, limit)
        return [appointment_from_document(doc) async for doc in cursor]

    # --- claims -------------------------------------------------------------------------------

    @staticmethod
    def _claim_ids(appointment: Appointment) -> list[str]:
        prefix = f"{appointment.tenant_id}|{appointment.rep_id}|"
        return [f"{prefix}{minute}" for minute in appointment.granules()]

    async def is_free(self, appointment: Appointment, session: AsyncClientSession) -> bool:
        """Whether no granule ``appointment`` would hold is held (as this transaction sees)."""
        held = await self.claims.find_one(
            {"_id": {"$in": self._claim_ids(appointment)}}, {"_id": 1}, session=session
        )
        return held is None

    async def claim(self, appointment: Appointment, session: AsyncClientSession) -> None:
        """Hold the appointment's granules; ``DuplicateKeyError`` if another appointment holds
        one of them (the transaction is then aborted: nothing is written)."""
        docs = [
            {"_id": ident, "tenant_id": appointment.tenant_id, "appointment_id": appointment.id}
            for ident in self._claim_ids(appointment)
        ]
        try:
            await self.claims.insert_many(docs, ordered=True, session=session)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if errors and all(e.get("code") == _DUPLICATE_KEY for e in errors):
                raise DuplicateKeyError(
                    "a granule of the slot is held", _DUPLICATE_KEY, errors[0]
                ) from exc
            raise

    async def release(self, appointment: Appointment, session: AsyncClientSession) -> None:
        """Free the granules the appointment holds."""
        await self.claims.delete_many(
            {"_id": {"$in": self._claim_ids(appointment)}, "appointment_id": appointment.id},
            session=session,
        )
