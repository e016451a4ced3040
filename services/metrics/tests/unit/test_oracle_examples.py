"""The KPI oracle on hand-made histories (KPIS.md's worked example and one rule per test), and
the history generator it is later run against: deterministic for a seed, decodable, and shaped
the way the service desk publishes.

Each history is written like the service desk would publish it, event by event, with times on
a Wednesday in March 2026 (``at(17)`` is 17:00 UTC). The business calendar of these tests is
open Monday to Friday 09:00-20:00 UTC, so business time is easy to count by hand.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.protobuf.message import Message as ProtoMessage
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm.servicedesk.v1 import events_pb2
from crm.servicedesk.v1 import servicedesk_pb2 as pb
from crm_calendar import BusinessCalendar, OpeningInterval
from crm_metrics.domain.catalog import Definitions
from crm_metrics.domain.clocks import Settings, TicketClocks, contributions, derive
from crm_metrics.events import FactStore, apply
from crm_platform.context import Actor, ActorType, CallContext
from crm_platform.events import Event
from crm_testing import histories
from crm_testing import kpi_oracle as oracle

TENANT = "t1"
DAY0 = datetime(2026, 3, 4, tzinfo=UTC)  # a Wednesday
HOUR = 3600.0
CALENDAR = BusinessCalendar.create(
    calendar_id="cal-test",
    version=1,
    timezone="UTC",
    intervals=[OpeningInterval(day, 9 * 60, 20 * 60) for day in range(5)],
)
CALENDARS = {("cal-test", 1): CALENDAR}
_ids = itertools.count(1)


def at(hours: float, day: int = 0) -> datetime:
    """``hours`` after midnight of the test's Wednesday (plus ``day`` days)."""
    return DAY0 + timedelta(days=day, hours=hours)


def _stamp(message: ProtoMessage, field: str, when: datetime) -> None:
    getattr(message, field).FromDatetime(when.astimezone(UTC).replace(tzinfo=None))


class Story:
    """The events of one ticket, written in the order the service desk publishes them."""

    def __init__(
        self,
        *,
        channel: int = pb.CHANNEL_EMAIL,
        calendar: bool = True,
        assignee: str = "ag-1",
        ticket_id: str | None = None,
    ) -> None:
        self.ticket_id = ticket_id or f"tk-{next(_ids)}"
        self.contact = f"c-{self.ticket_id}"
        self.events: list[Event] = []
        self.ticket = pb.Ticket(
            id=self.ticket_id,
            tenant_id=TENANT,
            type=pb.TICKET_TYPE_COMPLAINT,
            channel=channel,  # type: ignore[arg-type]
            priority=pb.PRIORITY_NORMAL,
            status=pb.TICKET_STATUS_NEW,
            contact_id=self.contact,
            customer_tier="gold",
            assignee_id=assignee,
            team_id="team-a",
            category="delivery",
            product="tv",
        )
        if calendar:
            self.ticket.sla.policy_id = "sla-1"
            self.ticket.sla.policy_version = 1
            self.ticket.sla.calendar_id = "cal-test"
            self.ticket.sla.calendar_version = 1
        self.answered = False

    def _add(self, message: ProtoMessage, when: datetime, actor: str = "agent:ag-1") -> Event:
        kind, _, ident = actor.partition(":")
        call = CallContext(TENANT, Actor(ActorType(kind), ident))
        event = Event.of(
            message,
            source="/crm/servicedesk",
            subject=f"tickets/{self.ticket_id}",
            key=self.contact,
            call=call,
            time=when,
        )
        self.events.append(event)
        return event

    def _snapshot(self, when: datetime, *, same_change: bool = False) -> pb.Ticket:
        """The ticket after a change (``same_change``: the one that added a message)."""
        if not same_change:
            self.ticket.version += 1
        _stamp(self.ticket, "update_time", when)
        snapshot = pb.Ticket()
        snapshot.CopyFrom(self.ticket)
        return snapshot

    def mention(self, posted: datetime, *, sentiment: float = -0.6, source: bool = True) -> Story:
        """A social mention about the issue; ``source``: the ticket is opened from it."""
        mention = pb.Mention(
            id=f"x:{self.ticket_id}",
            network="x",
            post_id=self.ticket_id,
            author_handle="someone",
            author_followers=1000,
            sentiment=sentiment,
            author_contact_id=self.contact,
            ticket_id=self.ticket_id if source else "",
        )
        _stamp(mention, "posted_time", posted)
        if source:
            self.ticket.source_mention_id = mention.id
            interaction = self.ticket.interactions.add(
                kind=pb.INTERACTION_KIND_SOCIAL_MENTION, reference=mention.id
            )
            _stamp(interaction, "occurred_time", posted)
        self._add(events_pb2.MentionReceived(mention=mention), posted, "integration:listening")
        return self

    def created(self, when: datetime, *, first_touch: datetime | None = None) -> Story:
        """The ticket is opened (its first touch: the earliest interaction or ``first_touch``)."""
        _stamp(self.ticket, "create_time", when)
        touches = [when, *([first_touch] if first_touch else [])]
        touches += [i.occurred_time.ToDatetime(tzinfo=UTC) for i in self.ticket.interactions]
        _stamp(self.ticket, "first_touch_time", min(touches))
        self._add(events_pb2.TicketCreated(ticket=self._snapshot(when)), when)
        return self

    def _message(self, when: datetime, author: int, public: bool, actor: str) -> str:
        message = pb.Message(
            id=f"m-{next(_ids)}",
            ticket_id=self.ticket_id,
            author_type=author,  # type: ignore[arg-type]
            author_id=actor.partition(":")[2],
            visibility=pb.VISIBILITY_PUBLIC if public else pb.VISIBILITY_INTERNAL,
            body="text",
        )
        _stamp(message, "send_time", when)
        first = author == pb.AUTHOR_TYPE_AGENT and public and not self.answered
        self.answered = self.answered or first
        self.ticket.version += 1  # adding a message is a change of the ticket
        added = events_pb2.MessageAdded(
            message=message,
            contact_id=self.contact,
            first_response=first,
            ticket_version=self.ticket.version,
        )
        self._add(added, when, actor)
        return message.id

    def customer(self, when: datetime) -> Story:
        """A customer message; it reopens a resolved ticket and ends a pending one."""
        self._message(when, pb.AUTHOR_TYPE_CUSTOMER, True, f"customer:{self.contact}")
        if self.ticket.status in (pb.TICKET_STATUS_RESOLVED, pb.TICKET_STATUS_PENDING_CUSTOMER):
            self.status(pb.TICKET_STATUS_OPEN, when, same_change=True)
        return self

    def agent(
        self, when: datetime, *, public: bool = True, delivered: datetime | None = None
    ) -> Story:
        """An agent's reply (or internal note), maybe with a delivery receipt."""
        message_id = self._message(when, pb.AUTHOR_TYPE_AGENT, public, "agent:ag-1")
        if public and self.ticket.status == pb.TICKET_STATUS_NEW:
            self.status(pb.TICKET_STATUS_OPEN, when, same_change=True)
        if delivered is not None:
            self.receipt(message_id, delivered)
        return self

    def bot(self, when: datetime, *, delivered: datetime | None = None) -> Story:
        """An automatic acknowledgement."""
        message_id = self._message(when, pb.AUTHOR_TYPE_BOT, True, "system:autoresponder")
        if delivered is not None:
            self.receipt(message_id, delivered)
        return self

    def receipt(
        self, message_id: str, when: datetime, kind: int = pb.RECEIPT_KIND_DELIVERED
    ) -> Story:
        """A delivery (or read) receipt of an outbound message."""
        receipt = events_pb2.ReceiptRecorded(
            ticket_id=self.ticket_id,
            contact_id=self.contact,
            message_id=message_id,
            kind=kind,  # type: ignore[arg-type]
        )
        _stamp(receipt, "time", when)
        self._add(receipt, when, "integration:gateway")
        return self

    def status(self, to: int, when: datetime, *, same_change: bool = False) -> Story:
        """A status change (``resolved -> open`` is a reopen; ``same_change``: caused by the
        message just added, in the change that added it)."""
        before = self.ticket.status
        reopen = before == pb.TICKET_STATUS_RESOLVED and to == pb.TICKET_STATUS_OPEN
        self.ticket.status = to  # type: ignore[assignment]
        if reopen:
            self.ticket.reopen_count += 1
        changed = events_pb2.TicketStatusChanged(
            ticket=self._snapshot(when, same_change=same_change),
            from_status=before,
            to_status=to,  # type: ignore[arg-type]
            reopen=reopen,
        )
        _stamp(changed, "change_time", when)
        self._add(changed, when)
        return self

    def resolve(self, when: datetime) -> Story:
        """Resolved."""
        return self.status(pb.TICKET_STATUS_RESOLVED, when)

    def reassign(self, when: datetime, agent: str) -> Story:
        """A new assignee."""
        self.ticket.assignee_id = agent
        self._add(events_pb2.TicketUpdated(ticket=self._snapshot(when)), when)
        return self

    def met(self, target: int, due: datetime, when: datetime) -> Story:
        """An SLA target met at ``when``."""
        met = events_pb2.SlaTargetMet(ticket_id=self.ticket_id, target=target)  # type: ignore[arg-type]
        _stamp(met, "due_time", due)
        _stamp(met, "met_time", when)
        self._add(met, when)
        return self

    def breached(self, target: int, due: datetime) -> Story:
        """An SLA target breached at its due time."""
        breach = events_pb2.SlaBreached(ticket_id=self.ticket_id, target=target)  # type: ignore[arg-type]
        _stamp(breach, "due_time", due)
        self._add(breach, due, "system:sla-timer")
        return self

    def survey(
        self, sent: datetime, answered: datetime | None = None, **answer: int | float
    ) -> Story:
        """A survey sent at ``sent`` and maybe answered with the given items."""
        survey = pb.Survey(id=f"sv-{next(_ids)}", ticket_id=self.ticket_id)
        _stamp(survey, "send_time", sent)
        self._add(events_pb2.SurveySent(survey=survey), sent, "system:surveys")
        if answered is not None:
            survey.answer.CopyFrom(pb.SurveyAnswer(**answer))  # type: ignore[arg-type]
            _stamp(survey.answer, "answer_time", answered)
            self._add(events_pb2.SurveyAnswered(survey=survey), answered, "customer:c")
        return self


