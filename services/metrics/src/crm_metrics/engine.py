"""The state of one topic partition: facts, and the aggregates their contributions add up to.

Processing is a small pipeline, one step per method:

1. :meth:`PartitionEngine.process` applies a decoded event to the facts (cheap) and marks the
   entities it changed; just before an entity first changes in a batch, its current
   contributions are computed, to be retracted.
2. :meth:`PartitionEngine.flush` derives each changed entity once per batch, retracts what it
   contributed before and adds what it contributes now (only the difference touches the cube).
3. The checkpoint (:mod:`crm_metrics.checkpoint`) then writes the changed facts, the changed
   aggregate cells and the partition's next offset in one database transaction — with, per
   ticket, whether its cells were derived with its business calendar, and every calendar
   version those cells used.

A ticket's business clocks need its calendar version, which may not be known yet (it arrives on
another partition). The ticket then contributes without it, waits, and is derived again once
the version is announced (:meth:`PartitionEngine.before_calendar`). After a restore the
directory of calendars may know more, or less, than it did when the cells were written, so each
restored ticket says which it was (:meth:`PartitionEngine.restore`) instead of the engine
assuming the cells match what the directory knows now.

Deriving each entity once per batch rather than once per event is what makes a replay fast: a
ticket with twenty events is derived once or twice, not twenty times.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from google.protobuf.message import Message

from crm_calendar.business_calendar import BusinessCalendar
from crm_metrics.calendars import CalendarHub, CalendarKey
from crm_metrics.domain.clocks import (
    Settings,
    TicketClocks,
    contributions,
    derive,
    mention_contributions,
)
from crm_metrics.domain.contribution import Contribution
from crm_metrics.domain.cube import Cube
from crm_metrics.domain.facts import TicketFacts
from crm_metrics.events import EntityKey, FactStore, TicketKey, apply
from crm_platform.events import Event


class CalendarLostError(RuntimeError):
    """Restored cells were derived with a calendar version the database does not hold."""


@dataclass(slots=True)
class FlushResult:
    """What a flush changed: entities to checkpoint, and the calendar versions they need.

    ``calendars``: the versions seen in this partition's events since the last flush, and those
    the derived tickets' cells now use (a checkpoint stores the ones it has not stored yet, so
    every stored cell can be derived again from stored facts)."""

    tickets: dict[TicketKey, TicketClocks] = field(default_factory=dict)
    mentions: set[EntityKey] = field(default_factory=set)
    calendars: set[CalendarKey] = field(default_factory=set)


class PartitionEngine:
    """Facts and aggregates of one partition of one topic, in one namespace."""

    def __init__(
        self,
        topic: str,
        partition: int,
        settings: Settings,
        hub: CalendarHub,
        cube: Cube | None = None,
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.settings = settings
        self.hub = hub
        self.calendars = hub.directory
        hub.engines.add(self)
        self.facts = FactStore()
        self.cube = cube or Cube(settings.reporting_timezone)
        # Contributions of the entities changed in this batch, as they were before the change.
        self._before: dict[EntityKey, list[Contribution]] = {}
        # Tickets waiting for a calendar version that has not arrived yet.
        self._waiting: dict[tuple[str, str, int], set[TicketKey]] = {}
        self._seen_calendars: set[CalendarKey] = set()
        self.next_offset = 0
        self.watermark_ms = 0

    # -- 1. apply -----------------------------------------------------------------------------

    def process(self, event: Event, payload: Message, offset: int) -> None:
        """Apply one event (raises :class:`~crm_metrics.events.PoisonEvent` if it never can)."""
        changes = apply(self.facts, event, payload, self._remember)
        if changes.calendar is not None:
            self.hub.add(event.tenant_id, changes.calendar)
            calendar = changes.calendar
            self._seen_calendars.add((event.tenant_id, calendar.calendar_id, calendar.version))
        self.next_offset = offset + 1
        self.watermark_ms = max(self.watermark_ms, int(event.time.timestamp() * 1000))

    def before_calendar(self, tenant: str, calendar: BusinessCalendar) -> None:
        """A calendar version is about to become visible: tickets waiting for it remember what
        they contribute without it, and are derived again at the next flush."""
        for ticket in self._waiting.pop((tenant, calendar.calendar_id, calendar.version), ()):
            self._remember(ticket)

    def waiting_for(self) -> set[CalendarKey]:
        """The calendar versions some tickets wait for."""
        return set(self._waiting)

    def restore(self, facts: TicketFacts, calendar_applied: bool) -> None:
        """Put back a checkpointed ticket whose stored cells were derived with its calendar
        version (``calendar_applied``) or without it.

        Without it, and the version is known now (it arrived, or was stored, meanwhile): the
        ticket remembers that it contributes without it and is derived again at the next flush.
        Without it and still unknown: it waits. With it, the version must be known (the
        checkpoint that wrote those cells stored it): if not, :class:`CalendarLostError`.
        """
        key = (facts.tenant, facts.ticket_id)
        self.facts.tickets[key] = facts
        if facts.calendar is None:
            return
        known = self.calendar_of(facts) is not None
        if calendar_applied:
            if not known:
                raise CalendarLostError(
                    f"ticket {facts.ticket_id} was derived with calendar {facts.calendar}, "
                    "which is not stored"
                )
        elif known:
            self._before.setdefault(
                key, contributions(facts, derive(facts, None, self.settings), self.settings)
            )
        else:
            self._wait(key, facts)

    def _wait(self, key: TicketKey, facts: TicketFacts) -> None:
        assert facts.calendar is not None
        wanted = (facts.tenant, facts.calendar[0], facts.calendar[1])
        self._waiting.setdefault(wanted, set()).add(key)

    def close(self) -> None:
        """Leave the hub and drop the state (the partition was revoked)."""
        self.hub.engines.discard(self)
        self.facts.tickets.clear()
        self.facts.mentions.clear()

    def _remember(self, key: EntityKey) -> None:
        if key not in self._before:
            self._before[key] = self.contributions_of(key)

    # -- 2. derive ----------------------------------------------------------------------------

    def calendar_of(self, facts: TicketFacts) -> BusinessCalendar | None:
        """The ticket's SLA calendar version, if it has one and it is known."""
        if facts.calendar is None:
            return None
        return self.calendars.get(facts.tenant, facts.calendar[0], facts.calendar[1])

    def clocks_of(self, facts: TicketFacts) -> TicketClocks:
        """Derive a ticket's clocks now."""
        return derive(facts, self.calendar_of(facts), self.settings)

    def contributions_of(self, key: EntityKey) -> list[Contribution]:
        """What an entity contributes with its current facts."""
        if len(key) == 3:
            mention = self.facts.mentions.get(key)
            return [] if mention is None else mention_contributions(mention, self.settings)
        facts = self.facts.tickets.get(key)
        if facts is None:
            return []
        return contributions(facts, self.clocks_of(facts), self.settings)

    def flush(self) -> FlushResult:
        """Derive every entity changed since the last flush and update the cube."""
        result = FlushResult(calendars=self._seen_calendars)
        self._seen_calendars = set()
        before, self._before = self._before, {}
        cube = self.cube
        for key, old in before.items():
            if len(key) == 3:
                new = self.contributions_of(key)
                result.mentions.add(key)
                tenant = key[0]
            else:
                facts = self.facts.tickets[key]
                clocks = self.clocks_of(facts)
                if facts.calendar is not None:
                    if clocks.calendar_missing:
                        self._wait(key, facts)
                    else:
                        result.calendars.add((facts.tenant, *facts.calendar))
                new = contributions(facts, clocks, self.settings)
                result.tickets[key] = clocks
                tenant = key[0]
            if old == new:
                continue
            removed = Counter(old)
            removed.subtract(new)
            for contribution, times in removed.items():
                for _ in range(abs(times)):
                    cube.apply(tenant, contribution, 1 if times < 0 else -1)
        return result

    @property
    def pending(self) -> int:
        """Entities changed since the last flush."""
        return len(self._before)
