"""Campaigns: a marketing programme on one channel, with a budget, dated costs, a target segment
and a status, and the interactions it has with contacts.

Status: DRAFT → ACTIVE → COMPLETED, and DRAFT or ACTIVE → CANCELLED (FAILED_PRECONDITION
``ILLEGAL_CAMPAIGN_TRANSITION`` otherwise). A COMPLETED or CANCELLED campaign's fields no longer
change (``CAMPAIGN_CLOSED``); its channel changes only while DRAFT (``CAMPAIGN_NOT_DRAFT``: the
sends already judged by their channel's consent would be misread), and its currency only while
no cost is recorded (every cost is in the campaign's currency: nothing mixes currencies). Costs
are recorded in any status (invoices arrive after the campaign ended).

Interactions are facts, recorded once: their identity is (tenant, campaign, contact, kind,
external id), from which their id is derived (:func:`interaction_id`), so a resent item is a
duplicate, never a second record. Which interactions a campaign takes, and what a send needs,
is :func:`refusal`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from enum import StrEnum

from crm_platform.errors import FailedPrecondition
from crm_sales.domain._checks import (
    Violations,
    check_version,
    join_path,
    parse_update_mask,
    required_text,
)
from crm_sales.domain.money import amount_problem, currency_problem

ILLEGAL_CAMPAIGN_TRANSITION = "ILLEGAL_CAMPAIGN_TRANSITION"
CAMPAIGN_CLOSED = "CAMPAIGN_CLOSED"
CAMPAIGN_NOT_DRAFT = "CAMPAIGN_NOT_DRAFT"
MAX_AMOUNT = 2**63 - 1
"""The largest amount in minor units (int64 in the contract)."""


class CampaignChannel(StrEnum):
    """The channel a campaign reaches people on."""

    EMAIL = "email"
    SEARCH = "search"
    SOCIAL = "social"
    PHONE = "phone"
    DIRECT_MAIL = "direct_mail"
    EVENT = "event"


class CampaignStatus(StrEnum):
    """Where a campaign is."""

    DRAFT = "draft"
    ACTIVE = "active"
    COMPLETED = "completed"
    CANCELLED = "cancelled"

    @property
    def closed(self) -> bool:
        """Whether the campaign is over (its fields no longer change)."""
        return self in (CampaignStatus.COMPLETED, CampaignStatus.CANCELLED)


CAMPAIGN_TRANSITIONS: dict[CampaignStatus, frozenset[CampaignStatus]] = {
    CampaignStatus.DRAFT: frozenset({CampaignStatus.ACTIVE, CampaignStatus.CANCELLED}),
    CampaignStatus.ACTIVE: frozenset({CampaignStatus.COMPLETED, CampaignStatus.CANCELLED}),
    CampaignStatus.COMPLETED: frozenset(),
    CampaignStatus.CANCELLED: frozenset(),
}
"""The status changes a campaign may make."""


@dataclass(frozen=True, slots=True)
class CampaignInput:
    """What a caller sets on a campaign."""

    name: str = ""
    channel: CampaignChannel | None = None
    budget_minor: int = 0
    currency: str = ""
    target_segment: str = ""


CAMPAIGN_MASK = ("name", "channel", "budget_minor", "currency", "target_segment")
"""The fields an update may change (not the status, not the costs)."""


@dataclass(frozen=True, slots=True)
class CostInput:
    """A cost entry as a caller gives it."""

    amount_minor: int
    currency: str
    cost_date: str
    description: str


@dataclass(frozen=True, slots=True)
class CampaignCost:
    """One dated cost of a campaign, in its currency."""

    id: str
    tenant_id: str
    campaign_id: str
    amount_minor: int
    currency: str
    cost_date: str
    description: str
    record_time: datetime


@dataclass(frozen=True, slots=True)
class Campaign:
    """A campaign at one version."""

    id: str
    tenant_id: str
    name: str
    channel: CampaignChannel
    budget_minor: int
    currency: str
    target_segment: str
    status: CampaignStatus
    cancel_reason: str
    cost_total_minor: int
    cost_entry_count: int
    activate_time: datetime | None
    close_time: datetime | None
    version: int
    create_time: datetime
    update_time: datetime

    @classmethod
    def create(cls, *, id: str, tenant_id: str, fields: CampaignInput, now: datetime) -> Campaign:
        """Version 1, DRAFT; ``InvalidArgument`` listing every bad field."""
        violations = Violations()
        clean = _clean(fields)
        _check(clean, violations, "campaign")
        violations.raise_if_any()
        assert clean.channel is not None  # checked above
        return cls(
            id=id,
            tenant_id=tenant_id,
            name=clean.name,
            channel=clean.channel,
            budget_minor=clean.budget_minor,
            currency=clean.currency,
            target_segment=clean.target_segment,
            status=CampaignStatus.DRAFT,
            cancel_reason="",
            cost_total_minor=0,
            cost_entry_count=0,
            activate_time=None,
            close_time=None,
            version=1,
            create_time=now,
            update_time=now,
        )

    @property
    def subject(self) -> str:
        """The aggregate's name in errors and events."""
        return f"campaigns/{self.id}"

    def apply_update(
        self,
        changes: CampaignInput,
        paths: Sequence[str],
        expected_version: int | None,
        now: datetime,
    ) -> CampaignUpdate:
        """The next version with the fields ``paths`` names replaced: ``InvalidArgument``,
        then ``StaleVersion``, then the status rules; no change, no new version."""
        violations = Violations()
        named = parse_update_mask(paths, CAMPAIGN_MASK, violations)
        clean = _clean(changes)
        merged = replace(
            CampaignInput(**{name: getattr(self, name) for name in CAMPAIGN_MASK}),
            **{name: getattr(clean, name) for name in named},
        )
        _check(merged, violations, "campaign")
        violations.raise_if_any()
        check_version(self.subject, expected_version, self.version)
        changed = tuple(name for name in named if getattr(self, name) != getattr(merged, name))
        if not changed:
            return CampaignUpdate(self, ())
        if self.status.closed:
            raise FailedPrecondition(
                CAMPAIGN_CLOSED, self.subject, f"is {self.status.value}: it no longer changes"
            )
        if "channel" in changed and self.status is not CampaignStatus.DRAFT:
            raise FailedPrecondition(
                CAMPAIGN_NOT_DRAFT,
                self.subject,
                f"is {self.status.value}: the channel changes only while draft",
            )
        if "currency" in changed and self.cost_entry_count:
            violations.add(
                "campaign.currency",
                "cannot change once costs are recorded: every cost is in the campaign's currency",
            )
            violations.raise_if_any()
        updated = replace(
            self,
            **{name: getattr(merged, name) for name in changed},
            version=self.version + 1,
            update_time=now,
        )
        return CampaignUpdate(updated, changed)

    def activate(self, expected_version: int | None, now: datetime) -> Campaign:
        """DRAFT → ACTIVE."""
        return replace(
            self._become(CampaignStatus.ACTIVE, expected_version, now), activate_time=now
        )

    def complete(self, expected_version: int | None, now: datetime) -> Campaign:
        """ACTIVE → COMPLETED."""
        return replace(
            self._become(CampaignStatus.COMPLETED, expected_version, now), close_time=now
        )

    def cancel(self, reason: str, expected_version: int | None, now: datetime) -> Campaign:
        """DRAFT or ACTIVE → CANCELLED, with an optional reason."""
        cancelled = self._become(CampaignStatus.CANCELLED, expected_version, now)
        return replace(cancelled, cancel_reason=reason.strip(), close_time=now)

    def record_cost(
        self,
        cost_id: str,
        fields: CostInput,
        expected_version: int | None,
        now: datetime,
    ) -> tuple[Campaign, CampaignCost]:
        """The next version with the cost added to its total, and the entry: ``InvalidArgument``
        (amount, a currency other than the campaign's, date), then ``StaleVersion``."""
        violations = Violations()
        if (problem := amount_problem(fields.amount_minor)) is not None:
            violations.add("cost.amount_minor", problem)
        elif fields.amount_minor == 0:
            violations.add("cost.amount_minor", "must be more than 0")
        elif self.cost_total_minor + fields.amount_minor > MAX_AMOUNT:
            violations.add("cost.amount_minor", "would take the cost total beyond int64")
        if (problem := currency_problem(fields.currency)) is not None:
            violations.add("cost.currency", problem)
        elif fields.currency != self.currency:
            violations.add(
                "cost.currency",
                f"must be the campaign's currency {self.currency}: costs are never mixed "
                "across currencies",
            )
        try:
            date.fromisoformat(fields.cost_date)
            if len(fields.cost_date) != 10:
                raise ValueError(fields.cost_date)
        except ValueError:
            violations.add("cost.cost_date", "must be a date as YYYY-MM-DD")
        violations.raise_if_any()
        check_version(self.subject, expected_version, self.version)
        entry = CampaignCost(
            id=cost_id,
            tenant_id=self.tenant_id,
            campaign_id=self.id,
            amount_minor=fields.amount_minor,
            currency=fields.currency,
            cost_date=fields.cost_date,
            description=fields.description.strip(),
            record_time=now,
        )
        updated = replace(
            self,
            cost_total_minor=self.cost_total_minor + fields.amount_minor,
            cost_entry_count=self.cost_entry_count + 1,
            version=self.version + 1,
            update_time=now,
        )
        return updated, entry

    def _become(
        self, status: CampaignStatus, expected_version: int | None, now: datetime
    ) -> Campaign:
        check_version(self.subject, expected_version, self.version)
        if status not in CAMPAIGN_TRANSITIONS[self.status]:
            raise FailedPrecondition(
                ILLEGAL_CAMPAIGN_TRANSITION,
                self.subject,
                f"is {self.status.value}: cannot become {status.value}",
            )
        return replace(self, status=status, version=self.version + 1, update_time=now)