def compute(*stories: Story, **options: Any) -> oracle.OracleResult:
    events = [event for story in stories for event in story.events]
    options.setdefault("start", at(0, day=-30))
    options.setdefault("end", at(0, day=30))
    return oracle.compute(events, calendars=CALENDARS, **options)


def seconds(result: oracle.OracleResult, kpi: str) -> list[float]:
    return sorted(o.value for o in result.observations if o.kpi == kpi)


# --- KPIS.md's worked example ----------------------------------------------------------------


def test_worked_example_gives_a_two_hour_company_frt_and_a_ten_hour_customer_wait() -> None:
    story = (
        Story(channel=pb.CHANNEL_SOCIAL)
        .mention(at(9))
        .created(at(17))
        .agent(at(19), delivered=at(19))
        .met(pb.SLA_TARGET_FIRST_RESPONSE, due=at(21), when=at(19))
    )

    result = compute(story)
    clocks = result.tickets[story.ticket_id]

    assert clocks.first_touch == at(9)
    assert result.kpi("company_frt").value == 2 * HOUR
    assert result.kpi("frt_business").value == 2 * HOUR
    assert result.kpi("frt_wall").value == 2 * HOUR
    assert result.kpi("customer_wait").value == 10 * HOUR
    assert result.kpi("perception_gap").value == 8 * HOUR
    assert result.kpi("sla_first_response").value == 100.0
    assert clocks.expected_wait == 2 * HOUR  # social's default expectation
    assert result.kpi("expectation_breach").value == 100.0
    assert result.kpi("green_inside_red_outside").value == 100.0
    assert clocks.dims["wait_bucket"] == "4-12h"
    assert result.gap_histogram() == {8: 1}


def test_a_reply_delivered_late_lengthens_the_customer_wait_not_the_frt() -> None:
    story = Story().created(at(10)).agent(at(11), delivered=at(13))

    result = compute(story)

    assert result.kpi("frt_wall").value == 1 * HOUR
    assert result.kpi("customer_wait").value == 3 * HOUR
    assert result.kpi("perception_gap").value == 2 * HOUR


