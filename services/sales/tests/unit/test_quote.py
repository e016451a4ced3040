"""The quote's life: draft → sent → accepted | rejected | expired; a sent revision is immutable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crm_platform.errors import FailedPrecondition, StaleVersion
from crm_sales.domain.product import Price, Product
from crm_sales.domain.quote import (
    QUOTE_NOT_DRAFT,
    QUOTE_NOT_SENT,
    QUOTE_VALIDITY_PASSED,
    LineInput,
    Quote,
    QuoteInput,
    QuoteStatus,
)

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
PRODUCTS = {"p1": Product("p1", "t", "S1", "Seat", True, (Price("EUR", 1000),), 1, NOW, NOW)}


def draft(valid_for: timedelta = timedelta(days=30)) -> Quote:
    return Quote.draft(
        id="q1",
        tenant_id="t",
        revision=1,
        fields=QuoteInput("o1", "EUR", NOW + valid_for, (LineInput("p1", 2),)),
        products=PRODUCTS,
        event_key="contact-1",
        now=NOW,
    )


def test_a_draft_is_sent_then_accepted_before_it_expires() -> None:
    sent = draft().send(1, NOW)
    assert (sent.status, sent.version, sent.send_time) == (QuoteStatus.SENT, 2, NOW)
    accepted = sent.accept(2, NOW + timedelta(days=1))
    assert (accepted.status, accepted.version) == (QuoteStatus.ACCEPTED, 3)
    assert accepted.close_time == NOW + timedelta(days=1)


def test_a_sent_revision_is_immutable() -> None:
    sent = draft().send(None, NOW)
    with pytest.raises(FailedPrecondition) as info:
        sent.apply_update(QuoteInput(lines=(LineInput("p1", 3),)), ["lines"], PRODUCTS, None, NOW)
    assert info.value.violation_type == QUOTE_NOT_DRAFT


def test_a_draft_update_reprices_and_changes_nothing_when_equal() -> None:
    quote = draft()
    change = quote.apply_update(
        QuoteInput(lines=(LineInput("p1", 3),)), ["lines"], PRODUCTS, 1, NOW
    )
    assert change.changed_paths == ("lines",)
    assert change.quote.totals.net_minor == 3000
    same = quote.apply_update(QuoteInput(lines=(LineInput("p1", 2),)), ["lines"], PRODUCTS, 1, NOW)
    assert same.changed_paths == ()
    assert same.quote is quote


def test_stale_version_is_refused_before_the_state() -> None:
    with pytest.raises(StaleVersion):
        draft().send(1, NOW).send(1, NOW)


def test_only_a_sent_quote_is_accepted_or_rejected_and_not_after_valid_until() -> None:
    with pytest.raises(FailedPrecondition) as info:
        draft().accept(None, NOW)
    assert info.value.violation_type == QUOTE_NOT_SENT
    sent = draft(timedelta(hours=1)).send(None, NOW)
    with pytest.raises(FailedPrecondition) as info:
        sent.accept(None, NOW + timedelta(hours=1))
    assert info.value.violation_type == QUOTE_VALIDITY_PASSED
    rejected = sent.reject("  too expensive ", None, NOW)
    assert (rejected.status, rejected.reason) == (QuoteStatus.REJECTED, "too expensive")


def test_a_quote_past_its_validity_is_not_sent() -> None:
    with pytest.raises(FailedPrecondition) as info:
        draft(timedelta(hours=1)).send(None, NOW + timedelta(hours=2))
    assert info.value.violation_type == QUOTE_VALIDITY_PASSED


def test_expiry_expires_only_a_sent_quote() -> None:
    sent = draft().send(None, NOW)
    expired = sent.expire(NOW + timedelta(days=30))
    assert expired is not None
    assert expired.status is QuoteStatus.EXPIRED
    assert expired.expire(NOW) is None
    assert draft().expire(NOW) is None
    assert sent.accept(None, NOW).expire(NOW) is None