@dataclass(frozen=True, slots=True)
class CampaignUpdate:
    """The outcome of an update: the campaign and the fields that changed."""

    campaign: Campaign
    changed_paths: tuple[str, ...]


def _clean(fields: CampaignInput) -> CampaignInput:
    return replace(
        fields,
        name=fields.name.strip(),
        currency=fields.currency.strip(),
        target_segment=fields.target_segment.strip(),
    )


def _check(fields: CampaignInput, violations: Violations, prefix: str) -> None:
    required_text(fields.name, join_path(prefix, "name"), violations)
    if fields.channel is None:
        violations.add(join_path(prefix, "channel"), "is required")
    if (problem := amount_problem(fields.budget_minor)) is not None:
        violations.add(join_path(prefix, "budget_minor"), problem)
    if (problem := currency_problem(fields.currency)) is not None:
        violations.add(join_path(prefix, "currency"), problem)


# --- interactions -----------------------------------------------------------------------------


class InteractionKind(StrEnum):
    """What happened between a campaign and a contact."""

    SENT = "sent"
    DELIVERED = "delivered"
    OPENED = "opened"
    CLICKED = "clicked"
    RESPONDED = "responded"
    UNSUBSCRIBED = "unsubscribed"


class IngestRefusal(StrEnum):
    """Why an item of an interaction stream is not recorded."""

    INVALID = "invalid"
    CAMPAIGN_NOT_FOUND = "campaign_not_found"
    CONTACT_NOT_FOUND = "contact_not_found"
    NO_CONSENT = "no_consent"
    CAMPAIGN_NOT_ACTIVE = "campaign_not_active"


