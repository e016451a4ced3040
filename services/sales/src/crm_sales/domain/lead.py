"""Leads: someone who may buy, from a source, worked until qualified or disqualified.

Status: NEW → WORKING → QUALIFIED | DISQUALIFIED (with a reason); NEW may go straight to
QUALIFIED or DISQUALIFIED. QUALIFIED → CONVERTED is conversion (:meth:`Lead.convert`), which
records the contact, organisation and opportunity it led to. Any other change is
FAILED_PRECONDITION ``ILLEGAL_LEAD_TRANSITION``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from crm_platform.errors import FailedPrecondition
from crm_sales.domain._checks import Violations, check_version, join_path, parse_update_mask
from crm_sales.domain.campaign import CampaignTouch
from crm_sales.domain.territories import (
    NO_PROFILE,
    CompanyProfile,
    TerritoryAssignment,
    clean_profile,
)

ILLEGAL_LEAD_TRANSITION = "ILLEGAL_LEAD_TRANSITION"


class LeadSource(StrEnum):
    """Where a lead came from."""

    WEB_FORM = "web_form"
    SOCIAL = "social"
    CAMPAIGN = "campaign"
    REFERRAL = "referral"
    APPOINTMENT = "appointment"
    EVENT = "event"
    PARTNER = "partner"
    PHONE = "phone"
    IMPORT = "import"


class LeadStatus(StrEnum):
    """Where a lead is in qualification."""

    NEW = "new"
    WORKING = "working"
    QUALIFIED = "qualified"
    DISQUALIFIED = "disqualified"
    CONVERTED = "converted"


LEAD_TRANSITIONS: dict[LeadStatus, frozenset[LeadStatus]] = {
    LeadStatus.NEW: frozenset({LeadStatus.WORKING, LeadStatus.QUALIFIED, LeadStatus.DISQUALIFIED}),
    LeadStatus.WORKING: frozenset({LeadStatus.QUALIFIED, LeadStatus.DISQUALIFIED}),
    LeadStatus.QUALIFIED: frozenset({LeadStatus.CONVERTED}),
    LeadStatus.DISQUALIFIED: frozenset(),
    LeadStatus.CONVERTED: frozenset(),
}
"""The status changes a lead may make."""


@dataclass(frozen=True, slots=True)
class LeadInput:
    """What a caller sets on a lead."""

    contact_id: str = ""
    person_name: str = ""
    company_name: str = ""
    email: str = ""
    phone: str = ""
    source: LeadSource | None = None
    campaign_id: str = ""
    owner_id: str = ""
    origin_mention_id: str = ""
    company_profile: CompanyProfile = NO_PROFILE
    """The company's facts for the territory rules (set on create)."""


LEAD_MASK = (
    "contact_id",
    "person_name",
    "company_name",
    "email",
    "phone",
    "source",
    "campaign_id",
    "owner_id",
    "origin_mention_id",
)
"""The fields an update may change (not the status)."""

_WHO = ("contact_id", "person_name", "company_name", "email", "phone")


