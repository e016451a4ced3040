"""Appointment use cases: work calendars, the free-slot search, booking (which may create a
lead), confirm, reschedule, cancel, and the reads."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

from crm_platform.clock import Clock
from crm_platform.context import CallContext
from crm_platform.errors import FailedPrecondition, InvalidArgument
from crm_platform.events import Event
from crm_platform.idempotency import IdempotentRequest
from crm_platform.paging import PageQuery
from crm_platform.unit_of_work import Retries, Transaction, UnitOfWork
from crm_sales import appointments_events as events
from crm_sales import events as sales_events
from crm_sales.appointments_storage import AppointmentStore, Session
from crm_sales.domain.appointments import (
    NO_FREE_MEMBER,
    Appointment,
    BookingInput,
    OwnerKind,
    Slot,
    SlotQuery,
    SlotTaken,
    WorkCalendar,
    WorkCalendarInput,
    free_slots,
    group_members,
    open_spans,
    outside_calendar,
    team_free_slots,
)
from crm_sales.domain.lead import Lead, LeadInput, LeadSource
from crm_sales.storage import SalesStore
from crm_sales.use_cases._common import after_id, new_id, now_ms, publish_on_key

OPERATION = "appointment"
"""The idempotency records' operation for bookings."""

BOOKING_RETRIES = Retries(duplicate_keys=3)
"""A duplicate key in a booking is a held granule (another booking of the slot committed
first) or a concurrent retry of the same request: the rerun sees the winner's writes and answers
SLOT_TAKEN (or, for a team, takes the next free member), or the first result."""

CALENDAR_RETRIES = Retries(duplicate_keys=1)
"""Two first sets of one calendar: the rerun replaces the winner's version."""

_SPAN_MARGIN = timedelta(days=1)
"""Open spans are read a day beyond the range, so that slots align to the real opening time."""


class ContactCheck(Protocol):
    """Whether the tenant has a contact (the contacts service)."""

    async def require_contact(self, contact_id: str) -> None:
        """Nothing if the tenant has the contact; ``NotFound`` otherwise."""
        ...


@dataclass(frozen=True, slots=True)
class Booking:
    """A booking's outcome: the appointment, and the lead it created, if any."""

    appointment: Appointment
    created_lead: Lead | None


@dataclass(frozen=True, slots=True)
class _Owner:
    """Who a search or booking is for: per rep the calendars it must be inside, the buffer."""

    team_id: str
    reps: list[tuple[str, list[tuple[str, WorkCalendar]]]]
    buffer: timedelta
    buffer_minutes: int