class ConsentFlag(StrEnum):
    """The consents the contacts service records on a contact (crm.contacts.v1.Consent)."""

    EMAIL_MARKETING = "email_marketing"
    PHONE_MARKETING = "phone_marketing"
    DATA_PROCESSING = "data_processing"


CHANNEL_CONSENT: dict[CampaignChannel, ConsentFlag] = {
    CampaignChannel.EMAIL: ConsentFlag.EMAIL_MARKETING,
    CampaignChannel.PHONE: ConsentFlag.PHONE_MARKETING,
    CampaignChannel.SEARCH: ConsentFlag.DATA_PROCESSING,
    CampaignChannel.SOCIAL: ConsentFlag.DATA_PROCESSING,
    CampaignChannel.DIRECT_MAIL: ConsentFlag.DATA_PROCESSING,
    CampaignChannel.EVENT: ConsentFlag.DATA_PROCESSING,
}
"""The consent a send on a channel needs. The contacts service records marketing consent for
e-mail and phone (and SMS, which no campaign channel is); for the other channels it records no
channel of its own, so an addressed send there needs the contact's consent to the processing of
their personal data."""


UNSUBSCRIBE_WITHDRAWS = frozenset({ConsentFlag.EMAIL_MARKETING, ConsentFlag.PHONE_MARKETING})
"""The consents an unsubscribe withdraws in the contacts service (a channel's own marketing
consent; data processing is wider than one channel and is not withdrawn by it)."""