def test_a_read_receipt_alone_is_not_a_delivery() -> None:
    story = Story().created(at(10))
    story.agent(at(11))
    reply_id = story.events[-2].decode().message.id  # type: ignore[attr-defined]
    story.receipt(reply_id, at(12), pb.RECEIPT_KIND_READ)

    assert compute(story).kpi("customer_wait").value == 1 * HOUR


# --- what counts as a first response -----------------------------------------------------------


def test_bot_replies_and_internal_notes_are_not_a_first_response() -> None:
    story = (
        Story()
        .created(at(10))
        .customer(at(10))
        .bot(at(10 + 1 / 60))
        .agent(at(10.5), public=False)
        .agent(at(12))
    )

    result = compute(story)

    assert result.kpi("frt_wall").value == 2 * HOUR
    assert result.kpi("customer_wait").value == 2 * HOUR
    assert result.tickets[story.ticket_id].public_human_replies == 1


def test_frt_version_two_counts_the_bot_acknowledgement() -> None:
    story = Story().created(at(10)).customer(at(10)).bot(at(10 + 1 / 60)).agent(at(12))

    result = compute(story, frt_version=2)

    assert result.kpi("frt_wall").value == pytest.approx(60.0)
    assert result.kpi("customer_wait").value == 2 * HOUR  # always the human reply


def test_an_unanswered_ticket_is_awaiting_with_its_age_and_in_the_backlog() -> None:
    answered = Story().created(at(10)).agent(at(11))
    waiting = Story().created(at(12)).customer(at(12))

    result = compute(answered, waiting, end=at(18))

    assert result.kpi("awaiting_first_response").value == 1
    assert result.kpi("unanswered_age").sum == 6 * HOUR
    assert result.kpi("backlog").value == 2
    assert sorted(o.value for o in result.observations if o.kpi == "backlog_age") == [
        6 * HOUR,
        8 * HOUR,
    ]
    assert result.kpi("frt_wall").count == 1


# --- chasers, NRT ------------------------------------------------------------------------------


def test_chasers_are_the_customer_messages_before_the_first_response_but_the_first() -> None:
    answered = (
        Story()
        .created(at(10))
        .customer(at(10))
        .customer(at(11))
        .customer(at(12))
        .agent(at(13))
        .customer(at(14))
    )
    unanswered = Story().created(at(10)).customer(at(10)).customer(at(15))

    result = compute(answered, unanswered)

    assert result.kpi("chasers").value == 3  # two before the reply, one still waiting
    assert result.tickets[answered.ticket_id].chasers == [at(11), at(12)]
    assert result.tickets[unanswered.ticket_id].chasers == [at(15)]


def test_nrt_runs_start_at_the_first_unanswered_customer_message() -> None:
    story = (
        Story()
        .created(at(9))
        .customer(at(9))
        .agent(at(10))
        .customer(at(11))
        .customer(at(11.5))
        .bot(at(11.6))  # a bot does not answer a run
        .agent(at(13))
        .customer(at(14))
        .agent(at(14.5))
        .customer(at(16))  # still unanswered: not counted
    )

    result = compute(story)

    assert seconds(result, "nrt_wall") == [0.5 * HOUR, 2 * HOUR]
    assert result.kpi("nrt_wall").count == 2


def test_a_resolve_ends_an_unanswered_run_and_the_reopening_message_starts_a_new_one() -> None:
    story = (
        Story()
        .created(at(9))
        .customer(at(9))
        .agent(at(10))
        .customer(at(16.5))  # never answered
        .resolve(at(17))  # resolved without a reply
        .customer(at(14, day=1))  # reopens: a new question
        .agent(at(15, day=1))
        .resolve(at(16, day=1))
    )

    result = compute(story)

    assert seconds(result, "nrt_wall") == [1 * HOUR]
    assert seconds(result, "nrt_business") == [1 * HOUR]
    assert result.kpi("resolved_without_reply").value == 1
    assert [o.at for o in result.observations if o.kpi == "resolved_without_reply"] == [at(17)]
    # nrt@1, kept for replay: the run waited through the night in resolved.
    old = compute(story, nrt_version=1)
    assert seconds(old, "nrt_wall") == [22.5 * HOUR]
    assert old.kpi("resolved_without_reply").value == 1  # a KPI of its own, at @1
    # The service: the same under both versions.
    assert disagreements(story.events) == []
    replay = Settings(definitions=Definitions.parse(["nrt_wall@1", "nrt_business@1"]))
    clocks, _ = service_clocks(story.events, replay)[story.ticket_id]
    assert clocks.seconds("nrt_wall#1") == 22.5 * HOUR
    assert clocks.seconds("nrt_business#1") == old.tickets[story.ticket_id].nrt[0][2]
    assert clocks.clocks["resolved_without_reply#1"].end_ms == at(17).timestamp() * 1000


def test_a_customer_message_and_a_resolve_at_one_instant_take_the_desks_order() -> None:
    # The desk took the message first: the resolve ended its run without a reply.
    before = Story().created(at(9)).customer(at(9)).agent(at(10)).customer(at(12))
    before.resolve(at(12))
    # The desk resolved first: the message reopened the ticket and started a run.
    after = Story().created(at(9)).customer(at(9)).agent(at(10)).resolve(at(12))
    after.customer(at(12)).agent(at(13))

    result = compute(before, after)

    assert result.tickets[before.ticket_id].resolved_without_reply == [at(12)]
    assert result.tickets[after.ticket_id].resolved_without_reply == []
    assert result.tickets[after.ticket_id].nrt == [(at(13), 1 * HOUR, 1 * HOUR)]
    assert disagreements([*before.events, *after.events]) == []


def test_nrt_business_skips_closed_hours() -> None:
    story = Story().created(at(9)).agent(at(10)).customer(at(19)).agent(at(10, day=1))

    result = compute(story)

    assert seconds(result, "nrt_wall") == [15 * HOUR]
    assert seconds(result, "nrt_business") == [2 * HOUR]  # 19-20 and 09-10


# --- resolution, reopen, pauses -------------------------------------------------------------


