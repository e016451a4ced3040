"""Social mentions: identity, handle normalisation, sentiment and validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crm_platform.errors import InvalidArgument
from crm_servicedesk.domain.mention import MAX_CLOCK_SKEW, Mention, mention_id
from crm_servicedesk.domain.sentiment import SentimentClass, classify, polarity

T0 = datetime(2026, 1, 12, 8, 0, tzinfo=UTC)


def ingest(**overrides: Any) -> Mention:
    args: dict[str, Any] = {
        "tenant_id": "tenant-1",
        "network": "x",
        "post_id": "1234567890",
        "author_handle": "@AcmeFan",
        "author_followers": 1200,
        "text": "Just got my new Acme printer.",
        "url": "https://x.example/AcmeFan/status/1234567890",
        "posted_at": T0 - timedelta(minutes=3),
        "in_reply_to": "",
        "brand": " Acme ",
        "at": T0,
    }
    args.update(overrides)
    return Mention.ingest(**args)


def test_mention_id_is_network_and_post_id() -> None:
    mention = ingest(post_id=" 1234567890 ")
    assert mention.mention_id == mention_id("x", "1234567890") == "x:1234567890"
    assert mention.post_id == "1234567890"


def test_the_same_post_ingested_twice_has_the_same_id() -> None:
    first = ingest(at=T0)
    again = ingest(at=T0 + timedelta(hours=1), author_handle="acmefan")
    assert first.mention_id == again.mention_id


def test_author_handle_is_normalised() -> None:
    mention = ingest(author_handle="  @AcmeFan ")
    assert mention.author_handle == "acmefan"
    assert mention.author_key == "x:acmefan"


def test_ingest_keeps_the_post_and_trims_the_brand() -> None:
    mention = ingest()
    assert mention.brand == "Acme"
    assert mention.posted_at == T0 - timedelta(minutes=3)
    assert mention.ingested_at == T0
    assert mention.author_followers == 1200
    assert (mention.author_contact_id, mention.ticket_id) == ("", "")


def test_angry_post_is_negative() -> None:
    mention = ingest(text="@Acme your printer caught FIRE. Worst product ever, I am furious!!")
    assert mention.sentiment < 0
    assert classify(mention.sentiment) is SentimentClass.NEGATIVE


def test_happy_post_is_positive() -> None:
    mention = ingest(text="Love my new Acme printer, amazing support team! :)")
    assert mention.sentiment > 0
    assert classify(mention.sentiment) is SentimentClass.POSITIVE


def test_empty_text_is_neutral() -> None:
    assert ingest(text="   ").sentiment == 0.0
    assert polarity("") == 0.0


@pytest.mark.parametrize(
    ("score", "expected"),
    [
        (0.05, SentimentClass.POSITIVE),
        (0.049, SentimentClass.NEUTRAL),
        (0.0, SentimentClass.NEUTRAL),
        (-0.049, SentimentClass.NEUTRAL),
        (-0.05, SentimentClass.NEGATIVE),
    ],
)
def test_sentiment_classes_use_the_vader_thresholds(score: float, expected: SentimentClass) -> None:
    assert classify(score) is expected


def test_missing_post_id_is_invalid_under_the_field_prefix() -> None:
    with pytest.raises(InvalidArgument) as raised:
        ingest(post_id="  ", field_prefix="mentions[2]")
    assert [v.field for v in raised.value.violations] == ["mentions[2].post_id"]


def test_default_field_prefix_is_mention() -> None:
    with pytest.raises(InvalidArgument) as raised:
        ingest(post_id="")
    assert [v.field for v in raised.value.violations] == ["mention.post_id"]


def test_post_from_the_future_is_invalid() -> None:
    with pytest.raises(InvalidArgument) as raised:
        ingest(posted_at=T0 + MAX_CLOCK_SKEW + timedelta(seconds=1), field_prefix="batch[0]")
    assert [v.field for v in raised.value.violations] == ["batch[0].posted_time"]


def test_small_clock_skew_is_tolerated() -> None:
    assert ingest(posted_at=T0 + MAX_CLOCK_SKEW).posted_at == T0 + MAX_CLOCK_SKEW


def test_every_violation_is_reported_at_once() -> None:
    with pytest.raises(InvalidArgument) as raised:
        ingest(
            post_id="",
            network=" ",
            author_handle="",
            posted_at=T0 + timedelta(hours=1),
            field_prefix="m",
        )
    assert [v.field for v in raised.value.violations] == [
        "m.post_id",
        "m.network",
        "m.author_handle",
        "m.posted_time",
    ]


def test_linking_sets_the_contact_and_ticket_and_keeps_them_when_not_given() -> None:
    linked = ingest().linked(contact_id="contact-9")
    assert (linked.author_contact_id, linked.ticket_id) == ("contact-9", "")
    both = linked.linked(ticket_id="ticket-3")
    assert (both.author_contact_id, both.ticket_id) == ("contact-9", "ticket-3")