@dataclass(frozen=True, slots=True)
class Lead:
    """A lead at one version."""

    id: str
    tenant_id: str
    contact_id: str
    person_name: str
    company_name: str
    email: str
    phone: str
    source: LeadSource
    campaign_id: str
    owner_id: str
    status: LeadStatus
    disqualify_reason: str
    origin_mention_id: str
    event_key: str
    """The Kafka key of its events: the contact id on create, else the lead id (kept)."""
    version: int
    create_time: datetime
    update_time: datetime
    converted_contact_id: str = ""
    converted_organization_id: str = ""
    converted_opportunity_id: str = ""
    campaign_touches: tuple[CampaignTouch, ...] = ()
    """Every campaign touch, in the order recorded (see :meth:`touched`)."""
    company_profile: CompanyProfile = NO_PROFILE
    territory: TerritoryAssignment | None = None
    """The territory rule decision that assigned the lead, if one did."""

    @classmethod
    def create(
        cls,
        *,
        id: str,
        tenant_id: str,
        fields: LeadInput,
        now: datetime,
        field_prefix: str = "lead",
    ) -> Lead:
        """Version 1, status NEW; ``InvalidArgument`` listing every bad field."""
        violations = Violations()
        clean = _clean(fields)
        _check(clean, violations, field_prefix)
        profile = clean_profile(
            fields.company_profile, violations.items, join_path(field_prefix, "company_profile")
        )
        violations.raise_if_any()
        assert clean.source is not None  # checked above
        return cls(
            id=id,
            tenant_id=tenant_id,
            contact_id=clean.contact_id,
            person_name=clean.person_name,
            company_name=clean.company_name,
            email=clean.email,
            phone=clean.phone,
            source=clean.source,
            campaign_id=clean.campaign_id,
            owner_id=clean.owner_id,
            status=LeadStatus.NEW,
            disqualify_reason="",
            origin_mention_id=clean.origin_mention_id,
            event_key=clean.contact_id or id,
            version=1,
            create_time=now,
            update_time=now,
            campaign_touches=(
                (CampaignTouch(clean.campaign_id, None, "", now, lead_created=True),)
                if clean.campaign_id
                else ()
            ),
            company_profile=profile,
        )

    @property
    def subject(self) -> str:
        """The aggregate's name in errors and events."""
        return f"leads/{self.id}"

    def apply_update(
        self,
        changes: LeadInput,
        paths: Sequence[str],
        expected_version: int | None,
        now: datetime,
        *,
        field_prefix: str = "lead",
    ) -> LeadUpdate:
        """The next version with the fields ``paths`` names replaced: ``InvalidArgument``,
        then ``StaleVersion``; no change, no new version."""
        violations = Violations()
        named = parse_update_mask(paths, LEAD_MASK, violations)
        clean = _clean(changes)
        merged = replace(
            LeadInput(**{name: getattr(self, name) for name in LEAD_MASK}),
            **{name: getattr(clean, name) for name in named},
        )
        _check(merged, violations, field_prefix)
        violations.raise_if_any()
        check_version(self.subject, expected_version, self.version)
        changed = tuple(name for name in named if getattr(self, name) != getattr(merged, name))
        if not changed:
            return LeadUpdate(self, ())
        updated = replace(
            self,
            **{name: getattr(merged, name) for name in changed},
            version=self.version + 1,
            update_time=now,
        )
        return LeadUpdate(updated, changed)

    @property
    def open(self) -> bool:
        """Whether the lead is still being worked towards a conversion (campaign touches are
        recorded on open leads only)."""
        return self.status in (LeadStatus.NEW, LeadStatus.WORKING, LeadStatus.QUALIFIED)

    def touched(self, touch: CampaignTouch, now: datetime) -> Lead:
        """The next version with ``touch`` appended. First-touch attribution: a lead without a
        campaign gets the touch's campaign (one set explicitly is kept)."""
        return replace(
            self,
            campaign_touches=(*self.campaign_touches, touch),
            campaign_id=self.campaign_id or touch.campaign_id,
            version=self.version + 1,
            update_time=now,
        )

    def start_working(self, expected_version: int | None, now: datetime) -> Lead:
        """NEW → WORKING."""
        return self._become(LeadStatus.WORKING, "", expected_version, now)

    def qualify(self, expected_version: int | None, now: datetime) -> Lead:
        """NEW or WORKING → QUALIFIED."""
        return self._become(LeadStatus.QUALIFIED, "", expected_version, now)

    def disqualify(self, reason: str, expected_version: int | None, now: datetime) -> Lead:
        """NEW or WORKING → DISQUALIFIED with a non-blank ``reason``."""
        why = reason.strip()
        if not why:
            violations = Violations()
            violations.add("reason", "must be non-blank: say why the lead is disqualified")
            violations.raise_if_any()
        return self._become(LeadStatus.DISQUALIFIED, why, expected_version, now)

    def check_convertible(self, expected_version: int | None) -> None:
        """``StaleVersion``, or FAILED_PRECONDITION unless the lead is QUALIFIED (checked before
        the conversion asks the contacts service for anything)."""
        check_version(self.subject, expected_version, self.version)
        if LeadStatus.CONVERTED not in LEAD_TRANSITIONS[self.status]:
            raise FailedPrecondition(
                ILLEGAL_LEAD_TRANSITION,
                self.subject,
                f"is {self.status.value}: only a qualified lead is converted",
            )

    def convert(
        self,
        *,
        contact_id: str,
        organization_id: str,
        opportunity_id: str,
        expected_version: int | None,
        now: datetime,
    ) -> Lead:
        """QUALIFIED → CONVERTED into the given contact, organisation (may be empty) and
        opportunity."""
        converted = self._become(LeadStatus.CONVERTED, "", expected_version, now)
        return replace(
            converted,
            converted_contact_id=contact_id,
            converted_organization_id=organization_id,
            converted_opportunity_id=opportunity_id,
        )

    def _become(
        self, status: LeadStatus, reason: str, expected_version: int | None, now: datetime
    ) -> Lead:
        check_version(self.subject, expected_version, self.version)
        if status not in LEAD_TRANSITIONS[self.status]:
            raise FailedPrecondition(
                ILLEGAL_LEAD_TRANSITION,
                self.subject,
                f"is {self.status.value}: cannot become {status.value}",
            )
        return replace(
            self,
            status=status,
            disqualify_reason=reason,
            version=self.version + 1,
            update_time=now,
        )


@dataclass(frozen=True, slots=True)
class LeadUpdate:
    """The outcome of an update: the lead and the fields that changed."""

    lead: Lead
    changed_paths: tuple[str, ...]


def _clean(fields: LeadInput) -> LeadInput:
    return replace(
        fields,
        **{name: getattr(fields, name).strip() for name in LEAD_MASK if name != "source"},
    )


def _check(fields: LeadInput, violations: Violations, prefix: str) -> None:
    if fields.source is None:
        violations.add(join_path(prefix, "source"), "is required")
    if not any(getattr(fields, name) for name in _WHO):
        violations.add(
            prefix or "lead",
            "a lead needs contact_id or at least one of person_name, company_name, email, phone",
        )