def test_reopen_counts_in_the_reopen_rate_and_resolution_runs_to_the_last_resolve() -> None:
    story = (
        Story()
        .created(at(9))
        .agent(at(10))
        .resolve(at(11))
        .customer(at(13))  # reopens
        .agent(at(14))
        .resolve(at(15))
    )

    result = compute(story)
    clocks = result.tickets[story.ticket_id]

    assert clocks.reopen_count == 1
    assert result.kpi("reopen_rate").value == 100.0
    assert result.kpi("first_contact_resolution").value == 0.0
    assert result.kpi("resolution_wall").value == 6 * HOUR
    assert result.kpi("first_resolution_wall").value == 2 * HOUR
    # Business: 09-11 and 13-15; the time resolved before the reopen does not count.
    assert result.kpi("resolution_business").value == 4 * HOUR
    assert result.kpi("same_day_resolution").value == 100.0
    assert result.kpi("tickets_handled").value == 1
    assert result.kpi("backlog").value == 0  # +1 created, -1, +1 reopen, -1


def test_first_resolution_has_a_business_clock_too() -> None:
    story = (
        Story()
        .created(at(18))
        .agent(at(19))
        .status(pb.TICKET_STATUS_PENDING_CUSTOMER, at(19.5))
        .customer(at(10, day=1))  # back to open
        .resolve(at(11, day=1))
        .customer(at(12, day=1))  # reopens
        .agent(at(13, day=1))
        .resolve(at(14, day=1))
    )

    result = compute(story)

    assert result.kpi("first_resolution_wall").value == 17 * HOUR
    # 18:00-19:30 working, pending until 10:00 the next day, 10-11 working.
    assert result.kpi("first_resolution_business").value == 2.5 * HOUR
    # The last resolve: also 12-14 (the hour resolved before the reopen does not count).
    assert result.kpi("resolution_business").value == 4.5 * HOUR
    assert (
        result.query(start=at(11, day=1), end=at(12, day=1))[""]["first_resolution_business"].count
        == 1
    )


def test_a_ticket_reopened_and_not_resolved_again_is_not_resolved() -> None:
    story = Story().created(at(9)).agent(at(10)).resolve(at(11)).customer(at(13))

    result = compute(story)

    assert result.kpi("resolution_wall").count == 0
    assert result.kpi("first_resolution_wall").value == 2 * HOUR
    assert result.kpi("reopen_rate").count == 0
    assert result.kpi("backlog").value == 1


def test_first_contact_resolution_needs_exactly_one_public_agent_reply() -> None:
    one = Story().created(at(9)).agent(at(10)).agent(at(10.5), public=False).resolve(at(11))
    two = Story().created(at(9)).agent(at(10)).agent(at(10.5)).resolve(at(11))

    result = compute(one, two)

    assert result.kpi("first_contact_resolution").numerator == 1
    assert result.kpi("first_contact_resolution").denominator == 2


def test_pauses_are_excluded_from_business_time() -> None:
    story = (
        Story()
        .created(at(10))
        .status(pb.TICKET_STATUS_PENDING_CUSTOMER, at(11))
        .status(pb.TICKET_STATUS_OPEN, at(13))
        .agent(at(15))
        .status(pb.TICKET_STATUS_ON_HOLD, at(16))
        .status(pb.TICKET_STATUS_OPEN, at(10, day=1))
        .resolve(at(12, day=1))
    )

    result = compute(story)

    assert result.kpi("frt_wall").value == 5 * HOUR
    assert result.kpi("frt_business").value == 3 * HOUR  # 10-11, 13-15
    # 10-11, 13-16 on day 0; 10-12 on day 1 (on hold 16:00 to 10:00 the next day).
    assert result.kpi("resolution_business").value == 6 * HOUR
    assert result.kpi("same_day_resolution").value == 0.0


def test_a_ticket_without_a_calendar_counts_wall_time_minus_pauses() -> None:
    story = (
        Story(calendar=False)
        .created(at(22))
        .status(pb.TICKET_STATUS_ON_HOLD, at(23))
        .status(pb.TICKET_STATUS_OPEN, at(1, day=1))
        .agent(at(3, day=1))
    )

    result = compute(story)

    assert result.kpi("frt_wall").value == 5 * HOUR
    assert result.kpi("frt_business").value == 3 * HOUR


def test_silence_is_the_longest_wait_without_a_public_update() -> None:
    story = (
        Story()
        .created(at(9))
        .customer(at(9))
        .bot(at(9.1), delivered=at(9.2))  # no update: the customer still waits
        .customer(at(10))  # a chaser does not restart the wait
        .agent(at(13))  # 4 h since 09:00
        .customer(at(14))
        .resolve(at(18.5))  # the last wait, 4.5 h, ends at the resolve
    )

    result = compute(story)

    assert result.kpi("silence").value == 4.5 * HOUR
    assert disagreements(story.events) == []


def test_a_bot_acknowledgement_does_not_end_the_silence_but_silence_v1_let_it() -> None:
    # Issue 11's example: the customer waited two hours for a human after an auto-ack.
    story = (
        Story()
        .created(at(9))
        .customer(at(9))
        .bot(at(9))
        .customer(at(10))  # "any update?"
        .agent(at(11))
        .resolve(at(11.5))
    )

    assert compute(story).kpi("silence").value == 2 * HOUR
    assert compute(story, silence_version=1).kpi("silence").value == 1 * HOUR
    assert disagreements(story.events) == []
    replay = Settings(definitions=Definitions.parse(["silence@1"]))
    clocks, _ = service_clocks(story.events, replay)[story.ticket_id]
    assert clocks.seconds("silence") == 1 * HOUR


def test_a_pause_or_a_resolve_ends_a_wait_and_the_customers_next_message_starts_one() -> None:
    story = (
        Story()
        .created(at(9))
        .customer(at(9))
        .agent(at(10))  # 1 h
        .customer(at(11))
        .status(pb.TICKET_STATUS_ON_HOLD, at(12))  # 1 h: waiting for the carrier, said so
        .status(pb.TICKET_STATUS_OPEN, at(15))  # no wait starts by itself
        .resolve(at(16))
        .customer(at(16.5))  # reopens
        .status(pb.TICKET_STATUS_PENDING_CUSTOMER, at(18))  # 1.5 h
        .customer(at(10, day=1))  # back to open: a new wait
        .resolve(at(10.75, day=1))  # 0.75 h
    )

    result = compute(story)

    assert result.kpi("silence").value == 1.5 * HOUR
    # @1: only company messages end a wait: 11:00 waits until the last resolve.
    assert compute(story, silence_version=1).kpi("silence").value == 23.75 * HOUR
    assert disagreements(story.events) == []


