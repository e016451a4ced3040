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
