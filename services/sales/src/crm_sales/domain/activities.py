"""Activities (calls, meetings, emails, tasks) and the tenant's follow-up rule.

An activity is linked to at least one of a contact, a lead and an opportunity, and has a kind
fixed on create; calls and emails may have a direction, meetings and tasks none. It is open
until completed (with its outcome and duration); one can be logged as completed on create.

The follow-up rule (one per tenant, versioned) says whether a purchase — a won opportunity, a
recorded order, or both — schedules a follow-up call ``delay_days`` later, and who owns it. A
purchase is named once (:func:`purchase_of_order`, :func:`purchase_of_win`): an order that
fulfils an opportunity is the purchase of that opportunity, so a deal won, reopened, won again
and fulfilled by an order is one purchase with one follow-up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from crm_platform.errors import FailedPrecondition
from crm_sales.domain._checks import Violations, check_version, parse_update_mask, required_text

ACTIVITY_COMPLETED = "ACTIVITY_COMPLETED"
MAX_DELAY_DAYS = 365
MAX_DURATION_SECONDS = 10 * 365 * 24 * 3600
RULE_SUBJECT = "follow-up-rule"


class ActivityKind(StrEnum):
    """What an activity is."""

    CALL = "call"
    MEETING = "meeting"
    EMAIL = "email"
    TASK = "task"

    @property
    def has_direction(self) -> bool:
        """Whether an activity of this kind has a direction (calls and emails)."""
        return self in (ActivityKind.CALL, ActivityKind.EMAIL)


class ActivityDirection(StrEnum):
    """Who started a call or an email."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"


class ActivityStatus(StrEnum):
    """Open until done."""

    OPEN = "open"
    COMPLETED = "completed"


@dataclass(frozen=True, slots=True)
class FollowUpOrigin:
    """The rule (id and version) that scheduled a follow-up call and the purchase after which."""

    rule_id: str
    rule_version: int
    purchase: str


@dataclass(frozen=True, slots=True)
class ActivityInput:
    """What a caller sets on an activity (the kind only on create)."""

    kind: ActivityKind | None = None
    subject: str = ""
    notes: str = ""
    direction: ActivityDirection | None = None
    outcome: str = ""
    duration_seconds: int = 0
    due_time: datetime | None = None
    completed_time: datetime | None = None
    contact_id: str = ""
    lead_id: str = ""
    opportunity_id: str = ""
    owner_id: str = ""


ACTIVITY_MASK = (
    "subject",
    "notes",
    "direction",
    "outcome",
    "duration_seconds",
    "due_time",
    "contact_id",
    "lead_id",
    "opportunity_id",
    "owner_id",
)
"""The fields an update may change."""

LINKS = ("contact_id", "lead_id", "opportunity_id")


def _check_duration(value: int, field: str, violations: Violations) -> None:
    if value < 0:
        violations.add(field, "must not be negative")
    elif value > MAX_DURATION_SECONDS:
        violations.add(field, f"at most {MAX_DURATION_SECONDS} seconds")


