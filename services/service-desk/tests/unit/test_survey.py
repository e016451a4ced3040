"""Satisfaction surveys: sent, answered once, expiring; comments scored for sentiment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crm_platform.errors import FailedPrecondition
from crm_servicedesk.domain.sentiment import SentimentClass, classify
from crm_servicedesk.domain.survey import Survey, SurveyAnswer, SurveyStatus
from crm_servicedesk.domain.values import Channel

T0 = datetime(2026, 1, 12, 8, 0, tzinfo=UTC)
VALID_FOR = timedelta(days=7)


def sent() -> Survey:
    return Survey.send(
        survey_id="survey-1",
        tenant_id="tenant-1",
        ticket_id="ticket-1",
        contact_id="contact-1",
        channel=Channel.EMAIL,
        at=T0,
        valid_for=VALID_FOR,
        reason="resolved",
    )


def test_sent_survey_is_open_until_it_expires() -> None:
    survey = sent()
    assert survey.sent_at == T0
    assert survey.expires_at == T0 + VALID_FOR
    assert survey.reason == "resolved"
    assert not survey.answered
    assert survey.answer is None
    assert survey.status(T0) is SurveyStatus.SENT
    assert survey.status(T0 + VALID_FOR - timedelta(microseconds=1)) is SurveyStatus.SENT


def test_unanswered_survey_is_expired_from_its_expiry_time() -> None:
    survey = sent()
    assert survey.status(T0 + VALID_FOR) is SurveyStatus.EXPIRED
    assert survey.status(T0 + VALID_FOR + timedelta(days=30)) is SurveyStatus.EXPIRED


def test_answering_records_the_answer_and_its_time() -> None:
    answer = SurveyAnswer(csat=5, nps=9, effort=2, perceived_wait_minutes=10)
    answered = sent().answer_with(answer, T0 + timedelta(hours=3))
    assert answered.answered
    assert answered.answer is not None
    assert answered.answer.answered_at == T0 + timedelta(hours=3)
    assert (answered.answer.csat, answered.answer.nps, answered.answer.effort) == (5, 9, 2)
    assert answered.answer.perceived_wait_minutes == 10
    assert answered.answer.comment == ""
    assert answered.answer.comment_sentiment is None


def test_answered_survey_stays_answered_after_its_expiry() -> None:
    answered = sent().answer_with(SurveyAnswer(csat=4), T0 + timedelta(hours=1))
    assert answered.status(T0 + timedelta(hours=2)) is SurveyStatus.ANSWERED
    assert answered.status(T0 + VALID_FOR + timedelta(days=1)) is SurveyStatus.ANSWERED


def test_second_answer_is_refused() -> None:
    survey = sent()
    answered = survey.answer_with(SurveyAnswer(csat=4), T0 + timedelta(hours=1))
    with pytest.raises(FailedPrecondition) as raised:
        answered.answer_with(SurveyAnswer(csat=1), T0 + timedelta(hours=2))
    assert raised.value.violation_type == "SURVEY_ANSWERED"
    assert answered.answer is not None
    assert answered.answer.csat == 4
    assert not survey.answered  # the original value is untouched


def test_answer_at_or_after_expiry_is_refused() -> None:
    with pytest.raises(FailedPrecondition) as raised:
        sent().answer_with(SurveyAnswer(csat=4), T0 + VALID_FOR)
    assert raised.value.violation_type == "SURVEY_EXPIRED"


def test_positive_comment_is_scored_positive_and_trimmed() -> None:
    answer = SurveyAnswer(csat=5, comment="  Great service, thank you so much!  ")
    answered = sent().answer_with(answer, T0 + timedelta(hours=1))
    assert answered.answer is not None
    assert answered.answer.comment == "Great service, thank you so much!"
    assert answered.answer.comment_sentiment is not None
    assert classify(answered.answer.comment_sentiment) is SentimentClass.POSITIVE


def test_negative_comment_is_scored_negative() -> None:
    answer = SurveyAnswer(csat=1, comment="Terrible, slow and rude support. Awful!!")
    answered = sent().answer_with(answer, T0 + timedelta(hours=1))
    assert answered.answer is not None
    assert answered.answer.comment_sentiment is not None
    assert classify(answered.answer.comment_sentiment) is SentimentClass.NEGATIVE


def test_blank_comment_has_no_sentiment() -> None:
    answered = sent().answer_with(SurveyAnswer(csat=3, comment="   "), T0 + timedelta(hours=1))
    assert answered.answer is not None
    assert answered.answer.comment == ""
    assert answered.answer.comment_sentiment is None


def test_caller_supplied_sentiment_and_time_are_overwritten() -> None:
    forged = SurveyAnswer(csat=3, comment_sentiment=0.9, answered_at=T0 - timedelta(days=1))
    answered = sent().answer_with(forged, T0 + timedelta(hours=1))
    assert answered.answer is not None
    assert answered.answer.comment_sentiment is None
    assert answered.answer.answered_at == T0 + timedelta(hours=1)
