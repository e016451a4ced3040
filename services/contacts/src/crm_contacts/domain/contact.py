"""The ``Contact`` aggregate: a person the company deals with, and the rules for changing one."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple

from crm_contacts.domain._field_mask import MaskPath, MaskSpec, parse_update_mask
from crm_contacts.domain._validation import (
    Violations,
    clean_custom_attributes,
    clean_reference,
    clean_text,
    edit_custom_attributes,
    has_control_characters,
    join_path,
)
from crm_contacts.domain.identity import (
    Identity,
    IdentityInput,
    IdentityKey,
    IdentityKind,
    check_phone_region,
    parse_identity,
)
from crm_contacts.domain.tier import Tier
from crm_platform.errors import FailedPrecondition, InvalidArgument, StaleVersion

MAX_NAME_LENGTH = 200
MAX_IDENTITIES = 50
MAX_SEGMENTS = 50
MAX_SEGMENT_LENGTH = 64
ILLEGAL_LIFECYCLE_TRANSITION = "ILLEGAL_LIFECYCLE_TRANSITION"


class LifecycleStage(StrEnum):
    """Where a contact stands in the customer lifecycle (same member names as the API enum)."""

    PROSPECT = "PROSPECT"
    CUSTOMER = "CUSTOMER"
    FORMER_CUSTOMER = "FORMER_CUSTOMER"
    WIN_BACK = "WIN_BACK"


# A prospect never was a customer, so it cannot become a *former* one; a former customer comes
# back through a win-back campaign, which either succeeds (customer) or fails (former again).
LIFECYCLE_TRANSITIONS: Mapping[LifecycleStage, frozenset[LifecycleStage]] = {
    LifecycleStage.PROSPECT: frozenset({LifecycleStage.CUSTOMER}),
    LifecycleStage.CUSTOMER: frozenset({LifecycleStage.FORMER_CUSTOMER}),
    LifecycleStage.FORMER_CUSTOMER: frozenset({LifecycleStage.WIN_BACK}),
    LifecycleStage.WIN_BACK: frozenset({LifecycleStage.CUSTOMER, LifecycleStage.FORMER_CUSTOMER}),
}


def can_move(current: LifecycleStage, target: LifecycleStage) -> bool:
    """Whether a contact may go from ``current`` to ``target`` (staying put is always allowed)."""
    return current is target or target in LIFECYCLE_TRANSITIONS[current]


@dataclass(frozen=True, slots=True)
class ConsentInput:
    """The consent choices a caller sends (the time they were recorded is set by the service)."""

    email_marketing: bool = False
    sms_marketing: bool = False
    phone_marketing: bool = False
    data_processing: bool = False


CONSENT_CHOICES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(ConsentInput))


@dataclass(frozen=True, slots=True)
class Consent:
    """What the contact agreed to, and when that last changed (evidence for data protection)."""

    email_marketing: bool = False
    sms_marketing: bool = False
    phone_marketing: bool = False
    data_processing: bool = False
    update_time: datetime | None = None

    def choices(self) -> ConsentInput:
        """The choices alone, without the time."""
        return ConsentInput(
            self.email_marketing, self.sms_marketing, self.phone_marketing, self.data_processing
        )


@dataclass(frozen=True, slots=True)
class ContactInput:
    """A contact's caller-supplied fields, not yet validated (create body or update changes).

    ``None`` for ``lifecycle_stage``/``tier`` means "not given": the defaults (PROSPECT,
    STANDARD) on create, a violation when an update mask names the field.
    """

    given_name: str = ""
    family_name: str = ""
    display_name: str = ""
    organization_id: str = ""
    job_title: str = ""
    lifecycle_stage: LifecycleStage | None = None
    tier: Tier | None = None
    segments: Sequence[str] = ()
    owner_id: str = ""
    consent: ConsentInput = field(default_factory=ConsentInput)
    custom_attributes: Mapping[str, str] = field(default_factory=dict)
    identities: Sequence[IdentityInput] = ()


_NAME_FIELDS = ("given_name", "family_name", "display_name")
CONTACT_MASK = MaskSpec(
    updatable=(
        "given_name",
        "family_name",
        "display_name",
        "organization_id",
        "job_title",
        "lifecycle_stage",
        "tier",
        "segments",
        "owner_id",
        "consent",
        "custom_attributes",
        "identities",
    ),
    output_only=frozenset(
        {"id", "tenant_id", "version", "create_time", "update_time", "consent.update_time"}
    ),
    sub_fields={"consent": frozenset(CONSENT_CHOICES)},
    map_fields=frozenset({"custom_attributes"}),
)


class ContactUpdate(NamedTuple):
    """The outcome of an update: the contact after it, and the mask paths that really changed."""

    contact: Contact
    changed_paths: list[str]


@dataclass(frozen=True, slots=True)
class Contact:
    """A person: names, lifecycle, tier, segments, consent, identities on every channel.

    Build one with :meth:`create` and change it with :meth:`apply_update`; both validate.
    Instances are immutable (treat ``custom_attributes`` as read-only too); ``version``
    starts at 1 and grows by one with every update that changes something.
    """

    id: str
    tenant_id: str
    given_name: str
    family_name: str
    display_name: str
    organization_id: str
    job_title: str
    lifecycle_stage: LifecycleStage
    tier: Tier
    segments: tuple[str, ...]
    owner_id: str
    consent: Consent
    custom_attributes: Mapping[str, str]
    identities: tuple[Identity, ...]
    version: int
    create_time: datetime
    update_time: datetime

    @classmethod
    def create(
        cls,
        *,
        id: str,
        tenant_id: str,
        fields: ContactInput,
        now: datetime,
        default_region: str | None = None,
        field_prefix: str = "contact",
    ) -> Contact:
        """Validate ``fields`` and return a new contact at version 1.

        ``default_region`` reads phone numbers written without a country code;
        ``field_prefix`` starts every violation's path (``contact.given_name``).
        Raises ``InvalidArgument`` listing every violation.
        """
        check_phone_region(default_region)
        violations = Violations()
        clean = _FieldCleaner(fields, violations, field_prefix, default_region)
        contact = cls(
            id=id,
            tenant_id=tenant_id,
            given_name=clean.text("given_name"),
            family_name=clean.text("family_name"),
            display_name=clean.text("display_name"),
            organization_id=clean.reference("organization_id"),
            job_title=clean.text("job_title"),
            lifecycle_stage=clean.lifecycle_stage(creating=True),
            tier=clean.tier(creating=True),
            segments=clean.segments(),
            owner_id=clean.reference("owner_id"),
            consent=Consent(**dataclasses.asdict(fields.consent), update_time=now),
            custom_attributes=clean.custom_attributes(),
            identities=clean.identities(),
            version=1,
            create_time=now,
            update_time=now,
        )
        if not any(getattr(contact, name) for name in _NAME_FIELDS):
            violations.add(_name_rule_path(field_prefix), _NAME_REQUIRED)
        violations.raise_if_any()
        return contact

    def apply_update(
        self,
        changes: ContactInput,
        mask_paths: Sequence[str],
        expected_version: int | None,
        now: datetime,
        *,
        default_region: str | None = None,
        field_prefix: str = "contact",
        mask_field: str = "update_mask",
    ) -> ContactUpdate:
        """Replace the fields named by ``mask_paths`` with those of ``changes``.

        Fields outside the mask keep their values whatever ``changes`` holds. Raises
        ``InvalidArgument`` for bad mask paths (on ``mask_field``) and bad values (all at once),
        then ``StaleVersion`` when ``expected_version`` is given and is not the current version,
        then ``FailedPrecondition`` (``ILLEGAL_LIFECYCLE_TRANSITION``) for a forbidden stage
        change. When nothing actually changes, the same contact comes back with no paths and
        its version untouched.
        """
        check_phone_region(default_region)
        violations = Violations()
        mask = parse_update_mask(mask_paths, CONTACT_MASK, violations, mask_field=mask_field)
        clean = _FieldCleaner(changes, violations, field_prefix, default_region)
        values: dict[str, Any] = {}
        attributes = edit_custom_attributes(
            violations,
            field_prefix,
            self.custom_attributes,
            changes.custom_attributes,
            [p.sub for p in mask if p.field == "custom_attributes" and p.sub is not None],
        )
        consent = self.consent.choices()
        for path in mask:
            if path.field == "custom_attributes":
                if path.sub is None:
                    attributes = clean.custom_attributes()
            elif path.field == "consent":
                if path.sub is None:
                    consent = changes.consent
                else:
                    sub_change = {path.sub: getattr(changes.consent, path.sub)}
                    consent = dataclasses.replace(consent, **sub_change)
            else:
                values[path.field] = clean.field(path.field)
        names = {name: values.get(name, getattr(self, name)) for name in _NAME_FIELDS}
        if not any(names.values()):
            violations.add(_name_rule_path(field_prefix), _NAME_REQUIRED)
        violations.raise_if_any()

        subject = f"contacts/{self.id}"
        if expected_version is not None and expected_version != self.version:
            raise StaleVersion(subject, expected_version, self.version)
        target = values.get("lifecycle_stage", self.lifecycle_stage)
        assert isinstance(target, LifecycleStage)
        if not can_move(self.lifecycle_stage, target):
            raise FailedPrecondition(
                ILLEGAL_LIFECYCLE_TRANSITION,
                subject,
                f"lifecycle stage cannot go from {self.lifecycle_stage.value} to {target.value}",
            )

        new_consent = self.consent
        if consent != self.consent.choices():
            new_consent = Consent(**dataclasses.asdict(consent), update_time=now)
        candidate = dataclasses.replace(
            self, consent=new_consent, custom_attributes=attributes, **values
        )
        changed = [str(p) for p in mask if _value_at(candidate, p) != _value_at(self, p)]
        if not changed:
            return ContactUpdate(self, [])
        return ContactUpdate(
            dataclasses.replace(candidate, version=self.version + 1, update_time=now), changed
        )

    @property
    def identity_keys(self) -> list[IdentityKey]:
        """The tenant-wide unique keys of this contact's identities."""
        return [identity.lookup_key for identity in self.identities]

    def as_input(self) -> ContactInput:
        """This contact's caller-settable fields, e.g. as the base of a full replacement."""
        return ContactInput(
            given_name=self.given_name,
            family_name=self.family_name,
            display_name=self.display_name,
            organization_id=self.organization_id,
            job_title=self.job_title,
            lifecycle_stage=self.lifecycle_stage,
            tier=self.tier,
            segments=self.segments,
            owner_id=self.owner_id,
            consent=self.consent.choices(),
            custom_attributes=dict(self.custom_attributes),
            identities=[identity.as_input() for identity in self.identities],
        )


