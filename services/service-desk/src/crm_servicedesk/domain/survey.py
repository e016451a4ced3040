"""Satisfaction surveys: sent once per request, answered at most once, until they expire."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from crm_platform.errors import FailedPrecondition
from crm_servicedesk.domain.sentiment import polarity
from crm_servicedesk.domain.values import Channel


class SurveyStatus(StrEnum):
    """A survey's state; EXPIRED is derived from the expiry time when read."""

    SENT = "sent"
    ANSWERED = "answered"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class SurveyAnswer:
    """The customer's answer; every item optional (at least one given, checked at the API)."""

    csat: int | None = None
    nps: int | None = None
    effort: int | None = None
    perceived_wait_minutes: int | None = None
    expected_wait_minutes: int | None = None
    purchase_intent: int | None = None
    loyalty: int | None = None
    comment: str = ""
    comment_sentiment: float | None = None
    answered_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Survey:
    """A survey about a ticket, sent to the ticket's requester."""

    survey_id: str
    tenant_id: str
    ticket_id: str
    contact_id: str
    channel: Channel
    sent_at: datetime
    expires_at: datetime
    answered: bool = False
    answer: SurveyAnswer | None = None
    # Why it was sent: "resolved" (automatic) or "on_demand".
    reason: str = "on_demand"

    @classmethod
    def send(
        cls,
        *,
        survey_id: str,
        tenant_id: str,
        ticket_id: str,
        contact_id: str,
        channel: Channel,
        at: datetime,
        valid_for: timedelta,
        reason: str,
    ) -> Survey:
        """A survey sent now, open for answers for ``valid_for``."""
        return cls(
            survey_id=survey_id,
            tenant_id=tenant_id,
            ticket_id=ticket_id,
            contact_id=contact_id,
            channel=channel,
            sent_at=at,
            expires_at=at + valid_for,
            reason=reason,
        )

    def status(self, now: datetime) -> SurveyStatus:
        """ANSWERED once answered; EXPIRED when unanswered past its expiry."""
        if self.answered:
            return SurveyStatus.ANSWERED
        return SurveyStatus.EXPIRED if now >= self.expires_at else SurveyStatus.SENT

    def answer_with(self, answer: SurveyAnswer, at: datetime) -> Survey:
        """The answered survey; FAILED_PRECONDITION if answered before or expired."""
        status = self.status(at)
        if status is SurveyStatus.ANSWERED:
            raise FailedPrecondition("SURVEY_ANSWERED", "survey", "the survey was already answered")
        if status is SurveyStatus.EXPIRED:
            raise FailedPrecondition("SURVEY_EXPIRED", "survey", "the survey has expired")
        scored = replace(
            answer,
            comment=answer.comment.strip(),
            comment_sentiment=polarity(answer.comment) if answer.comment.strip() else None,
            answered_at=at,
        )
        return replace(self, answered=True, answer=scored)
