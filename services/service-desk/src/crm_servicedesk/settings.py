"""Configuration of the service-desk service (environment variables, validated at start-up)."""

from __future__ import annotations

from pydantic import Field

from crm_platform.settings import ServiceSettings

TOPIC = "crm.servicedesk.v1"


class ServiceDeskSettings(ServiceSettings):
    """Everything in :class:`ServiceSettings`, plus the service desk's own settings."""

    service_name: str = "servicedesk"
    contacts_address: str = Field(
        default="127.0.0.1:50051",
        min_length=1,
        description="gRPC address of the contacts service (requester and author lookup)",
    )
    survey_valid_days: float = Field(
        default=7.0, gt=0, le=365, description="How long a survey accepts an answer"
    )
    timer_max_idle_seconds: float = Field(
        default=1.0,
        gt=0,
        le=5,
        description="Longest sleep of the SLA timer worker between looks at the timer table",
    )
    timer_lease_ttl_seconds: float = Field(
        default=10.0, ge=2, le=120, description="How long a replica may fire timers unrenewed"
    )
