"""Configuration of the sales service (environment variables, validated at start-up)."""

from __future__ import annotations

from pydantic import Field

from crm_platform.settings import ServiceSettings

TOPIC = "crm.sales.v1"


class SalesSettings(ServiceSettings):
    """Everything in :class:`ServiceSettings`, plus the sales service's own settings."""

    service_name: str = "sales"
    contacts_address: str = Field(
        default="127.0.0.1:50051",
        min_length=1,
        description="gRPC address of the contacts service (lead conversion)",
    )
    timer_max_idle_seconds: float = Field(
        default=1.0,
        gt=0,
        le=5,
        description="Longest sleep of the quote-expiry timer worker between looks at the timers",
    )
    timer_lease_ttl_seconds: float = Field(
        default=10.0, ge=2, le=120, description="How long a replica may fire timers unrenewed"
    )