# --- SLA -----------------------------------------------------------------------------------------


def test_a_breached_target_stays_breached_and_counts_once_at_its_due_time() -> None:
    story = (
        Story()
        .created(at(9))
        .breached(pb.SLA_TARGET_FIRST_RESPONSE, due=at(10))
        .agent(at(11))
        .met(pb.SLA_TARGET_FIRST_RESPONSE, due=at(10), when=at(11))
        .met(pb.SLA_TARGET_NEXT_RESPONSE, due=at(13), when=at(12))
        .breached(pb.SLA_TARGET_NEXT_RESPONSE, due=at(15))
        .resolve(at(16))
        .met(pb.SLA_TARGET_RESOLUTION, due=at(17), when=at(16))
    )

    result = compute(story)

    first = result.kpi("sla_first_response")
    assert (first.numerator, first.denominator) == (0, 1)
    nxt = result.kpi("sla_next_response")
    assert (nxt.numerator, nxt.denominator) == (1, 2)
    assert result.kpi("sla_resolution").value == 100.0
    assert result.kpi("green_inside_red_outside").count == 0  # a breach: not "SLA met"
    assert result.query(start=at(10), end=at(10.5))[""]["sla_first_response"].count == 1


def test_green_inside_red_outside_from_a_low_csat_despite_a_met_sla() -> None:
    happy = (
        Story()
        .created(at(9))
        .agent(at(9.05))
        .met(pb.SLA_TARGET_FIRST_RESPONSE, due=at(17), when=at(9.05))
        .resolve(at(10))
        .survey(at(10), at(11), csat=5)
    )
    unhappy = (
        Story()
        .created(at(9))
        .agent(at(9.05))
        .met(pb.SLA_TARGET_FIRST_RESPONSE, due=at(17), when=at(9.05))
        .resolve(at(10))
        .survey(at(10), at(11), csat=2)
    )

    result = compute(happy, unhappy)

    giro = result.kpi("green_inside_red_outside")
    assert (giro.numerator, giro.denominator) == (1, 2)


# --- perception --------------------------------------------------------------------------------


def test_survey_scores_headlines_and_the_response_rate_at_the_send_time() -> None:
    story = Story().created(at(9)).agent(at(10)).resolve(at(11))
    story.survey(at(11), at(12), csat=5, nps=10, effort=6, purchase_intent=9, loyalty=3)
    story.survey(at(11), at(13), csat=2, nps=5, effort=2, comment_sentiment=-0.5)
    story.survey(at(11), at(14), csat=4, nps=8, comment_sentiment=0.01)
    story.survey(at(11))  # never answered

    result = compute(story)

    assert result.kpi("csat").value == pytest.approx(200 / 3)
    assert result.kpi("csat").mean == pytest.approx(11 / 3)
    assert result.kpi("nps").value == pytest.approx(0.0)  # one promoter, one detractor
    assert result.kpi("effort").value == 50.0
    assert result.kpi("purchase_intent").value == 100.0
    assert result.kpi("loyalty").value == 0.0
    assert result.kpi("comment_sentiment").value == -0.5  # (0 positive - 1 negative) / 2
    rate = result.kpi("survey_response_rate")
    assert (rate.numerator, rate.denominator) == (3, 4)
    # All four were sent at 11:00, so the answers after 12:00 still count for that hour.
    late = result.query(start=at(11), end=at(12))[""]["survey_response_rate"]
    assert (late.numerator, late.denominator) == (3, 4)


def test_stated_gap_is_the_perceived_wait_minus_the_company_frt() -> None:
    story = Story().created(at(9)).agent(at(10)).resolve(at(11))
    story.survey(at(11), at(12), perceived_wait_minutes=180, expected_wait_minutes=30)

    result = compute(story)

    assert result.kpi("perceived_wait").value == 3 * HOUR
    assert result.kpi("stated_gap").value == 2 * HOUR
    assert result.tickets[story.ticket_id].expected_wait == 30 * 60  # the survey's
    assert result.kpi("expectation_breach").value == 100.0  # waited 1 h, expected 30 min


def test_csat_by_wait_bucket() -> None:
    quick = Story().created(at(9)).agent(at(9.5)).resolve(at(10)).survey(at(10), at(11), csat=5)
    slow = Story().created(at(9)).agent(at(15)).resolve(at(16)).survey(at(16), at(17), csat=1)

    result = compute(quick, slow, group_by="wait_bucket")

    assert result.kpi("csat", "<1h").value == 100.0
    assert result.kpi("csat", "4-12h").value == 0.0
    assert set(result.groups) == {"<1h", "4-12h"}


def test_frt_business_grouped_by_channel() -> None:
    email = Story(channel=pb.CHANNEL_EMAIL).created(at(9)).agent(at(10))
    chat = Story(channel=pb.CHANNEL_LIVE_CHAT).created(at(9)).agent(at(9.25))

    result = compute(email, chat, group_by="channel")

    assert result.kpi("frt_business", "email").value == HOUR
    assert result.kpi("frt_business", "live_chat").value == 0.25 * HOUR
    filtered = result.query(filters={"channel": "live_chat"})[""]
    assert filtered["frt_business"].count == 1


def test_mentions_share_of_voice_reach_and_net_sentiment() -> None:
    events: list[Event] = []
    for index, (brand, followers, sentiment) in enumerate(
        [("acme", 100, 0.5), ("", 50, -0.5), ("globex", 1000, 0.0), ("globex", 10, 0.9)]
    ):
        mention = pb.Mention(
            id=f"x:{index}",
            network="x",
            post_id=str(index),
            brand=brand,
            author_followers=followers,
            sentiment=sentiment,
        )
        _stamp(mention, "posted_time", at(10 + index))
        call = CallContext(TENANT, Actor(ActorType.INTEGRATION, "listening"))
        events.append(
            Event.of(
                events_pb2.MentionReceived(mention=mention),
                source="/crm/servicedesk",
                subject=f"mentions/x:{index}",
                key=f"x:user{index}",
                call=call,
                time=at(10 + index),
            )
        )

    result = oracle.compute(events, start=at(0), end=at(24), own_brands=("acme",))

    assert result.kpi("mentions").value == 4
    assert result.kpi("reach").value == 1160
    assert result.kpi("share_of_voice").value == 50.0
    assert result.kpi("mention_sentiment").value == pytest.approx(0.25)  # (2 - 1) / 4


