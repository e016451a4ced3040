"""Social mentions: identity (network, post id), sentiment, and the author as a contact."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from crm_platform.errors import FieldViolation, InvalidArgument
from crm_servicedesk.domain.sentiment import polarity

# A post "from the future" is a clock problem at the source; a small skew is tolerated.
MAX_CLOCK_SKEW = timedelta(minutes=5)


def mention_id(network: str, post_id: str) -> str:
    """The mention's id: one per (network, post id), whoever ingests it and how often."""
    return f"{network}:{post_id}"


@dataclass(frozen=True, slots=True)
class Mention:
    """A post on a social network about a tracked brand, scored on ingest."""

    mention_id: str
    tenant_id: str
    network: str
    post_id: str
    author_handle: str
    author_followers: int
    text: str
    url: str
    posted_at: datetime
    in_reply_to: str
    brand: str
    sentiment: float
    ingested_at: datetime
    author_contact_id: str = ""
    ticket_id: str = ""

    @classmethod
    def ingest(
        cls,
        *,
        tenant_id: str,
        network: str,
        post_id: str,
        author_handle: str,
        author_followers: int,
        text: str,
        url: str,
        posted_at: datetime,
        in_reply_to: str,
        brand: str,
        at: datetime,
        field_prefix: str = "mention",
    ) -> Mention:
        """A validated mention with its sentiment scored."""
        violations: list[FieldViolation] = []
        if not post_id.strip():
            violations.append(FieldViolation(f"{field_prefix}.post_id", "is required"))
        if not network.strip():
            violations.append(FieldViolation(f"{field_prefix}.network", "is required"))
        if not author_handle.strip():
            violations.append(FieldViolation(f"{field_prefix}.author_handle", "is required"))
        if posted_at > at + MAX_CLOCK_SKEW:
            violations.append(
                FieldViolation(f"{field_prefix}.posted_time", "must not be in the future")
            )
        if violations:
            raise InvalidArgument(violations)
        handle = author_handle.strip().lstrip("@").lower()
        return cls(
            mention_id=mention_id(network, post_id.strip()),
            tenant_id=tenant_id,
            network=network,
            post_id=post_id.strip(),
            author_handle=handle,
            author_followers=author_followers,
            text=text,
            url=url,
            posted_at=posted_at,
            in_reply_to=in_reply_to,
            brand=brand.strip(),
            sentiment=polarity(text),
            ingested_at=at,
        )

    @property
    def author_key(self) -> str:
        """The event key when the author is not a known contact."""
        return f"{self.network}:{self.author_handle}"

    def linked(self, *, contact_id: str = "", ticket_id: str = "") -> Mention:
        """The mention with its author contact and/or the ticket opened from it."""
        return replace(
            self,
            author_contact_id=contact_id or self.author_contact_id,
            ticket_id=ticket_id or self.ticket_id,
        )