@dataclass(frozen=True, slots=True)
class Activity:
    """An activity at one version."""

    id: str
    tenant_id: str
    kind: ActivityKind
    subject: str
    notes: str
    direction: ActivityDirection | None
    outcome: str
    duration_seconds: int
    due_time: datetime | None
    completed_time: datetime | None
    status: ActivityStatus
    contact_id: str
    lead_id: str
    opportunity_id: str
    owner_id: str
    follow_up: FollowUpOrigin | None
    event_key: str
    version: int
    create_time: datetime
    update_time: datetime

    @classmethod
    def create(
        cls,
        *,
        id: str,
        tenant_id: str,
        fields: ActivityInput,
        event_key: str,
        now: datetime,
        follow_up: FollowUpOrigin | None = None,
    ) -> Activity:
        """Version 1, open, or completed when ``completed_time`` is given; ``InvalidArgument``
        listing every bad field. ``event_key`` is chosen by the caller (:func:`activity_key`)."""
        violations = Violations()
        if fields.kind is None:
            violations.add("activity.kind", "is required")
        subject = required_text(fields.subject, "activity.subject", violations)
        _check_duration(fields.duration_seconds, "activity.duration_seconds", violations)
        if fields.kind is not None:
            _check_direction(fields.kind, fields.direction, violations)
        _check_links(fields.contact_id, fields.lead_id, fields.opportunity_id, violations)
        violations.raise_if_any()
        assert fields.kind is not None
        done = fields.completed_time is not None
        return cls(
            id=id,
            tenant_id=tenant_id,
            kind=fields.kind,
            subject=subject,
            notes=fields.notes.strip(),
            direction=fields.direction,
            outcome=fields.outcome.strip(),
            duration_seconds=fields.duration_seconds,
            due_time=fields.due_time,
            completed_time=fields.completed_time,
            status=ActivityStatus.COMPLETED if done else ActivityStatus.OPEN,
            contact_id=fields.contact_id.strip(),
            lead_id=fields.lead_id.strip(),
            opportunity_id=fields.opportunity_id.strip(),
            owner_id=fields.owner_id.strip(),
            follow_up=follow_up,
            event_key=event_key,
            version=1,
            create_time=now,
            update_time=now,
        )

    @property
    def subject_name(self) -> str:
        """The aggregate's name in errors and events."""
        return f"activities/{self.id}"

    def apply_update(
        self,
        changes: ActivityInput,
        paths: Sequence[str],
        expected_version: int | None,
        now: datetime,
    ) -> ActivityUpdate:
        """The next version with the fields ``paths`` names replaced: ``InvalidArgument``,
        then ``StaleVersion``; no change, no new version."""
        violations = Violations()
        named = parse_update_mask(paths, ACTIVITY_MASK, violations)
        values: dict[str, object] = {}
        for name in named:
            value = getattr(changes, name)
            values[name] = value.strip() if isinstance(value, str) else value
        if "subject" in named:
            values["subject"] = required_text(changes.subject, "activity.subject", violations)
        if "duration_seconds" in named:
            _check_duration(changes.duration_seconds, "activity.duration_seconds", violations)
        direction = values.get("direction", self.direction)
        _check_direction(self.kind, direction, violations)  # type: ignore[arg-type]
        links = [str(values.get(name, getattr(self, name))) for name in LINKS]
        if any(name in named for name in LINKS):
            _check_links(links[0], links[1], links[2], violations)
        violations.raise_if_any()
        check_version(self.subject_name, expected_version, self.version)
        changed = tuple(name for name in named if getattr(self, name) != values[name])
        if not changed:
            return ActivityUpdate(self, ())
        updated = replace(
            self,
            **{name: values[name] for name in changed},  # type: ignore[arg-type]
            version=self.version + 1,
            update_time=now,
        )
        return ActivityUpdate(updated, changed)

    def complete(
        self,
        outcome: str,
        duration_seconds: int,
        completed_time: datetime | None,
        expected_version: int | None,
        now: datetime,
    ) -> Activity:
        """Completed with its outcome: ``InvalidArgument``, ``StaleVersion``, then
        FAILED_PRECONDITION ``ACTIVITY_COMPLETED`` if it is completed already."""
        violations = Violations()
        _check_duration(duration_seconds, "duration_seconds", violations)
        violations.raise_if_any()
        check_version(self.subject_name, expected_version, self.version)
        if self.status is ActivityStatus.COMPLETED:
            raise FailedPrecondition(ACTIVITY_COMPLETED, self.subject_name, "is completed already")
        return replace(
            self,
            outcome=outcome.strip() or self.outcome,
            duration_seconds=duration_seconds or self.duration_seconds,
            completed_time=completed_time or now,
            status=ActivityStatus.COMPLETED,
            version=self.version + 1,
            update_time=now,
        )


@dataclass(frozen=True, slots=True)
class ActivityUpdate:
    """The outcome of an update: the activity and the fields that changed."""

    activity: Activity
    changed_paths: tuple[str, ...]


def _check_direction(
    kind: ActivityKind, direction: ActivityDirection | None, violations: Violations
) -> None:
    if direction is not None and not kind.has_direction:
        violations.add("activity.direction", f"a {kind.value} has no direction")