# --- the mechanics -------------------------------------------------------------------------------


def test_duplicates_and_order_do_not_change_the_results() -> None:
    story = (
        Story(channel=pb.CHANNEL_SOCIAL)
        .mention(at(8))
        .created(at(9))
        .customer(at(9.5))
        .agent(at(10), delivered=at(10.1))
        .customer(at(11))
        .agent(at(12))
        .resolve(at(13))
        .survey(at(13), at(14), csat=4)
    )
    noisy = histories.shuffled(histories.with_duplicates(story.events, 0.5, seed=3), seed=4)
    assert len(noisy) > len(story.events)

    plain = oracle.compute(story.events, calendars=CALENDARS, start=at(0), end=at(24))
    again = oracle.compute(noisy, calendars=CALENDARS, start=at(0), end=at(24))

    assert again.totals == plain.totals


def test_a_reassignment_moves_the_whole_ticket_to_the_new_agent() -> None:
    story = Story(assignee="ag-1").created(at(9)).agent(at(10)).reassign(at(11), "ag-2")
    story.resolve(at(12))

    result = compute(story, group_by="agent")

    assert set(result.groups) == {"ag-2"}
    assert result.kpi("tickets_handled", "ag-2").value == 1


def test_quantiles_take_the_lower_rank() -> None:
    values = [float(v) for v in range(1, 11)]
    assert oracle.exact_quantile(values, 0.5) == 5.0
    assert oracle.exact_quantile(values, 0.9) == 9.0
    assert oracle.exact_quantile(values, 0.99) == 9.0
    assert oracle.exact_quantile([7.0], 0.99) == 7.0


def test_a_range_takes_its_start_and_leaves_its_end() -> None:
    story = Story().created(at(9)).agent(at(10))

    assert compute(story, start=at(10), end=at(11)).kpi("frt_wall").count == 1
    assert compute(story, start=at(9), end=at(10)).kpi("frt_wall").count == 0


def test_the_calendar_can_come_from_the_events() -> None:
    message = histories.calendar_to_proto(CALENDAR)
    call = CallContext(TENANT, Actor(ActorType.AGENT, "admin"))
    published = Event.of(
        events_pb2.CalendarChanged(calendar=message),
        source="/crm/servicedesk",
        subject="calendars/cal-test",
        key="cal-test",
        call=call,
        time=at(0, day=-1),
    )
    story = Story().created(at(19)).agent(at(10, day=1))

    result = oracle.compute([published, *story.events], start=at(0), end=at(0, day=2))

    assert result.kpi("frt_business").value == 2 * HOUR


# --- one instant: the service desk's order decides, and the service agrees ------------------


def service_clocks(
    events: list[Event],
    kpi_settings: Settings | None = None,
    calendars: dict[tuple[str, int], BusinessCalendar] = CALENDARS,
) -> dict[str, tuple[TicketClocks, list[tuple[str, int, float]]]]:
    """The metrics service's clocks and contributions ``(kpi, second, value)`` per ticket."""
    kpi_settings = kpi_settings or Settings()
    store = FactStore()
    for event in events:
        apply(store, event, event.decode(), lambda _key: None)
    out = {}
    for (_tenant, ticket_id), facts in store.tickets.items():
        calendar = calendars.get(facts.calendar) if facts.calendar else None
        clocks = derive(facts, calendar, kpi_settings)
        made = contributions(facts, clocks, kpi_settings)
        out[ticket_id] = (clocks, sorted((c.kpi, c.at, round(c.value, 6)) for c in made))
    return out


# Observations the service and the oracle shape differently: ages are "now"-relative in the
# oracle (the service counts tickets and ages them when asked); company_frt is read from
# frt_business by the service.
NOT_COMPARED = frozenset({"backlog_age", "unanswered_age", "company_frt"})


def disagreements(
    events: list[Event],
    calendars: dict[tuple[str, int], BusinessCalendar] = CALENDARS,
    **options: Any,
) -> list[str]:
    """Where the service's contributions differ from the oracle's observations, per ticket."""
    result = oracle.compute(events, calendars=calendars, **options)
    expected: dict[str, list[tuple[str, int, float]]] = {}
    for o in result.observations:
        if o.kpi in NOT_COMPARED or o.source in result.mentions:
            continue  # a mention's own KPIs are not a ticket's
        survey = result.surveys.get(o.source)
        ticket_id = survey.ticket_id if survey is not None else o.source
        item = (o.kpi, math.floor(o.at.timestamp()), round(o.value, 6))
        expected.setdefault(ticket_id, []).append(item)
    problems = []
    for ticket_id, (_clocks, made) in service_clocks(events, calendars=calendars).items():
        mine = [c for c in made if c[0] not in NOT_COMPARED]
        if mine != sorted(expected.get(ticket_id, [])):
            theirs = sorted(expected.get(ticket_id, []))
            only_mine = [c for c in mine if c not in theirs]
            only_theirs = [c for c in theirs if c not in mine]
            problems.append(f"{ticket_id}: service only {only_mine}, oracle only {only_theirs}")
    return problems


def test_reply_and_resolve_in_one_instant_resolve_the_ticket_in_any_arrival_order() -> None:
    # The agent answers and resolves in one action: the reply (which opens the new ticket) and
    # the resolve share a timestamp; the desk made the resolve after the reply (a higher
    # ticket version).
    first = Story().created(at(9)).customer(at(9)).agent(at(10)).resolve(at(10))
    later = Story().created(at(9)).customer(at(9)).agent(at(10)).customer(at(11))
    later.agent(at(12)).resolve(at(12))
    reopened = Story().created(at(9)).customer(at(9)).agent(at(10)).resolve(at(10))
    reopened.customer(at(13)).agent(at(14)).resolve(at(14))  # the reopen: at the message's time
    for story in (first, later, reopened):
        # Event ids that sort against the desk's order: they must not decide.
        story.events = [
            replace(e, id=f"{story.ticket_id}-{len(story.events) - i:03d}")
            for i, e in enumerate(story.events)
        ]

    result = compute(first, later, reopened)

    assert result.kpi("resolution_wall").count == 3
    assert seconds(result, "resolution_wall") == [1 * HOUR, 3 * HOUR, 5 * HOUR]
    assert result.kpi("first_contact_resolution").numerator == 1
    assert result.kpi("backlog").value == 0
    assert seconds(result, "nrt_wall") == [1 * HOUR, 1 * HOUR]
    rng = random.Random(9)
    for story in (first, later, reopened):
        expected = service_clocks(story.events)[story.ticket_id]
        assert "resolved" in expected[0].flags
        orders = (
            itertools.permutations(story.events)
            if story is first
            else (rng.sample(story.events, len(story.events)) for _ in range(200))
        )
        for order in orders:
            assert service_clocks(list(order))[story.ticket_id] == expected
    assert disagreements([*first.events, *later.events, *reopened.events]) == []


