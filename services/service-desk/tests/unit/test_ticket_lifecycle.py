"""The ticket lifecycle: transitions, reopen, closed tickets, status effects of messages,
first touch and field updates (no SLA policy involved)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import product
from typing import Any

import pytest

from crm_platform.errors import FailedPrecondition, InvalidArgument
from crm_servicedesk.domain.ticket import TRANSITIONS, Interaction, Message, Ticket
from crm_servicedesk.domain.values import (
    AuthorType,
    Channel,
    InteractionKind,
    Priority,
    TicketStatus,
    TicketType,
    Visibility,
)

T0 = datetime(2026, 1, 12, 8, 0, tzinfo=UTC)
S = TicketStatus

# How to reach each status from NEW (the shortest legal path).
PATH_TO: dict[TicketStatus, tuple[TicketStatus, ...]] = {
    S.NEW: (),
    S.OPEN: (S.OPEN,),
    S.PENDING_CUSTOMER: (S.PENDING_CUSTOMER,),
    S.ON_HOLD: (S.ON_HOLD,),
    S.RESOLVED: (S.RESOLVED,),
    S.CLOSED: (S.RESOLVED, S.CLOSED),
}

# The lifecycle as the product defines it, written out independently of TRANSITIONS.
EXPECTED_LIFECYCLE: dict[TicketStatus, set[TicketStatus]] = {
    S.NEW: {S.OPEN, S.PENDING_CUSTOMER, S.ON_HOLD, S.RESOLVED},
    S.OPEN: {S.PENDING_CUSTOMER, S.ON_HOLD, S.RESOLVED},
    S.PENDING_CUSTOMER: {S.OPEN, S.ON_HOLD, S.RESOLVED},
    S.ON_HOLD: {S.OPEN, S.PENDING_CUSTOMER, S.RESOLVED},
    S.RESOLVED: {S.OPEN, S.CLOSED},
    S.CLOSED: set(),
}


def minutes(value: int) -> timedelta:
    return timedelta(minutes=value)


def new_ticket(**overrides: Any) -> Ticket:
    args: dict[str, Any] = {
        "ticket_id": "ticket-1",
        "tenant_id": "tenant-1",
        "type_": TicketType.INCIDENT,
        "channel": Channel.EMAIL,
        "priority": Priority.HIGH,
        "subject": "Printer on fire",
        "description": "It is on fire.",
        "contact_id": "contact-1",
        "customer_tier": "gold",
        "assignee_id": "agent-1",
        "team_id": "team-1",
        "tags": ("hardware",),
        "category": "devices",
        "product": "printer",
        "first_touch_at": None,
        "interactions": (),
        "source_mention_id": "",
        "at": T0,
    }
    args.update(overrides)
    return Ticket.open(**args)


def ticket_in(status: TicketStatus) -> Ticket:
    """A ticket moved to ``status`` one minute per step after T0."""
    ticket = new_ticket()
    for step, to in enumerate(PATH_TO[status], start=1):
        ticket, _ = ticket.transition(to, T0 + minutes(step), None)
    assert ticket.status is status
    return ticket


def message(
    author: AuthorType,
    at: datetime,
    visibility: Visibility = Visibility.PUBLIC,
    message_id: str = "m-1",
) -> Message:
    return Message(
        message_id=message_id,
        ticket_id="ticket-1",
        tenant_id="tenant-1",
        author_type=author,
        author_id=f"{author.value}-1",
        visibility=visibility,
        channel=Channel.EMAIL,
        body="Hello",
        sent_at=at,
    )


def interaction(at: datetime, kind: InteractionKind = InteractionKind.MISSED_CALL) -> Interaction:
    return Interaction(kind=kind, channel=Channel.PHONE, occurred_at=at)


ALL_MOVES = [(a, b) for a, b in product(TicketStatus, TicketStatus) if a is not b]
ALLOWED_MOVES = [(a, b) for a, b in ALL_MOVES if b in TRANSITIONS[a]]
FORBIDDEN_MOVES = [(a, b) for a, b in ALL_MOVES if b not in TRANSITIONS[a]]


# --- opening ------------------------------------------------------------------------------------


def test_open_ticket_is_new_with_normalised_fields() -> None:
    ticket = new_ticket(subject="  Printer on fire ", tags=["a", "b", "a"], priority=None)
    assert ticket.status is S.NEW
    assert ticket.subject == "Printer on fire"
    assert ticket.tags == ("a", "b")
    assert ticket.priority is Priority.NORMAL
    assert ticket.created_at == ticket.updated_at == T0
    assert ticket.version == 1
    assert ticket.reopen_count == 0
    assert ticket.first_response_at is None
    assert ticket.resolved_at is None
    assert ticket.status_history == ()
    assert ticket.sla is None


def test_open_rejects_a_blank_subject() -> None:
    with pytest.raises(InvalidArgument) as raised:
        new_ticket(subject="   ")
    assert [v.field for v in raised.value.violations] == ["ticket.subject"]


# --- transitions --------------------------------------------------------------------------------


def test_lifecycle_is_the_documented_one() -> None:
    assert {status: set(targets) for status, targets in TRANSITIONS.items()} == EXPECTED_LIFECYCLE


@pytest.mark.parametrize(("from_status", "to_status"), ALLOWED_MOVES)
def test_allowed_transition_moves_the_ticket_and_records_the_change(
    from_status: TicketStatus, to_status: TicketStatus
) -> None:
    ticket = ticket_in(from_status)
    at = T0 + minutes(30)
    moved, change = ticket.transition(to_status, at, None, reason="because")
    assert moved.status is to_status
    assert change is not None
    assert (change.from_status, change.to_status, change.at, change.reason) == (
        from_status,
        to_status,
        at,
        "because",
    )
    assert moved.status_history == (*ticket.status_history, change)
    assert moved.updated_at == at
    assert moved.version == ticket.version


@pytest.mark.parametrize(("from_status", "to_status"), FORBIDDEN_MOVES)
def test_forbidden_transition_is_a_failed_precondition(
    from_status: TicketStatus, to_status: TicketStatus
) -> None:
    ticket = ticket_in(from_status)
    with pytest.raises(FailedPrecondition) as raised:
        ticket.transition(to_status, T0 + minutes(30), None)
    assert raised.value.violation_type == "ILLEGAL_TRANSITION"
    assert raised.value.subject == "ticket"


@pytest.mark.parametrize("status", list(TicketStatus))
def test_moving_to_the_current_status_is_a_no_op(status: TicketStatus) -> None:
    ticket = ticket_in(status)
    moved, change = ticket.transition(status, T0 + minutes(30), None)
    assert moved is ticket
    assert change is None


def test_resolving_sets_resolved_at_and_closing_keeps_it() -> None:
    resolved, _ = new_ticket().transition(S.RESOLVED, T0 + minutes(10), None)
    assert resolved.resolved_at == T0 + minutes(10)
    closed, _ = resolved.transition(S.CLOSED, T0 + minutes(20), None)
    assert closed.resolved_at == T0 + minutes(10)


def test_reopen_counts_and_clears_resolved_at() -> None:
    ticket = ticket_in(S.RESOLVED)
    reopened, change = ticket.transition(S.OPEN, T0 + minutes(10), None)
    assert change is not None
    assert change.reopen
    assert reopened.reopen_count == 1
    assert reopened.resolved_at is None
    again, _ = reopened.transition(S.RESOLVED, T0 + minutes(20), None)
    assert again.resolved_at == T0 + minutes(20)
    twice, _ = again.transition(S.OPEN, T0 + minutes(30), None)
    assert twice.reopen_count == 2


@pytest.mark.parametrize(("from_status", "to_status"), ALLOWED_MOVES)
def test_only_resolved_to_open_is_a_reopen(
    from_status: TicketStatus, to_status: TicketStatus
) -> None:
    moved, change = ticket_in(from_status).transition(to_status, T0 + minutes(30), None)
    assert change is not None
    is_reopen = (from_status, to_status) == (S.RESOLVED, S.OPEN)
    assert change.reopen is is_reopen
    assert moved.reopen_count == (1 if is_reopen else 0)


def test_updated_at_never_moves_backwards() -> None:
    ticket, _ = new_ticket().transition(S.OPEN, T0 + minutes(30), None)
    late, _ = ticket.transition(S.ON_HOLD, T0 + minutes(5), None)
    assert late.updated_at == T0 + minutes(30)


def test_counts_as_open_for_the_assignee_only_while_in_the_backlog() -> None:
    assert ticket_in(S.ON_HOLD).counts_as_open_for == "agent-1"
    assert ticket_in(S.RESOLVED).counts_as_open_for == ""
    assert ticket_in(S.CLOSED).counts_as_open_for == ""


# --- closed tickets -----------------------------------------------------------------------------


def test_closed_ticket_takes_no_messages() -> None:
    with pytest.raises(FailedPrecondition) as raised:
        ticket_in(S.CLOSED).add_message(message(AuthorType.CUSTOMER, T0 + minutes(10)), None)
    assert raised.value.violation_type == "TICKET_CLOSED"


def test_closed_ticket_takes_no_updates() -> None:
    with pytest.raises(FailedPrecondition) as raised:
        ticket_in(S.CLOSED).update({"priority": Priority.LOW}, T0 + minutes(10))
    assert raised.value.violation_type == "TICKET_CLOSED"


def test_closed_ticket_takes_no_links() -> None:
    with pytest.raises(FailedPrecondition) as raised:
        ticket_in(S.CLOSED).link_interaction(interaction(T0 - minutes(5)), T0 + minutes(10))
    assert raised.value.violation_type == "TICKET_CLOSED"


# --- status effects of messages -----------------------------------------------------------------


def test_first_public_agent_reply_opens_a_new_ticket() -> None:
    ticket, change, first = new_ticket().add_message(
        message(AuthorType.AGENT, T0 + minutes(5)), None
    )
    assert ticket.status is S.OPEN
    assert change is not None
    assert (change.from_status, change.to_status, change.at) == (S.NEW, S.OPEN, T0 + minutes(5))
    assert first
    assert ticket.first_response_at == T0 + minutes(5)
    assert ticket.updated_at == T0 + minutes(5)


def test_later_agent_reply_is_not_a_first_response() -> None:
    ticket, _, _ = new_ticket().add_message(message(AuthorType.AGENT, T0 + minutes(5)), None)
    again, change, first = ticket.add_message(message(AuthorType.AGENT, T0 + minutes(9)), None)
    assert not first
    assert change is None
    assert again.first_response_at == T0 + minutes(5)


@pytest.mark.parametrize(
    ("author", "visibility"),
    [
        (AuthorType.BOT, Visibility.PUBLIC),
        (AuthorType.BOT, Visibility.INTERNAL),
        (AuthorType.AGENT, Visibility.INTERNAL),
        (AuthorType.CUSTOMER, Visibility.PUBLIC),
    ],
)
def test_messages_that_are_not_human_replies_leave_a_new_ticket_new(
    author: AuthorType, visibility: Visibility
) -> None:
    ticket, change, first = new_ticket().add_message(
        message(author, T0 + minutes(5), visibility), None
    )
    assert ticket.status is S.NEW
    assert change is None
    assert not first
    assert ticket.first_response_at is None


def test_customer_message_takes_a_ticket_out_of_pending_customer() -> None:
    ticket, change, _ = ticket_in(S.PENDING_CUSTOMER).add_message(
        message(AuthorType.CUSTOMER, T0 + minutes(30)), None
    )
    assert ticket.status is S.OPEN
    assert change is not None
    assert change.from_status is S.PENDING_CUSTOMER
    assert change.reason == "customer replied"


def test_customer_message_reopens_a_resolved_ticket() -> None:
    ticket, change, _ = ticket_in(S.RESOLVED).add_message(
        message(AuthorType.CUSTOMER, T0 + minutes(30)), None
    )
    assert ticket.status is S.OPEN
    assert change is not None
    assert change.reopen
    assert ticket.reopen_count == 1
    assert ticket.resolved_at is None


def test_customer_message_leaves_an_on_hold_ticket_on_hold() -> None:
    ticket, change, _ = ticket_in(S.ON_HOLD).add_message(
        message(AuthorType.CUSTOMER, T0 + minutes(30)), None
    )
    assert ticket.status is S.ON_HOLD
    assert change is None


def test_message_long_before_the_ticket_is_rejected() -> None:
    with pytest.raises(InvalidArgument) as raised:
        new_ticket().add_message(message(AuthorType.CUSTOMER, T0 - timedelta(days=400)), None)
    assert [v.field for v in raised.value.violations] == ["message.send_time"]


# --- first touch --------------------------------------------------------------------------------


def test_first_touch_defaults_to_creation() -> None:
    assert new_ticket().first_touch_at == T0


def test_first_touch_is_the_earliest_of_creation_given_touch_and_interactions() -> None:
    ticket = new_ticket(
        first_touch_at=T0 - minutes(30),
        interactions=[interaction(T0 - minutes(10)), interaction(T0 - minutes(50))],
    )
    assert ticket.first_touch_at == T0 - minutes(50)
    assert len(ticket.interactions) == 2

    given_earliest = new_ticket(
        first_touch_at=T0 - minutes(90), interactions=[interaction(T0 - minutes(50))]
    )
    assert given_earliest.first_touch_at == T0 - minutes(90)


def test_first_touch_after_creation_is_invalid() -> None:
    with pytest.raises(InvalidArgument) as raised:
        new_ticket(first_touch_at=T0 + minutes(1))
    assert [v.field for v in raised.value.violations] == ["ticket.first_touch_time"]


def test_interaction_after_creation_is_invalid_with_its_index() -> None:
    with pytest.raises(InvalidArgument) as raised:
        new_ticket(interactions=[interaction(T0 - minutes(5)), interaction(T0 + minutes(1))])
    assert [v.field for v in raised.value.violations] == ["interactions[1].occurred_time"]


def test_linking_an_earlier_interaction_moves_the_first_touch_earlier() -> None:
    ticket = new_ticket(first_touch_at=T0 - minutes(10))
    linked = ticket.link_interaction(interaction(T0 - minutes(40)), T0 + minutes(5))
    assert linked.first_touch_at == T0 - minutes(40)
    assert linked.interactions[-1].occurred_at == T0 - minutes(40)
    assert linked.updated_at == T0 + minutes(5)


def test_linking_a_later_interaction_keeps_the_first_touch() -> None:
    ticket = new_ticket(first_touch_at=T0 - minutes(10))
    linked = ticket.link_interaction(interaction(T0 + minutes(3)), T0 + minutes(5))
    assert linked.first_touch_at == T0 - minutes(10)
    assert len(linked.interactions) == 1


def test_linking_a_future_interaction_is_invalid() -> None:
    with pytest.raises(InvalidArgument) as raised:
        new_ticket().link_interaction(interaction(T0 + minutes(10)), T0 + minutes(5))
    assert [v.field for v in raised.value.violations] == ["interaction.occurred_time"]


# --- updates ------------------------------------------------------------------------------------


def test_update_sets_fields_and_reports_the_changed_ones_sorted() -> None:
    ticket = new_ticket()
    updated, changed = ticket.update(
        {"subject": "Printer smoking", "priority": Priority.URGENT, "team_id": "team-1"},
        T0 + minutes(5),
    )
    assert changed == ["priority", "subject"]
    assert updated.subject == "Printer smoking"
    assert updated.priority is Priority.URGENT
    assert updated.updated_at == T0 + minutes(5)


def test_update_without_a_real_change_returns_the_same_ticket() -> None:
    ticket = new_ticket()
    updated, changed = ticket.update({"priority": Priority.HIGH}, T0 + minutes(5))
    assert updated is ticket
    assert changed == []


def test_update_deduplicates_tags() -> None:
    updated, changed = new_ticket().update({"tags": ("x", "y", "x")}, T0 + minutes(5))
    assert changed == ["tags"]
    assert updated.tags == ("x", "y")


def test_update_rejects_every_unknown_field() -> None:
    with pytest.raises(InvalidArgument) as raised:
        new_ticket().update({"status": S.OPEN, "created_at": T0, "priority": Priority.LOW}, T0)
    assert [v.field for v in raised.value.violations] == [
        "update_mask.created_at",
        "update_mask.status",
    ]


def test_update_rejects_a_blank_subject() -> None:
    with pytest.raises(InvalidArgument) as raised:
        new_ticket().update({"subject": "  "}, T0 + minutes(5))
    assert [v.field for v in raised.value.violations] == ["ticket.subject"]


def test_update_with_duplicate_tags_equal_to_the_current_ones_changes_nothing() -> None:
    ticket = new_ticket(tags=("hardware",))
    updated, changed = ticket.update({"tags": ("hardware", "hardware")}, T0 + minutes(5))
    assert changed == []
    assert updated is ticket


def test_update_trims_the_subject_like_open_does() -> None:
    ticket = new_ticket(subject="Printer on fire")
    updated, changed = ticket.update({"subject": "  Printer on fire  "}, T0 + minutes(5))
    assert updated.subject == "Printer on fire"
    assert changed == []
