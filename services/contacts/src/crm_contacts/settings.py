"""Configuration of the contacts service (environment variables, validated at start-up)."""

from __future__ import annotations

from pydantic import Field, field_validator

from crm_contacts.domain import check_phone_region
from crm_platform.settings import ServiceSettings

TOPIC = "crm.contacts.v1"


class ContactsSettings(ServiceSettings):
    """Everything in :class:`ServiceSettings`, plus the contacts service's own settings."""

    service_name: str = "contacts"
    default_phone_region: str | None = Field(
        default=None,
        pattern=r"^[A-Z]{2}$",
        description="ISO 3166 region for phone numbers written without a country code, e.g. US",
    )

    @field_validator("default_phone_region")
    @classmethod
    def _known_region(cls, value: str | None) -> str | None:
        """An unknown region would fail every request later: refuse it at start-up."""
        return check_phone_region(value)
