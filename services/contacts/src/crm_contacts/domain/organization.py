"""The ``Organization`` aggregate: a company (account, B2B buying centre) of contacts."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from crm_contacts.domain._field_mask import MaskPath, MaskSpec, parse_update_mask
from crm_contacts.domain._validation import (
    InvalidValueError,
    Violations,
    clean_custom_attributes,
    clean_reference,
    clean_text,
    edit_custom_attributes,
    join_path,
)
from crm_contacts.domain.domain_names import normalise_domain_name
from crm_contacts.domain.tier import Tier
from crm_platform.errors import StaleVersion

MAX_ORGANIZATION_NAME_LENGTH = 200
MAX_INDUSTRY_LENGTH = 100


@dataclass(frozen=True, slots=True)
class OrganizationInput:
    """An organisation's caller-supplied fields, not yet validated (create body or changes).

    ``tier=None`` means "not given": STANDARD on create, a violation when a mask names it.
    """

    name: str = ""
    domain: str = ""
    industry: str = ""
    tier: Tier | None = None
    owner_id: str = ""
    custom_attributes: Mapping[str, str] = field(default_factory=dict)


ORGANIZATION_MASK = MaskSpec(
    updatable=("name", "domain", "industry", "tier", "owner_id", "custom_attributes"),
    output_only=frozenset({"id", "tenant_id", "version", "create_time", "update_time"}),
    map_fields=frozenset({"custom_attributes"}),
)


class OrganizationUpdate(NamedTuple):
    """The outcome of an update: the organisation after it and the mask paths that changed."""

    organization: Organization
    changed_paths: list[str]


@dataclass(frozen=True, slots=True)
class Organization:
    """A company: name, web domain (lowercase, Unicode form), industry, tier, owner.

    Build one with :meth:`create` and change it with :meth:`apply_update`; both validate.
    ``domain`` is empty when unknown.
    """

    id: str
    tenant_id: str
    name: str
    domain: str
    industry: str
    tier: Tier
    owner_id: str
    custom_attributes: Mapping[str, str]
    version: int
    create_time: datetime
    update_time: datetime

    @classmethod
    def create(
        cls,
        *,
        id: str,
        tenant_id: str,
        fields: OrganizationInput,
        now: datetime,
        field_prefix: str = "organization",
    ) -> Organization:
        """Validate ``fields`` and return a new organisation at version 1.

        Raises ``InvalidArgument`` listing every violation (paths start with ``field_prefix``).
        """
        violations = Violations()
        clean = _FieldCleaner(fields, violations, field_prefix)
        organization = cls(
            id=id,
            tenant_id=tenant_id,
            name=clean.name(),
            domain=clean.domain(),
            industry=clean.industry(),
            tier=clean.tier(creating=True),
            owner_id=clean.owner_id(),
            custom_attributes=clean.custom_attributes(),
            version=1,
            create_time=now,
            update_time=now,
        )
        violations.raise_if_any()
        return organization

    def apply_update(
        self,
        changes: OrganizationInput,
        mask_paths: Sequence[str],
        expected_version: int | None,
        now: datetime,
        *,
        field_prefix: str = "organization",
        mask_field: str = "update_mask",
    ) -> OrganizationUpdate:
        """Replace the fields named by ``mask_paths`` with those of ``changes``.

        Same contract as :meth:`Contact.apply_update`: ``InvalidArgument`` (mask and values,
        all at once), then ``StaleVersion``; no change means no new version.
        """
        violations = Violations()
        mask = parse_update_mask(mask_paths, ORGANIZATION_MASK, violations, mask_field=mask_field)
        clean = _FieldCleaner(changes, violations, field_prefix)
        values: dict[str, Any] = {}
        attributes = edit_custom_attributes(
            violations,
            field_prefix,
            self.custom_attributes,
            changes.custom_attributes,
            [p.sub for p in mask if p.field == "custom_attributes" and p.sub is not None],
        )
        for path in mask:
            if path.field == "custom_attributes" and path.sub is None:
                attributes = clean.custom_attributes()
            elif path.field != "custom_attributes":
                values[path.field] = clean.field(path.field)
        violations.raise_if_any()
        if expected_version is not None and expected_version != self.version:
            raise StaleVersion(f"organizations/{self.id}", expected_version, self.version)

        candidate = dataclasses.replace(self, custom_attributes=attributes, **values)
        changed = [str(p) for p in mask if _value_at(candidate, p) != _value_at(self, p)]
        if not changed:
            return OrganizationUpdate(self, [])
        return OrganizationUpdate(
            dataclasses.replace(candidate, version=self.version + 1, update_time=now), changed
        )

    def as_input(self) -> OrganizationInput:
        """This organisation's caller-settable fields."""
        return OrganizationInput(
            name=self.name,
            domain=self.domain,
            industry=self.industry,
            tier=self.tier,
            owner_id=self.owner_id,
            custom_attributes=dict(self.custom_attributes),
        )


def _value_at(organization: Organization, path: MaskPath) -> object:
    if path.field != "custom_attributes":
        return getattr(organization, path.field)
    if path.sub is None:
        return dict(organization.custom_attributes)
    return organization.custom_attributes.get(path.sub)


class _FieldCleaner:
    """Validates and normalises one field of an :class:`OrganizationInput` at a time."""

    def __init__(self, fields: OrganizationInput, violations: Violations, prefix: str) -> None:
        self._fields = fields
        self._violations = violations
        self._prefix = prefix

    def _path(self, name: str) -> str:
        return join_path(self._prefix, name)

    def field(self, name: str) -> object:
        """The clean value of top-level field ``name`` in an update (not custom attributes)."""
        cleaners = {
            "name": self.name,
            "domain": self.domain,
            "industry": self.industry,
            "owner_id": self.owner_id,
        }
        if name == "tier":
            return self.tier(creating=False)
        return cleaners[name]()

    def name(self) -> str:
        """Required, trimmed, at most 200 characters."""
        return clean_text(
            self._violations,
            self._path("name"),
            self._fields.name,
            max_length=MAX_ORGANIZATION_NAME_LENGTH,
            required=True,
        )

    def domain(self) -> str:
        """Optional web domain, normalised (see :func:`normalise_domain_name`)."""
        text = self._fields.domain.strip()
        if not text:
            return ""
        try:
            return normalise_domain_name(text)
        except InvalidValueError as error:
            self._violations.add(self._path("domain"), error.description)
            return text

    def industry(self) -> str:
        """Optional free text, trimmed, at most 100 characters."""
        return clean_text(
            self._violations,
            self._path("industry"),
            self._fields.industry,
            max_length=MAX_INDUSTRY_LENGTH,
        )

    def tier(self, *, creating: bool) -> Tier:
        """The tier; STANDARD when a new organisation gives none."""
        if self._fields.tier is None and not creating:
            self._violations.add(self._path("tier"), "is required")
        return self._fields.tier or Tier.STANDARD

    def owner_id(self) -> str:
        """The owning user's id; empty means none."""
        return clean_reference(self._violations, self._path("owner_id"), self._fields.owner_id)

    def custom_attributes(self) -> dict[str, str]:
        """The whole custom-attribute map, checked."""
        return clean_custom_attributes(
            self._violations, self._prefix, self._fields.custom_attributes
        )