def test_events_at_one_instant_follow_the_desks_order_not_the_company_first_rule() -> None:
    # The customer writes and the agent answers within one millisecond: the desk added the
    # customer's message first, so the reply answers it (NRT 0) and it is not a chaser.
    story = Story().created(at(9)).customer(at(9)).agent(at(10)).customer(at(11)).agent(at(11))
    story.resolve(at(12))

    result = compute(story)

    assert seconds(result, "nrt_wall") == [0.0]
    assert disagreements(story.events) == []


def test_messages_without_a_ticket_version_keep_the_company_first_rule() -> None:
    # Events published before MessageAdded.ticket_version existed carry 0.
    story = Story().created(at(9)).customer(at(9)).agent(at(10)).customer(at(11)).agent(at(11))
    story.customer(at(11.5)).agent(at(12)).resolve(at(12))
    for event in story.events:
        message = event.decode()
        if isinstance(message, events_pb2.MessageAdded):
            message.ticket_version = 0
            story.events[story.events.index(event)] = replace(
                event, payload=message.SerializeToString()
            )

    result = compute(story)

    # At 11:00 the reply comes first; the customer's 11:00 message starts the run.
    assert seconds(result, "nrt_wall") == [1 * HOUR]
    assert disagreements(story.events) == []


_STEPS = st.sampled_from(
    ("customer", "agent", "delivered", "note", "bot", "resolve", "pending", "hold", "back")
)


@st.composite
def one_instant_stories(draw: st.DrawFn) -> Story:
    """A ticket whose events mostly share a few instants, written as the desk makes them."""
    story = Story(calendar=draw(st.booleans()))
    hour = 9.0
    story.created(at(hour))
    for step, gap in draw(st.lists(st.tuples(_STEPS, st.sampled_from((0, 0, 0, 30))), max_size=14)):
        hour += gap / 60
        when, status = at(hour), story.ticket.status
        if status == pb.TICKET_STATUS_CLOSED:
            break
        if step == "customer":
            story.customer(when)
        elif step in ("agent", "delivered"):
            story.agent(when, delivered=when if step == "delivered" else None)
        elif step == "note":
            story.agent(when, public=False)
        elif step == "bot":
            story.bot(when, delivered=when)
        elif step == "resolve" and status in (pb.TICKET_STATUS_NEW, pb.TICKET_STATUS_OPEN):
            story.resolve(when)
        elif step == "pending" and status == pb.TICKET_STATUS_OPEN:
            story.status(pb.TICKET_STATUS_PENDING_CUSTOMER, when)
        elif step == "hold" and status == pb.TICKET_STATUS_OPEN:
            story.status(pb.TICKET_STATUS_ON_HOLD, when)
        elif step == "back" and status in (
            pb.TICKET_STATUS_PENDING_CUSTOMER,
            pb.TICKET_STATUS_ON_HOLD,
        ):
            story.status(pb.TICKET_STATUS_OPEN, when)
    return story


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(story=one_instant_stories(), data=st.data())
def test_any_arrival_order_and_duplicates_give_the_same_clocks_at_one_instant(
    story: Story, data: st.DataObject
) -> None:
    expected = service_clocks(story.events)
    order = data.draw(st.permutations(story.events))
    again = data.draw(st.lists(st.sampled_from(story.events), max_size=len(story.events)))
    noisy = list(order)
    for event in again:
        noisy.insert(data.draw(st.integers(0, len(noisy))), event)

    assert service_clocks(noisy) == expected
    plain = oracle.compute(story.events, calendars=CALENDARS, start=at(0), end=at(0, day=3))
    shuffled = oracle.compute(noisy, calendars=CALENDARS, start=at(0), end=at(0, day=3))
    assert shuffled.totals == plain.totals


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(story=one_instant_stories())
def test_the_service_agrees_with_the_oracle_at_one_instant(story: Story) -> None:
    assert disagreements(story.events) == []


# --- the generator -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def history() -> histories.History:
    return histories.generate(7, 600, days=10.0)


def test_the_generator_is_deterministic_for_a_seed(history: histories.History) -> None:
    again = histories.generate(7, 600, days=10.0)
    other = histories.generate(8, 600, days=10.0)

    assert [(e.id, e.time, e.key, e.payload) for e in again.events] == [
        (e.id, e.time, e.key, e.payload) for e in history.events
    ]
    assert [e.payload for e in other.events] != [e.payload for e in history.events]


def test_generated_events_decode_and_are_shaped_like_the_service_desks(
    history: histories.History,
) -> None:
    calendars = [e for e in history.events if e.type.endswith("CalendarChanged")]
    assert [e.key for e in history.events[: len(calendars)]] == [
        histories.BUSINESS_CALENDAR_ID,
        histories.ROUND_THE_CLOCK_CALENDAR_ID,
    ]
    seen: set[str] = set()
    last_time: dict[str, datetime] = {}
    last_version: dict[str, int] = {}
    for event in history.events:
        message = event.decode()
        assert event.tenant_id == history.tenant
        assert event.id not in seen
        seen.add(event.id)
        assert event.time < history.end
        ticket = getattr(message, "ticket", None)
        if isinstance(ticket, pb.Ticket):
            assert ticket.id
            assert ticket.tenant_id == history.tenant
            assert ticket.version >= 1
            assert all((ticket.type, ticket.channel, ticket.priority, ticket.status))
            assert ticket.contact_id == event.key
            assert ticket.customer_tier
            assert ticket.HasField("create_time")
            assert ticket.HasField("first_touch_time")
            assert ticket.first_touch_time.ToDatetime(tzinfo=UTC) <= event.time
            assert event.subject == f"tickets/{ticket.id}"
            # Per ticket, the events come in causal (time) order.
            assert last_time.get(ticket.id, event.time) <= event.time
            last_time[ticket.id] = event.time
        if isinstance(message, events_pb2.MessageAdded):
            assert message.message.send_time.ToDatetime(tzinfo=UTC) == event.time
        # Per ticket, the desk's versions: never lower than before, one per change.
        version = ticket.version if isinstance(ticket, pb.Ticket) else 0
        if isinstance(message, events_pb2.MessageAdded):
            ticket_id, version = message.message.ticket_id, message.ticket_version
            assert version >= 1
        if version:
            tid = ticket.id if isinstance(ticket, pb.Ticket) else ticket_id
            assert last_version.get(tid, version) <= version
            last_version[tid] = version
    # They survive the trip through Kafka's headers unchanged.
    for event in history.events[::97]:
        assert Event.from_kafka(event.key.encode(), event.payload, event.kafka_headers()) == event