@dataclass(frozen=True, slots=True)
class ContactConsent:
    """A contact's consent as the contacts service has it, and since when."""

    flags: frozenset[ConsentFlag]
    update_time: datetime | None

    def allows(self, channel: CampaignChannel) -> bool:
        """Whether a send on ``channel`` has the consent it needs."""
        return CHANNEL_CONSENT[channel] in self.flags


@dataclass(frozen=True, slots=True)
class InteractionInput:
    """An interaction as an item of the stream gives it."""

    campaign_id: str
    contact_id: str
    kind: InteractionKind | None
    external_id: str
    occur_time: datetime | None


@dataclass(frozen=True, slots=True)
class Interaction:
    """An interaction as recorded."""

    id: str
    tenant_id: str
    campaign_id: str
    contact_id: str
    kind: InteractionKind
    external_id: str
    channel: CampaignChannel
    occur_time: datetime
    record_time: datetime

    @property
    def subject(self) -> str:
        """The interaction's name in events."""
        return f"campaigns/{self.campaign_id}/interactions/{self.id}"


def interaction_id(
    tenant_id: str, campaign_id: str, contact_id: str, kind: InteractionKind, external_id: str
) -> str:
    """The id of the interaction with this identity: the same identity, the same id (so the
    store's primary key is the idempotency key)."""
    parts = (tenant_id, campaign_id, contact_id, kind.value, external_id)
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
    return digest[:40]


def check_interaction(item: InteractionInput) -> Violations:
    """The item's field problems beyond the proto rules (blank text); empty when it is fine."""
    violations = Violations()
    for name in ("campaign_id", "contact_id", "external_id"):
        if not getattr(item, name).strip():
            violations.add(name, "must be non-blank")
    if item.kind is None:
        violations.add("kind", "is required")
    if item.occur_time is None:
        violations.add("occur_time", "is required")
    return violations


def refusal(
    kind: InteractionKind,
    campaign: Campaign,
    consent: ContactConsent | None,
    unsubscribed_at: datetime | None,
) -> IngestRefusal | None:
    """Why the campaign does not take an interaction of ``kind`` of a contact whose consent is
    ``consent`` (``None``: no such contact) and whose last unsubscribe from the campaign's
    channel was recorded at ``unsubscribed_at``; ``None`` when it takes it.

    Nothing is recorded for a DRAFT campaign, and sends only for an ACTIVE one (deliveries,
    opens, clicks, responses and unsubscribes of earlier sends trail in after it ended). A send
    needs the consent of :data:`CHANNEL_CONSENT`, and after an unsubscribe from the channel:
    for e-mail and phone (whose flag the unsubscribe withdraws in the contacts service, see
    :data:`UNSUBSCRIBE_WITHDRAWS`) a consent changed after the unsubscribe was recorded (given
    again), so a withdrawal that failed still refuses the sends; for the other channels, which
    have no consent of their own to give again, nothing: their unsubscribe is final.
    """
    if campaign.status is CampaignStatus.DRAFT:
        return IngestRefusal.CAMPAIGN_NOT_ACTIVE
    if kind is InteractionKind.SENT and campaign.status is not CampaignStatus.ACTIVE:
        return IngestRefusal.CAMPAIGN_NOT_ACTIVE
    if consent is None:
        return IngestRefusal.CONTACT_NOT_FOUND
    if kind is InteractionKind.SENT:
        if not consent.allows(campaign.channel):
            return IngestRefusal.NO_CONSENT
        if unsubscribed_at is not None:
            if CHANNEL_CONSENT[campaign.channel] not in UNSUBSCRIBE_WITHDRAWS:
                return IngestRefusal.NO_CONSENT  # no consent of its own to give back
            if consent.update_time is None or unsubscribed_at >= consent.update_time:
                return IngestRefusal.NO_CONSENT  # the withdrawal did not reach the contact yet
    return None


@dataclass(frozen=True, slots=True)
class CampaignTouch:
    """One touch of a campaign on a lead (see :class:`crm_sales.domain.lead.Lead`)."""

    campaign_id: str
    interaction_kind: InteractionKind | None
    """``None`` for the lead's creation from the campaign."""
    interaction_id: str
    touch_time: datetime
    lead_created: bool = False