class Appointments:
    """The appointment use cases of every tenant; ``clock`` stamps the facts and says what is
    past."""

    def __init__(
        self,
        store: SalesStore,
        appointments: AppointmentStore,
        unit_of_work: UnitOfWork,
        clock: Clock,
        contacts: ContactCheck,
    ) -> None:
        self.store = store
        self.appointments = appointments
        self.unit_of_work = unit_of_work
        self.clock = clock
        self.contacts = contacts

    # --- calendars ----------------------------------------------------------------------------

    async def set_calendar(
        self, call: CallContext, fields: WorkCalendarInput, expected_version: int | None
    ) -> WorkCalendar:
        """Create or replace a rep's or team's calendar (a new version)."""

        async def change(tx: Transaction) -> WorkCalendar:
            current = None
            if fields.owner_kind is not None and fields.owner_id:
                current = await self.appointments.find_calendar(
                    call.tenant_id, fields.owner_kind, fields.owner_id, tx.session
                )
            calendar = WorkCalendar.define(
                tenant_id=call.tenant_id,
                fields=fields,
                current=current,
                expected_version=expected_version,
                now=now_ms(self.clock),
            )
            previous = current.version if current else 0
            await self.appointments.save_calendar(previous, calendar, tx.session)
            await publish_on_key(
                tx, self.store, [events.work_calendar_set(calendar, previous, call)]
            )
            return calendar

        return await self.unit_of_work.run(change, retries=CALENDAR_RETRIES)

    async def get_calendar(self, tenant_id: str, kind: OwnerKind, owner_id: str) -> WorkCalendar:
        """The calendar, or ``NotFound``."""
        return await self.appointments.get_calendar(tenant_id, kind, owner_id)

    # --- free slots ---------------------------------------------------------------------------

    async def find_slots(
        self,
        tenant_id: str,
        rep_id: str,
        team_id: str,
        query: SlotQuery,
        page_size: int,
        page_token: str,
    ) -> tuple[list[Slot], str]:
        """A page of the free slots of the rep or team, in (start, rep) order."""
        rep_id, team_id = rep_id.strip(), team_id.strip()
        if bool(rep_id) == bool(team_id):
            raise InvalidArgument.single("rep_id", "give exactly one of rep_id and team_id")
        page = PageQuery.of(
            {
                "op": "FindFreeSlots",
                "tenant": tenant_id,
                "rep": rep_id,
                "team": team_id,
                "from": query.range_start.isoformat(),
                "to": query.range_end.isoformat(),
                "length": query.length.total_seconds(),
                "step": query.step.total_seconds(),
            },
            page_size,
            page_token,
        )
        owner = await self._owner(tenant_id, rep_id, team_id, None)
        reps = [rep for rep, _ in owner.reps]
        busy = await self.appointments.busy(
            tenant_id, reps, query.range_start, query.range_end + owner.buffer
        )
        window = (query.range_start - _SPAN_MARGIN, query.range_end + _SPAN_MARGIN)
        if team_id:
            groups = group_members(
                (
                    (rep, [c.calendar for _, c in calendars], busy[rep])
                    for rep, calendars in owner.reps
                ),
                *window,
            )
            slots = team_free_slots(groups, query, owner.buffer)
        else:
            spans = open_spans([c.calendar for _, c in owner.reps[0][1]], *window)
            slots = [
                Slot(start, end, rep_id)
                for start, end in free_slots(spans, busy[rep_id], query, owner.buffer)
            ]
        if page.after is not None:
            after_start, after_rep = page.after[0], str(page.after[1])
            assert isinstance(after_start, datetime)
            slots = [s for s in slots if (s.start, s.rep_id) > (after_start, after_rep)]
        return page.page(slots[: page.limit], lambda s: [s.start, s.rep_id])

    async def _owner(self, tenant_id: str, rep_id: str, team_id: str, session: Session) -> _Owner:
        """The reps a search or booking may take and the calendars each must be inside:
        ``NotFound`` for a rep or team without a calendar; INVALID_ARGUMENT for a rep who is not
        a member of the team."""
        if not team_id:
            calendar = await self.appointments.get_calendar(
                tenant_id, OwnerKind.REP, rep_id, session
            )
            return _Owner(
                "", [(rep_id, [(calendar.key, calendar)])], calendar.buffer, calendar.buffer_minutes
            )
        team = await self.appointments.get_calendar(tenant_id, OwnerKind.TEAM, team_id, session)
        members = list(team.member_rep_ids)
        if rep_id:
            if rep_id not in members:
                raise InvalidArgument.single("rep_id", f"is not a member of team {team_id!r}")
            members = [rep_id]
        own = await self.appointments.rep_calendars(tenant_id, members, session)
        reps = [
            (rep, [(team.key, team)] + ([(own[rep].key, own[rep])] if rep in own else []))
            for rep in members
        ]
        return _Owner(team_id, reps, team.buffer, team.buffer_minutes)

    # --- booking ------------------------------------------------------------------------------

    async def book(
        self, call: CallContext, fields: BookingInput, request: IdempotentRequest | None
    ) -> Booking:
        """Book the slot for the rep (or the team's first free member), creating a lead for an
        unknown person; for a retry of ``request``, the first result."""
        fields = fields.cleaned()
        now = now_ms(self.clock)
        fields.check(now)
        if fields.contact_id:
            await self.contacts.require_contact(fields.contact_id)

        async def book(tx: Transaction) -> Booking:
            if (earlier := await tx.earlier_result(request)) is not None:
                return await self._earlier(call.tenant_id, earlier, tx)
            tenant = call.tenant_id
            event_key = fields.contact_id
            if fields.lead_id:
                lead = await self.store.get_lead(tenant, fields.lead_id, tx.session)
                event_key = event_key or lead.event_key
            if fields.opportunity_id:
                opportunity = await self.store.get_opportunity(
                    tenant, fields.opportunity_id, tx.session
                )
                event_key = event_key or opportunity.event_key
            owner = await self._owner(tenant, fields.rep_id, fields.team_id, tx.session)
            appointment_id = new_id()
            created: Lead | None = None
            if not fields.contact_id and not fields.lead_id:
                created = Lead.create(
                    id=new_id(),
                    tenant_id=tenant,
                    fields=LeadInput(
                        person_name=fields.customer_name,
                        email=fields.customer_email,
                        phone=fields.customer_phone,
                        source=LeadSource.APPOINTMENT,
                    ),
                    now=now,
                    field_prefix="",
                )
                event_key = event_key or created.event_key
            appointment = await self._first_free(
                tx, owner, fields, appointment_id, event_key, created, now, tenant
            )
            if created is not None:
                created = _owned_by(created, appointment.rep_id)
                await self.store.insert_lead(created, tx.session)
            await self.appointments.insert_appointment(appointment, tx.session)
            await tx.remember(request, appointment.id, now)
            booked = [events.appointment_booked(appointment, created is not None, call)]
            if created is not None and created.event_key == appointment.event_key:
                booked.insert(0, sales_events.lead_created(created, call))
            elif created is not None:
                # A lead made for an opportunity keyed elsewhere: its own key, its own order.
                await publish_on_key(tx, self.store, [sales_events.lead_created(created, call)])
            await publish_on_key(tx, self.store, booked)
            return Booking(appointment, created)

        return await self.unit_of_work.run(book, retries=BOOKING_RETRIES)

    async def _first_free(
        self,
        tx: Transaction,
        owner: _Owner,
        fields: BookingInput,
        appointment_id: str,
        event_key: str,
        created: Lead | None,
        now: datetime,
        tenant: str,
    ) -> Appointment:
        """The appointment with the first rep (of one, or of the team in order) whose calendars
        hold the times and who is free then: INVALID_ARGUMENT on ``start_time`` when the times
        are outside every candidate's calendars, SLOT_TAKEN for a single rep who is busy, else
        NO_FREE_MEMBER."""
        outside: list[str] = []
        for rep, calendars in owner.reps:
            reason = outside_calendar(
                [(key, c.calendar) for key, c in calendars], fields.start, fields.end
            )
            if reason is not None:
                outside.append(reason)
                continue
            candidate = Appointment.book(
                id=appointment_id,
                tenant_id=tenant,
                rep_id=rep,
                fields=fields,
                lead_id=fields.lead_id or (created.id if created else ""),
                lead_created=created is not None,
                buffer_minutes=owner.buffer_minutes,
                event_key=event_key,
                now=now,
            )
            if await self.appointments.is_free(candidate, tx.session):
                return candidate
            if len(owner.reps) == 1:
                raise SlotTaken(rep, fields.start, candidate.claim_end)
        if len(outside) == len(owner.reps):
            raise InvalidArgument.single("start_time", outside[0])
        raise FailedPrecondition(
            NO_FREE_MEMBER,
            f"teams/{owner.team_id}",
            f"no member is free from {fields.start.isoformat()} to {fields.end.isoformat()}: "
            "search the free slots again",
        )

    async def _earlier(self, tenant_id: str, appointment_id: str, tx: Transaction) -> Booking:
        appointment = await self.appointments.get_appointment(tenant_id, appointment_id, tx.session)
        lead = None
        if appointment.lead_created:
            lead = await self.store.get_lead(tenant_id, appointment.lead_id, tx.session)
        return Booking(appointment, lead)

    # --- changes ------------------------------------------------------------------------------

    async def confirm(
        self, call: CallContext, appointment_id: str, expected_version: int | None
    ) -> Appointment:
        """BOOKED → CONFIRMED."""
        now = now_ms(self.clock)

        async def confirm(tx: Transaction, current: Appointment) -> Appointment:
            changed = current.confirm(expected_version, now)
            await self._replace(tx, current, changed, events.appointment_confirmed, call)
            return changed

        return await self._change(call, appointment_id, confirm)

    async def cancel(
        self, call: CallContext, appointment_id: str, reason: str, expected_version: int | None
    ) -> Appointment:
        """BOOKED or CONFIRMED → CANCELLED; the slot is freed in the same transaction."""
        now = now_ms(self.clock)

        async def cancel(tx: Transaction, current: Appointment) -> Appointment:
            changed = current.cancel(reason, expected_version, now)
            await self.appointments.release(current, tx.session)
            await self._replace(tx, current, changed, events.appointment_cancelled, call)
            return changed

        return await self._change(call, appointment_id, cancel)

    async def reschedule(
        self,
        call: CallContext,
        appointment_id: str,
        start: datetime,
        end: datetime,
        expected_version: int | None,
    ) -> Appointment:
        """Move the appointment to ``[start, end)`` of the same rep: the old slot is freed and
        the new one claimed in one transaction, or nothing changes."""
        now = now_ms(self.clock)

        async def reschedule(tx: Transaction, current: Appointment) -> Appointment:
            changed = current.reschedule(start, end, expected_version, now)
            owner = await self._owner(call.tenant_id, current.rep_id, current.team_id, tx.session)
            calendars = owner.reps[0][1]
            reason = outside_calendar([(k, c.calendar) for k, c in calendars], start, end)
            if reason is not None:
                raise InvalidArgument.single("start_time", reason)
            await self.appointments.release(current, tx.session)
            if not await self.appointments.is_free(changed, tx.session):
                raise SlotTaken(changed.rep_id, changed.start, changed.claim_end)
            await self.appointments.claim(changed, tx.session)
            await self._replace(tx, current, changed, events.appointment_rescheduled, call)
            return changed

        return await self._change(call, appointment_id, reschedule)

    async def _replace(
        self,
        tx: Transaction,
        current: Appointment,
        changed: Appointment,
        event: Callable[[Appointment, Appointment, CallContext], Event],
        call: CallContext,
    ) -> None:
        await self.appointments.replace_appointment(current.version, changed, tx.session)
        await publish_on_key(tx, self.store, [event(changed, current, call)])

    async def _change(
        self,
        call: CallContext,
        appointment_id: str,
        rule: Callable[[Transaction, Appointment], Awaitable[Appointment]],
    ) -> Appointment:
        async def change(tx: Transaction) -> Appointment:
            current = await self.appointments.get_appointment(
                call.tenant_id, appointment_id, tx.session
            )
            return await rule(tx, current)

        # A reschedule's claim that loses a race is a duplicate key: rerun, see SLOT_TAKEN.
        return await self.unit_of_work.run(change, retries=BOOKING_RETRIES)

    # --- reads --------------------------------------------------------------------------------

    async def get(self, tenant_id: str, appointment_id: str) -> Appointment:
        """The appointment, or ``NotFound``."""
        return await self.appointments.get_appointment(tenant_id, appointment_id)

    async def list_appointments(
        self, tenant_id: str, filters: Mapping[str, str], page_size: int, page_token: str
    ) -> tuple[list[Appointment], str]:
        """A page of the appointments matching every filter, in id order."""
        query = PageQuery.of(
            {"op": "ListAppointments", "tenant": tenant_id, **filters}, page_size, page_token
        )
        found = await self.appointments.list_appointments(
            tenant_id, filters, after_id(query), query.limit
        )
        return query.page(found, lambda a: [a.id])


def _owned_by(lead: Lead, rep_id: str) -> Lead:
    """The booking's lead, owned by the rep the appointment is with."""
    return replace(lead, owner_id=rep_id)