def _check_links(
    contact_id: str, lead_id: str, opportunity_id: str, violations: Violations
) -> None:
    if not (contact_id.strip() or lead_id.strip() or opportunity_id.strip()):
        violations.add(
            "activity.contact_id", "link the activity to a contact, a lead or an opportunity"
        )


def activity_key(contact_id: str, opportunity_key: str | None, lead_key: str | None) -> str:
    """The Kafka key of an activity's events: its contact, else its opportunity's key, else
    its lead's key."""
    return contact_id or opportunity_key or lead_key or ""


# --- the follow-up rule -------------------------------------------------------------------------


class FollowUpOwner(StrEnum):
    """How a follow-up call's owner is chosen."""

    DEAL_OWNER = "deal_owner"
    CONFIGURED = "configured"


@dataclass(frozen=True, slots=True)
class FollowUpRuleInput:
    """What a caller sets on the rule."""

    enabled: bool = False
    after_order: bool = False
    after_won_deal: bool = False
    delay_days: int = 0
    owner: FollowUpOwner | None = None
    owner_id: str = ""


@dataclass(frozen=True, slots=True)
class FollowUpRule:
    """A tenant's follow-up rule at one version (version 0: never set, schedules nothing)."""

    id: str
    tenant_id: str
    enabled: bool
    after_order: bool
    after_won_deal: bool
    delay_days: int
    owner: FollowUpOwner | None
    owner_id: str
    version: int
    update_time: datetime | None

    @classmethod
    def unset(cls, tenant_id: str) -> FollowUpRule:
        """The rule of a tenant that never set one."""
        return cls("", tenant_id, False, False, False, 0, None, "", 0, None)

    def set(
        self,
        fields: FollowUpRuleInput,
        expected_version: int | None,
        new_id: str,
        now: datetime,
    ) -> FollowUpRule:
        """The next version: ``InvalidArgument``, then ``StaleVersion``. The id is kept from
        the first version on (``new_id`` names the first)."""
        violations = Violations()
        if not 0 <= fields.delay_days <= MAX_DELAY_DAYS:
            violations.add("rule.delay_days", f"must be 0 to {MAX_DELAY_DAYS}")
        if fields.enabled:
            if fields.owner is None:
                violations.add("rule.owner", "is required when the rule is enabled")
            if not fields.owner_id.strip():
                violations.add(
                    "rule.owner_id",
                    "is required when the rule is enabled (the owner, or the fallback of "
                    "DEAL_OWNER)",
                )
            if not (fields.after_order or fields.after_won_deal):
                violations.add(
                    "rule.after_order", "an enabled rule needs after_order or after_won_deal"
                )
        violations.raise_if_any()
        check_version(RULE_SUBJECT, expected_version, self.version)
        return FollowUpRule(
            id=self.id or new_id,
            tenant_id=self.tenant_id,
            enabled=fields.enabled,
            after_order=fields.after_order,
            after_won_deal=fields.after_won_deal,
            delay_days=fields.delay_days,
            owner=fields.owner,
            owner_id=fields.owner_id.strip(),
            version=self.version + 1,
            update_time=now,
        )

    def follow_up_for(
        self, *, order: bool, deal_owner: str, at: datetime
    ) -> tuple[str, datetime] | None:
        """The owner and due time of the follow-up call after a purchase at ``at`` (an order
        if ``order``, else a won deal), or ``None`` when the rule schedules none."""
        if not self.enabled or not (self.after_order if order else self.after_won_deal):
            return None
        owner = self.owner_id
        if self.owner is FollowUpOwner.DEAL_OWNER and deal_owner:
            owner = deal_owner
        return owner, at + timedelta(days=self.delay_days)


def purchase_of_order(order_id: str, opportunity_id: str) -> str:
    """The purchase an order is: its opportunity's, if it fulfils one."""
    return f"opportunities/{opportunity_id}" if opportunity_id else f"orders/{order_id}"


def purchase_of_win(opportunity_id: str) -> str:
    """The purchase a won opportunity is."""
    return f"opportunities/{opportunity_id}"