def test_generated_first_response_flags_match_the_earliest_public_agent_reply(
    history: histories.History,
) -> None:
    flagged = {}
    for event in history.events:
        message = event.decode()
        if isinstance(message, events_pb2.MessageAdded) and message.first_response:
            flagged[message.message.ticket_id] = event.time

    result = oracle.compute(history.events, start=history.start, end=history.end)

    answered = {
        t.ticket_id: t.first_response.send
        for t in result.tickets.values()
        if t.first_response is not None
    }
    assert flagged == answered


def test_generated_histories_have_the_realistic_mix(history: histories.History) -> None:
    types = Counter(e.type.rsplit(".", 1)[1] for e in history.events)
    for name in (
        "TicketCreated",
        "TicketUpdated",
        "TicketStatusChanged",
        "InteractionLinked",
        "MessageAdded",
        "ReceiptRecorded",
        "SlaBreached",
        "SlaTargetMet",
        "MentionReceived",
        "SurveySent",
        "SurveyAnswered",
    ):
        assert types[name] > 0, name

    result = oracle.compute(
        history.events, calendars=history.calendars, start=history.start, end=history.end
    )
    tickets = list(result.tickets.values())
    assert len(tickets) == 600
    assert any(t.first_touch < t.create_time for t in tickets)  # touched before the ticket
    assert any(t.first_response is None for t in tickets)  # left unanswered
    assert any(t.reopen_count for t in tickets)
    assert any(t.calendar is None for t in tickets)  # no SLA
    assert {t.calendar for t in tickets} >= {
        (histories.BUSINESS_CALENDAR_ID, 1),
        (histories.ROUND_THE_CLOCK_CALENDAR_ID, 1),
    }
    assert any(t.chasers for t in tickets)
    # "Reply and resolve" in one action: a resolve at the very instant of a reply.
    replies = {
        t.ticket_id: {reply for reply, _, _ in t.nrt}
        | ({t.first_response.send} if t.first_response else set())
        for t in tickets
    }
    assert any(t.first_resolve in replies[t.ticket_id] for t in tickets)
    assert any(t.status == pb.TICKET_STATUS_CLOSED for t in tickets)
    assert any(t.status in oracle.OPEN_STATUSES for t in tickets)
    assert {t.dims["channel"] for t in tickets} == {
        "email",
        "phone",
        "live_chat",
        "social",
        "web_form",
        "mobile",
    }
    assert 0 < result.kpi("sla_first_response").value < 100  # type: ignore[operator]
    assert 0 < result.kpi("share_of_voice").value < 100  # type: ignore[operator]
    assert result.kpi("csat").count > 0
    assert result.kpi("nrt_wall").count > 0
    assert result.kpi("resolved_without_reply").count > 0
    assert result.kpi("green_inside_red_outside").denominator > 0


def test_the_oracle_is_unmoved_by_shuffling_and_redelivering_a_generated_history(
    history: histories.History,
) -> None:
    noisy = histories.shuffled(histories.with_duplicates(history.events, 0.1, seed=1), seed=2)

    plain = oracle.compute(
        history.events, calendars=history.calendars, start=history.start, end=history.end
    )
    again = oracle.compute(noisy, calendars=history.calendars, start=history.start, end=history.end)

    assert again.totals == plain.totals
    assert plain.query(group_by="channel") == again.query(group_by="channel")


def test_generated_sla_due_times_follow_the_ticket_clocks(history: histories.History) -> None:
    due_of: dict[str, datetime] = {}
    for event in history.events:
        message = event.decode()
        if isinstance(message, events_pb2.TicketCreated) and message.ticket.HasField("sla"):
            sla = message.ticket.sla
            calendar = history.calendars[(sla.calendar_id, sla.calendar_version)]
            clock = next(c for c in sla.clocks if c.target == pb.SLA_TARGET_FIRST_RESPONSE)
            due = clock.due_time.ToDatetime(tzinfo=UTC)
            start = clock.start_time.ToDatetime(tzinfo=UTC)
            target = clock.target_duration.ToTimedelta()
            if clock.clock == pb.CLOCK_KIND_BUSINESS:
                assert due == calendar.add_business_time(start, target)
            else:
                assert due == start + target
            due_of[message.ticket.id] = due
        elif isinstance(message, events_pb2.SlaTargetMet | events_pb2.SlaBreached):
            if message.target == pb.SLA_TARGET_FIRST_RESPONSE:
                assert message.due_time.ToDatetime(tzinfo=UTC) == due_of[message.ticket_id]
    assert due_of


def test_the_service_agrees_with_the_oracle_on_every_generated_ticket(
    history: histories.History,
) -> None:
    assert disagreements(history.events, history.calendars)[:5] == []


def test_iter_events_streams_what_generate_returns(history: histories.History) -> None:
    streamed = histories.iter_events(7, 600, days=10.0)

    assert [e.id for e in streamed] == [e.id for e in history.events]


def test_with_duplicates_resends_the_same_events_with_their_ids() -> None:
    story = Story().created(at(9)).customer(at(9)).agent(at(10)).resolve(at(11))

    resent = histories.with_duplicates(story.events, 1.0, seed=5)

    assert len(resent) == 2 * len(story.events)
    assert Counter(e.id for e in resent) == Counter({e.id: 2 for e in story.events})
    for event in story.events:
        first, second = (i for i, e in enumerate(resent) if e.id == event.id)
        assert resent[first] is resent[second]