_NAME_REQUIRED = "at least one of given_name, family_name and display_name must be non-blank"


def _name_rule_path(prefix: str) -> str:
    """The name rule spans three fields, so it is reported on the contact itself (as the API's
    own validation does); without a prefix there is no such path, so on ``given_name``."""
    return prefix or "given_name"


def _value_at(contact: Contact, path: MaskPath) -> object:
    """The value a mask path addresses, for change detection."""
    value = getattr(contact, path.field)
    if path.sub is None:
        return dict(value) if path.field == "custom_attributes" else value
    if path.field == "custom_attributes":
        return contact.custom_attributes.get(path.sub)
    return getattr(value, path.sub)


class _FieldCleaner:
    """Validates and normalises one field of a :class:`ContactInput` at a time."""

    def __init__(
        self,
        fields: ContactInput,
        violations: Violations,
        prefix: str,
        default_region: str | None,
    ) -> None:
        self._fields = fields
        self._violations = violations
        self._prefix = prefix
        self._region = default_region

    def _path(self, name: str) -> str:
        return join_path(self._prefix, name)

    def field(self, name: str) -> object:
        """The clean value of top-level field ``name`` in an update (not used by create)."""
        if name in ("given_name", "family_name", "display_name", "job_title"):
            return self.text(name)
        if name in ("organization_id", "owner_id"):
            return self.reference(name)
        if name == "lifecycle_stage":
            return self.lifecycle_stage(creating=False)
        if name == "tier":
            return self.tier(creating=False)
        if name == "segments":
            return self.segments()
        if name == "identities":
            return self.identities()
        raise AssertionError(f"no rule for contact field {name!r}")

    def text(self, name: str) -> str:
        """A name or title: trimmed, at most 200 characters."""
        value: str = getattr(self._fields, name)
        return clean_text(self._violations, self._path(name), value, max_length=MAX_NAME_LENGTH)

    def reference(self, name: str) -> str:
        """The id of an owner or organisation; empty means none."""
        value: str = getattr(self._fields, name)
        return clean_reference(self._violations, self._path(name), value)

    def lifecycle_stage(self, *, creating: bool) -> LifecycleStage:
        """The stage; PROSPECT when a new contact gives none."""
        stage = self._fields.lifecycle_stage
        if stage is None and not creating:
            self._violations.add(self._path("lifecycle_stage"), "is required")
        return stage or LifecycleStage.PROSPECT

    def tier(self, *, creating: bool) -> Tier:
        """The tier; STANDARD when a new contact gives none."""
        tier = self._fields.tier
        if tier is None and not creating:
            self._violations.add(self._path("tier"), "is required")
        return tier or Tier.STANDARD

    def custom_attributes(self) -> dict[str, str]:
        """The whole custom-attribute map, checked."""
        return clean_custom_attributes(
            self._violations, self._prefix, self._fields.custom_attributes
        )

    def segments(self) -> tuple[str, ...]:
        """Trimmed, de-duplicated (first occurrence kept, case-sensitive) segment names."""
        segments = self._fields.segments
        field_path = self._path("segments")
        unique = list(dict.fromkeys(s.strip() for s in segments))
        if len(unique) > MAX_SEGMENTS:
            # Only the count: per-entry violations of a huge list would not fit in a response.
            self._violations.add(
                field_path, f"must have at most {MAX_SEGMENTS} distinct entries, got {len(unique)}"
            )
            return tuple(unique)
        for index, segment in enumerate(segments):
            entry = f"{field_path}[{index}]"
            text = segment.strip()
            if not text:
                self._violations.add(entry, "must not be blank")
            elif len(text) > MAX_SEGMENT_LENGTH:
                self._violations.add(
                    entry, f"must be at most {MAX_SEGMENT_LENGTH} characters, got {len(text)}"
                )
            elif has_control_characters(text):
                self._violations.add(entry, "must not contain control characters")
        return tuple(unique)

    def identities(self) -> tuple[Identity, ...]:
        """Parsed identities, no duplicate keys, exactly one primary per kind present."""
        raw = self._fields.identities
        field_path = self._path("identities")
        if len(raw) > MAX_IDENTITIES:
            self._violations.add(
                field_path, f"must have at most {MAX_IDENTITIES} entries, got {len(raw)}"
            )
            return ()
        parsed: list[Identity] = []
        first_index_of: dict[IdentityKey, int] = {}
        primary_index_of: dict[IdentityKind, int] = {}
        for index, item in enumerate(raw):
            entry = f"{field_path}[{index}]"
            try:
                identity = parse_identity(item, field=entry, default_region=self._region)
            except InvalidArgument as error:
                self._violations.absorb(error)
                continue
            key = identity.lookup_key
            if key in first_index_of:
                self._violations.add(
                    join_path(entry, "value"),
                    f"duplicates {field_path}[{first_index_of[key]}] ({key.value})",
                )
                continue
            first_index_of[key] = index
            if identity.primary:
                if identity.kind in primary_index_of:
                    self._violations.add(
                        join_path(entry, "primary"),
                        f"only one {identity.kind.value} identity can be primary; "
                        f"{field_path}[{primary_index_of[identity.kind]}] already is",
                    )
                    continue
                primary_index_of[identity.kind] = index
            parsed.append(identity)
        # No primary for a kind: the first identity of that kind becomes it.
        has_primary = set(primary_index_of)
        result: list[Identity] = []
        for identity in parsed:
            if identity.kind not in has_primary:
                has_primary.add(identity.kind)
                identity = dataclasses.replace(identity, primary=True)
            result.append(identity)
        return tuple(result)
